"""Causal video autoencoder: 4x in time by packing frame groups into channels, 2**(levels-1) in space.

Time is only ever mixed by `CausalConv3d`, which looks back and never forward, and every norm is per position,
so latent i depends on frames <= 4i alone. Temporal kernels sit at the coarsest level only: there they cost
little and smooth the seams between frame groups; the finer levels are per-frame-group 2D convolutions.
Encoding and decoding run chunk by chunk in time: each causal conv keeps the last frames of its input in a
cache, so a chunked pass equals the whole pass while memory stays flat.
"""

from __future__ import annotations

from collections.abc import Iterator

import torch
import torch.nn.functional as F
from einops import rearrange
from torch import nn

from .params import VAEParams

Cache = dict  # CausalConv3d -> its last (kt - 1) input frames


class CausalConv3d(nn.Conv3d):
    """3D conv padded in front (zeros at the start, the previous chunk's frames after), never behind."""

    def __init__(self, cin: int, cout: int, kernel: tuple[int, int, int] = (3, 3, 3)):
        super().__init__(cin, cout, kernel, padding=(0, kernel[1] // 2, kernel[2] // 2))

    def forward(self, x: torch.Tensor, cache: Cache | None = None) -> torch.Tensor:
        kt = self.kernel_size[0]
        if kt > 1:
            prev = cache.get(self) if cache is not None else None
            if prev is None:
                prev = x.new_zeros(x.shape[0], x.shape[1], kt - 1, *x.shape[3:])
            x = torch.cat([prev, x], dim=2)
            if cache is not None:
                cache[self] = x[:, :, -(kt - 1) :]
        return super().forward(x)


class ChannelNorm(nn.Module):
    """RMS norm over channels at each position, for (B, C, T, H, W) or (B, C, H, W). Unlike GroupNorm it
    never mixes frames, and it keeps a flat colour's level (GroupNorm would normalise it away)."""

    def __init__(self, channels: int):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(channels))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        scale = self.weight.view(-1, *([1] * (x.ndim - 2)))
        return x * torch.rsqrt(x.pow(2).mean(1, keepdim=True) + 1e-6) * scale


class ResBlock(nn.Module):
    """Causal 3D residual block for the coarsest level, where time is mixed."""

    def __init__(self, channels: int):
        super().__init__()
        self.norm1, self.conv1 = ChannelNorm(channels), CausalConv3d(channels, channels)
        self.norm2, self.conv2 = ChannelNorm(channels), CausalConv3d(channels, channels)

    def forward(self, x: torch.Tensor, cache: Cache | None) -> torch.Tensor:
        h = self.conv1(F.silu(self.norm1(x)), cache)
        return x + self.conv2(F.silu(self.norm2(h)), cache)


class FrameResBlock(nn.Module):
    """2D residual block applied to each frame group alone, on (B*T, C, H, W): 2D convs run ~3x faster on a CPU."""

    def __init__(self, channels: int):
        super().__init__()
        self.norm1, self.conv1 = ChannelNorm(channels), nn.Conv2d(channels, channels, 3, padding=1)
        self.norm2, self.conv2 = ChannelNorm(channels), nn.Conv2d(channels, channels, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.conv1(F.silu(self.norm1(x)))
        return x + self.conv2(F.silu(self.norm2(h)))


def to_frames(x: torch.Tensor) -> torch.Tensor:
    return rearrange(x, "b c t h w -> (b t) c h w")


def to_video(x: torch.Tensor, batch: int) -> torch.Tensor:
    return rearrange(x, "(b t) c h w -> b c t h w", b=batch)


class Encoder(nn.Module):
    """Light by design: it runs on every training clip of the DiT stage, the decoder only once per video."""

    def __init__(self, p: VAEParams):
        super().__init__()
        ch = p.channels
        self.conv_in = nn.Conv2d(3 * p.temporal_factor, ch[0], 3, padding=1)
        # residual blocks only from 1/4 resolution down: at the two finest levels they would cost the most
        self.blocks = nn.ModuleList(FrameResBlock(ch[i]) if i >= 2 else nn.Identity() for i in range(len(ch) - 1))
        self.downs = nn.ModuleList(nn.Conv2d(ch[i], ch[i + 1], 3, stride=2, padding=1) for i in range(len(ch) - 1))
        self.mid = ResBlock(ch[-1])
        self.norm_out = ChannelNorm(ch[-1])
        self.conv_out = CausalConv3d(ch[-1], p.latent_channels)

    def forward(self, x: torch.Tensor, cache: Cache | None = None) -> torch.Tensor:
        b = x.shape[0]
        x = self.conv_in(to_frames(x))  # x: (B, 3k, T, H, W), k frames packed per latent step
        for block, down in zip(self.blocks, self.downs):
            x = down(F.silu(block(x)))
        x = self.mid(to_video(x, b), cache)
        return self.conv_out(F.silu(self.norm_out(x)), cache)  # (B, latent, T, H/s, W/s)


class Decoder(nn.Module):
    def __init__(self, p: VAEParams):
        super().__init__()
        ch = p.channels
        self.conv_in = CausalConv3d(p.latent_channels, ch[-1])
        self.mid = ResBlock(ch[-1])
        self.ups = nn.ModuleList(nn.Conv2d(ch[i + 1], ch[i], 3, padding=1) for i in reversed(range(len(ch) - 1)))
        self.blocks = nn.ModuleList(FrameResBlock(ch[i]) for i in reversed(range(len(ch) - 1)))
        self.norm_out = ChannelNorm(ch[0])
        self.conv_out = nn.Conv2d(ch[0], 3 * p.temporal_factor, 3, padding=1)

    def forward(self, z: torch.Tensor, cache: Cache | None = None) -> torch.Tensor:
        b = z.shape[0]
        x = to_frames(self.mid(self.conv_in(z, cache), cache))  # z: (B, latent, T, h, w)
        for up, block in zip(self.ups, self.blocks):
            x = block(up(F.interpolate(x, scale_factor=2, mode="nearest")))
        return to_video(self.conv_out(F.silu(self.norm_out(x))), b)  # (B, 3k, T, H, W)


class VideoVAE(nn.Module):
    """Frames in [-1, 1] <-> normalised latents. F = k * (T - 1) + 1 frames for T latent frames."""

    def __init__(self, p: VAEParams):
        super().__init__()
        self.p = p
        self.encoder = Encoder(p)
        self.decoder = Decoder(p)

    def latent_frames(self, frames: int) -> int:
        k = self.p.temporal_factor
        if frames < 1 or (frames - 1) % k:
            raise ValueError(f"the VAE takes {k}n+1 frames, got {frames}")
        return (frames - 1) // k + 1

    def encode_raw(self, video: torch.Tensor, chunk: int | None = None) -> torch.Tensor:
        """video: (B, 3, F, H, W) in [-1, 1] -> raw latents (B, C, T, H/s, W/s)."""
        k = self.p.temporal_factor
        total = self.latent_frames(video.shape[2])
        # The first frame stands alone: repeat it k-1 times in front so frames group evenly by k.
        video = torch.cat([video[:, :, :1].expand(-1, -1, k - 1, -1, -1), video], dim=2)
        packed = rearrange(video, "b c (t k) h w -> b (c k) t h w", k=k)
        cache: Cache = {}
        step = chunk or total
        return torch.cat([self.encoder(packed[:, :, i : i + step], cache) for i in range(0, total, step)], dim=2)

    def encode(self, video: torch.Tensor, chunk: int | None = None) -> torch.Tensor:
        """video -> normalised latents; `chunk` latent steps per pass (None: all)."""
        return (self.encode_raw(video, chunk) - self.p.latent_shift) * self.p.latent_scale

    def decode_raw(self, z: torch.Tensor) -> torch.Tensor:
        """Raw latents -> unclamped frames (B, 3, F, H, W): the training path."""
        k = self.p.temporal_factor
        out = rearrange(self.decoder(z), "b (c k) t h w -> b c (t k) h w", k=k)
        return out[:, :, k - 1 :]

    def stream_decoder(self) -> StreamDecoder:
        return StreamDecoder(self)

    def decode_stream(self, z: torch.Tensor, chunk: int = 4) -> Iterator[torch.Tensor]:
        """Yields frames (B, 3, f, H, W) in [-1, 1], `chunk` latent steps at a time."""
        decoder = self.stream_decoder()
        for i in range(0, z.shape[2], chunk):
            yield decoder(z[:, :, i : i + chunk])

    def decode(self, z: torch.Tensor, chunk: int | None = None) -> torch.Tensor:
        return torch.cat(list(self.decode_stream(z, chunk or z.shape[2])), dim=2)


class StreamDecoder:
    """Decodes consecutive latent chunks of one video as they arrive, carrying the causal caches between them."""

    def __init__(self, vae: VideoVAE):
        self.vae, self.cache, self.first = vae, {}, True

    def __call__(self, z: torch.Tensor) -> torch.Tensor:
        """Normalised latents (B, C, t, h, w) -> frames (B, 3, f, H, W) in [-1, 1]."""
        p = self.vae.p
        k = p.temporal_factor
        out = self.vae.decoder(z / p.latent_scale + p.latent_shift, self.cache)
        out = rearrange(out, "b (c k) t h w -> b c (t k) h w", k=k)
        if self.first:  # latent 0 is a single frame
            out, self.first = out[:, :, k - 1 :], False
        return out.clamp(-1, 1)
