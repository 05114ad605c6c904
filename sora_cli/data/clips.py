"""Training batches rendered on the fly from the tiny world: never a held-out combination."""

from __future__ import annotations

import numpy as np

from .world import Scene, render, sample_scene

FPS = 24


def render_clips(rng: np.random.Generator, count: int, frames: int, size: int,
                 fps: int = FPS) -> tuple[np.ndarray, list[Scene]]:
    """(count, 3, frames, size, size) float32 in [-1, 1] and the scenes they show (training scenes only), the world
    filmed at `fps` (its motions are set in pixels a second at FPS: more frames a second, less motion a frame)."""
    scenes = [sample_scene(rng) for _ in range(count)]
    videos = np.stack([render(s, frames, size, size, fps=fps) for s in scenes])  # (n, F, H, W, 3) uint8
    return videos.transpose(0, 4, 1, 2, 3).astype(np.float32) / 127.5 - 1.0, scenes
