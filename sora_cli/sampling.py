"""Flow-matching (rectified flow) schedules and samplers: pure functions over a velocity callable.

Convention: x(sigma) = (1 - sigma) * x0 + sigma * noise, sigma from 1 (noise) to 0 (data); the model predicts
the velocity v = dx/dsigma = noise - x0. Every sampler has the same signature and reports progress through a
plain callback; guidance is a wrapper around the velocity, not part of any sampler.
"""

from __future__ import annotations

import math
from collections.abc import Callable

Velocity = Callable[["Tensor", float], "Tensor"]  # noqa: F821  (torch stays unimported here)
Callback = Callable[[int, int], None] | None  # (steps done, total steps)


def flow_sigmas(steps: int, shift: float = 1.0) -> list[float]:
    """steps + 1 noise levels from 1 to 0; shift > 1 spends more steps at high noise (long sequences need it)."""
    if steps < 1:
        raise ValueError(f"steps must be >= 1, got {steps}")
    linear = [1.0 - i / steps for i in range(steps + 1)]
    return [shift * s / (1.0 + (shift - 1.0) * s) for s in linear]


def auto_shift(tokens: int, base: float = 0.5, top: float = 1.15, lo: int = 256, hi: int = 4096) -> float:
    """Timestep shift from the token count (Flux's rule: log-shift linear in sequence length), capped at `hi`."""
    tokens = min(max(tokens, lo), hi)
    return math.exp(base + (top - base) * (tokens - lo) / (hi - lo))


def classifier_free_guidance(pair: Callable, scale: float) -> Velocity:
    """pair(x, sigma) -> (v_cond, v_uncond); returns v_uncond + scale * (v_cond - v_uncond)."""

    def velocity(x, sigma):
        v_cond, v_uncond = pair(x, sigma)
        return v_uncond + scale * (v_cond - v_uncond)

    return velocity


def sample_euler(velocity: Velocity, x, sigmas: list[float], callback: Callback = None):
    """First order: exact when the velocity field is constant along the path."""
    total = len(sigmas) - 1
    for i in range(total):
        x = x + (sigmas[i + 1] - sigmas[i]) * velocity(x, sigmas[i])
        if callback:
            callback(i + 1, total)
    return x


def sample_heun(velocity: Velocity, x, sigmas: list[float], callback: Callback = None):
    """Second order (trapezoidal correction); the last step to sigma = 0 is plain Euler."""
    total = len(sigmas) - 1
    for i in range(total):
        s, s_next = sigmas[i], sigmas[i + 1]
        v = velocity(x, s)
        x_pred = x + (s_next - s) * v
        x = x_pred if s_next == 0 else x + (s_next - s) * 0.5 * (v + velocity(x_pred, s_next))
        if callback:
            callback(i + 1, total)
    return x


def _half_log_snr(sigma: float) -> float:
    return -math.inf if sigma >= 1.0 else math.log((1.0 - sigma) / sigma)


def sample_dpmpp_2m(velocity: Velocity, x, sigmas: list[float], callback: Callback = None):
    """DPM-Solver++(2M): multistep second order in the data prediction x0 = x - sigma * v, one call per step."""
    total = len(sigmas) - 1
    old_x0, h_last = None, None
    for i in range(total):
        s, s_next = sigmas[i], sigmas[i + 1]
        x0 = x - s * velocity(x, s)
        if s_next == 0:
            x = x0
        else:
            h = _half_log_snr(s_next) - _half_log_snr(s)
            d = x0
            if old_x0 is not None:
                r = h_last / h
                d = (1 + 1 / (2 * r)) * x0 - (1 / (2 * r)) * old_x0
            x = (s_next / s) * x - (1.0 - s_next) * math.expm1(-h) * d
            h_last = h
        old_x0 = x0
        if callback:
            callback(i + 1, total)
    return x


SAMPLERS: dict[str, Callable] = {"euler": sample_euler, "heun": sample_heun, "dpmpp_2m": sample_dpmpp_2m}
