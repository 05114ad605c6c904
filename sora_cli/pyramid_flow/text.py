"""Pyramid Flow's text conditioning: T5 token states (with their padding mask) and CLIP's pooled embedding."""

from __future__ import annotations

from pathlib import Path

import torch

T5_TOKENS = 128  # the published model reads at most 128 T5 tokens
QUALITY_SUFFIX = ", hyper quality, Ultra HD, 8K"  # the reference appends it to every prompt it renders


class TextEncoders:
    def __init__(self, folder: Path, dtype: torch.dtype):
        from transformers import AutoTokenizer, CLIPTextModel, T5EncoderModel

        self.clip_tokenizer = AutoTokenizer.from_pretrained(folder / "tokenizer")
        self.clip = CLIPTextModel.from_pretrained(folder / "text_encoder", dtype=dtype, use_safetensors=True)
        self.t5_tokenizer = AutoTokenizer.from_pretrained(folder / "tokenizer_2")
        self.t5 = T5EncoderModel.from_pretrained(folder / "text_encoder_2", dtype=dtype, use_safetensors=True)
        for model in (self.clip, self.t5):
            model.eval().requires_grad_(False)

    def modules(self) -> list[torch.nn.Module]:
        return [self.clip, self.t5]

    @torch.no_grad()
    def encode(self, prompts: list[str], device: str) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(T5 states (b, 128, d), their mask (b, 128), CLIP pooled (b, d_clip)) for each prompt as given."""
        clip_max = min(self.clip_tokenizer.model_max_length, self.clip.config.max_position_embeddings)
        ids = self.clip_tokenizer(prompts, padding="max_length", max_length=clip_max, truncation=True,
                                  return_tensors="pt").input_ids
        pooled = self.clip(ids.to(self.clip.device)).pooler_output
        tokens = self.t5_tokenizer(prompts, padding="max_length", max_length=T5_TOKENS, truncation=True,
                                   return_tensors="pt")
        mask = tokens.attention_mask.to(self.t5.device)
        states = self.t5(tokens.input_ids.to(self.t5.device), attention_mask=mask)[0]
        return states.to(device), mask.to(device), pooled.to(device)
