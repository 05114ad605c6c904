"""One adapter per model family behind one interface; heavy imports happen inside each backend."""

from __future__ import annotations

import gc
import logging
import sys
from collections.abc import Callable, Iterator
from importlib import import_module
from pathlib import Path
from typing import Protocol

import numpy as np

from ..errors import UsageError
from ..settings import ROW, SETTINGS

Progress = Callable[[str, int, int], None]  # (phase, done, total)
# torchao, which diffusers imports when it is installed, registers enums that torch warns about on every start
logging.getLogger("torch.utils._pytree").setLevel(logging.ERROR)


class Backend(Protocol):
    model_id: str  # registry id, or the checkpoint path it was loaded from
    device: str
    dtype: str
    compiled: bool
    notes: list[str]  # warnings for the user (e.g. untrained weights)

    def frame_count(self, frames: int) -> int:
        """The smallest count >= frames that the model's frame rule allows."""

    def fit_size(self, width: int, height: int, image: str | None = None) -> tuple[int, int, str | None]:
        """The size it will render and a notice when that differs from the request (snapped to the model's
        multiple, or chosen from the first frame `image` by a model that sizes the video itself); UsageError
        naming the rule when it cannot render near it."""

    def prompt_notes(self, prompt: str) -> list[str]:
        """Warnings about a prompt the model will not understand (it still renders)."""

    def check_task(self, image: str | None) -> None:
        """UsageError when the model cannot do the task (text-to-video without an image, i2v with one)."""

    def job_notes(self, job) -> list[str]:
        """Warnings about one job (e.g. its estimated memory and time on a CPU)."""

    def render(self, job, progress: Progress | None = None, verb=None) -> Iterator[np.ndarray]:
        """Yields uint8 frames (f, H, W, 3), exactly job.frames in all; `verb` (verbs.py, checked against the
        family's record before loading) conditions them, None for plain generation."""


def model_family(model_ref: str) -> str:
    """The family of a registry id, a native .safetensors checkpoint or a diffusers-format folder."""
    from ..families import pipeline_family
    from ..pyramid_flow.checkpoint import is_pyramid_folder
    from ..registry import get_spec
    from ..weights import checkpoint_path, diffusers_folder, read_metadata

    if model_ref.lower().endswith(".gguf"):
        raise UsageError(f"{Path(model_ref).name} holds a transformer alone: give the model it belongs to with "
                         f"--model (an id or a diffusers folder) and this file as --transformer {model_ref}")
    path = checkpoint_path(model_ref)
    if path is None:
        return get_spec(model_ref).family
    if path.is_dir():
        if (index := diffusers_folder(path)) is not None:
            return pipeline_family(index["_class_name"])[0].name
        if is_pyramid_folder(path):
            return "pyramid-flow"
        if not (path / "model.safetensors").is_file():
            raise UsageError(f"{path} is not a checkpoint: expected model_index.json (a diffusers folder), "
                             "causal_video_vae/ with diffusion_transformer_*/ (Pyramid Flow) "
                             "or model.safetensors (a sora native checkpoint)")
    return read_metadata(path)["family"]


# how a model loads and runs, beyond device, dtype and compile: the settings no single video may change
LOAD_OPTIONS = tuple(n for n, s in SETTINGS.items() if ROW not in s.where and not s.universal)


def load_backend(model_ref: str, *, device: str, dtype: str, compile: bool | None, **options) -> Backend:
    """The family's backend with the model loaded; an option the family does not honour is refused first."""
    from ..families import get_family
    from ..registry import check_options

    family = get_family(model_family(model_ref))
    options = {**{n: SETTINGS[n].default for n in LOAD_OPTIONS}, **options}
    check_options(options, family, model_ref)
    module, cls = family.backend.split(":")
    return _backend_class(module, cls).load(model_ref, device=device, dtype=dtype, compile=compile, **options)


def _backend_class(module: str, name: str):
    """The backend class; when this is what first loads torch, the collector is kept off while it does: what it
    builds lives as long as the process, and three full collections would only walk it (~0.15 s of every render)."""
    if "torch" in sys.modules:
        return getattr(import_module(module), name)
    gc.disable()
    try:
        return getattr(import_module(module), name)
    finally:
        gc.freeze()  # out of every later collection's way too
        gc.enable()


def load_image(path: str):
    """An image-to-video first frame as RGB, or one line naming the file that cannot be read."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(Path(path).expanduser()) as image:
            return image.convert("RGB")
    except (OSError, UnidentifiedImageError) as exc:
        raise UsageError(f"cannot read the image {path}: {exc}") from None


def backend_for(preset) -> Backend:
    """The backend a resolved preset asks for: its model on its device, with its runtime options."""
    return load_backend(preset.model, device=preset.device, dtype=preset.dtype, compile=preset.compile,
                        **{name: getattr(preset, name) for name in LOAD_OPTIONS})
