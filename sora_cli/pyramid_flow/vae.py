"""Pyramid Flow's causal video VAE: 8x in time and space, 16 latent channels, written for sora.

Every 3D convolution is causal in time: the first chunk is padded in front with zeros, and a later chunk starts
from the last input frames of the one before (kept per convolution), so decoding a clip chunk by chunk gives
exactly the frames of decoding it whole. Norms and attention work frame by frame, which keeps that true.
Parameter names follow the published checkpoint (causal_video_vae/), so its weights load strictly.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator

import torch
import torch.nn.functional as F
from einops import rearrange
from torch import nn


class CausalConv3d(nn.Module):
    def __init__(self, cin: int, cout: int, kernel: int, stride: tuple[int, int, int] = (1, 1, 1)):
        super().__init__()
        self.time_pad, self.space_pad = kernel - 1, kernel // 2
        self.keep = max(0, self.time_pad - stride[0] + 1)  # input frames the next chunk needs from this one
        self.conv = nn.Conv3d(cin, cout, kernel, stride=stride)
        self.cache: torch.Tensor | None = None

    def forward(self, x: torch.Tensor, first: bool = True, stream: bool = False) -> torch.Tensor:
        p = self.space_pad
        x = F.pad(x, (p, p, p, p, 0, 0))
        if first or not stream:
            x = F.pad(x, (0, 0, 0, 0, self.time_pad, 0))
        elif self.keep:
            x = torch.cat([self.cache[:, :, -self.keep:], x], dim=2)
        if stream:
            self.cache = x[:, :, -2:]
        return self.conv(x)


class FrameGroupNorm(nn.GroupNorm):
    """GroupNorm over each frame on its own (statistics never mix frames, so chunks decode like the whole)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        t = x.shape[2]
        return rearrange(super().forward(rearrange(x, "b c t h w -> (b t) c h w")), "(b t) c h w -> b c t h w", t=t)


class ResnetBlock(nn.Module):
    def __init__(self, cin: int, cout: int, groups: int):
        super().__init__()
        self.norm1 = FrameGroupNorm(groups, cin, eps=1e-6)
        self.conv1 = CausalConv3d(cin, cout, 3)
        self.norm2 = FrameGroupNorm(groups, cout, eps=1e-6)
        self.conv2 = CausalConv3d(cout, cout, 3)
        self.conv_shortcut = CausalConv3d(cin, cout, 1) if cin != cout else None

    def forward(self, x, first, stream):
        h = self.conv1(F.silu(self.norm1(x)), first, stream)
        h = self.conv2(F.silu(self.norm2(h)), first, stream)
        if self.conv_shortcut is not None:
            x = self.conv_shortcut(x, first, stream)
        return x + h


def frame_attention(channels: int, groups: int) -> nn.Module:
    """Self-attention over the pixels of a frame (diffusers' Attention, as the checkpoint was saved from it)."""
    from diffusers.models.attention_processor import Attention

    return Attention(channels, heads=1, dim_head=channels, eps=1e-6, norm_num_groups=groups,
                     residual_connection=True, bias=True, upcast_softmax=True, _from_deprecated_attn_block=True)


class MidBlock(nn.Module):
    def __init__(self, channels: int, groups: int):
        super().__init__()
        self.resnets = nn.ModuleList([ResnetBlock(channels, channels, groups) for _ in range(2)])
        self.attentions = nn.ModuleList([frame_attention(channels, groups)])

    def forward(self, x, first, stream):
        x = self.resnets[0](x, first, stream)
        t = x.shape[2]
        x = self.attentions[0](rearrange(x, "b c t h w -> (b t) c h w"))  # each frame on its own
        return self.resnets[1](rearrange(x, "(b t) c h w -> b c t h w", t=t), first, stream)


class Resample(nn.Module):
    """A strided causal convolution (down) or a convolution followed by depth-to-space/time (up)."""

    def __init__(self, channels: int, mode: str):
        super().__init__()
        self.mode = mode
        stride = {"down_space": (1, 2, 2), "down_time": (2, 1, 1)}.get(mode, (1, 1, 1))
        factor = {"up_space": 4, "up_time": 2}.get(mode, 1)
        self.conv = CausalConv3d(channels, channels * factor, 3, stride=stride)

    def forward(self, x, first, stream):
        x = self.conv(x, first, stream)
        if self.mode == "up_space":
            x = rearrange(x, "b (c p q) t h w -> b c t (h p) (w q)", p=2, q=2)
        elif self.mode == "up_time":
            x = rearrange(x, "b (c p) t h w -> b c (t p) h w", p=2)
            if first:  # the first latent frame stands for one frame, not two
                x = x[:, :, 1:]
        return x


