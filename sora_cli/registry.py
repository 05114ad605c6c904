"""Named models: one registry in code. Torch-free, so listing models and checking requests stays cheap."""

from __future__ import annotations

from dataclasses import dataclass, field

from .errors import UsageError
from .models.params import ModelParams


@dataclass(frozen=True)
class ModelSpec:
    id: str
    family: str  # the backend that runs it
    description: str
    native_size: tuple[int, int]  # (width, height) it is trained at
    fps: int
    tasks: tuple[str, ...]
    weights: str  # file name inside the package's weights/ folder
    params: ModelParams = field(default_factory=ModelParams)

    @property
    def temporal_factor(self) -> int:
        return self.params.vae.temporal_factor

    @property
    def frame_rule(self) -> str:
        return f"{self.temporal_factor}k+1"

    @property
    def size_multiple(self) -> int:
        return 16  # output sizes; the model renders at its native grid and resizes


MODELS: dict[str, ModelSpec] = {
    spec.id: spec
    for spec in [
        ModelSpec(
            id="sora-tiny",
            family="native",
            description="the embedded model: renders offline on a laptop CPU",
            native_size=(64, 64),
            fps=24,
            tasks=("t2v",),
            weights="sora-tiny.safetensors",
        ),
    ]
}


def get_spec(model_id: str) -> ModelSpec:
    if model_id not in MODELS:
        raise UsageError(f"unknown model '{model_id}'; valid: {', '.join(MODELS)}, or a path to a .safetensors file")
    return MODELS[model_id]
