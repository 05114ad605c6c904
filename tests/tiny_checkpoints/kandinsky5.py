"""Kandinsky 5.0 Video Lite, tiny and random, in the layout of the diffusers-format hub repos
(kandinskylab/Kandinsky-5.0-T2V-Lite-sft-5s-Diffusers, ...): a Qwen2.5-VL model (vision tower included) behind a
Qwen2-VL processor, a CLIP text model whose pooled output conditions the timestep, HunyuanVideo's 8x/4x VAE and
a DiT that reads the noisy latents beside image-condition latents and a mask (`visual_cond`, on for the Lite
checkpoints too). Image-to-video is its own checkpoint on the hub (Kandinsky-5.0-I2V-Pro-sft-5s-Diffusers; no
Lite one in diffusers' list); the tiny one has the Lite architecture.
"""

from __future__ import annotations

from pathlib import Path

import torch

from . import _bpe, _save
from .hunyuanvideo15 import QWEN_CHAT_TEMPLATE, _qwen_tokenizer


def _components():
    from diffusers import AutoencoderKLHunyuanVideo, FlowMatchEulerDiscreteScheduler, Kandinsky5Transformer3DModel
    from transformers import (
        CLIPTextConfig,
        CLIPTextModel,
        CLIPTokenizer,
        Qwen2_5_VLConfig,
        Qwen2_5_VLForConditionalGeneration,
        Qwen2VLImageProcessor,
        Qwen2VLProcessor,
        Qwen2VLVideoProcessor,
    )

    qwen_tokenizer = _qwen_tokenizer()
    tokenizer = Qwen2VLProcessor(image_processor=Qwen2VLImageProcessor(), tokenizer=qwen_tokenizer,
                                 video_processor=Qwen2VLVideoProcessor(), chat_template=QWEN_CHAT_TEMPLATE)
    ids = qwen_tokenizer.convert_tokens_to_ids
    text_encoder = Qwen2_5_VLForConditionalGeneration(Qwen2_5_VLConfig(
        text_config=dict(vocab_size=len(qwen_tokenizer), hidden_size=32, intermediate_size=32, num_hidden_layers=2,
                         num_attention_heads=2, num_key_value_heads=2,
                         rope_parameters={"mrope_section": [2, 2, 4], "rope_type": "default",
                                          "rope_theta": 1000000.0},
                         bos_token_id=None, eos_token_id=ids("<|im_end|>"), pad_token_id=qwen_tokenizer.pad_token_id),
        vision_config=dict(depth=1, hidden_size=16, intermediate_size=16, num_heads=2, out_hidden_size=32,
                           fullatt_block_indexes=[0]),
        image_token_id=ids("<|image_pad|>"), video_token_id=ids("<|video_pad|>"),
        vision_start_token_id=ids("<|vision_start|>"), vision_end_token_id=ids("<|vision_end|>")))
    tokenizer_2 = _bpe(CLIPTokenizer, bos="<|startoftext|>", eos="<|endoftext|>", pad="<|endoftext|>")
    text_encoder_2 = CLIPTextModel(CLIPTextConfig(bos_token_id=1, eos_token_id=2, pad_token_id=0, hidden_size=16,
                                                  intermediate_size=32, num_attention_heads=2, num_hidden_layers=2,
                                                  vocab_size=len(tokenizer_2), projection_dim=16,
                                                  max_position_embeddings=77))
    # 16 latent channels as on the hub; the DiT reads latents, image-condition latents and a mask (2 * 16 + 1)
    transformer = Kandinsky5Transformer3DModel(in_visual_dim=16, in_text_dim=32, in_text_dim2=16, time_dim=16,
                                               out_visual_dim=16, patch_size=(1, 2, 2), model_dim=16, ff_dim=32,
                                               num_text_blocks=1, num_visual_blocks=2, axes_dims=(1, 1, 2),
                                               visual_cond=True, attention_type="regular")
    # its modulations start at zero (every block an identity, the prompt without effect): random ones instead
    for name, param in transformer.named_parameters():
        if "modulation.out_layer" in name:
            torch.nn.init.normal_(param, std=0.1)
    blocks = 4
    vae = AutoencoderKLHunyuanVideo(in_channels=3, out_channels=3, latent_channels=16,
                                    down_block_types=("HunyuanVideoDownBlock3D",) * blocks,
                                    up_block_types=("HunyuanVideoUpBlock3D",) * blocks,
                                    block_out_channels=(8,) * blocks, layers_per_block=1, act_fn="silu",
                                    norm_num_groups=4, scaling_factor=0.476986, spatial_compression_ratio=8,
                                    temporal_compression_ratio=4, mid_block_add_attention=True)
    scheduler = FlowMatchEulerDiscreteScheduler(shift=5.0)  # the Lite 5s checkpoints' (their 'scheduler_scale')
    return dict(transformer=transformer, vae=vae, text_encoder=text_encoder, tokenizer=tokenizer,
                text_encoder_2=text_encoder_2, tokenizer_2=tokenizer_2, scheduler=scheduler)


def kandinsky5(folder: Path) -> Path:
    """Kandinsky 5.0 T2V Lite (Kandinsky5T2VPipeline)."""
    from diffusers import Kandinsky5T2VPipeline

    torch.manual_seed(0)
    return _save(Kandinsky5T2VPipeline(**_components()), folder)


def kandinsky5_i2v(folder: Path) -> Path:
    """Kandinsky 5.0 image-to-video (Kandinsky5I2VPipeline): the same components; the image's VAE latents replace
    the first latent frame and ride along as the condition channels."""
    from diffusers import Kandinsky5I2VPipeline

    torch.manual_seed(0)
    return _save(Kandinsky5I2VPipeline(**_components()), folder)
