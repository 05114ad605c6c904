"""A tiny random LTX-2 (video with audio) checkpoint in the layout of the hub's `Lightricks/LTX-2`.

`model_index.json` lists what the hub's does: transformer, vae, audio_vae, vocoder, connectors, text_encoder
(Gemma 3), tokenizer (Gemma) and scheduler. The sizes that shape the outputs are the real ones, only the widths
shrink:

* video VAE: 32x spatial (4x4 patches and three 2x stages), 8x temporal, so frames are 8k+1 and sides multiples
  of 32, as with the real model; 32x32 and 9 frames make a 1x1x2 latent (the decoder pads with zeros, as
  LTX-2.3's does: 2.0's reflect padding needs latents at least 2x2, i.e. 64x64 videos).
* audio: 16 kHz mel frames (hop 160, so 100 a second), the audio VAE's 4x time and mel compression, and a vocoder
  with the real 240x upsampling, so the waveform is stereo at 24 kHz like the real one.
* connectors: 128 learnable registers like the real ones, so `max_sequence_length` must be a multiple of 128
  (the default, 1024, is).
* Gemma 3 is a 2-layer, 32-wide model with a 1-layer SigLIP tower; its tokenizer is a byte-fallback BPE trained
  here on a few sentences (no download).
"""

from __future__ import annotations

import json
from pathlib import Path

import torch

from . import CORPUS


def _gemma_tokenizer(vocab_size: int = 400):
    """Gemma's tokenizer layout (BPE with byte fallback, '<bos>' prepended, left padding) trained on CORPUS."""
    from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, trainers
    from transformers import GemmaTokenizer

    special = ["<pad>", "<eos>", "<bos>", "<unk>", "<mask>"]  # ids 0-4, as in Gemma
    byte_tokens = [f"<0x{i:02X}>" for i in range(256)]  # byte fallback: any text encodes without <unk>
    tok = Tokenizer(models.BPE(unk_token="<unk>", byte_fallback=True))
    tok.normalizer = normalizers.Replace(" ", "▁")
    tok.pre_tokenizer = pre_tokenizers.Split(pattern="▁", behavior="merged_with_next")
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=special + byte_tokens)
    tok.train_from_iterator(CORPUS * 4, trainer)
    state = json.loads(tok.to_str())["model"]
    merges = [tuple(m) if isinstance(m, list) else tuple(m.split(" ")) for m in state["merges"]]
    return GemmaTokenizer(vocab=state["vocab"], merges=merges, add_bos_token=True, add_eos_token=False)


def _gemma3(vocab_size: int, hidden_size: int = 32, num_layers: int = 2):
    from transformers import Gemma3Config, Gemma3ForConditionalGeneration, Gemma3TextConfig, SiglipVisionConfig

    text = Gemma3TextConfig(vocab_size=vocab_size, hidden_size=hidden_size, intermediate_size=64,
                            num_hidden_layers=num_layers, num_attention_heads=4, num_key_value_heads=2, head_dim=8,
                            max_position_embeddings=2048, sliding_window=64, pad_token_id=0, eos_token_id=1,
                            bos_token_id=2)
    vision = SiglipVisionConfig(hidden_size=16, intermediate_size=32, num_hidden_layers=1, num_attention_heads=2,
                                image_size=16, patch_size=4)
    return Gemma3ForConditionalGeneration(Gemma3Config(text_config=text, vision_config=vision, mm_tokens_per_image=4))


