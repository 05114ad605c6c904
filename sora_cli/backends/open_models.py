"""Open models through their diffusers pipelines, one backend for every diffusers family (families.py).

diffusers runs the text encoders, the scheduler and the transformer exactly as the reference does; sora adds
what a command-line user needs around it: the registry and the hub cache, frame and size rules, progress per
step, samplers as schedulers, and a decode that streams frames into the encoder instead of holding the whole
video. Everything that differs between families is read from the family's record.
"""

from __future__ import annotations

import inspect
import warnings
from itertools import count
from pathlib import Path

import torch
from PIL import Image

from ..device import noise_generator, pick_device, pick_dtype, torch_dtype
from ..errors import UsageError
from ..families import Family, FrameRule, pipeline_family
from ..job import Job
from ..pipeline import deliver
from ..registry import MODELS, check_options
from ..video import Soundtrack, head_frames, tail_frames
from ..weights import diffusers_folder, hub_folder
from . import load_image, runtime
from .loras import LoraSet
from .quantize import check_quantize, load_arguments, quantize_loaded, quantized_gb
from .schedulers import describe, scheduler_for
from .stream_decode import stream_decode


class _Latents(Exception):
    """Raised from the VAE's decode: the pipeline has finished denoising and normalised the latents."""

    def __init__(self, latents, timestep):
        super().__init__("latents ready")
        self.latents, self.timestep = latents, timestep


