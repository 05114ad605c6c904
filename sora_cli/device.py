"""Device and dtype choice (CUDA, then MPS, then CPU) and the seeded noise generator."""

from __future__ import annotations

from .errors import UsageError

DEVICES = ("auto", "cuda", "mps", "cpu")
DTYPES = ("auto", "float32", "bfloat16", "float16")
DTYPE_ALIASES = {"fp32": "float32", "bf16": "bfloat16", "fp16": "float16", "half": "float16", "float": "float32"}


def available_devices() -> list[str]:
    import torch

    found = []
    if torch.cuda.is_available():
        found.append("cuda")
    if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
        found.append("mps")
    return [*found, "cpu"]


def pick_device(requested: str) -> str:
    if requested not in DEVICES:
        raise UsageError(f"unknown device '{requested}'; valid: {', '.join(DEVICES)}")
    found = available_devices()
    if requested == "auto":
        return found[0]
    if requested not in found:
        raise UsageError(f"device '{requested}' is not available on this machine; available: {', '.join(found)}")
    return requested


def normalise_dtype(name: str) -> str:
    name = DTYPE_ALIASES.get(name, name)
    if name not in DTYPES:
        raise UsageError(f"unknown dtype '{name}'; valid: {', '.join(DTYPES)} (or fp32, bf16, fp16)")
    return name


def pick_dtype(requested: str, device: str) -> str:
    """bf16 on CUDA, fp16 on MPS (no bf16 on older Macs), fp32 on CPU (its fp16/bf16 kernels are slow)."""
    requested = normalise_dtype(requested)
    if requested != "auto":
        return requested
    return {"cuda": "bfloat16", "mps": "float16"}.get(device, "float32")


def torch_dtype(name: str):
    import torch

    return {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}[name]


def noise_generator(seed: int):
    """Noise is always drawn on the CPU, so a seed gives the same video on every device."""
    import torch

    return torch.Generator(device="cpu").manual_seed(seed)
