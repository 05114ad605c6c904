"""`sora batch`: every prompt-file format, one model load, per-row settings, a manifest record per row."""

import json

import numpy as np

from sora_cli import backends
from sora_cli.video import probe, read_frames

from .conftest import fail_writes_for

SIZE = ["--width", "32", "--height", "32", "--steps", "2"]


def rows_of(out):
    """The manifest's row records, in the order they were written."""
    records = [json.loads(line) for line in (out / "manifest.jsonl").read_text().splitlines()]
    return [r for r in records if r["type"] == "row"]


def test_batch_renders_every_row_with_one_model_load(cli, tiny_checkpoint, tmp_path, monkeypatch):
    loads = []
    real = backends.load_backend

    def counting(model_ref, **kwargs):
        loads.append((model_ref, kwargs))
        return real(model_ref, **kwargs)

    monkeypatch.setattr(backends, "load_backend", counting)
    (tmp_path / "a.txt").write_text("# two prompts\na red circle\n\na blue square\n")
    (tmp_path / "b.jsonl").write_text('{"prompt": "a green triangle", "frames": 3, "seed": 99, "name": "tri"}\n')
    (tmp_path / "c.csv").write_text("prompt,steps\na yellow circle,1\n")
    (tmp_path / "d.yaml").write_text("- prompt: a white square\n  width: 48\n")
    out = tmp_path / "out"
    code, stdout, stderr = cli("batch", tmp_path / "a.txt", tmp_path / "b.jsonl", tmp_path / "c.csv",
                               tmp_path / "d.yaml", "--out", out, "--model", tiny_checkpoint, *SIZE, "--frames", 5,
                               "--seed", 10, "--format", "mkv")
    assert code == 0, stderr
    assert len(loads) == 1 and loads[0][0] == str(tiny_checkpoint)
    names = ["0000-a-red-circle.mkv", "0001-a-blue-square.mkv", "0002-tri.mkv", "0003-a-yellow-circle.mkv",
             "0004-a-white-square.mkv"]
    assert sorted(p.name for p in out.glob("*.mkv")) == names
    records = rows_of(out)
    assert [r["status"] for r in records] == ["done"] * 5
    assert [r["seed"] for r in records] == [10, 11, 99, 13, 14]  # batch seed + index unless the row names one
    assert records[2]["source"].endswith("b.jsonl:1")
    # precedence is preset < row < CLI flag: --frames and --width outrank the rows' own values
    assert probe(out / names[2])["frames"] == 5 and probe(out / names[4])["width"] == 32
    assert json.loads((out / "0003-a-yellow-circle.json").read_text())["steps"] == 2
    assert stdout.count("done") == 5


def test_rows_override_the_preset_and_match_generate(cli, tiny_checkpoint, tmp_path):
    (tmp_path / "p.jsonl").write_text('{"prompt": "a red circle", "seed": 5, "frames": 6, "steps": 1}\n')
    code, _, stderr = cli("batch", tmp_path / "p.jsonl", "--out", tmp_path / "out", "--model", tiny_checkpoint,
                          "--width", "32", "--height", "32", "--format", "mkv", "-q")
    assert code == 0, stderr
    code, _, _ = cli("generate", "a red circle", "--seed", 5, "--frames", 6, "--steps", 1, "--model", tiny_checkpoint,
                     "--width", 32, "--height", 32, "-o", tmp_path / "single.mkv", "-q")
    assert code == 0
    assert np.array_equal(read_frames(tmp_path / "out" / "0000-a-red-circle.mkv"), read_frames(tmp_path / "single.mkv"))


def test_a_failing_row_is_recorded_and_the_batch_goes_on_then_exits_1(cli, tiny_checkpoint, tmp_path, monkeypatch):
    fail_writes_for(monkeypatch, "blue")
    (tmp_path / "p.txt").write_text("a red circle\na blue square\na green circle\n")
    out = tmp_path / "out"
    code, _, _ = cli("batch", tmp_path / "p.txt", "--out", out, "--model", tiny_checkpoint, *SIZE, "--frames", 2,
                     "-q")
    assert code == 1
    records = rows_of(out)
    assert [r["status"] for r in records] == ["done", "failed", "done"]
    assert "No space left on device" in records[1]["error"]
    assert sorted(p.name for p in out.iterdir() if not p.name.startswith(("manifest", "."))) == [
        "0000-a-red-circle.json", "0000-a-red-circle.mp4", "0002-a-green-circle.json", "0002-a-green-circle.mp4"]


def test_a_bad_row_stops_the_batch_before_anything_renders(cli, tiny_checkpoint, tmp_path):
    (tmp_path / "p.jsonl").write_text('{"prompt": "ok"}\n{"prompt": "bad", "width": 40}\n')
    code, _, stderr = cli("batch", tmp_path / "p.jsonl", "--out", tmp_path / "out", "--model", tiny_checkpoint)
    assert code == 2 and "p.jsonl:2: width 40 is not a multiple of 16" in stderr
    assert not (tmp_path / "out").exists()


def test_a_row_with_variations_renders_consecutive_seeds_and_resumes_them(cli, tiny_checkpoint, tmp_path):
    (tmp_path / "p.jsonl").write_text('{"prompt": "a red circle", "variations": 3}\n{"prompt": "a blue square"}\n')
    out = tmp_path / "out"
    args = ("batch", tmp_path / "p.jsonl", "--out", out, "--model", tiny_checkpoint, *SIZE, "--frames", 5,
            "--seed", 10, "--format", "mkv")
    code, _, stderr = cli(*args)
    assert code == 0, stderr
    names = ["0000-a-red-circle-10.mkv", "0000-a-red-circle-11.mkv", "0000-a-red-circle-12.mkv",
             "0001-a-blue-square.mkv"]
    assert sorted(p.name for p in out.glob("*.mkv")) == names
    assert [(r["output"], r["seed"]) for r in rows_of(out)] == list(zip(names, [10, 11, 12, 11]))
    (out / names[1]).unlink()  # one variation lost: --resume renders it alone, the same video again
    code, _, stderr = cli(*args, "--resume")
    assert code == 0, stderr
    assert [r["output"] for r in rows_of(out)][4:] == [names[1]]


def test_variations_must_be_a_whole_number(cli, tiny_checkpoint, tmp_path):
    (tmp_path / "p.jsonl").write_text('{"prompt": "a red circle", "variations": 0}\n')
    code, _, stderr = cli("batch", tmp_path / "p.jsonl", "--out", tmp_path / "out", "--model", tiny_checkpoint)
    assert code == 2 and "p.jsonl:1: variations must be a whole number >= 1, got 0" in stderr
