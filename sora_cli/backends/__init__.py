"""One adapter per model family behind one interface; heavy imports happen inside each backend."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from importlib import import_module
from typing import Protocol

import numpy as np

from ..errors import UsageError

Progress = Callable[[str, int, int], None]  # (phase, done, total)


class Backend(Protocol):
    model_id: str  # registry id, or the checkpoint path it was loaded from
    device: str
    dtype: str
    compiled: bool
    notes: list[str]  # warnings for the user (e.g. untrained weights)

    def frame_count(self, frames: int) -> int:
        """The smallest count >= frames that the model's frame rule allows."""

    def fit_size(self, width: int, height: int) -> tuple[int, int, str | None]:
        """The size it will render and a notice when that differs from the request (snapped to the model's
        multiple); UsageError naming the rule when it cannot render near it."""

    def prompt_notes(self, prompt: str) -> list[str]:
        """Warnings about a prompt the model will not understand (it still renders)."""

    def check_task(self, image: str | None) -> None:
        """UsageError when the model cannot do the task (text-to-video without an image, i2v with one)."""

    def job_notes(self, job) -> list[str]:
        """Warnings about one job (e.g. its estimated memory and time on a CPU)."""

    def render(self, job, progress: Progress | None = None) -> Iterator[np.ndarray]:
        """Yields uint8 frames (f, H, W, 3), exactly job.frames in all."""


# family -> "module:class"; third-party families register the same way.
BACKENDS = {
    "native": "sora_cli.backends.native:NativeBackend",
    **{family: "sora_cli.backends.open_models:DiffusersBackend"
       for family in ("ltx-video", "wan", "cogvideox", "mochi", "hunyuanvideo")},
    "pyramid-flow": "sora_cli.backends.pyramid_flow:PyramidFlowBackend",
}


def model_family(model_ref: str) -> str:
    """The family of a registry id, a native .safetensors checkpoint or a diffusers-format folder."""
    from ..pyramid_flow.checkpoint import is_pyramid_folder
    from ..registry import get_spec, pipeline_family
    from ..weights import checkpoint_path, diffusers_folder, read_metadata

    path = checkpoint_path(model_ref)
    if path is None:
        return get_spec(model_ref).family
    if path.is_dir():
        if (index := diffusers_folder(path)) is not None:
            return pipeline_family(index["_class_name"])[0]
        if is_pyramid_folder(path):
            return "pyramid-flow"
        if not (path / "model.safetensors").is_file():
            raise UsageError(f"{path} is not a checkpoint: expected model_index.json (a diffusers folder), "
                             "causal_video_vae/ with diffusion_transformer_*/ (Pyramid Flow) "
                             "or model.safetensors (a sora native checkpoint)")
    return read_metadata(path)["family"]


# how a model runs, beyond device, dtype and compile (open models; the native engine takes the defaults only)
RUNTIME_OPTIONS = {"offload": "auto", "vae_tiling": None, "cache": "none", "cache_threshold": None}


def load_backend(model_ref: str, *, device: str, dtype: str, compile: bool | None, **options) -> Backend:
    family = model_family(model_ref)
    if family not in BACKENDS:
        raise UsageError(f"no backend for model family '{family}'; available: {', '.join(BACKENDS)}")
    module, cls = BACKENDS[family].split(":")
    return getattr(import_module(module), cls).load(model_ref, device=device, dtype=dtype, compile=compile,
                                                    **{**RUNTIME_OPTIONS, **options})


def load_image(path: str):
    """An image-to-video first frame as RGB, or one line naming the file that cannot be read."""
    from pathlib import Path

    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(Path(path).expanduser()) as image:
            return image.convert("RGB")
    except (OSError, UnidentifiedImageError) as exc:
        raise UsageError(f"cannot read the image {path}: {exc}") from None


def backend_for(preset) -> Backend:
    """The backend a resolved preset asks for: its model on its device, with its runtime options."""
    return load_backend(preset.model, device=preset.device, dtype=preset.dtype, compile=preset.compile,
                        **{name: getattr(preset, name) for name in RUNTIME_OPTIONS})
