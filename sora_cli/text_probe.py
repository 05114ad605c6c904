"""How well a native model's text tower tells the tiny world's words apart, measured cheaply and without rendering
through the DiT.

- cosine: of the pooled prompt (the mean the DiT's adaLN gets) and of the changed word's own state (what its
  cross-attention reads), between captions that differ in one word only (left/right, up/down, two shapes);
  1 means the DiT cannot tell the two captions apart.
- retrieval: n fresh clips (half of them held-out combinations), each encoded by the model's VAE and matched
  against its caption and every caption that differs from it in one attribute only, by a clip encoder (the text
  stage's, or one fitted here against the frozen tower: `fit_matcher`); `reversed` is the directed motions
  against their reversal alone.
"""

from __future__ import annotations

import numpy as np
import torch

from .data.clips import FPS, render_clips
from .data.world import Scene, is_held_out, render, sample_scene
from .models.clip import ATTRIBUTES, REVERSED, Captions, ClipMatcher, contrastive_loss, pooled
from .models.text import tokenize

PAIRS = {"left/right": ("left", "right"), "up/down": ("up", "down"), "circle/square": ("circle", "square"),
         "circle/triangle": ("circle", "triangle"), "square/triangle": ("square", "triangle")}


@torch.no_grad()
def word_cosines(model, n: int = 64, seed: int = 0) -> dict[str, dict[str, float]]:
    """{pair: {"pooled": cosine, "word": cosine}} averaged over n random captions holding the pair's first word."""
    rng, text, length = np.random.default_rng(seed), model.text, model.params.text.context_length
    out = {}
    for name, (a, b) in PAIRS.items():
        captions = []
        while len(captions) < n:
            caption = sample_scene(rng, held_out=True).caption
            if f" {a} " in caption:
                captions.append(caption)
        tokens_a = tokenize(captions, length)
        tokens_b = tokenize([c.replace(f" {a} ", f" {b} ") for c in captions], length)
        states_a, mask = text(tokens_a)
        states_b, _ = text(tokens_b)
        pooled_cos = torch.cosine_similarity(pooled(states_a, mask), pooled(states_b, mask), dim=-1)
        at = (tokens_a != tokens_b).float().argmax(1)  # each word is one token
        rows = torch.arange(n)
        word_cos = torch.cosine_similarity(states_a[rows, at], states_b[rows, at], dim=-1)
        out[name] = {"pooled": round(pooled_cos.mean().item(), 4), "word": round(word_cos.mean().item(), 4)}
    return out


@torch.no_grad()
def _encode(model, scenes: list[Scene], latents: int) -> torch.Tensor:
    frames = 4 * (latents - 1) + 1
    size = model.params.native_size
    clips = np.stack([render(s, frames, size, size, fps=FPS) for s in scenes])
    video = torch.from_numpy(clips.transpose(0, 4, 1, 2, 3).astype(np.float32) / 127.5 - 1.0)
    return torch.cat([model.vae.encode(video[i : i + 32]) for i in range(0, len(scenes), 32)])


@torch.no_grad()
def retrieval(model, matcher: ClipMatcher, n: int = 96, seed: int = 0, latents: int = 13) -> dict:
    """{"seen"|"held_out": {attribute: accuracy}}: how often a clip's own caption scores above every caption
    that differs from it in that attribute only."""
    rng = np.random.default_rng(seed)
    scenes = []
    for i in range(n):  # alternately seen and held-out combinations, as `sora eval --random` draws them
        scene = sample_scene(rng, held_out=i % 2 == 1)
        while i % 2 == 1 and not is_held_out(scene):
            scene = sample_scene(rng, held_out=True)
        scenes.append(scene)
    clips = matcher.embed_clips(_encode(model, scenes, latents))
    captions = Captions(model.params.text.context_length)
    words = matcher.embed_text(*model.text(captions.tokens))  # every caption of the world
    hits: dict[str, dict[str, list[bool]]] = {"seen": {}, "held_out": {}}
    for scene, row in zip(scenes, (clips @ words.T).tolist()):
        key = (scene.colour, scene.shape, scene.motion, scene.background)
        group = hits["held_out" if is_held_out(scene) else "seen"]
        score = dict(zip(captions.keys, row))
        for attribute in ATTRIBUTES:
            rivals = captions.changes(key, attribute, keep_seen=False)
            group.setdefault(attribute, []).append(all(score[key] > score[k] for k in rivals))
        if scene.motion in REVERSED:
            flipped = key[:2] + (REVERSED[scene.motion],) + key[3:]
            group.setdefault("reversed", []).append(score[key] > score[flipped])
    return {g: {a: round(float(np.mean(v)), 3) for a, v in attrs.items()} for g, attrs in hits.items()}


def fit_matcher(model, steps: int = 300, seed: int = 0, clips: int = 512, batch: int = 64, lr: float = 1e-3,
                latents: int = 13) -> ClipMatcher:
    """A fresh clip encoder fitted against the model's frozen text tower (the same loss as the text stage), so
    that any tower, the shipped one included, can be probed for retrieval."""
    rng = np.random.default_rng([seed, 7])
    torch.manual_seed(seed)
    model.text.eval().requires_grad_(False)
    with torch.no_grad():
        videos, scenes = render_clips(rng, clips, 4 * (latents - 1) + 1, model.params.native_size)
        encoded = torch.cat([model.vae.encode(torch.from_numpy(videos[i : i + 32])) for i in range(0, clips, 32)])
    length = model.params.text.context_length
    tokens = tokenize([s.caption for s in scenes], length)
    captions = Captions(length)
    matcher = ClipMatcher(model.params.vae.latent_channels, model.params.text.width)
    optimizer = torch.optim.AdamW(matcher.parameters(), lr=lr, weight_decay=0.01)
    for _ in range(steps):
        pick = torch.from_numpy(rng.integers(0, clips, batch))
        loss, _ = contrastive_loss(model.text, matcher, encoded[pick], tokens[pick],
                                   captions.hard_negatives(tokens[pick], rng))
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
    return matcher.eval().requires_grad_(False)


def text_probe(model, n: int = 96, seed: int = 0, matcher: ClipMatcher | None = None, fit_steps: int = 300) -> dict:
    """Both measures; without a matcher, one is fitted against the frozen tower first (fit_steps, seed)."""
    if matcher is None:
        matcher = fit_matcher(model, fit_steps, seed)
    return {"cosine": word_cosines(model, n, seed), "retrieval": retrieval(model, matcher.eval(), n, seed + 1)}
