"""Diffusion transformer over video latent patches (DiT with 3D RoPE, adaLN and text cross-attention)."""

from __future__ import annotations

import math

import torch
from einops import rearrange
from torch import nn

from .attention import apply_rope, attention, rope_angles
from .params import DiTParams


def timestep_embedding(t: torch.Tensor, dim: int, max_period: float = 10000.0) -> torch.Tensor:
    """Sinusoidal embedding of t in [0, 1] (scaled by 1000 as in DiT): (B,) -> (B, dim)."""
    half = dim // 2
    freqs = torch.exp(-math.log(max_period) * torch.arange(half, device=t.device, dtype=torch.float32) / half)
    args = 1000.0 * t.float()[:, None] * freqs[None]
    return torch.cat([torch.cos(args), torch.sin(args)], dim=-1)


def frame_position_features(h: int, w: int, device, bands: int = 4) -> torch.Tensor:
    """(h * w, 4 * bands) Fourier features of each token's place in the frame, in [0, 1) of height and width.

    RoPE only tells tokens how far apart they are; where the frame's edges are (the floor a shape bounces on, the
    edge it wraps around) needs an absolute position too. Fractions of the frame keep it valid at any grid size."""
    ys = (torch.arange(h, device=device, dtype=torch.float32) + 0.5) / h
    xs = (torch.arange(w, device=device, dtype=torch.float32) + 0.5) / w
    grid = torch.stack(torch.meshgrid(ys, xs, indexing="ij"), dim=-1).reshape(-1, 2)  # (h*w, 2)
    angles = 2 * math.pi * grid[:, :, None] * torch.arange(1, bands + 1, device=device, dtype=torch.float32)
    return torch.cat([angles.sin(), angles.cos()], dim=-1).reshape(h * w, -1)


