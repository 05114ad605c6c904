"""The Pyramid Flow checkpoint folder (the hub repo's layout) and the one-time VAE conversion.

rain1011/pyramid-flow-miniflux holds diffusion_transformer_384p/ and _768p/ (config.json + safetensors),
causal_video_vae/ (config.json + a pickled .bin), text_encoder/ (CLIP-L), text_encoder_2/ (T5-XXL),
tokenizer/ and tokenizer_2/. sora loads safetensors only: `sora models pull` converts the VAE's .bin once,
reading it with torch.load(weights_only=True) — the only place the project reads a pickle.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from ..errors import UsageError

VAE = "causal_video_vae"
VAE_BIN = "diffusion_pytorch_model.bin"
VAE_FILE = "diffusion_pytorch_model.safetensors"
DIT_PREFIX = "diffusion_transformer_"
PARTS = ("text_encoder", "text_encoder_2", "tokenizer", "tokenizer_2")


def is_pyramid_folder(path: Path) -> bool:
    return (Path(path) / VAE / "config.json").is_file() and any(Path(path).glob(f"{DIT_PREFIX}*/config.json"))


def require_folder(path: Path) -> Path:
    """`path`, or one line saying it is not a Pyramid Flow folder."""
    if not is_pyramid_folder(path):
        raise UsageError(f"{path} is not a Pyramid Flow checkpoint folder (no causal_video_vae/ and "
                         f"{DIT_PREFIX}*/)")
    return path


def variants(folder: Path) -> list[str]:
    """The DiT variants a folder holds (384p, 768p)."""
    return sorted(p.parent.name.removeprefix(DIT_PREFIX) for p in Path(folder).glob(f"{DIT_PREFIX}*/config.json"))


def check_folder(folder: Path, variant: str | None) -> str:
    """The variant to load; UsageError naming what is missing or how to convert the VAE."""
    held = variants(folder)
    if variant is None:
        if len(held) != 1:
            raise UsageError(f"{folder} holds the DiT variants {', '.join(held) or 'none'}; pick one with "
                             f"--model pyramid-flow-384p or pyramid-flow-768p (from the hub cache)")
        variant = held[0]
    elif variant not in held:
        raise UsageError(f"{folder} has no {DIT_PREFIX}{variant}/ (it holds {', '.join(held) or 'none'})")
    missing = [p for p in PARTS if not (folder / p).is_dir()]
    if missing:
        raise UsageError(f"{folder} is not a complete Pyramid Flow checkpoint: missing {', '.join(missing)}/")
    if not any((folder / f"{DIT_PREFIX}{variant}").glob("*.safetensors")):
        raise UsageError(f"{folder / (DIT_PREFIX + variant)} has no .safetensors weights")
    if not (folder / VAE / VAE_FILE).is_file():
        if (folder / VAE / VAE_BIN).is_file():
            raise UsageError(f"{folder / VAE} holds only a pickle ({VAE_BIN}); sora reads safetensors: convert it "
                             f"once with `sora models convert {folder}`")
        raise UsageError(f"{folder / VAE} has no weights ({VAE_FILE})")
    return variant


def convert_vae(folder: Path) -> Path | None:
    """Writes causal_video_vae/diffusion_pytorch_model.safetensors from the .bin beside it (tensors only:
    weights_only=True refuses anything else a pickle could carry). None when there is nothing to convert."""
    import torch
    from safetensors.torch import save_file

    target = Path(folder) / VAE / VAE_FILE
    source = Path(folder) / VAE / VAE_BIN
    if target.is_file() or not source.is_file():
        return None
    try:
        state = torch.load(source, map_location="cpu", weights_only=True)
    except Exception as exc:  # UnpicklingError for anything but tensors, and whatever a corrupt file raises
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise UsageError(f"{source} is not a plain tensor checkpoint; refusing to load it ({first})") from None
    if isinstance(state, dict) and isinstance(state.get("state_dict"), dict):
        state = state["state_dict"]
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise UsageError(f"{source} does not hold a state dict of tensors")
    tmp = target.with_name(f".{target.name}.tmp-{os.getpid()}")
    save_file({k: v.contiguous() for k, v in state.items()}, str(tmp))
    os.replace(tmp, target)
    return target


def load_vae(folder: Path, dtype):
    from safetensors.torch import load_file

    from .vae import CausalVideoVAE

    config = json.loads((Path(folder) / VAE / "config.json").read_text())
    vae = CausalVideoVAE(config)
    state = load_file(Path(folder) / VAE / VAE_FILE)
    try:
        vae.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        raise UsageError(f"{Path(folder) / VAE} does not match its config ({str(exc).splitlines()[0]})") from None
    return vae.to(dtype).eval().requires_grad_(False)
