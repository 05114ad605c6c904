"""Named models: one registry in code. Torch-free, so listing models and checking requests stays cheap.

Each entry says where the weights live (packaged, or a diffusers-format hub repo), what the model can render
(sizes, frame rule, fps, tasks) and what it costs; its default recipe lives in the preset of the same name.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from .errors import UsageError
from .families import FAMILIES, Family, FrameRule
from .models.params import ModelParams


@dataclass(frozen=True)
class ModelSpec:
    id: str
    family: str  # the backend that runs it
    description: str
    native_size: tuple[int, int]  # (width, height) it was trained at
    tasks: tuple[str, ...]  # t2v (text-to-video), i2v (image-to-video)
    parameters: str  # as published, e.g. "1.3B"
    # where it differs from its family's record (None: the family's): frame rate, frame rule (a cap, most often),
    # the multiple width and height must be of
    fps: int | None = None
    frames: FrameRule | None = None
    size_multiple: int | None = None
    vram_gb: float | None = None  # published (or measured) peak for the native size with the preset's settings
    repo: str | None = None  # diffusers-format hub repo; None for packaged weights
    revision: str | None = None  # pinned hub revision (None: main)
    gated: bool = False  # the hub asks for a licence click-through and HF_TOKEN
    weights: str | None = None  # packaged weights file (native models)
    params: ModelParams | None = None  # native architecture
    published_speed: str = ""
    preset_name: str | None = None  # the shipped preset holding its default recipe (None: the same name as id)
    variant: str | None = None  # a repo holding several models (Pyramid Flow's 384p and 768p DiTs): this one
    # what a pull fetches (hub allow patterns) from a repo that also holds other formats (None: all of it but
    # pickles and media)
    hub_files: tuple[str, ...] | None = None
    # pipeline arguments its published recipe fixes beyond sora's settings (a distilled checkpoint's trained
    # `sigmas`, whose length is then the only step count it takes)
    call_arguments: dict = field(default_factory=dict, hash=False)

    def __post_init__(self):
        for name in ("fps", "frames", "size_multiple"):
            if getattr(self, name) is None:
                object.__setattr__(self, name, getattr(FAMILIES[self.family], name))

    @property
    def frame_rule(self) -> str:
        return str(self.frames)

    @property
    def preset(self) -> str:
        return self.preset_name or self.id

    @property
    def fixed_steps(self) -> int | None:
        """The step count its trained schedule allows (None: any)."""
        sigmas = self.call_arguments.get("sigmas")
        return len(sigmas) if sigmas else None

    @property
    def record(self) -> Family:
        """Its family's record: backend, pipelines, decode, options honoured."""
        return FAMILIES[self.family]

    @property
    def hub_marker(self) -> str:
        """A file every pulled copy of its repo holds."""
        return self.record.hub_marker


def _native() -> ModelSpec:
    params = ModelParams()
    return ModelSpec(
        id="sora-tiny", family="native", description="the embedded model: renders offline on a laptop CPU",
        native_size=(params.native_size, params.native_size), fps=24, tasks=("t2v",),
        frames=FrameRule(params.vae.temporal_factor), size_multiple=16, parameters="11M", vram_gb=0.2,
        weights="sora-tiny.safetensors", params=params, preset_name="default",
    )


PYRAMID_REPO = "rain1011/pyramid-flow-miniflux"
LTX2_FILES = ("model_index.json", *(f"{part}/*" for part in ("transformer", "vae", "audio_vae", "vocoder", "connectors",
                                                             "text_encoder", "tokenizer", "scheduler")))
# The distilled LTX-2's recipe (diffusers' docs, DISTILLED_SIGMA_VALUES in diffusers.pipelines.ltx2.utils): its 8
# trained sigmas and no guidance. diffusers 0.42's LTX-2 pipeline guides the sound (7), perturbs a block (STG 1)
# and isolates the modalities (3) by default even at guidance_scale 1, so those are switched off too.
LTX2_DISTILLED = {"sigmas": [1.0, 0.99375, 0.9875, 0.98125, 0.975, 0.909375, 0.725, 0.421875],
                  "audio_guidance_scale": 1.0, "stg_scale": 0.0, "audio_stg_scale": 0.0, "modality_scale": 1.0,
                  "audio_modality_scale": 1.0}

