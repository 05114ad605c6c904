"""--gpus 2 on the CPU: two worker processes over gloo, as they would run over NCCL on two GPUs. The machine's GPU
count is patched for these tests only (tests/parallel_site: sora's count, and the device count diffusers places
ranks by); everything else is the product: sora starts, splits, gathers and writes."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from sora_cli.video import read_frames
from tests import tiny_checkpoints

SITE = Path(__file__).parent / "parallel_site"
ARGS = ("--width", 32, "--height", 32, "--frames", 9, "--steps", 3, "--seed", 6, "-q")


def sora(*args, gpus: int = 2, **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "sora_cli", *map(str, args)], env=split_env(gpus),
                          capture_output=True, text=True, timeout=600, **kwargs)


def split_env(gpus: int) -> dict:
    path = os.pathsep.join([str(SITE), *filter(None, [os.environ.get("PYTHONPATH")])])
    return {**os.environ, "PYTHONPATH": path, "SORA_TEST_GPUS": str(gpus), "OMP_NUM_THREADS": "1"}


@pytest.fixture(scope="module")
def folders(tmp_path_factory):
    root = tmp_path_factory.mktemp("split")
    return {"wan": tiny_checkpoints.wan(root / "wan"), "ltx-video": tiny_checkpoints.ltx(root / "ltx")}


@pytest.mark.parametrize("family", ["wan", "ltx-video"])
def test_one_video_over_two_workers_equals_one_process(folders, tmp_path, family, parallel="ulysses"):
    whole, split = tmp_path / "whole.mkv", tmp_path / "split.mkv"
    # LTX-Video packs 32x32 pixels into a token: 64x64, 17 frames = 12 tokens, which two workers halve
    frames = ("--frames", 17, "--width", 64, "--height", 64) if family == "ltx-video" else ()
    done = sora("generate", "a cat surfing", "--model", folders[family], *ARGS, *frames, "-o", whole)
    assert done.returncode == 0, done.stderr
    done = sora("generate", "a cat surfing", "--model", folders[family], *ARGS[:-1], *frames, "--gpus", 2,
                "--parallel", parallel, "-o", split, "--contact-sheet")
    assert done.returncode == 0, done.stderr
    lines = done.stderr.splitlines()  # one progress display, fed by rank 0
    assert any(line.startswith("denoising: 3/3") for line in lines) and not any("rank" in x for x in lines), lines
    assert np.abs(read_frames(split).astype(np.float64) - read_frames(whole)).mean() <= 1.0
    recipe = json.loads(split.with_suffix(".json").read_text())
    assert (recipe["gpus"], recipe["parallel"]) == (2, parallel) and split.with_suffix(".png").is_file()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["split.json", "split.mkv", "split.png", "whole.json",
                                                          "whole.mkv"]


def test_a_killed_worker_ends_the_command_in_one_line(folders, tmp_path):
    out = tmp_path / "x.mp4"
    log = tmp_path / "err.txt"
    with open(log, "w") as err:
        args = ["generate", "a cat", "--model", folders["wan"], "--width", 32, "--height", 32, "--frames", 9,
                "--steps", 400, "--gpus", 2, "-o", out]
        proc = subprocess.Popen([sys.executable, "-m", "sora_cli", *map(str, args)], env=split_env(2),
                                stdout=subprocess.DEVNULL, stderr=err)
    deadline = time.monotonic() + 300
    while "denoising" not in log.read_text() and time.monotonic() < deadline:
        assert proc.poll() is None, log.read_text()
        time.sleep(0.2)
    workers = [pid for pid in children(proc.pid) if "spawn_main" in cmdline(pid)]
    assert len(workers) == 2, workers
    os.kill(workers[-1], signal.SIGKILL)
    code = proc.wait(timeout=120)
    errors = [line for line in log.read_text().splitlines() if not line.startswith("denoising")]
    assert code == 1 and len(errors) == 1 and "stopped (killed by SIGKILL)" in errors[0], errors
    assert not out.exists() and not list(tmp_path.glob(".*part*"))
    time.sleep(1)
    assert not any(Path(f"/proc/{pid}").exists() and "spawn_main" in cmdline(pid) for pid in workers)


def children(pid: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[1]) == pid:
                found.append(int(entry.name))
    return sorted(found)


def cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    except OSError:
        return ""


def test_what_cannot_be_split_is_one_line_exit_2(folders, tmp_path):
    cogvideox = tiny_checkpoints.cogvideox(tmp_path / "cogvideox")
    cases = [
        (("--model", folders["wan"], "--gpus", 4), 2, "this machine has 2 CUDA GPUs"),
        (("--model", cogvideox, "--gpus", 2), 2, "--gpus does not apply to cogvideox models"),
        (("--gpus", 2), 2, "--gpus does not apply to native models"),
        (("--model", folders["wan"], "--gpus", 2, "--parallel", "tree"), 2, "unknown parallel 'tree'"),
        (("--model", folders["wan"], "--gpus", 2, "--parallel", "ring"), 2, "--parallel ring needs CUDA"),
    ]
    for args, gpus, message in cases:
        done = sora("generate", "a cat", *args, *ARGS, "-o", tmp_path / "x.mp4", gpus=gpus)
        assert done.returncode == 2 and message in done.stderr and len(done.stderr.strip().splitlines()) == 1, \
            (args, done.stderr)
    assert not (tmp_path / "x.mp4").exists()
    rows = tmp_path / "rows.txt"
    rows.write_text("a cat\n")
    done = sora("batch", rows, "--out", tmp_path / "b", "--model", folders["wan"], "--gpus", 2)
    assert done.returncode == 2 and "--executor ray" in done.stderr
