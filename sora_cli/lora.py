"""LoRAs as a setting: `REF[:SCALE[:EXPERT]]`, parsed, found and recorded. Torch-free (settings.py checks them).

REF is a local `.safetensors` file or a hub LoRA (`owner/repo`, or `owner/repo/path/file.safetensors` for one file
of several), pulled into the Hugging Face cache like the models (`sora models pull owner/repo`). SCALE (default 1)
is how strongly it applies; EXPERT picks one of a two-expert model's transformers (Wan 2.2 A14B: `high` for the
high-noise expert, `low` for the low-noise one; default `both`). Safetensors only: nothing is unpickled.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from pathlib import Path

from .errors import UsageError

EXPERTS = ("both", "high", "low")
HUB_ID = re.compile(r"[A-Za-z0-9][\w.-]*/[\w.-]+(/[\w./-]+\.safetensors)?")
HUB_NAMES = ("pytorch_lora_weights.safetensors",)  # the file diffusers' save_lora_weights writes


@dataclass(frozen=True)
class Lora:
    ref: str
    scale: float = 1.0
    expert: str = "both"

    def spec(self) -> str:
        return f"{self.ref}:{self.scale:g}" + (f":{self.expert}" if self.expert != "both" else "")


def parse_lora(spec) -> Lora:
    """`REF[:SCALE[:EXPERT]]`, parsed from the right so a path may hold colons; or a recipe's record (a dict with
    file, sha256 and scale: the file must still be there, unchanged)."""
    if isinstance(spec, dict):
        return from_record(spec)
    if not isinstance(spec, str) or not spec.strip():
        raise ValueError(f"a LoRA is REF[:SCALE[:EXPERT]], got {spec!r}")
    ref, scale, expert = spec.strip(), 1.0, "both"
    head, _, last = ref.rpartition(":")
    if head and last in EXPERTS:
        ref, expert = head, last
        head, _, last = ref.rpartition(":")
    if head and _is_number(last):
        ref, scale = head, float(last)
    elif expert != "both":
        raise ValueError(f"LoRA {spec}: the scale before :{expert} must be a number")
    if not math.isfinite(scale) or abs(scale) > 100:
        raise ValueError(f"LoRA {spec}: the scale must be a number between -100 and 100")
    if not is_local(ref) and not HUB_ID.fullmatch(ref):
        raise ValueError(f"LoRA {ref}: not a .safetensors file here nor a hub id (owner/repo or "
                         "owner/repo/file.safetensors)")
    if is_local(ref) and Path(ref).suffix.lower() != ".safetensors":
        raise ValueError(f"LoRA {ref}: only .safetensors files are loaded (a pickled .bin/.pt/.ckpt is never read)")
    return Lora(ref, scale, expert)


def _is_number(text: str) -> bool:
    try:
        float(text)
        return True
    except ValueError:
        return False


def is_local(ref: str) -> bool:
    """A path (it exists, or it looks like one: an extension, a leading ./ ~ /) rather than a hub id."""
    path = Path(ref).expanduser()
    return path.exists() or ref.startswith((".", "/", "~")) or path.suffix.lower() in (".safetensors", ".bin",
                                                                                        ".pt", ".ckpt", ".pth")


def check_loras(value) -> tuple[str, ...]:
    """The setting's check: one spec, or a list of specs (or recipe records) -> canonical specs."""
    items = [value] if isinstance(value, (str, dict)) else value
    if not isinstance(items, (list, tuple)):
        raise ValueError(f"loras must be a list of REF[:SCALE[:EXPERT]], got {value!r}")
    return tuple(parse_lora(item).spec() for item in items)


def lora_file(lora: Lora) -> Path:
    """The .safetensors file a LoRA names: the local file, or the one in the hub cache (pulled before)."""
    if is_local(lora.ref):
        path = Path(lora.ref).expanduser()
        if not path.is_file():
            raise UsageError(f"LoRA file not found: {lora.ref}")
        return path
    repo, file = split_hub(lora.ref)
    from .weights import hub_folder

    folder = hub_folder(repo, None, marker=file)
    if folder is None:
        raise UsageError(f"LoRA {lora.ref} is not downloaded yet; run: sora models pull {lora.ref}")
    return pick_file(folder, lora.ref, file)


def split_hub(ref: str) -> tuple[str, str | None]:
    parts = ref.split("/", 2)
    return "/".join(parts[:2]), parts[2] if len(parts) == 3 else None


def pick_file(folder: Path, ref: str, file: str | None) -> Path:
    """The repo's LoRA file: the one named, else its only .safetensors (or diffusers' standard name)."""
    if file is not None:
        return folder / file
    found = sorted(p for p in folder.rglob("*.safetensors"))
    standard = [p for p in found if p.name in HUB_NAMES]
    if len(found) == 1 or standard:
        return (standard or found)[0]
    if not found:
        raise UsageError(f"LoRA {ref} holds no .safetensors file")
    names = ", ".join(str(p.relative_to(folder)) for p in found[:6])
    raise UsageError(f"LoRA {ref} holds several files ({names}); name one: {ref}/FILE.safetensors")


def pull_lora(ref: str) -> Path:
    """`sora models pull owner/repo[/file.safetensors]`: a hub LoRA into the cache (safetensors files only)."""
    from .weights import pull

    repo, file = split_hub(ref)
    folder = pull(repo, None, ignore=[], allow=[file] if file else ["*.safetensors", "*.json", "*.md"])
    return pick_file(folder, ref, file)


def record(spec: str) -> dict:
    """The recipe's entry for one LoRA: what was asked, the file that ran, its SHA-256, scale and expert."""
    from .conditions import sha256

    lora = parse_lora(spec)
    path = lora_file(lora)
    return {"ref": lora.ref, "file": str(path.resolve()), "sha256": sha256(path), "scale": lora.scale,
            "expert": lora.expert}


def from_record(entry: dict) -> Lora:
    """A recipe's LoRA (`--from`): its file, unchanged since (SHA-256)."""
    from .conditions import sha256

    try:
        file, digest, scale = entry["file"], entry["sha256"], float(entry["scale"])
    except (KeyError, TypeError, ValueError):
        raise ValueError(f"a recorded LoRA needs file, sha256 and scale, got {entry!r}") from None
    path = Path(file)
    if not path.is_file():
        raise ValueError(f"the LoRA {file} is gone")
    if sha256(path) != digest:
        raise ValueError(f"the LoRA {file} changed since (its SHA-256 differs)")
    return Lora(file, scale, entry.get("expert", "both"))
