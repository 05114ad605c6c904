"""Pyramid Flow (miniFLUX) natively: diffusers' Flux transformer, transformers' CLIP and T5, sora's causal VAE
and pyramid sampler (sora_cli/pyramid_flow). Frames are decoded as each latent frame is finished, straight into
the encoder."""

from __future__ import annotations

from pathlib import Path

import torch

from ..device import noise_generator, pick_device, pick_dtype, torch_dtype
from ..errors import UsageError
from ..families import FAMILIES, FrameRule
from ..job import Job
from ..pipeline import deliver
from ..pyramid_flow import checkpoint
from ..pyramid_flow.sampler import Noise, Plan, sample, total_steps
from ..pyramid_flow.text import QUALITY_SUFFIX
from ..pyramid_flow.vae import latent_frames
from ..registry import MODELS, variant_rule
from ..weights import hub_folder
from . import load_image, runtime

# per-frame latent normalisation of the miniFLUX checkpoints: the first frame is coded like an image
IMAGE_SHIFT, IMAGE_SCALE = -0.04, 1 / 1.8726
VIDEO_SHIFT, VIDEO_SCALE = -0.2343, 1 / 3.0986
TILE = 256  # pixels per VAE tile with --vae-tiling (the reference decodes tiled, always)
# guidance for the frames after the first when none is asked: the reference's generate (README: 5.0) and
# generate_i2v (its default, README and app: 4.0)
T2V_VIDEO_GUIDANCE, I2V_VIDEO_GUIDANCE = 5.0, 4.0


