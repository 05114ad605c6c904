"""A tiny CLIP for the optional text stage of `sora train`: a clip encoder over VAE latents, the text tower's
pooled states projected into the same space, and captions that differ from a clip's in exactly one word.

None of this ships: the exported checkpoint keeps only the text tower it shaped.
"""

from __future__ import annotations

import itertools

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from ..data.world import BACKGROUNDS, COLOURS, MOTIONS, SHAPES, Scene, is_held_out, is_valid
from .text import tokenize

ATTRIBUTES = ("colour", "shape", "motion", "background")
VALUES = {"colour": tuple(COLOURS), "shape": SHAPES, "motion": MOTIONS, "background": tuple(BACKGROUNDS)}
NEGATIVES = ("reversed", *ATTRIBUTES)  # the one word each hard negative changes ("reversed": the motion's sign)
REVERSED = {"moving left": "moving right", "moving right": "moving left", "moving up": "moving down",
            "moving down": "moving up"}


class ClipMatcher(nn.Module):
    """Latent clips (B, C, T, H, W) and pooled text states to unit vectors in one space, and the temperature.

    Three 3D convolutions (3 latent steps, 3x3 cells each) see how the object moves between steps; the mean over
    time and space then keeps what the clip shows (colour, shape, background, the way it moves), not where."""

    def __init__(self, latent_channels: int, text_width: int, width: int = 64, dim: int = 64):
        super().__init__()
        self.clips = nn.Sequential(
            nn.Conv3d(latent_channels, width, 3, padding=1), nn.GELU(),
            nn.Conv3d(width, 2 * width, 3, stride=(1, 2, 2), padding=1), nn.GELU(),
            nn.Conv3d(2 * width, 2 * width, 3, stride=2, padding=1), nn.GELU(),
        )
        self.clip_out = nn.Linear(2 * width, dim)
        self.text_out = nn.Linear(text_width, dim)
        self.logit_scale = nn.Parameter(torch.tensor(float(np.log(1 / 0.07))))

    def embed_clips(self, latents: torch.Tensor) -> torch.Tensor:
        return F.normalize(self.clip_out(self.clips(latents).mean(dim=(2, 3, 4))), dim=-1)

    def embed_text(self, states: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        return F.normalize(self.text_out(pooled(states, mask)), dim=-1)


def pooled(states: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """The mean of the states up to end-of-text: the same pooled prompt the DiT's adaLN gets."""
    weights = mask.to(states.dtype)[..., None]
    return (states * weights).sum(1) / weights.sum(1).clamp(min=1)


class Captions:
    """Every caption of the world, tokenized once: a clip's tokens -> its scene, and one-word changes of it."""

    def __init__(self, context_length: int):
        self.keys = list(itertools.product(*(VALUES[a] for a in ATTRIBUTES)))
        self.tokens = tokenize([Scene(*k).caption for k in self.keys], context_length)
        self.index = {k: i for i, k in enumerate(self.keys)}
        self.by_tokens = {tuple(t.tolist()): k for t, k in zip(self.tokens, self.keys)}

    def changes(self, key: tuple, attribute: str, keep_seen: bool = True) -> list[tuple]:
        """The valid captions that differ from `key` in `attribute` only (held-out ones left out if others exist)."""
        at = ATTRIBUTES.index(attribute)
        out = [key[:at] + (v,) + key[at + 1:] for v in VALUES[attribute] if v != key[at]]
        out = [k for k in out if is_valid(Scene(*k))]
        seen = [k for k in out if not is_held_out(Scene(*k))]
        return seen if keep_seen and seen else out

    def hard_negatives(self, tokens: torch.Tensor, rng: np.random.Generator) -> torch.Tensor:
        """(B, S) caption tokens -> (B, 5, S): each caption with one word changed, in the order of NEGATIVES: the
        motion reversed (another motion where it has no direction), then another colour, shape, motion and
        background."""
        rows = []
        for t in tokens:
            key = self.by_tokens[tuple(t.tolist())]
            picks = []
            for negative in NEGATIVES:
                options = self.changes(key, "motion" if negative == "reversed" else negative)
                flipped = key[:2] + (REVERSED.get(key[2]),) + key[3:]
                if negative == "reversed" and flipped in options:
                    options = [flipped]
                picks.append(self.index[options[int(rng.integers(len(options)))]])
            rows.append(picks)
        return self.tokens[torch.tensor(rows)]


def contrastive_loss(text: nn.Module, matcher: ClipMatcher, latents: torch.Tensor, tokens: torch.Tensor,
                     negatives: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Symmetric InfoNCE over the batch, each clip's hard negatives added to its row of captions.

    Returns the loss and (B, K) booleans: the clip's own caption scored above each hard negative."""
    b, k, s = negatives.shape
    states, mask = text(torch.cat([tokens, negatives.reshape(b * k, s)]))
    words = matcher.embed_text(states, mask)
    clips = matcher.embed_clips(latents)
    scale = matcher.logit_scale.exp().clamp(max=100)
    logits = scale * clips @ words[:b].T  # (B, B): clip i against caption j
    twins = (tokens[:, None] == tokens[None]).all(-1) & ~torch.eye(b, dtype=torch.bool, device=tokens.device)
    logits = logits.masked_fill(twins, float("-inf"))  # the same caption elsewhere in the batch is no negative
    hard = scale * (clips[:, None] * words[b:].view(b, k, -1)).sum(-1)  # (B, K)
    target = torch.arange(b, device=tokens.device)
    loss = (F.cross_entropy(torch.cat([logits, hard], 1), target) + F.cross_entropy(logits.T, target)) / 2
    return loss, (hard < logits.diagonal()[:, None]).detach()
