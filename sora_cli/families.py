"""Model families: everything sora knows about one kind of model, in one record each. Torch-free.

A family says which backend runs it, which diffusers pipeline class does each task, what frame counts and sizes
it takes, its frame rate, how its VAE decodes in pieces, which step caches and samplers really work on it, which
of the non-universal settings (settings.py) it honours, and whether it makes sound. The named models
(registry.py) point at a family and add what differs per checkpoint (repo, native size, caps, memory).

Adding a diffusers family = its record here + its presets + a tiny checkpoint builder + its parity test.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from .errors import UsageError
from .verbs import VERBS


@dataclass(frozen=True)
class FrameRule:
    """Frame counts a model can generate: step*k + 1, optionally capped."""

    step: int
    max_frames: int | None = None

    def count(self, frames: int) -> int:
        """The smallest allowed count >= frames (the video is trimmed back to `frames`); ValueError past the cap."""
        count = frames + (-(frames - 1)) % self.step
        if self.max_frames is not None and count > self.max_frames:
            raise ValueError(f"at most {self.max_frames} frames ({self})")
        return count

    def count_for(self, model_id: str, frames: int, extra: int = 0) -> int:
        """count(frames + extra), or a UsageError naming the model, its limit and the request."""
        try:
            return self.count(frames + extra)
        except ValueError as exc:
            raise UsageError(f"{model_id} renders {exc}; asked for {frames}") from None

    def __str__(self) -> str:
        rule = f"{self.step}k+1"
        return f"{rule} up to {self.max_frames}" if self.max_frames else rule


ANY = None  # an honoured setting that takes any valid value
# sora's samplers as diffusers flow-matching schedulers (backends/schedulers.py), where a family's pipeline
# accepts them (a test renders each one on the family's tiny checkpoint)
FLOW_SAMPLERS = ("auto", "euler", "unipc", "dpmpp_2m")
# one video over several GPUs: the families whose diffusers transformer declares a context-parallel plan
SPLITS = {"gpus": ANY, "parallel": ANY}


@dataclass(frozen=True)
class Family:
    name: str
    title: str  # as its authors write it
    backend: str  # "module:Class" that runs it
    frames: FrameRule  # for a checkpoint folder; a registry model may cap it further
    size_multiple: int  # width and height (a folder's own VAE and patch may ask for more)
    fps: int
    # task -> diffusers pipeline classes that do it, the first the one sora builds from a sibling's components
    pipelines: dict[str, tuple[str, ...]] = field(default_factory=dict)
    # the non-universal settings (settings.py) it honours -> the values it takes (ANY: every valid one);
    # a setting missing here, or a value outside its tuple, is refused before the model loads
    options: dict[str, tuple | None] = field(default_factory=dict)
    # how its VAE decodes in pieces (backends/stream_decode.py): causal (Wan's per-latent-frame cache),
    # causal-attention (HunyuanVideo 1.5's convolution and attention caches), frame-batches (CogVideoX's cached
    # batches), temporal-tiles (LTX/Hunyuan blended tiles), whole
    decode: str = "whole"
    # a family with sound: its soundtrack's sample rate, read from the loaded pipeline, and the checkpoint's
    # parts that make it (None: silent)
    audio: Callable[[object], int] | None = None
    audio_parts: tuple[str, ...] = ()
    guidance_distilled: bool = False  # guidance is an input, not true CFG: no negative prompt
    fps_argument: str | None = None  # the pipeline argument that takes the frame rate (it conditions on it)
    latent_layout: str = "BCFHW"  # the transformer's hidden states, for FasterCache
    hub_marker: str = "model_index.json"  # a file every pulled copy of its repo holds
    # image-to-video on a text-to-video checkpoint: whether its weights allow it (from model_index.json), and
    # which i2v pipeline fits the loaded one (None: the first of pipelines["i2v"])
    i2v_from_t2v: Callable[[dict], bool] = lambda index: False
    i2v_pipeline: Callable[[object], str] | None = None
    leading_frames: Callable[[object], int] | None = None  # i2v frames generated for the image, then dropped
    min_side: Callable[[object], int] | None = None  # the smallest side its loaded VAE decodes (None: one multiple)
    # the pipeline's name for the frame count, and the arguments its call takes beyond the ones every family
    # gets (a dict, or a function of the job: e.g. Sana-Video's frames=, SkyReels-V2 diffusion forcing's window)
    frames_argument: str = "num_frames"
    call_arguments: dict | Callable[[object], dict] = field(default_factory=dict)
    # how often its step callback fires for a job, for the progress bar (None: once per step)
    step_callbacks: Callable[[object], int] | None = None
    global_noise: bool = False  # the pipeline also draws from torch's global RNG: seed it with the job's seed
    # guidance is the pipeline's `guider` component, not a call argument (HunyuanVideo 1.5): each call runs with a
    # copy at the job's scale, and the checkpoint's own guider is put back after
    guidance_in_guider: bool = False
    # an image-to-video pipeline that sizes the video itself from the image (it takes no height or width): the
    # (width, height) it renders, from the loaded pipeline and the PIL image (HunyuanVideo 1.5's aspect buckets)
    i2v_size: Callable[[object, object], tuple[int, int]] | None = None
    # task -> the fewest frames it renders, refused below that before loading (Kandinsky 5 image-to-video
    # normalises its first 4 latent frames against the ones after: fewer than 17 frames come out NaN)
    min_frames: dict[str, int] = field(default_factory=dict)
    # what it does beyond a prompt (verbs.py: extend, remix, storyboard, loop, keyframes); others are refused.
    # For a diffusers family: verb -> the pipeline class that does it, built on the loaded checkpoint's components
    verbs: tuple[str, ...] = ()
    verb_pipelines: dict[str, str] = field(default_factory=dict)
    # (loaded pipeline, verb) -> why this checkpoint of the family cannot do it (None: it can)
    verb_refusal: Callable[[object, str], str | None] | None = None
    # extend: the source's last frames its extend pipeline reads (then renders again, and sora skips), and the
    # arguments that hand them over (a list of PIL frames -> keyword arguments)
    extend_frames: int = 0
    extend_arguments: Callable[[list], dict] | None = None
    # remix: (loaded pipeline, the source's frames as PIL images, strength, job) -> its remix pipeline's arguments
    remix_arguments: Callable[[object, list, float, object], dict] = lambda pipe, frames, strength, job: {
        "video": frames, "strength": strength}
    # (loaded pipeline, keyframes [(PIL image, frame, strength)], frame count) -> its keyframe pipeline's arguments
    keyframe_arguments: Callable[[object, list, int], dict] | None = None
    # one video over several GPUs (--gpus): a context-parallel plan of sora's where diffusers' own (the
    # transformer's _cp_plan) does not run, and the attention modules that stay whole on every rank
    split_plan: Callable[[], dict] | None = None
    unsplit_attention: tuple[str, ...] = ()

    @property
    def tasks(self) -> tuple[str, ...]:
        return tuple(self.pipelines)

    @property
    def caches(self) -> tuple[str, ...]:
        """The step caches that skip transformer work on it (a test counts the passes)."""
        return tuple(c for c in self.options.get("cache") or () if c != "none")

    def check_length(self, model_id: str, task: str, frames: int) -> None:
        """UsageError, naming the minimum, for fewer frames than the task renders (min_frames)."""
        least = self.min_frames.get(task, 1)
        if frames < least:
            what = "image-to-video" if task == "i2v" else "text-to-video"
            raise UsageError(f"{model_id} renders {what} from {least} frames up (fewer come out blank); asked "
                             f"for {frames}")

    def task_of(self, class_name: str) -> str | None:
        """The task a pipeline class does for this family (None: not one of its pipelines)."""
        return next((task for task, names in self.pipelines.items() if class_name in names), None)


def ltx_split_plan() -> dict:
    """LTX-Video's video tokens and their rotary embedding split over the ranks, gathered after the last layer."""
    from diffusers.models._modeling_parallel import ContextParallelInput, ContextParallelOutput

    split = {"split_dim": 1, "expected_dims": 3}
    return {"": {"hidden_states": ContextParallelInput(**split, split_output=False)},
            "rope": {0: ContextParallelInput(**split, split_output=True),
                     1: ContextParallelInput(**split, split_output=True)},
            "proj_out": ContextParallelOutput(gather_dim=1, expected_dims=3)}


