"""The only module that reads or writes checkpoints: safetensors files carrying their model config as metadata."""

from __future__ import annotations

import json
from pathlib import Path

from .errors import UsageError

FORMAT = "sora-native/1"


def save_checkpoint(model, path: Path, *, family: str, dtype=None) -> None:
    """Writes every parameter (optionally cast) plus {"format", "family", "params"} metadata, atomically."""
    from safetensors.torch import save_file

    tensors = {k: (v.to(dtype) if dtype is not None else v).contiguous() for k, v in model.state_dict().items()}
    metadata = {"format": FORMAT, "family": family, "params": json.dumps(model.params.to_dict())}
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp")
    save_file(tensors, str(tmp), metadata=metadata)
    tmp.replace(path)


def checkpoint_file(path: Path) -> Path:
    """A checkpoint is a .safetensors file, or a folder holding model.safetensors."""
    path = Path(path)
    return path / "model.safetensors" if path.is_dir() else path


def read_metadata(path: Path) -> dict:
    """The checkpoint's metadata; a clear error for a missing, non-safetensors or foreign file."""
    from safetensors import safe_open

    path = checkpoint_file(path)
    if not path.is_file():
        raise UsageError(f"checkpoint not found: {path}")
    try:
        with safe_open(str(path), framework="pt") as f:
            meta = f.metadata() or {}
    except Exception as exc:  # safetensors raises several types for a damaged header
        raise UsageError(f"{path} is not a readable safetensors checkpoint ({exc})") from None
    if meta.get("format") != FORMAT:
        raise UsageError(f"{path} is not a sora native checkpoint (no '{FORMAT}' metadata)")
    return meta


def load_native(path: Path, device, dtype):
    """Builds the model on the meta device and assigns the file's tensors: no random init, no extra copy."""
    from safetensors.torch import load_file

    from .models.native import build_model
    from .models.params import ModelParams

    path = checkpoint_file(path)
    meta = read_metadata(path)
    params = ModelParams.from_dict(json.loads(meta["params"]))
    model = build_model(params, "meta")
    try:
        state = load_file(str(path), device=str(device))
    except Exception as exc:
        raise UsageError(f"{path} is damaged or truncated ({exc})") from None
    state = {k: v.to(dtype) if v.is_floating_point() else v for k, v in state.items()}
    try:
        model.load_state_dict(state, strict=True, assign=True)
    except RuntimeError as exc:
        first = str(exc).splitlines()[1].strip() if "\n" in str(exc) else str(exc)
        raise UsageError(f"{path} does not match its own config: {first}") from None
    return model.eval().requires_grad_(False), meta["family"]


def checkpoint_path(model_ref: str) -> Path | None:
    """A local checkpoint path when `model_ref` names a file or folder, else None (a registry id, which wins)."""
    from .registry import MODELS

    if model_ref in MODELS:
        return None
    p = Path(model_ref).expanduser()
    if p.suffix == ".safetensors" or p.exists() or "/" in model_ref or model_ref.startswith("."):
        return p
    return None


def packaged_weights(filename: str) -> Path:
    """Where the package keeps an embedded model's weights (present or not)."""
    return Path(__file__).parent / "weights" / filename