class Stage(nn.Module):
    """One encoder down block or decoder up block: resnets, then the spatial and temporal resampling."""

    def __init__(self, cin: int, cout: int, layers: int, groups: int, space: bool, time: bool, up: bool):
        super().__init__()
        self.resnets = nn.ModuleList([ResnetBlock(cin if i == 0 else cout, cout, groups) for i in range(layers)])
        kind = "up" if up else "down"
        spatial = nn.ModuleList([Resample(cout, f"{kind}_space")]) if space else None
        temporal = nn.ModuleList([Resample(cout, f"{kind}_time")]) if time else None
        if up:
            self.upsamplers, self.temporal_upsamplers = spatial, temporal
        else:
            self.downsamplers, self.temporal_downsamplers = spatial, temporal
        self.resamplers = [m for m in (spatial, temporal) if m is not None]

    def forward(self, x, first, stream):
        for resnet in self.resnets:
            x = resnet(x, first, stream)
        for resampler in self.resamplers:
            x = resampler[0](x, first, stream)
        return x


class Encoder(nn.Module):
    def __init__(self, cfg: dict):
        super().__init__()
        channels, groups = cfg["encoder_block_out_channels"], cfg["encoder_norm_num_groups"]
        self.conv_in = CausalConv3d(cfg["encoder_in_channels"], channels[0], 3)
        self.down_blocks = nn.ModuleList([
            Stage(channels[max(0, i - 1)], channels[i], cfg["encoder_layers_per_block"][i], groups,
                  cfg["encoder_spatial_down_sample"][i], cfg["encoder_temporal_down_sample"][i], up=False)
            for i in range(len(channels))])
        self.mid_block = MidBlock(channels[-1], groups)
        self.conv_norm_out = FrameGroupNorm(groups, channels[-1], eps=1e-6)
        self.conv_out = CausalConv3d(channels[-1], 2 * cfg["encoder_out_channels"], 3)

    def forward(self, x, first=True, stream=False):
        x = self.conv_in(x, first, stream)
        for block in self.down_blocks:
            x = block(x, first, stream)
        x = self.mid_block(x, first, stream)
        return self.conv_out(F.silu(self.conv_norm_out(x)), first, stream)


class Decoder(nn.Module):
    def __init__(self, cfg: dict):
        super().__init__()
        channels, groups = list(reversed(cfg["decoder_block_out_channels"])), cfg["decoder_norm_num_groups"]
        self.conv_in = CausalConv3d(cfg["decoder_in_channels"], channels[0], 3)
        self.mid_block = MidBlock(channels[0], groups)
        self.up_blocks = nn.ModuleList([
            Stage(channels[max(0, i - 1)], channels[i], cfg["decoder_layers_per_block"][i], groups,
                  cfg["decoder_spatial_up_sample"][i], cfg["decoder_temporal_up_sample"][i], up=True)
            for i in range(len(channels))])
        self.conv_norm_out = FrameGroupNorm(groups, channels[-1], eps=1e-6)
        self.conv_out = CausalConv3d(channels[-1], cfg["decoder_out_channels"], 3)

    def forward(self, x, first=True, stream=False):
        x = self.mid_block(self.conv_in(x, first, stream), first, stream)
        for block in self.up_blocks:
            x = block(x, first, stream)
        return self.conv_out(F.silu(self.conv_norm_out(x)), first, stream)


DEFAULTS = {  # the reference class's defaults; a checkpoint's config.json overrides them
    "encoder_in_channels": 3, "encoder_out_channels": 4, "encoder_layers_per_block": (2, 2, 2, 2),
    "encoder_block_out_channels": (128, 256, 512, 512), "encoder_spatial_down_sample": (True, True, True, False),
    "encoder_temporal_down_sample": (True, True, True, False), "encoder_norm_num_groups": 32,
    "decoder_in_channels": 4, "decoder_out_channels": 3, "decoder_layers_per_block": (3, 3, 3, 3),
    "decoder_block_out_channels": (128, 256, 512, 512), "decoder_spatial_up_sample": (True, True, True, False),
    "decoder_temporal_up_sample": (True, True, True, False), "decoder_norm_num_groups": 32,
}


