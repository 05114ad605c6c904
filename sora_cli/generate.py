"""`sora generate`: settings layers -> one video file."""

from __future__ import annotations

import time
from pathlib import Path

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
    overwrite: bool, progress, warn, contact_sheet: bool = False,
) -> RenderResult:
    """Validates everything it can before loading the model; `warn` gets notes for the user."""
    from .backends import backend_for

    recipe_prompt, preset = resolve_settings(preset_ref, flags, from_path)
    prompt = check_prompt(prompt if prompt is not None else recipe_prompt)
    if preset.seed is None:
        preset = preset.with_overrides({"seed": new_seed()})
    output = output if output is not None else default_output(prompt, preset.seed)
    check_output(output, overwrite, contact_sheet)
    check_request(preset)
    started = time.perf_counter()
    backend = backend_for(preset)
    job, job_notes = make_job(prompt, preset, backend)
    for note in [*backend.notes, *job_notes, *backend.prompt_notes(prompt)]:
        warn(note)
    return render_to_file(backend, job, preset, output, progress, load_s=time.perf_counter() - started,
                          contact_sheet=contact_sheet, warn=warn)
