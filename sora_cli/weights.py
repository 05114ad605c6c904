"""The only module that reads or writes checkpoints: safetensors files carrying their model config as metadata."""

from __future__ import annotations

import json
import os
from pathlib import Path

from .errors import UsageError

FORMAT = "sora-native/1"


def save_checkpoint(model, path: Path, *, family: str, dtype=None) -> None:
    """Writes every parameter (optionally cast) plus {"format", "family", "params"} metadata, atomically."""
    tensors = {k: (v.to(dtype) if dtype is not None else v).contiguous() for k, v in model.state_dict().items()}
    metadata = {"format": FORMAT, "family": family, "params": json.dumps(model.params.to_dict())}
    write_safetensors(tensors, Path(path), metadata)


def write_safetensors(tensors: dict, path: Path, metadata: dict[str, str]) -> None:
    """A safetensors file whose bytes depend only on its tensors and metadata, written atomically.

    safetensors writes the metadata in a hash map's order, which changes from one call to the next, so the same
    weights made two files with different bytes; the header is written again here with its metadata sorted."""
    from safetensors.torch import save

    blob = save(tensors, metadata=metadata)
    size = int.from_bytes(blob[:8], "little")
    header = json.loads(blob[8:8 + size])
    header["__metadata__"] = dict(sorted(header["__metadata__"].items()))
    canonical = json.dumps(header, separators=(",", ":")).encode()
    canonical += b" " * (-len(canonical) % 8)  # the data stays 8-byte aligned, as safetensors keeps it
    tmp = path.with_name(f".{path.name}.tmp")
    with open(tmp, "wb") as f:
        f.write(len(canonical).to_bytes(8, "little"))
        f.write(canonical)
        f.write(memoryview(blob)[8 + size:])
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
    try:
        params = ModelParams.from_dict(json.loads(meta["params"]))
    except (ValueError, TypeError, KeyError) as exc:  # a file written by hand or by another tool
        raise UsageError(f"{path} has a config sora cannot build: {exc}") from None
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



# ---- the Hugging Face hub (open models in diffusers format) -------------------------------------------------
# Only what diffusers loads: configs, tokenizers and safetensors weights; never pickled checkpoints.
HUB_IGNORE = ["*.bin", "*.pt", "*.pth", "*.ckpt", "*.pkl", "*.msgpack", "*.h5", "*.onnx", "*.gguf", "*.mp4", "*.gif"]


def hub_cache() -> str:
    """The Hugging Face cache folder, read from the environment now (HF_HUB_CACHE, then HF_HOME/hub)."""
    from huggingface_hub import constants

    if os.environ.get("HF_HUB_CACHE"):
        return os.environ["HF_HUB_CACHE"]
    if os.environ.get("HF_HOME"):
        return os.path.join(os.path.expanduser(os.environ["HF_HOME"]), "hub")
    return constants.HF_HUB_CACHE


def hub_folder(repo: str, revision: str | None, marker: str | None = "model_index.json") -> Path | None:
    """The cached snapshot of a hub repo (HF_HOME respected), or None when it has not been pulled (no `marker`;
    None: any snapshot)."""
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import LocalEntryNotFoundError

    try:
        folder = Path(snapshot_download(repo, revision=revision, local_files_only=True, cache_dir=hub_cache()))
    except (LocalEntryNotFoundError, FileNotFoundError, OSError):
        return None
    return folder if marker is None or (folder / marker).is_file() else None


def pull(repo: str, revision: str | None, ignore: list[str] = HUB_IGNORE, allow: list[str] | None = None) -> Path:
    """Downloads a hub repo into the hub cache with progress bars; HF_TOKEN opens gated repos."""
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import GatedRepoError, HfHubHTTPError, RepositoryNotFoundError

    try:
        return Path(snapshot_download(repo, revision=revision, ignore_patterns=ignore, allow_patterns=allow,
                                      cache_dir=hub_cache(), endpoint=os.environ.get("HF_ENDPOINT")))  # read now
    except GatedRepoError:
        raise UsageError(f"{repo} is gated: accept its licence at https://huggingface.co/{repo} and set HF_TOKEN") \
            from None
    except RepositoryNotFoundError:
        raise UsageError(f"{repo} was not found on the hub (or it is private and HF_TOKEN is not set)") from None
    except (HfHubHTTPError, OSError) as exc:
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise UsageError(f"cannot download {repo} from the Hugging Face hub: {first}") from None


def pull_model(model_id: str) -> Path:
    """`sora models pull ID`: the registry entry's repo at its pinned revision, into the hub cache."""
    from .registry import get_spec

    spec = get_spec(model_id)
    if spec.repo is None:
        raise UsageError(f"{model_id} ships inside the package; there is nothing to pull")
    if spec.family != "pyramid-flow":
        return pull(spec.repo, spec.revision, allow=list(spec.hub_files) if spec.hub_files else None)
    from .pyramid_flow.checkpoint import DIT_PREFIX, VAE, VAE_BIN, convert_vae

    # its own DiT variant only; the VAE comes as a pickle, converted to safetensors once, here
    others = [f"{DIT_PREFIX}{v}/*" for v in ("384p", "768p") if v != spec.variant]
    folder = pull(spec.repo, spec.revision, ignore=[*HUB_IGNORE, *others])
    pull(spec.repo, spec.revision, ignore=[], allow=[f"{VAE}/{VAE_BIN}"])
    convert_vae(folder)
    return folder


def diffusers_folder(path: Path) -> dict | None:
    """model_index.json of a local diffusers-format folder, or None when `path` is not one."""
    index = Path(path) / "model_index.json"
    if not index.is_file():
        return None
    try:
        data = json.loads(index.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise UsageError(f"{index} is not readable JSON ({exc})") from None
    if not isinstance(data, dict) or "_class_name" not in data:
        raise UsageError(f"{index} names no pipeline class")
    return data
