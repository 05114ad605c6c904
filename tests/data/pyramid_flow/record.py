"""Records the Pyramid Flow parity vectors from the reference implementation (jy0205/Pyramid-Flow, MIT).

The reference's code never enters this repository. To re-record, check it out elsewhere and run
    PYTHONPATH=<reference checkout>:<stubs for timm/IPython/tensorboardX> python tests/data/pyramid_flow/record.py
It writes, next to this file:
- tiny/ — a tiny random checkpoint in the hub's layout (DiT, causal VAE as safetensors, CLIP + T5 with tokenizers);
- vectors.safetensors — inputs and outputs of the DiT (with and without history), the VAE (encode, whole, chunked
  and tiled decode) and one full generation (its injected initial and block noise included); vectors.json — the
  settings used.
Layers the reference initialises to zero are re-randomised, so every weight matters to the outputs.
"""

from __future__ import annotations

import json
import math
import shutil
import sys
from pathlib import Path

import torch

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parents[1]))  # tests/ for the tiny tokenizers

PROMPT = "a red circle moving left"
SIZE = (64, 64)  # width, height in pixels: 8x8 latents, 2x2 at the lowest stage
LATENT_FRAMES = 3  # 17 frames
STEPS = [3, 2, 2]
VIDEO_STEPS = [2, 2, 2]
GUIDANCE, VIDEO_GUIDANCE = 7.0, 5.0


def rerandomise(module: torch.nn.Module, seed: int) -> None:
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in module.named_parameters():
            if p.dim() > 1:
                fan_in = p[0].numel()
                p.copy_(torch.randn(p.shape, generator=gen) / math.sqrt(fan_in))
            elif "norm" in name and name.endswith("weight"):
                p.copy_(1 + 0.1 * torch.randn(p.shape, generator=gen))
            else:
                p.copy_(0.05 * torch.randn(p.shape, generator=gen))


def build_checkpoint(folder: Path) -> None:
    from pyramid_dit.flux_modules import PyramidFluxTransformer
    from tiny_checkpoints import _bpe, _t5, _unigram
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTokenizer
    from video_vae.modeling_causal_vae import CausalVideoVAE

    torch.manual_seed(0)
    dit = PyramidFluxTransformer(patch_size=1, in_channels=16, num_layers=1, num_single_layers=1,
                                 attention_head_dim=64, num_attention_heads=1, joint_attention_dim=32,
                                 pooled_projection_dim=16, axes_dims_rope=[16, 24, 24])
    rerandomise(dit, 1)
    dit.save_pretrained(folder / "diffusion_transformer_384p")
    vae = CausalVideoVAE(encoder_out_channels=4, decoder_in_channels=4,
                         encoder_block_out_channels=(8, 8, 8, 8), decoder_block_out_channels=(8, 8, 8, 8),
                         encoder_layers_per_block=(1, 1, 1, 1), decoder_layers_per_block=(2, 2, 2, 2),
                         encoder_norm_num_groups=4, decoder_norm_num_groups=4)
    rerandomise(vae, 2)
    vae.save_pretrained(folder / "causal_video_vae")
    tokenizer = _bpe(CLIPTokenizer, bos="<|startoftext|>", eos="<|endoftext|>", pad="<|endoftext|>")
    tokenizer.model_max_length = 77  # CLIP's context, as the real tokenizer says
    clip = CLIPTextModel(CLIPTextConfig(bos_token_id=1, eos_token_id=2, pad_token_id=0, hidden_size=16,
                                        intermediate_size=37, num_attention_heads=4, num_hidden_layers=2,
                                        vocab_size=len(tokenizer), projection_dim=16, max_position_embeddings=77))
    tokenizer_2 = _unigram()
    t5 = _t5(tokenizer_2)
    for name, part in [("tokenizer", tokenizer), ("text_encoder", clip), ("tokenizer_2", tokenizer_2),
                       ("text_encoder_2", t5)]:
        part.save_pretrained(folder / name)


def record_dit(dit, out: dict) -> None:
    gen = torch.Generator().manual_seed(10)
    text = torch.randn(2, 12, 32, generator=gen)
    mask = torch.ones(2, 12, dtype=torch.long)
    mask[0, 7:] = 0
    mask[1, 9:] = 0
    pooled = torch.randn(2, 16, generator=gen)
    t = torch.tensor([712.5, 712.5])
    current = torch.randn(2, 4, 1, 8, 8, generator=gen)
    history = [torch.randn(2, 4, 1, 4, 4, generator=gen), torch.randn(2, 4, 1, 8, 8, generator=gen)]
    out.update({"dit.text": text, "dit.mask": mask, "dit.pooled": pooled, "dit.t": t, "dit.current": current,
                "dit.history0": history[0], "dit.history1": history[1]})
    with torch.no_grad():
        out["dit.out"] = dit(sample=[[current]], timestep_ratio=t, encoder_hidden_states=text,
                             encoder_attention_mask=mask, pooled_projections=pooled)[0]
        out["dit.out_history"] = dit(sample=[history + [current]], timestep_ratio=t, encoder_hidden_states=text,
                                     encoder_attention_mask=mask, pooled_projections=pooled)[0]