MODELS: dict[str, ModelSpec] = {
    spec.id: spec
    for spec in [
        _native(),
        ModelSpec(
            id="ltx-video", family="ltx-video", description="Lightricks LTX-Video 0.9: fast, 24 fps",
            native_size=(704, 480), tasks=("t2v", "i2v"), frames=FrameRule(8, 257),
            parameters="2B", vram_gb=12, repo="Lightricks/LTX-Video",
            published_speed="faster than real time on an H100 (768x512)",
        ),
        ModelSpec(
            id="wan2.1-t2v-1.3b", family="wan", description="Wan 2.1 text-to-video, small: consumer GPUs",
            native_size=(832, 480), tasks=("t2v",),
            parameters="1.3B", vram_gb=8.2, repo="Wan-AI/Wan2.1-T2V-1.3B-Diffusers",
            published_speed="5 s of 480p in about 4 min on an RTX 4090",
        ),
        ModelSpec(
            id="wan2.1-t2v-14b", family="wan", description="Wan 2.1 text-to-video, large: 480p and 720p",
            native_size=(1280, 720), tasks=("t2v",),
            parameters="14B", vram_gb=40, repo="Wan-AI/Wan2.1-T2V-14B-Diffusers",
        ),
        ModelSpec(
            id="wan2.1-i2v-14b-480p", family="wan", description="Wan 2.1 image-to-video, 480p",
            native_size=(832, 480), tasks=("i2v",),
            parameters="14B", vram_gb=40, repo="Wan-AI/Wan2.1-I2V-14B-480P-Diffusers",
        ),
        ModelSpec(
            id="wan2.2-t2v-a14b", family="wan", description="Wan 2.2 text-to-video, two 14B experts (high/low noise)",
            native_size=(1280, 720), tasks=("t2v",),
            parameters="A14B (2x14B)", vram_gb=80, repo="Wan-AI/Wan2.2-T2V-A14B-Diffusers",
        ),
        ModelSpec(
            id="wan2.2-i2v-a14b", family="wan", description="Wan 2.2 image-to-video, two 14B experts",
            native_size=(1280, 720), tasks=("i2v",),
            parameters="A14B (2x14B)", vram_gb=80, repo="Wan-AI/Wan2.2-I2V-A14B-Diffusers",
        ),
        ModelSpec(
            id="wan2.2-ti2v-5b", family="wan", description="Wan 2.2 text/image-to-video 5B: 720p at 24 fps",
            native_size=(1280, 704), fps=24, tasks=("t2v", "i2v"), size_multiple=32,
            parameters="5B", vram_gb=24, repo="Wan-AI/Wan2.2-TI2V-5B-Diffusers",
            published_speed="5 s of 720p in under 9 min on one RTX 4090",
        ),
        ModelSpec(
            id="cogvideox-2b", family="cogvideox", description="CogVideoX 2B: 6 s at 8 fps, 720x480",
            native_size=(720, 480), tasks=("t2v",), frames=FrameRule(8, 49),
            parameters="2B", vram_gb=4, repo="THUDM/CogVideoX-2b",
            published_speed="about 90 s for 50 steps on one A100",
        ),
        ModelSpec(
            id="cogvideox-5b", family="cogvideox", description="CogVideoX 5B text-to-video",
            native_size=(720, 480), tasks=("t2v",), frames=FrameRule(8, 49),
            parameters="5B", vram_gb=5, repo="THUDM/CogVideoX-5b",
            published_speed="about 180 s for 50 steps on one A100",
        ),
        ModelSpec(
            id="cogvideox-5b-i2v", family="cogvideox", description="CogVideoX 5B image-to-video",
            native_size=(720, 480), tasks=("i2v",), frames=FrameRule(8, 49),
            parameters="5B", vram_gb=5, repo="THUDM/CogVideoX-5b-I2V",
        ),
        ModelSpec(
            id="cogvideox1.5-5b", family="cogvideox", description="CogVideoX 1.5 5B: 10 s at 16 fps, 1360x768",
            native_size=(1360, 768), fps=16, tasks=("t2v",), frames=FrameRule(16, 161),
            parameters="5B", vram_gb=10, repo="THUDM/CogVideoX1.5-5B",
        ),
        ModelSpec(
            id="cogvideox1.5-5b-i2v", family="cogvideox", description="CogVideoX 1.5 5B image-to-video",
            native_size=(1360, 768), fps=16, tasks=("i2v",), frames=FrameRule(16, 161),
            parameters="5B", vram_gb=10, repo="THUDM/CogVideoX1.5-5B-I2V",
        ),
        ModelSpec(
            id="mochi-1", family="mochi", description="Genmo Mochi 1 preview: 480p at 30 fps",
            native_size=(848, 480), tasks=("t2v",), frames=FrameRule(6, 163),
            parameters="10B", vram_gb=22, repo="genmo/mochi-1-preview",
        ),
        ModelSpec(
            id="hunyuanvideo", family="hunyuanvideo", description="Tencent HunyuanVideo text-to-video",
            native_size=(1280, 720), tasks=("t2v",), frames=FrameRule(4, 129),
            parameters="13B", vram_gb=60, repo="hunyuanvideo-community/HunyuanVideo",
        ),
        ModelSpec(
            id="hunyuanvideo-i2v", family="hunyuanvideo", description="Tencent HunyuanVideo image-to-video",
            native_size=(1280, 720), tasks=("i2v",), frames=FrameRule(4, 129),
            parameters="13B", vram_gb=60, repo="hunyuanvideo-community/HunyuanVideo-I2V",
        ),
        # LTX-2 (video with sound): the repo also holds single-file checkpoints, LoRAs and upsamplers; a pull
        # fetches the pipeline's folders only. Revisions are not pinned yet: set them to the commits `sora models
        # pull` resolves once a pulled copy is verified. VRAM: diffusers publishes none (docs/models.md).
        ModelSpec(
            id="ltx-2", family="ltx2", description="Lightricks LTX-2 19B: video with synchronised sound, 24 fps",
            native_size=(768, 512), tasks=("t2v", "i2v"),
            parameters="19B", repo="Lightricks/LTX-2", revision=None, hub_files=LTX2_FILES,
        ),
        ModelSpec(
            id="ltx-2-distilled", family="ltx2",
            description="LTX-2 19B distilled: 8 fixed steps, no guidance (community diffusers conversion)",
            native_size=(768, 512), tasks=("t2v", "i2v"),
            parameters="19B", repo="rootonchair/LTX-2-19b-distilled", revision=None, hub_files=LTX2_FILES,
            call_arguments=LTX2_DISTILLED,
        ),
        # HunyuanVideo 1.5 (Tencent, 8.3B): hunyuanvideo-community's diffusers conversions. diffusers' docs name the
        # 480p and 720p text-to-video repos; the image-to-video and distilled ones are the same conversion's other
        # variants (the collection the HunyuanVideo-1.5 README links, and diffusers' conversion script), not in
        # diffusers' docs. Revisions are unpinned until a pull can be checked. VRAM: the README publishes only
        # 14 GB with offloading (docs/models.md), so sora's estimate (weights + 30 %) decides offloading.
        ModelSpec(
            id="hunyuanvideo-1.5-480p", family="hunyuanvideo15",
            description="HunyuanVideo 1.5 text-to-video, 848x480 at 24 fps",
            native_size=(848, 480), tasks=("t2v",),
            parameters="8.3B", repo="hunyuanvideo-community/HunyuanVideo-1.5-Diffusers-480p_t2v", revision=None,
        ),
        ModelSpec(
            id="hunyuanvideo-1.5-720p", family="hunyuanvideo15",
            description="HunyuanVideo 1.5 text-to-video, 1280x720 at 24 fps",
            native_size=(1280, 720), tasks=("t2v",),
            parameters="8.3B", repo="hunyuanvideo-community/HunyuanVideo-1.5-Diffusers-720p_t2v", revision=None,
        ),
        ModelSpec(
            id="hunyuanvideo-1.5-480p-i2v", family="hunyuanvideo15",
            description="HunyuanVideo 1.5 image-to-video, 480p (the size follows the image's aspect ratio)",
            native_size=(848, 480), tasks=("i2v",),
            parameters="8.3B", repo="hunyuanvideo-community/HunyuanVideo-1.5-Diffusers-480p_i2v", revision=None,
        ),
        ModelSpec(
            id="hunyuanvideo-1.5-720p-i2v", family="hunyuanvideo15",
            description="HunyuanVideo 1.5 image-to-video, 720p (the size follows the image's aspect ratio)",
            native_size=(1280, 720), tasks=("i2v",),
            parameters="8.3B", repo="hunyuanvideo-community/HunyuanVideo-1.5-Diffusers-720p_i2v", revision=None,
        ),
        ModelSpec(
            id="hunyuanvideo-1.5-480p-distilled", family="hunyuanvideo15",
            description="HunyuanVideo 1.5 text-to-video 480p, guidance-distilled: one pass a step",
            native_size=(848, 480), tasks=("t2v",),
            parameters="8.3B", repo="hunyuanvideo-community/HunyuanVideo-1.5-Diffusers-480p_t2v_distilled",
            revision=None,
        ),
        ModelSpec(
            id="hunyuanvideo-1.5-480p-i2v-distilled", family="hunyuanvideo15",
            description="HunyuanVideo 1.5 image-to-video 480p, guidance-distilled: one pass a step",
            native_size=(848, 480), tasks=("i2v",),
            parameters="8.3B", repo="hunyuanvideo-community/HunyuanVideo-1.5-Diffusers-480p_i2v_distilled",
            revision=None,
        ),
        ModelSpec(
            id="hunyuanvideo-1.5-480p-i2v-step-distilled", family="hunyuanvideo15",
            description="HunyuanVideo 1.5 image-to-video 480p, step-distilled: 8 or 12 steps, no guidance",
            native_size=(848, 480), tasks=("i2v",),
            parameters="8.3B", repo="hunyuanvideo-community/HunyuanVideo-1.5-Diffusers-480p_i2v_step_distilled",
            revision=None, published_speed="a 480p video in about 75 s on one RTX 4090",
        ),
        # Kandinsky 5.0 (kandinskylab): the diffusers-format repos diffusers' docs list. Only the 5 s checkpoints:
        # the 10 s ones need the "flex" attention backend and torch.compile (diffusers' docs). The only
        # diffusers-format image-to-video checkpoint is the 19B Pro one. Revisions are unpinned until a pull can
        # be checked. VRAM: published only with offloading (docs/models.md).
        ModelSpec(
            id="kandinsky-5-lite-t2v", family="kandinsky5",
            description="Kandinsky 5.0 Video Lite 2B text-to-video (SFT), 768x512, up to 5 s at 24 fps",
            native_size=(768, 512), tasks=("t2v",), frames=FrameRule(4, 121),
            parameters="2B", repo="kandinskylab/Kandinsky-5.0-T2V-Lite-sft-5s-Diffusers", revision=None,
            published_speed="5 s of 768x512 in 139 s on one H100",
        ),
        ModelSpec(
            id="kandinsky-5-lite-t2v-distilled", family="kandinsky5",
            description="Kandinsky 5.0 Video Lite 2B text-to-video, distilled to 16 steps without guidance",
            native_size=(768, 512), tasks=("t2v",), frames=FrameRule(4, 121),
            parameters="2B", repo="kandinskylab/Kandinsky-5.0-T2V-Lite-distilled16steps-5s-Diffusers",
            revision=None, published_speed="5 s of 768x512 in 35 s on one H100",
        ),
        ModelSpec(
            id="kandinsky-5-pro-i2v", family="kandinsky5",
            description="Kandinsky 5.0 Video Pro 19B image-to-video (SFT), 768x512, 17 to 121 frames at 24 fps",
            native_size=(768, 512), tasks=("i2v",), frames=FrameRule(4, 121),
            parameters="19B", repo="kandinskylab/Kandinsky-5.0-I2V-Pro-sft-5s-Diffusers", revision=None,
        ),
        # SkyReels-V2 (Skywork): revisions are not pinned yet (set them to the commits `sora models pull` resolves
        # once a pulled copy is verified). VRAM: the SkyReels-V2 README's peaks for 540p, 1.3B 14.7 GB and 14B
        # 51.2 GB (docs/models.md).
        ModelSpec(
            id="skyreels-v2-t2v-14b-540p", family="skyreels-v2",
            description="SkyReels-V2 14B text-to-video, 960x544 at 24 fps",
            native_size=(960, 544), tasks=("t2v",),
            parameters="14B", vram_gb=51.2, repo="Skywork/SkyReels-V2-T2V-14B-540P-Diffusers", revision=None,
        ),
        ModelSpec(
            id="skyreels-v2-i2v-14b-540p", family="skyreels-v2", description="SkyReels-V2 14B image-to-video, 540p",
            native_size=(960, 544), tasks=("i2v",),
            parameters="14B", vram_gb=51.2, repo="Skywork/SkyReels-V2-I2V-14B-540P-Diffusers", revision=None,
        ),
        ModelSpec(
            id="skyreels-v2-i2v-1.3b-540p", family="skyreels-v2", description="SkyReels-V2 1.3B image-to-video, 540p",
            native_size=(960, 544), tasks=("i2v",),
            parameters="1.3B", vram_gb=14.7, repo="Skywork/SkyReels-V2-I2V-1.3B-540P-Diffusers", revision=None,
        ),
        ModelSpec(
            id="skyreels-v2-df-1.3b-540p", family="skyreels-v2-df",
            description="SkyReels-V2 1.3B diffusion forcing: any length, window after window of 97 frames",
            native_size=(960, 544), tasks=("t2v", "i2v"),
            parameters="1.3B", vram_gb=14.7, repo="Skywork/SkyReels-V2-DF-1.3B-540P-Diffusers", revision=None,
        ),
        ModelSpec(
            id="skyreels-v2-df-14b-540p", family="skyreels-v2-df",
            description="SkyReels-V2 14B diffusion forcing: any length, window after window of 97 frames",
            native_size=(960, 544), tasks=("t2v", "i2v"),
            parameters="14B", vram_gb=51.2, repo="Skywork/SkyReels-V2-DF-14B-540P-Diffusers", revision=None,
        ),
        # SANA-Video (NVIDIA): one checkpoint for text- and image-to-video. Revision not pinned yet (as above); no
        # published VRAM, so --offload auto sizes it from its weights.
        ModelSpec(
            id="sana-video-2b-480p", family="sana-video",
            description="NVIDIA SANA-Video 2B: linear attention, fast, 832x480 at 16 fps",
            native_size=(832, 480), tasks=("t2v", "i2v"),
            parameters="2B", repo="Efficient-Large-Model/SANA-Video_2B_480p_diffusers", revision=None,
            published_speed="about 60 s for 5 s of 480p (the authors' VBench latency; GPU not stated)",
        ),
        # Pyramid Flow: no diffusers pipeline; sora runs it natively (sora_cli/pyramid_flow). VRAM is an estimate
        # (bf16 weights, T5-XXL included, about 14 GB, plus activations). The repo's revision is not pinned yet:
        # set it to the commit `sora models pull` resolves once a pulled copy is verified.
        ModelSpec(
            id="pyramid-flow-384p", family="pyramid-flow",
            description="Pyramid Flow miniFLUX 384p: text and image to video, 24 fps, up to 5 s",
            native_size=(640, 384), tasks=("t2v", "i2v"), frames=FrameRule(8, 121),
            parameters="2B", vram_gb=16, repo=PYRAMID_REPO, variant="384p",
        ),
        ModelSpec(
            id="pyramid-flow-768p", family="pyramid-flow",
            description="Pyramid Flow miniFLUX 768p: text and image to video, 24 fps, up to 10 s",
            native_size=(1280, 768), tasks=("t2v", "i2v"), frames=FrameRule(8, 241),
            parameters="2B", vram_gb=26, repo=PYRAMID_REPO, variant="768p",
            published_speed="5 s of 768p in about 5.5 min on one A100",
        ),
    ]
}


