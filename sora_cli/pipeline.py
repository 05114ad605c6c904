"""Text -> latents -> frames for the native model. Writes no files; frames stream out chunk by chunk."""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import numpy as np
import torch

from .device import noise_generator
from .models.native import NativeVideoModel
from .sampling import SAMPLERS, auto_shift, classifier_free_guidance, flow_sigmas

Progress = Callable[[str, int, int], None]  # (phase, done, total)


@dataclass(frozen=True)
class Job:
    """Everything that decides one video's pixels."""

    prompt: str
    negative: str
    seed: int
    steps: int
    guidance: float
    sampler: str
    shift: float | None
    width: int
    height: int
    frames: int  # delivered
    generated_frames: int  # what the model's frame rule produced (>= frames, trimmed at the end)


def resolved_shift(model: NativeVideoModel, job: Job) -> float:
    if job.shift is not None:
        return job.shift
    _, t, h, w = model.latent_shape(job.generated_frames, job.height, job.width)
    return auto_shift(t * h * w // math.prod(model.params.dit.patch))


@torch.inference_mode()
def sample_latents(model: NativeVideoModel, job: Job, device, dtype, progress: Progress | None = None):
    """Draws the noise on the CPU from the seed, then integrates the flow from sigma=1 to 0."""
    noise = torch.randn((1, *model.latent_shape(job.generated_frames, job.height, job.width)),
                        generator=noise_generator(job.seed), dtype=torch.float32)
    x = noise.to(device=device, dtype=dtype)
    text, mask = model.encode_text([job.prompt, job.negative])

    def dit(x, sigma, batch):
        return model.dit(x, torch.full((batch,), sigma, device=device, dtype=dtype), text[:batch], mask[:batch])

    if job.guidance == 1.0:  # guidance 1 is the conditional model alone: skip the second pass
        velocity = lambda x, sigma: dit(x, sigma, 1)  # noqa: E731
    else:
        velocity = classifier_free_guidance(lambda x, sigma: dit(torch.cat([x, x]), sigma, 2).chunk(2), job.guidance)
    sigmas = flow_sigmas(job.steps, resolved_shift(model, job))
    callback = (lambda done, total: progress("denoise", done, total)) if progress else None
    return SAMPLERS[job.sampler](velocity, x, sigmas, callback)


def to_uint8(frames: torch.Tensor) -> np.ndarray:
    """(1, 3, f, H, W) in [-1, 1] -> (f, H, W, 3) uint8."""
    pixels = ((frames[0].float() + 1) * 127.5).round().clamp(0, 255).to(torch.uint8)
    return pixels.permute(1, 2, 3, 0).cpu().numpy()


def decode_frames(model: NativeVideoModel, latents: torch.Tensor, chunk: int = 4) -> Iterator[np.ndarray]:
    """Decodes `chunk` latent steps at a time; memory does not grow with the video's length."""
    stream = model.vae.decode_stream(latents, chunk)
    while True:
        with torch.inference_mode():
            frames = next(stream, None)
        if frames is None:
            return
        yield to_uint8(frames)


def generate(model: NativeVideoModel, job: Job, device, dtype, progress: Progress | None = None):
    """Yields uint8 frame chunks (f, H, W, 3), `job.frames` in all."""
    latents = sample_latents(model, job, device, dtype, progress)
    remaining = job.frames
    for frames in decode_frames(model, latents):
        frames = frames[:remaining]
        remaining -= len(frames)
        if progress:
            progress("decode", job.frames - remaining, job.frames)
        yield frames
        if remaining == 0:
            return
