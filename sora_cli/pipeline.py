"""Text -> latents -> frames for the native model. Writes no files; frames stream out chunk by chunk."""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
import torch

from .device import noise_generator
from .job import Job
from .models.native import NativeVideoModel
from .sampling import SAMPLERS, auto_shift, classifier_free_guidance, flow_sigmas

Progress = Callable[[str, int, int], None]  # (phase, done, total)


def resolved_shift(model: NativeVideoModel, job: Job) -> float:
    if job.shift is not None:
        return job.shift
    return auto_shift(model.params.dit.window * math.prod(model.latent_shape(1, *native_hw(model, job))[2:]))


def native_hw(model: NativeVideoModel, job: Job) -> tuple[int, int]:
    width, height = model.native_grid(job.width, job.height)
    return height, width


def window_plan(total: int, window: int, context: int) -> list[int]:
    """How many new latent steps each window adds: the first window makes `window`, each later one
    `window - context` (it re-reads the last `context` of the one before); the last is trimmed to `total`."""
    plan, made = [], 0
    while made < total:
        new = window if not plan else window - context
        plan.append(min(new, total - made))
        made += new
    return plan


def denoise(model, noise, sigmas, sampler, guidance, text, mask, context=None, context_mask=None, callback=None):
    """Integrates one batch of windows from noise to latents. `text` holds the conditional rows, then (with
    guidance) as many unconditional ones. Context positions start at their given latents and get zero
    velocity, so they stay exactly as given while the rest is denoised around them."""
    rows = 1 if guidance == 1.0 else 2  # guidance 1 is the conditional model alone: no second pass
    keep, given = None, {}
    if context is not None:
        keep = context_mask[:, None, :, None, None].to(noise.dtype)
        noise = noise * (1 - keep) + context * keep
        given = {"context": context.repeat(rows, 1, 1, 1, 1), "context_mask": context_mask.repeat(rows, 1)}

    def dit(x, sigma):
        x = x.repeat(rows, 1, 1, 1, 1)
        v = model.dit(x, torch.full((x.shape[0],), sigma, device=x.device, dtype=x.dtype), text, mask, **given)
        return v.chunk(rows)

    guided = classifier_free_guidance(dit, guidance) if rows == 2 else (lambda x, sigma: dit(x, sigma)[0])
    velocity = guided if keep is None else (lambda x, sigma: guided(x, sigma) * (1 - keep))
    return SAMPLERS[sampler](velocity, noise, sigmas, callback)


def latent_windows(model: NativeVideoModel, job: Job, device, dtype, progress: Progress | None = None):
    """Yields the video's latents window by window (B=1, C, n, h, w); memory stays flat however long it is.

    Every window's noise is drawn in turn on the CPU from the seed, so a seed gives the same video anywhere
    the arithmetic matches. A window shorter than the model's own is made whole and trimmed: the model only
    ever sees the window length it was trained on."""
    window, context = model.params.dit.window, model.params.dit.context
    c, total, h, w = model.latent_shape(job.generated_frames, *native_hw(model, job))
    plan = window_plan(total, window, context)
    generator = noise_generator(job.seed)
    with torch.inference_mode():
        text, mask = model.encode_text([job.prompt] + ([job.negative] if job.guidance != 1.0 else []))
    text, mask = text.to(dtype), mask
    sigmas = flow_sigmas(job.steps, resolved_shift(model, job))
    done = 0

    def callback(i, _):
        if progress:
            progress("denoise", done + i, job.steps * len(plan))

    previous = None
    for new in plan:
        noise = torch.randn((1, c, window, h, w), generator=generator, dtype=torch.float32).to(device, dtype)
        with torch.inference_mode():
            if previous is None:
                x = denoise(model, noise, sigmas, job.sampler, job.guidance, text, mask, callback=callback)
                out = x[:, :, :new]
            else:
                ctx = torch.zeros_like(noise)
                ctx[:, :, :context] = previous[:, :, -context:]
                flags = torch.zeros(1, window, dtype=torch.bool, device=device)
                flags[:, :context] = True
                x = denoise(model, noise, sigmas, job.sampler, job.guidance, text, mask, ctx, flags, callback)
                out = x[:, :, context : context + new]
        done += job.steps
        previous = x
        yield out


def to_uint8(frames: torch.Tensor) -> np.ndarray:
    """(1, 3, f, H, W) in [-1, 1] -> (f, H, W, 3) uint8."""
    pixels = ((frames[0].float() + 1) * 127.5).round().clamp(0, 255).to(torch.uint8)
    return pixels.permute(1, 2, 3, 0).cpu().numpy()


def resize(frames: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """(1, 3, f, h, w) -> (1, 3, f, height, width): bicubic up, area-weighted (antialiased) down."""
    if frames.shape[-2:] == (height, width):
        return frames
    flat = frames[0].transpose(0, 1).float()  # (f, 3, h, w)
    out = torch.nn.functional.interpolate(flat, size=(height, width), mode="bicubic", antialias=True,
                                          align_corners=False)
    return out.clamp(-1, 1).transpose(0, 1)[None]


def deliver(pieces, frames: int, progress: Progress | None = None, skip: int = 0):
    """Decoded pieces (1, 3, f, H, W) in [-1, 1] -> uint8 chunks (f, H, W, 3): the first `skip` frames dropped,
    exactly `frames` in all; stops pulling pieces once they are delivered."""
    remaining = frames
    for piece in pieces:
        chunk = to_uint8(piece)
        chunk, skip = chunk[skip:], max(0, skip - len(chunk))
        chunk = chunk[:remaining]
        remaining -= len(chunk)
        if progress:
            progress("decode", frames - remaining, frames)
        if len(chunk):
            yield chunk
        if remaining == 0:
            return


def generate(model: NativeVideoModel, job: Job, device, dtype, progress: Progress | None = None):
    """Yields uint8 frame chunks (f, H, W, 3), `job.frames` in all, decoded as each window's latents arrive."""
    decoder = model.vae.stream_decoder()

    def pieces():
        for latents in latent_windows(model, job, device, dtype, progress):
            for i in range(0, latents.shape[2], 4):  # a few latent steps per decoder pass keeps memory small
                with torch.inference_mode():
                    yield resize(decoder(latents[:, :, i : i + 4]), job.height, job.width)

    return deliver(pieces(), job.frames, progress)
