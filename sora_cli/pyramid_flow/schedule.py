"""The pyramid's flow schedule: three stages (¼, ½ and full resolution), each a local flow from its own noisy
start to its end, while the DiT is told the global timestep; and the correlated noise that renoises a stage's
×2-upsampled result.

Numbers follow the published sampler (timesteps as float32 anchors, local sigmas from 1 to 0.001), so a port
and the reference feed the network the same values.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

TRAIN_STEPS = 1000
STAGE_RANGE = (0.0, 1 / 3, 2 / 3, 1.0)
GAMMA = 1 / 3  # correlation of the four noise values in a 2x2 block


@dataclass(frozen=True)
class Stage:
    timesteps: tuple[float, ...]  # global timesteps shown to the DiT (0..1000)
    sigmas: tuple[float, ...]  # local noise levels, one more than timesteps (ends at 0)
    start_signal: float  # signal kept at the stage's start in the global flow (0 for the first stage)


def _global_sigmas() -> np.ndarray:
    return (np.linspace(1, TRAIN_STEPS, TRAIN_STEPS, dtype=np.float32)[::-1] / np.float32(TRAIN_STEPS))


def stages(steps: list[int] | tuple[int, ...]) -> list[Stage]:
    """The schedule for `steps` Euler steps per stage."""
    sigmas = _global_sigmas()
    timesteps = sigmas * np.float32(TRAIN_STEPS)
    n = len(steps)
    starts, ends, distances = [], [], []
    for i in range(n):
        start = float(sigmas[int(STAGE_RANGE[i] * TRAIN_STEPS)])
        end_index = int(STAGE_RANGE[i + 1] * TRAIN_STEPS)
        end = float(sigmas[end_index]) if end_index < TRAIN_STEPS else 0.0
        starts.append(start)
        if i:  # the renoised start sits lower than the nominal one: the upsampled signal is stronger
            signal = 1 - start
            start = 1 - signal / (math.sqrt(1 + 1 / GAMMA) * (1 - signal) + signal)
        ends.append(end)
        distances.append(start - end)
    total = sum(distances)
    local = np.linspace(1, 0, TRAIN_STEPS + 1)[:-1]
    out = []
    for i in range(n):
        lo = sum(distances[:i]) / total if i else 0.0
        hi = sum(distances[:i + 1]) / total if i < n - 1 else 1.0
        t_max = timesteps[int(lo * TRAIN_STEPS)]
        t_min = timesteps[min(int(hi * TRAIN_STEPS), TRAIN_STEPS - 1)]
        t_end = np.linspace(t_max, t_min, TRAIN_STEPS + 1)[-2]  # float32, as the published schedule rounds it
        ts = np.linspace(float(t_max), float(t_end), steps[i])
        sig = np.linspace(float(local[0]), float(local[-1]), steps[i])
        out.append(Stage(tuple(float(t) for t in ts), (*(float(s) for s in sig), 0.0),
                         0.0 if i == 0 else 1 - starts[i]))
    return out


def renoise_coefficients(start_signal: float) -> tuple[float, float]:
    """(alpha, beta) with which an upsampled stage result and block noise start the next stage."""
    s = start_signal
    alpha = 1 / (math.sqrt(1 + 1 / GAMMA) * (1 - s) + s)
    beta = alpha * (1 - s) / math.sqrt(GAMMA)
    return alpha, beta


def block_noise(shape: tuple[int, ...], generator: torch.Generator | None = None, gamma: float = GAMMA) -> torch.Tensor:
    """Gaussian noise whose 2x2 spatial blocks have covariance (1+γ)I − γ·11ᵀ (unit variance for γ = 0 aside).

    That covariance is singular at γ = 1/3 (it has no component along the block mean), so it cannot be drawn
    through a Cholesky factor; instead x = sqrt(1+γ)·(z − c·mean(z)) with c = 1 − sqrt((1−3γ)/(1+γ)) has exactly
    that covariance for every 0 ≤ γ ≤ 1/3 (c = 1 removes the block mean entirely).
    """
    if not 0 <= gamma <= 1 / 3 + 1e-12:
        raise ValueError(f"block noise needs 0 <= gamma <= 1/3, got {gamma}")
    *lead, h, w = shape
    z = torch.randn(*lead, h // 2, 2, w // 2, 2, generator=generator)
    c = 1 - math.sqrt(max(0.0, (1 - 3 * gamma) / (1 + gamma)))
    x = math.sqrt(1 + gamma) * (z - c * z.mean(dim=(-3, -1), keepdim=True))
    return x.reshape(*shape)
