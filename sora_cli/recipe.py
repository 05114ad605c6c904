"""The recipe: everything needed to render a video again, stored beside it and inside it."""

from __future__ import annotations

import json
import platform
import re
import unicodedata
from importlib import metadata
from pathlib import Path

from .errors import UsageError


def slugify(text: str, limit: int = 60) -> str:
    """A safe file-name stem: ASCII letters, digits and dashes only, never empty, never a path."""
    ascii_text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode()
    slug = re.sub(r"[^a-z0-9]+", "-", ascii_text.lower()).strip("-")
    return slug[:limit].rstrip("-") or "video"


def sidecar_path(video: Path) -> Path:
    return video.with_suffix(".json")


def package_versions() -> dict[str, str]:
    versions = {"python": platform.python_version()}
    for dist in ("sora-cli", "torch", "open-clip-torch", "av", "numpy", "safetensors", "diffusers", "transformers"):
        try:
            versions[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            versions[dist] = "not installed"
    return versions


def load_recipe(path: Path) -> dict:
    """A recipe from a sidecar .json or from a video's container tags (then its sidecar)."""
    from .video import FORMATS, read_embedded_recipe

    path = Path(path)
    if not path.is_file():
        raise UsageError(f"no such file: {path}")
    if path.suffix.lower() == ".json":
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise UsageError(f"{path}: not a readable recipe ({exc})") from None
    elif path.suffix.lower() in FORMATS:
        data = read_embedded_recipe(path)
        if data is None and sidecar_path(path).is_file():
            return load_recipe(sidecar_path(path))
    else:
        raise UsageError(f"{path}: expected a video ({', '.join(FORMATS)}) or a recipe .json")
    if not isinstance(data, dict) or "prompt" not in data:
        raise UsageError(f"{path}: carries no sora recipe")
    return data
