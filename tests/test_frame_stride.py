"""A model with a frame stride (sora-tiny: trained on the world at twice the frame rate) makes that many frames
for each one it delivers and keeps every stride-th; source videos are brought to its rate the same way."""

from dataclasses import replace

import numpy as np
import torch

from sora_cli.evaluate import render_clip
from sora_cli.models.native import build_model, randomize
from sora_cli.native_verbs import at_model_rate, source_frames
from sora_cli.pipeline import every

from .conftest import TINY


def test_every_keeps_each_stride_th_frame_across_pieces():
    frames = torch.arange(23.0)
    pieces = [frames[a:b].reshape(1, 1, -1, 1, 1) for a, b in ((0, 4), (4, 5), (5, 13), (13, 23))]
    for stride, offset in ((1, 0), (2, 0), (2, 1), (3, 2), (4, 6)):
        kept = torch.cat([p.flatten() for p in every(iter(pieces), stride, offset)])
        assert kept.tolist() == frames[offset::stride].tolist(), (stride, offset)


def test_source_frames_keep_their_place_at_the_model_rate_with_blends_between():
    frames = np.stack([np.full((2, 2, 3), v, np.uint8) for v in (0, 100, 200)])
    assert [int(f[0, 0, 0]) for f in at_model_rate(frames, 2)] == [0, 50, 100, 150, 200]
    assert [int(f[0, 0, 0]) for f in at_model_rate(frames, 4)][::4] == [0, 100, 200]
    assert np.array_equal(at_model_rate(frames, 1), frames)
    assert [source_frames(n, 2) for n in (17, 145, 146)] == [9, 73, 74]


def test_a_stride_two_model_delivers_every_other_frame_of_what_it_makes():
    plain = randomize(build_model(TINY, "cpu"), seed=0, std=0.05).eval()
    strided = randomize(build_model(replace(TINY, frame_stride=2), "cpu"), seed=0, std=0.05).eval()
    assert strided.frame_count(9) == 17 and strided.frame_count(10) == 21 and plain.frame_count(9) == 9

    def clip(model, frames):
        return render_clip(model, "a red circle moving left", 3, frames, 2, 3.0, "euler", torch.device("cpu"),
                           torch.float32)

    delivered, made = clip(strided, 9), clip(plain, 17)
    assert delivered.shape[0] == 9 and np.array_equal(delivered, made[::2])
