"""Open models (LTX-Video, Wan, CogVideoX, Mochi, HunyuanVideo) through their diffusers pipelines.

diffusers runs the text encoders, the scheduler and the transformer exactly as the reference does; sora adds
what a command-line user needs around it: the registry and the hub cache, frame and size rules, progress per
step, and a decode that streams frames into the encoder instead of holding the whole video.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import torch

from ..device import noise_generator, pick_device, pick_dtype, torch_dtype
from ..errors import UsageError
from ..pipeline import Job, deliver
from ..registry import FAMILY_PIPELINES, FAMILY_RULES, MODELS, FrameRule, pipeline_family
from ..weights import diffusers_folder, hub_folder
from . import load_image, runtime
from .stream_decode import stream_decode

SCHEDULER_SHIFT = {"UniPCMultistepScheduler": "flow_shift", "FlowMatchEulerDiscreteScheduler": "shift"}


class _Latents(Exception):
    """Raised from the VAE's decode: the pipeline has finished denoising and normalised the latents."""

    def __init__(self, latents, timestep):
        super().__init__("latents ready")
        self.latents, self.timestep = latents, timestep


class DiffusersBackend:
    def __init__(self, pipe, family: str, model_id: str, device: str, dtype: str, *, rule: FrameRule, multiple: int,
                 tasks: tuple[str, ...], compiled: bool, weights_gb: float, runtime: dict, notes: list[str]):
        self.pipe, self.family, self.model_id, self.device, self.dtype = pipe, family, model_id, device, dtype
        self.rule, self.multiple, self.tasks, self.compiled = rule, multiple, tasks, compiled
        self.weights_gb, self.runtime, self.notes, self._i2v = weights_gb, runtime, notes, None
        # HunyuanVideo-I2V's latent-concat conditioning decodes 4 frames for the image and drops them: they are
        # generated on top of the request and skipped (its checkpoints only do i2v, so every job has them)
        concat = pipe.transformer.config.get("image_condition_type") == "latent_concat"
        self.leading_frames = 4 if family == "hunyuanvideo" and "i2v" in tasks and concat else 0

    @classmethod
    def load(cls, model_ref: str, *, device: str, dtype: str, compile: bool | None, offload: str = "auto",
             vae_tiling: bool | None = None, cache: str = "none", cache_threshold: float | None = None
             ) -> DiffusersBackend:
        import diffusers
        import transformers

        for library in (diffusers, transformers):  # sora draws its own progress; their bars and notices are noise
            library.utils.logging.set_verbosity_error()
            library.utils.logging.disable_progress_bar()
        warnings.filterwarnings("ignore", message="In CPU autocast")  # Mochi asks for fp32 autocast on purpose
        device = pick_device(device)
        dtype = pick_dtype(dtype, device)
        folder, rule, multiple = _resolve(model_ref)
        dtype_bytes = torch_dtype(dtype).itemsize
        needed, total = runtime.weights_gb(folder, dtype_bytes), runtime.memory_gb()
        if device != "cuda" and offload in ("auto", "none") and total is not None and needed > total:
            raise UsageError(f"{model_ref} needs about {needed:.0f} GB for its weights in {dtype}; this machine has "
                             f"{total:.0f} GB of memory")
        index = diffusers_folder(folder)
        family, task = pipeline_family(index["_class_name"])
        try:
            pipe = getattr(diffusers, index["_class_name"]).from_pretrained(
                folder, dtype=torch_dtype(dtype), use_safetensors=True, local_files_only=True)
        except (OSError, ValueError) as exc:
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise UsageError(f"{folder} is not a complete {family} checkpoint ({first})") from None
        pipe.set_progress_bar_config(disable=True)
        spec = MODELS.get(model_ref)
        offload = runtime.place(pipe, device=device, offload=offload, vram_gb=spec.vram_gb if spec else None,
                                weights=needed)
        if vae_tiling if vae_tiling is not None else offload != "none":
            pipe.vae.enable_tiling()
        runtime.enable_cache(pipe, cache, cache_threshold, family)
        compiled = device == "cuda" if compile is None else compile
        if compiled:
            runtime.compile_blocks(pipe)
        notes = [f"{model_ref}: model-level CPU offload (it needs more GPU memory than is free)"] \
            if offload == "model" and spec and device == "cuda" else []
        if spec is None:  # a local folder: its own VAE and patch say what sizes it takes
            multiple = max(multiple, _size_multiple(pipe))
        ran = {"offload": offload, "vae_tiling": bool(getattr(pipe.vae, "use_tiling", False)), "cache": cache,
               "cache_threshold": cache_threshold, "scheduler": type(pipe.scheduler).__name__}  # their own sampler
        return cls(pipe, family, model_ref, device, dtype, rule=rule, multiple=multiple,
                   tasks=_tasks(family, task, index, spec), compiled=compiled, weights_gb=needed, runtime=ran,
                   notes=notes)

    # ---- the request --------------------------------------------------------------------------------------
    def frame_count(self, frames: int) -> int:
        return self.rule.count_for(self.model_id, frames, self.leading_frames)

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

    def job_notes(self, job: Job) -> list[str]:
        """Before a long run on a CPU or a Mac: what it will cost, so nobody waits an hour by surprise."""
        if self.device == "cuda":
            return []
        seconds = runtime.transformer_seconds(self.pipe, job, torch.get_num_threads())
        if seconds < 60:
            return []
        free = runtime.memory_gb("SC_AVPHYS_PAGES")
        memory = f"about {self.weights_gb:.1f} GB of memory" + (f" ({free:.0f} GB free)" if free else "")
        return [f"{self.model_id} on the {self.device.upper()}: {memory} and roughly {_duration(seconds)} for "
                f"{job.steps} steps at {job.width}x{job.height}, {job.generated_frames} frames; a GPU is far faster"]

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
        if job.image:
            kwargs["image"] = load_image(job.image)
        if progress:
            def on_step(pipe, i, t, tensors):
                progress("denoise", i + 1, job.steps)
                return tensors

            kwargs["callback_on_step_end"] = on_step
        return kwargs

    def check_task(self, image: str | None) -> None:
        if image and "i2v" not in self.tasks:
            raise UsageError(f"{self.model_id} renders from text only; --image needs an image-to-video model "
                             "(sora models list, tasks i2v)")
        if not image and "t2v" not in self.tasks:
            raise UsageError(f"{self.model_id} is image-to-video: give it --image (the first frame)")

    def render(self, job: Job, progress=None):
        pipe = self.pipe
        self._set_shift(job.shift)
        latents = self._denoise(job, progress)
        with torch.inference_mode():
            yield from deliver(stream_decode(pipe.vae, latents.latents, latents.timestep), job.frames, progress,
                               skip=self.leading_frames)
        pipe.maybe_free_model_hooks()

    def _pipeline_for(self, job: Job):
        """The checkpoint's own pipeline, or for an image its image-to-video sibling on the same components."""
        if not job.image or self.pipe.__class__.__name__ != FAMILY_PIPELINES[self.family][0]:
            return self.pipe
        if self._i2v is None:
            import diffusers

            name = FAMILY_PIPELINES[self.family][1]
            if self.family == "ltx-video" and self.pipe.scheduler.config.get("use_dynamic_shifting"):
                name = "LTXImageToVideoPipeline"  # LTX-Video 0.9.0/0.9.1: the condition pipeline needs 0.9.5+
            self._i2v = getattr(diffusers, name).from_pipe(self.pipe)
            self._i2v.set_progress_bar_config(disable=True)
        return self._i2v

    def _denoise(self, job: Job, progress) -> _Latents:
        """Runs the pipeline up to the VAE; the latents arrive exactly as the pipeline would decode them."""
        pipe = self._pipeline_for(job)
        vae = pipe.vae

        def capture(latents, temb=None, return_dict=True, **_):
            raise _Latents(latents, temb)

        vae.decode = capture  # an instance attribute: shadows the method for this call only
        try:
            pipe(**self.pipeline_kwargs(job, progress), output_type="np")
        except _Latents as done:
            return done
        finally:
            del vae.decode
        raise RuntimeError(f"the {type(pipe).__name__} pipeline returned without decoding")

    def _set_shift(self, shift: float | None) -> None:
        """A preset's shift replaces the scheduler's; None keeps the one the checkpoint ships."""
        scheduler = self.pipe.scheduler
        key = SCHEDULER_SHIFT.get(type(scheduler).__name__)
        if shift is None or key is None or scheduler.config.get(key) == shift:
            return
        self.pipe.scheduler = type(scheduler).from_config(scheduler.config, **{key: shift})


def _tasks(family: str, task: str, index: dict, spec) -> tuple[str, ...]:
    """What a loaded checkpoint can do: its own task, plus image-to-video where the same weights allow it."""
    if spec is not None:
        return spec.tasks
    if task == "i2v":
        return ("i2v",)
    # LTX's condition pipeline runs on the text-to-video weights; Wan 2.2 TI2V-5B conditions by timestep
    both = family == "ltx-video" or (family == "wan" and index.get("expand_timesteps"))
    return ("t2v", "i2v") if both else ("t2v",)


def _size_multiple(pipe) -> int:
    """The VAE's spatial compression times the transformer's spatial patch (0 when the pipeline does not say)."""
    spatial = getattr(pipe, "vae_scale_factor_spatial", None) or getattr(pipe, "vae_spatial_compression_ratio", 0)
    patch = pipe.transformer.config.get("patch_size", 1) if getattr(pipe, "transformer", None) is not None else 1
    patch = patch[-1] if isinstance(patch, (list, tuple)) else patch
    return int(spatial or 0) * int(patch or 1)


def _duration(seconds: float) -> str:
    if seconds < 3600:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


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
