"""Video files with PyAV: a streaming writer (temporary file, then rename) and readers for recipes and tests."""

from __future__ import annotations

import json
import os
from fractions import Fraction
from pathlib import Path

import numpy as np

# extension -> (container format, codec, pixel format, codec options)
FORMATS = {
    ".mp4": ("mp4", "libx264", "yuv420p", {"crf": "18", "preset": "medium"}),
    ".webm": ("webm", "libvpx-vp9", "yuv420p", {"crf": "30", "b": "0", "deadline": "good"}),
    ".mkv": ("matroska", "ffv1", "bgr0", {}),  # lossless RGB
    ".gif": ("gif", "gif", "rgb8", {}),
}
RECIPE_KEY = "comment"  # a tag every container that keeps tags carries through ffmpeg


def temporary_path(path: Path) -> Path:
    """A hidden sibling, so the final rename stays on one file system and is atomic."""
    return path.with_name(f".{path.stem}.{os.getpid()}.part{path.suffix}")


def fsync_replace(tmp: Path, path: Path) -> None:
    with open(tmp, "rb+") as f:
        os.fsync(f.fileno())
    os.replace(tmp, path)


def write_json_atomic(path: Path, data: dict) -> None:
    tmp = temporary_path(path)
    try:
        tmp.write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")
        fsync_replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


class VideoWriter:
    """Encodes frames as they come; the output path only ever holds a whole video."""

    def __init__(self, path: Path, fps: int, metadata: dict[str, str] | None = None):
        self.path = Path(path)
        self.format, self.codec, self.pix_fmt, self.options = FORMATS[self.path.suffix.lower()]
        self.fps, self.metadata = fps, metadata or {}
        self.tmp = temporary_path(self.path)
        self.container = self.stream = None
        self.frames = 0

    def __enter__(self) -> VideoWriter:
        return self

    def _open(self, height: int, width: int) -> None:
        import av

        self.container = av.open(str(self.tmp), "w", format=self.format)
        self.container.metadata.update(self.metadata)
        self.stream = self.container.add_stream(self.codec, rate=Fraction(self.fps), options=dict(self.options))
        self.stream.width, self.stream.height, self.stream.pix_fmt = width, height, self.pix_fmt

    def write(self, frames: np.ndarray) -> None:
        """frames: (f, H, W, 3) uint8 RGB."""
        import av

        if self.container is None:
            self._open(frames.shape[1], frames.shape[2])
        for frame in frames:
            self.container.mux(self.stream.encode(av.VideoFrame.from_ndarray(np.ascontiguousarray(frame), "rgb24")))
            self.frames += 1

    def __exit__(self, exc_type, exc, tb) -> None:
        try:
            if self.container is not None:
                if exc_type is None:
                    self.container.mux(self.stream.encode(None))  # flush delayed frames
                self.container.close()
            if exc_type is None:
                if self.frames == 0:
                    raise ValueError("no frames were written")
                fsync_replace(self.tmp, self.path)
        finally:
            self.tmp.unlink(missing_ok=True)


def read_frames(path: Path) -> np.ndarray:
    """Every frame as (f, H, W, 3) uint8 RGB (for tests and tools; loads the whole video)."""
    import av

    with av.open(str(path)) as container:
        return np.stack([f.to_ndarray(format="rgb24") for f in container.decode(video=0)])


def probe(path: Path) -> dict:
    """Codec, pixel format, size, frame count and rate of the first video stream."""
    import av

    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        frames = sum(1 for _ in container.decode(video=0))
        return {
            "codec": stream.codec_context.name,
            "pix_fmt": stream.codec_context.pix_fmt,
            "width": stream.codec_context.width,
            "height": stream.codec_context.height,
            "frames": frames,
            "fps": float(stream.average_rate) if stream.average_rate else None,
        }


def read_embedded_recipe(path: Path) -> dict | None:
    """The recipe a video carries in its container tags, or None."""
    import av

    try:
        with av.open(str(path)) as container:
            tags = dict(container.metadata)
            for stream in container.streams:
                tags.update({k: v for k, v in stream.metadata.items() if k not in tags})
    except (av.error.FFmpegError, OSError):
        return None
    text = tags.get(RECIPE_KEY) or tags.get(RECIPE_KEY.upper())
    try:
        data = json.loads(text) if text else None
    except json.JSONDecodeError:
        return None
    return data if isinstance(data, dict) else None
