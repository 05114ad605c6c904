"""Video files with PyAV: a streaming writer (temporary file, then rename) and readers for recipes and tests."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import numpy as np

# extension -> (container format, codec, pixel format, codec options)
FORMATS = {
    # cpu-independent: without it libx264's macroblock-tree rate control can write a different file for the
    # same frames from one encode to the next (a seed would not give the same video)
    ".mp4": ("mp4", "libx264", "yuv420p", {"crf": "18", "preset": "medium", "x264-params": "cpu-independent=1"}),
    ".webm": ("webm", "libvpx-vp9", "yuv420p", {"crf": "30", "b": "0", "deadline": "good"}),
    ".mkv": ("matroska", "ffv1", "bgr0", {}),  # lossless RGB
    ".gif": ("gif", "gif", "rgb8", {}),
}
# extension -> (audio codec, sample format it takes, sample rates it takes or None for any); .gif has no sound
AUDIO_FORMATS = {
    ".mp4": ("aac", "fltp", None),
    ".webm": ("libopus", "flt", (48000, 24000, 16000, 12000, 8000)),
    ".mkv": ("flac", "s32", None),  # lossless (24-bit), for checks
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


@dataclass(frozen=True)
class Soundtrack:
    """A model's audio: float samples in [-1, 1], (channels, samples), at `sample_rate`."""

    samples: np.ndarray
    sample_rate: int

    @property
    def channels(self) -> int:
        return self.samples.shape[0]

    def fitted(self, seconds: float) -> Soundtrack:
        """Exactly `seconds` long (to the nearest sample): trimmed with the video, or padded with silence where
        the model's soundtrack ends a few milliseconds before its frames do."""
        n = round(seconds * self.sample_rate)
        samples = self.samples[:, :n]
        if samples.shape[1] < n:
            samples = np.pad(samples, ((0, 0), (0, n - samples.shape[1])))
        return Soundtrack(samples, self.sample_rate)

    def stream_rate(self, suffix: str) -> int:
        """The rate it is stored at in a container: its own, or the nearest higher one the codec takes."""
        rates = AUDIO_FORMATS[suffix][2]
        if rates is None or self.sample_rate in rates:
            return self.sample_rate
        return min((r for r in rates if r >= self.sample_rate), default=max(rates))


class VideoWriter:
    """Encodes frames as they come, with a soundtrack when there is one; the output path only ever holds a
    whole video."""

    def __init__(self, path: Path, fps: int, metadata: dict[str, str] | None = None, audio: Soundtrack | None = None):
        self.path = Path(path)
        self.format, self.codec, self.pix_fmt, self.options = FORMATS[self.path.suffix.lower()]
        self.fps, self.metadata, self.audio = fps, metadata or {}, audio
        if audio is not None and self.path.suffix.lower() not in AUDIO_FORMATS:
            raise ValueError(f"{self.path.suffix} files carry no sound")
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
        if self.audio is not None:
            self._write_audio(self.audio)

    def _write_audio(self, audio: Soundtrack) -> None:
        """The whole soundtrack, up front: it is small, and the muxer interleaves it with the frames."""
        import av

        codec, sample_format, _ = AUDIO_FORMATS[self.path.suffix.lower()]
        rate = audio.stream_rate(self.path.suffix.lower())
        layout = "mono" if audio.channels == 1 else "stereo"
        stream = self.container.add_stream(codec, rate=rate, layout=layout)
        stream.format = sample_format
        frame_size = stream.codec_context.frame_size or 1024
        resampler = av.AudioResampler(format=sample_format, layout=layout, rate=rate, frame_size=frame_size)
        pcm = np.ascontiguousarray(np.clip(audio.samples, -1.0, 1.0).astype(np.float32))
        source = av.AudioFrame.from_ndarray(pcm, format="fltp", layout=layout)
        source.sample_rate, source.pts, source.time_base = audio.sample_rate, 0, Fraction(1, audio.sample_rate)
        for frame in [*resampler.resample(source), *resampler.resample(None)]:
            self.container.mux(stream.encode(frame))
        self.container.mux(stream.encode(None))

    def write(self, frames: np.ndarray) -> None:
        """frames: (f, H, W, 3) uint8 RGB."""
        import av

        if self.container is None:
            self._open(frames.shape[1], frames.shape[2])
        for frame in frames:
            # converted here, not inside encode(): PyAV's own conversion there does not always give equal planes
            # for equal frames, and then libx264 writes a different file for the same video
            picture = av.VideoFrame.from_ndarray(np.ascontiguousarray(frame), "rgb24").reformat(format=self.pix_fmt)
            self.container.mux(self.stream.encode(picture))
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


def iter_frames(path: Path, chunk: int = 16):
    """Frames as uint8 RGB chunks (f, H, W, 3), decoded as they are read: memory flat in the video's length."""
    import av

    with av.open(str(path)) as container:
        frames = []
        for frame in container.decode(video=0):
            frames.append(frame.to_ndarray(format="rgb24"))
            if len(frames) == chunk:
                yield np.stack(frames)
                frames = []
        if frames:
            yield np.stack(frames)


def head_frames(path: Path, count: int) -> np.ndarray:
    """The first `count` frames, the last one repeated when the video is shorter; reads no further than them."""
    frames: list = []
    for chunk in iter_frames(path):
        frames.extend(chunk[: count - len(frames)])
        if len(frames) == count:
            break
    return np.stack(frames + [frames[-1]] * (count - len(frames)))


def tail_frames(path: Path, count: int) -> np.ndarray:
    """The last `count` frames (fewer if the video is shorter), reading through it with flat memory."""
    from collections import deque

    tail: deque = deque(maxlen=count)
    for chunk in iter_frames(path):
        tail.extend(chunk)
    return np.stack(tail)


def read_audio(path: Path) -> Soundtrack | None:
    """The first audio stream as float samples (channels, n), or None when the file has no sound."""
    import av

    with av.open(str(path)) as container:
        if not container.streams.audio:
            return None
        stream = container.streams.audio[0]
        planes = [f.to_ndarray() for f in container.decode(audio=0)]
        rate = stream.codec_context.sample_rate
    fmt = stream.codec_context.format.name
    samples = np.concatenate(planes, axis=1)
    if not fmt.endswith("p"):  # interleaved: (1, n * channels)
        samples = samples.reshape(-1, stream.codec_context.channels).T
    scale = {"s16": 2**15, "s16p": 2**15, "s32": 2**31, "s32p": 2**31}.get(fmt, 1)
    return Soundtrack(samples.astype(np.float64) / scale, rate)


def audio_info(path: Path) -> dict | None:
    """Codec, sample rate, channels and duration of the first audio stream, or None."""
    import av

    with av.open(str(path)) as container:
        if not container.streams.audio:
            return None
        stream = container.streams.audio[0]
        samples = sum(f.samples for f in container.decode(audio=0))
        ctx = stream.codec_context
        return {"codec": ctx.name, "sample_rate": ctx.sample_rate, "channels": ctx.channels,
                "seconds": samples / ctx.sample_rate}


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
