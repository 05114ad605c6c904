"""The native text-to-video model: OpenCLIP text tower + causal video VAE + DiT, built from ModelParams."""

from __future__ import annotations

import torch
from torch import nn

from .dit import DiT
from .params import ModelParams
from .text import TextEncoder, tokenize
from .vae import VideoVAE


class NativeVideoModel(nn.Module):
    def __init__(self, params: ModelParams):
        super().__init__()
        self.params = params
        self.text = TextEncoder(params.text)
        self.vae = VideoVAE(params.vae)
        self.dit = DiT(params.dit, params.vae.latent_channels, params.text.width)

    @property
    def spatial_multiple(self) -> int:
        """Width and height must be multiples of this (VAE downsampling times the patch)."""
        return self.params.vae.spatial_factor * self.params.dit.patch[1]

    @property
    def temporal_factor(self) -> int:
        return self.params.vae.temporal_factor

    def frame_count(self, frames: int) -> int:
        """The frames it makes to deliver `frames`: frame_stride for each after the first, rounded up to the VAE's
        4k+1 rule."""
        made = self.params.frame_stride * (frames - 1) + 1
        return made + (-(made - 1)) % self.temporal_factor

    def encode_text(self, prompts: list[str]) -> tuple[torch.Tensor, torch.Tensor]:
        device = self.text.token_embedding.weight.device
        tokens = tokenize(prompts, self.params.text.context_length).to(device)
        return self.text(tokens)

    def native_grid(self, width: int, height: int) -> tuple[int, int]:
        """(width, height) the model renders at for this output size: the shorter side at its native size,
        the aspect kept as nearly as the spatial multiple allows."""
        m, scale = self.spatial_multiple, self.params.native_size / min(width, height)
        return max(m, round(width * scale / m) * m), max(m, round(height * scale / m) * m)

    def latent_shape(self, frames: int, height: int, width: int) -> tuple[int, int, int, int]:
        s = self.params.vae.spatial_factor
        return (self.params.vae.latent_channels, self.vae.latent_frames(frames), height // s, width // s)


def build_model(params: ModelParams, device: torch.device | str = "meta") -> NativeVideoModel:
    """Builds the model; on the meta device no memory is allocated until weights are assigned."""
    with torch.device(device):
        return NativeVideoModel(params)


def randomize(model: NativeVideoModel, seed: int, std: float = 0.02) -> NativeVideoModel:
    """Fills every weight with seeded noise (norm gains stay 1): an untrained but fully active model."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if p.ndim == 1 and ("norm" in name or "ln_" in name) and name.endswith("weight"):
                p.fill_(1.0)
            else:
                p.copy_(torch.randn(p.shape, generator=g) * std)
    return model
