"""One render, from resolved settings to a finished file: output checks, seed, recipe, atomic write."""

from __future__ import annotations

import itertools
import json
import secrets
import tempfile
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

from .contact_sheet import SheetCollector, sheet_path, write_png
from .errors import UsageError
from .pipeline import Job
from .presets import Preset
from .recipe import package_versions, sidecar_path, slugify
from .video import FORMATS, RECIPE_KEY, VideoWriter, write_json_atomic


@dataclass(frozen=True)
class RenderResult:
    output: Path
    recipe: dict

    def summary(self) -> dict:
        r = self.recipe
        keys = ("seed", "frames", "fps", "width", "height", "model", "preset")
        return {"output": str(self.output), **{k: r[k] for k in keys}, "seconds": r["timings"]["total_s"]}


def new_seed() -> int:
    return secrets.randbelow(2**31)


def default_output(prompt: str, seed: int, folder: Path = Path("."), ext: str = ".mp4") -> Path:
    return folder / f"{slugify(prompt)}-{seed}{ext}"


def check_output(path: Path, overwrite: bool, contact_sheet: bool = False) -> None:
    """Fails before any work when the output cannot or must not be written."""
    check_target(path, overwrite, contact_sheet)
    check_writable(path.parent)


def check_target(path: Path, overwrite: bool, contact_sheet: bool = False) -> None:
    """The file itself: a known extension, and neither it nor its recipe (nor its contact sheet) in the way."""
    if path.suffix.lower() not in FORMATS:
        raise UsageError(f"unsupported output extension '{path.suffix or path.name}'; valid: {', '.join(FORMATS)}")
    for target in (path, sidecar_path(path), *([sheet_path(path)] if contact_sheet else [])):
        if target.is_dir():
            raise UsageError(f"output {target} is a folder")
        if target.exists() and not overwrite:
            raise UsageError(f"{target} already exists; pass --overwrite to replace it")


def check_writable(folder: Path) -> None:
    """The folder (or, if it does not exist yet, its nearest existing parent) accepts new files."""
    existing = folder
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    try:  # a real probe: permission bits say nothing to root, or on read-only mounts
        with tempfile.TemporaryFile(dir=existing):
            pass
    except OSError as exc:
        raise UsageError(f"cannot write to {folder}: {exc.strerror or exc}") from None


def check_prompt(prompt: str | None) -> str:
    if prompt is None or not prompt.strip():
        raise UsageError("the prompt is empty; give the text of the video to render")
    return prompt.strip()


def check_request(preset: Preset) -> None:
    """What the registry knows about a named model, checked before it loads (a big one takes minutes)."""
    from .registry import MODELS

    if preset.image is not None and not Path(preset.image).expanduser().is_file():
        raise UsageError(f"image not found: {preset.image}")
    spec = MODELS.get(preset.model)
    if spec is None:
        return
    task = "i2v" if preset.image else "t2v"
    if task not in spec.tasks:
        others = ", ".join(m.id for m in MODELS.values() if task in m.tasks)
        what = "text-to-video (no --image)" if task == "t2v" else "image-to-video (--image)"
        raise UsageError(f"{spec.id} does not do {what}; models that do: {others}")
    spec.frames.count_for(spec.id, preset.frames)


def make_job(prompt: str, preset: Preset, backend) -> tuple[Job, list[str]]:
    """The job for one video and the notices about it (a size snapped to the model's multiple)."""
    backend.check_task(preset.image)
    width, height, note = backend.fit_size(preset.width, preset.height)
    job = Job(
        prompt=prompt, negative=preset.negative, seed=preset.seed if preset.seed is not None else new_seed(),
        steps=preset.steps, guidance=preset.guidance, sampler=preset.sampler, shift=preset.shift,
        width=width, height=height, frames=preset.frames, generated_frames=backend.frame_count(preset.frames),
        image=preset.image, video_steps=preset.video_steps, video_guidance=preset.video_guidance,
    )
    return job, [*([note] if note else []), *backend.job_notes(job)]


def build_recipe(job: Job, preset: Preset, backend, timings: dict) -> dict:
    return {
        "prompt": job.prompt, "negative_prompt": job.negative, "seed": job.seed, "steps": job.steps,
        "guidance": job.guidance, "sampler": job.sampler, "shift": job.shift, "width": job.width,
        "height": job.height, "frames": job.frames, "generated_frames": job.generated_frames, "fps": preset.fps,
        "model": backend.model_id, "preset": preset.name, "device": backend.device, "dtype": backend.dtype,
        "compile": backend.compiled, "image": job.image, "video_steps": job.video_steps,
        "video_guidance": job.video_guidance,
        **{k: getattr(preset, k) for k in ("offload", "vae_tiling", "cache", "cache_threshold")},
        **getattr(backend, "runtime", {}),  # what the backend resolved (e.g. offload auto -> none)
        "versions": package_versions(),
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"), "timings": timings,
    }


def render_to_file(backend, job: Job, preset: Preset, output: Path, progress=None, load_s: float = 0.0,
                   contact_sheet: bool = False):
    """Renders `job` into `output` (temporary file, then rename), writes the recipe beside it, and with
    `contact_sheet` a PNG grid of frames too."""
    start = time.perf_counter()
    timings = {"load_s": round(load_s, 3)}
    frames = iter(backend.render(job, progress))
    first = next(frames)  # the first window is denoised here; later windows stream in with the encoder
    timings["first_frames_s"] = round(time.perf_counter() - start, 3)
    sheet = SheetCollector(job.frames) if contact_sheet else None
    output.parent.mkdir(parents=True, exist_ok=True)
    # The container carries the recipe as known when encoding starts; the sidecar adds the encode time.
    embedded = build_recipe(job, preset, backend, dict(timings))
    with VideoWriter(output, preset.fps, {RECIPE_KEY: json.dumps(embedded)}) as writer:
        for chunk in itertools.chain([first], frames):
            writer.write(chunk)
            if sheet:
                sheet.add(chunk)
        if writer.frames != job.frames:  # inside the block: a short video never reaches the output path
            raise RuntimeError(f"rendered {writer.frames} frames, expected {job.frames}")
    timings["render_s"] = round(time.perf_counter() - start, 3)
    timings["total_s"] = round(load_s + time.perf_counter() - start, 3)
    recipe = {**embedded, "timings": timings}
    write_json_atomic(sidecar_path(output), recipe)
    if sheet:
        write_png(sheet_path(output), sheet.image())
    return RenderResult(output, recipe)
