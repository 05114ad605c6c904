"""`sora eval`: render tiny-world captions with a native model and score each clip with the analytic checker."""

from __future__ import annotations

import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from .data.checker import ATTRIBUTES, judge, score
from .data.clips import FPS  # clips are judged at the frame rate the model was trained on
from .data.world import Scene, is_held_out, sample_scene
from .errors import UsageError


@dataclass(frozen=True)
class ClipResult:
    caption: str
    held_out: bool
    seed: int
    verdict: dict
    correct: dict  # attribute -> bool
    seconds: float


def eval_scenes(seen: int, held_out: int, seed: int = 0) -> list[Scene]:
    """Fixed captions: `seen` training combinations, then `held_out` combinations never trained on."""
    rng = np.random.default_rng(seed)
    scenes = [sample_scene(rng) for _ in range(seen)]
    while len(scenes) < seen + held_out:
        scene = sample_scene(rng, held_out=True)
        if is_held_out(scene):
            scenes.append(scene)
    return scenes


def render_clip(model, caption: str, seed: int, frames: int, steps: int, guidance: float, sampler: str,
                device, dtype) -> np.ndarray:
    """(frames, H, W, 3) uint8 at the model's native size, through the same pipeline `sora generate` uses."""
    from .pipeline import Job, generate

    size = model.params.native_size
    job = Job(prompt=caption, negative="", seed=seed, steps=steps, guidance=guidance, sampler=sampler, shift=None,
              width=size, height=size, frames=frames, generated_frames=model.frame_count(frames))
    return np.concatenate(list(generate(model, job, device, dtype)))


def run_eval(model, scenes: list[Scene], seeds: list[int], *, frames: int, steps: int, guidance: float,
             sampler: str, device, dtype, on_clip=None) -> list[ClipResult]:
    results = []
    for scene in scenes:
        for seed in seeds:
            start = time.perf_counter()
            clip = render_clip(model, scene.caption, seed, frames, steps, guidance, sampler, device, dtype)
            seconds = time.perf_counter() - start
            verdict = judge(clip, FPS)
            result = ClipResult(scene.caption, is_held_out(scene), seed, verdict.to_dict(), score(verdict, scene),
                                round(seconds, 3))
            results.append(result)
            if on_clip:
                on_clip(len(results), len(scenes) * len(seeds), result)
    return results


def summarise(results: list[ClipResult]) -> dict:
    """Accuracy per attribute for seen and held-out captions, and seconds per clip."""
    summary = {}
    for group, held in (("seen", False), ("held_out", True)):
        rows = [r for r in results if r.held_out == held]
        if rows:
            summary[group] = {a: round(sum(r.correct[a] for r in rows) / len(rows), 4) for a in ATTRIBUTES}
            summary[group]["clips"] = len(rows)
    n = max(len(results), 1)
    summary["steadiness"] = {  # flicker: how steady the background, colour and shape stay within a clip
        "background_drift_rgb_max": round(max((r.verdict["background_drift"] for r in results), default=0.0), 1),
        "colour_agreement_mean": round(sum(r.verdict["colour_agreement"] for r in results) / n, 4),
        "shape_agreement_mean": round(sum(r.verdict["shape_agreement"] for r in results) / n, 4),
    }
    summary["seconds_per_clip"] = round(sum(r.seconds for r in results) / n, 3)
    return summary


def format_table(summary: dict) -> str:
    groups = [g for g in ("seen", "held_out") if g in summary]
    lines = [f"{'':<11}" + "".join(f"{a:>11}" for a in ATTRIBUTES) + f"{'clips':>7}"]
    for g in groups:
        row = summary[g]
        lines.append(f"{g:<11}" + "".join(f"{row[a]:>10.0%} " for a in ATTRIBUTES) + f"{row['clips']:>7}")
    steady = summary["steadiness"]
    lines.append(f"steadiness: background drifts at most {steady['background_drift_rgb_max']:.1f} RGB levels; "
                 f"object frames agreeing on colour {steady['colour_agreement_mean']:.0%}, "
                 f"on shape {steady['shape_agreement_mean']:.0%}")
    lines.append(f"seconds per clip: {summary['seconds_per_clip']:.2f}")
    return "\n".join(lines)


def report(results: list[ClipResult], settings: dict) -> dict:
    return {"settings": settings, "summary": summarise(results), "clips": [asdict(r) for r in results]}


def run_eval_command(flags: dict, preset_ref: str | None, *, seen: int, held_out: int, seeds: int, frames: int,
                     output: Path, quiet: bool) -> str:
    """`sora eval`: checks the request, renders and judges every clip, writes the JSON report, returns the table."""
    from .backends import backend_for, model_family
    from .generate import check_flags
    from .presets import resolve_preset
    from .render import check_writable
    from .video import write_json_atomic

    for name, value, least in (("--seen", seen, 0), ("--held-out", held_out, 0), ("--seeds", seeds, 1),
                               ("--frames", frames, 1)):
        if value < least:
            raise UsageError(f"{name} must be >= {least}, got {value}")
    if seen + held_out == 0:
        raise UsageError("nothing to evaluate: --seen and --held-out are both 0")
    if output.suffix.lower() != ".json":
        raise UsageError(f"the report is JSON: --output must end in .json, got '{output.name}'")
    check_writable(output.parent)
    preset = resolve_preset(preset_ref or "default").with_overrides(check_flags(flags))
    if model_family(preset.model) != "native":  # before loading: an open model can take minutes to load
        raise UsageError(f"sora eval scores native tiny-world models; {preset.model} is not one")
    backend = backend_for(preset)
    if not hasattr(backend, "model") or not hasattr(backend.model, "vae"):
        raise UsageError(f"sora eval scores native tiny-world models; {preset.model} is not one")
    say = (lambda line: None) if quiet else (lambda line: print(line, file=sys.stderr, flush=True))
    for note in backend.notes:
        say(f"warning: {note}")

    def on_clip(done, total, result):
        wrong = [a for a, ok in result.correct.items() if not ok]
        say(f"[{done}/{total}] {result.caption} (seed {result.seed}): "
            f"{'all right' if not wrong else 'wrong ' + ', '.join(wrong)} ({result.seconds:.1f} s)")

    import torch

    from .device import torch_dtype

    results = run_eval(backend.model, eval_scenes(seen, held_out), list(range(seeds)), frames=frames,
                       steps=preset.steps, guidance=preset.guidance, sampler=preset.sampler,
                       device=torch.device(backend.device), dtype=torch_dtype(backend.dtype), on_clip=on_clip)
    settings = {"model": backend.model_id, "frames": frames, "steps": preset.steps, "guidance": preset.guidance,
                "sampler": preset.sampler, "seeds": seeds, "device": backend.device, "dtype": backend.dtype}
    data = report(results, settings)
    write_json_atomic(output, data)
    return f"{format_table(data['summary'])}\nreport: {output}"