def _diffusers(name: str, title: str, *, caches: tuple[str, ...] = (), **record) -> Family:
    """A diffusers family: offload, VAE tiling and its step caches on top of what its record says."""
    options = {"offload": ANY, "vae_tiling": ANY, "cache": ("none", *caches), "cache_threshold": ANY, "loras": ANY,
               "quantize": ANY, "transformer": ANY,
               **record.pop("options", {})}
    return Family(name, title, "sora_cli.backends.open_models:DiffusersBackend", options=options, **record)


@dataclass(frozen=True)
class DiffusionForcingWindows:
    """SkyReels-V2 diffusion forcing past its window: the model denoises `base_num_frames` at a time (97 at 540p,
    121 at 720p, as the SkyReels-V2 README pairs them); a longer video runs window after window, each continuing
    from the last `overlap_history` frames of the one before (17, the README's) with `addnoise_condition` noise on
    them (20, its advice for long videos). Synchronous windows (ar_step 0, the README's default)."""

    window: int | None = None  # frames per window (None: by the job's resolution, as above)
    overlap: int = 17
    addnoise: float = 20.0

    def base(self, job) -> int:
        return self.window or (121 if min(job.width, job.height) >= 720 else 97)

    def arguments(self, job) -> dict:
        base = self.base(job)
        if job.generated_frames <= base:
            return {"base_num_frames": base}
        return {"base_num_frames": base, "overlap_history": self.overlap, "addnoise_condition": self.addnoise}

    def windows(self, job) -> int:
        """How many windows the pipeline runs (its own count, in latent frames of 4 video frames)."""
        latent = lambda frames: (frames - 1) // 4 + 1  # noqa: E731
        base = self.base(job)
        if job.generated_frames <= base:
            return 1
        total, window, overlap = latent(job.generated_frames), latent(base), latent(self.overlap)
        return 2 + (total - window - 1) // (window - overlap)

    def step_callbacks(self, job) -> int:
        return job.steps * self.windows(job)


