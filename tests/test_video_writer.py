"""The MP4 writer: the same frames make the same video, whatever was encoded before in the process."""

import numpy as np

from sora_cli.video import VideoWriter, read_frames


def moving_square(count: int, seed: int) -> np.ndarray:
    frames = np.zeros((count, 64, 64, 3), np.uint8)
    for i in range(count):
        frames[i, 20:40, 10 + i : 30 + i] = (230, 40, 40)
    return frames + np.random.default_rng(seed).integers(0, 20, frames.shape, dtype=np.uint8)  # grain everywhere


def test_same_frames_same_video_after_other_encodes(tmp_path):
    frames, decoded = moving_square(24, 1), []
    for i in range(20):  # other videos, of other lengths, between the encodes of the same one
        with VideoWriter(tmp_path / "other.mp4", 24) as writer:
            writer.write(moving_square(8 + 4 * (i % 5), i))
        with VideoWriter(tmp_path / "same.mp4", 24, {"comment": "x" * i}) as writer:
            writer.write(frames)
        decoded.append(read_frames(tmp_path / "same.mp4"))
    assert all(np.array_equal(d, decoded[0]) for d in decoded)