def modulate(x: torch.Tensor, shift: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
    return x * (1 + scale) + shift


class SelfAttention(nn.Module):
    def __init__(self, width: int, heads: int):
        super().__init__()
        self.heads = heads
        self.qkv = nn.Linear(width, 3 * width)
        self.q_norm = nn.RMSNorm(width // heads, eps=1e-6)  # qk-norm keeps attention logits tame
        self.k_norm = nn.RMSNorm(width // heads, eps=1e-6)
        self.proj = nn.Linear(width, width)

    def forward(self, x: torch.Tensor, angles: torch.Tensor) -> torch.Tensor:
        q, k, v = rearrange(self.qkv(x), "b l (three h d) -> three b h l d", three=3, h=self.heads)
        q, k = apply_rope(self.q_norm(q), angles), apply_rope(self.k_norm(k), angles)
        return self.proj(rearrange(attention(q, k, v), "b h l d -> b l (h d)"))


class CrossAttention(nn.Module):
    def __init__(self, width: int, text_width: int, heads: int):
        super().__init__()
        self.heads = heads
        self.q = nn.Linear(width, width)
        self.kv = nn.Linear(text_width, 2 * width)
        self.q_norm = nn.RMSNorm(width // heads, eps=1e-6)
        self.k_norm = nn.RMSNorm(width // heads, eps=1e-6)
        self.proj = nn.Linear(width, width)

    def forward(self, x: torch.Tensor, text: torch.Tensor, text_mask: torch.Tensor) -> torch.Tensor:
        q = self.q_norm(rearrange(self.q(x), "b l (h d) -> b h l d", h=self.heads))
        k, v = rearrange(self.kv(text), "b s (two h d) -> two b h s d", two=2, h=self.heads)
        out = attention(q, self.k_norm(k), v, text_mask[:, None, None, :])  # mask: (B, 1, 1, S)
        return self.proj(rearrange(out, "b h l d -> b l (h d)"))


class DiTBlock(nn.Module):
    def __init__(self, p: DiTParams, text_width: int):
        super().__init__()
        hidden = int(p.width * p.mlp_ratio)
        self.norm1 = nn.LayerNorm(p.width, elementwise_affine=False, eps=1e-6)
        self.attn = SelfAttention(p.width, p.heads)
        self.norm2 = nn.LayerNorm(p.width, eps=1e-6)
        self.cross = CrossAttention(p.width, text_width, p.heads)
        self.norm3 = nn.LayerNorm(p.width, elementwise_affine=False, eps=1e-6)
        self.mlp = nn.Sequential(nn.Linear(p.width, hidden), nn.GELU(approximate="tanh"), nn.Linear(hidden, p.width))
        self.modulation = nn.Linear(p.width, 6 * p.width)

    def forward(self, x, c, text, text_mask, angles):
        # x: (B, L, W) video tokens; c: (B, W) timestep conditioning; text: (B, S, text_width)
        shift1, scale1, gate1, shift2, scale2, gate2 = self.modulation(c)[:, None].chunk(6, dim=-1)
        x = x + gate1 * self.attn(modulate(self.norm1(x), shift1, scale1), angles)
        x = x + self.cross(self.norm2(x), text, text_mask)
        return x + gate2 * self.mlp(modulate(self.norm3(x), shift2, scale2))


class DiT(nn.Module):
    """Predicts the flow velocity of a noisy latent video given the noise level and text states."""

    def __init__(self, p: DiTParams, latent_channels: int, text_width: int):
        super().__init__()
        if sum(p.rope_axes) != p.head_dim:
            raise ValueError(f"rope_axes {p.rope_axes} must sum to head_dim {p.head_dim}")
        self.p = p
        self.latent_channels = latent_channels
        patch_dim = latent_channels * math.prod(p.patch)
        # input per position: the noisy latent, the context latent (zeros where none) and a context flag
        self.patch_in = nn.Linear((2 * latent_channels + 1) * math.prod(p.patch), p.width)
        self.time_mlp = nn.Sequential(nn.Linear(256, p.width), nn.SiLU(), nn.Linear(p.width, p.width))
        self.text_pool = nn.Linear(text_width, p.width)  # the whole prompt, into every block's adaLN
        self.position = nn.Linear(16, p.width)  # absolute place in the frame (frame_position_features)
        self.text_in = nn.Linear(text_width, text_width)
        self.blocks = nn.ModuleList(DiTBlock(p, text_width) for _ in range(p.depth))
        self.norm_out = nn.LayerNorm(p.width, elementwise_affine=False, eps=1e-6)
        self.modulation_out = nn.Linear(p.width, 2 * p.width)
        self.patch_out = nn.Linear(p.width, patch_dim)

    def forward(
        self,
        x: torch.Tensor,
        sigma: torch.Tensor,
        text: torch.Tensor,
        text_mask: torch.Tensor,
        context: torch.Tensor | None = None,
        context_mask: torch.Tensor | None = None,
    ):
        # x: (B, C, T, H, W) latents; sigma: (B,) noise level in [0, 1]; text_mask: (B, S) bool;
        # context: (B, C, T, H, W) clean latents where context_mask (B, T) is True, ignored elsewhere
        pt, ph, pw = self.p.patch
        b, _, t, h, w = x.shape
        if t % pt or h % ph or w % pw:
            raise ValueError(f"latent grid {(t, h, w)} is not divisible by the patch {self.p.patch}")
        grid = (t // pt, h // ph, w // pw)
        if context is None:
            flag = x.new_zeros(b, 1, t, h, w)
            context = torch.zeros_like(x)
        else:
            flag = context_mask.to(x.dtype)[:, None, :, None, None].expand(b, 1, t, h, w)
            context = context * flag
        x = torch.cat([x, context, flag], dim=1)
        tokens = rearrange(x, "b c (t pt) (h ph) (w pw) -> b (t h w) (c pt ph pw)", pt=pt, ph=ph, pw=pw)
        place = self.position(frame_position_features(grid[1], grid[2], x.device).to(tokens.dtype))  # (h*w, W)
        tokens = self.patch_in(tokens) + place.repeat(grid[0], 1)  # (B, L, W), rows run (t, h, w)
        weights = text_mask.to(text.dtype)[..., None]
        pooled = (text * weights).sum(1) / weights.sum(1).clamp(min=1)
        c = self.time_mlp(timestep_embedding(sigma, 256).to(tokens.dtype)) + self.text_pool(pooled)
        c = nn.functional.silu(c)
        text = self.text_in(text)
        angles = rope_angles(grid, self.p.rope_axes, self.p.rope_theta, x.device)  # (L, head_dim/2)
        for block in self.blocks:
            tokens = block(tokens, c, text, text_mask, angles)
        shift, scale = self.modulation_out(c)[:, None].chunk(2, dim=-1)
        out = self.patch_out(modulate(self.norm_out(tokens), shift, scale))
        t, h, w = grid
        return rearrange(out, "b (t h w) (c pt ph pw) -> b c (t pt) (h ph) (w pw)", t=t, h=h, w=w, pt=pt, ph=ph, pw=pw)
