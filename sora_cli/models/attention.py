"""The one attention function every block calls, and 3D rotary position embeddings."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
    """Multi-head attention over (B, heads, L, head_dim) tensors; `mask` is boolean, True = may attend."""
    return F.scaled_dot_product_attention(q, k, v, attn_mask=mask)


def rope_angles(
    grid: tuple[int, int, int], axes: tuple[int, int, int], theta: float, device: torch.device
) -> torch.Tensor:
    """Rotation angles for every (t, h, w) token of a grid: (T*H*W, sum(axes) / 2), row-major in (t, h, w)."""
    per_axis = []
    for size, dim in zip(grid, axes):
        if dim % 2:
            raise ValueError(f"each rotary axis needs an even size, got {axes}")
        freqs = theta ** (-torch.arange(0, dim, 2, device=device, dtype=torch.float64) / dim)
        per_axis.append(torch.arange(size, device=device, dtype=torch.float64)[:, None] * freqs)  # (size, dim/2)
    t, h, w = grid
    angles = torch.cat(
        [
            per_axis[0][:, None, None].expand(t, h, w, -1),
            per_axis[1][None, :, None].expand(t, h, w, -1),
            per_axis[2][None, None, :].expand(t, h, w, -1),
        ],
        dim=-1,
    )
    return angles.reshape(t * h * w, -1).float()


def apply_rope(x: torch.Tensor, angles: torch.Tensor) -> torch.Tensor:
    """Rotate consecutive channel pairs of x (B, heads, L, D) by angles (L, D/2)."""
    pairs = x.float().unflatten(-1, (-1, 2))  # (B, heads, L, D/2, 2)
    cos, sin = angles.cos(), angles.sin()
    real = pairs[..., 0] * cos - pairs[..., 1] * sin
    imag = pairs[..., 0] * sin + pairs[..., 1] * cos
    return torch.stack([real, imag], dim=-1).flatten(-2).type_as(x)
