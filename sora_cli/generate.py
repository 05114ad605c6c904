"""`sora generate`: settings layers -> one video file."""

from __future__ import annotations

import time
from dataclasses import replace
from pathlib import Path

from .conditions import load_storyboard, open_source, parse_keyframe
from .errors import UsageError
from .presets import Preset, resolve_preset
from .recipe import load_recipe
from .render import (
    RenderResult,
    check_output,
    check_prompt,
    check_request,
    default_output,
    make_job,
    new_seed,
    render_to_file,
)
from .settings import RECIPE_SETTINGS, check_setting
from .verbs import LOOP_OVERLAP, Verb, check_frames, check_strength, check_verb, from_record


def recipe_layer(path: Path) -> tuple[str, str | None, dict]:
    """`--from`: the prompt, preset and settings a recipe (or a video carrying one) was rendered with."""
    recipe = load_recipe(path)
    layer = {}
    for key, setting in RECIPE_SETTINGS.items():
        if key in recipe:
            try:
                layer[setting] = check_setting(setting, recipe[key])
            except ValueError as exc:
                raise UsageError(f"{path}: {exc}") from None
    return recipe["prompt"], recipe.get("preset"), layer


def check_flags(flags: dict) -> dict:
    """The settings given on the command line, checked; errors name the flag."""
    layer = {}
    for name, value in flags.items():
        try:
            layer[name] = check_setting(name, value)
        except ValueError as exc:
            raise UsageError(f"--{name}: {exc}") from None
    return layer


def resolve_settings(preset_ref: str | None, flags: dict, from_path: Path | None) -> tuple[str | None, Preset]:
    """preset < recipe (--from) < CLI flags. Returns the recipe's prompt (if any) and the final settings."""
    prompt, layer = None, {}
    if from_path is not None:
        prompt, recipe_preset, layer = recipe_layer(from_path)
        preset_ref = preset_ref or recipe_preset
    preset = resolve_preset(preset_ref or model_preset(flags.get("model")))
    return prompt, preset.with_overrides({**layer, **check_flags(flags)})


def model_preset(model: str | None) -> str:
    """With --model and no --preset, a registry model renders with its own preset (its published recipe), and
    so does a Pyramid Flow folder holding one variant (its hub layout says which)."""
    from .pyramid_flow.checkpoint import is_pyramid_folder, variants
    from .registry import MODELS

    if model in MODELS:
        return MODELS[model].preset
    folder = Path(model).expanduser() if model else None
    if folder is not None and is_pyramid_folder(folder) and len(held := variants(folder)) == 1:
        spec = MODELS.get(f"pyramid-flow-{held[0]}")
        return spec.preset if spec else "default"
    return "default"


def run_generate(
    prompt: str | None, *, flags: dict, preset_ref: str | None, from_path: Path | None, output: Path | None,
    overwrite: bool, progress, warn, contact_sheet: bool = False, keyframes: tuple[str, ...] = (),
    storyboard: Path | None = None, loop: bool = False, variations: int = 1,
) -> list[RenderResult]:
    """`sora generate`: a prompt (or a storyboard), optionally looped or through keyframes, `variations` times
    from consecutive seeds. Everything is checked before the model loads; `warn` gets notes for the user."""
    recipe_prompt, preset, verb = resolve_request(preset_ref, flags, from_path)
    if storyboard is not None:
        if prompt is not None:
            raise UsageError("a storyboard's shots carry the prompts: give --storyboard without PROMPT")
        if "frames" in flags:
            raise UsageError("a storyboard's shots give the video's length: give --storyboard without --frames")
        shots = tuple(load_storyboard(storyboard, preset.fps))
        verb = replace(verb, shots=shots)
        preset = preset.with_overrides({"frames": sum(s.frames for s in shots)})
    if verb.shots and prompt is None:
        prompt = verb.shots[0].prompt
    if keyframes:
        if preset.image is not None:
            raise UsageError("give the first frame as --keyframe IMAGE:0 instead of --image when using --keyframe")
        verb = replace(verb, keyframes=tuple(parse_keyframe(k) for k in keyframes))
    if loop:
        verb = replace(verb, loop=True)
    return render_request(prompt if prompt is not None else recipe_prompt, preset, verb, output, overwrite,
                          progress, warn, contact_sheet, variations)


def run_source_verb(
    verb_name: str, source: Path, prompt: str | None, *, flags: dict, preset_ref: str | None, output: Path | None,
    overwrite: bool, progress, warn, contact_sheet: bool = False, seconds: float | None = None,
    only_new: bool = False, strength: float | None = None,
) -> RenderResult:
    """`sora extend` and `sora remix`: a video from a source video, at the source's size and frame rate."""
    _, preset, _ = resolve_request(preset_ref, flags, None)
    preset, verb = source_verb(verb_name, open_source(source), preset, flags.get("frames"), seconds, only_new,
                               strength)
    return render_request(prompt, preset, verb, output, overwrite, progress, warn, contact_sheet)[0]


