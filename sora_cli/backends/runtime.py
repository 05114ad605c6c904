"""How an open model runs: placement and offload, VAE tiling, regional compilation, step caches, and the
memory/time estimate a CPU or Mac user sees before a long run. Each option is diffusers' own mechanism."""

from __future__ import annotations

import json
import os
from pathlib import Path

from ..errors import UsageError

CPU_GFLOPS = 50.0  # fp32 matmul per core on a laptop/server CPU (measured ~55 on this project's build machine)


def place(pipe, *, device: str, offload: str, vram_gb: float | None, weights: float) -> str:
    """Puts the pipeline on `device` whole or offloaded; returns the offload actually used."""
    if offload == "auto":
        offload = auto_offload(device, vram_gb, weights)
    if offload != "none" and device == "cpu":
        raise UsageError(f"--offload {offload} moves weights between the CPU and a GPU; on the CPU use none")
    if offload == "none":
        pipe.to(device)
    elif offload == "model":
        pipe.enable_model_cpu_offload(device=device)
    elif offload == "sequential":
        pipe.enable_sequential_cpu_offload(device=device)
    else:  # group: blocks stream in one at a time; the rest of the pipeline stays on the device
        pipe.enable_group_offload(onload_device=device, offload_type="block_level", num_blocks_per_group=1)
    return offload


def auto_offload(device: str, vram_gb: float | None, weights: float) -> str:
    """`--offload auto`: on CUDA the whole model when its VRAM (published, else weights + 30 %) fits in 90 % of
    the free memory, else model-level offload; elsewhere none."""
    if device != "cuda":
        return "none"
    import torch

    free_gb = torch.cuda.mem_get_info()[0] / 2**30
    need = vram_gb if vram_gb is not None else weights * 1.3
    return "none" if need < 0.9 * free_gb else "model"


def transformers_of(pipe) -> list:
    return [m for m in (getattr(pipe, "transformer", None), getattr(pipe, "transformer_2", None)) if m is not None]


def compile_blocks(pipe) -> None:
    """Regional compilation: each repeated transformer block once (fast to compile, as fast to run)."""
    for model in transformers_of(pipe):
        if getattr(model, "_repeated_blocks", None):
            model.compile_repeated_blocks(fullgraph=True)
        else:
            model.compile()


def split(pipe, gpus: int, parallel: str, device: str, family) -> None:
    """Context parallelism on the transformer(s) over the process group this worker joined: Ulysses trades heads
    for sequence (all-to-all), ring passes keys and values around, in diffusers' "anything" mode so that any
    sequence length and head count splits (on CUDA). Ring attention needs the log-sum-exp of each block, which the plain
    attention kernel does not give: on CUDA it runs on cuDNN's."""
    import diffusers

    if parallel == "ring" and device != "cuda":
        raise UsageError(f"--parallel ring needs CUDA (cuDNN attention gives the log-sum-exp it merges by); on "
                         f"{device} use ulysses")
    # "anything" mode (uneven sequences and head counts) gathers sizes on the GPU: on gloo (CPU) the split
    # needs a sequence and heads that --gpus divides
    anything = {f"{parallel}_anything": True} if device == "cuda" else {}
    for model in transformers_of(pipe):
        if parallel == "ring":
            model.set_attention_backend("_native_cudnn")
        model.enable_parallelism(config=diffusers.ContextParallelConfig(**{f"{parallel}_degree": gpus}, **anything),
                                 cp_plan=family.split_plan() if family.split_plan else None)
        for name, module in model.named_modules():  # e.g. cross-attention: local queries, the whole prompt
            if name.rsplit(".", 1)[-1] in family.unsplit_attention:
                module.processor._parallel_config = None


