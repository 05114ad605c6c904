"""Open models (LTX-Video, Wan, CogVideoX, Mochi, HunyuanVideo) through their diffusers pipelines.

diffusers runs the text encoders, the scheduler and the transformer exactly as the reference does; sora adds
what a command-line user needs around it: the registry and the hub cache, frame and size rules, progress per
step, and a decode that streams frames into the encoder instead of holding the whole video.
"""

from __future__ import annotations

from pathlib import Path

import torch

from ..device import noise_generator, pick_device, pick_dtype, torch_dtype
from ..errors import UsageError
from ..pipeline import Job
from ..registry import FAMILY_PIPELINES, FAMILY_RULES, MODELS, FrameRule, pipeline_family
from ..weights import diffusers_folder, hub_folder
from .stream_decode import stream_decode

SCHEDULER_SHIFT = {"UniPCMultistepScheduler": "flow_shift", "FlowMatchEulerDiscreteScheduler": "shift"}


class _Latents(Exception):
    """Raised from the VAE's decode: the pipeline has finished denoising and normalised the latents."""

    def __init__(self, latents, timestep):
        super().__init__("latents ready")
        self.latents, self.timestep = latents, timestep


class DiffusersBackend:
    def __init__(self, pipe, family: str, model_id: str, device: str, dtype: str, rule: FrameRule, multiple: int):
        self.pipe, self.family, self.model_id, self.device, self.dtype = pipe, family, model_id, device, dtype
        self.rule, self.multiple = rule, multiple
        self.compiled, self.notes = False, []

    @classmethod
    def load(cls, model_ref: str, *, device: str, dtype: str, compile: bool | None) -> DiffusersBackend:
        import diffusers
        import transformers

        for library in (diffusers, transformers):  # sora draws its own progress; their bars and notices are noise
            library.utils.logging.set_verbosity_error()
            library.utils.logging.disable_progress_bar()
        device = pick_device(device)
        dtype = pick_dtype(dtype, device)
        folder, rule, multiple = _resolve(model_ref)
        index = diffusers_folder(folder)
        family, task = pipeline_family(index["_class_name"])
        if task != "t2v":
            raise UsageError(f"{model_ref} is an image-to-video checkpoint; text-to-video needs "
                             f"{FAMILY_PIPELINES[family][0]}")
        try:
            pipe = getattr(diffusers, FAMILY_PIPELINES[family][0]).from_pretrained(
                folder, dtype=torch_dtype(dtype), use_safetensors=True, local_files_only=True)
        except (OSError, ValueError) as exc:
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise UsageError(f"{folder} is not a complete {family} checkpoint ({first})") from None
        pipe.set_progress_bar_config(disable=True)
        pipe.to(device)
        return cls(pipe, family, model_ref, device, dtype, rule, multiple)

    # ---- the request --------------------------------------------------------------------------------------
    def frame_count(self, frames: int) -> int:
        try:
            return self.rule.count(frames)
        except ValueError as exc:
            raise UsageError(f"{self.model_id} renders {exc}; asked for {frames}") from None

    def fit_size(self, width: int, height: int) -> tuple[int, int, str | None]:
        """Snaps to the nearest multiple the model's VAE and patches allow (never below one multiple)."""
        m = self.multiple
        fitted = tuple(max(m, (v + m // 2) // m * m) for v in (width, height))  # halves round up
        if fitted == (width, height):
            return width, height, None
        return *fitted, (f"{self.model_id} needs sizes in multiples of {m}: rendering {fitted[0]}x{fitted[1]} "
                         f"instead of {width}x{height}")

    def prompt_notes(self, prompt: str) -> list[str]:
        return []

    # ---- rendering ----------------------------------------------------------------------------------------
    def pipeline_kwargs(self, job: Job, progress=None) -> dict:
        """The pipeline call for `job`, the same one a user of diffusers would write (plus the progress hook)."""
        kwargs = dict(prompt=job.prompt, height=job.height, width=job.width, num_frames=job.generated_frames,
                      num_inference_steps=job.steps, guidance_scale=job.guidance,
                      generator=noise_generator(job.seed))
        if self.family != "hunyuanvideo":  # Hunyuan's guidance is distilled in; a negative prompt needs true CFG
            kwargs["negative_prompt"] = job.negative
        if self.family == "ltx-video":
            kwargs["frame_rate"] = 24
        if progress:
            def on_step(pipe, i, t, tensors):
                progress("denoise", i + 1, job.steps)
                return tensors

            kwargs["callback_on_step_end"] = on_step
        return kwargs

    def render(self, job: Job, progress=None):
        pipe = self.pipe
        self._set_shift(job.shift)
        latents = self._denoise(job, progress)
        remaining = job.frames
        with torch.inference_mode():
            for piece in stream_decode(pipe.vae, latents.latents, latents.timestep):
                frames = ((piece[0].float() / 2 + 0.5).clamp(0, 1) * 255).round().to(torch.uint8)
                frames = frames.permute(1, 2, 3, 0).cpu().numpy()[:remaining]
                remaining -= len(frames)
                if progress:
                    progress("decode", job.frames - remaining, job.frames)
                if len(frames):
                    yield frames
                if remaining == 0:
                    break
        pipe.maybe_free_model_hooks()

    def _denoise(self, job: Job, progress) -> _Latents:
        """Runs the pipeline up to the VAE; the latents arrive exactly as the pipeline would decode them."""
        vae = self.pipe.vae

        def capture(latents, temb=None, return_dict=True, **_):
            raise _Latents(latents, temb)

        vae.decode = capture  # an instance attribute: shadows the method for this call only
        try:
            self.pipe(**self.pipeline_kwargs(job, progress), output_type="np")
        except _Latents as done:
            return done
        finally:
            del vae.decode
        raise RuntimeError(f"the {type(self.pipe).__name__} pipeline returned without decoding")

    def _set_shift(self, shift: float | None) -> None:
        """A preset's shift replaces the scheduler's; None keeps the one the checkpoint ships."""
        scheduler = self.pipe.scheduler
        key = SCHEDULER_SHIFT.get(type(scheduler).__name__)
        if shift is None or key is None or scheduler.config.get(key) == shift:
            return
        self.pipe.scheduler = type(scheduler).from_config(scheduler.config, **{key: shift})


def _resolve(model_ref: str) -> tuple[Path, FrameRule, int]:
    """(checkpoint folder, frame rule, size multiple) for a registry id (hub cache) or a local folder."""
    if model_ref in MODELS:
        spec = MODELS[model_ref]
        folder = hub_folder(spec.repo, spec.revision)
        if folder is None:
            raise UsageError(f"{model_ref} is not downloaded yet; run: sora models pull {model_ref}")
        return folder, spec.frames, spec.size_multiple
    folder = Path(model_ref).expanduser()
    index = diffusers_folder(folder) if folder.is_dir() else None
    if index is None:
        raise UsageError(f"{folder} is not a diffusers checkpoint folder (no model_index.json)")
    family, _ = pipeline_family(index["_class_name"])
    rule, multiple = FAMILY_RULES[family]
    return folder, rule, multiple