class PyramidFlowBackend:
    def __init__(self, parts: dict, model_id: str, device: str, dtype: str, *, rule: FrameRule, compiled: bool,
                 weights_gb: float, runtime: dict, notes: list[str]):
        self.text, self.dit, self.vae = parts["text"], parts["dit"], parts["vae"]
        self.model_id, self.device, self.dtype, self.rule = model_id, device, dtype, rule
        self.compiled, self.weights_gb, self.runtime, self.notes = compiled, weights_gb, runtime, notes
        self.family = FAMILIES["pyramid-flow"]
        self.multiple, self.tasks, self.own_sampler = self.family.size_multiple, self.family.tasks, "euler"

    @classmethod
    def load(cls, model_ref: str, *, device: str, dtype: str, compile: bool | None, offload: str = "auto",
             vae_tiling: bool | None = None, cache: str = "none", cache_threshold: float | None = None,
             **refused) -> PyramidFlowBackend:  # the rest (quantize...) were checked at their defaults
        import diffusers
        import transformers

        for library in (diffusers, transformers):
            library.utils.logging.set_verbosity_error()
            library.utils.logging.disable_progress_bar()
        device = pick_device(device)
        dtype = pick_dtype(dtype, device)
        folder, variant, rule = _resolve(model_ref)
        variant = checkpoint.check_folder(folder, variant)
        parts = ["text_encoder", "text_encoder_2", checkpoint.VAE, checkpoint.DIT_PREFIX + variant]
        needed = sum(runtime.weights_gb(folder / p, torch_dtype(dtype).itemsize) for p in parts)
        total = runtime.memory_gb()
        if device != "cuda" and total is not None and needed > total:
            raise UsageError(f"{model_ref} needs about {needed:.0f} GB for its weights in {dtype}; this machine has "
                             f"{total:.0f} GB of memory")
        if offload != "none" and offload != "auto" and device != "cuda":
            raise UsageError(f"--offload {offload} moves weights between the CPU and a GPU; on the {device} use none")
        from ..pyramid_flow.dit import load_dit
        from ..pyramid_flow.text import TextEncoders

        td = torch_dtype(dtype)
        try:
            loaded = {"text": TextEncoders(folder, td), "dit": load_dit(folder / (checkpoint.DIT_PREFIX + variant), td),
                      "vae": checkpoint.load_vae(folder, td)}
        except (OSError, ValueError, KeyError) as exc:
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise UsageError(f"{folder} is not a complete Pyramid Flow checkpoint ({first})") from None
        offload = _place(loaded, device, offload, MODELS[model_ref].vram_gb if model_ref in MODELS else None, needed)
        compiled = device == "cuda" if compile is None else compile
        if compiled:
            loaded["dit"].compile_repeated_blocks(fullgraph=True)
        tiling = bool(vae_tiling if vae_tiling is not None else offload != "none")
        ran = {"offload": offload, "vae_tiling": tiling, "cache": "none", "cache_threshold": None,
               "scheduler": "pyramid-flow-euler", "variant": variant}
        return cls(loaded, model_ref, device, dtype, rule=rule, compiled=compiled, weights_gb=needed, runtime=ran,
                   notes=[])

    # ---- the request --------------------------------------------------------------------------------------
    def frame_count(self, frames: int) -> int:
        return self.rule.count_for(self.model_id, frames)

    def fit_size(self, width: int, height: int, image: str | None = None) -> tuple[int, int, str | None]:
        """Sizes must be multiples of 64 (a 2x2 patch at a quarter of the 8x latent); others are refused, since
        a snapped size would change the picture's aspect the user asked for."""
        m = self.multiple
        if width % m == 0 and height % m == 0:
            return width, height, None
        near = "x".join(str(max(m, (v + m // 2) // m * m)) for v in (width, height))
        raise UsageError(f"{self.model_id} renders sizes in multiples of {m} (three pyramid stages of 2x2 "
                         f"patches); {width}x{height} is not: try {near}")

    def prompt_notes(self, prompt: str) -> list[str]:
        return []

    def check_task(self, image: str | None) -> None:
        return None  # text-to-video, and image-to-video from the same weights

    def job_notes(self, job: Job) -> list[str]:
        if self.device == "cuda":
            return []
        seconds = self._seconds(job, torch.get_num_threads())
        if seconds < 60:
            return []
        return [f"{self.model_id} on the {self.device.upper()}: about {self.weights_gb:.1f} GB of memory and "
                f"roughly {seconds / 60:.0f} min for {job.generated_frames} frames at {job.width}x{job.height}; "
                "a GPU is far faster"]

    def _seconds(self, job: Job, threads: int) -> float:
        """Two FLOPs per parameter per token, a batch of two for guidance; a later frame's tokens come with
        about as many again of history."""
        params = sum(p.numel() for p in self.dit.parameters())
        full = (job.height // 16) * (job.width // 16)
        plan = self._plan(job)

        def tokens(steps):
            return sum(n * full * share for n, share in zip(steps, (1 / 16, 1 / 4, 1)))

        total = tokens(plan.steps) + 2 * tokens(plan.video_steps) * (plan.latent_frames - 1)
        return 2 * params * total * 2 / (runtime.CPU_GFLOPS * 1e9 * max(threads, 1))

    # ---- rendering ----------------------------------------------------------------------------------------
    def _plan(self, job: Job) -> Plan:
        video_steps = job.video_steps if job.video_steps is not None else job.steps
        video_guidance = job.video_guidance
        if video_guidance is None:
            video_guidance = I2V_VIDEO_GUIDANCE if job.image else T2V_VIDEO_GUIDANCE
        self.runtime["video_guidance"] = video_guidance  # the recipe records what ran
        return Plan(latent_frames(job.generated_frames), job.height // 8, job.width // 8, (job.steps,) * 3,
                    (video_steps,) * 3, job.guidance, video_guidance)

    def render(self, job: Job, progress=None, verb=None):  # no verbs: its family record declares none
        plan = self._plan(job)
        generator = noise_generator(job.seed)
        total, done = total_steps(plan, bool(job.image)), 0

        def on_step():
            nonlocal done
            done += 1
            if progress:
                progress("denoise", done, total)

        with torch.inference_mode():
            velocity = self._guided(job)
            first = self._image_latent(job, generator) if job.image else None
            channels = self.vae.latent_channels
            latents = sample(velocity, plan, Noise(generator), channels, first_latent=first, on_step=on_step)
            yield from deliver(self._decode(latents), job.frames, progress)

    def _guided(self, job: Job):
        """The DiT with classifier-free guidance against the negative prompt (one batch of two)."""
        from ..pyramid_flow.dit import velocity

        offloaded = self.runtime["offload"] != "none"  # the text encoders wait on the CPU: bring them in once
        for module in self.text.modules() if offloaded else []:
            module.to(self.device)
        text = self.text.encode([job.negative, job.prompt + QUALITY_SUFFIX], self.device)
        for module in self.text.modules() if offloaded else []:
            module.to("cpu")
        dtype = torch_dtype(self.dtype)
        states, mask, pooled = text[0].to(dtype), text[1], text[2].to(dtype)

        def guided(clips, t, guidance):
            if guidance <= 1:  # as the reference: guidance off is the prompt alone, one pass
                clips = [c.to(self.device, dtype) for c in clips]
                return velocity(self.dit, clips, states[1:], mask[1:], pooled[1:], t.expand(1).to(dtype))
            clips = [torch.cat([c, c]).to(self.device, dtype) for c in clips]
            out = velocity(self.dit, clips, states, mask, pooled, t.expand(2).to(dtype))
            uncond, cond = out.chunk(2)
            return uncond + guidance * (cond - uncond)

        return guided

    def _image_latent(self, job: Job, generator) -> torch.Tensor:
        import numpy as np

        image = cover_and_crop(load_image(job.image), job.width, job.height)

        pixels = torch.from_numpy(np.asarray(image, dtype=np.float32) / 127.5 - 1).permute(2, 0, 1)[None, :, None]
        z = self.vae.encode(pixels.to(self.device, torch_dtype(self.dtype)), generator)
        return (z - IMAGE_SHIFT) * IMAGE_SCALE

    def _decode(self, latents):
        """Each latent frame decoded as it arrives: the causal VAE carries its state from frame to frame."""
        def denormalised():
            for i, z in enumerate(latents):
                yield z / IMAGE_SCALE + IMAGE_SHIFT if i == 0 else z / VIDEO_SCALE + VIDEO_SHIFT

        for frames in self.vae.stream_decode(denormalised(), TILE if self.runtime["vae_tiling"] else None):
            yield frames.float()


def _place(parts: dict, device: str, offload: str, vram_gb: float | None, weights: float) -> str:
    """Everything on the device, or (model offload) the text encoders kept on the CPU until they encode, or
    (group) the DiT's blocks streamed in one at a time."""
    if offload == "auto":
        offload = runtime.auto_offload(device, vram_gb, weights)
    if offload == "group":
        parts["dit"].enable_group_offload(onload_device=torch.device(device), offload_type="block_level",
                                          num_blocks_per_group=1)
    else:
        parts["dit"].to(device)
    parts["vae"].to(device)
    for module in parts["text"].modules():
        module.to("cpu" if offload != "none" else device)
    return offload


def _resolve(model_ref: str) -> tuple[Path, str | None, FrameRule]:
    """(folder, DiT variant or None to take the folder's only one, frame rule) of a registry id or a path."""
    if model_ref in MODELS:
        spec = MODELS[model_ref]
        folder = hub_folder(spec.repo, spec.revision, spec.hub_marker)
        if folder is None:
            raise UsageError(f"{model_ref} is not downloaded yet; run: sora models pull {model_ref}")
        return folder, spec.variant, spec.frames
    folder = checkpoint.require_folder(Path(model_ref).expanduser())
    held = checkpoint.variants(folder)
    return folder, None, variant_rule("pyramid-flow", held[0] if len(held) == 1 else None)


def cover_and_crop(image, width: int, height: int):
    """The first image as the reference's app fits it: resized (Lanczos) to cover width x height with its aspect
    kept, then the centre cut out."""
    from PIL import Image

    scale = max(width / image.width, height / image.height)
    size = (max(width, round(image.width * scale)), max(height, round(image.height * scale)))
    image = image.resize(size, Image.Resampling.LANCZOS)
    left, top = (image.width - width) // 2, (image.height - height) // 2
    return image.crop((left, top, left + width, top + height))
