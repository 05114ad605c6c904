"""`sora batch`: many rows, one loaded model, a manifest record per row."""

from __future__ import annotations

import json
import os
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from .errors import UsageError
from .generate import check_flags
from .presets import resolve_preset
from .prompts import PromptRow, read_prompt_files
from .recipe import slugify
from .render import check_target, check_writable, make_job, new_seed, render_to_file
from .video import FORMATS

MANIFEST = "manifest.jsonl"


@dataclass(frozen=True)
class RowResult:
    """One manifest record; resume and distributed runs key on `index`."""

    index: int
    source: str
    prompt: str
    output: str  # relative to the batch folder
    status: str  # "done" or "failed"
    seed: int
    seconds: float
    error: str | None = None


def output_name(row: PromptRow, ext: str) -> str:
    """Index + slug: unique, stable across runs, and never a path outside the batch folder."""
    return f"{row.index:04d}-{slugify(row.name or row.prompt)}{ext}"


def append_record(path: Path, result: RowResult) -> None:
    with open(path, "a", encoding="utf-8") as f:
        f.write(json.dumps(asdict(result)) + "\n")
        f.flush()
        os.fsync(f.fileno())


def run_batch(
    files: list[Path], *, out_dir: Path, flags: dict, preset_ref: str | None, ext: str, overwrite: bool,
    progress, warn, on_row,
) -> list[RowResult]:
    """Every row is checked (settings, names, outputs) before the model loads; a failing row does not stop the rest.

    `--seed` is the batch seed: row i gets seed + i unless it names its own.
    """
    from .backends import backend_for

    ext = ext if ext.startswith(".") else f".{ext}"
    if ext not in FORMATS:
        raise UsageError(f"unsupported format '{ext}'; valid: {', '.join(FORMATS)}")
    cli = check_flags(flags)
    batch_seed = cli.pop("seed", None)
    batch_seed = new_seed() if batch_seed is None else batch_seed
    preset = resolve_preset(preset_ref or "default")
    rows = read_prompt_files(files)
    check_writable(out_dir)
    plans = []
    for row in rows:
        settings = preset.with_overrides(row.overrides).with_overrides(cli)
        if "seed" not in row.overrides:
            settings = settings.with_overrides({"seed": batch_seed + row.index})
        output = out_dir / output_name(row, ext)
        check_target(output, overwrite)
        plans.append((row, settings, output))
    shared = preset.with_overrides(cli)  # model, device, dtype and compile are the batch's, not a row's
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
    out_dir.mkdir(parents=True, exist_ok=True)
    results = []
    for row, settings, output, job in jobs:
        started = time.perf_counter()
        try:
            render_to_file(backend, job, settings, output, progress)
            status, error = "done", None
        except (RuntimeError, OSError, ValueError) as exc:
            status, error = "failed", f"{type(exc).__name__}: {exc}"
        result = RowResult(row.index, row.source, row.prompt, output.name, status, job.seed,
                           round(time.perf_counter() - started, 3), error)
        append_record(out_dir / MANIFEST, result)
        results.append(result)
        on_row(result, len(jobs))
    return results
