"""`sora eval`: render tiny-world captions with a native model and score each clip with the analytic checker.

Two modes. The fixed set (the default) renders the same 96 clips every time at the model's native size: a
regression check. `--random N --seed S` draws N fresh captions and render seeds and renders each exactly as
`sora generate` would (the preset's size, steps, guidance and sampler, into an H.264 .mp4), decodes the file
again and judges what came back: the honest measure, since no recipe choice was ever tuned on those draws.
"""

from __future__ import annotations

import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from .data.checker import ATTRIBUTES, judge, score
from .data.clips import FPS  # clips are judged at the frame rate the model was trained on
from .data.world import MOTIONS, Scene, is_held_out, sample_scene
from .errors import UsageError

JUDGE_SIZE = 64  # decoded videos are judged with their shorter side area-downscaled to the world's own 64 px
NO_OBJECT = "no object"  # the motion the checker reports when no frame shows an object


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


def random_draws(n: int, seed: int) -> list[tuple[Scene, int]]:
    """N (scene, render seed) pairs from one generator seeded by `seed`: even-numbered draws (0, 2, ...) are
    seen combinations, odd-numbered ones held-out combinations (so an odd N has one seen more), each scene
    followed by its render seed. The same `seed` gives the same draws."""
    rng = np.random.default_rng(seed)
    draws = []
    for i in range(n):
        held = i % 2 == 1
        scene = sample_scene(rng, held_out=held)
        while held and not is_held_out(scene):  # the sampler may give any combination; keep held-out ones
            scene = sample_scene(rng, held_out=True)
        draws.append((scene, int(rng.integers(0, 2**31))))
    return draws


def to_judge_size(frames: np.ndarray, size: int = JUDGE_SIZE) -> np.ndarray:
    """(f, H, W, 3) uint8 with the shorter side area-downscaled to `size` (left alone when already at or below
    it): the checker's thresholds are fractions of the frame, but its tests hold it to 100 % at the world's own
    64 px, and area averaging also smooths H.264's blocky chroma at the object's edge."""
    f, h, w, _ = frames.shape
    scale = size / min(h, w)
    if scale >= 1:
        return frames
    import torch

    x = torch.from_numpy(np.ascontiguousarray(frames)).permute(0, 3, 1, 2).float()
    out = torch.nn.functional.interpolate(x, size=(round(h * scale), round(w * scale)), mode="area")
    return out.round().clamp(0, 255).to(torch.uint8).permute(0, 2, 3, 1).numpy()


def render_decoded(backend, preset, caption: str, seed: int, folder: Path) -> np.ndarray:
    """One clip the way `sora generate` makes it (job from the preset, the same backend, written to an H.264
    .mp4 with its recipe), then read back from the file: (f, H, W, 3) uint8 at the preset's size."""
    from .recipe import sidecar_path
    from .render import make_job, render_to_file
    from .video import read_frames

    preset = preset.with_overrides({"seed": seed})
    job, _ = make_job(caption, preset, backend)
    path = folder / f"clip-{seed}.mp4"
    try:
        render_to_file(backend, job, preset, path)
        return read_frames(path)
    finally:
        path.unlink(missing_ok=True)
        sidecar_path(path).unlink(missing_ok=True)


def run_random_eval(backend, preset, draws: list[tuple[Scene, int]], on_clip=None) -> list[ClipResult]:
    """Renders, encodes, decodes and judges every draw; `seconds` is each clip's whole round trip."""
    results = []
    with tempfile.TemporaryDirectory(prefix="sora-eval-") as folder:
        for scene, seed in draws:
            start = time.perf_counter()
            clip = to_judge_size(render_decoded(backend, preset, scene.caption, seed, Path(folder)))
            verdict = judge(clip, FPS)
            result = ClipResult(scene.caption, is_held_out(scene), seed, verdict.to_dict(), score(verdict, scene),
                                round(time.perf_counter() - start, 3))
            results.append(result)
            if on_clip:
                on_clip(len(results), len(draws), result)
    return results


def asked_motion(result: ClipResult) -> str:
    return next(m for m in MOTIONS if f" {m} on " in result.caption)


def motion_confusion(results: list[ClipResult]) -> dict[str, dict[str, int]]:
    """For each motion asked for (in the world's order), how often the checker saw each motion, most often
    first; `no object` when no frame showed one."""
    confusion = {}
    for asked in MOTIONS:
        seen = [r.verdict["motion"] or NO_OBJECT for r in results if asked_motion(r) == asked]
        if seen:
            counts = {m: seen.count(m) for m in dict.fromkeys(seen)}
            confusion[asked] = dict(sorted(counts.items(), key=lambda kv: (-kv[1], kv[0] != asked)))
    return confusion


def summarise(results: list[ClipResult]) -> dict:
    """Accuracy per attribute for seen and held-out captions, the share with all five right (per group), how
    steady each clip is, the motion seen for each motion asked, and seconds per clip."""
    summary, all_five = {}, {}
    for group, held in (("seen", False), ("held_out", True)):
        rows = [r for r in results if r.held_out == held]
        if rows:
            summary[group] = {a: round(sum(r.correct[a] for r in rows) / len(rows), 4) for a in ATTRIBUTES}
            summary[group]["clips"] = len(rows)
            all_five[group] = round(sum(all(r.correct.values()) for r in rows) / len(rows), 4)
    summary["all_five"] = all_five
    n = max(len(results), 1)
    summary["steadiness"] = {  # flicker: how steady the background, colour and shape stay within a clip
        "background_drift_rgb_max": round(max((r.verdict["background_drift"] for r in results), default=0.0), 1),
        "colour_agreement_mean": round(sum(r.verdict["colour_agreement"] for r in results) / n, 4),
        "shape_agreement_mean": round(sum(r.verdict["shape_agreement"] for r in results) / n, 4),
    }
    summary["motion_confusion"] = motion_confusion(results)
    summary["seconds_per_clip"] = round(sum(r.seconds for r in results) / n, 3)
    return summary


