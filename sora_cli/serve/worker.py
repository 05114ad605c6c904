"""Workers: each renders queued jobs one at a time with its own loaded model (one per GPU, or per --workers).

A job's progress is the sampler's real steps (denoising up to 90 %, decoding and encoding the rest); deleting a
running job stops it at its next step. Outputs, recipes, contact sheets and the manifest are written as
`sora batch` writes them, so `sora gallery DIR` works on the data folder.
"""

from __future__ import annotations

import sys
import threading
import time
from pathlib import Path

from .. import manifest
from ..errors import SoraError
from ..manifest import RowResult, file_digest
from ..render import render_to_file
from .jobs import UPLOADS, Context, resolve
from .store import JobStore, VideoRow

SUFFIXES = (".mp4", ".json", ".png", ".jpg")  # video, recipe, contact sheet (spritesheet), thumbnail
DENOISE_SHARE = 90  # per cent of progress for the denoising steps


class Cancelled(Exception):
    """The job was deleted while it ran."""


def output_path(data: Path, video_id: str, suffix: str = ".mp4") -> Path:
    return data / f"{video_id}{suffix}"


def remove_files(data: Path, video_id: str) -> None:
    """Everything a job wrote or was given, its uploads included."""
    for suffix in SUFFIXES:
        output_path(data, video_id, suffix).unlink(missing_ok=True)
    for upload in (data / UPLOADS).glob(f"{video_id}-*"):
        upload.unlink(missing_ok=True)


def remove_stale_parts(data: Path) -> None:
    """Temporary files of a server that was killed (ours are hidden: .NAME.PID.part.EXT, .NAME.tmp)."""
    for pattern in (".*.part*", ".*.tmp"):
        for path in data.glob(pattern):
            path.unlink(missing_ok=True)


class JobProgress:
    """The progress callback of one job: 0-100 into the queue, and the point where a deleted job stops."""

    def __init__(self, store: JobStore, video_id: str, cancelled: threading.Event):
        self.store, self.video_id, self.cancelled, self.last = store, video_id, cancelled, 0

    def __call__(self, phase: str, done: int, total: int) -> None:
        if self.cancelled.is_set():
            raise Cancelled
        fraction = done / total if total else 1.0
        share = DENOISE_SHARE * fraction if phase == "denoise" else DENOISE_SHARE + (99 - DENOISE_SHARE) * fraction
        value = max(self.last, min(99, int(share)))
        if value != self.last:
            self.last = value
            self.store.set_progress(self.video_id, value)


class Worker(threading.Thread):
    def __init__(self, ctx: Context, store: JobStore, wake: threading.Condition, gpu: int | None = None):
        super().__init__(daemon=True, name=f"sora-worker-{gpu if gpu is not None else 0}")
        self.ctx, self.store, self.wake, self.gpu = ctx, store, wake, gpu
        self.current: str | None = None
        self.cancelled = threading.Event()

    def cancel(self, video_id: str) -> None:
        if self.current == video_id:
            self.cancelled.set()

    def run(self) -> None:
        if self.gpu is not None:
            import torch

            torch.cuda.set_device(self.gpu)  # per thread: "cuda" is this worker's GPU
        while True:
            row = self.store.claim()
            if row is None:
                with self.wake:
                    self.wake.wait(timeout=1.0)
                continue
            self.current = row.id
            self.cancelled.clear()
            try:
                self.render(row)
            finally:
                self.current = None

    def render(self, row: VideoRow) -> None:
        data = self.ctx.data
        output = output_path(data, row.id)
        started = time.perf_counter()
        try:
            prompt, preset, verb = resolve(row.request, self.ctx)
            from ..generate import verb_job

            job, _ = verb_job(prompt, preset, self.ctx.backend, verb)
            result = render_to_file(self.ctx.backend, job, preset, output, JobProgress(self.store, row.id,
                                                                                       self.cancelled),
                                    contact_sheet=True, verb=verb)
            write_thumbnail(output, output_path(data, row.id, ".jpg"))
        except Cancelled:
            remove_files(data, row.id)
            return
        except (SoraError, RuntimeError, OSError, ValueError) as exc:
            message = f"{type(exc).__name__}: {exc}" if not isinstance(exc, SoraError) else str(exc)
            print(f"sora serve: {row.id} failed: {message}", file=sys.stderr, flush=True)
            if self.store.finish(row.id, {"code": "render_failed", "message": message}):
                self.record(row, "failed", round(time.perf_counter() - started, 3), error=message)
            return
        if not self.store.finish(row.id):  # deleted while its last frames were written
            remove_files(data, row.id)
            return
        self.record(row, "done", round(time.perf_counter() - started, 3), output, result.recipe)

    def record(self, row: VideoRow, status: str, seconds: float, output: Path | None = None, recipe=None,
               error: str | None = None) -> None:
        size, digest = file_digest(output) if output is not None else (None, None)
        seed = row.request["settings"].get("seed", 0)
        manifest.append_row(self.ctx.data, RowResult(row.seq, "api", row.prompt, f"{row.id}.mp4", status, seed,
                                                     seconds, error, size, digest, recipe or {}))


def write_thumbnail(video: Path, path: Path) -> None:
    """The first frame as a JPEG (written beside, then renamed)."""
    import av

    with av.open(str(video)) as container:
        image = next(container.decode(video=0)).to_image()
    tmp = path.with_name(f".{path.name}.tmp")
    image.save(tmp, format="JPEG", quality=90)
    tmp.replace(path)
