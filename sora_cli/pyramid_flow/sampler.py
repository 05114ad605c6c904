"""The pyramid sampler: latent frame after latent frame, each through three stages of rising resolution.

A frame starts as noise at a quarter of the latent size; each stage integrates its local flow with Euler steps,
then is upsampled ×2 (nearest) and renoised with correlated block noise for the next. Frames after the first
see the clean frames before them as history, the most recent at the stage's resolution and older ones ever
coarser (the lowest resolution holds all the rest), which keeps the token count small however long the video.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from .schedule import block_noise, renoise_coefficients, stages

LEVELS = 3  # ¼, ½ and full resolution


@dataclass(frozen=True)
class Plan:
    latent_frames: int  # including the image's latent frame for image-to-video
    latent_height: int
    latent_width: int
    steps: tuple[int, ...]  # per stage, the first frame
    video_steps: tuple[int, ...]  # per stage, every later frame
    guidance: float  # the first frame
    video_guidance: float  # later frames


class Noise:
    """Where the randomness comes from: a seeded generator (tests pass recorded noise instead)."""

    def __init__(self, generator: torch.Generator):
        self.generator = generator

    def initial(self, shape: tuple[int, ...]) -> torch.Tensor:
        return torch.randn(shape, generator=self.generator)

    def block(self, shape: tuple[int, ...]) -> torch.Tensor:
        return block_noise(shape, self.generator)


# (clips with the current one last, global timestep, guidance scale) -> guided prediction for the current clip
Velocity = Callable[[list[torch.Tensor], torch.Tensor, float], torch.Tensor]


def _per_frame(x: torch.Tensor, fn) -> torch.Tensor:
    b, c, t = x.shape[:3]
    y = fn(x.transpose(1, 2).reshape(b * t, c, *x.shape[3:]))
    return y.reshape(b, t, c, *y.shape[2:]).transpose(1, 2)


def _half(x: torch.Tensor) -> torch.Tensor:
    return _per_frame(x, lambda f: F.interpolate(f, size=(f.shape[-2] // 2, f.shape[-1] // 2), mode="bilinear"))


def _double(x: torch.Tensor) -> torch.Tensor:
    return _per_frame(x, lambda f: F.interpolate(f, size=(f.shape[-2] * 2, f.shape[-1] * 2), mode="nearest"))


def start_noise(noise: Noise, plan: Plan, channels: int) -> torch.Tensor:
    """Noise drawn at full latent size, brought down to the first stage (bilinear, ×2 to keep unit variance)."""
    x = noise.initial((1, channels, plan.latent_frames, plan.latent_height, plan.latent_width))
    for _ in range(LEVELS - 1):
        x = _half(x) * 2
    return x


def pyramid(generated: list[torch.Tensor]) -> list[torch.Tensor]:
    """The clean frames so far at ¼, ½ and full resolution (bilinear, each level from the one above)."""
    levels = [torch.cat(generated, dim=2)]
    for _ in range(LEVELS - 1):
        levels.insert(0, _half(levels[0]))
    return levels


def history(levels: list[torch.Tensor], stage: int) -> list[torch.Tensor]:
    """The clean clips a frame sees at `stage`, oldest (coarsest) first."""
    count = levels[0].shape[2]
    parts, level, back = [levels[stage][:, :, -1:]], stage, 1
    while back < count:
        level = max(level - 1, 0)
        if level == 0:
            break
        back += 1
        parts.append(levels[level][:, :, -back:-back + 1])
    if level == 0 and back < count:
        parts.append(levels[0][:, :, :-back])
    return parts[::-1]


def sample(velocity: Velocity, plan: Plan, noise: Noise, channels: int, *, first_latent: torch.Tensor | None = None,
           on_step: Callable[[], None] | None = None) -> Iterator[torch.Tensor]:
    """Yields the clean full-resolution latent frames (1, c, 1, h, w) in order; with `first_latent` (an image's)
    that frame comes first and the rest continue from it. `velocity` runs the DiT with guidance."""
    low = start_noise(noise, plan, channels)
    generated: list[torch.Tensor] = []
    if first_latent is not None:
        generated.append(first_latent)
        yield first_latent
    for index in range(len(generated), plan.latent_frames):
        is_first = not generated
        steps = plan.steps if is_first else plan.video_steps
        guidance = plan.guidance if is_first else plan.video_guidance
        # image-to-video takes noise frames from 0, as the reference does
        k = index - 1 if first_latent is not None else index
        x = low[:, :, k:k + 1]
        levels = pyramid(generated) if generated else None
        for level, stage in enumerate(stages(steps)):
            if level:
                x = _double(x)
                alpha, beta = renoise_coefficients(stage.start_signal)
                x = alpha * x + beta * noise.block(tuple(x.shape)).to(x.device, x.dtype)
            past = history(levels, level) if levels else []
            for i, t in enumerate(stage.timesteps):
                v = velocity([*past, x], torch.tensor(t, dtype=torch.float64), guidance)
                x = (x.float() + (stage.sigmas[i + 1] - stage.sigmas[i]) * v).to(v.dtype)
                if on_step:
                    on_step()
        generated.append(x)
        yield x


def total_steps(plan: Plan, image: bool) -> int:
    frames = plan.latent_frames - (1 if image else 0)
    first = 0 if image else sum(plan.steps)
    return first + sum(plan.video_steps) * (frames - (0 if image else 1))
