"""The text tower: a CLIP-style causal text transformer whose per-token states condition the denoiser.

The tokenizer is OpenCLIP's byte-pair encoder and vocabulary (they ship inside open-clip-torch, so this works
offline). Its module is loaded on its own: importing the open_clip package pulls in torchvision and
torch._dynamo, seconds of start-up that a text tower this small does not need.
"""

from __future__ import annotations

import importlib.util

import torch
from torch import nn
from torch.nn import functional as F

from .params import TextParams


class TextBlock(nn.Module):
    """Pre-norm residual block: causal self-attention, then a GELU MLP (CLIP's text block)."""

    def __init__(self, width: int, heads: int):
        super().__init__()
        self.heads = heads
        self.ln_1 = nn.LayerNorm(width)
        self.qkv = nn.Linear(width, 3 * width)
        self.out = nn.Linear(width, width)
        self.ln_2 = nn.LayerNorm(width)
        self.mlp = nn.Sequential(nn.Linear(width, 4 * width), nn.GELU(), nn.Linear(4 * width, width))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, s, w = x.shape
        q, k, v = self.qkv(self.ln_1(x)).view(b, s, 3, self.heads, w // self.heads).permute(2, 0, 3, 1, 4)
        attended = F.scaled_dot_product_attention(q, k, v, is_causal=True)  # each token sees those before it
        x = x + self.out(attended.transpose(1, 2).reshape(b, s, w))
        return x + self.mlp(self.ln_2(x))


class TextEncoder(nn.Module):
    def __init__(self, p: TextParams):
        super().__init__()
        self.p = p
        weight, position = torch.empty(p.vocab_size, p.width), torch.empty(p.context_length, p.width)
        if not weight.is_meta:  # random init on meta would only cost time (it imports torch._dynamo: ~1 s)
            nn.init.normal_(weight, std=0.02)
            nn.init.normal_(position, std=0.01)
        self.token_embedding = nn.Embedding(p.vocab_size, p.width, _weight=weight)
        self.positional_embedding = nn.Parameter(position)
        self.blocks = nn.ModuleList(TextBlock(p.width, p.heads) for _ in range(p.layers))
        self.ln_final = nn.LayerNorm(p.width)

    def forward(self, tokens: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """tokens: (B, S) ids -> per-token states (B, S, width) and a mask (B, S), True up to end-of-text."""
        x = self.token_embedding(tokens) + self.positional_embedding[: tokens.shape[1]]
        for block in self.blocks:
            x = block(x)
        return self.ln_final(x), tokens != 0  # the tokenizer pads with 0


_TOKENIZER = None


def _simple_tokenizer():
    """open_clip's SimpleTokenizer, loaded without the rest of open_clip; its module builds one on import (reused:
    building the BPE tables costs about 0.1 s, a third of the smoke preset's margin)."""
    spec = importlib.util.find_spec("open_clip")
    if spec is None or not spec.submodule_search_locations:
        raise ImportError("open-clip-torch is not installed; it provides the tokenizer (pip install open-clip-torch)")
    path = f"{spec.submodule_search_locations[0]}/tokenizer.py"
    module_spec = importlib.util.spec_from_file_location("sora_cli._open_clip_tokenizer", path)
    module = importlib.util.module_from_spec(module_spec)
    module_spec.loader.exec_module(module)  # the module has no package-relative imports at load time
    made = getattr(module, "_tokenizer", None)
    return made if isinstance(made, module.SimpleTokenizer) else module.SimpleTokenizer()


def tokenize(texts: list[str], context_length: int) -> torch.Tensor:
    """CLIP BPE tokens (B, context_length), truncated with end-of-text kept."""
    global _TOKENIZER
    if _TOKENIZER is None:  # building the BPE tables takes a moment: only when first needed
        _TOKENIZER = _simple_tokenizer()
    return _TOKENIZER(texts, context_length=context_length)
