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
from .errors import RenderError, UsageError
from .families import FAMILIES
from .job import Job
from .lora import record as lora_record
from .manifest import RowResult, file_digest
from .presets import Preset
from .recipe import package_versions, sidecar_path, slugify
from .registry import check_options
from .settings import ROW_SETTINGS, SETTINGS
from .verbs import Verb
from .video import AUDIO_FORMATS, FORMATS, RECIPE_KEY, Soundtrack, VideoWriter, iter_frames, write_json_atomic


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


def check_request(preset: Preset, verb: Verb | None = None) -> None:
    """What can be known without loading the model (a big one takes minutes): the image exists, the model's
    family honours every setting asked of it, and a named model does the task at that length (keyframes give
    an image-to-video model its frames)."""
    from .backends import model_family
    from .registry import MODELS

    if preset.image is not None and not Path(preset.image).expanduser().is_file():
        raise UsageError(f"image not found: {preset.image}")
    family = FAMILIES[model_family(preset.model)]
    check_options({n: getattr(preset, n) for n, s in SETTINGS.items() if not s.universal}, family, preset.model)
    spec = MODELS.get(preset.model)
    task = "i2v" if preset.image else "t2v"
    if spec is not None and verb is not None and verb.keyframes and "t2v" not in spec.tasks:
        task = "i2v"
    if spec is not None and task not in spec.tasks:
        others = ", ".join(m.id for m in MODELS.values() if task in m.tasks)
        what = "text-to-video (no --image)" if task == "t2v" else "image-to-video (--image)"
        raise UsageError(f"{spec.id} does not do {what}; models that do: {others}")
    family.check_length(preset.model, task, preset.frames)
    if spec is None:
        return
    spec.frames.count_for(spec.id, preset.frames)
    if spec.fixed_steps and preset.steps != spec.fixed_steps:
        raise UsageError(f"{spec.id} runs the {spec.fixed_steps} steps it was trained for: --steps {spec.fixed_steps} "
                         f"(asked for {preset.steps})")


def make_job(prompt: str, preset: Preset, backend, verb: Verb | None = None) -> tuple[Job, list[str]]:
    """The job for one video and the notices about it (a size snapped to the model's multiple, a soundtrack
    the output cannot carry). Keyframes give the frames an image-to-video checkpoint needs (the family's
    keyframe pipeline checks them)."""
    check_options({n: getattr(preset, n) for n in ROW_SETTINGS if not SETTINGS[n].universal}, backend.family,
                  backend.model_id)
    if verb is None or not verb.keyframes:
        backend.check_task(preset.image)
    backend.family.check_length(backend.model_id, "i2v" if preset.image else "t2v", preset.frames)
    width, height, note = backend.fit_size(preset.width, preset.height, preset.image)
    settings = {n: getattr(preset, n) for n in ROW_SETTINGS}
    settings.update(width=width, height=height, seed=preset.seed if preset.seed is not None else new_seed(),
                    sampler=backend.own_sampler if preset.sampler == "auto" else preset.sampler)
    job = Job(prompt=prompt, generated_frames=backend.frame_count(preset.frames), **settings)
    return job, [*([note] if note else []), *backend.job_notes(job)]


def build_recipe(job: Job, preset: Preset, backend, timings: dict, audio: Soundtrack | None = None,
                 suffix: str = ".mp4", verb: Verb | None = None) -> dict:
    """Every setting as it ran (the job's for one video, the preset's for the rest; what the backend resolved
    over both), the soundtrack written, versions and timings."""
    settings = {s.key: getattr(job, n) if n in ROW_SETTINGS else getattr(preset, n) for n, s in SETTINGS.items()}
    settings["loras"] = [lora_record(spec) for spec in job.loras]  # each file with its SHA-256 (--from checks it)
    return {
        "prompt": job.prompt, **settings, "generated_frames": job.generated_frames, "preset": preset.name,
        "model": backend.model_id, "device": backend.device, "dtype": backend.dtype, "compile": backend.compiled,
        **getattr(backend, "runtime", {}),  # what the backend resolved (e.g. offload auto -> none, its scheduler)
        "soundtrack": None if audio is None else {
            "sample_rate": audio.stream_rate(suffix), "channels": audio.channels, "codec": AUDIO_FORMATS[suffix][0],
            "seconds": round(audio.samples.shape[1] / audio.sample_rate, 4)},
        **({"verb": block} if verb is not None and (block := verb.record()) else {}),
        "versions": package_versions(),
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"), "timings": timings,
    }


