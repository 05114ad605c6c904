"""Shared fixtures: an isolated SORA_HOME, a tiny random checkpoint, and ways to run the CLI."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from sora_cli.models.params import DiTParams, ModelParams, TextParams, VAEParams

ROOT = Path(__file__).resolve().parents[1]
TINY = ModelParams(
    text=TextParams(context_length=16, width=32, heads=2, layers=1),
    vae=VAEParams(latent_channels=4, channels=(8, 16, 16, 16)),
    dit=DiTParams(width=32, depth=2, heads=2, rope_axes=(4, 6, 6), window=3, context=1),
)


@pytest.fixture(autouse=True)
def sora_home(tmp_path_factory, monkeypatch) -> Path:
    """Every test gets its own empty $SORA_HOME: user presets never leak in from the real home."""
    home = tmp_path_factory.mktemp("sora-home")
    monkeypatch.setenv("SORA_HOME", str(home))
    return home


@pytest.fixture(scope="session")
def tiny_checkpoint(tmp_path_factory) -> Path:
    """A 2-layer random-weight native checkpoint in the real format (config in the safetensors metadata)."""
    from sora_cli.models.native import build_model, randomize
    from sora_cli.weights import save_checkpoint

    path = tmp_path_factory.mktemp("ckpt") / "tiny.safetensors"
    save_checkpoint(randomize(build_model(TINY, "cpu"), seed=1, std=0.05), path, family="native")
    return path


def in_hub_cache(folder: Path, repo: str, tmp_path: Path, monkeypatch) -> None:
    """A copy of `folder` where the Hugging Face cache (HF_HOME under tmp_path) holds a pulled `repo`, offline."""
    import shutil

    cache = tmp_path / "hf" / "hub" / f"models--{repo.replace('/', '--')}"
    shutil.copytree(folder, cache / "snapshots" / "0123abc")
    (cache / "refs").mkdir()
    (cache / "refs" / "main").write_text("0123abc")
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")


@pytest.fixture(scope="session")
def first_frame(tmp_path_factory) -> Path:
    """A 48x40 image of seeded noise: the first frame of the image-to-video tests."""
    import numpy as np
    from PIL import Image

    path = tmp_path_factory.mktemp("image") / "first.png"
    Image.fromarray(np.random.default_rng(0).integers(0, 256, (40, 48, 3), dtype=np.uint8)).save(path)
    return path


def random_video(path: Path, frames: int, *, seed: int, size: int = 32, fps: int = 24):
    """A lossless .mkv of seeded noise frames (a source for the verbs); returns the frames (f, size, size, 3)."""
    import numpy as np

    from sora_cli.video import VideoWriter

    video = np.random.default_rng(seed).integers(0, 256, (frames, size, size, 3), dtype=np.uint8)
    with VideoWriter(path, fps) as writer:
        writer.write(video)
    return video


@pytest.fixture()
def cli(capsys):
    """Runs `sora ARGS` in-process through the real entry point; returns (exit code, stdout, stderr)."""
    from sora_cli.cli import main

    def run(*args: str):
        with pytest.raises(SystemExit) as exit_info:
            main([str(a) for a in args])
        out, err = capsys.readouterr()
        return exit_info.value.code, out, err

    return run


def sora_process(*args, cwd=None, env=None, **kwargs) -> subprocess.CompletedProcess:
    """Runs the installed console script as a separate process."""
    script = Path(sys.executable).with_name("sora")
    full_env = {**os.environ, **(env or {})}
    return subprocess.run([str(script), *map(str, args)], cwd=cwd, env=full_env, capture_output=True, text=True,
                          **kwargs)


def fail_writes_for(monkeypatch, word: str) -> None:
    """Fault injection: writing any video whose name holds `word` fails as a full disk would."""
    from sora_cli import video

    real_write = video.VideoWriter.write

    def write(self, frames):
        if word in self.path.name:
            raise OSError(28, "No space left on device")
        real_write(self, frames)

    monkeypatch.setattr(video.VideoWriter, "write", write)


def press_ctrl_c_while_writing(monkeypatch, times: int) -> None:
    """Sends SIGINT to this process from inside the first `times` video writes, as a user pressing Ctrl-C."""
    import signal

    from sora_cli import video

    real_write, presses = video.VideoWriter.write, []

    def write(self, frames):
        if len(presses) < times:
            presses.append(True)
            os.kill(os.getpid(), signal.SIGINT)
        real_write(self, frames)

    monkeypatch.setattr(video.VideoWriter, "write", write)
