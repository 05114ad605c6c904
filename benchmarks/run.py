"""`make bench`: start-up, sampler step time, render time and memory by length, extension, torch.compile on CPU,
the open models against their pipelines, weight memory per --quantize, --gpus 2 on the CPU.

Every figure is a ratio measured in one run on this machine, so a noisy shared machine still compares like with
like. Render times are wall-clock of the whole `sora generate` process, start-up included.
"""

from __future__ import annotations

import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

SORA = str(Path(sys.executable).with_name("sora"))
PEAK_RSS = """
import atexit, json, resource, sys, time
start = time.perf_counter()
atexit.register(lambda: print(json.dumps({"peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
                                           "seconds": time.perf_counter() - start}), file=sys.stderr))
from sora_cli.cli import main
main()  # as the console script runs it (argv from sys.argv)
"""


def median_seconds(cmd: list[str], runs: int = 5) -> float:
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        subprocess.run(cmd, check=True, capture_output=True)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def startup() -> dict:
    base = median_seconds([sys.executable, "-c", "pass"])
    help_ = median_seconds([SORA, "--help"])
    presets = median_seconds([SORA, "presets", "list"])
    return {"python_pass_s": round(base, 3), "sora_help_s": round(help_, 3), "presets_list_s": round(presets, 3),
            "help_over_python": round(help_ / base, 1)}


def sample(model, job) -> None:
    import torch

    from sora_cli.pipeline import latent_windows

    for _ in latent_windows(model, job, torch.device("cpu"), torch.float32):
        pass


def sampler_steps() -> dict:
    from sora_cli.backends.native import NativeBackend
    from sora_cli.job import Job

    backend = NativeBackend.load("sora-tiny", device="cpu", dtype="float32", compile=False)
    out = {}
    for sampler in ("euler", "heun", "dpmpp_2m"):
        job = Job("a red circle", 33, 33, width=64, height=64, steps=10, guidance=5.0, sampler=sampler,
                  seed=0)  # one window
        sample(backend.model, job)  # warm-up
        start = time.perf_counter()
        sample(backend.model, job)
        out[f"{sampler}_ms_per_step"] = round((time.perf_counter() - start) / job.steps * 1000, 1)
    out["heun_over_euler"] = round(out["heun_ms_per_step"] / out["euler_ms_per_step"], 2)
    out["dpmpp_2m_over_euler"] = round(out["dpmpp_2m_ms_per_step"] / out["euler_ms_per_step"], 2)
    return out


def renders() -> dict:
    """Wall time of the whole process (start-up included) and its peak RSS, by preset and length."""
    out = {}
    prompt = "a red circle moving left on a black background"
    with tempfile.TemporaryDirectory() as tmp:
        for preset, frames in (("smoke", None), ("default", 120), ("default", 480), ("default", 600)):
            length = ["--frames", str(frames)] if frames else []
            start = time.perf_counter()
            done = subprocess.run(
                [sys.executable, "-c", PEAK_RSS, "generate", prompt, "--preset", preset, *length, "--seed", "1",
                 "-q", "-o", f"{tmp}/{preset}-{frames}.mp4"], check=True, capture_output=True, text=True)
            wall = time.perf_counter() - start
            stats = json.loads(done.stderr.strip().splitlines()[-1])
            out[f"{preset}_{frames or 'preset'}"] = {"wall_s": round(wall, 2),
                                                     "peak_rss_mb": round(stats["peak_rss_mb"], 1)}
    for n in (480, 600):
        out[f"time_{n}_over_120"] = round(out[f"default_{n}"]["wall_s"] / out["default_120"]["wall_s"], 2)
        out[f"rss_{n}_over_120"] = round(out[f"default_{n}"]["peak_rss_mb"] / out["default_120"]["peak_rss_mb"], 2)
    return out


def _process(args: list[str]) -> tuple[float, float]:
    """Wall seconds and peak RSS (MB) of one `sora ...` process."""
    start = time.perf_counter()
    done = subprocess.run([sys.executable, "-c", PEAK_RSS, *args], check=True, capture_output=True, text=True)
    return time.perf_counter() - start, json.loads(done.stderr.strip().splitlines()[-1])["peak_rss_mb"]


