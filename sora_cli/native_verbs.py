"""The verbs on the native engine: source videos, keyframe images and storyboards turned into a Guide of latents
(pipeline.py) that the windows read as context or start from."""

from __future__ import annotations

import numpy as np
import torch

from .pipeline import Guide, Shot, native_hw, resize
from .verbs import LOOP_OVERLAP

TAIL_FRAMES = 17  # extend reads the source's last 4 * 4 + 1 frames: its last `context` latent steps and one before


def to_model_frames(frames: np.ndarray, height: int, width: int, device, dtype) -> torch.Tensor:
    """(f, H, W, 3) uint8 -> (1, 3, f, height, width) in [-1, 1], area-scaled (or bicubic-scaled) to the grid."""
    video = torch.from_numpy(np.array(frames)).permute(3, 0, 1, 2)[None].float() / 127.5 - 1
    return resize(video, height, width).to(device, dtype)


def encode_frames(model, frames: np.ndarray, job, device, dtype) -> torch.Tensor:
    """Frames (a multiple of 4 plus one, the first standing alone) -> normalised latents at the job's grid."""
    height, width = native_hw(model, job)
    with torch.inference_mode():
        return model.vae.encode(to_model_frames(frames, height, width, device, dtype), chunk=4)


def pad_to_rule(frames: np.ndarray, rule: int = 4) -> np.ndarray:
    """Repeats the first frame in front until the count is rule * k + 1 (the VAE's frame rule)."""
    missing = (-(len(frames) - 1)) % rule
    return np.concatenate([np.repeat(frames[:1], missing, axis=0), frames]) if missing else frames


def at_model_rate(frames: np.ndarray, stride: int) -> np.ndarray:
    """Frames as delivered -> the model's own frames (frame_stride per delivered frame): stride - 1 blends between
    each two, so frame i stays frame stride * i."""
    if stride == 1 or len(frames) < 2:
        return frames
    a, b = frames[:-1, None].astype(np.float32), frames[1:, None].astype(np.float32)
    t = (np.arange(1, stride + 1, dtype=np.float32) / stride)[None, :, None, None, None]
    between = ((1 - t) * a + t * b).reshape(-1, *frames.shape[1:])
    return np.concatenate([frames[:1], np.round(between).astype(np.uint8)])


def source_frames(count: int, stride: int) -> int:
    """Delivered frames that make `count` of the model's own (at_model_rate)."""
    return (count - 1 + stride - 1) // stride + 1


def extend_guide(model, tail: np.ndarray, job, device, dtype) -> Guide:
    """The video continues the source's last frames: its last `context` latent steps are the first window's
    context, and the decoder reads all of them first so the new frames follow on without a seam."""
    stride = model.params.frame_stride
    tail = at_model_rate(tail[-source_frames(TAIL_FRAMES, stride) :], stride)[-TAIL_FRAMES:]
    latents = encode_frames(model, pad_to_rule(tail), job, device, dtype)
    context = model.params.dit.context
    return Guide(before=latents[:, :, -context:], warmup=latents)


def image_latent(model, image: np.ndarray, index: int, job, device, dtype) -> torch.Tensor:
    """One image as the latent of latent step `index`: step 0 holds the first frame alone, every later step
    four frames (the image held still for them)."""
    clip = image[None] if index == 0 else np.repeat(image[None], 5, axis=0)
    return encode_frames(model, clip, job, device, dtype)[:, :, -1:]


def keyframe_steps(frame: int) -> int:
    """The latent step that holds frame `frame` (step 0: frame 0; step i: frames 4i - 3 .. 4i)."""
    return (frame + 3) // 4


def keyframe_guide(model, keyframes: list[tuple[np.ndarray, int, float]], job, device, dtype,
                   guide: Guide | None = None) -> Guide:
    """Each (image, frame, strength) held at the latent step of its frame (strength 1: to the end)."""
    guide = guide or Guide()
    for image, frame, strength in keyframes:
        step = keyframe_steps(frame)
        guide.known[step] = (image_latent(model, image, step, job, device, dtype), strength)
    return guide


def storyboard_shots(verb, stride: int = 1) -> tuple[Shot, ...]:
    """Each shot from the latent step holding its first frame (frame_stride of the model's frames apiece)."""
    return tuple(Shot(keyframe_steps(stride * first), s.prompt, s.cut)
                 for s, first in zip(verb.shots, verb.shot_starts()))


def guide_for(model, verb, job, device, dtype) -> Guide | None:
    """What the native windows read for a Verb (verbs.py); None for plain generation."""
    from .backends import load_image
    from .video import head_frames, tail_frames

    if not verb.names:
        return None
    stride = model.params.frame_stride  # a delivered frame i is the model's frame stride * i
    if verb.extend:
        guide = extend_guide(model, tail_frames(verb.source.path, TAIL_FRAMES), job, device, dtype)
    else:
        guide = Guide(shots=storyboard_shots(verb, stride))
    guide.loop = verb.loop
    if verb.strength is not None:  # remix: the source's latents, taken to noise level `strength`
        made = job.generated_frames
        head = head_frames(verb.source.path, source_frames(made, stride))
        guide.source = encode_frames(model, at_model_rate(head, stride)[:made], job, device, dtype)
        guide.strength = verb.strength
    skipped = 1 + stride * LOOP_OVERLAP if verb.loop else 0  # where a loop's cycle starts (pipeline.loop_frames)
    keyframes = [(np.asarray(load_image(k.image)), stride * k.frame(job.frames, job.fps) + skipped, k.strength)
                 for k in verb.all_keyframes()]
    return keyframe_guide(model, keyframes, job, device, dtype, guide)
