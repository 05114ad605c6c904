"""Causal video autoencoder: 4x in time by packing frame groups into channels, 8x in space.

Time is only ever mixed by `CausalConv3d`, which looks back and never forward, and every norm is per position,
so latent i depends on frames <= 4i alone. Encoding and decoding run chunk by chunk in time: each causal conv keeps
the last frames of its input in a cache, so a chunked pass equals the whole pass while memory stays flat.
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
    """RMS norm over channels at each (t, h, w): unlike GroupNorm it never mixes frames."""

    def __init__(self, channels: int):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(channels))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.normalize(x, dim=1) * x.shape[1] ** 0.5 * self.weight[:, None, None, None]


class ResBlock(nn.Module):
    def __init__(self, cin: int, cout: int):
        super().__init__()
        self.norm1, self.conv1 = ChannelNorm(cin), CausalConv3d(cin, cout)
        self.norm2, self.conv2 = ChannelNorm(cout), CausalConv3d(cout, cout)
        self.skip = nn.Conv3d(cin, cout, 1) if cin != cout else nn.Identity()

    def forward(self, x: torch.Tensor, cache: Cache | None) -> torch.Tensor:
        h = self.conv1(F.silu(self.norm1(x)), cache)
        h = self.conv2(F.silu(self.norm2(h)), cache)
        return self.skip(x) + h


class Downsample(nn.Module):
    def __init__(self, cin: int, cout: int):
        super().__init__()
        self.conv = nn.Conv3d(cin, cout, (1, 3, 3), stride=(1, 2, 2), padding=(0, 1, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(x)


class Upsample(nn.Module):
    def __init__(self, cin: int, cout: int):
        super().__init__()
        self.conv = nn.Conv3d(cin, cout, (1, 3, 3), padding=(0, 1, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(F.interpolate(x, scale_factor=(1, 2, 2), mode="nearest"))


def level_channels(p: VAEParams) -> list[int]:
    return [p.base_channels * min(2**i, 4) for i in range(p.spatial_levels + 1)]


class Encoder(nn.Module):
    def __init__(self, p: VAEParams):
        super().__init__()
        ch = level_channels(p)
        self.conv_in = CausalConv3d(3 * p.temporal_factor, ch[0])
        self.blocks = nn.ModuleList(ResBlock(ch[i], ch[i]) for i in range(p.spatial_levels))
        self.downs = nn.ModuleList(Downsample(ch[i], ch[i + 1]) for i in range(p.spatial_levels))
        self.mid = ResBlock(ch[-1], ch[-1])
        self.norm_out = ChannelNorm(ch[-1])
        self.conv_out = CausalConv3d(ch[-1], 2 * p.latent_channels)

    def forward(self, x: torch.Tensor, cache: Cache | None = None) -> torch.Tensor:
        x = self.conv_in(x, cache)  # x: (B, 3k, T, H, W), k frames packed per latent step
        for block, down in zip(self.blocks, self.downs):
            x = down(block(x, cache))
        x = self.mid(x, cache)
        return self.conv_out(F.silu(self.norm_out(x)), cache)  # (B, 2 * latent, T, H/8, W/8)


class Decoder(nn.Module):
    def __init__(self, p: VAEParams):
        super().__init__()
        ch = level_channels(p)
        self.conv_in = CausalConv3d(p.latent_channels, ch[-1])
        self.mid = ResBlock(ch[-1], ch[-1])
        self.ups = nn.ModuleList(Upsample(ch[i + 1], ch[i]) for i in reversed(range(p.spatial_levels)))
        self.blocks = nn.ModuleList(ResBlock(ch[i], ch[i]) for i in reversed(range(p.spatial_levels)))
        self.norm_out = ChannelNorm(ch[0])
        self.conv_out = CausalConv3d(ch[0], 3 * p.temporal_factor)

    def forward(self, z: torch.Tensor, cache: Cache | None = None) -> torch.Tensor:
        x = self.mid(self.conv_in(z, cache), cache)  # z: (B, latent, T, h, w)
        for up, block in zip(self.ups, self.blocks):
            x = block(up(x), cache)
        return self.conv_out(F.silu(self.norm_out(x)), cache)  # (B, 3k, T, H, W)


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

    def encode(self, video: torch.Tensor, chunk: int | None = None) -> torch.Tensor:
        """video: (B, 3, F, H, W) -> latents (B, C, T, H/8, W/8); `chunk` latent steps per pass (None: all)."""
        k = self.p.temporal_factor
        total = self.latent_frames(video.shape[2])
        # The first frame stands alone: repeat it k-1 times in front so frames group evenly by k.
        video = torch.cat([video[:, :, :1].expand(-1, -1, k - 1, -1, -1), video], dim=2)
        packed = rearrange(video, "b c (t k) h w -> b (c k) t h w", k=k)
        cache: Cache = {}
        step = chunk or total
        moments = torch.cat([self.encoder(packed[:, :, i : i + step], cache) for i in range(0, total, step)], dim=2)
        mean = moments[:, : self.p.latent_channels]
        return (mean - self.p.latent_shift) * self.p.latent_scale

    def decode_stream(self, z: torch.Tensor, chunk: int = 4) -> Iterator[torch.Tensor]:
        """Yields frames (B, 3, f, H, W) in [-1, 1], `chunk` latent steps at a time."""
        k = self.p.temporal_factor
        z = z / self.p.latent_scale + self.p.latent_shift
        cache: Cache = {}
        for i in range(0, z.shape[2], chunk):
            out = rearrange(self.decoder(z[:, :, i : i + chunk], cache), "b (c k) t h w -> b c (t k) h w", k=k)
            yield (out[:, :, k - 1 :] if i == 0 else out).clamp(-1, 1)  # latent 0 is a single frame

    def decode(self, z: torch.Tensor, chunk: int | None = None) -> torch.Tensor:
        return torch.cat(list(self.decode_stream(z, chunk or z.shape[2])), dim=2)