def extension() -> dict:
    """`sora extend` (sora-tiny, default preset): time per new frame against plain generation's, and peak RSS
    for a 120- and a 480-frame source (the source is streamed through: memory should not grow with it)."""
    prompt, out = "a red circle moving left on a black background", {}
    with tempfile.TemporaryDirectory() as tmp:
        for frames in (120, 480):
            _process(["generate", prompt, "--frames", str(frames), "--seed", "1", "-q", "-o", f"{tmp}/src{frames}.mp4"])
        new = 72
        plain_s, _ = _process(["generate", prompt, "--frames", str(new), "--seed", "2", "-q", "-o", f"{tmp}/plain.mp4"])
        only_s, _ = _process(["extend", f"{tmp}/src120.mp4", prompt, "--frames", str(new), "--seed", "2", "--only-new",
                              "-q", "-o", f"{tmp}/new.mp4"])
        for frames in (120, 480):
            wall, rss = _process(["extend", f"{tmp}/src{frames}.mp4", prompt, "--frames", str(new), "--seed", "2",
                                  "-q", "-o", f"{tmp}/ext{frames}.mp4"])
            out[f"extend_{frames}_source"] = {"wall_s": round(wall, 2), "peak_rss_mb": round(rss, 1)}
    out["plain_72_s"], out["extend_only_new_72_s"] = round(plain_s, 2), round(only_s, 2)
    out["extend_over_plain_per_new_frame"] = round(only_s / plain_s, 2)
    out["rss_480_source_over_120"] = round(out["extend_480_source"]["peak_rss_mb"]
                                           / out["extend_120_source"]["peak_rss_mb"], 2)
    return out


def compile_on_cpu() -> dict:
    from sora_cli.backends.native import NativeBackend
    from sora_cli.job import Job

    job = Job("a red circle", 121, 121, width=64, height=64, steps=10, guidance=5.0, sampler="euler", seed=0)
    out = {}
    for compiled in (False, True):
        backend = NativeBackend.load("sora-tiny", device="cpu", dtype="float32", compile=compiled)
        start = time.perf_counter()
        sample(backend.model, job)
        first = time.perf_counter() - start
        start = time.perf_counter()
        sample(backend.model, job)
        key = "compiled" if compiled else "eager"
        out[f"{key}_first_s"], out[f"{key}_s"] = round(first, 2), round(time.perf_counter() - start, 2)
    out["compiled_over_eager"] = round(out["compiled_s"] / out["eager_s"], 2)
    return out


# ---- open models (diffusers) on small random checkpoints: big enough that compute dominates ---------------
WAN_BENCH = dict(num_attention_heads=4, attention_head_dim=32, ffn_dim=512, num_layers=6)
# HunyuanVideo 1.5: 2x32 wide, 4 blocks (its text side as is: ~2000 prompt, glyph and image tokens a pass)
HV15_BENCH = dict(num_attention_heads=2, attention_head_dim=32, rope_axes_dim=(8, 12, 12), num_layers=4)
# LTX-2 with its soundtrack: video and audio streams 4x32 and 4x16 wide, 6 layers
LTX2_BENCH = dict(num_attention_heads=4, attention_head_dim=32, cross_attention_dim=128, audio_num_attention_heads=4,
                  audio_attention_head_dim=16, audio_cross_attention_dim=64, num_layers=6)


def _tiny_checkpoints():
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from tests import tiny_checkpoints
    from tests.tiny_checkpoints.ltx2 import ltx2

    return tiny_checkpoints, ltx2


def _timed_transformer(pipe):
    """Wraps the transformer's forward to count calls and time them, and counts the passes its last block's
    attention really makes (what --compile and --cache change)."""
    stats = {"calls": 0, "seconds": 0.0, "attention_passes": 0}
    forward = pipe.transformer.forward
    pipe.transformer.blocks[-1].attn1.to_q.register_forward_hook(
        lambda *_: stats.__setitem__("attention_passes", stats["attention_passes"] + 1))

    def timed(*args, **kwargs):
        start = time.perf_counter()
        try:
            return forward(*args, **kwargs)
        finally:
            stats["calls"] += 1
            stats["seconds"] += time.perf_counter() - start

    pipe.transformer.forward = timed
    return stats


