"""Tiny random checkpoints of every open-model family, in the diffusers layout the hub uses.

Real component classes and configs, a few channels wide; tokenizers are trained here on a handful of sentences
(no download). Each builder saves with `save_pretrained` and returns the folder, so tests load them back the way
`sora generate --model PATH` does.
"""

from __future__ import annotations

from pathlib import Path

import torch

CORPUS = [
    "a cat surfing a wave at sunset", "a red circle moving left on a black background", "dance monkey",
    "worst quality, inconsistent motion, blurry, jittery, distorted", "a dog running on the beach",
    "an astronaut riding a horse on the moon", "low quality, static, overexposed",
]


def _unigram(vocab_size: int = 96):
    """A T5-style (Unigram, '</s>' appended) tokenizer trained on CORPUS."""
    from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, processors, trainers
    from transformers import T5TokenizerFast

    tok = Tokenizer(models.Unigram())
    tok.normalizer = normalizers.NFKC()
    tok.pre_tokenizer = pre_tokenizers.Metaspace()
    trainer = trainers.UnigramTrainer(vocab_size=vocab_size, special_tokens=["<pad>", "</s>", "<unk>"],
                                      unk_token="<unk>")
    tok.train_from_iterator(CORPUS * 4, trainer)
    tok.post_processor = processors.TemplateProcessing(single="$A </s>", special_tokens=[("</s>", 1)])
    return T5TokenizerFast(tokenizer_object=tok, pad_token="<pad>", eos_token="</s>", unk_token="<unk>", extra_ids=0)


