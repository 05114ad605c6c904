"""Tiny random SkyReels-V2 checkpoints in the layout of the hub's `Skywork/SkyReels-V2-*-Diffusers` repos.

SkyReels-V2 is Wan 2.1 underneath: a UMT5 text encoder, Wan's 8x causal VAE (AutoencoderKLWan) and a Wan-style DiT
(`SkyReelsV2Transformer3DModel`), sampled with UniPC in flow mode. Three kinds of weights are published:

- T2V (`SkyReels-V2-T2V-14B-540P/720P-Diffusers`, model_index: SkyReelsV2Pipeline);
- I2V (`SkyReels-V2-I2V-1.3B/14B-540P`, `-14B-720P-Diffusers`, SkyReelsV2ImageToVideoPipeline): 36 input channels
  (noise + mask + image latents) and a CLIP image encoder beside the text encoder;
- DF, diffusion forcing (`SkyReels-V2-DF-1.3B-540P`, `-14B-540P/720P-Diffusers`, SkyReelsV2DiffusionForcingPipeline):
  per-frame timesteps, which is what lets it extend a video window by window. The same weights also serve
  SkyReelsV2DiffusionForcingImageToVideoPipeline and ...VideoToVideoPipeline (`from_pretrained` on this folder).
  DF-1.3B has `inject_sample_info=True` (an fps embedding: fps=16 -> 0, anything else -> 1); the tiny one too.

Configs follow diffusers' scripts/convert_skyreelsv2_to_diffusers.py (the script the hub repos came from); the
scheduler it saves is UniPC(prediction_type="flow_prediction", use_flow_sigmas=True) with flow_shift left at 1.0,
so callers set flow_shift themselves (8.0 for T2V/DF, 5.0 for I2V in diffusers' docs).
"""

from __future__ import annotations

from pathlib import Path

import torch

from . import _bpe, _save, _t5, _unigram, _wan_vae


def _transformer(**overrides):
    from diffusers import SkyReelsV2Transformer3DModel

    config = dict(patch_size=(1, 2, 2), num_attention_heads=2, attention_head_dim=12, in_channels=16,
                  out_channels=16, text_dim=32, freq_dim=256, ffn_dim=32, num_layers=2, cross_attn_norm=True,
                  qk_norm="rms_norm_across_heads", eps=1e-6, rope_max_seq_len=32, added_kv_proj_dim=None,
                  inject_sample_info=False)
    return SkyReelsV2Transformer3DModel(**{**config, **overrides})


def _scheduler():
    from diffusers import UniPCMultistepScheduler

    return UniPCMultistepScheduler(prediction_type="flow_prediction", num_train_timesteps=1000, use_flow_sigmas=True)


def _text():
    tokenizer = _unigram()
    return tokenizer, _t5(tokenizer, "UMT5EncoderModel")


def skyreels_v2(folder: Path) -> Path:
    """Text-to-video (the T2V-14B repos' layout)."""
    from diffusers import SkyReelsV2Pipeline

    torch.manual_seed(0)
    tokenizer, text_encoder = _text()
    pipe = SkyReelsV2Pipeline(tokenizer=tokenizer, text_encoder=text_encoder, transformer=_transformer(),
                              vae=_wan_vae(), scheduler=_scheduler())
    return _save(pipe, folder)


def skyreels_v2_df(folder: Path) -> Path:
    """Diffusion forcing (the DF-1.3B-540P repo's layout, fps embedding included); long videos come from running
    the window (`base_num_frames`) several times with `overlap_history` frames carried over."""
    from diffusers import SkyReelsV2DiffusionForcingPipeline

    torch.manual_seed(0)
    tokenizer, text_encoder = _text()
    pipe = SkyReelsV2DiffusionForcingPipeline(tokenizer=tokenizer, text_encoder=text_encoder,
                                              transformer=_transformer(inject_sample_info=True), vae=_wan_vae(),
                                              scheduler=_scheduler())
    return _save(pipe, folder)


def skyreels_v2_i2v(folder: Path) -> Path:
    """Image-to-video (the I2V repos' layout): 36-channel input, a CLIP vision encoder whose penultimate hidden
    states feed extra key/value projections in the cross-attention (`added_kv_proj_dim` = the model width).
    Those projections split image from text tokens by assuming 512 text tokens, so keep max_sequence_length=512."""
    from diffusers import SkyReelsV2ImageToVideoPipeline
    from transformers import (
        CLIPImageProcessor,
        CLIPProcessor,
        CLIPTokenizer,
        CLIPVisionConfig,
        CLIPVisionModelWithProjection,
    )

    torch.manual_seed(0)
    tokenizer, text_encoder = _text()
    encoder = CLIPVisionModelWithProjection(CLIPVisionConfig(hidden_size=8, projection_dim=8, num_hidden_layers=2,
                                                             num_attention_heads=2, image_size=32,
                                                             intermediate_size=16, patch_size=8))
    # The hub saved AutoProcessor("laion/CLIP-ViT-H-14-laion2B-s32B-b79K"), a CLIPProcessor (image processor and
    # tokenizer; the pipeline only uses its image half).
    processor = CLIPProcessor(image_processor=CLIPImageProcessor(crop_size=32, size=32),
                              tokenizer=_bpe(CLIPTokenizer, bos="<|startoftext|>", eos="<|endoftext|>",
                                             pad="<|endoftext|>"))
    transformer = _transformer(in_channels=36, image_dim=8, added_kv_proj_dim=24)
    pipe = SkyReelsV2ImageToVideoPipeline(tokenizer=tokenizer, text_encoder=text_encoder, image_encoder=encoder,
                                          image_processor=processor, transformer=transformer, vae=_wan_vae(),
                                          scheduler=_scheduler())
    return _save(pipe, folder)

