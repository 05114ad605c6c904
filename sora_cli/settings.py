"""The generate settings every layer may set (preset, user preset, prompt-file row, recipe, CLI flag).

One table says each setting's type and valid values; every layer is checked against it as it is read, so an
error names the place it came from. No torch import here: `sora presets list` must start fast.
"""

from __future__ import annotations

from typing import Any

from .device import DEVICES, DTYPE_ALIASES, DTYPES
from .sampling import SAMPLERS

# name -> (type, nullable)
SETTINGS: dict[str, tuple[type, bool]] = {
    "model": (str, False),
    "width": (int, False),
    "height": (int, False),
    "frames": (int, False),
    "fps": (int, False),
    "steps": (int, False),
    "guidance": (float, False),
    "video_steps": (int, True),  # Pyramid Flow: steps per stage for frames after the first (null: steps)
    "video_guidance": (float, True),  # Pyramid Flow: guidance for frames after the first (null: guidance)
    "sampler": (str, False),
    "shift": (float, True),  # null: derived from the number of latent tokens
    "negative": (str, False),
    "seed": (int, True),  # null: a random seed, recorded
    "device": (str, False),
    "dtype": (str, False),
    "compile": (bool, True),  # null: on for CUDA, off elsewhere
    # open models (diffusers): memory and speed
    "offload": (str, False),  # auto, none, model, sequential, group
    "vae_tiling": (bool, True),  # null: on when the model is offloaded
    "cache": (str, False),  # none, first-block, taylorseer, pab, faster
    "cache_threshold": (float, True),  # null: the method's own default
    "image": (str, True),  # image-to-video: the first frame
}

OFFLOAD = ("auto", "none", "model", "sequential", "group")
CACHES = ("none", "first-block", "taylorseer", "pab", "faster")

# Settings a prompt-file row may change: the model and how it runs are loaded once per batch.
ROW_SETTINGS = ("negative", "seed", "frames", "fps", "width", "height", "steps", "guidance", "sampler", "shift",
                "image", "video_steps", "video_guidance")

MAX_SIZE = 2048
MAX_FRAMES = 100_000


def _range(name: str, value, low, high) -> None:
    if not low <= value <= high:
        raise ValueError(f"{name} must be between {low} and {high}, got {value}")


def check_setting(name: str, value: Any) -> Any:
    """Returns the value converted to its type, or raises ValueError naming what is wrong and what is valid."""
    if name not in SETTINGS:
        raise ValueError(f"unknown setting '{name}'; valid: {', '.join(SETTINGS)}")
    kind, nullable = SETTINGS[name]
    if value is None:
        if nullable:
            return None
        raise ValueError(f"{name} may not be empty")
    if kind is float and isinstance(value, int) and not isinstance(value, bool):
        value = float(value)
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        raise ValueError(f"{name} must be {kind.__name__}, got {value!r}")
    if name in ("width", "height"):
        _range(name, value, 16, MAX_SIZE)
    elif name == "frames":
        _range(name, value, 1, MAX_FRAMES)
    elif name == "fps":
        _range(name, value, 1, 240)
    elif name in ("steps", "video_steps"):
        _range(name, value, 1, 1000)
    elif name in ("guidance", "video_guidance"):
        _range(name, value, 0.0, 100.0)
    elif name == "shift":
        _range(name, value, 0.01, 100.0)
    elif name == "seed":
        _range(name, value, 0, 2**63 - 1)
    elif name == "sampler" and value not in SAMPLERS:
        raise ValueError(f"unknown sampler '{value}'; valid: {', '.join(SAMPLERS)}")
    elif name == "device" and value not in DEVICES:
        raise ValueError(f"unknown device '{value}'; valid: {', '.join(DEVICES)}")
    elif name == "dtype":
        value = DTYPE_ALIASES.get(value, value)
        if value not in DTYPES:
            raise ValueError(f"unknown dtype '{value}'; valid: {', '.join(DTYPES)}")
    elif name == "offload" and value not in OFFLOAD:
        raise ValueError(f"unknown offload '{value}'; valid: {', '.join(OFFLOAD)}")
    elif name == "cache" and value not in CACHES:
        raise ValueError(f"unknown cache '{value}'; valid: {', '.join(CACHES)}")
    elif name == "cache_threshold":
        _range(name, value, 0.0, 10.0)
    elif name in ("model", "image") and not value.strip():
        raise ValueError(f"{name} may not be empty")
    return value


def parse_text_value(name: str, text: str) -> Any:
    """Converts a string (a CSV cell) to the setting's type; '' means not set."""
    kind, _ = SETTINGS.get(name, (str, False))
    if text == "" or kind is str:
        return text if kind is str else None
    try:
        if kind is bool:
            if text.lower() not in ("true", "false", "1", "0", "yes", "no"):
                raise ValueError
            return text.lower() in ("true", "1", "yes")
        return kind(text)
    except ValueError:
        raise ValueError(f"{name} must be {kind.__name__}, got {text!r}") from None