def _bpe(cls, vocab_size: int = 120, bos: str = "<s>", eos: str = "</s>", pad: str = "<pad>"):
    """A byte-level BPE tokenizer (Llama- or CLIP-style) trained on CORPUS."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers

    tok = Tokenizer(models.BPE(unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=[pad, bos, eos, "<unk>"],
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tok.train_from_iterator(CORPUS * 4, trainer)
    tok.post_processor = processors.TemplateProcessing(single=f"{bos} $A {eos}",
                                                       special_tokens=[(bos, 1), (eos, 2)])
    return cls(tokenizer_object=tok, bos_token=bos, eos_token=eos, pad_token=pad, unk_token="<unk>")


def _t5(tokenizer, cls_name: str = "T5EncoderModel", d_model: int = 32):
    import transformers

    config_cls = transformers.UMT5Config if cls_name.startswith("UMT5") else transformers.T5Config
    config = config_cls(vocab_size=len(tokenizer), d_model=d_model, d_kv=8, d_ff=64, num_layers=2, num_heads=4,
                        relative_attention_num_buckets=8)
    return getattr(transformers, cls_name)(config)


def _save(pipe, folder: Path) -> Path:
    pipe.save_pretrained(folder)
    return folder


def ltx(folder: Path, *, dynamic_shifting: bool = True) -> Path:
    """LTX-Video as 0.9.0/0.9.1 (dynamic shifting), or as 0.9.5+ (a fixed shift: its condition pipeline runs)."""
    from diffusers import (
        AutoencoderKLLTXVideo,
        FlowMatchEulerDiscreteScheduler,
        LTXPipeline,
        LTXVideoTransformer3DModel,
    )

    torch.manual_seed(0)
    tokenizer = _unigram()
    transformer = LTXVideoTransformer3DModel(in_channels=8, out_channels=8, patch_size=1, patch_size_t=1,
                                             num_attention_heads=4, attention_head_dim=8, cross_attention_dim=32,
                                             num_layers=2, caption_channels=32)
    vae = AutoencoderKLLTXVideo(latent_channels=8, block_out_channels=(8, 8, 8, 8),
                                decoder_block_out_channels=(8, 8, 8, 8),
                                spatio_temporal_scaling=(True, True, False, False),
                                decoder_spatio_temporal_scaling=(True, True, False, False),
                                layers_per_block=(1, 1, 1, 1, 1), decoder_layers_per_block=(1, 1, 1, 1, 1),
                                decoder_inject_noise=(False, False, False, False, False),
                                upsample_residual=(False, False, False, False), upsample_factor=(1, 1, 1, 1),
                                patch_size=1, patch_size_t=1, encoder_causal=True, decoder_causal=False)
    scheduler = FlowMatchEulerDiscreteScheduler(use_dynamic_shifting=dynamic_shifting, base_shift=0.95, max_shift=2.05,
                                                base_image_seq_len=1024, max_image_seq_len=4096,
                                                shift_terminal=0.1)
    pipe = LTXPipeline(scheduler=scheduler, vae=vae, text_encoder=_t5(tokenizer), tokenizer=tokenizer,
                       transformer=transformer)
    return _save(pipe, folder)


def _wan_transformer(**overrides):
    from diffusers import WanTransformer3DModel

    config = dict(patch_size=(1, 2, 2), num_attention_heads=2, attention_head_dim=12, in_channels=16,
                  out_channels=16, text_dim=32, freq_dim=256, ffn_dim=32, num_layers=2, cross_attn_norm=True,
                  qk_norm="rms_norm_across_heads", rope_max_seq_len=32)
    return WanTransformer3DModel(**{**config, **overrides})


def _wan_vae(**overrides):
    """Wan 2.1's 8x causal VAE, a few channels wide; Wan 2.2's 16x one through overrides."""
    from diffusers import AutoencoderKLWan

    config = dict(base_dim=3, z_dim=16, dim_mult=[1, 1, 1, 1], num_res_blocks=1,
                  temperal_downsample=[False, True, True])
    return AutoencoderKLWan(**{**config, **overrides})


def _wan_scheduler():
    from diffusers import UniPCMultistepScheduler

    return UniPCMultistepScheduler(prediction_type="flow_prediction", use_flow_sigmas=True, flow_shift=3.0)


def wan(folder: Path, *, two_experts: bool = False, transformer_overrides: dict | None = None) -> Path:
    """Wan 2.1 (one transformer) or, with two_experts, Wan 2.2 A14B (high- and low-noise experts); the
    benchmark passes a wider, deeper transformer."""
    from diffusers import WanPipeline

    torch.manual_seed(0)
    tokenizer = _unigram()
    overrides = transformer_overrides or {}
    pipe = WanPipeline(tokenizer=tokenizer, text_encoder=_t5(tokenizer, "UMT5EncoderModel"), vae=_wan_vae(),
                       transformer=_wan_transformer(**overrides), scheduler=_wan_scheduler(),
                       transformer_2=_wan_transformer(**overrides) if two_experts else None,
                       boundary_ratio=0.875 if two_experts else None)
    return _save(pipe, folder)


def _cogvideox_vae_and_scheduler():
    from diffusers import AutoencoderKLCogVideoX, CogVideoXDDIMScheduler

    blocks = 4
    vae = AutoencoderKLCogVideoX(in_channels=3, out_channels=3, down_block_types=("CogVideoXDownBlock3D",) * blocks,
                                 up_block_types=("CogVideoXUpBlock3D",) * blocks, block_out_channels=(8,) * blocks,
                                 latent_channels=4, layers_per_block=1, norm_num_groups=2,
                                 temporal_compression_ratio=4)
    scheduler = CogVideoXDDIMScheduler(timestep_spacing="trailing", rescale_betas_zero_snr=True,
                                       prediction_type="v_prediction", beta_schedule="scaled_linear",
                                       beta_start=0.00085, beta_end=0.012, clip_sample=False, set_alpha_to_one=True)
    return vae, scheduler


def cogvideox(folder: Path) -> Path:
    from diffusers import CogVideoXPipeline, CogVideoXTransformer3DModel

    torch.manual_seed(0)
    tokenizer = _unigram()
    transformer = CogVideoXTransformer3DModel(num_attention_heads=4, attention_head_dim=8, in_channels=4,
                                              out_channels=4, time_embed_dim=2, text_embed_dim=32, num_layers=2,
                                              sample_width=2, sample_height=2, sample_frames=9, patch_size=2,
                                              temporal_compression_ratio=4, max_text_seq_length=226)
    vae, scheduler = _cogvideox_vae_and_scheduler()
    pipe = CogVideoXPipeline(tokenizer=tokenizer, text_encoder=_t5(tokenizer), vae=vae, transformer=transformer,
                             scheduler=scheduler)
    return _save(pipe, folder)


def mochi(folder: Path) -> Path:
    from diffusers import AutoencoderKLMochi, FlowMatchEulerDiscreteScheduler, MochiPipeline, MochiTransformer3DModel

    torch.manual_seed(0)
    tokenizer = _unigram()
    transformer = MochiTransformer3DModel(patch_size=2, num_attention_heads=2, attention_head_dim=8, num_layers=2,
                                          pooled_projection_dim=16, in_channels=12, out_channels=None,
                                          qk_norm="rms_norm", text_embed_dim=32, time_embed_dim=4,
                                          activation_fn="swiglu", max_sequence_length=256)
    vae = AutoencoderKLMochi(latent_channels=12, out_channels=3, encoder_block_out_channels=(32, 32, 32, 32),
                             decoder_block_out_channels=(32, 32, 32, 32), layers_per_block=(1, 1, 1, 1, 1))
    scheduler = FlowMatchEulerDiscreteScheduler(invert_sigmas=True)
    pipe = MochiPipeline(scheduler=scheduler, vae=vae, text_encoder=_t5(tokenizer), tokenizer=tokenizer,
                         transformer=transformer)
    return _save(pipe, folder)


def hunyuan(folder: Path) -> Path:
    from diffusers import (
        AutoencoderKLHunyuanVideo,
        FlowMatchEulerDiscreteScheduler,
        HunyuanVideoPipeline,
        HunyuanVideoTransformer3DModel,
    )
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTokenizer, LlamaConfig, LlamaModel, LlamaTokenizer

    torch.manual_seed(0)
    tokenizer = _bpe(LlamaTokenizer)
    tokenizer_2 = _bpe(CLIPTokenizer, bos="<|startoftext|>", eos="<|endoftext|>", pad="<|endoftext|>")
    transformer = HunyuanVideoTransformer3DModel(in_channels=4, out_channels=4, num_attention_heads=2,
                                                 attention_head_dim=10, num_layers=2, num_single_layers=2,
                                                 num_refiner_layers=1, patch_size=1, patch_size_t=1,
                                                 guidance_embeds=True, text_embed_dim=16, pooled_projection_dim=8,
                                                 rope_axes_dim=(2, 4, 4))
    blocks = 4
    vae = AutoencoderKLHunyuanVideo(in_channels=3, out_channels=3, latent_channels=4,
                                    down_block_types=("HunyuanVideoDownBlock3D",) * blocks,
                                    up_block_types=("HunyuanVideoUpBlock3D",) * blocks,
                                    block_out_channels=(8,) * blocks, layers_per_block=1, act_fn="silu",
                                    norm_num_groups=4, scaling_factor=0.476986, spatial_compression_ratio=8,
                                    temporal_compression_ratio=4, mid_block_add_attention=True)
    scheduler = FlowMatchEulerDiscreteScheduler(shift=7.0)
    llama = LlamaModel(LlamaConfig(bos_token_id=1, eos_token_id=2, pad_token_id=0, hidden_size=16,
                                   intermediate_size=37, num_attention_heads=4, num_hidden_layers=2,
                                   vocab_size=len(tokenizer), hidden_act="gelu"))
    clip = CLIPTextModel(CLIPTextConfig(bos_token_id=1, eos_token_id=2, pad_token_id=0, hidden_size=8,
                                        intermediate_size=37, num_attention_heads=4, num_hidden_layers=2,
                                        vocab_size=len(tokenizer_2), projection_dim=32, max_position_embeddings=77))
    pipe = HunyuanVideoPipeline(text_encoder=llama, tokenizer=tokenizer, transformer=transformer, vae=vae,
                                scheduler=scheduler, text_encoder_2=clip, tokenizer_2=tokenizer_2)
    return _save(pipe, folder)


def wan_ti2v(folder: Path) -> Path:
    """Wan 2.2 TI2V-5B's layout: a 16x VAE (2x2 patches, 48 channels) and per-token timesteps, so the same
    weights do text-to-video and, with the first frame's latents held clean, image-to-video."""
    from diffusers import WanPipeline

    torch.manual_seed(0)
    tokenizer = _unigram()
    vae = _wan_vae(z_dim=48, in_channels=12, out_channels=12, is_residual=True, patch_size=2,
                   latents_mean=[0.0] * 48, latents_std=[1.0] * 48, scale_factor_spatial=16, scale_factor_temporal=4)
    pipe = WanPipeline(tokenizer=tokenizer, text_encoder=_t5(tokenizer, "UMT5EncoderModel"), vae=vae,
                       transformer=_wan_transformer(in_channels=48, out_channels=48), scheduler=_wan_scheduler(),
                       expand_timesteps=True)
    return _save(pipe, folder)


