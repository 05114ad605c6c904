"""The analytic checker that `sora eval` trusts: it must score the renderer's own clips 100%."""

import numpy as np
import pytest

from sora_cli.data.checker import judge, score
from sora_cli.data.world import BACKGROUNDS, Scene, render, sample_scene
from sora_cli.evaluate import eval_scenes


def test_the_checker_scores_the_renderers_own_clips_100_percent():
    rng = np.random.default_rng(7)
    scenes = [sample_scene(rng, held_out=True) for _ in range(80)] + eval_scenes(24, 24)
    for scene in scenes:
        verdict = judge(render(scene, 72, fps=24), fps=24)
        assert all(score(verdict, scene).values()), (scene, verdict)


def test_the_checker_reads_a_resized_clip_too():
    """Model output is judged at its native size; a clip resized up and down must still read right."""
    import torch

    scene = Scene("orange", "triangle", "moving down", "gray", 0.3, 0.2)
    clip = torch.from_numpy(render(scene, 72, 32, 32, fps=24)).permute(0, 3, 1, 2).float()
    big = torch.nn.functional.interpolate(clip, size=(96, 96), mode="bicubic").clamp(0, 255)
    verdict = judge(big.round().byte().permute(0, 2, 3, 1).numpy(), fps=24)
    assert all(score(verdict, scene).values()), verdict


@pytest.mark.parametrize("wrong, attribute", [
    (Scene("blue", "triangle", "moving down", "gray", 0.3, 0.2), "colour"),
    (Scene("orange", "circle", "moving down", "gray", 0.3, 0.2), "shape"),
    (Scene("orange", "triangle", "moving up", "gray", 0.3, 0.2), "motion"),
    (Scene("orange", "triangle", "moving down", "black", 0.3, 0.2), "background"),
])
def test_each_wrong_attribute_is_caught_alone(wrong, attribute):
    clip = render(Scene("orange", "triangle", "moving down", "gray", 0.3, 0.2), 72, fps=24)
    marks = score(judge(clip, fps=24), wrong)
    assert [a for a, ok in marks.items() if not ok] == [attribute]


def test_an_empty_clip_shows_no_object():
    blank = np.broadcast_to(np.array(BACKGROUNDS["navy"], np.uint8), (24, 64, 64, 3)).copy()
    verdict = judge(blank, fps=24)
    assert verdict.present == 0 and verdict.background == "navy" and verdict.colour is None
    assert not score(verdict, Scene("red", "circle", "standing still", "navy"))["present"]


def test_steadiness_of_the_renderers_clips_is_perfect_and_flicker_is_caught():
    clip = render(Scene("green", "square", "bouncing", "navy", 0.5, 0.5), 48, fps=24)
    steady = judge(clip, fps=24)
    assert steady.background_drift < 1 and steady.colour_agreement == 1 and steady.shape_agreement == 1
    flicker = clip.copy()
    flicker[::2] = np.clip(flicker[::2].astype(int) + 40, 0, 255).astype(np.uint8)  # every other frame lighter
    assert judge(flicker, fps=24).background_drift > 15
