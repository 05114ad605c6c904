"""Decode a diffusers video VAE's latents a few frames at a time, so frames stream into the encoder.

Each VAE family already decodes in temporal pieces inside `decode` (a causal cache, or overlapping tiles that
are blended); these generators run the same pieces in the same order and yield each piece's frames as soon as
they are final, so the output equals the VAE's own whole-video decode while only a piece is held in memory.
Frames come out as (1, 3, f, H, W) in [-1, 1].
"""

from __future__ import annotations

from collections.abc import Iterator

import torch

PIECES = ("causal", "causal-attention", "frame-batches", "temporal-tiles", "whole")  # a family record's `decode`


def stream_decode(vae, latents: torch.Tensor, timestep=None, pieces: str = "whole") -> Iterator[torch.Tensor]:
    """`pieces` is the family record's `decode`, one of PIECES."""
    if pieces not in PIECES:
        raise ValueError(f"unknown decode pieces '{pieces}'; valid: {', '.join(PIECES)}")
    spatially_tiled = getattr(vae, "use_tiling", False)
    if pieces == "causal" and not spatially_tiled:
        yield from _wan(vae, latents)
    elif pieces == "causal-attention" and not spatially_tiled:
        yield from _causal_attention(vae, latents)
    elif pieces == "frame-batches" and not spatially_tiled:
        yield from _cogvideox(vae, latents)
    elif pieces == "temporal-tiles" and _temporal_tiles(vae, latents):
        yield from _blended_tiles(vae, latents, timestep)
    else:  # one piece: the VAE's own decode (spatial tiling, short clips, and Mochi: its framewise decode
        # does not reproduce the whole-clip one, differing by up to 0.75 on the [-1, 1] scale)
        kwargs = {"temb": timestep} if timestep is not None else {}
        yield vae.decode(latents, return_dict=False, **kwargs)[0]


def _wan(vae, z):
    """Wan's causal VAE: one latent frame at a time through a feature cache (1, then 4 frames each)."""
    vae.clear_cache()
    try:
        x = vae.post_quant_conv(z)
        for i in range(x.shape[2]):
            vae._conv_idx = [0]
            out = vae.decoder(x[:, :, i : i + 1], feat_cache=vae._feat_map, feat_idx=vae._conv_idx,
                              first_chunk=i == 0)
            if vae.config.patch_size is not None:
                from diffusers.models.autoencoders.autoencoder_kl_wan import unpatchify

                out = unpatchify(out, patch_size=vae.config.patch_size)
            yield out.clamp(-1.0, 1.0)
    finally:
        vae.clear_cache()


