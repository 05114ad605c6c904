"""What the verbs take besides a prompt — keyframes, storyboards, source videos — parsed and checked without torch,
so bad input fails in one line before any model loads."""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass
from pathlib import Path

import yaml

from .errors import UsageError

SHOT_KEYS = ("prompt", "seconds", "frames", "image", "cut")


def sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


@dataclass(frozen=True)
class Keyframe:
    """`IMAGE[:AT[:STRENGTH]]`: the video passes through IMAGE at AT (a frame index, `-1` for the last frame, or
    a time such as `2.5s`) with STRENGTH in (0, 1] (1: exactly; less: the model may drift from it)."""

    image: str
    at: str = "0"
    strength: float = 1.0

    def frame(self, frames: int, fps: int) -> int:
        """The frame index AT names in a video of `frames` frames at `fps`; beyond the video is an error."""
        if self.at.endswith("s"):
            index = round(float(self.at[:-1]) * fps)
        else:
            index = int(self.at)
            index = frames + index if index < 0 else index
        if not 0 <= index < frames:
            raise UsageError(f"--keyframe {self.image}:{self.at} is beyond the video's {frames} frames "
                             f"(valid: 0 to {frames - 1}, -1 for the last, or a time up to {(frames - 1) / fps:g}s)")
        return index

    def spec(self) -> str:
        return f"{self.image}:{self.at}:{self.strength:g}"


def _is_at(text: str) -> bool:
    try:
        value = float(text[:-1]) if text.endswith("s") else int(text)
    except ValueError:
        return False
    return value >= 0 if text.endswith("s") else value >= -1


def _is_strength(text: str) -> bool:
    try:
        return 0.0 < float(text) <= 1.0
    except ValueError:
        return False


def parse_keyframe(spec: str) -> Keyframe:
    """Parsed from the right, so the image's path may hold colons; an existing file named by the whole spec wins."""
    if Path(spec).expanduser().is_file():
        return check_image(Keyframe(spec))
    parts = spec.rsplit(":", 2)
    if len(parts) == 3 and _is_at(parts[1]):
        if not _is_strength(parts[2]):
            raise UsageError(f"--keyframe {spec}: strength must be a number in (0, 1], got '{parts[2]}'")
        return check_image(Keyframe(parts[0], parts[1], float(parts[2])))
    image, _, at = spec.rpartition(":")
    if image and _is_at(at):
        return check_image(Keyframe(image, at))
    if image and not Path(spec).expanduser().exists() and Path(image).expanduser().is_file():
        raise UsageError(f"--keyframe {spec}: AT must be a frame index, -1 or a time such as 2.5s, got '{at}'")
    return check_image(Keyframe(spec))


def check_image(keyframe: Keyframe) -> Keyframe:
    path = Path(keyframe.image).expanduser()
    if not path.is_file():
        raise UsageError(f"keyframe image not found: {keyframe.image}")
    try:
        from PIL import Image

        with Image.open(path) as image:
            image.verify()
    except Exception:  # noqa: BLE001 - Pillow raises many kinds for a file that is not an image
        raise UsageError(f"{keyframe.image} is not an image Pillow can read") from None
    return keyframe


@dataclass(frozen=True)
class ShotSpec:
    """One shot of a storyboard file: its prompt, length (`seconds` or `frames`), optional first image, and
    whether it starts with a cut."""

    prompt: str
    frames: int
    image: str | None = None
    cut: bool = False


def load_storyboard(path: Path, fps: int) -> list[ShotSpec]:
    """A YAML or JSON list of shots (or `{shots: [...]}`); every error names `file:line`."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise UsageError(f"cannot read storyboard {path}: {exc.strerror}") from None
    except UnicodeDecodeError as exc:
        raise UsageError(f"{path}: not UTF-8 text (byte {exc.start})") from None
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"{path}:{mark.line + 1}" if mark is not None else str(path)
        problem = str(getattr(exc, "problem", None) or exc).strip().splitlines() or ["unreadable"]
        raise UsageError(f"{where}: not valid YAML or JSON ({problem[0]})") from None
    if isinstance(root, yaml.MappingNode):
        root = next((v for k, v in root.value if k.value == "shots"), None) or root
    if not isinstance(root, yaml.SequenceNode) or not root.value:
        line = root.start_mark.line + 1 if root is not None else 1
        raise UsageError(f"{path}:{line}: a storyboard is a non-empty list of shots, each with a prompt and "
                         "seconds or frames")
    return [_shot(node, path, fps) for node in root.value]


def _shot(node, path: Path, fps: int) -> ShotSpec:
    where = f"{path}:{node.start_mark.line + 1}"
    if not isinstance(node, yaml.MappingNode):
        raise UsageError(f"{where}: a shot is a mapping with prompt and seconds or frames")
    data = yaml.safe_load(yaml.serialize(node))
    unknown = [k for k in data if k not in SHOT_KEYS]
    if unknown:
        raise UsageError(f"{where}: unknown shot key '{unknown[0]}'; valid: {', '.join(SHOT_KEYS)}")
    prompt = data.get("prompt")
    if not isinstance(prompt, str) or not prompt.strip():
        raise UsageError(f"{where}: the shot has no prompt")
    if ("seconds" in data) == ("frames" in data):
        raise UsageError(f"{where}: give the shot's length as seconds or frames (one of them)")
    if "frames" in data:
        frames = data["frames"]
        if not isinstance(frames, int) or isinstance(frames, bool) or frames < 1:
            raise UsageError(f"{where}: frames must be a whole number >= 1, got {frames!r}")
    else:
        seconds = data["seconds"]
        if isinstance(seconds, bool) or not isinstance(seconds, (int, float)) or not seconds > 0:
            raise UsageError(f"{where}: seconds must be a number > 0, got {seconds!r}")
        frames = max(1, round(seconds * fps))
    image = data.get("image")
    if image is not None:
        if not isinstance(image, str) or not (path.parent / image).expanduser().is_file():
            raise UsageError(f"{where}: image not found: {image}")
        image = str((path.parent / image).expanduser())
    cut = data.get("cut", False)
    if not isinstance(cut, bool):
        raise UsageError(f"{where}: cut must be true or false, got {cut!r}")
    return ShotSpec(prompt.strip(), frames, image, cut)


@dataclass(frozen=True)
class SourceVideo:
    """A video a verb starts from: its path, size, frame count, rate and SHA-256."""

    path: Path
    width: int
    height: int
    frames: int
    fps: float
    digest: str

    @property
    def seconds(self) -> float:
        return self.frames / self.fps


def open_source(path: Path) -> SourceVideo:
    """Any video file PyAV reads (MP4, WebM, MKV, GIF...); missing, unreadable or frameless is one line."""
    import av

    path = Path(path).expanduser()
    if not path.is_file():
        raise UsageError(f"source video not found: {path}")
    try:
        with av.open(str(path)) as container:
            if not container.streams.video:
                raise UsageError(f"{path} has no video stream")
            stream = container.streams.video[0]
            frames = sum(1 for _ in container.decode(video=0))
            rate = stream.average_rate or stream.guessed_rate
    except UsageError:
        raise
    except (av.error.FFmpegError, OSError, ValueError) as exc:
        raise UsageError(f"{path} is not a video sora can read ({type(exc).__name__})") from None
    if frames == 0:
        raise UsageError(f"{path} holds no frames")
    fps = float(rate) if rate else 24.0
    return SourceVideo(path, stream.codec_context.width, stream.codec_context.height, frames,
                       fps if math.isfinite(fps) and fps > 0 else 24.0, sha256(path))
