"""Architecture hyper-parameters as frozen dataclasses (no torch import: the CLI lists them cheaply)."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field


@dataclass(frozen=True)
class TextParams:
    """OpenCLIP text transformer; the tokenizer (49408 BPE tokens) ships inside open-clip-torch."""

    vocab_size: int = 49408
    context_length: int = 32  # prompts in this tool are short; 77 would only add padding
    width: int = 64
    heads: int = 4
    layers: int = 2


@dataclass(frozen=True)
class VAEParams:
    """Causal video autoencoder: 8x in space, 4x in time; F = 4 * (T - 1) + 1 frames for T latents."""

    latent_channels: int = 16
    base_channels: int = 32
    spatial_levels: int = 3  # each level halves height and width
    temporal_factor: int = 4
    latent_shift: float = 0.0  # latent normalisation belongs to the VAE wrapper
    latent_scale: float = 1.0

    @property
    def spatial_factor(self) -> int:
        return 2**self.spatial_levels


@dataclass(frozen=True)
class DiTParams:
    """Diffusion transformer over (1, 2, 2) latent patches with 3D RoPE, adaLN and text cross-attention."""

    width: int = 128
    depth: int = 4
    heads: int = 4
    mlp_ratio: float = 4.0
    patch: tuple[int, int, int] = (1, 2, 2)  # (t, h, w)
    rope_axes: tuple[int, int, int] = (8, 12, 12)  # rotary dims per axis; sums to head_dim
    rope_theta: float = 10000.0

    @property
    def head_dim(self) -> int:
        return self.width // self.heads


@dataclass(frozen=True)
class ModelParams:
    """One whole native model: text tower, VAE and denoiser."""

    text: TextParams = field(default_factory=TextParams)
    vae: VAEParams = field(default_factory=VAEParams)
    dit: DiTParams = field(default_factory=DiTParams)

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> ModelParams:
        def build(kind, values):
            known = {f for f in kind.__dataclass_fields__}
            unknown = set(values) - known
            if unknown:
                raise ValueError(f"unknown {kind.__name__} keys {sorted(unknown)}; valid: {sorted(known)}")
            return kind(**{k: tuple(v) if isinstance(v, list) else v for k, v in values.items()})

        return cls(
            text=build(TextParams, data.get("text", {})),
            vae=build(VAEParams, data.get("vae", {})),
            dit=build(DiTParams, data.get("dit", {})),
        )
