"""Bad input: one line on stderr, exit 2, no traceback, no file. Ctrl-C: exit 130, no file."""

import errno
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

BAD = [
    (["generate", "  ", "-o", "{d}/v.mp4"], "the prompt is empty"),
    (["generate", "x", "--frames", "0", "-o", "{d}/v.mp4"], "frames must be between 1 and"),
    (["generate", "x", "--frames", "-3", "-o", "{d}/v.mp4"], "frames must be between 1 and"),
    (["generate", "x", "--width", "100", "-o", "{d}/v.mp4"], "width 100 is not a multiple of 16"),
    (["generate", "x", "--height", "4096", "-o", "{d}/v.mp4"], "height must be between 16 and 2048"),
    (["generate", "x", "--preset", "nope", "-o", "{d}/v.mp4"], "unknown preset 'nope'; valid: cogvideox-2b"),
    (["generate", "x", "--preset", "{d}/missing.yaml", "-o", "{d}/v.mp4"], "preset file not found"),
    (["generate", "x", "--model", "nope", "-o", "{d}/v.mp4"], "unknown model 'nope'; valid: sora-tiny"),
    (["generate", "x", "--model", "{d}/missing.safetensors", "-o", "{d}/v.mp4"], "checkpoint not found"),
    (["generate", "x", "--sampler", "magic", "-o", "{d}/v.mp4"], "unknown sampler 'magic'; valid: euler, heun"),
    (["generate", "x", "--device", "tpu", "-o", "{d}/v.mp4"], "unknown device 'tpu'; valid: auto, cuda, mps, cpu"),
    (["generate", "x", "--dtype", "fp8", "-o", "{d}/v.mp4"], "unknown dtype 'fp8'"),
    (["generate", "x", "-o", "{d}/v.avi"], "unsupported output extension '.avi'; valid: .mp4, .webm, .mkv, .gif"),
    (["generate", "x", "-o", "{d}/file.txt/v.mp4"], "cannot write to"),
    (["generate", "x", "--frames", "abc", "-o", "{d}/v.mp4"], "Invalid value for '--frames'"),
    (["generate", "x", "--bogus"], "No such option: --bogus"),
    (["generate", "--from", "{d}/nothing.json"], "no such file"),
    (["batch", "{d}/missing.txt", "--out", "{d}/out"], "missing.txt: no such prompt file"),
    (["batch", "{d}/bad.jsonl", "--out", "{d}/out"], "bad.jsonl:2: not valid JSON"),
    (["batch", "{d}/prompts.txt", "--out", "{d}/out", "--format", "avi"], "unsupported format '.avi'"),
    (["batch", "{d}/prompts.txt", "--out", "{d}/file.txt/out"], "cannot write to"),
    (["inspect", "{d}/file.txt"], "expected a video"),
    (["presets", "show", "nope"], "unknown preset 'nope'"),
]


@pytest.mark.parametrize("args, message", BAD, ids=[" ".join(a[:3]) for a, _ in BAD])
def test_bad_input_is_one_line_exit_2_and_no_file(cli, tmp_path, args, message):
    (tmp_path / "file.txt").write_text("not a video")
    (tmp_path / "bad.jsonl").write_text('{"prompt": "a"}\n{oops\n')
    (tmp_path / "prompts.txt").write_text("a red circle\n")
    before = sorted(tmp_path.rglob("*"))
    code, stdout, stderr = cli(*[a.format(d=tmp_path) for a in args])
    assert code == 2
    assert stderr.count("\n") == 1 and stderr.startswith("sora: error: ") and message in stderr, stderr
    assert "Traceback" not in stderr and stdout == ""
    assert sorted(tmp_path.rglob("*")) == before


@pytest.mark.parametrize(("change", "message"), [
    ({"frame_stride": 0}, "frame_stride must be a positive whole number, got 0"),
    ({"native_size": 2.5}, "native_size must be a positive whole number, got 2.5"),
    ({"colour_depth": 8}, "unknown ModelParams keys ['colour_depth']"),
])
def test_a_checkpoint_whose_config_cannot_be_built_is_one_line_naming_it(cli, tmp_path, tiny_checkpoint, change,
                                                                        message):
    import json

    from safetensors import safe_open
    from safetensors.torch import load_file, save_file

    with safe_open(tiny_checkpoint, framework="pt") as f:
        meta = f.metadata()
    meta["params"] = json.dumps({**json.loads(meta["params"]), **change})
    bad = tmp_path / "bad.safetensors"
    save_file(load_file(tiny_checkpoint), str(bad), metadata=meta)
    code, stdout, stderr = cli("generate", "x", "--model", bad, "--frames", 2, "-o", tmp_path / "v.mp4", "-q")
    assert code == 2 and stderr == f"sora: error: {bad} has a config sora cannot build: {message}\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bad.safetensors"]


def test_a_full_disk_exits_1_with_one_line_and_no_partial_file(cli, tmp_path, tiny_checkpoint, monkeypatch):
    from sora_cli import video

    real_write = video.VideoWriter.write

    def write_then_fill_the_disk(self, frames):
        real_write(self, frames)
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(video.VideoWriter, "write", write_then_fill_the_disk)
    args = ["generate", "x", "--model", tiny_checkpoint, "--width", 32, "--height", 32, "--steps", 1,
            "--frames", 2, "-o", tmp_path / "v.mp4", "-q"]
    code, stdout, stderr = cli(*args)
    assert code == 1 and stderr == "sora: error: OSError: [Errno 28] No space left on device\n"
    assert list(tmp_path.iterdir()) == []
    with pytest.raises(OSError):  # --debug lets the traceback through
        cli(*args, "--debug")


def test_ctrl_c_exits_130_and_leaves_no_partial_file(tmp_path):
    script = Path(sys.executable).with_name("sora")
    proc = subprocess.Popen([str(script), "generate", "a red circle", "--frames", "240", "--steps", "50", "-o",
                             "v.mp4"], cwd=tmp_path, stderr=subprocess.PIPE, text=True,
                            # a shell's background job inherits SIGINT ignored; a user's terminal does not
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    line = proc.stderr.readline()
    while line and not line.startswith("denoising"):
        line = proc.stderr.readline()
    assert line.startswith("denoising"), "the render never started"
    time.sleep(0.5)
    proc.send_signal(signal.SIGINT)
    rest = proc.stderr.read()
    assert proc.wait(timeout=60) == 130
    assert rest.strip().splitlines()[-1] == "sora: error: interrupted; no partial file was left"
    assert list(tmp_path.iterdir()) == []