def source_verb(verb_name: str, source, preset: Preset, frames: int | None = None, seconds: float | None = None,
                only_new: bool = False, strength: float | None = None) -> tuple[Preset, Verb]:
    """The settings and Verb of an extension (`frames` or `seconds` new ones) or a remix (the source's length
    unless told) of an opened source video, at its frame rate."""
    verb = Verb(source=source)
    fps = max(1, round(source.fps))
    if seconds is not None:
        if frames is not None:
            raise UsageError("give the length as --seconds or --frames, not both")
        if not seconds > 0:
            raise UsageError(f"--seconds must be > 0, got {seconds:g}")
        frames = max(1, round(seconds * fps))
    if verb_name == "extend":
        verb = replace(verb, extend=True, only_new=only_new)
    else:
        verb = replace(verb, strength=check_strength(strength))
        frames = frames or source.frames
    return preset.with_overrides({"fps": fps, **({"frames": frames} if frames else {})}), verb


def resolve_request(preset_ref: str | None, flags: dict, from_path: Path | None) -> tuple[str | None, Preset, Verb]:
    """The settings, and the verb a recipe given with --from was rendered with."""
    recipe_prompt, preset = resolve_settings(preset_ref, flags, from_path)
    verb = from_record(load_recipe(from_path).get("verb"), from_path) if from_path is not None else Verb()
    return recipe_prompt, preset, verb


def render_request(prompt: str | None, preset: Preset, verb: Verb, output: Path | None, overwrite: bool, progress,
                   warn, contact_sheet: bool = False, variations: int = 1) -> list[RenderResult]:
    """Checks everything it can, loads the model once and renders `variations` videos (seeds seed, seed + 1...),
    each `<stem>-<seed><ext>` when there are several."""
    from .backends import backend_for

    if variations < 1:
        raise UsageError(f"--variations must be >= 1, got {variations}")
    prompt, preset = check_render(prompt, preset, verb)
    seeds = [preset.seed + i for i in range(variations)]
    output = output if output is not None else default_output(prompt, preset.seed)
    outputs = [output] if variations == 1 else [output.with_name(f"{output.stem}-{s}{output.suffix}") for s in seeds]
    for path in outputs:
        check_output(path, overwrite, contact_sheet)
    if preset.gpus > 1:  # worker processes, one per GPU, render each video together
        from .parallel import SplitTask, render_split

        return render_split([SplitTask(prompt, preset.with_overrides({"seed": s}), verb, path, contact_sheet)
                             for s, path in zip(seeds, outputs)], preset.gpus, progress, warn)
    started = time.perf_counter()
    backend = backend_for(preset)
    results = []
    for seed, path in zip(seeds, outputs):
        job, job_notes = verb_job(prompt, preset.with_overrides({"seed": seed}), backend, verb)
        if seed == seeds[0]:
            for note in [*backend.notes, *job_notes, *backend.prompt_notes(prompt)]:
                warn(note)
        results.append(render_to_file(backend, job, preset.with_overrides({"seed": seed}), path, progress,
                                      load_s=time.perf_counter() - started if not results else 0.0,
                                      contact_sheet=contact_sheet, warn=warn, verb=verb))
    return results


def check_render(prompt: str | None, preset: Preset, verb: Verb) -> tuple[str, Preset]:
    """What can be checked of one request before the model loads; returns the prompt and the settings with the
    seed drawn (when none was given) and a source video's size (snapped up to 16 px, restored by fit_to_verb)."""
    from .backends import model_family
    from .families import FAMILIES

    prompt = check_prompt(prompt)
    if preset.seed is None:
        preset = preset.with_overrides({"seed": new_seed()})
    if verb.source is not None:
        preset = preset.with_overrides({"width": _round_up(verb.source.width), "height": _round_up(verb.source.height)})
    check_verb(verb, FAMILIES[model_family(preset.model)], preset.model, preset.audio)
    check_request(preset, verb)
    check_frames(verb, preset.frames, preset.fps)
    return prompt, preset


def verb_job(prompt: str, preset: Preset, backend, verb: Verb):
    """The job (and its notes) a loaded backend renders for a checked request (check_render)."""
    job, notes = make_job(prompt, preset, backend, verb)
    return fit_to_verb(job, verb, backend), notes


def _round_up(value: int, multiple: int = 16) -> int:
    return -(-value // multiple) * multiple


def fit_to_verb(job, verb: Verb, backend):
    """An extension or remix renders at its source's exact size on the native engine (an open model at the size
    its multiple allows nearest to it); an extension makes one frame more (its first
    latent step continues the source's last), a loop LOOP_OVERLAP + 1 more (pipeline.loop_frames)."""
    if verb.source is not None and backend.family.name == "native":  # it resizes its output to any size
        job = replace(job, width=verb.source.width, height=verb.source.height)
    if verb.extend:  # the native engine continues latents; an open family regenerates the source's tail first
        extra = backend.family.extend_frames or 1
        job = replace(job, generated_frames=backend.frame_count(job.frames + extra))
    if verb.loop:
        job = replace(job, generated_frames=backend.frame_count(job.frames + LOOP_OVERLAP + 1))
    return job
