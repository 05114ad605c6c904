"""Architecture hyper-parameters as frozen dataclasses (no torch import: the CLI lists them cheaply)."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field


@dataclass(frozen=True)
class TextParams:
    """CLIP-style causal text transformer over OpenCLIP's 49408 BPE tokens (the vocabulary ships in open-clip)."""

    vocab_size: int = 49408
    context_length: int = 32  # prompts in this tool are short; 77 would only add padding
    width: int = 64
    heads: int = 4
    layers: int = 2


@dataclass(frozen=True)
class VAEParams:
    """Causal video autoencoder: 4x in time (frame groups packed into channels), 2**(levels-1) in space.

    F = 4 * (T - 1) + 1 frames for T latents. Time is mixed only at the coarsest level, where it is cheap.
    """

    latent_channels: int = 16
    channels: tuple[int, ...] = (32, 64, 128, 128)  # per level, full resolution first; each next one halves
    temporal_factor: int = 4
    latent_shift: float = 0.0  # latents are stored as (mean - shift) * scale: about unit variance for the DiT
    latent_scale: float = 1.0

    @property
    def spatial_factor(self) -> int:
        return 2 ** (len(self.channels) - 1)


@dataclass(frozen=True)
class DiTParams:
    """Diffusion transformer over latent patches with 3D RoPE, adaLN (time + pooled text) and cross-attention.

    It denoises `window` latent steps at a time; longer videos continue window by window, each new window
    conditioned on the last `context` latent steps of the one before (given as extra input channels).
    """

    width: int = 192
    depth: int = 6
    heads: int = 6
    mlp_ratio: float = 4.0
    patch: tuple[int, int, int] = (1, 2, 2)  # (t, h, w)
    rope_axes: tuple[int, int, int] = (8, 12, 12)  # rotary dims per axis; sums to head_dim
    rope_theta: float = 10000.0
    window: int = 9  # latent steps denoised together (33 frames)
    context: int = 4  # latent steps carried into the next window
    # latent steps of the first window settled before the rest: the video's start is drawn first, then the window
    # is drawn again from that start, so which way things move comes from the words (0: all at once)
    anchor: int = 0

    @property
    def head_dim(self) -> int:
        return self.width // self.heads


@dataclass(frozen=True)
class ModelParams:
    """One whole native model: text tower, VAE and denoiser."""

    text: TextParams = field(default_factory=TextParams)
    vae: VAEParams = field(default_factory=VAEParams)
    dit: DiTParams = field(default_factory=DiTParams)
    native_size: int = 64  # the shorter side it renders at; outputs are resized from there
    # frames it makes for each frame it delivers (it keeps every frame_stride-th): a model trained on the world at
    # that many times the frame rate, where everything moves that much less per latent step
    frame_stride: int = 1

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

        unknown = set(data) - {f for f in cls.__dataclass_fields__}
        if unknown:
            raise ValueError(f"unknown ModelParams keys {sorted(unknown)}")
        for name in ("native_size", "frame_stride"):  # whole frames and pixels: 0 or 2.5 would fail mid-render
            value = data.get(name, getattr(cls, name))
            if type(value) is not int or value < 1:
                raise ValueError(f"{name} must be a positive whole number, got {value!r}")
        return cls(
            text=build(TextParams, data.get("text", {})),
            vae=build(VAEParams, data.get("vae", {})),
            dit=build(DiTParams, data.get("dit", {})),
            native_size=data.get("native_size", cls.native_size),
            frame_stride=data.get("frame_stride", cls.frame_stride),
        )