def variant_rule(family: str, variant: str | None) -> FrameRule:
    """The frame rule of a folder holding one variant of a family (Pyramid Flow's 384p or 768p), from the
    registry entry of that variant; the family's own rule when no entry names it."""
    for spec in MODELS.values():
        if spec.family == family and variant is not None and spec.variant == variant:
            return spec.frames
    return FAMILIES[family].frames


def get_spec(model_id: str) -> ModelSpec:
    if model_id not in MODELS:
        raise UsageError(f"unknown model '{model_id}'; valid: {', '.join(MODELS)}, or a path to a checkpoint")
    return MODELS[model_id]


def check_options(values: dict, family: Family, model_id: str) -> None:
    """Refuses (one line naming who can) a setting the family does not honour, or a value it does not take.
    Only settings moved off the table's default count: a default means "the model's own"."""
    from .settings import SETTINGS

    for name, value in values.items():
        setting = SETTINGS[name]
        if setting.universal or value == setting.default:
            continue
        if name not in family.options:
            raise UsageError(f"{setting.flag} does not apply to {family.name} models ({model_id}); models that "
                             f"take it: {_takers(name, value) or 'none'}")
        allowed = family.options[name]
        if allowed is not None and value not in allowed:
            others = _takers(name, value)
            raise UsageError(f"{setting.flag} {value} does not work with {family.name} models; valid for them: "
                             f"{', '.join(map(str, allowed))}" + (f"; {value} works with: {others}" if others else ""))


def _takers(name: str, value, shown: int = 6) -> str:
    """The registry models whose family takes this value of a setting (the first few, then how many more)."""
    ids = [m.id for m in MODELS.values()
           if name in m.record.options and (m.record.options[name] is None or value in m.record.options[name])]
    return ", ".join(ids[:shown]) + (f" and {len(ids) - shown} more" if len(ids) > shown else "")