def ltx2(folder: Path, *, transformer_overrides: dict | None = None) -> Path:
    """The tiny LTX-2; `transformer_overrides` widens or deepens its transformer (the benchmark's)."""
    from diffusers import (
        AutoencoderKLLTX2Audio,
        AutoencoderKLLTX2Video,
        FlowMatchEulerDiscreteScheduler,
        LTX2Pipeline,
        LTX2VideoTransformer3DModel,
    )
    from diffusers.pipelines.ltx2 import LTX2TextConnectors
    from diffusers.pipelines.ltx2.vocoder import LTX2Vocoder

    torch.manual_seed(0)
    tokenizer = _gemma_tokenizer()
    text_encoder = _gemma3(len(tokenizer))
    caption_channels = text_encoder.config.text_config.hidden_size
    text_layers = text_encoder.config.text_config.num_hidden_layers

    # Text connectors: their width (heads x head_dim) must equal the text encoder's hidden size.
    connectors = LTX2TextConnectors(
        caption_channels=caption_channels, text_proj_in_factor=text_layers + 1,
        video_connector_num_attention_heads=4, video_connector_attention_head_dim=8, video_connector_num_layers=1,
        video_connector_num_learnable_registers=128,
        audio_connector_num_attention_heads=4, audio_connector_attention_head_dim=8, audio_connector_num_layers=1,
        audio_connector_num_learnable_registers=128,
        connector_rope_base_seq_len=4096, rope_theta=10000.0, rope_double_precision=False,
        causal_temporal_positioning=False, rope_type="split", proj_bias=False)

    # The real 2.0 VAE's structure (spatial, temporal, then two spatiotemporal downsamples after 4x4 patches;
    # three spatiotemporal upsamples), a few channels wide. One departure: the decoder pads with zeros (as
    # LTX-2.3's does) rather than 2.0's "reflect", which cannot pad a 1x1 latent, i.e. a 32x32 video.
    vae = AutoencoderKLLTX2Video(
        in_channels=3, out_channels=3, latent_channels=8, block_out_channels=(8, 16, 32, 64),
        decoder_block_out_channels=(8, 16, 32), layers_per_block=(1, 1, 1, 1, 1),
        decoder_layers_per_block=(1, 1, 1, 1), spatio_temporal_scaling=(True, True, True, True),
        decoder_spatio_temporal_scaling=(True, True, True), decoder_inject_noise=(False, False, False, False),
        downsample_type=("spatial", "temporal", "spatiotemporal", "spatiotemporal"),
        upsample_type=("spatiotemporal", "spatiotemporal", "spatiotemporal"), upsample_residual=(True, True, True),
        upsample_factor=(2, 2, 2), timestep_conditioning=False, patch_size=4, patch_size_t=1,
        encoder_causal=True, decoder_causal=False, encoder_spatial_padding_mode="zeros",
        decoder_spatial_padding_mode="zeros", spatial_compression_ratio=32, temporal_compression_ratio=8)

    # Audio VAE: three levels give the 4x time and mel compression the pipeline assumes. Its latent statistics
    # (`latents_mean`/`latents_std`, sized `base_channels`) apply to packed tokens of latent_channels x mel_bins / 4
    # features, so base_channels must equal that product: 4 x 16 / 4 = 16.
    audio_vae = AutoencoderKLLTX2Audio(
        base_channels=16, output_channels=2, ch_mult=(1, 2, 4), num_res_blocks=1, attn_resolutions=None,
        in_channels=2, resolution=32, latent_channels=4, norm_type="pixel", causality_axis="height", dropout=0.0,
        mid_block_add_attention=False, sample_rate=16000, mel_hop_length=160, is_causal=True, mel_bins=16,
        double_z=True)
    audio_tokens = audio_vae.config.latent_channels * audio_vae.config.mel_bins // 4

    # Vocoder: the real 6x5x2x2x2 = 240x upsampling of 100 mel frames a second, i.e. 24 kHz stereo.
    vocoder = LTX2Vocoder(
        in_channels=audio_vae.config.output_channels * audio_vae.config.mel_bins, hidden_channels=64, out_channels=2,
        upsample_kernel_sizes=[16, 15, 8, 4, 4], upsample_factors=[6, 5, 2, 2, 2], resnet_kernel_sizes=[3],
        resnet_dilations=[[1, 3, 5]], act_fn="leaky_relu", leaky_relu_negative_slope=0.1, antialias=False,
        final_act_fn="tanh", final_bias=True, output_sampling_rate=24000)

    transformer = LTX2VideoTransformer3DModel(**{
        **dict(in_channels=vae.config.latent_channels, out_channels=vae.config.latent_channels, patch_size=1,
               patch_size_t=1, num_attention_heads=2, attention_head_dim=8, cross_attention_dim=16,
               vae_scale_factors=(8, 32, 32), audio_in_channels=audio_tokens, audio_out_channels=audio_tokens,
               audio_num_attention_heads=2, audio_attention_head_dim=4, audio_cross_attention_dim=8,
               audio_sampling_rate=16000, audio_hop_length=160, num_layers=2, qk_norm="rms_norm_across_heads",
               caption_channels=caption_channels, rope_double_precision=False, rope_type="split",
               cross_attn_timestep_scale_multiplier=1000),
        **(transformer_overrides or {})})

    # LTX-2's (non-distilled) scheduler config.
    scheduler = FlowMatchEulerDiscreteScheduler(use_dynamic_shifting=True, base_shift=0.95, max_shift=2.05,
                                                base_image_seq_len=1024, max_image_seq_len=4096, shift_terminal=0.1)

    pipe = LTX2Pipeline(scheduler=scheduler, vae=vae, audio_vae=audio_vae, text_encoder=text_encoder,
                        tokenizer=tokenizer, connectors=connectors, transformer=transformer, vocoder=vocoder)
    pipe.save_pretrained(folder)
    # The hub's model_index.json has no entries for the optional components LTX-2 lacks (processor,
    # prompt_enhancer, duration_head); save_pretrained writes them as [null, null].
    index_path = Path(folder) / "model_index.json"
    index = json.loads(index_path.read_text())
    index = {k: v for k, v in index.items() if v != [None, None]}
    index_path.write_text(json.dumps(index, indent=2, sort_keys=True) + "\n")
    return folder