def _causal_attention(vae, z):
    """HunyuanVideo 1.5's strictly causal VAE, one latent frame at a time (1, then 4 frames each): every causal
    convolution keeps the last frames it saw, every attention block the keys and values of the frames before
    (its mask lets a frame see itself and everything earlier), and past the first frame every temporal
    upsampling meets only the frames its whole-clip pass doubles. The decoder's own modules run, their
    forwards swapped for the decode."""
    import types

    import torch.nn.functional as F
    from diffusers.models.autoencoders import autoencoder_kl_hunyuanvideo15 as hv

    tails, past, first = {}, {}, [True]

    def conv(self, x):
        pad = self.time_causal_padding  # (w, w, h, h, frames before, 0)
        if self in tails:
            x = torch.cat([tails[self], x], dim=2)
        else:  # the first frame, padded in time as its own forward pads it
            x = F.pad(x, (0, 0, 0, 0, pad[4], 0), mode=self.pad_mode)
        tails[self] = x[:, :, x.shape[2] - pad[4] :]
        return self.conv(F.pad(x, (*pad[:4], 0, 0), mode=self.pad_mode))

    def attention(self, x):
        identity, x = x, self.norm(x)
        b, c, f, h, w = x.shape
        q, k, v = (proj(x).reshape(b, c, f * h * w).permute(0, 2, 1).unsqueeze(1)
                   for proj in (self.to_q, self.to_k, self.to_v))
        if self in past:
            k, v = torch.cat([past[self][0], k], dim=2), torch.cat([past[self][1], v], dim=2)
        past[self] = k, v
        mask = None  # one frame sees itself and every earlier one: all of k
        if f > 1:
            frame = torch.arange(k.shape[2], device=x.device) // (h * w) - (k.shape[2] // (h * w) - f)
            mask = frame[None, :] <= frame[-f * h * w :, None]
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=mask)
        return self.proj_out(out.squeeze(1).reshape(b, f, h, w, c).permute(0, 4, 1, 2, 3)) + identity

    def upsample(self, x):
        if first[0] or not self.add_temporal_upsample:
            return type(self).forward(self, x)
        h = self._dcae_upsample_rearrange(self.conv(x), r1=2, r2=2, r3=2)
        return h + self._dcae_upsample_rearrange(x, r1=2, r2=2, r3=2).repeat_interleave(self.repeats, dim=1)

    swaps = {hv.HunyuanVideo15CausalConv3d: conv, hv.HunyuanVideo15AttnBlock: attention,
             hv.HunyuanVideo15Upsample: upsample}
    patched = [m for m in vae.decoder.modules() if type(m) in swaps]
    for module in patched:
        module.forward = types.MethodType(swaps[type(module)], module)
    try:
        for i in range(z.shape[2]):
            yield vae.decoder(z[:, :, i : i + 1])
            first[0] = False
    finally:
        for module in patched:
            del module.forward


def _cogvideox(vae, z):
    """CogVideoX: batches of latent frames through a convolution cache, the first batch taking the remainder."""
    size = vae.num_latent_frames_batch_size
    frames = z.shape[2]
    batches, remainder = max(frames // size, 1), frames % size
    cache = None
    for i in range(batches):
        start = size * i + (0 if i == 0 else remainder)
        piece = z[:, :, start : size * (i + 1) + remainder]
        if vae.post_quant_conv is not None:
            piece = vae.post_quant_conv(piece)
        piece, cache = vae.decoder(piece, conv_cache=cache)
        yield piece


def _temporal_tiles(vae, z) -> bool:
    per_tile = vae.tile_sample_min_num_frames // vae.temporal_compression_ratio
    return getattr(vae, "use_framewise_decoding", False) and z.shape[2] > per_tile


def _blended_tiles(vae, z, timestep):
    """LTX and HunyuanVideo: overlapping temporal tiles (one latent frame shared), each blended over the overlap
    into the raw tile before it; a tile's frames are final once the next one has been blended in."""
    ratio, hunyuan = vae.temporal_compression_ratio, type(vae).__name__ == "AutoencoderKLHunyuanVideo"
    latent_tile = vae.tile_sample_min_num_frames // ratio
    stride = vae.tile_sample_stride_num_frames
    blend = vae.tile_sample_min_num_frames - stride
    remaining = (z.shape[2] - 1) * ratio + 1
    previous = None
    for n, i in enumerate(range(0, z.shape[2], stride // ratio)):
        tile = z[:, :, i : i + latent_tile + 1]
        if vae.use_tiling and (tile.shape[-1] > vae.tile_sample_min_width // vae.spatial_compression_ratio
                               or tile.shape[-2] > vae.tile_sample_min_height // vae.spatial_compression_ratio):
            args = () if hunyuan else (timestep,)
            decoded = vae.tiled_decode(tile, *args, return_dict=True).sample
        elif hunyuan:
            decoded = vae.decoder(vae.post_quant_conv(tile))
        else:
            decoded = vae.decoder(tile, timestep)
        if n > 0:  # the shared latent frame: Hunyuan's tiles repeat it first, LTX's carry one extra at the end
            decoded = decoded[:, :, 1:] if hunyuan else decoded[:, :, :-1]
            out = vae.blend_t(previous, decoded, blend)[:, :, :stride]
        else:
            out = decoded[:, :, : stride + 1]
        previous = decoded
        out = out[:, :, :remaining]
        remaining -= out.shape[2]
        if out.shape[2]:
            yield out
