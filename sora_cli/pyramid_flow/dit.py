"""Pyramid Flow's DiT through diffusers' FluxTransformer2DModel.

The published weights load strictly into Flux with patch_size=1 and no guidance embedding; what makes it
Pyramid Flow is the input: latents packed channel-last per 2x2 patch, clean history at lower resolutions in
front of the current frame (their (h, w) positions interpolated onto the current grid with half-pixel centres),
and one boolean mask for text padding and temporal causality.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch
import torch.nn.functional as F
from einops import rearrange

PATCH = 2
ROPE_AXES = (16, 24, 24)  # time, height, width: what the published model was trained with


def flux_config(config: dict) -> dict:
    """diffusers Flux arguments for a diffusion_transformer_*/config.json of the reference's class."""
    return {"patch_size": 1, "in_channels": config["in_channels"], "num_layers": config["num_layers"],
            "num_single_layers": config["num_single_layers"], "attention_head_dim": config["attention_head_dim"],
            "num_attention_heads": config["num_attention_heads"],
            "joint_attention_dim": config["joint_attention_dim"],
            "pooled_projection_dim": config["pooled_projection_dim"], "guidance_embeds": False,
            "axes_dims_rope": ROPE_AXES}


def load_dit(folder: Path, dtype: torch.dtype):
    """The transformer from a diffusion_transformer_* folder (safetensors, one file or shards), loaded strictly."""
    from diffusers import FluxTransformer2DModel
    from safetensors.torch import load_file

    config = json.loads((folder / "config.json").read_text())
    with torch.device("meta"):
        model = FluxTransformer2DModel(**flux_config(config))
    state = {}
    for file in sorted(folder.glob("*.safetensors")):
        state.update(load_file(file))
    model.load_state_dict({k: v.to(dtype) for k, v in state.items()}, strict=True, assign=True)
    model.eval().requires_grad_(False)
    return model


def pack(latents: torch.Tensor) -> torch.Tensor:
    """(b, c, t, h, w) -> (b, t*h/2*w/2, 4c): each 2x2 patch's values, channel last."""
    return rearrange(latents, "b c t (h p) (w q) -> b (t h w) (p q c)", p=PATCH, q=PATCH)


def unpack(tokens: torch.Tensor, t: int, h: int, w: int) -> torch.Tensor:
    return rearrange(tokens, "b (t h w) (p q c) -> b c t (h p) (w q)", t=t, h=h // PATCH, w=w // PATCH,
                     p=PATCH, q=PATCH)


def _grid(size: int, target: int) -> torch.Tensor:
    """Positions of `size` cells laid over `target` cells (half-pixel centres)."""
    if size == target:
        return torch.arange(target, dtype=torch.float32)
    return F.interpolate(torch.arange(target, dtype=torch.float32)[None, None], size, mode="linear")[0, 0]


def positions(clips: list[torch.Tensor]) -> torch.Tensor:
    """(tokens, 3) rotary positions (time, h, w): clips follow each other in time; every clip's grid is laid
    over the last (current) clip's grid."""
    grid_h, grid_w = clips[-1].shape[-2] // PATCH, clips[-1].shape[-1] // PATCH
    ids, start = [], 0
    for clip in clips:
        t, h, w = clip.shape[2], clip.shape[3] // PATCH, clip.shape[4] // PATCH
        ids.append(torch.stack(torch.broadcast_tensors(
            torch.arange(start, start + t, dtype=torch.float32)[:, None, None],
            _grid(h, grid_h)[None, :, None], _grid(w, grid_w)[None, None, :]), dim=-1).reshape(-1, 3))
        start += t
    return torch.cat(ids)


def attention_mask(text_mask: torch.Tensor, frame_of_token: torch.Tensor) -> torch.Tensor:
    """(b, 1, n, n) boolean: real tokens see real tokens (padding sees padding), and no token sees a later frame
    (text counts as frame 0)."""
    b, n_text = text_mask.shape
    real = torch.cat([text_mask.bool(), torch.ones(b, frame_of_token.shape[0], dtype=torch.bool,
                                                   device=text_mask.device)], dim=1)
    frame = torch.cat([torch.zeros(n_text, device=frame_of_token.device), frame_of_token])
    same = real[:, :, None] == real[:, None, :]
    causal = frame[:, None] >= frame[None, :]
    return (same & causal.to(same.device))[:, None]


def velocity(model, clips: list[torch.Tensor], text: torch.Tensor, text_mask: torch.Tensor, pooled: torch.Tensor,
             timestep: torch.Tensor) -> torch.Tensor:
    """The DiT's prediction for the last clip; earlier clips are clean history (lowest resolution first)."""
    current = clips[-1]
    ids = positions(clips).to(current.device)
    tokens = torch.cat([pack(c) for c in clips], dim=1)
    mask = attention_mask(text_mask, ids[:, 0])
    out = model(hidden_states=tokens, encoder_hidden_states=text, pooled_projections=pooled,
                timestep=timestep.to(tokens.dtype) / 1000, img_ids=ids, txt_ids=ids.new_zeros(text.shape[1], 3),
                joint_attention_kwargs={"attention_mask": mask}, return_dict=False)[0]
    n = pack(current).shape[1]
    return unpack(out[:, -n:], current.shape[2], current.shape[3], current.shape[4])
