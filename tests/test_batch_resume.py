"""Batches survive crashes: kill -9 then --resume, a lock per folder, the first Ctrl-C finishing the row."""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import time

import numpy as np

from sora_cli.manifest import BatchLock
from sora_cli.video import read_frames

from .conftest import fail_writes_for, press_ctrl_c_while_writing, sora_process

ARGS = ["--width", "32", "--height", "32", "--steps", "2", "--frames", "17", "--seed", "7", "--format", "mkv", "-q"]
PROMPTS = [f"a {c} {s}" for c in ("red", "blue", "green", "white") for s in ("circle", "square")]


def rows_of(out):
    records = [json.loads(line) for line in (out / "manifest.jsonl").read_text().splitlines() if line.strip()]
    return [r for r in records if r.get("type") == "row"]


def fingerprint(path):
    return path.stat().st_mtime_ns, hashlib.sha256(path.read_bytes()).hexdigest()


def test_kill_9_mid_batch_then_resume_loses_nothing_and_matches_an_uninterrupted_run(tiny_checkpoint, tmp_path):
    prompts = tmp_path / "p.txt"
    prompts.write_text("\n".join(PROMPTS) + "\n")
    out = tmp_path / "out"
    script = [str(__import__("sys").executable), "-m", "sora_cli", "batch", str(prompts), "--out", str(out),
              "--model", str(tiny_checkpoint), *ARGS]
    run = subprocess.Popen(script, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and run.poll() is None:
        if (out / "manifest.jsonl").is_file() and len(rows_of(out)) >= 2:
            break
        time.sleep(0.01)
    os.kill(run.pid, signal.SIGKILL)
    run.wait()
    finished = {r["output"]: fingerprint(out / r["output"]) for r in rows_of(out)}
    assert 2 <= len(finished) < len(PROMPTS), "the kill should land mid-batch"

    done = sora_process("batch", prompts, "--out", out, "--model", tiny_checkpoint, *ARGS, "--resume")
    assert done.returncode == 0, done.stderr
    videos = sorted(p.name for p in out.glob("*.mkv"))
    assert len(videos) == len(PROMPTS)
    assert all(fingerprint(out / name) == before for name, before in finished.items())  # untouched
    assert [p.name for p in out.iterdir() if p.name.startswith(".") and p.name != ".sora-batch.lock"] == []
    newest = {r["index"]: r for r in rows_of(out)}
    assert sorted(newest) == list(range(len(PROMPTS))) and all(r["status"] == "done" for r in newest.values())

    clean = tmp_path / "clean"
    again = sora_process("batch", prompts, "--out", clean, "--model", tiny_checkpoint, *ARGS)
    assert again.returncode == 0, again.stderr
    assert sorted(p.name for p in clean.glob("*.mkv")) == videos
    for name in videos:
        assert np.array_equal(read_frames(out / name), read_frames(clean / name)), name


def test_a_second_batch_on_the_same_folder_is_refused(cli, tiny_checkpoint, tmp_path):
    (tmp_path / "p.txt").write_text("a red circle\n")
    out = tmp_path / "out"
    out.mkdir()
    with BatchLock(out):
        code, _, stderr = cli("batch", tmp_path / "p.txt", "--out", out, "--model", tiny_checkpoint, *ARGS)
    assert code == 2 and "another sora batch is running in" in stderr
    assert not list(out.glob("*.mkv"))


def test_an_existing_batch_needs_resume_and_keeps_its_seed(cli, tiny_checkpoint, tmp_path):
    (tmp_path / "p.txt").write_text("a red circle\n")
    out = tmp_path / "out"
    assert cli("batch", tmp_path / "p.txt", "--out", out, "--model", tiny_checkpoint, *ARGS)[0] == 0
    code, _, stderr = cli("batch", tmp_path / "p.txt", "--out", out, "--model", tiny_checkpoint, *ARGS)
    assert code == 2 and "already holds a batch" in stderr and "--resume" in stderr
    other_seed = [a if a != "7" else "8" for a in ARGS]
    code, _, stderr = cli("batch", tmp_path / "p.txt", "--out", out, "--model", tiny_checkpoint, *other_seed,
                          "--resume")
    assert code == 2 and "was started with --seed 7" in stderr
    before = fingerprint(out / "0000-a-red-circle.mkv")
    assert cli("batch", tmp_path / "p.txt", "--out", out, "--model", tiny_checkpoint, *ARGS, "--resume")[0] == 0
    assert fingerprint(out / "0000-a-red-circle.mkv") == before  # done and whole: not rendered again


def test_failed_rows_wait_for_retry_failed(cli, tiny_checkpoint, tmp_path, monkeypatch):
    (tmp_path / "p.txt").write_text("a red circle\na blue square\n")
    out = tmp_path / "out"
    with monkeypatch.context() as full_disk:
        fail_writes_for(full_disk, "blue")
        assert cli("batch", tmp_path / "p.txt", "--out", out, "--model", tiny_checkpoint, *ARGS)[0] == 1
    # the disk has room again
    assert cli("batch", tmp_path / "p.txt", "--out", out, "--model", tiny_checkpoint, *ARGS, "--resume")[0] == 1
    assert not (out / "0001-a-blue-square.mkv").exists()
    assert cli("batch", tmp_path / "p.txt", "--out", out, "--model", tiny_checkpoint, *ARGS, "--resume",
               "--retry-failed")[0] == 0
    assert (out / "0001-a-blue-square.mkv").is_file()


def test_the_first_ctrl_c_finishes_the_current_video_then_stops(cli, tiny_checkpoint, tmp_path, monkeypatch):
    press_ctrl_c_while_writing(monkeypatch, times=1)
    (tmp_path / "p.txt").write_text("a red circle\na blue square\na green circle\n")
    out = tmp_path / "out"
    code, _, stderr = cli("batch", tmp_path / "p.txt", "--out", out, "--model", tiny_checkpoint, *ARGS[:-1])
    assert code == 130 and "stopping after the current video" in stderr and "--resume" in stderr
    assert [p.name for p in out.glob("*.mkv")] == ["0000-a-red-circle.mkv"]
    assert len(read_frames(out / "0000-a-red-circle.mkv")) == 17  # finished, whole


def test_a_folder_turning_read_only_fails_the_row_cleanly_and_the_batch_goes_on(cli, tiny_checkpoint, tmp_path,
                                                                                monkeypatch):
    """Fault injection at the rename (root ignores permission bits, so the file system's answer is simulated)."""
    import errno

    from sora_cli import video

    real_replace = video.fsync_replace

    def read_only_for_blue(tmp, path):
        if "blue" in path.name:
            raise OSError(errno.EROFS, "Read-only file system", str(path))
        real_replace(tmp, path)

    monkeypatch.setattr(video, "fsync_replace", read_only_for_blue)
    (tmp_path / "p.txt").write_text("a red circle\na blue square\na green circle\n")
    out = tmp_path / "out"
    code, _, stderr = cli("batch", tmp_path / "p.txt", "--out", out, "--model", tiny_checkpoint, *ARGS)
    assert code == 1
    newest = {r["index"]: r for r in rows_of(out)}
    assert [newest[i]["status"] for i in range(3)] == ["done", "failed", "done"]
    assert "Read-only file system" in newest[1]["error"]
    assert sorted(p.name for p in out.iterdir() if p.suffix == ".mkv" or ".part" in p.name) == [
        "0000-a-red-circle.mkv", "0002-a-green-circle.mkv"]


def test_a_second_ctrl_c_aborts_the_current_video_and_leaves_no_partial_file(cli, tiny_checkpoint, tmp_path,
                                                                              monkeypatch):
    press_ctrl_c_while_writing(monkeypatch, times=2)
    (tmp_path / "p.txt").write_text("a red circle\na blue square\n")
    out = tmp_path / "out"
    code, _, stderr = cli("batch", tmp_path / "p.txt", "--out", out, "--model", tiny_checkpoint, *ARGS[:-1])
    assert code == 130 and "interrupted; no partial file was left" in stderr
    assert [p.name for p in out.iterdir() if p.name != ".sora-batch.lock"] == ["manifest.jsonl"]