def _against_the_pipeline(folder: Path, job, fixed: dict, tmp: str, rounds: int = 4) -> dict:
    """The checkpoint's diffusers pipeline called directly against sora on the same recipe and seed: sora's
    frames (with its soundtrack, if the model makes one) and sora to an .mkv. Interleaved rounds, the first
    discarded, so all three see the same machine state."""
    import diffusers
    import torch

    from sora_cli.backends.open_models import DiffusersBackend
    from sora_cli.presets import resolve_preset
    from sora_cli.render import render_to_file

    index = json.loads((folder / "model_index.json").read_text())
    pipe = getattr(diffusers, index["_class_name"]).from_pretrained(folder)
    pipe.set_progress_bar_config(disable=True)
    call = dict(guidance_scale=job.guidance)
    if getattr(pipe, "guider", None) is not None:  # HunyuanVideo 1.5: guidance is its guider's (diffusers' docs)
        pipe.guider, call = pipe.guider.new(guidance_scale=job.guidance), {}
    backend = DiffusersBackend.load(str(folder), device="cpu", dtype="float32", compile=False)
    preset = resolve_preset("default")
    direct, ours, to_file = [], [], []
    for i in range(rounds):
        start = time.perf_counter()
        pipe(prompt=job.prompt, negative_prompt=job.negative, height=job.height, width=job.width,
             num_frames=job.generated_frames, num_inference_steps=job.steps,
             generator=torch.Generator("cpu").manual_seed(job.seed), output_type="np", **call, **fixed)
        direct.append(time.perf_counter() - start)
        start = time.perf_counter()
        list(backend.render(job))  # the same frames (and sound), uint8, decoded piece by piece
        ours.append(time.perf_counter() - start)
        start = time.perf_counter()
        render_to_file(backend, job, preset, Path(tmp) / f"o{i}.mkv")  # + encoding, recipe, atomic rename
        to_file.append(time.perf_counter() - start)
    d, o, f = (statistics.median(x[1:]) for x in (direct, ours, to_file))
    return {"direct_pipeline_s": round(d, 3), "sora_frames_s": round(o, 3), "sora_to_mkv_s": round(f, 3),
            "sora_overhead_pct": round(100 * (o - d) / d, 1),
            "sora_with_encoding_overhead_pct": round(100 * (f - d) / d, 1)}


def open_models() -> dict:
    """sora against the diffusers pipeline called directly (same checkpoint, recipe and seed), then what
    --compile and each --cache do to transformer time per step and to the number of full passes."""
    from sora_cli.backends.open_models import DiffusersBackend
    from sora_cli.job import Job

    steps, frames, size = 10, 33, 96
    tiny_checkpoints, _ = _tiny_checkpoints()
    with tempfile.TemporaryDirectory() as tmp:
        folder = tiny_checkpoints.wan(Path(tmp) / "wan", transformer_overrides=WAN_BENCH)
        job = Job("a cat surfing", frames, frames, width=size, height=size, steps=steps, guidance=5.0,
                  sampler="auto", seed=0)
        out: dict = _against_the_pipeline(folder, job, {}, tmp)
        cases = (("eager", {}), ("compile", {"compile": True}), ("first-block", {"cache": "first-block"}),
                 ("first-block-0.2", {"cache": "first-block", "cache_threshold": 0.2}), ("pab", {"cache": "pab"}))
        for label, options in cases:
            b = DiffusersBackend.load(str(folder), device="cpu", dtype="float32",
                                      **{"compile": False, **options})
            list(b.render(job))  # warm-up (compilation happens here)
            stats = _timed_transformer(b.pipe)
            list(b.render(job))
            out[label] = {"transformer_ms_per_step": round(1000 * stats["seconds"] / steps, 1),
                          "transformer_calls": stats["calls"], "last_block_attention_passes": stats["attention_passes"]}
        for label, _ in cases[1:]:
            out[f"{label}_over_eager"] = round(out[label]["transformer_ms_per_step"]
                                               / out["eager"]["transformer_ms_per_step"], 2)
    return out


def open_models_with_sound() -> dict:
    """LTX-2: sora's frames and soundtrack against the pipeline's own (video, then audio VAE and vocoder)."""
    from sora_cli.job import Job

    _, ltx2 = _tiny_checkpoints()
    with tempfile.TemporaryDirectory() as tmp:
        folder = ltx2(Path(tmp) / "ltx2", transformer_overrides=LTX2_BENCH)
        job = Job("a cat surfing", 33, 33, width=128, height=128, steps=20, guidance=3.0, seed=0)
        return {"ltx2": _against_the_pipeline(folder, job, {"frame_rate": float(job.fps)}, tmp, rounds=6)}


