"""`--executor ray`: the same prompt file and seed give the same videos, with the same names, as the local run.

Ray binds the machine's external address by default, so the cluster runs in a private network namespace where
only loopback exists (`unshare -n`, root), with token auth off for this throwaway local cluster."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np

from sora_cli.video import read_frames

ARGS = ["--width", "32", "--height", "32", "--steps", "2", "--frames", "9", "--seed", "21", "--format", "mkv", "-q"]


def sora_in_private_network(*args) -> subprocess.CompletedProcess:
    command = " ".join([sys.executable, "-m", "sora_cli", *map(str, args)])
    return subprocess.run(["unshare", "-n", "bash", "-c", f"ip link set lo up && exec {command}"],
                          env={**os.environ, "RAY_AUTH_MODE": "disabled"}, capture_output=True, text=True,
                          timeout=300)


def test_ray_with_two_workers_renders_what_the_local_executor_renders(tiny_checkpoint, tmp_path):
    prompts = tmp_path / "p.jsonl"
    prompts.write_text("\n".join(json.dumps({"prompt": p}) for p in [
        "a red circle", "a blue square", "a green triangle", "a white circle", "a yellow square"]) + "\n")
    local, distributed = tmp_path / "local", tmp_path / "ray"
    done = sora_in_private_network("batch", prompts, "--out", local, "--model", tiny_checkpoint, *ARGS)
    assert done.returncode == 0, done.stderr
    done = sora_in_private_network("batch", prompts, "--out", distributed, "--model", tiny_checkpoint, *ARGS,
                                   "--executor", "ray", "--workers", 2)
    assert done.returncode == 0, done.stderr[-2000:]
    names = sorted(p.name for p in local.glob("*.mkv"))
    assert len(names) == 5 and sorted(p.name for p in distributed.glob("*.mkv")) == names
    for name in names:
        assert np.array_equal(read_frames(local / name), read_frames(distributed / name)), name
    records = [json.loads(line) for line in (distributed / "manifest.jsonl").read_text().splitlines()]
    rows = [r for r in records if r["type"] == "row"]
    assert sorted(r["index"] for r in rows) == list(range(5)) and {r["status"] for r in rows} == {"done"}
