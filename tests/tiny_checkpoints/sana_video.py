"""Tiny random Sana-Video checkpoint in the layout of `Efficient-Large-Model/SANA-Video_2B_480p_diffusers`.

Sana-Video is a linear-attention DiT (`SanaVideoTransformer3DModel`) over Wan 2.1's 8x causal VAE
(AutoencoderKLWan), conditioned on a Gemma 2 text encoder (the decoder of gemma-2-2b-it, saved as Gemma2Model with a
GemmaTokenizer), sampled with DPMSolverMultistepScheduler in flow mode (flow_shift=8.0). Configs follow diffusers'
scripts/convert_sana_video_to_diffusers.py, which the hub repo came from.

There is one diffusers repo for both tasks: its model_index names SanaVideoPipeline, and image-to-video loads the
same folder with `SanaImageToVideoPipeline.from_pretrained(folder)` (diffusers' docs then swap in
FlowMatchEulerDiscreteScheduler; the conversion script insists on flow-Euler for i2v). So no separate i2v builder.

`sample_size=30` is the 480p model's value: with the pipeline's default `use_resolution_binning=True` it snaps the
requested size to the nearest 480p aspect-ratio bin (e.g. 624x624 for a square), renders there and resizes back; a
tiny run at 32x32 wants `use_resolution_binning=False`.
"""

from __future__ import annotations

from pathlib import Path

import torch

from . import CORPUS, _save, _wan_vae


def _gemma_tokenizer(vocab_size: int = 360):
    """Gemma's tokenizer (byte-fallback BPE, '▁' for spaces, <bos> prepended; pad=0, eos=1, bos=2, unk=3) trained
    on CORPUS."""
    import json

    from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, trainers
    from transformers import GemmaTokenizer

    tok = Tokenizer(models.BPE(unk_token="<unk>", byte_fallback=True))
    tok.normalizer = normalizers.Replace(" ", "▁")
    tok.pre_tokenizer = pre_tokenizers.Split(pattern="▁", behavior="merged_with_next")
    specials = ["<pad>", "<eos>", "<bos>", "<unk>", "<mask>"] + [f"<0x{i:02X}>" for i in range(256)]
    tok.train_from_iterator(CORPUS * 4, trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=specials))
    model = json.loads(tok.to_str())["model"]
    merges = [tuple(m) if isinstance(m, list) else tuple(m.split(" ")) for m in model["merges"]]
    return GemmaTokenizer(vocab=model["vocab"], merges=merges, add_bos_token=True)


def sana_video(folder: Path) -> Path:
    from diffusers import DPMSolverMultistepScheduler, SanaVideoPipeline, SanaVideoTransformer3DModel
    from transformers import Gemma2Config, Gemma2Model

    torch.manual_seed(0)
    tokenizer = _gemma_tokenizer()
    text_encoder = Gemma2Model(Gemma2Config(vocab_size=len(tokenizer), hidden_size=16, intermediate_size=32,
                                            num_hidden_layers=2, num_attention_heads=2, num_key_value_heads=1,
                                            head_dim=8, max_position_embeddings=2048, pad_token_id=0,
                                            eos_token_id=1, bos_token_id=2))
    transformer = SanaVideoTransformer3DModel(in_channels=16, out_channels=16, num_attention_heads=2,
                                              attention_head_dim=12, num_layers=2, num_cross_attention_heads=2,
                                              cross_attention_head_dim=12, cross_attention_dim=24,
                                              caption_channels=16, mlp_ratio=3.0, attention_bias=False,
                                              sample_size=30, patch_size=(1, 2, 2), norm_elementwise_affine=False,
                                              norm_eps=1e-6, qk_norm="rms_norm_across_heads", rope_max_seq_len=1024)
    scheduler = DPMSolverMultistepScheduler(flow_shift=8.0, use_flow_sigmas=True, prediction_type="flow_prediction")
    pipe = SanaVideoPipeline(tokenizer=tokenizer, text_encoder=text_encoder, vae=_wan_vae(), transformer=transformer,
                             scheduler=scheduler)
    return _save(pipe, folder)

