"""Text -> latents -> frames for the native model. Writes no files; frames stream out chunk by chunk."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import torch

from .device import noise_generator
from .job import Job
from .models.native import NativeVideoModel
from .sampling import SAMPLERS, auto_shift, classifier_free_guidance, flow_sigmas
from .verbs import LOOP_OVERLAP

Progress = Callable[[str, int, int], None]  # (phase, done, total)


def resolved_shift(model: NativeVideoModel, job: Job) -> float:
    if job.shift is not None:
        return job.shift
    return auto_shift(model.params.dit.window * math.prod(model.latent_shape(1, *native_hw(model, job))[2:]))


def native_hw(model: NativeVideoModel, job: Job) -> tuple[int, int]:
    width, height = model.native_grid(job.width, job.height)
    return height, width


SHOT_CONTEXT = 1  # latent steps a storyboard shot reads of the shot before (the position, not the motion)
LOOP_TAIL = 2  # latent steps of the video's start placed after its end, so that the end leads into the start


@dataclass(frozen=True)
class Shot:
    """One prompt of a storyboard, from latent step `start` on; `cut` starts it without the shot before."""

    start: int
    prompt: str
    cut: bool = False


@dataclass
class Guide:
    """What a verb fixes of a video's latents (normalised, (1, C, t, h, w)); empty for plain generation."""

    before: torch.Tensor | None = None  # extend: the source's last latent steps, which the video continues
    warmup: torch.Tensor | None = None  # extend: the latents the decoder reads first (their frames are not kept)
    known: dict[int, tuple[torch.Tensor, float]] = field(default_factory=dict)  # keyframes: step -> (latent, strength)
    source: torch.Tensor | None = None  # remix: the source's latents over the whole video
    strength: float = 1.0  # remix: the noise level the source is taken to (1: plain generation)
    shots: tuple[Shot, ...] = ()  # storyboard (empty: the job's prompt throughout)
    loop: bool = False


@dataclass(frozen=True)
class Window:
    """One denoising pass: `context` latent steps already made, then `new` ones from latent step `start` on;
    `anchored`: its first step is settled in a pass of its own first; `tail`: steps of the video's start
    after the end (a loop's last window)."""

    start: int
    context: int
    new: int
    shot: int = 0
    anchored: bool = False
    tail: int = 0


def window_plan(total: int, window: int, context: int) -> list[int]:
    """How many new latent steps each window adds: the first window makes `window`, each later one
    `window - context` (it re-reads the last `context` of the one before); the last is trimmed to `total`."""
    return [w.new for w in plan_windows(total, window, context)]


def plan_windows(total: int, window: int, context: int, *, anchor: int = 0, shots: tuple[Shot, ...] = (),
                 continues: bool = False, known: frozenset[int] = frozenset(), loop: bool = False) -> list[Window]:
    """The windows that make `total` latent steps, left to right. A window starts fresh at the video's start
    (unless it `continues` given latents) and at a storyboard cut; every other one reads the `context` steps
    before it. No window spans two shots. A loop ends with a window whose last LOOP_TAIL steps are the
    video's first ones."""
    starts = [s.start for s in shots] or [0]
    bounds = list(zip(starts, [*starts[1:], total]))
    plan, carried = [], context if continues else 0
    closing = window - context - LOOP_TAIL if loop else 0
    for index, (a, b) in enumerate(bounds):
        if index:  # a new shot keeps where things are, not where they were going: its words pick that
            carried = 0 if shots[index].cut else min(carried, SHOT_CONTEXT)
        p = a
        while p < b:
            ctx = min(carried, context)
            end = b - closing if loop and b == total and p < b - closing else b
            new = min(window - ctx, end - p)
            tail = LOOP_TAIL if loop and p + new == total else 0
            plan.append(Window(p, ctx, new, index, anchor > 0 and ctx == 0 and p not in known, tail))
            p += new
            carried = min(context, carried + new)
    return plan


