"""Named models: one registry in code. Torch-free, so listing models and checking requests stays cheap.

Each entry says where the weights live (packaged, or a diffusers-format hub repo), what the model can render
(sizes, frame rule, fps, tasks) and what it costs; its default recipe lives in the preset of the same name.
"""

from __future__ import annotations

from dataclasses import dataclass

from .errors import UsageError
from .models.params import ModelParams


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


@dataclass(frozen=True)
class ModelSpec:
    id: str
    family: str  # the backend that runs it
    description: str
    native_size: tuple[int, int]  # (width, height) it was trained at
    fps: int
    tasks: tuple[str, ...]  # t2v (text-to-video), i2v (image-to-video)
    frames: FrameRule
    size_multiple: int  # width and height must be multiples of this
    parameters: str  # as published, e.g. "1.3B"
    vram_gb: float | None = None  # published (or measured) peak for the native size with the preset's settings
    repo: str | None = None  # diffusers-format hub repo; None for packaged weights
    revision: str | None = None  # pinned hub revision (None: main)
    gated: bool = False  # the hub asks for a licence click-through and HF_TOKEN
    weights: str | None = None  # packaged weights file (native models)
    params: ModelParams | None = None  # native architecture
    published_speed: str = ""
    preset_name: str | None = None  # the shipped preset holding its default recipe (None: the same name as id)
    variant: str | None = None  # a repo holding several models (Pyramid Flow's 384p and 768p DiTs): this one

    @property
    def frame_rule(self) -> str:
        return str(self.frames)

    @property
    def preset(self) -> str:
        return self.preset_name or self.id

    @property
    def hub_marker(self) -> str:
        """A file every pulled copy of its repo holds."""
        return "causal_video_vae/config.json" if self.family == "pyramid-flow" else "model_index.json"


def _native() -> ModelSpec:
    params = ModelParams()
    return ModelSpec(
        id="sora-tiny", family="native", description="the embedded model: renders offline on a laptop CPU",
        native_size=(params.native_size, params.native_size), fps=24, tasks=("t2v",),
        frames=FrameRule(params.vae.temporal_factor), size_multiple=16, parameters="11M", vram_gb=0.2,
        weights="sora-tiny.safetensors", params=params, preset_name="default",
    )


PYRAMID_REPO = "rain1011/pyramid-flow-miniflux"

