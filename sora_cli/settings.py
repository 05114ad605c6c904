"""Every render setting, declared once: name, type, valid values, default, help, and where it may appear.

The CLI's options (cli.py), preset and prompt-file validation (presets.py, prompts.py), the job a backend
renders (job.py), the recipe's keys and `--from` (render.py, generate.py) and the docs all derive from SETTINGS.
Whether a *model* honours a setting is its family's business (families.py). No torch import here: `sora --help`
and `sora presets list` must start fast.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from .device import DEVICES, DTYPE_ALIASES, DTYPES
from .lora import check_loras

# where a setting may appear
FLAG, PRESET, ROW, RECIPE = "flag", "preset", "row", "recipe"
EVERYWHERE = frozenset({FLAG, PRESET, ROW, RECIPE})
RUNTIME = frozenset({FLAG, PRESET})  # how the model loads and runs: once per process, not per video

SAMPLERS = ("euler", "heun", "dpmpp_2m", "unipc", "auto")
OFFLOAD = ("auto", "none", "model", "sequential", "group")
CACHES = ("none", "first-block", "taylorseer", "pab", "faster")
QUANTIZE = ("none", "int8", "fp8", "nf4")
PARALLEL = ("ulysses", "ring")
MAX_GPUS = 64
MAX_SIZE = 2048
MAX_FRAMES = 100_000


@dataclass(frozen=True)
class Setting:
    name: str
    kind: type
    default: Any
    help: str
    nullable: bool = False
    low: float | None = None  # inclusive range, for numbers
    high: float | None = None
    choices: tuple[str, ...] | None = None
    aliases: dict | None = None  # accepted spellings -> the canonical value
    where: frozenset = EVERYWHERE
    recipe_key: str | None = None  # the recipe's name for it, when not `name`
    universal: bool = True  # every model honours it; otherwise its family says (families.py)
    convert: Callable[[Any], Any] | None = None  # a list-valued setting's own check (its kind is tuple)
    flag_name: str | None = None  # when the flag is not --name (a repeatable flag is singular)

    @property
    def flag(self) -> str:
        return "--" + (self.flag_name or self.name).replace("_", "-")

    @property
    def key(self) -> str:
        return self.recipe_key or self.name

    def check(self, value: Any) -> Any:
        """The value converted to its type, or ValueError naming what is wrong and what is valid."""
        name = self.name
        if value is None:
            if self.nullable:
                return None
            raise ValueError(f"{name} may not be empty")
        if self.convert is not None:
            return self.convert(value)
        if self.kind is float and isinstance(value, int) and not isinstance(value, bool):
            value = float(value)
        if not isinstance(value, self.kind) or (self.kind is int and isinstance(value, bool)):
            raise ValueError(f"{name} must be {self.kind.__name__}, got {value!r}")
        if self.low is not None and not self.low <= value <= self.high:
            raise ValueError(f"{name} must be between {self.low} and {self.high}, got {value}")
        if self.aliases:
            value = self.aliases.get(value, value)
        if self.choices is not None and value not in self.choices:
            raise ValueError(f"unknown {name} '{value}'; valid: {', '.join(self.choices)}")
        if self.kind is str and self.name in ("model", "image") and not value.strip():
            raise ValueError(f"{name} may not be empty")
        return value


def _settings(*items: Setting) -> dict[str, Setting]:
    return {s.name: s for s in items}


# The shipped defaults: sora-tiny's recipe (the `default` preset). Order is the order users see.
SETTINGS: dict[str, Setting] = _settings(
    Setting("model", str, "sora-tiny", "Model id (sora models list) or path to a checkpoint.",
            where=frozenset({FLAG, PRESET, RECIPE})),
    Setting("width", int, 256, "Width in pixels (a multiple the model needs).", low=16, high=MAX_SIZE),
    Setting("height", int, 256, "Height in pixels (a multiple the model needs).", low=16, high=MAX_SIZE),
    Setting("frames", int, 72, "Frames to deliver (exactly; the model's own rule is met by trimming).",
            low=1, high=MAX_FRAMES),
    Setting("fps", int, 24, "Frames per second of the output.", low=1, high=240),
    Setting("steps", int, 20, "Denoising steps.", low=1, high=1000),
    Setting("guidance", float, 5.0, "Classifier-free guidance scale (1 = off).", low=0.0, high=100.0),
    Setting("video_steps", int, None, "Pyramid Flow: steps per stage for the frames after the first "
            "(default: --steps).", nullable=True, low=1, high=1000, universal=False),
    Setting("video_guidance", float, None, "Pyramid Flow: guidance for the frames after the first "
            "(default: the reference's, 5 from text, 4 from an image).", nullable=True, low=0.0, high=100.0,
            universal=False),
    Setting("sampler", str, "auto", "Sampler: euler, heun, dpmpp_2m or unipc; auto is the model's own "
            "(DPM-Solver++ for sora-tiny, the checkpoint's scheduler for open models).", choices=SAMPLERS,
            universal=False),
    Setting("shift", float, None, "Timestep shift (default: sora-tiny's from the token count, an open model's "
            "from its scheduler).", nullable=True, low=0.01, high=100.0, universal=False),
    Setting("negative", str, "", "Negative prompt: what to steer away from.", recipe_key="negative_prompt"),
    Setting("seed", int, None, "Seed; the same seed gives the same video (default: random, recorded).",
            nullable=True, low=0, high=2**63 - 1),
    Setting("device", str, "auto", "auto, cuda, mps or cpu (auto: CUDA, then MPS, then CPU).", choices=DEVICES,
            where=RUNTIME),
    Setting("dtype", str, "auto", "auto, float32, bfloat16 or float16 (auto: bf16 on CUDA, fp16 on MPS, fp32 on "
            "CPU).", choices=DTYPES, aliases=DTYPE_ALIASES, where=RUNTIME),
    Setting("compile", bool, None, "torch.compile the transformer's repeated blocks (default: on for CUDA).",
            nullable=True, where=RUNTIME),
    Setting("offload", str, "auto", "Open models: auto, none, model, sequential or group CPU offload (auto: the "
            "whole model on the GPU when it fits).", choices=OFFLOAD, where=RUNTIME, universal=False),
    Setting("vae_tiling", bool, None, "Open models: decode in spatial tiles (default: on when offloaded).",
            nullable=True, where=RUNTIME, universal=False),
    Setting("quantize", str, "none", "Open models: none, int8 or fp8 (weight-only, torchao; any device) or nf4 "
            "(bitsandbytes, CUDA only) for the transformer, and the text encoders over 1 B parameters.",
            choices=QUANTIZE, where=frozenset({FLAG, PRESET, RECIPE}), universal=False),
    Setting("transformer", str, None, "Open models: a .gguf transformer file (as shared for Wan, HunyuanVideo, LTX) "
            "that replaces the model's own; the rest comes from --model.", nullable=True,
            where=frozenset({FLAG, PRESET, RECIPE}), universal=False),
    Setting("gpus", int, 1, "Open models whose transformer splits (Wan, LTX-Video, LTX-2): one video over this "
            "many GPUs of this machine (context parallelism; sora starts the workers).", low=1, high=MAX_GPUS,
            where=frozenset({FLAG, PRESET, RECIPE}), universal=False),
    Setting("parallel", str, "ulysses", "With --gpus: ulysses (all-to-all of heads; the heads must divide by "
            "--gpus) or ring (keys and values passed around).", choices=PARALLEL,
            where=frozenset({FLAG, PRESET, RECIPE}), universal=False),
    Setting("cache", str, "none", "Open models: none, first-block, taylorseer, pab or faster (reuse transformer "
            "work between steps: faster, lossy).", choices=CACHES, where=frozenset({FLAG, PRESET, RECIPE}),
            universal=False),
    Setting("cache_threshold", float, None, "first-block: residual threshold (0.05); taylorseer: steps between "
            "full passes (5).", nullable=True, low=0.0, high=10.0, where=frozenset({FLAG, PRESET, RECIPE}),
            universal=False),
    Setting("image", str, None, "Image-to-video: the first frame (models with the i2v task).", nullable=True),
    Setting("loras", tuple, (), "LoRA REF[:SCALE[:EXPERT]], repeatable: a .safetensors file or a hub id "
            "(owner/repo[/file.safetensors]); SCALE default 1; EXPERT high or low for one of Wan 2.2's two "
            "(default both).", universal=False, convert=check_loras, flag_name="lora"),
    Setting("audio", bool, True, "Keep the soundtrack of a model that makes sound (--no-audio drops it).",
            where=EVERYWHERE),
)

ROW_SETTINGS = tuple(n for n, s in SETTINGS.items() if ROW in s.where)  # what one video of a batch may change
RECIPE_SETTINGS = {s.key: n for n, s in SETTINGS.items() if RECIPE in s.where}  # recipe key -> setting (--from)
DEFAULTS = {n: s.default for n, s in SETTINGS.items()}


def check_setting(name: str, value: Any) -> Any:
    """Returns the value converted to its type, or raises ValueError naming what is wrong and what is valid."""
    if name not in SETTINGS:
        raise ValueError(f"unknown setting '{name}'; valid: {', '.join(SETTINGS)}")
    return SETTINGS[name].check(value)


def parse_text_value(name: str, text: str) -> Any:
    """Converts a string (a CSV cell) to the setting's type; '' means not set."""
    kind = SETTINGS[name].kind if name in SETTINGS else str
    if text == "" or kind is str:
        return text if kind is str else None
    if kind is tuple:  # a list in one cell: items separated by ';'
        return [item.strip() for item in text.split(";") if item.strip()]
    try:
        if kind is bool:
            if text.lower() not in ("true", "false", "1", "0", "yes", "no"):
                raise ValueError
            return text.lower() in ("true", "1", "yes")
        return kind(text)
    except ValueError:
        raise ValueError(f"{name} must be {kind.__name__}, got {text!r}") from None