def record_vae(vae, out: dict) -> None:
    gen = torch.Generator().manual_seed(20)
    z = torch.randn(1, 4, 3, 4, 4, generator=gen)
    image = torch.rand(1, 3, 1, 32, 32, generator=gen) * 2 - 1
    video = torch.rand(1, 3, 9, 32, 32, generator=gen) * 2 - 1
    z_wide = torch.randn(1, 4, 2, 8, 8, generator=gen)
    out.update({"vae.z": z, "vae.z_wide": z_wide, "vae.image": image, "vae.video": video})
    with torch.no_grad():
        out["vae.decode"] = vae.decode(z.clone()).sample
        out["vae.decode_chunked"] = vae.decode(z.clone(), temporal_chunk=True, window_size=1).sample
        vae.enable_tiling()  # 32-pixel tiles over 64 pixels: three tiles a side, blended
        out["vae.decode_tiled"] = vae.decode(z_wide.clone(), temporal_chunk=True, window_size=1,
                                             tile_sample_min_size=32).sample
        vae.disable_tiling()
        out["vae.encode_image"] = vae.encode(image).latent_dist.mean
        out["vae.encode_video"] = vae.encode(video).latent_dist.parameters


def record_generation(folder: Path, out: dict) -> None:
    from pyramid_dit.pyramid_dit_for_video_gen_pipeline import PyramidDiTForVideoGeneration

    pipe = PyramidDiTForVideoGeneration(str(folder), model_dtype="fp32", model_name="pyramid_flux",
                                        model_variant="diffusion_transformer_384p")
    gen = torch.Generator().manual_seed(30)
    width, height = SIZE
    initial = torch.randn(1, 4, LATENT_FRAMES, height // 8, width // 8, generator=gen)
    out["gen.initial"] = initial
    pipe.prepare_latents = lambda *args, **kwargs: initial.clone()
    blocks = []

    def block_noise(bs, ch, temp, h, w):
        # correlated 2x2 blocks with covariance (1+g)I - g*11^T for g = 1/3: sqrt(1+g) * (z - mean z)
        z = torch.randn(bs, ch, temp, h // 2, 2, w // 2, 2, generator=gen)
        noise = math.sqrt(4 / 3) * (z - z.mean(dim=(4, 6), keepdim=True))
        noise = noise.reshape(bs, ch, temp, h, w)
        blocks.append(noise)
        return noise.clone()

    pipe.sample_block_noise = block_noise
    latents = pipe.generate(prompt=PROMPT, height=height, width=width, temp=LATENT_FRAMES,
                            num_inference_steps=STEPS, video_num_inference_steps=VIDEO_STEPS,
                            guidance_scale=GUIDANCE, video_guidance_scale=VIDEO_GUIDANCE, output_type="latent")
    out["gen.latents"] = latents.clone()
    for i, noise in enumerate(blocks):
        out[f"gen.block{i}"] = noise
    lat = latents.clone()
    lat[:, :, :1] = lat[:, :, :1] / pipe.vae_scale_factor + pipe.vae_shift_factor
    lat[:, :, 1:] = lat[:, :, 1:] / pipe.vae_video_scale_factor + pipe.vae_video_shift_factor
    with torch.no_grad():
        out["gen.video"] = pipe.vae.decode(lat, temporal_chunk=True, window_size=1, tile_sample_min_size=256).sample
    record_i2v(pipe, gen, out)
    record_dit(pipe.dit, out)
    record_vae(pipe.vae, out)


def record_i2v(pipe, gen: torch.Generator, out: dict) -> None:
    """Image-to-video from the same weights: the image's latent first, later frames conditioned on it."""
    import numpy as np
    from PIL import Image
    from video_vae import modeling_enc_dec

    width, height = SIZE
    pixels = (torch.rand(height, width, 3, generator=gen) * 255).to(torch.uint8)
    initial = torch.randn(1, 4, LATENT_FRAMES, height // 8, width // 8, generator=gen)
    posterior_noise = torch.randn(1, 4, 1, height // 8, width // 8, generator=gen)
    out.update({"i2v.image": pixels, "i2v.initial": initial, "i2v.posterior_noise": posterior_noise})
    pipe.prepare_latents = lambda *args, **kwargs: initial.clone()
    modeling_enc_dec.DiagonalGaussianDistribution.sample = lambda self, generator=None: (
        self.mean + self.std * posterior_noise)
    blocks = []
    drawn = pipe.sample_block_noise  # record_generation's sampler, drawing from the same generator

    def block_noise(*shape):
        blocks.append(drawn(*shape))
        return blocks[-1].clone()

    pipe.sample_block_noise = block_noise
    latents = pipe.generate_i2v(prompt=PROMPT, input_image=Image.fromarray(np.asarray(pixels)), temp=LATENT_FRAMES,
                                num_inference_steps=VIDEO_STEPS, guidance_scale=GUIDANCE,
                                video_guidance_scale=VIDEO_GUIDANCE, output_type="latent")
    out["i2v.latents"] = latents.clone()
    for i, noise in enumerate(blocks):
        out[f"i2v.block{i}"] = noise


def main() -> None:
    from safetensors.torch import save_file

    folder = HERE / "tiny"
    shutil.rmtree(folder, ignore_errors=True)
    build_checkpoint(folder)
    out: dict[str, torch.Tensor] = {}
    record_generation(folder, out)
    save_file({k: v.contiguous().float() if v.is_floating_point() else v.contiguous() for k, v in out.items()},
              HERE / "vectors.safetensors")
    settings = {"prompt": PROMPT, "width": SIZE[0], "height": SIZE[1], "latent_frames": LATENT_FRAMES,
                "steps": STEPS, "video_steps": VIDEO_STEPS, "guidance": GUIDANCE, "video_guidance": VIDEO_GUIDANCE,
                "reference": "jy0205/Pyramid-Flow@3040d71"}
    (HERE / "vectors.json").write_text(json.dumps(settings, indent=1) + "\n")
    print({k: tuple(v.shape) for k, v in out.items()})


if __name__ == "__main__":
    main()
