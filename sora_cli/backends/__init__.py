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

    def check_size(self, width: int, height: int) -> None:
        """Raises UsageError naming the rule when the model cannot render this size."""

    def prompt_notes(self, prompt: str) -> list[str]:
        """Warnings about a prompt the model will not understand (it still renders)."""

    def render(self, job, progress: Progress | None = None) -> Iterator[np.ndarray]:
        """Yields uint8 frames (f, H, W, 3), exactly job.frames in all."""


# family -> "module:class"; third-party families register the same way.
BACKENDS = {"native": "sora_cli.backends.native:NativeBackend"}


def load_backend(model_ref: str, *, device: str, dtype: str, compile: bool | None) -> Backend:
    from ..registry import get_spec
    from ..weights import checkpoint_path, read_metadata

    family = read_metadata(path)["family"] if (path := checkpoint_path(model_ref)) else get_spec(model_ref).family
    if family not in BACKENDS:
        raise UsageError(f"no backend for model family '{family}'; available: {', '.join(BACKENDS)}")
    module, cls = BACKENDS[family].split(":")
    return getattr(import_module(module), cls).load(model_ref, device=device, dtype=dtype, compile=compile)
