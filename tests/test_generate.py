"""`sora generate` end to end on real (random-weight) models: files, frames, recipes, determinism."""

import json

import numpy as np
import pytest

from sora_cli.video import probe, read_embedded_recipe, read_frames

from .conftest import sora_process

RECIPE_KEYS = {"prompt", "negative_prompt", "seed", "steps", "guidance", "sampler", "width", "height", "frames",
               "generated_frames", "fps", "model", "preset", "device", "dtype", "versions", "timings"}


def render(cli, ckpt, out, *extra):
    code, stdout, stderr = cli("generate", "a red circle moving left", "--model", ckpt, "--width", 32, "--height", 32,
                               "--steps", 3, "-o", out, *extra)
    assert code == 0, stderr
    return stdout, stderr


def test_the_done_when_command_writes_120_h264_frames_a_recipe_and_one_json_line(tmp_path):
    args = ["generate", "a red circle moving left on a black background", "--frames", 120, "--seed", 3, "-o", "a.mp4",
            "--json"]
    first = sora_process(*args, cwd=tmp_path)
    assert first.returncode == 0, first.stderr
    lines = first.stdout.strip().splitlines()
    assert len(lines) == 1
    summary = json.loads(lines[0])
    assert {k: summary[k] for k in ("output", "seed", "frames", "fps", "model", "preset")} == {
        "output": "a.mp4", "seed": 3, "frames": 120, "fps": 24, "model": "sora-tiny", "preset": "default"}
    assert {"width", "height", "seconds"} <= set(summary)
    info = probe(tmp_path / "a.mp4")
    assert (info["codec"], info["pix_fmt"], info["frames"]) == ("h264", "yuv420p", 120)
    recipe = json.loads((tmp_path / "a.json").read_text())
    assert RECIPE_KEYS <= set(recipe) and recipe["frames"] == 120
    assert recipe["generated_frames"] == 241  # sora-tiny makes two frames for each it delivers (frame_stride 2)
    frames = read_frames(tmp_path / "a.mp4")
    (tmp_path / "a.mp4").rename(tmp_path / "first.mp4")
    (tmp_path / "a.json").unlink()
    again = sora_process(*args, cwd=tmp_path)
    assert again.returncode == 0, again.stderr
    assert np.array_equal(frames, read_frames(tmp_path / "a.mp4"))


@pytest.mark.parametrize("frames", [1, 2, 5, 6, 14])
def test_exactly_the_requested_frames_whatever_the_frame_rule(cli, tiny_checkpoint, tmp_path, frames):
    out = tmp_path / "v.mkv"
    render(cli, tiny_checkpoint, out, "--frames", frames, "--seed", 1)
    assert probe(out)["frames"] == frames
    recipe = json.loads(out.with_suffix(".json").read_text())
    assert recipe["generated_frames"] == frames + (-(frames - 1)) % 4


@pytest.mark.parametrize("ext, codec", [(".mp4", "h264"), (".webm", "vp9"), (".mkv", "ffv1"), (".gif", "gif")])
def test_container_and_codec_follow_the_extension(cli, tiny_checkpoint, tmp_path, ext, codec):
    out = tmp_path / f"v{ext}"
    render(cli, tiny_checkpoint, out, "--frames", 5, "--fps", 10)
    assert probe(out)["codec"] == codec and probe(out)["frames"] == 5
    if ext != ".gif":  # GIF keeps no tags; its recipe lives in the sidecar only
        assert read_embedded_recipe(out)["prompt"] == "a red circle moving left"


def test_same_seed_same_frames_other_seed_other_frames(cli, tiny_checkpoint, tmp_path):
    for name, seed in (("a", 7), ("b", 7), ("c", 8)):
        render(cli, tiny_checkpoint, tmp_path / f"{name}.mkv", "--frames", 9, "--seed", seed)
    a, b, c = (read_frames(tmp_path / f"{n}.mkv") for n in "abc")
    assert np.array_equal(a, b)
    assert not np.array_equal(a, c)


def test_prompt_negative_and_guidance_change_the_video(cli, tiny_checkpoint, tmp_path):
    base = ("--frames", 5, "--seed", 2)
    render(cli, tiny_checkpoint, tmp_path / "a.mkv", *base)
    render(cli, tiny_checkpoint, tmp_path / "b.mkv", *base, "--negative", "blurry")
    render(cli, tiny_checkpoint, tmp_path / "c.mkv", *base, "--guidance", 1)
    a, b, c = (read_frames(tmp_path / f"{n}.mkv") for n in "abc")
    assert not np.array_equal(a, b) and not np.array_equal(a, c)