class DiffusersBackend:
    own_sampler = "auto"  # the checkpoint's scheduler; the recipe's `scheduler` says which ran

    def __init__(self, pipe, family: Family, model_id: str, device: str, dtype: str, *, rule: FrameRule,
                 multiple: int, tasks: tuple[str, ...], compiled: bool, weights_gb: float, runtime: dict,
                 notes: list[str]):
        self.pipe, self.family, self.model_id, self.device, self.dtype = pipe, family, model_id, device, dtype
        self.rule, self.multiple, self.tasks, self.compiled = rule, multiple, tasks, compiled
        self.weights_gb, self.runtime, self.notes, self._i2v = weights_gb, runtime, notes, None
        self._siblings: dict = {}  # verb pipelines built on the same components (Family.verb_pipelines)
        self.own_scheduler = pipe.scheduler
        self.leading_frames = family.leading_frames(pipe) if "i2v" in tasks and family.leading_frames else 0
        self.min_side = max(multiple, family.min_side(pipe)) if family.min_side else multiple
        self.loras = LoraSet(pipe, model_id)

    @classmethod
    def load(cls, model_ref: str, *, device: str, dtype: str, compile: bool | None, offload: str = "auto",
             vae_tiling: bool | None = None, cache: str = "none", cache_threshold: float | None = None,
             quantize: str = "none", transformer: str | None = None, gpus: int = 1, parallel: str = "ulysses"
             ) -> DiffusersBackend:
        import diffusers
        import transformers

        for library in (diffusers, transformers):  # sora draws its own progress; their bars and notices are noise
            library.utils.logging.set_verbosity_error()
            library.utils.logging.disable_progress_bar()
        warnings.filterwarnings("ignore", message="In CPU autocast")  # Mochi asks for fp32 autocast on purpose
        device = pick_device(device)
        dtype = pick_dtype(dtype, device)
        check_quantize(quantize, transformer, device)
        folder, rule, multiple = _resolve(model_ref)
        index = diffusers_folder(folder)
        dtype_bytes = torch_dtype(dtype).itemsize
        needed = quantized_gb(folder, index, dtype_bytes, quantize, transformer)
        total = runtime.memory_gb()
        if device != "cuda" and offload in ("auto", "none") and total is not None and needed > total:
            raise UsageError(f"{model_ref} needs about {needed:.0f} GB for its weights in {dtype}"
                             f"{'' if quantize == 'none' else ' with ' + quantize}; this machine has {total:.0f} GB of "
                             "memory" + ("" if quantize != "none" or transformer else " (--quantize int8 halves it)"))
        family, task = pipeline_family(index["_class_name"])
        if family.audio:
            _check_audio_parts(folder, index, family)
        try:
            pipe = getattr(diffusers, index["_class_name"]).from_pretrained(
                folder, dtype=torch_dtype(dtype), use_safetensors=True, local_files_only=True,
                **load_arguments(folder, index, quantize, transformer, torch_dtype(dtype)))
        except (OSError, ValueError) as exc:
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise UsageError(f"{folder} is not a complete {family.title} checkpoint ({first})") from None
        quantize_loaded(pipe, quantize)
        pipe.set_progress_bar_config(disable=True)
        spec = MODELS.get(model_ref)
        offload = runtime.place(pipe, device=device, offload=offload, vram_gb=spec.vram_gb if spec else None,
                                weights=needed)
        if vae_tiling if vae_tiling is not None else offload != "none":
            pipe.vae.enable_tiling()
        if gpus > 1:  # a worker of parallel.render_split: this process holds 1/gpus of every sequence
            runtime.split(pipe, gpus, parallel, device, family)
        runtime.enable_cache(pipe, cache, cache_threshold, family)
        compiled = device == "cuda" if compile is None else compile
        if compiled:
            runtime.compile_blocks(pipe)
        notes = [f"{model_ref}: model-level CPU offload (it needs more GPU memory than is free)"] \
            if offload == "model" and spec and device == "cuda" else []
        if spec is None:  # a local folder: its own VAE and patch say what sizes it takes
            multiple = max(multiple, _size_multiple(pipe))
        ran = {"offload": offload, "vae_tiling": bool(getattr(pipe.vae, "use_tiling", False)), "cache": cache,
               "weights_gb": round(needed, 3),
               "cache_threshold": cache_threshold, **describe(pipe.scheduler)}
        return cls(pipe, family, model_ref, device, dtype, rule=rule, multiple=multiple,
                   tasks=_tasks(family, task, index, spec), compiled=compiled, weights_gb=needed, runtime=ran,
                   notes=notes)

    # ---- the request --------------------------------------------------------------------------------------
    def frame_count(self, frames: int) -> int:
        return self.rule.count_for(self.model_id, frames, self.leading_frames)

    def fit_size(self, width: int, height: int, image: str | None = None) -> tuple[int, int, str | None]:
        """Snaps to the nearest multiple the model's VAE and patches allow (never below one multiple); for an
        image-to-video pipeline that sizes the video from the image, the size it will render."""
        if image and self.family.i2v_size:
            fitted = tuple(self.family.i2v_size(self.pipe, load_image(image)))
            if fitted == (width, height):
                return width, height, None
            return *fitted, (f"{self.model_id} sizes image-to-video from the image: rendering {fitted[0]}x"
                             f"{fitted[1]} (its aspect ratio at the model's trained size) instead of {width}x{height}")
        m, least = self.multiple, self.min_side
        fitted = tuple(max(least, (v + m // 2) // m * m) for v in (width, height))  # halves round up
        if fitted == (width, height):
            return width, height, None
        at_least = f", at least {least}" if least > m else ""
        return *fitted, (f"{self.model_id} needs sizes in multiples of {m}{at_least}: rendering {fitted[0]}x"
                         f"{fitted[1]} instead of {width}x{height}")

    def prompt_notes(self, prompt: str) -> list[str]:
        return []

    def job_notes(self, job: Job) -> list[str]:
        """Before the run: a step count its schedule cannot take (refused), and on a CPU or a Mac what a long run
        will cost, so nobody waits an hour by surprise."""
        self.loras.prepare(job.loras)  # a LoRA that does not fit is refused here, before any render
        terminal = scheduler_for(self.own_scheduler, job.sampler, job.shift).config.get("shift_terminal")
        if terminal and job.steps < 2:  # one step stretched to end at `terminal` is 0/0: a video of NaNs
            raise UsageError(f"{self.model_id} takes at least 2 steps: its schedule is stretched to end at sigma "
                             f"{terminal}, which one step cannot do")
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
    def pipeline_kwargs(self, job: Job, progress=None, verb=None) -> dict:
        """The pipeline call for `job`, the same one a user of diffusers would write (plus the progress hook);
        a remix (verbs.py) hands its video-to-video pipeline the source's frames and strength."""
        kwargs = {"prompt": job.prompt, "height": job.height, "width": job.width,
                  self.family.frames_argument: job.generated_frames, "num_inference_steps": job.steps,
                  "guidance_scale": job.guidance, "generator": noise_generator(job.seed)}
        if not self.family.guidance_distilled:  # distilled guidance has no unconditional pass to steer
            kwargs["negative_prompt"] = job.negative
        if self.family.fps_argument:
            kwargs[self.family.fps_argument] = job.fps
        if job.image:
            kwargs["image"] = load_image(job.image)
        if verb is not None and verb.keyframes:  # in the form the family's keyframe pipeline takes them
            keys = [(load_image(k.image), k.frame(job.frames, job.fps), k.strength) for k in verb.all_keyframes()]
            kwargs.update(self.family.keyframe_arguments(self.pipe, keys, job.frames))
        if verb is not None and verb.strength is not None:
            remix = self._pipeline_for(job, verb)
            if self.family.frames_argument not in inspect.signature(remix.__call__).parameters:
                del kwargs[self.family.frames_argument]  # the video sets the length
            frames = [Image.fromarray(f) for f in head_frames(verb.source.path, job.generated_frames)]
            kwargs.update(self.family.remix_arguments(remix, frames, verb.strength, job))
        kwargs.update(self.call_arguments(job))
        if verb is not None and verb.extend:  # the source's last frames lead in; delivered after them (render)
            tail = [Image.fromarray(f) for f in tail_frames(verb.source.path, self.family.extend_frames)]
            tail = [tail[0]] * (self.family.extend_frames - len(tail)) + tail
            kwargs.update(self.family.extend_arguments(tail))
        if self.family.guidance_in_guider:  # set on its guider for the call instead (_denoise)
            del kwargs["guidance_scale"]
        if job.image and self.family.i2v_size:  # it sizes the video from the image (fit_size said to what)
            del kwargs["height"], kwargs["width"]
        if progress and _takes_step_callback(self._pipeline_for(job, verb)):  # else its progress bar counts (_denoise)
            total, done = self.family.step_callbacks(job) if self.family.step_callbacks else job.steps, count(1)

            def on_step(pipe, i, t, tensors):
                progress("denoise", min(next(done), total), total)
                return tensors

            kwargs["callback_on_step_end"] = on_step
        return kwargs

    def call_arguments(self, job: Job) -> dict:
        """The arguments the pipeline takes beyond everyone's: its family record's call_arguments (a dict, or from
        the job), then its registry entry's (a published recipe's fixed ones)."""
        extra, spec = self.family.call_arguments, MODELS.get(self.model_id)
        return {**(extra(job) if callable(extra) else extra), **(spec.call_arguments if spec else {})}

    def check_task(self, image: str | None) -> None:
        if image and "i2v" not in self.tasks:
            raise UsageError(f"{self.model_id} renders from text only; --image needs an image-to-video model "
                             "(sora models list, tasks i2v)")
        if not image and "t2v" not in self.tasks:
            raise UsageError(f"{self.model_id} is image-to-video: give it --image (the first frame)")

    def render(self, job: Job, progress=None, verb=None):
        """Yields the soundtrack first when the family makes one, then the frames as they are decoded."""
        check_options({"sampler": job.sampler, "shift": job.shift}, self.family, self.model_id)
        pipe = self._pipeline_for(job, verb)
        self.loras.prepare(job.loras)
        self.loras.apply(job.loras)
        pipe.scheduler = scheduler_for(self.own_scheduler, job.sampler, job.shift)
        self.runtime.update(describe(pipe.scheduler))
        if extra := self.call_arguments(job):  # recorded: the recipe says how the pipeline was called
            self.runtime["pipeline_arguments"] = extra
        latents, audio = self._denoise(pipe, job, progress, verb)
        if audio is not None:
            yield audio
        with torch.inference_mode():
            skip = self.leading_frames + (self.family.extend_frames if verb is not None and verb.extend else 0)
            yield from deliver(stream_decode(pipe.vae, latents.latents, latents.timestep, self.family.decode),
                               job.frames, progress, skip=skip)
        pipe.maybe_free_model_hooks()

    def _pipeline_for(self, job: Job, verb=None):
        """The checkpoint's own pipeline, for an image its image-to-video sibling, for a verb the family's pipeline
        for it, on the same components."""
        import diffusers

        for name in verb.names if verb is not None else ():
            refused = self.family.verb_refusal and self.family.verb_refusal(self.pipe, name)
            if refused:
                raise UsageError(f"{self.model_id} cannot do {name}: {refused}")
            if name not in self._siblings:
                self._siblings[name] = getattr(diffusers, self.family.verb_pipelines[name]).from_pipe(self.pipe)
                self._siblings[name].set_progress_bar_config(disable=True)
            return self._siblings[name]
        t2v = self.family.pipelines["t2v"] if "t2v" in self.family.pipelines else ()
        if not job.image or self.pipe.__class__.__name__ not in t2v:
            return self.pipe
        if self._i2v is None:
            choose = self.family.i2v_pipeline
            name = choose(self.pipe) if choose else self.family.pipelines["i2v"][0]
            self._i2v = getattr(diffusers, name).from_pipe(self.pipe)
            self._i2v.set_progress_bar_config(disable=True)
        return self._i2v

    def _denoise(self, pipe, job: Job, progress, verb=None) -> tuple[_Latents, Soundtrack | None]:
        """Runs the pipeline up to the VAE; the latents arrive exactly as the pipeline would decode them. A family
        with sound runs on past the video VAE (a 1-pixel stand-in for its frames) to decode its soundtrack."""
        from diffusers.models.autoencoders.vae import DecoderOutput

        vae = pipe.vae
        captured = []

        def capture(latents, temb=None, *args, return_dict=True, **_):
            if not self.family.audio:
                raise _Latents(latents, temb)
            captured.append(_Latents(latents, temb))
            stand_in = torch.zeros(latents.shape[0], 3, 1, 1, 1, dtype=latents.dtype, device=latents.device)
            return DecoderOutput(sample=stand_in) if return_dict else (stand_in,)

        kwargs = self.pipeline_kwargs(job, progress, verb)
        vae.decode = capture  # an instance attribute: shadows the method for this call only
        if progress and "callback_on_step_end" not in kwargs:  # no step callback: its own progress bar's updates
            pipe.progress_bar = lambda iterable=None, total=None: _StepCount(progress, iterable, total)
        guider = pipe.guider if self.family.guidance_in_guider else None
        if guider is not None:  # its guidance scale lives on its guider: a copy at the job's for this call
            pipe.guider = guider.new(guidance_scale=job.guidance)
        if self.family.global_noise:
            torch.manual_seed(job.seed)
        try:
            out = pipe(**kwargs, output_type="np")
        except _Latents as done:
            return done, None
        finally:
            del vae.decode
            pipe.__dict__.pop("progress_bar", None)
            if guider is not None:
                pipe.guider = guider
        if not captured:
            raise RuntimeError(f"the {type(pipe).__name__} pipeline returned without decoding")
        samples = out.audio[0].float().cpu().numpy()  # (channels, samples) in [-1, 1]
        return captured[0], Soundtrack(samples, int(self.family.audio(pipe)))


class _StepCount:
    """Stands in for the progress bar of a pipeline whose call takes no step callback: its updates (one a step)
    drive sora's progress."""

    def __init__(self, progress, iterable=None, total=None):
        self.progress, self.iterable, self.done = progress, iterable, 0
        self.total = total if total is not None else len(iterable)

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> bool:
        return False

    def __iter__(self):
        for item in self.iterable:
            yield item
            self.update()

    def update(self, n: int = 1) -> None:
        self.done += n
        self.progress("denoise", min(self.done, self.total), self.total)


def _takes_step_callback(pipe) -> bool:
    return "callback_on_step_end" in inspect.signature(pipe.__call__).parameters


def _tasks(family: Family, task: str, index: dict, spec) -> tuple[str, ...]:
    """What a loaded checkpoint can do: its own task, plus image-to-video where the same weights allow it."""
    if spec is not None:
        return spec.tasks
    if task != "t2v":
        return (task,)
    both = "i2v" in family.pipelines and family.i2v_from_t2v(index)
    return ("t2v", "i2v") if both else ("t2v",)


def _check_audio_parts(folder: Path, index: dict, family: Family) -> None:
    """A checkpoint of a family with sound must hold every part that makes it (one line naming what is not)."""
    missing = [part for part in family.audio_parts
               if part not in index or not (folder / part).is_dir() or not any((folder / part).iterdir())]
    if missing:
        raise UsageError(f"{folder} is missing {', '.join(missing)}: a {family.title} checkpoint needs "
                         f"{' and '.join(family.audio_parts)} to make its soundtrack")


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
    return folder, family.frames, family.size_multiple