def enable_cache(pipe, method: str, threshold: float | None, family) -> None:
    """diffusers' cache hooks on the transformer(s): skip or extrapolate work between denoising steps. Which
    methods take hold on a family's transformer is its record's `caches` (checked before loading): FasterCache
    needs the guidance batch in one call (Wan runs it in two) and unpacked latents (LTX packs them);
    TaylorSeer's default module patterns only take hold on HunyuanVideo's blocks."""
    if method == "none":
        return
    import diffusers

    if threshold is not None and method not in ("first-block", "taylorseer"):
        raise UsageError(f"--cache-threshold applies to first-block (a residual difference) and taylorseer "
                         f"(steps between full passes), not to {method}")

    def timestep():
        return pipe.current_timestep

    if method == "first-block":
        config = diffusers.FirstBlockCacheConfig(threshold=0.05 if threshold is None else threshold)
    elif method == "taylorseer":
        config = diffusers.TaylorSeerCacheConfig(cache_interval=5 if threshold is None else max(1, round(threshold)))
    elif method == "pab":
        config = diffusers.PyramidAttentionBroadcastConfig(
            spatial_attention_block_skip_range=2, spatial_attention_timestep_skip_range=(100, 800),
            current_timestep_callback=timestep)
    else:  # faster
        config = diffusers.FasterCacheConfig(
            spatial_attention_block_skip_range=2, spatial_attention_timestep_skip_range=(-1, 681),
            current_timestep_callback=timestep, attention_weight_callback=lambda _: 0.3,
            unconditional_batch_skip_range=5, unconditional_batch_timestep_skip_range=(-1, 781),
            is_guidance_distilled=family.guidance_distilled, tensor_format=family.latent_layout)
    for model in transformers_of(pipe):
        model.enable_cache(config)


# ---- estimates for CPU and Mac users ---------------------------------------------------------------------
def weights_gb(folder: Path, dtype_bytes: int) -> float:
    """The checkpoint's weights at the dtype they will be loaded in."""
    total = 0.0
    for path in Path(folder).rglob("*.safetensors"):
        stored = _stored_bytes(path)
        total += path.stat().st_size * dtype_bytes / stored
    return total / 2**30


def tensor_headers(path: Path) -> dict[str, dict]:
    """A safetensors file's tensors, name -> {dtype, shape, data_offsets}, read from its header alone."""
    with open(path, "rb") as f:
        header = json.loads(f.read(int.from_bytes(f.read(8), "little")))
    return {k: v for k, v in header.items() if k != "__metadata__" and isinstance(v, dict)}


def _stored_bytes(path: Path) -> int:
    """Bytes per value of a safetensors file, from its header's first tensor."""
    try:
        dtypes = [v["dtype"] for v in tensor_headers(path).values()]
    except (OSError, ValueError):
        return 4
    return {"F32": 4, "F16": 2, "BF16": 2, "F8_E4M3": 1, "F8_E5M2": 1}.get(dtypes[0] if dtypes else "F32", 4)


def memory_gb(kind: str = "SC_PHYS_PAGES") -> float | None:
    """Physical memory (or, with SC_AVPHYS_PAGES, what is free now) in GiB; None where the OS does not say."""
    try:
        return os.sysconf(kind) * os.sysconf("SC_PAGE_SIZE") / 2**30
    except (ValueError, OSError, AttributeError):
        return None


def transformer_seconds(pipe, job, threads: int) -> float:
    """Rough wall time of the denoising loop on a CPU: 2 FLOPs per parameter per token, per pass."""
    params = sum(p.numel() for m in transformers_of(pipe)[:1] for p in m.parameters())
    config = transformers_of(pipe)[0].config
    patch = config.get("patch_size", 1)
    ph, pw = (patch[1], patch[2]) if isinstance(patch, (list, tuple)) else (patch, patch)
    pt = config.get("patch_size_t") or (patch[0] if isinstance(patch, (list, tuple)) else 1)
    # the VAE's compression, under either name diffusers' pipelines give it (LTX's: *_compression_ratio)
    spatial = getattr(pipe, "vae_scale_factor_spatial", None) or getattr(pipe, "vae_spatial_compression_ratio", 8)
    temporal = getattr(pipe, "vae_scale_factor_temporal", None) or getattr(pipe, "vae_temporal_compression_ratio", 4)
    tokens = ((job.generated_frames - 1) // temporal + 1) / pt * (job.height // spatial // ph) * (
        job.width // spatial // pw)
    passes = job.steps * (2 if job.guidance > 1 else 1)
    return 2 * params * tokens * passes / (CPU_GFLOPS * 1e9 * max(threads, 1))