def format_table(summary: dict) -> str:
    groups = [g for g in ("seen", "held_out") if g in summary]
    lines = [f"{'':<11}" + "".join(f"{a:>11}" for a in ATTRIBUTES) + f"{'all five':>11}{'clips':>7}"]
    for g in groups:
        row = summary[g]
        lines.append(f"{g:<11}" + "".join(f"{row[a]:>10.0%} " for a in ATTRIBUTES)
                     + f"{summary['all_five'][g]:>10.0%} {row['clips']:>7}")
    steady = summary["steadiness"]
    lines.append(f"steadiness: background drifts at most {steady['background_drift_rgb_max']:.1f} RGB levels; "
                 f"object frames agreeing on colour {steady['colour_agreement_mean']:.0%}, "
                 f"on shape {steady['shape_agreement_mean']:.0%}")
    lines.append("motion asked -> motion the checker saw:")
    width = max(map(len, summary["motion_confusion"]), default=0)
    for asked, seen in summary["motion_confusion"].items():
        total = sum(seen.values())
        counts = ", ".join(f"{m} {c}" for m, c in seen.items())
        lines.append(f"  {asked:<{width}} {seen.get(asked, 0):>3}/{total:<3} right; seen: {counts}")
    lines.append(f"seconds per clip: {summary['seconds_per_clip']:.2f}")
    return "\n".join(lines)


def report(results: list[ClipResult], settings: dict) -> dict:
    return {"settings": settings, "summary": summarise(results), "clips": [asdict(r) for r in results]}


def run_eval_command(flags: dict, preset_ref: str | None, *, seen: int, held_out: int, seeds: int, frames: int,
                     output: Path, quiet: bool, random: int | None = None, seed: int | None = None) -> str:
    """`sora eval`: checks the request, renders and judges every clip, writes the JSON report, returns the table.

    Without `random`, the fixed set at the model's native size; with it, `random` fresh draws from `seed`
    (0 when not given) rendered, encoded and decoded as `sora generate` would."""
    from .backends import backend_for, model_family
    from .generate import check_flags
    from .presets import resolve_preset
    from .render import check_writable
    from .video import FORMATS, write_json_atomic

    for name, value, least in (("--seen", seen, 0), ("--held-out", held_out, 0), ("--seeds", seeds, 1),
                               ("--frames", frames, 1), ("--random", random, 1)):
        if value is not None and value < least:
            raise UsageError(f"{name} must be >= {least}, got {value}")
    if random is None and seed is not None:
        raise UsageError("--seed picks the captions of --random N; give it together with --random")
    if random is None and seen + held_out == 0:
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
    if preset.sampler == "auto" and getattr(backend, "own_sampler", None):  # as sora generate resolves it
        preset = preset.with_overrides({"sampler": backend.own_sampler})
    say = (lambda line: None) if quiet else (lambda line: print(line, file=sys.stderr, flush=True))
    for note in backend.notes:
        say(f"warning: {note}")

    def on_clip(done, total, result):
        wrong = [a for a, ok in result.correct.items() if not ok]
        say(f"[{done}/{total}] {result.caption} (seed {result.seed}): "
            f"{'all right' if not wrong else 'wrong ' + ', '.join(wrong)} ({result.seconds:.1f} s)")

    common = {"model": backend.model_id, "preset": preset.name, "frames": frames, "steps": preset.steps,
              "guidance": preset.guidance, "sampler": preset.sampler}
    if random is not None:
        seed = 0 if seed is None else seed
        preset = preset.with_overrides({"frames": frames})
        results = run_random_eval(backend, preset, random_draws(random, seed), on_clip=on_clip)
        _, codec, pix_fmt, options = FORMATS[".mp4"]
        settings = {"mode": "random", "random": random, "seed": seed, **common,
                    "size": f"{preset.width}x{preset.height}", "fps": preset.fps,
                    "video": f"mp4, {codec} {pix_fmt} crf {options['crf']}, decoded again",
                    "judged_at": f"shorter side {JUDGE_SIZE} px (area)",
                    "device": backend.device, "dtype": backend.dtype}
    else:
        import torch

        from .device import torch_dtype

        size = backend.model.params.native_size
        results = run_eval(backend.model, eval_scenes(seen, held_out), list(range(seeds)), frames=frames,
                           steps=preset.steps, guidance=preset.guidance, sampler=preset.sampler,
                           device=torch.device(backend.device), dtype=torch_dtype(backend.dtype), on_clip=on_clip)
        settings = {"mode": "fixed", **common, "size": f"{size}x{size}", "seen": seen, "held_out": held_out,
                    "seeds": seeds, "device": backend.device, "dtype": backend.dtype}
    data = report(results, settings)
    write_json_atomic(output, data)
    return f"{format_table(data['summary'])}\nreport: {output}"
