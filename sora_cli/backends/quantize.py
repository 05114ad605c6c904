"""Smaller weights for the open models, each through the library diffusers documents for it: torchao int8/fp8
weight-only (any device), bitsandbytes nf4 (CUDA), and GGUF transformer files (diffusers' GGUF loader, which
keeps the file's quantised blocks and dequantises each layer as it runs).

What is quantised: the transformer(s), and the text encoders over BIG_TEXT_ENCODER parameters (Wan's and
HunyuanVideo's are billions; a small CLIP or T5 gains nothing worth its error).
"""

from __future__ import annotations

import math
from pathlib import Path

from ..errors import UsageError

BIG_TEXT_ENCODER = 1_000_000_000
BYTES_PER_WEIGHT = {"int8": 1.0, "fp8": 1.0, "nf4": 0.5}  # before scales (a few per cent more)
TRANSFORMERS = ("transformer", "transformer_2")


NEEDS = {"int8": "torchao", "fp8": "torchao", "nf4": "bitsandbytes", "gguf": "gguf"}  # option -> its library


def check_quantize(quantize: str, transformer: str | None, device: str) -> None:
    """Refusals that need no model: nf4 off CUDA, a --transformer that is not a .gguf file, both at once, a
    library that is not installed."""
    from importlib.util import find_spec

    if quantize == "nf4" and device != "cuda":
        raise UsageError(f"--quantize nf4 runs on CUDA only (bitsandbytes); on {device} use int8 or fp8")
    for option in (quantize, "gguf" if transformer else "none"):
        if option in NEEDS and find_spec(NEEDS[option]) is None:
            raise UsageError(f"{'--transformer FILE.gguf' if option == 'gguf' else '--quantize ' + option} needs "
                             f"{NEEDS[option]}: pip install 'sora-cli[quant]'")
    if transformer is None:
        return
    path = Path(transformer).expanduser()
    if path.suffix.lower() != ".gguf":
        raise UsageError(f"--transformer takes a .gguf file, got {transformer}")
    if not path.is_file():
        raise UsageError(f"--transformer file not found: {transformer}")
    if quantize != "none":
        raise UsageError(f"--transformer {path.name} is quantised already: drop --quantize {quantize}")


def load_arguments(folder: Path, index: dict, quantize: str, transformer: str | None, dtype) -> dict:
    """from_pretrained's extra arguments: a GGUF transformer loaded in place of the folder's, or nf4's config."""
    import diffusers

    if transformer is not None:
        if index.get("transformer_2") and index["transformer_2"][0] is not None:
            raise UsageError(f"{folder.name} has two transformers (two experts): one --transformer file cannot "
                             "replace both")
        cls = getattr(diffusers, index["transformer"][1])
        return {"transformer": gguf_transformer(cls, Path(transformer).expanduser(), folder, dtype)}
    if quantize == "nf4":
        config = diffusers.PipelineQuantizationConfig(
            quant_backend="bitsandbytes_4bit", components_to_quantize=list(big_components(folder, index)),
            quant_kwargs={"load_in_4bit": True, "bnb_4bit_quant_type": "nf4", "bnb_4bit_compute_dtype": dtype})
        return {"quantization_config": config}
    return {}


def gguf_transformer(cls, path: Path, folder: Path, dtype):
    """The transformer from a .gguf file, its config from the model's folder (offline)."""
    import diffusers

    config = diffusers.GGUFQuantizationConfig(compute_dtype=dtype)
    try:
        return cls.from_single_file(str(path), quantization_config=config, config=str(folder),
                                    subfolder="transformer", torch_dtype=dtype, local_files_only=True)
    except Exception as exc:  # noqa: BLE001 - the GGUF reader and the key converters raise many kinds
        first = str(exc).strip().splitlines()[0][:200] if str(exc).strip() else type(exc).__name__
        raise UsageError(f"{path.name} is not a {cls.__name__} GGUF file for {folder.name} ({first})") from None


def quantize_loaded(pipe, quantize: str) -> None:
    """torchao weight-only int8/fp8 on the loaded transformer(s) and big text encoders, in place."""
    if quantize not in ("int8", "fp8"):
        return
    from torchao.quantization import Float8WeightOnlyConfig, Int8WeightOnlyConfig, quantize_

    config = Int8WeightOnlyConfig() if quantize == "int8" else Float8WeightOnlyConfig()
    for name in big_components_of(pipe):
        quantize_(getattr(pipe, name), config)


def big_components_of(pipe) -> list[str]:
    names = [n for n in TRANSFORMERS if getattr(pipe, n, None) is not None]
    for name, module in pipe.components.items():
        if name.startswith("text_encoder") and module is not None and hasattr(module, "parameters") and \
                sum(p.numel() for p in module.parameters()) > BIG_TEXT_ENCODER:
            names.append(name)
    return names


def big_components(folder: Path, index: dict) -> list[str]:
    """The components quantised, from the folder alone (for nf4, configured before loading)."""
    names = [n for n in TRANSFORMERS if index.get(n) and index[n][0] is not None]
    for name in index:
        if name.startswith("text_encoder") and (folder / name).is_dir() and \
                stored_parameters(folder / name) > BIG_TEXT_ENCODER:
            names.append(name)
    return names


def stored_parameters(folder: Path) -> int:
    """Parameters in a component's safetensors files, from their headers."""
    from .runtime import tensor_headers

    return sum(math.prod(t["shape"]) for path in folder.glob("*.safetensors") for t in tensor_headers(path).values())


def weight_bytes(module) -> int:
    """Bytes the module's weights take, quantised tensor subclasses (torchao, GGUF) counted by what they hold."""
    def held(t) -> int:
        if hasattr(t, "__tensor_flatten__"):
            names, _ = t.__tensor_flatten__()
            return sum(held(getattr(t, n)) for n in names)
        return t.numel() * t.element_size()

    seen, total = set(), 0
    for t in [*module.parameters(), *module.buffers()]:
        if id(t) not in seen:
            seen.add(id(t))
            total += held(t)
    return total


def quantized_gb(folder: Path, index: dict, dtype_bytes: int, quantize: str, transformer: str | None) -> float:
    """The weights' memory once loaded: quantised components at their bytes per weight, a GGUF at its file size,
    the rest at the dtype (the memory check and the auto-offload decision use this)."""
    from .runtime import weights_gb

    total = weights_gb(folder, dtype_bytes)
    if transformer is not None:
        replaced = weights_gb(folder / "transformer", dtype_bytes)
        return total - replaced + Path(transformer).expanduser().stat().st_size / 2**30
    if quantize in BYTES_PER_WEIGHT:
        for name in big_components(folder, index):
            total -= weights_gb(folder / name, dtype_bytes) * (1 - BYTES_PER_WEIGHT[quantize] / dtype_bytes)
    return total