def denoise(model, noise, sigmas, sampler, guidance, text, mask, context=None, hold=None, callback=None, start=None):
    """Integrates one batch of windows from noise (or from `start`, already at sigmas[0]) to latents. `text`
    holds the conditional rows, then (with guidance) as many unconditional ones.

    `hold` (B, T) gives, for each latent step, the noise level down to which it stays at `context` (a clean
    latent the model reads as given): 0 holds it to the end, 1 never. Held steps get zero velocity; a step
    released part-way goes back to its noise at that level and is denoised from there with the rest."""
    rows = 1 if guidance == 1.0 else 2  # guidance 1 is the conditional model alone: no second pass
    x = noise if start is None else start
    total = len(sigmas) - 1
    masks = [hold < s if hold is not None else None for s in sigmas[:-1]]  # held at step i: released below
    i, held_before = 0, None
    while i < total:
        j = i + 1
        while j < total and (masks[j] is None or torch.equal(masks[j], masks[i])):
            j += 1
        held, segment = masks[i], sigmas[i : j + 1]
        given = {}
        if held is not None and held.any():
            keep = held[:, None, :, None, None].to(noise.dtype)
            x = x * (1 - keep) + context * keep
            given = {"context": context.repeat(rows, 1, 1, 1, 1), "context_mask": held.repeat(rows, 1)}
        if held_before is not None:  # released now: from its own noise at this level
            released = (held_before & ~held)[:, None, :, None, None].to(noise.dtype)
            x = x * (1 - released) + ((1 - segment[0]) * context + segment[0] * noise) * released
        held_before = held

        def dit(x, sigma, given=given):
            x = x.repeat(rows, 1, 1, 1, 1)
            v = model.dit(x, torch.full((x.shape[0],), sigma, device=x.device, dtype=x.dtype), text, mask, **given)
            return v.chunk(rows)

        def step(k, _, offset=i):
            if callback:
                callback(offset + k, total)

        guided = classifier_free_guidance(dit, guidance) if rows == 2 else (lambda x, sigma: dit(x, sigma)[0])
        if given:
            free = 1 - given["context_mask"][: x.shape[0], None, :, None, None].to(noise.dtype)
            velocity = lambda x, sigma, guided=guided, free=free: guided(x, sigma) * free  # noqa: E731
        else:
            velocity = guided
        x = SAMPLERS[sampler](velocity, x, segment, step)
        i = j
    return x


def latent_windows(model: NativeVideoModel, job: Job, device, dtype, progress: Progress | None = None,
                   guide: Guide | None = None):
    """Yields the video's latents window by window (B=1, C, n, h, w); memory stays flat however long it is.

    Every window's noise is drawn in turn on the CPU from the seed, so a seed gives the same video anywhere
    the arithmetic matches. A window shorter than the model's own is made whole and trimmed: the model only
    ever sees the window length it was trained on. A `guide` (extend, remix, keyframes, storyboard, loop)
    fixes latents the windows read as context or start from."""
    guide = guide or Guide()
    window, context, anchor = model.params.dit.window, model.params.dit.context, model.params.dit.anchor
    c, total, h, w = model.latent_shape(job.generated_frames, *native_hw(model, job))
    if guide.before is not None:  # a continuation has no first frame standing alone: 4 new frames per step
        total -= 1
    shots = guide.shots or (Shot(0, job.prompt),)
    plan = plan_windows(total, window, context, anchor=anchor, shots=guide.shots, continues=guide.before is not None,
                        known=frozenset(guide.known), loop=guide.loop)
    generator = noise_generator(job.seed)
    texts = []
    with torch.inference_mode():
        for shot in shots:
            text, mask = model.encode_text([shot.prompt] + ([job.negative] if job.guidance != 1.0 else []))
            texts.append((text.to(dtype), mask))
    sigmas = flow_sigmas(job.steps, resolved_shift(model, job))
    guidance = job.guidance
    if guide.source is not None:  # remix: from the source taken to `strength`, not from noise
        sigmas = [guide.strength, *(s for s in sigmas if s < guide.strength)]
        # the prompt pushes as far as the video is redrawn: at full strength plain generation's guidance, near 0
        # the source itself (full guidance at low noise would still recolour it, guidance 5 at 0.05 by ~3/255)
        guidance = 1 + (job.guidance - 1) * guide.strength
    passes = len(plan) + sum(win.anchored for win in plan)
    done = 0

    def callback(i, _):
        if progress:
            progress("denoise", done + i, (len(sigmas) - 1) * passes)

    def fresh_noise():
        return torch.randn((1, c, window, h, w), generator=generator, dtype=torch.float32).to(device, dtype)

    made = guide.before  # the latest latent steps made (or given), of which a window reads the last `context`
    head = None  # the video's first latent steps, for a loop's last window
    for win in plan:
        first = win.start - win.context  # the latent step of the window's first position
        ctx = torch.zeros((1, c, window, h, w), device=device, dtype=dtype)
        hold = torch.ones(1, window, device=device)
        if win.context:
            ctx[:, :, : win.context] = made[:, :, -win.context:]
            hold[:, : win.context] = 0.0
        for step, (latent, strength) in guide.known.items():
            if win.start <= step < first + window:
                ctx[:, :, step - first] = latent[:, :, 0]
                hold[:, step - first] = 1.0 - strength
        if win.tail:
            at = win.context + win.new
            # after the end come the steps after the overlap's (loop_frames; the overlap in the model's frames)
            skip = 1 + model.params.frame_stride * LOOP_OVERLAP // 4
            ctx[:, :, at : at + win.tail] = head[:, :, skip : skip + win.tail]
            hold[:, at : at + win.tail] = 0.0
        text, mask = texts[win.shot]

        def run(noise, ctx=ctx, hold=hold):
            start = None
            if guide.source is not None:
                src = torch.zeros_like(noise)
                span = guide.source[:, :, first : first + window]
                src[:, :, : span.shape[2]] = span
                start = (1 - guide.strength) * src + guide.strength * noise
            given = ctx if (hold < 1).any() else None
            return denoise(model, noise, sigmas, job.sampler, guidance, text, mask, given,
                           hold if given is not None else None, callback, start)

        with torch.inference_mode():
            x = run(fresh_noise())
            done += len(sigmas) - 1
            if win.anchored:  # the start is settled; which way things go is drawn again from the words
                ctx, hold = ctx.clone(), hold.clone()
                ctx[:, :, :anchor], hold[:, :anchor] = x[:, :, :anchor], 0.0
                x = run(fresh_noise(), ctx, hold)
                done += len(sigmas) - 1
        out = x[:, :, win.context : win.context + win.new]
        if head is None:
            head = out
        made = out if made is None else torch.cat([made, out], dim=2)[:, :, -context:]
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


