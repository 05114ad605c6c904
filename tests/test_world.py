"""The tiny world's renderer: captions, held-out combinations, colours, motion, anti-aliasing, determinism."""

import numpy as np
import pytest

from sora_cli.data.world import (
    BACKGROUNDS,
    COLOURS,
    MOTIONS,
    SHAPES,
    Scene,
    is_held_out,
    parse_caption,
    render,
    sample_scene,
)


def centroid(frame, background):
    mask = np.abs(frame.astype(int) - background).sum(-1) > 60
    ys, xs = np.nonzero(mask)
    return xs.mean(), ys.mean(), mask.sum()


def test_captions_round_trip_and_accept_an_upper_case_and_punctuation():
    scene = Scene("orange", "triangle", "moving up", "gray")
    assert parse_caption(scene.caption) == scene
    assert parse_caption("An Orange triangle moving up on a GRAY background.") == scene
    assert parse_caption("a cat surfing") is None


def test_sampling_never_yields_held_out_or_white_on_white():
    rng = np.random.default_rng(0)
    scenes = [sample_scene(rng) for _ in range(5000)]
    assert not any(is_held_out(s) for s in scenes)
    assert not any(s.colour == "white" and s.background == "white" for s in scenes)
    assert {s.colour for s in scenes} == set(COLOURS) and {s.motion for s in scenes} == set(MOTIONS)


def test_rendering_is_deterministic_from_the_scene():
    a = sample_scene(np.random.default_rng(3))
    b = sample_scene(np.random.default_rng(3))
    assert np.array_equal(render(a, 8), render(b, 8))


@pytest.mark.parametrize("shape", SHAPES)
def test_shape_has_its_colour_inside_the_background_outside_and_soft_edges(shape):
    video = render(Scene("blue", shape, "standing still", "black", 0.5, 0.5), 1)[0].astype(int)
    assert (video[32, 32] == COLOURS["blue"]).all()
    assert (video[1, 1] == BACKGROUNDS["black"]).all()
    levels = {tuple(p) for p in video.reshape(-1, 3)}
    assert len(levels) >= 3  # anti-aliased edge pixels blend the two colours
    _, _, area = centroid(video, BACKGROUNDS["black"])
    side = 0.3 * 64
    expected = {"circle": np.pi * (side / 2) ** 2, "square": side**2, "triangle": np.sqrt(3) / 4 * side**2}[shape]
    assert area == pytest.approx(expected, rel=0.15)


@pytest.mark.parametrize("motion, dx, dy", [("moving left", -1, 0), ("moving right", 1, 0), ("moving up", 0, -1),
                                            ("moving down", 0, 1)])
def test_moving_shapes_cross_the_frame_in_about_three_seconds(motion, dx, dy):
    fps = 8
    video = render(Scene("red", "circle", motion, "black", 0.5, 0.5), fps + 1, fps=fps)
    x0, y0, _ = centroid(video[0], BACKGROUNDS["black"])
    x1, y1, _ = centroid(video[fps], BACKGROUNDS["black"])
    assert (x1 - x0, y1 - y0) == pytest.approx((dx * 64 / 3, dy * 64 / 3), abs=1.5)


def test_moving_shapes_wrap_around_the_edge():
    video = render(Scene("red", "square", "moving right", "black", 0.95, 0.5), 1)[0]
    mask = np.abs(video.astype(int) - BACKGROUNDS["black"]).sum(-1) > 60
    assert mask[:, :5].any() and mask[:, -5:].any()  # half leaving on the right, half entering on the left


def test_bouncing_touches_the_bottom_about_once_a_second_without_drifting():
    fps = 24
    video = render(Scene("green", "circle", "bouncing", "white", 0.4, 0.5, 0.0), 2 * fps, fps=fps)
    points = [centroid(f, BACKGROUNDS["white"]) for f in video]
    xs, ys = [p[0] for p in points], np.array([p[1] for p in points])
    assert max(xs) - min(xs) < 0.5
    lows = [i for i in range(1, len(ys) - 1) if ys[i] >= ys[i - 1] and ys[i] >= ys[i + 1]]
    assert len(lows) in (1, 2, 3)  # ground contacts in 2 s
    assert ys.max() == pytest.approx(64 - 0.15 * 64, abs=1.5)  # resting on the bottom edge
    assert ys.max() - ys.min() == pytest.approx(32, abs=2)  # about half the frame high