SKYREELS_DF = DiffusionForcingWindows()


def ltx_remix(pipe, frames: list, strength: float, job) -> dict:
    """LTX-Video's condition pipeline edits a video from its latents (the encoder's mode, normalised as the pipeline
    normalises its own) noised to `denoise_strength`."""
    import torch
    from diffusers.pipelines.ltx.pipeline_ltx_condition import retrieve_latents

    video = pipe.video_processor.preprocess_video(frames, job.height, job.width)
    with torch.inference_mode():
        latents = retrieve_latents(pipe.vae.encode(video.to(pipe.vae.device, pipe.vae.dtype)), sample_mode="argmax")
    return {"latents": pipe._normalize_latents(latents, pipe.vae.latents_mean, pipe.vae.latents_std),
            "denoise_strength": strength}


def ltx2_conditions(keys: list) -> dict:
    """LTX-2's condition pipeline takes each keyframe as a condition: the image, its frame index, its strength."""
    from diffusers.pipelines.ltx2.pipeline_ltx2_condition import LTX2VideoCondition

    return {"conditions": [LTX2VideoCondition(frames=image, index=at, strength=strength)
                           for image, at, strength in keys]}


def first_and_last_frame(title: str, keys: list, frames: int, *, last: bool) -> dict:
    """An image-to-video pipeline's arguments: an image at frame 0 and, on a first-last-frame checkpoint (`last`),
    optionally one at the last frame; both exact."""
    at = sorted(keys, key=lambda k: k[1])
    fits = (1 <= len(at) <= 2 and at[0][1] == 0 and (len(at) == 1 or at[1][1] == frames - 1)
            and all(k[2] == 1.0 for k in keys))
    if not fits:
        asked = ", ".join(f"frame {k[1]} at strength {k[2]:g}" for k in at)
        raise UsageError(f"{title} takes keyframes at the first frame and the last (-1) only, at strength 1; "
                         f"asked for {asked}")
    if len(at) == 2 and not last:
        raise UsageError(f"this {title} checkpoint takes a first frame only: a last frame needs a first-last-frame "
                         "checkpoint (Wan 2.1 FLF2V)")
    return {"image": at[0][0], **({"last_image": at[1][0]} if len(at) == 2 else {})}