def generate(model: NativeVideoModel, job: Job, device, dtype, progress: Progress | None = None,
             guide: Guide | None = None):
    """Yields uint8 frame chunks (f, H, W, 3), `job.frames` in all, decoded as each window's latents arrive.

    A model with a frame stride makes that many frames for each one delivered (its own frames, at its native
    size) and every stride-th is kept, then resized; an extension keeps the one a whole frame after the source's
    last."""
    decoder = model.vae.stream_decoder()
    stride = model.params.frame_stride

    def pieces():
        if guide is not None and guide.warmup is not None:  # the decoder reads the source first, then goes on
            with torch.inference_mode():
                decoder(guide.warmup)
        for latents in latent_windows(model, job, device, dtype, progress, guide):
            for i in range(0, latents.shape[2], 4):  # a few latent steps per decoder pass keeps memory small
                with torch.inference_mode():
                    yield decoder(latents[:, :, i : i + 4])

    made = pieces()
    if guide is not None and guide.loop:
        made = loop_frames(made, stride * job.frames, stride * LOOP_OVERLAP)
    offset = stride - 1 if guide is not None and guide.before is not None else 0
    kept = (resize(piece, job.height, job.width) for piece in every(made, stride, offset))
    return deliver(kept, job.frames, progress)


def every(pieces, stride: int, offset: int = 0):
    """Pieces (1, 3, f, h, w) -> frames offset, offset + stride, ... of them all, piece by piece."""
    index = 0
    for piece in pieces:
        first = offset - index if index <= offset else (offset - index) % stride
        kept = piece[:, :, first::stride]
        index += piece.shape[2]
        if kept.shape[2]:
            yield kept


def loop_frames(pieces, frames: int, overlap: int = LOOP_OVERLAP):
    """Frames 0 .. frames + overlap (the windows made them leading into the steps after the overlap) -> one cycle
    of `frames`: frames overlap + 1 .. frames + overlap, the last `overlap` cross-faded into frames 1 .. overlap,
    so the cycle's last frame is nearly frame `overlap`, the one before its first. Frame 0, which the autoencoder
    keeps alone, is left out; memory holds `overlap` frames."""
    start, index = [], 0
    for piece in pieces:
        out = []
        for i in range(piece.shape[2]):
            frame = piece[:, :, i : i + 1]
            if 1 <= index <= overlap:
                start.append(frame)
            elif overlap < index <= frames:
                out.append(frame)
            elif frames < index <= frames + overlap:
                k = index - frames  # 1 .. overlap: more and more of the frame the cycle goes back to
                out.append(torch.lerp(frame, start[k - 1], k / (overlap + 1)))
            index += 1
        if out:
            yield torch.cat(out, dim=2)
