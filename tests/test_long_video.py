"""Any length: windows continue from the last latents of the one before; time and memory stay linear/flat."""

import numpy as np
import pytest

from sora_cli.pipeline import window_plan
from sora_cli.video import probe, read_frames


@pytest.mark.parametrize("total", [1, 5, 9, 10, 14, 151])
def test_the_window_plan_covers_exactly_the_latents_asked_for(total):
    plan = window_plan(total, window=9, context=4)
    assert sum(plan) == total
    assert plan[0] == min(9, total) and all(0 < n <= 5 for n in plan[1:])


def test_600_frames_render_exactly_and_start_like_the_short_render(cli, tiny_checkpoint, tmp_path):
    common = ["--model", tiny_checkpoint, "--width", 32, "--height", 32, "--steps", 2, "--seed", 5]
    code, _, stderr = cli("generate", "a red circle moving left", *common, "--frames", 600, "-o", tmp_path / "l.mkv")
    assert code == 0, stderr
    code, _, stderr = cli("generate", "a red circle moving left", *common, "--frames", 9, "-o", tmp_path / "s.mkv")
    assert code == 0, stderr
    assert probe(tmp_path / "l.mkv")["frames"] == 600
    long, short = read_frames(tmp_path / "l.mkv"), read_frames(tmp_path / "s.mkv")
    assert long.shape == (600, 32, 32, 3)
    assert np.array_equal(long[:9], short)  # the first window is the same whatever the length


def test_output_is_resized_from_the_native_grid(cli, tiny_checkpoint, tmp_path):
    code, _, stderr = cli("generate", "a blue square standing still", "--model", tiny_checkpoint, "--width", 96,
                          "--height", 48, "--steps", 2, "--frames", 5, "-o", tmp_path / "w.mkv")
    assert code == 0, stderr
    assert read_frames(tmp_path / "w.mkv").shape == (5, 48, 96, 3)


def test_words_outside_the_tiny_world_are_named_and_it_still_renders(cli, tiny_checkpoint, tmp_path):
    code, _, stderr = cli("generate", "a cat surfing on a red wave", "--model", tiny_checkpoint, "--width", 32,
                          "--height", 32, "--steps", 1, "--frames", 5, "-o", tmp_path / "cat.mp4")
    assert code == 0 and (tmp_path / "cat.mp4").is_file()
    assert "'cat', 'surfing', 'wave'" in stderr and "sora models list" in stderr
    code, _, stderr = cli("generate", "A red circle moving left on a black background.", "--model", tiny_checkpoint,
                          "--width", 32, "--height", 32, "--steps", 1, "--frames", 5, "-o", tmp_path / "ok.mp4")
    assert code == 0 and "try an open model" not in stderr