FAMILIES: dict[str, Family] = {
    f.name: f
    for f in [
        Family("native", "sora native engine", "sora_cli.backends.native:NativeBackend", FrameRule(4), 16, 24,
               options={"sampler": ("auto", "euler", "heun", "dpmpp_2m"), "shift": ANY,
                        "offload": ("auto", "none")},  # it runs whole on one device
               verbs=VERBS),
        Family("pyramid-flow", "Pyramid Flow", "sora_cli.backends.pyramid_flow:PyramidFlowBackend", FrameRule(8),
               64, 24, pipelines={"t2v": (), "i2v": ()},
               options={"video_steps": ANY, "video_guidance": ANY, "offload": ("auto", "none", "model", "group"),
                        "vae_tiling": ANY, "sampler": ("auto", "euler")},  # the pyramid's own Euler stages
               hub_marker="causal_video_vae/config.json"),
        _diffusers("ltx-video", "LTX-Video", frames=FrameRule(8), size_multiple=32, fps=24,
                   pipelines={"t2v": ("LTXPipeline",), "i2v": ("LTXConditionPipeline", "LTXImageToVideoPipeline")},
                   options={"sampler": ("auto", "euler", "unipc"), **SPLITS}, caches=("first-block", "pab"),
                   decode="temporal-tiles", fps_argument="frame_rate",
                   i2v_from_t2v=lambda index: True,  # the condition pipeline runs on the text-to-video weights
                   # LTX-Video 0.9.0/0.9.1 (dynamic shifting): the condition pipeline needs 0.9.5+
                   i2v_pipeline=lambda pipe: "LTXImageToVideoPipeline"
                   if pipe.scheduler.config.get("use_dynamic_shifting") else "LTXConditionPipeline",
                   verbs=("extend", "remix", "keyframes"),
                   verb_pipelines={"extend": "LTXConditionPipeline", "remix": "LTXConditionPipeline",
                                   "keyframes": "LTXConditionPipeline"},
                   remix_arguments=lambda pipe, frames, strength, job: ltx_remix(pipe, frames, strength, job),
                   extend_frames=17,
                   extend_arguments=lambda tail: {"video": [tail], "frame_index": [0], "strength": [1.0]},
                   keyframe_arguments=lambda pipe, keys, frames: {"image": [k[0] for k in keys],
                                                            "frame_index": [k[1] for k in keys],
                                                            "strength": [k[2] for k in keys]},
                   verb_refusal=lambda pipe, verb: "it is LTX-Video 0.9.0/0.9.1 (dynamic shifting), and "
                   "the condition pipeline this needs runs on LTX-Video 0.9.5 and later"
                   if pipe.scheduler.config.get("use_dynamic_shifting") else None,
                   # diffusers' plan also splits the prompt and its mask, which Ulysses attention does not
                   # gather back (0.42): split the video tokens alone, and attend to the whole prompt locally
                   split_plan=lambda: ltx_split_plan(), unsplit_attention=("attn2",)),
        _diffusers("wan", "Wan", frames=FrameRule(4), size_multiple=16, fps=16,
                   pipelines={"t2v": ("WanPipeline",), "i2v": ("WanImageToVideoPipeline",)},
                   options={"sampler": FLOW_SAMPLERS, "shift": ANY, **SPLITS}, caches=("first-block", "pab"),
                   decode="causal",
                   # Wan 2.2 TI2V-5B conditions by timestep: its text-to-video weights take a first frame
                   i2v_from_t2v=lambda index: bool(index.get("expand_timesteps")),
                   verbs=("remix", "keyframes"),
                   verb_pipelines={"remix": "WanVideoToVideoPipeline", "keyframes": "WanImageToVideoPipeline"},
                   # keyframes are its image-to-video weights' first and last frames (first-last-frame)
                   verb_refusal=lambda pipe, verb: "its text-to-video weights take no frames: keyframes need a Wan "
                   "image-to-video checkpoint" if verb == "keyframes" and pipe.transformer.config.in_channels
                   == pipe.transformer.config.out_channels else None,
                   keyframe_arguments=lambda pipe, keys, frames: first_and_last_frame(
                       "Wan", keys, frames, last=bool(pipe.transformer.config.get("pos_embed_seq_len")))),
        _diffusers("cogvideox", "CogVideoX", frames=FrameRule(8), size_multiple=16, fps=8,
                   pipelines={"t2v": ("CogVideoXPipeline",), "i2v": ("CogVideoXImageToVideoPipeline",)},
                   caches=("first-block", "pab", "faster"), decode="frame-batches", latent_layout="BFCHW",
                   verbs=("remix",), verb_pipelines={"remix": "CogVideoXVideoToVideoPipeline"}),
        _diffusers("mochi", "Mochi 1", frames=FrameRule(6), size_multiple=16, fps=30,
                   pipelines={"t2v": ("MochiPipeline",)}, options={"shift": ANY},
                   caches=("first-block", "pab", "faster")),
        _diffusers("hunyuanvideo", "HunyuanVideo", frames=FrameRule(4), size_multiple=16, fps=24,
                   pipelines={"t2v": ("HunyuanVideoPipeline",), "i2v": ("HunyuanVideoImageToVideoPipeline",)},
                   options={"sampler": ("auto", "euler", "unipc"), "shift": ANY},
                   caches=("first-block", "taylorseer", "pab", "faster"), decode="temporal-tiles",
                   guidance_distilled=True,
                   # HunyuanVideo-I2V's latent-concat conditioning decodes 4 frames for the image and drops them
                   leading_frames=lambda pipe: 4 if pipe.transformer.config.get("image_condition_type")
                   == "latent_concat" else 0),
        _diffusers("ltx2", "LTX-2", frames=FrameRule(8), size_multiple=32, fps=24,
                   pipelines={"t2v": ("LTX2Pipeline",), "i2v": ("LTX2ImageToVideoPipeline",)},
                   # no step cache takes hold on its transformer in diffusers 0.42 (docs/models.md, LTX-2)
                   options={"sampler": ("auto", "euler", "unipc")}, decode="temporal-tiles", fps_argument="frame_rate",
                   i2v_from_t2v=lambda index: True,  # the image-to-video pipeline runs on the same weights
                   # the vocoder's rate (24 kHz), not the audio VAE's mel rate (16 kHz)
                   audio=lambda pipe: pipe.vocoder.config.output_sampling_rate, audio_parts=("audio_vae", "vocoder"),
                   # LTX-2.0's decoder pads reflecting, which needs latents of 2x2 at least (LTX-2.3's pads zeros)
                   min_side=lambda pipe: 64 if pipe.vae.config.get("decoder_spatial_padding_mode") == "reflect"
                   else 32,
                   verbs=("extend", "keyframes"),
                   verb_pipelines={"extend": "LTX2ConditionPipeline", "keyframes": "LTX2ConditionPipeline"},
                   keyframe_arguments=lambda pipe, keys, frames: ltx2_conditions(keys),
                   extend_frames=17, extend_arguments=lambda tail: ltx2_conditions([(tail, 0, 1.0)])),
        _diffusers("hunyuanvideo15", "HunyuanVideo 1.5", frames=FrameRule(4), size_multiple=16, fps=24,
                   pipelines={"t2v": ("HunyuanVideo15Pipeline",), "i2v": ("HunyuanVideo15ImageToVideoPipeline",)},
                   # it passes its own sigmas, which DPM-Solver++ does not take; FirstBlockCache and FasterCache
                   # raise on its transformer in diffusers 0.42
                   options={"sampler": ("auto", "euler", "unipc"), "shift": ANY}, caches=("taylorseer", "pab"),
                   decode="causal-attention", guidance_in_guider=True,
                   # image-to-video: the aspect-ratio bucket nearest the image's at the transformer's target size
                   i2v_size=lambda pipe, image: pipe.video_processor.calculate_default_height_width(
                       image.height, image.width, pipe.target_size)[::-1]),
        _diffusers("kandinsky5", "Kandinsky 5", frames=FrameRule(4), size_multiple=16, fps=24,
                   pipelines={"t2v": ("Kandinsky5T2VPipeline",), "i2v": ("Kandinsky5I2VPipeline",)},
                   # no step cache skips work on it while guidance runs its two passes (docs/models.md)
                   options={"sampler": FLOW_SAMPLERS, "shift": ANY}, decode="temporal-tiles",
                   min_frames={"i2v": 17}),
        # SkyReels-V2: Wan 2.1's architecture, retrained; text-to-video and image-to-video are separate weights.
        # Its repos' scheduler keeps flow_shift 1.0: the presets set the published shift (T2V 8, I2V 5).
        _diffusers("skyreels-v2", "SkyReels-V2", frames=FrameRule(4), size_multiple=16, fps=24,
                   pipelines={"t2v": ("SkyReelsV2Pipeline",), "i2v": ("SkyReelsV2ImageToVideoPipeline",)},
                   options={"sampler": FLOW_SAMPLERS, "shift": ANY}, caches=("pab",), decode="causal"),
        # SkyReels-V2 diffusion forcing: a noise level per frame lets it run window after window past its window
        # (DiffusionForcingWindows); the same weights do image-to-video; its fps argument switches an embedding
        # (16 fps or not). No step cache: PAB needs one timestep per step, it carries one per frame.
        _diffusers("skyreels-v2-df", "SkyReels-V2 Diffusion Forcing", frames=FrameRule(4), size_multiple=16, fps=24,
                   pipelines={"t2v": ("SkyReelsV2DiffusionForcingPipeline",),
                              "i2v": ("SkyReelsV2DiffusionForcingImageToVideoPipeline",)},
                   # flow-Euler refuses the integer timesteps of its per-frame step matrix
                   options={"sampler": ("auto", "unipc", "dpmpp_2m"), "shift": ANY}, decode="causal",
                   fps_argument="fps", i2v_from_t2v=lambda index: True, call_arguments=SKYREELS_DF.arguments,
                   step_callbacks=SKYREELS_DF.step_callbacks, global_noise=True,  # addnoise: torch.randn_like
                   # extend: its video-to-video pipeline continues the source's last `overlap` frames
                   verbs=("extend",), verb_pipelines={"extend": "SkyReelsV2DiffusionForcingVideoToVideoPipeline"},
                   extend_frames=SKYREELS_DF.overlap,
                   extend_arguments=lambda tail: {"video": tail, "overlap_history": len(tail)}),
        # SANA-Video: a linear-attention DiT over Wan's VAE, one checkpoint for both tasks. Its pipelines take
        # `frames` (not rounded: sora passes 4k+1) and by default snap the size to 480p aspect-ratio bins (most
        # sizes raise): sora renders the size asked. Its transformer takes no step cache (no cache hooks).
        _diffusers("sana-video", "SANA-Video", frames=FrameRule(4), size_multiple=32, fps=16,
                   pipelines={"t2v": ("SanaVideoPipeline",), "i2v": ("SanaImageToVideoPipeline",)},
                   options={"sampler": FLOW_SAMPLERS, "shift": ANY}, decode="causal",
                   i2v_from_t2v=lambda index: True, frames_argument="frames",
                   call_arguments={"use_resolution_binning": False}),
    ]
}


def get_family(name: str) -> Family:
    if name not in FAMILIES:
        raise UsageError(f"no backend for model family '{name}'; available: {', '.join(FAMILIES)}")
    return FAMILIES[name]


def pipeline_family(class_name: str) -> tuple[Family, str]:
    """(family, task) of a diffusers pipeline class named in a checkpoint's model_index.json."""
    for family in FAMILIES.values():
        if (task := family.task_of(class_name)) is not None:
            return family, task
    known = ", ".join(name for f in FAMILIES.values() for names in f.pipelines.values() for name in names)
    raise UsageError(f"sora cannot run a {class_name} checkpoint; it runs {known}")
