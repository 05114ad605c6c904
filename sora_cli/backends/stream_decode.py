"""Decode a diffusers video VAE's latents a few frames at a time, so frames stream into the encoder.

Each VAE family already decodes in temporal pieces inside `decode` (a causal cache, or overlapping tiles that
are blended); these generators run the same pieces in the same order and yield each piece's frames as soon as
they are final, so the output equals the VAE's own whole-video decode while only a piece is held in memory.
Frames come out as (1, 3, f, H, W) in [-1, 1].
"""

from __future__ import annotations

from collections.abc import Iterator

import torch


def stream_decode(vae, latents: torch.Tensor, timestep=None) -> Iterator[torch.Tensor]:
    name = type(vae).__name__
    spatially_tiled = getattr(vae, "use_tiling", False)
    if name == "AutoencoderKLWan" and not spatially_tiled:
        yield from _wan(vae, latents)
    elif name == "AutoencoderKLCogVideoX" and not spatially_tiled:
        yield from _cogvideox(vae, latents)
    elif name in ("AutoencoderKLLTXVideo", "AutoencoderKLHunyuanVideo") and _temporal_tiles(vae, latents):
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