def soundtrack_for(first, frames, job: Job, output: Path, warn) -> tuple[Soundtrack | None, object]:
    """A backend that makes sound yields its Soundtrack before the first frames: split it off, fitted to the
    video's length, or dropped (--no-audio, or a .gif, which says so)."""
    if not isinstance(first, Soundtrack):
        return None, first
    audio, first = first, next(frames)
    if not job.audio:
        return None, first
    if output.suffix.lower() not in AUDIO_FORMATS:
        warn(f"{output.suffix} files carry no sound: writing the video silent (use .mp4, .webm or .mkv to keep it)")
        return None, first
    return audio.fitted(job.frames / job.fps), first


def render_to_file(backend, job: Job, preset: Preset, output: Path, progress=None, load_s: float = 0.0,
                   contact_sheet: bool = False, warn=None, verb: Verb | None = None):
    """Renders `job` into `output` (temporary file, then rename), writes the recipe beside it, and with
    `contact_sheet` a PNG grid of frames too. A `verb` (verbs.py) conditions the render; an extended video
    starts with its source's frames, streamed through unchanged."""
    start = time.perf_counter()
    timings = {"load_s": round(load_s, 3)}
    verb = verb or Verb()
    frames = iter(backend.render(job, progress, verb if verb.names else None))
    first = next(frames)  # the first window is denoised here; later windows stream in with the encoder
    audio, first = soundtrack_for(first, frames, job, output, warn or (lambda message: None))
    timings["first_frames_s"] = round(time.perf_counter() - start, 3)
    expected = verb.kept_frames + job.frames
    sheet = SheetCollector(expected) if contact_sheet else None
    output.parent.mkdir(parents=True, exist_ok=True)
    # The container carries the recipe as known when encoding starts; the sidecar adds the encode time.
    embedded = build_recipe(job, preset, backend, dict(timings), audio, output.suffix.lower(), verb)
    kept = iter_frames(verb.source.path) if verb.kept_frames else iter(())
    if verb.kept_frames and (job.width, job.height) != (verb.source.width, verb.source.height):
        frames = (fit_frames(chunk, verb.source.width, verb.source.height) for chunk in frames)
        first = fit_frames(first, verb.source.width, verb.source.height)
    with VideoWriter(output, job.fps, {RECIPE_KEY: json.dumps(embedded)}, audio) as writer:
        for chunk in itertools.chain(kept, [first], frames):
            writer.write(chunk)
            if sheet:
                sheet.add(chunk)
        if writer.frames != expected:  # inside the block: a short video never reaches the output path
            raise RenderError(f"{backend.model_id} rendered {writer.frames} frames, expected {expected}")
    timings["render_s"] = round(time.perf_counter() - start, 3)
    timings["total_s"] = round(load_s + time.perf_counter() - start, 3)
    recipe = {**embedded, "timings": timings}
    write_json_atomic(sidecar_path(output), recipe)
    if sheet:
        write_png(sheet_path(output), sheet.image())
    return RenderResult(output, recipe)


def fit_frames(chunk, width: int, height: int):
    """uint8 frames (f, H, W, 3) resized (bicubic) to width x height: new frames joined to a source's."""
    import numpy as np
    from PIL import Image

    return np.stack([np.asarray(Image.fromarray(f).resize((width, height), Image.BICUBIC)) for f in chunk])


def render_row(backend, row, settings: Preset, output: Path, job: Job, progress=None, warn=None) -> RowResult:
    """Renders one prompt-file row into its output (atomically) and says how it went; the caller records it in
    the batch manifest. Failures are the row's, not the batch's."""
    started = time.perf_counter()
    try:
        result = render_to_file(backend, job, settings, output, progress, warn=warn)
        size, digest = file_digest(output)
        status, error, recipe = "done", None, result.recipe
    except (RenderError, RuntimeError, OSError, ValueError) as exc:
        status, error, recipe, size, digest = "failed", f"{type(exc).__name__}: {exc}", {}, None, None
    return RowResult(row.index, row.source, row.prompt, output.name, status, job.seed,
                     round(time.perf_counter() - started, 3), error, size, digest, recipe)