MODELS: dict[str, ModelSpec] = {
    spec.id: spec
    for spec in [
        _native(),
        ModelSpec(
            id="ltx-video", family="ltx-video", description="Lightricks LTX-Video 0.9: fast, 24 fps",
            native_size=(704, 480), fps=24, tasks=("t2v", "i2v"), frames=FrameRule(8, 257), size_multiple=32,
            parameters="2B", vram_gb=12, repo="Lightricks/LTX-Video",
            published_speed="faster than real time on an H100 (768x512)",
        ),
        ModelSpec(
            id="wan2.1-t2v-1.3b", family="wan", description="Wan 2.1 text-to-video, small: consumer GPUs",
            native_size=(832, 480), fps=16, tasks=("t2v",), frames=FrameRule(4), size_multiple=16,
            parameters="1.3B", vram_gb=8.2, repo="Wan-AI/Wan2.1-T2V-1.3B-Diffusers",
            published_speed="5 s of 480p in about 4 min on an RTX 4090",
        ),
        ModelSpec(
            id="wan2.1-t2v-14b", family="wan", description="Wan 2.1 text-to-video, large: 480p and 720p",
            native_size=(1280, 720), fps=16, tasks=("t2v",), frames=FrameRule(4), size_multiple=16,
            parameters="14B", vram_gb=40, repo="Wan-AI/Wan2.1-T2V-14B-Diffusers",
        ),
        ModelSpec(
            id="wan2.1-i2v-14b-480p", family="wan", description="Wan 2.1 image-to-video, 480p",
            native_size=(832, 480), fps=16, tasks=("i2v",), frames=FrameRule(4), size_multiple=16,
            parameters="14B", vram_gb=40, repo="Wan-AI/Wan2.1-I2V-14B-480P-Diffusers",
        ),
        ModelSpec(
            id="wan2.2-t2v-a14b", family="wan", description="Wan 2.2 text-to-video, two 14B experts (high/low noise)",
            native_size=(1280, 720), fps=16, tasks=("t2v",), frames=FrameRule(4), size_multiple=16,
            parameters="A14B (2x14B)", vram_gb=80, repo="Wan-AI/Wan2.2-T2V-A14B-Diffusers",
        ),
        ModelSpec(
            id="wan2.2-i2v-a14b", family="wan", description="Wan 2.2 image-to-video, two 14B experts",
            native_size=(1280, 720), fps=16, tasks=("i2v",), frames=FrameRule(4), size_multiple=16,
            parameters="A14B (2x14B)", vram_gb=80, repo="Wan-AI/Wan2.2-I2V-A14B-Diffusers",
        ),
        ModelSpec(
            id="wan2.2-ti2v-5b", family="wan", description="Wan 2.2 text/image-to-video 5B: 720p at 24 fps",
            native_size=(1280, 704), fps=24, tasks=("t2v", "i2v"), frames=FrameRule(4), size_multiple=32,
            parameters="5B", vram_gb=24, repo="Wan-AI/Wan2.2-TI2V-5B-Diffusers",
            published_speed="5 s of 720p in under 9 min on one RTX 4090",
        ),
        ModelSpec(
            id="cogvideox-2b", family="cogvideox", description="CogVideoX 2B: 6 s at 8 fps, 720x480",
            native_size=(720, 480), fps=8, tasks=("t2v",), frames=FrameRule(8, 49), size_multiple=16,
            parameters="2B", vram_gb=4, repo="THUDM/CogVideoX-2b",
            published_speed="about 90 s for 50 steps on one A100",
        ),
        ModelSpec(
            id="cogvideox-5b", family="cogvideox", description="CogVideoX 5B text-to-video",
            native_size=(720, 480), fps=8, tasks=("t2v",), frames=FrameRule(8, 49), size_multiple=16,
            parameters="5B", vram_gb=5, repo="THUDM/CogVideoX-5b",
            published_speed="about 180 s for 50 steps on one A100",
        ),
        ModelSpec(
            id="cogvideox-5b-i2v", family="cogvideox", description="CogVideoX 5B image-to-video",
            native_size=(720, 480), fps=8, tasks=("i2v",), frames=FrameRule(8, 49), size_multiple=16,
            parameters="5B", vram_gb=5, repo="THUDM/CogVideoX-5b-I2V",
        ),
        ModelSpec(
            id="cogvideox1.5-5b", family="cogvideox", description="CogVideoX 1.5 5B: 10 s at 16 fps, 1360x768",
            native_size=(1360, 768), fps=16, tasks=("t2v",), frames=FrameRule(16, 161), size_multiple=16,
            parameters="5B", vram_gb=10, repo="THUDM/CogVideoX1.5-5B",
        ),
        ModelSpec(
            id="cogvideox1.5-5b-i2v", family="cogvideox", description="CogVideoX 1.5 5B image-to-video",
            native_size=(1360, 768), fps=16, tasks=("i2v",), frames=FrameRule(16, 161), size_multiple=16,
            parameters="5B", vram_gb=10, repo="THUDM/CogVideoX1.5-5B-I2V",
        ),
        ModelSpec(
            id="mochi-1", family="mochi", description="Genmo Mochi 1 preview: 480p at 30 fps",
            native_size=(848, 480), fps=30, tasks=("t2v",), frames=FrameRule(6, 163), size_multiple=16,
            parameters="10B", vram_gb=22, repo="genmo/mochi-1-preview",
        ),
        ModelSpec(
            id="hunyuanvideo", family="hunyuanvideo", description="Tencent HunyuanVideo text-to-video",
            native_size=(1280, 720), fps=24, tasks=("t2v",), frames=FrameRule(4, 129), size_multiple=16,
            parameters="13B", vram_gb=60, repo="hunyuanvideo-community/HunyuanVideo",
        ),
        ModelSpec(
            id="hunyuanvideo-i2v", family="hunyuanvideo", description="Tencent HunyuanVideo image-to-video",
            native_size=(1280, 720), fps=24, tasks=("i2v",), frames=FrameRule(4, 129), size_multiple=16,
            parameters="13B", vram_gb=60, repo="hunyuanvideo-community/HunyuanVideo-I2V",
        ),
        # Pyramid Flow: no diffusers pipeline; sora runs it natively (sora_cli/pyramid_flow). VRAM is an estimate
        # (bf16 weights, T5-XXL included, about 14 GB, plus activations). The repo's revision is not pinned yet:
        # set it to the commit `sora models pull` resolves once a pulled copy is verified.
        ModelSpec(
            id="pyramid-flow-384p", family="pyramid-flow",
            description="Pyramid Flow miniFLUX 384p: text and image to video, 24 fps, up to 5 s",
            native_size=(640, 384), fps=24, tasks=("t2v", "i2v"), frames=FrameRule(8, 121), size_multiple=64,
            parameters="2B", vram_gb=16, repo=PYRAMID_REPO, variant="384p",
        ),
        ModelSpec(
            id="pyramid-flow-768p", family="pyramid-flow",
            description="Pyramid Flow miniFLUX 768p: text and image to video, 24 fps, up to 10 s",
            native_size=(1280, 768), fps=24, tasks=("t2v", "i2v"), frames=FrameRule(8, 241), size_multiple=64,
            parameters="2B", vram_gb=26, repo=PYRAMID_REPO, variant="768p",
            published_speed="5 s of 768p in about 5.5 min on one A100",
        ),
    ]
}