@pytest.mark.parametrize("sampler", ["euler", "heun", "dpmpp_2m"])
def test_every_sampler_renders(cli, tiny_checkpoint, tmp_path, sampler):
    out = tmp_path / "v.mkv"
    render(cli, tiny_checkpoint, out, "--frames", 5, "--sampler", sampler)
    assert json.loads(out.with_suffix(".json").read_text())["sampler"] == sampler


def test_no_seed_gives_a_recorded_random_seed_and_a_default_name(cli, tiny_checkpoint, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    code, stdout, _ = cli("generate", "A Red Circle / ../../etc", "--model", tiny_checkpoint, "--width", 32,
                          "--height", 32, "--steps", 2, "--frames", 3, "--json")
    assert code == 0
    result = json.loads(stdout)
    assert result["output"] == f"a-red-circle-etc-{result['seed']}.mp4"
    assert (tmp_path / result["output"]).is_file()
    assert json.loads((tmp_path / result["output"]).with_suffix(".json").read_text())["seed"] == result["seed"]


def test_inspect_and_from_render_the_same_video_again(cli, tiny_checkpoint, tmp_path):
    first = tmp_path / "first.mkv"
    render(cli, tiny_checkpoint, first, "--frames", 6, "--seed", 11, "--negative", "fog", "--sampler", "heun")
    code, stdout, _ = cli("inspect", first)
    assert code == 0 and json.loads(stdout)["seed"] == 11
    for source in (first, first.with_suffix(".json")):
        again = tmp_path / f"again-{source.suffix[1:]}.mkv"
        code, _, stderr = cli("generate", "--from", source, "-o", again)
        assert code == 0, stderr
        assert np.array_equal(read_frames(first), read_frames(again))
        recipe = json.loads(again.with_suffix(".json").read_text())
        assert (recipe["negative_prompt"], recipe["sampler"], recipe["frames"]) == ("fog", "heun", 6)


def test_flags_override_a_recipe(cli, tiny_checkpoint, tmp_path):
    first = tmp_path / "first.mkv"
    render(cli, tiny_checkpoint, first, "--frames", 5, "--seed", 1)
    code, _, _ = cli("generate", "--from", first, "--frames", 2, "-o", tmp_path / "b.mkv")
    assert code == 0 and probe(tmp_path / "b.mkv")["frames"] == 2


def test_overwrite_replaces_and_its_absence_refuses(cli, tiny_checkpoint, tmp_path):
    out = tmp_path / "v.mkv"
    render(cli, tiny_checkpoint, out, "--frames", 2, "--seed", 1)
    before = out.read_bytes()
    code, _, stderr = cli("generate", "x", "--model", tiny_checkpoint, "--width", 32, "--height", 32, "-o", out)
    assert code == 2 and "already exists; pass --overwrite" in stderr and out.read_bytes() == before
    render(cli, tiny_checkpoint, out, "--frames", 3, "--seed", 1, "--overwrite")
    assert probe(out)["frames"] == 3


def test_progress_lines_in_logs_and_silence_with_quiet(cli, tiny_checkpoint, tmp_path):
    _, stderr = render(cli, tiny_checkpoint, tmp_path / "a.mkv", "--frames", 2)
    assert "denoising: 3/3" in stderr and "decoding + encoding: 2/2" in stderr
    stdout, stderr = render(cli, tiny_checkpoint, tmp_path / "b.mkv", "--frames", 2, "-q")
    assert stdout == "" and stderr == ""


def test_an_install_without_the_weights_warns_and_still_renders(cli, tmp_path, monkeypatch):
    from sora_cli.backends import native

    monkeypatch.setattr(native, "packaged_weights", lambda name: tmp_path / "not-installed" / name)
    code, stdout, stderr = cli("generate", "a red circle", "--preset", "smoke", "--frames", 3, "-o", tmp_path / "s.mp4")
    assert code == 0
    assert "warning: sora-tiny has no trained weights" in stderr
    assert probe(tmp_path / "s.mp4")["frames"] == 3 and stdout.strip() == str(tmp_path / "s.mp4")