class CausalVideoVAE(nn.Module):
    scale = 8  # pixels per latent, in space and in time

    def __init__(self, config: dict):
        super().__init__()
        cfg = {**DEFAULTS, **{k: v for k, v in config.items() if k in DEFAULTS}}
        self.encoder, self.decoder = Encoder(cfg), Decoder(cfg)
        latent = cfg["encoder_out_channels"]
        self.quant_conv = CausalConv3d(2 * latent, 2 * latent, 1)
        self.post_quant_conv = CausalConv3d(latent, latent, 1)
        self.latent_channels = latent

    # ---- encode ---------------------------------------------------------------------------------------------
    def moments(self, pixels: torch.Tensor) -> torch.Tensor:
        """Mean and log-variance (stacked on channels) of a clip in [-1, 1] with 8k+1 frames."""
        return self.quant_conv(self.encoder(pixels))

    def encode(self, pixels: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        """A sample of the posterior, as the reference conditions on it."""
        mean, logvar = self.moments(pixels).chunk(2, dim=1)
        std = torch.exp(0.5 * logvar.clamp(-30.0, 20.0))
        noise = torch.randn(mean.shape, generator=generator, dtype=mean.dtype, device="cpu").to(mean.device)
        return mean + std * noise

    # ---- decode ---------------------------------------------------------------------------------------------
    def decode(self, z: torch.Tensor) -> torch.Tensor:
        """The whole clip at once: T latent frames -> (T-1)*8+1 frames in [-1, 1] (before clamping)."""
        return self.decoder(self.post_quant_conv(z))

    def decode_chunks(self, z: torch.Tensor, window: int = 1, tile: int | None = None) -> Iterator[torch.Tensor]:
        """The same frames, a few latent frames at a time (the first chunk holds window+1, as the reference
        chunks), so memory stays flat however long the clip; `tile` as in stream_decode."""
        bounds = [0, min(window + 1, z.shape[2])]
        while bounds[-1] < z.shape[2]:
            bounds.append(min(bounds[-1] + window, z.shape[2]))
        return self.stream_decode((z[:, :, a:b] for a, b in zip(bounds, bounds[1:])), tile)

    def stream_decode(self, chunks: Iterable[torch.Tensor], tile: int | None = None) -> Iterator[torch.Tensor]:
        """Consecutive latent chunks, as they arrive, -> their frames; where the chunks break does not change
        the frames. With `tile` (pixels) each chunk is decoded in overlapping spatial tiles."""
        tiles = None
        for i, z in enumerate(chunks):
            if tile:
                tiles = tiles or Tiles(self, z, tile)
                yield tiles.decode(z, i == 0)
            else:
                yield self.decoder(self.post_quant_conv(z, i == 0, True), i == 0, True)


class Tiles:
    """Overlapping spatial tiles (a quarter of a tile overlaps), blended linearly; each tile keeps its own
    causal caches between chunks."""

    def __init__(self, vae: CausalVideoVAE, z: torch.Tensor, tile: int):
        self.vae, self.tile = vae, tile
        self.latent_tile = tile // vae.scale
        self.stride = int(self.latent_tile * 3 / 4)
        self.blend = tile // 4
        self.keep = tile - self.blend
        self.rows = range(0, z.shape[3], self.stride)
        self.cols = range(0, z.shape[4], self.stride)
        self.convs = [m for m in vae.modules() if isinstance(m, CausalConv3d)]
        self.caches: dict[tuple[int, int], list] = {}

    def decode(self, chunk: torch.Tensor, first: bool) -> torch.Tensor:
        n = self.latent_tile
        decoded = []
        for i in self.rows:
            row = []
            for j in self.cols:
                if not first:
                    for conv, cache in zip(self.convs, self.caches[i, j]):
                        conv.cache = cache
                part = chunk[:, :, :, i:i + n, j:j + n]
                row.append(self.vae.decoder(self.vae.post_quant_conv(part, first, True), first, True))
                self.caches[i, j] = [conv.cache for conv in self.convs]
            decoded.append(row)
        return self._blend(decoded)

    def _blend(self, tiles: list[list[torch.Tensor]]) -> torch.Tensor:
        rows = []
        for i, row in enumerate(tiles):
            out = []
            for j, tile in enumerate(row):  # blended in place: the next row and column blend with the result
                if i > 0:
                    _blend(tiles[i - 1][j], tile, self.blend, dim=3)
                if j > 0:
                    _blend(row[j - 1], tile, self.blend, dim=4)
                out.append(tile[:, :, :, :self.keep, :self.keep])
            rows.append(torch.cat(out, dim=4))
        return torch.cat(rows, dim=3)


def _blend(before: torch.Tensor, tile: torch.Tensor, extent: int, dim: int) -> None:
    """Fades `tile`'s leading edge in over `before`'s trailing edge along `dim`, in place."""
    extent = min(before.shape[dim], tile.shape[dim], extent)
    for k in range(extent):
        w = k / extent
        mixed = before.select(dim, before.shape[dim] - extent + k) * (1 - w) + tile.select(dim, k) * w
        tile.select(dim, k).copy_(mixed)


def latent_frames(frames: int) -> int:
    """Latent frames that decode to at least `frames` frames ((T-1)*8+1)."""
    return 1 + math.ceil(max(0, frames - 1) / CausalVideoVAE.scale)
