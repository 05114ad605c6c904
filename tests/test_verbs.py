"""The verbs on sora-tiny, end to end through the CLI: extend, remix, storyboard, loop, keyframes, variations —
each judged the way a user would look at it (frames kept, seams, the checker), and bad input refused in one line."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

from sora_cli.data.checker import judge
from sora_cli.data.world import parse_caption, render
from sora_cli.video import read_frames

LEFT = "a red circle moving left on a black background"
SMOKE = ("--preset", "smoke", "-q")


def sora(*args) -> int:
    from sora_cli.cli import main

    with pytest.raises(SystemExit) as exit_info:
        main([str(a) for a in args])
    return exit_info.value.code


def steps(frames: np.ndarray) -> np.ndarray:
    """Mean absolute change between neighbouring frames (0-255)."""
    return np.abs(np.diff(frames.astype(float), axis=0)).mean(axis=(1, 2, 3))


@pytest.fixture(scope="module")
def source(tmp_path_factory):
    """48 frames of sora-tiny in a lossless .mkv that show their prompt (the first seed from 1 whose render the
    checker sees as a red shape moving left): what the verbs start from, so continuing it is the test."""
    path = tmp_path_factory.mktemp("source") / "source.mkv"
    for seed in range(1, 9):
        assert sora("generate", LEFT, *SMOKE, "--frames", "48", "--seed", str(seed), "-o", path, "--overwrite") == 0
        seen = judge(read_frames(path), 24)
        if (seen.colour, seen.motion) == ("red", "moving left"):
            return path
    raise AssertionError("sora-tiny drew no red shape moving left in 8 seeds")


def test_extend_keeps_the_source_exactly_and_continues_it_without_a_jump(source, tmp_path):
    out = tmp_path / "longer.mkv"
    assert sora("extend", source, LEFT, *SMOKE, "--frames", "36", "--seed", "2", "-o", out) == 0
    before, after = read_frames(source), read_frames(out)
    assert len(after) == len(before) + 36
    assert np.array_equal(after[: len(before)], before)
    seam = np.abs(after[len(before)].astype(float) - before[-1]).mean()
    assert seam <= steps(before).max()
    # the continuation shows the object the source shows, moving the same way
    old, new = judge(before, 24), judge(after[len(before):], 24)
    assert (new.colour, new.shape, new.motion) == (old.colour, old.shape, old.motion)
    recipe = json.loads(out.with_suffix(".json").read_text())
    assert recipe["verb"]["verbs"] == ["extend"] and recipe["frames"] == 36
    assert recipe["verb"]["source"]["sha256"] and recipe["verb"]["source"]["frames"] == len(before)

    only = tmp_path / "only.mkv"
    assert sora("extend", source, LEFT, *SMOKE, "--seconds", "1.5", "--seed", "2", "--only-new", "-o", only) == 0
    assert np.array_equal(read_frames(only), after[len(before):])

    again = tmp_path / "again.mkv"  # the recipe renders it again
    assert sora("generate", "--from", out, "-q", "-o", again) == 0
    assert np.array_equal(read_frames(again), after)


def test_extend_memory_reads_a_long_source_in_pieces(source):
    from sora_cli.video import tail_frames

    assert np.array_equal(tail_frames(source, 17), read_frames(source)[-17:])


def test_remix_near_zero_stays_on_the_source_and_at_one_is_plain_generation(source, tmp_path):
    blue = LEFT.replace("red", "blue")
    near = tmp_path / "near.mkv"
    assert sora("remix", source, blue, *SMOKE, "--strength", "0.05", "--seed", "3", "-o", near) == 0
    assert np.abs(read_frames(near).astype(float) - read_frames(source)).mean() <= 2.0
    full, plain = tmp_path / "full.mkv", tmp_path / "plain.mkv"
    assert sora("remix", source, blue, *SMOKE, "--strength", "1", "--seed", "3", "-o", full) == 0
    assert sora("generate", blue, *SMOKE, "--frames", "48", "--seed", "3", "-o", plain) == 0
    assert np.array_equal(read_frames(full), read_frames(plain))
    assert json.loads(full.with_suffix(".json").read_text())["verb"]["strength"] == 1.0


def test_a_two_shot_storyboard_follows_each_prompt_without_a_jump(tmp_path):
    up = LEFT.replace("left", "up")
    board = tmp_path / "board.yaml"
    board.write_text(f"- prompt: {LEFT}\n  seconds: 3\n- prompt: {up}\n  seconds: 3\n")
    out, alone = tmp_path / "story.mkv", tmp_path / "alone.mkv"
    assert sora("generate", "--storyboard", board, *SMOKE, "--seed", "5", "-o", out) == 0
    frames = read_frames(out)
    assert len(frames) == 144
    first, second = judge(frames[:72], 24), judge(frames[72:], 24)
    assert first.motion == "moving left" and second.motion == "moving up"
    assert first.colour == second.colour == "red"
    assert np.abs(frames[72].astype(float) - frames[71]).mean() <= steps(frames).max()
    recipe = json.loads(out.with_suffix(".json").read_text())
    assert [s["prompt"] for s in recipe["verb"]["storyboard"]] == [LEFT, up]
    assert sora("generate", up, *SMOKE, "--frames", "72", "--seed", "5", "-o", alone) == 0
    assert judge(read_frames(alone), 24).motion == "moving up"


def test_a_loop_closes_as_smoothly_as_its_neighbouring_frames(tmp_path):
    out = tmp_path / "loop.mkv"
    assert sora("generate", "a blue square standing still on a black background", *SMOKE, "--frames", "48",
                "--loop", "--seed", "4", "-o", out) == 0
    frames = read_frames(out)
    assert len(frames) == 48
    closing = np.abs(frames[-1].astype(float) - frames[0]).mean()
    assert closing <= np.percentile(steps(frames), 95)


def test_keyframes_put_each_image_at_its_frame(tmp_path):
    import torch

    from sora_cli.weights import load_native, packaged_weights

    scene = parse_caption("a green square moving right on a black background")
    world = render(scene, 24, 64, 64, 24.0)
    first, middle = tmp_path / "first.png", tmp_path / "middle.png"
    Image.fromarray(world[0]).save(first)
    Image.fromarray(world[10]).save(middle)
    out = tmp_path / "keys.mkv"
    assert sora("generate", scene.caption, *SMOKE, "--seed", "3", "--keyframe", f"{middle}:0.5s",
                "--keyframe", first, "-o", out) == 0
    frames = read_frames(out).astype(np.float64)
    # the bound: the autoencoder's own round trip of this video with each image in place (held still for the
    # four frames of its latent step), measured where the image stands
    model, _ = load_native(packaged_weights("sora-tiny.safetensors"), "cpu", torch.float32)
    placed = np.concatenate([frames, np.repeat(frames[-1:], 1, axis=0)])  # 25 frames: the VAE's 4k + 1
    placed[0], placed[9:13] = world[0], world[10]
    clip = torch.from_numpy(placed).permute(3, 0, 1, 2)[None].float() / 127.5 - 1
    with torch.inference_mode():
        back = model.vae.decode(model.vae.encode(clip, chunk=4), 4)[0].permute(1, 2, 3, 0).numpy()
    back = ((back.astype(np.float64) + 1) * 127.5).clip(0, 255).round()
    for image, at in ((world[0], 0), (world[10], 12)):  # within 10 % of it: the decoder's causal context
        own = np.abs(back[at] - image).mean()       # around the image is the render's, not the placed video's
        assert np.abs(frames[at] - image).mean() <= 1.1 * own, (at, own)


def test_variations_render_consecutive_seeds_with_one_load(tmp_path):
    out = tmp_path / "take.mkv"
    assert sora("generate", LEFT, *SMOKE, "-n", "3", "--seed", "10", "-o", out) == 0
    made = sorted(p.name for p in tmp_path.glob("take-*.mkv"))
    assert made == ["take-10.mkv", "take-11.mkv", "take-12.mkv"]
    assert [json.loads((tmp_path / m).with_suffix(".json").read_text())["seed"] for m in made] == [10, 11, 12]
    single = tmp_path / "single.mkv"
    assert sora("generate", LEFT, *SMOKE, "--seed", "11", "-o", single) == 0
    assert np.array_equal(read_frames(single), read_frames(tmp_path / "take-11.mkv"))


@pytest.fixture()
def not_a_video(tmp_path):
    path = tmp_path / "notes.mp4"
    path.write_text("not a video")
    return path


@pytest.mark.parametrize("args, message", [
    (["extend", "{missing}", LEFT], "source video not found"),
    (["extend", "{bad}", LEFT], "is not a video sora can read"),
    (["remix", "{source}", LEFT, "--strength", "0"], "--strength must be in (0, 1]"),
    (["remix", "{source}", LEFT, "--strength", "1.5"], "--strength must be in (0, 1]"),
    (["generate", LEFT, "--keyframe", "{image}:500"], "beyond the video's 24 frames"),
    (["generate", LEFT, "--keyframe", "{bad}:0"], "is not an image"),
    (["generate", "--storyboard", "{empty_board}"], "empty.yaml:1: a storyboard is a non-empty list"),
    (["generate", "--storyboard", "{broken_board}"], "broken.yaml:3: the shot has no prompt"),
    (["generate", LEFT, "--loop", "--frames", "30"], "--loop needs a multiple of 4 frames"),
    (["extend", "{source}", LEFT, "--model", "wan2.1-t2v-1.3b"], "cannot extend; models that can: sora-tiny"),
])
def test_bad_verb_input_is_one_line_exit_2_and_writes_nothing(cli, tmp_path, source, not_a_video, args, message):
    image = tmp_path / "image.png"
    Image.fromarray(np.zeros((64, 64, 3), np.uint8)).save(image)
    (tmp_path / "empty.yaml").write_text("[]\n")
    (tmp_path / "broken.yaml").write_text(f"- prompt: {LEFT}\n  seconds: 1\n- seconds: 2\n")
    names = {"missing": tmp_path / "gone.mp4", "bad": not_a_video, "source": source, "image": image,
             "empty_board": tmp_path / "empty.yaml", "broken_board": tmp_path / "broken.yaml"}
    out = tmp_path / "out.mp4"
    code, _, err = cli(*[a.format(**names) for a in args], "--preset", "smoke", "-o", out)
    assert code == 2 and message in err and len(err.strip().splitlines()) == 1, err
    assert not out.exists() and not out.with_suffix(".json").exists()
