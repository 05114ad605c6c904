"""The text tower: an OpenCLIP text transformer whose per-token states condition the denoiser."""

from __future__ import annotations

import torch
from open_clip.tokenizer import SimpleTokenizer
from open_clip.transformer import TextTransformer
from torch import nn

from .params import TextParams


class TextEncoder(nn.Module):
    def __init__(self, p: TextParams):
        super().__init__()
        self.p = p
        self.transformer = TextTransformer(
            context_length=p.context_length,
            vocab_size=p.vocab_size,
            width=p.width,
            heads=p.heads,
            layers=p.layers,
            output_dim=None,
            proj_type="none",
            output_tokens=True,
        )

    def reset_buffers(self) -> None:
        """The causal mask is not saved with the weights; rebuild it after loading onto a real device."""
        device = self.transformer.token_embedding.weight.device
        self.transformer.attn_mask = self.transformer.build_causal_mask().to(device)

    def forward(self, tokens: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """tokens: (B, S) ids -> per-token states (B, S, width) and a mask (B, S), True up to end-of-text."""
        _, states = self.transformer(tokens)
        return states, tokens != 0  # open_clip pads with 0


_TOKENIZER: SimpleTokenizer | None = None


def tokenize(texts: list[str], context_length: int) -> torch.Tensor:
    """CLIP BPE tokens (B, context_length); the vocabulary ships inside open-clip-torch, so this works offline."""
    global _TOKENIZER
    if _TOKENIZER is None:  # building the BPE tables takes a moment: only when first needed
        _TOKENIZER = SimpleTokenizer(context_length=context_length)
    return _TOKENIZER(texts, context_length=context_length)