def cogvideox_i2v(folder: Path) -> Path:
    """CogVideoX image-to-video: the transformer reads the noisy latents and the image latents side by side."""
    from diffusers import CogVideoXImageToVideoPipeline, CogVideoXTransformer3DModel

    torch.manual_seed(0)
    tokenizer = _unigram()
    transformer = CogVideoXTransformer3DModel(num_attention_heads=2, attention_head_dim=16, in_channels=8,
                                              out_channels=4, time_embed_dim=2, text_embed_dim=32, num_layers=1,
                                              sample_width=4, sample_height=4, sample_frames=9, patch_size=2,
                                              temporal_compression_ratio=4, max_text_seq_length=226,
                                              use_rotary_positional_embeddings=True,
                                              use_learned_positional_embeddings=True)
    vae, scheduler = _cogvideox_vae_and_scheduler()
    pipe = CogVideoXImageToVideoPipeline(tokenizer=tokenizer, text_encoder=_t5(tokenizer), vae=vae,
                                         transformer=transformer, scheduler=scheduler)
    return _save(pipe, folder)


def wan_i2v(folder: Path, *, first_last: bool = False) -> Path:
    """Wan 2.1 image-to-video: a CLIP image encoder beside the text encoder; the image latents ride as channels.
    `first_last`: as Wan 2.1 FLF2V, whose transformer embeds the positions of two images' tokens (first, last)."""
    from diffusers import WanImageToVideoPipeline
    from transformers import CLIPImageProcessor, CLIPVisionConfig, CLIPVisionModelWithProjection

    torch.manual_seed(0)
    tokenizer = _unigram()
    encoder = CLIPVisionModelWithProjection(CLIPVisionConfig(hidden_size=4, projection_dim=4, num_hidden_layers=2,
                                                             num_attention_heads=2, image_size=32,
                                                             intermediate_size=16, patch_size=1))
    processor = CLIPImageProcessor(crop_size=32, size=32)
    pipe = WanImageToVideoPipeline(tokenizer=tokenizer, text_encoder=_t5(tokenizer, "UMT5EncoderModel"),
                                   vae=_wan_vae(), transformer=_wan_transformer(
                                       in_channels=36, image_dim=4, pos_embed_seq_len=2 * 1025 if first_last else None),
                                   scheduler=_wan_scheduler(), image_encoder=encoder, image_processor=processor)
    return _save(pipe, folder)


BUILDERS = {"ltx-video": ltx, "wan": wan, "cogvideox": cogvideox, "mochi": mochi, "hunyuanvideo": hunyuan}
I2V_BUILDERS = {"cogvideox-i2v": cogvideox_i2v, "wan-i2v": wan_i2v, "wan-ti2v": wan_ti2v}


def pyramid_flow(folder: Path) -> Path:
    """Pyramid Flow in the hub's layout, from the tiny weights the parity vectors were recorded with
    (tests/data/pyramid_flow); the VAE is pickled, as the hub ships it, for `sora models convert` to read."""
    import shutil

    from safetensors.torch import load_file

    source = Path(__file__).parents[1] / "data" / "pyramid_flow" / "tiny"
    shutil.copytree(source, folder)
    vae = folder / "causal_video_vae"
    torch.save(load_file(vae / "diffusion_pytorch_model.safetensors"), vae / "diffusion_pytorch_model.bin")
    (vae / "diffusion_pytorch_model.safetensors").unlink()
    return folder