def open_models_hunyuanvideo15() -> dict:
    """HunyuanVideo 1.5 (guidance on its guider, a causal VAE streamed frame by frame) against its pipeline."""
    from sora_cli.job import Job

    _tiny_checkpoints()
    from tests.tiny_checkpoints.hunyuanvideo15 import hunyuanvideo15

    with tempfile.TemporaryDirectory() as tmp:
        folder = hunyuanvideo15(Path(tmp) / "hunyuanvideo15", transformer_overrides=HV15_BENCH)
        job = Job("a cat surfing", 17, 17, width=64, height=64, steps=4, guidance=6.0, seed=0)
        return {"hunyuanvideo15": _against_the_pipeline(folder, job, {}, tmp, rounds=3)}


# Wan, 512 wide (8 heads of 64), feed-forward 2048, 13 blocks: 55 M parameters in the transformer
QUANT_BENCH = dict(num_attention_heads=8, attention_head_dim=64, ffn_dim=2048, num_layers=13, text_dim=32)


def quantized_weights() -> dict:
    """The transformer's weight memory as loaded with each --quantize (measured on the loaded tensors, torchao's
    included), and what sora estimates before loading (the memory check and auto-offload use it)."""
    from sora_cli.backends.open_models import DiffusersBackend
    from sora_cli.backends.quantize import weight_bytes

    tiny_checkpoints, _ = _tiny_checkpoints()
    out: dict = {}
    with tempfile.TemporaryDirectory() as tmp:
        folder = tiny_checkpoints.wan(Path(tmp) / "wan", transformer_overrides=QUANT_BENCH)
        for dtype in ("float32", "bfloat16"):
            for quantize in ("none", "int8", "fp8"):
                backend = DiffusersBackend.load(str(folder), device="cpu", dtype=dtype, compile=False,
                                                quantize=quantize)
                held = weight_bytes(backend.pipe.transformer) / 2**20
                out[f"{dtype}_{quantize}"] = {"transformer_mb": round(held, 1),
                                              "estimated_weights_mb": round(backend.weights_gb * 1024, 1)}
            out["parameters_m"] = round(sum(p.numel() for p in backend.pipe.transformer.parameters()) / 1e6, 1)
            for quantize in ("int8", "fp8"):
                out[f"{dtype}_{quantize}_over_{dtype}"] = round(out[f"{dtype}_{quantize}"]["transformer_mb"]
                                                               / out[f"{dtype}_none"]["transformer_mb"], 3)
    return out


def split_over_two() -> dict:
    """--gpus 2 on the CPU (gloo; the GPU count patched as in tests/test_parallel.py) against one process, whole
    `sora generate` runs, one thread per process: what splitting costs where there is nothing to gain (two
    processes start and load the model, and every attention layer exchanges its tokens)."""
    import os

    tiny_checkpoints, _ = _tiny_checkpoints()
    site = Path(__file__).resolve().parents[1] / "tests" / "parallel_site"
    env = {**os.environ, "PYTHONPATH": str(site), "SORA_TEST_GPUS": "2", "OMP_NUM_THREADS": "1"}
    with tempfile.TemporaryDirectory() as tmp:
        folder = tiny_checkpoints.wan(Path(tmp) / "wan", transformer_overrides=WAN_BENCH)
        base = [SORA, "generate", "a cat surfing", "--model", str(folder), "--width", "64", "--height", "64",
                "--frames", "17", "--steps", "10", "--seed", "0", "-q", "--overwrite", "-o", f"{tmp}/x.mkv"]
        times = {"one_process_s": [], "two_workers_s": []}
        for _ in range(3):
            for key, extra in (("one_process_s", []), ("two_workers_s", ["--gpus", "2"])):
                start = time.perf_counter()
                subprocess.run(base + extra, check=True, capture_output=True, env=env)
                times[key].append(time.perf_counter() - start)
    out = {key: round(statistics.median(values), 2) for key, values in times.items()}
    out["two_over_one"] = round(out["two_workers_s"] / out["one_process_s"], 2)
    return out


if __name__ == "__main__":
    for name, bench in (("startup", startup), ("sampler_steps", sampler_steps), ("renders", renders),
                        ("extension", extension),
                        ("compile_on_cpu", compile_on_cpu), ("open_models", open_models),
                        ("open_models_with_sound", open_models_with_sound),
                        ("open_models_hunyuanvideo15", open_models_hunyuanvideo15),
                        ("quantized_weights", quantized_weights), ("split_over_two", split_over_two)):
        print(json.dumps({name: bench()}), flush=True)
