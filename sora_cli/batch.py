"""`sora batch`: many rows, one loaded model, a manifest record per row."""

from __future__ import annotations

import signal
import threading
from contextlib import contextmanager
from pathlib import Path

from . import manifest
from .errors import UsageError
from .generate import check_flags, model_preset
from .manifest import RowResult
from .presets import resolve_preset
from .prompts import PromptRow, read_prompt_files
from .recipe import slugify
from .render import check_request, check_target, check_writable, make_job, new_seed, render_row
from .video import FORMATS


def output_name(row: PromptRow, ext: str, seed: int | None = None) -> str:
    """Index + slug (+ the seed, for a row with variations): unique, stable across runs, and never a path outside
    the batch folder."""
    variant = f"-{seed}" if row.variations > 1 else ""
    return f"{row.index:04d}-{slugify(row.name or row.prompt)}{variant}{ext}"


def batch_seed(out_dir: Path, given: int | None, resume: bool) -> int:
    """The seed rows derive theirs from: given, or on --resume the one the batch was started with."""
    batches, _ = manifest.read(out_dir)
    recorded = batches[0]["seed"] if batches else None
    if resume and recorded is not None:
        if given is not None and given != recorded:
            raise UsageError(f"{out_dir} was started with --seed {recorded}; resume it with the same seed (or none)")
        return recorded
    return new_seed() if given is None else given


def run_batch(
    files: list[Path], *, out_dir: Path, flags: dict, preset_ref: str | None, ext: str, overwrite: bool,
    progress, warn, on_row, resume: bool = False, retry_failed: bool = False, executor: str = "local",
    ray_address: str | None = None, workers: int | None = None,
) -> tuple[list[RowResult], bool, int]:
    """Every row is checked (settings, names, outputs) before the model loads; a failing row does not stop the rest.
    Returns the rows rendered now, whether a Ctrl-C stopped the batch early, and how many rows of the whole
    batch stand failed (failures kept from before included).

    `--seed` is the batch seed: row i gets seed + i unless it names its own, so a resumed batch renders the same
    videos. `--resume` keeps rows whose video is done and whole; failed rows are rendered again only with
    `--retry-failed`.
    """
    ext = ext if ext.startswith(".") else f".{ext}"
    if ext not in FORMATS:
        raise UsageError(f"unsupported format '{ext}'; valid: {', '.join(FORMATS)}")
    cli = check_flags(flags)
    seed = batch_seed(out_dir, cli.pop("seed", None), resume)
    preset = resolve_preset(preset_ref or model_preset(flags.get("model")))
    rows = read_prompt_files(files)
    check_writable(out_dir)
    batches, previous = manifest.read(out_dir)
    if batches and not (resume or overwrite):
        raise UsageError(f"{out_dir} already holds a batch ({manifest.MANIFEST}); add --resume to continue it, "
                         "or --overwrite to render every row again")
    plans, kept_failures = [], 0
    for row in rows:
        settings = preset.with_overrides(row.overrides).with_overrides(cli)
        first = row.overrides.get("seed", seed + row.index)
        for row_seed in range(first, first + row.variations):
            settings = settings.with_overrides({"seed": row_seed})
            output = out_dir / output_name(row, ext, row_seed)
            if resume and _settled(out_dir, previous.get(output.name), output, retry_failed):
                kept_failures += previous[output.name]["status"] == "failed"
                continue
            check_target(output, overwrite or resume)
            plans.append((row, settings, output))
    shared = preset.with_overrides(cli)  # the model and how it runs are the batch's, not a row's
    if shared.gpus > 1:
        raise UsageError("--gpus splits one video over GPUs (sora generate, extend, remix); a batch uses every GPU "
                         "with --executor ray, one row per GPU")
    if executor not in ("local", "ray"):
        raise UsageError(f"unknown executor '{executor}'; valid: local, ray")
    if executor == "ray":
        from .ray_executor import render_on_ray

        for row, settings, _ in plans:  # what can be checked without the model; workers build the jobs
            try:
                check_request(settings)
            except UsageError as exc:
                raise UsageError(f"{row.source}: {exc}") from None

        def render_all(stop, record):
            return render_on_ray(plans, shared, address=ray_address, workers=workers, stop=stop, on_result=record)
    else:
        backend, jobs = _local_jobs(plans, shared, warn)

        def render_all(stop, record):
            results = []
            for row, settings, output, job in jobs:
                if stop.requested:
                    break
                results.append(record(render_row(backend, row, settings, output, job, progress, warn)))
            return results

    out_dir.mkdir(parents=True, exist_ok=True)
    with manifest.BatchLock(out_dir), _first_ctrl_c_finishes_the_row(warn) as stop:
        _start(out_dir, seed, files, len(rows), len(plans), resume)
        results = render_all(stop, lambda result: _record(out_dir, result, on_row, len(plans)))
    return results, stop.requested, kept_failures + sum(r.status == "failed" for r in results)


def _local_jobs(plans, shared, warn):
    """Loads the batch's model once and builds every row's job with it (a bad row stops the batch here)."""
    from .backends import backend_for

    backend = backend_for(shared)
    jobs, row_notes = [], []
    for row, settings, output in plans:
        try:
            job, notes = make_job(row.prompt, settings, backend)
        except UsageError as exc:
            raise UsageError(f"{row.source}: {exc}") from None
        jobs.append((row, settings, output, job))
        row_notes.extend(f"{row.source}: {note}" for note in [*notes, *backend.prompt_notes(row.prompt)])
    for note in [*backend.notes, *row_notes]:
        warn(note)
    return backend, jobs


def _start(out_dir: Path, seed: int, files, rows: int, to_render: int, resume: bool) -> None:
    _remove_stale_parts(out_dir)
    manifest.append(out_dir, {"type": "batch", "seed": seed, "files": [str(f) for f in files], "rows": rows,
                              "to_render": to_render, "resume": resume})


def _record(out_dir: Path, result: RowResult, on_row, total: int) -> RowResult:
    manifest.append_row(out_dir, result)  # only after the video was renamed into place
    on_row(result, total)
    return result


def _settled(out_dir: Path, record: dict | None, output: Path, retry_failed: bool) -> bool:
    """On --resume: a row needs no work when its video is done and whole, or it failed and failures stay."""
    if record is None or record.get("output") != output.name:
        return False
    if record.get("status") == "failed":
        return not retry_failed
    return manifest.is_whole(out_dir, record)


def _remove_stale_parts(out_dir: Path) -> None:
    """Temporary files a killed run left behind (ours are hidden and carry '.part')."""
    for path in out_dir.glob(".*.part*"):
        path.unlink(missing_ok=True)


class _StopFlag:
    requested = False


@contextmanager
def _first_ctrl_c_finishes_the_row(warn):
    """The first Ctrl-C lets the current video finish and stops the batch; a second aborts that video too."""
    flag = _StopFlag()

    def on_interrupt(signum, frame):
        if flag.requested:
            raise KeyboardInterrupt
        flag.requested = True
        warn("stopping after the current video; Ctrl-C again aborts it")

    if threading.current_thread() is not threading.main_thread():
        yield flag
        return
    previous = signal.signal(signal.SIGINT, on_interrupt)
    try:
        yield flag
    finally:
        signal.signal(signal.SIGINT, previous)