def pyramid_rule(variant: str | None) -> FrameRule:
    """A Pyramid Flow folder's frame rule: 8k+1, capped at what its variant was trained for."""
    return FrameRule(8, {"384p": 121, "768p": 241}.get(variant or ""))


# family -> (text-to-video pipeline, image-to-video pipeline): the diffusers classes that run it
FAMILY_PIPELINES: dict[str, tuple[str, str | None]] = {
    "ltx-video": ("LTXPipeline", "LTXConditionPipeline"),
    "wan": ("WanPipeline", "WanImageToVideoPipeline"),
    "cogvideox": ("CogVideoXPipeline", "CogVideoXImageToVideoPipeline"),
    "mochi": ("MochiPipeline", None),
    "hunyuanvideo": ("HunyuanVideoPipeline", "HunyuanVideoImageToVideoPipeline"),
}

I2V_ALIASES = {"ltx-video": ("LTXImageToVideoPipeline",)}

# what a local checkpoint folder of a family can render when no registry entry says more
FAMILY_RULES: dict[str, tuple[FrameRule, int]] = {
    "ltx-video": (FrameRule(8), 32),
    "wan": (FrameRule(4), 16),
    "cogvideox": (FrameRule(8), 16),
    "mochi": (FrameRule(6), 16),
    "hunyuanvideo": (FrameRule(4), 16),
}


def pipeline_family(class_name: str) -> tuple[str, str]:
    """(family, task) of a diffusers pipeline class named in a checkpoint's model_index.json."""
    for family, (t2v, i2v) in FAMILY_PIPELINES.items():
        if class_name == t2v:
            return family, "t2v"
        if class_name in (i2v, *I2V_ALIASES.get(family, ())):
            return family, "i2v"
    known = ", ".join(c for pair in FAMILY_PIPELINES.values() for c in pair if c)
    raise UsageError(f"sora cannot run a {class_name} checkpoint; it runs {known}")


def get_spec(model_id: str) -> ModelSpec:
    if model_id not in MODELS:
        raise UsageError(f"unknown model '{model_id}'; valid: {', '.join(MODELS)}, or a path to a checkpoint")
    return MODELS[model_id]
