"""The tiny world sora-tiny is trained and judged on: one flat shape moving over a flat background.

Captions read `a {colour} {shape} {motion} on a {background} background`. Rendering is numpy only,
anti-aliased from signed distances, and deterministic from a seed. Some combinations are held out of training
so an evaluation can tell whether the model composes attributes it has only seen apart.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np

COLOURS = {
    "red": (230, 40, 40), "green": (40, 190, 70), "blue": (50, 90, 230), "yellow": (240, 210, 40),
    "purple": (150, 70, 200), "orange": (245, 140, 30), "white": (240, 240, 240),
}
BACKGROUNDS = {"black": (15, 15, 15), "white": (235, 235, 235), "gray": (128, 128, 128), "navy": (20, 30, 80)}
SHAPES = ("circle", "square", "triangle")
MOTIONS = ("moving left", "moving right", "moving up", "moving down", "bouncing", "standing still")

SIZE = 0.30  # the shape's extent as a fraction of the frame's shorter side
CROSSING_S = 3.0  # a moving shape crosses the frame in about 3 s, then wraps around
BOUNCES_PER_S = 1.0
BOUNCE_HEIGHT = 0.5  # fraction of the frame height


@dataclass(frozen=True)
class Scene:
    colour: str
    shape: str
    motion: str
    background: str
    x: float = 0.5  # starting centre, fractions of width and height
    y: float = 0.5
    phase: float = 0.0  # bounce phase in [0, 1)

    @property
    def caption(self) -> str:
        return f"a {self.colour} {self.shape} {self.motion} on a {self.background} background"


def is_held_out(scene: Scene) -> bool:
    """The combinations never rendered into a training clip."""
    return (
        (scene.colour == "purple" and scene.shape == "triangle")
        or (scene.colour == "yellow" and scene.motion == "moving up")
        or (scene.shape == "square" and scene.motion == "bouncing")
        or (scene.colour == "orange" and scene.background == "navy")
        or (scene.colour == "white" and scene.shape == "circle" and scene.motion == "standing still")
    )


def is_valid(scene: Scene) -> bool:
    return not (scene.colour == "white" and scene.background == "white")


VOCABULARY = frozenset(
    {"a", "an", "on", "the", "background", *COLOURS, *BACKGROUNDS, *SHAPES, *" ".join(MOTIONS).split()}
)


def unknown_words(prompt: str) -> list[str]:
    """The prompt's words the tiny world never shows, in order, once each."""
    words = re.findall(r"[a-z]+(?:'[a-z]+)?", prompt.lower())
    return list(dict.fromkeys(w for w in words if w not in VOCABULARY))


_CAPTION = re.compile(
    rf"^an? ({'|'.join(COLOURS)}) ({'|'.join(SHAPES)}) ({'|'.join(MOTIONS)}) on an? ({'|'.join(BACKGROUNDS)}) "
    r"background$"
)


def parse_caption(text: str) -> Scene | None:
    """The scene a caption describes ("an", upper case and trailing punctuation accepted), or None."""
    words = re.sub(r"\s+", " ", text.strip().lower()).rstrip(".!?;, ")
    match = _CAPTION.match(words)
    return Scene(*match.groups()) if match else None


def sample_scene(rng: np.random.Generator, held_out: bool = False) -> Scene:
    """A random valid scene; with held_out=False never one of the held-out combinations."""
    while True:
        scene = Scene(
            colour=str(rng.choice(list(COLOURS))), shape=str(rng.choice(SHAPES)), motion=str(rng.choice(MOTIONS)),
            background=str(rng.choice(list(BACKGROUNDS))), x=float(rng.uniform(0, 1)), y=float(rng.uniform(0, 1)),
            phase=float(rng.uniform(0, 1)),
        )
        if is_valid(scene) and (held_out or not is_held_out(scene)):
            return scene


def centres(scene: Scene, times: np.ndarray, aspect: float) -> tuple[np.ndarray, np.ndarray]:
    """Centres at the given times (seconds), in fractions of width and height."""
    half_h = SIZE / 2 * min(1.0, aspect)  # half extent as a fraction of the height
    speed = 1.0 / CROSSING_S
    x, y = np.full_like(times, scene.x), np.full_like(times, scene.y)
    if scene.motion == "moving left":
        x = x - speed * times
    elif scene.motion == "moving right":
        x = x + speed * times
    elif scene.motion == "moving up":
        y = y - speed * times
    elif scene.motion == "moving down":
        y = y + speed * times
    elif scene.motion == "bouncing":  # |sin|: falls, touches the bottom edge, rises; no sideways drift
        floor = 1.0 - half_h
        return x, floor - BOUNCE_HEIGHT * np.abs(np.sin(np.pi * (BOUNCES_PER_S * times + scene.phase)))
    return x % 1.0, y % 1.0  # linear motions wrap around and re-enter from the opposite edge


def centre(scene: Scene, t: float, aspect: float) -> tuple[float, float]:
    """Centre at time t seconds, in fractions of width and height."""
    x, y = centres(scene, np.array([float(t)]), aspect)
    return float(x[0]), float(y[0])


def signed_distance(shape: str, px: np.ndarray, py: np.ndarray, r: float) -> np.ndarray:
    """Distance to the shape's edge (negative inside), in pixels; r is half the shape's extent in pixels."""
    if shape == "circle":
        return np.hypot(px, py) - r
    if shape == "square":
        return np.maximum(np.abs(px), np.abs(py)) - r
    # equilateral triangle pointing up, centred on its centroid, side 2r (Quilez's exact distance; y flipped
    # because image rows grow downwards)
    k = np.sqrt(3.0)
    x, y = np.abs(px) - r, -py + r / k
    fold = x + k * y > 0
    x, y = np.where(fold, (x - k * y) / 2, x), np.where(fold, (-k * x - y) / 2, y)
    x = x - np.clip(x, -2 * r, 0)
    return -np.hypot(x, y) * np.sign(y)


def render(scene: Scene, frames: int, width: int = 64, height: int = 64, fps: float = 8.0, start: float = 0.0):
    """(frames, height, width, 3) uint8 from time `start` seconds; the edge is anti-aliased by pixel coverage."""
    r = SIZE * min(width, height) / 2
    cx, cy = (c.astype(np.float32) for c in centres(scene, start + np.arange(frames) / fps, width / height))
    # offsets to the nearest wrapped copy of the centre: a shape leaving one edge re-enters from the opposite one
    px = np.arange(width, dtype=np.float32)[None, :] + 0.5
    py = np.arange(height, dtype=np.float32)[None, :] + 0.5
    dx = (px - cx[:, None] * width + width / 2) % width - width / 2  # (F, W)
    dy = (py - cy[:, None] * height + height / 2) % height - height / 2  # (F, H)
    d = signed_distance(scene.shape, dx[:, None, :], dy[:, :, None], r)  # (F, H, W)
    coverage = np.clip(0.5 - d, 0.0, 1.0)[..., None]
    colour = np.array(COLOURS[scene.colour], np.float32)
    background = np.array(BACKGROUNDS[scene.background], np.float32)
    return np.round(background + coverage * (colour - background)).astype(np.uint8)
