"""Contact sheets: a PNG grid of frames picked evenly through a video, to see a render at a glance.

The PNG is written with zlib alone (no imaging library), atomically, like every other output.
"""

from __future__ import annotations

import os
import struct
import zlib
from pathlib import Path

import numpy as np

GAP = 2  # pixels between tiles


def sheet_path(video: Path) -> Path:
    return video.with_suffix(".png")


def pick_indices(total: int, count: int = 12) -> list[int]:
    """`count` frame indices spread evenly from the first frame to the last."""
    count = min(count, total)
    if count <= 1:
        return [0]
    return sorted({round(i * (total - 1) / (count - 1)) for i in range(count)})


def compose(frames: list[np.ndarray], columns: int = 4) -> np.ndarray:
    """Tiles (H, W, 3) uint8 frames row by row on a dark ground."""
    h, w, _ = frames[0].shape
    columns = min(columns, len(frames))
    rows = -(-len(frames) // columns)
    sheet = np.full((rows * h + (rows + 1) * GAP, columns * w + (columns + 1) * GAP, 3), 24, np.uint8)
    for i, frame in enumerate(frames):
        r, c = divmod(i, columns)
        y, x = GAP + r * (h + GAP), GAP + c * (w + GAP)
        sheet[y : y + h, x : x + w] = frame
    return sheet


def encode_png(image: np.ndarray) -> bytes:
    """(H, W, 3) uint8 -> PNG bytes (8-bit RGB, no filter)."""
    h, w, _ = image.shape
    raw = b"".join(b"\x00" + image[y].tobytes() for y in range(h))

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    header = struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(raw, 6)) + chunk(b"IEND", b"")


def decode_png(data: bytes) -> np.ndarray:
    """Reads back what encode_png writes (8-bit RGB, filter 0): for tests and the gallery."""
    pos, header, idat = 8, None, b""
    while pos < len(data):
        (length,) = struct.unpack(">I", data[pos : pos + 4])
        kind, body = data[pos + 4 : pos + 8], data[pos + 8 : pos + 8 + length]
        if kind == b"IHDR":
            header = struct.unpack(">IIBBBBB", body)
        elif kind == b"IDAT":
            idat += body
        pos += 12 + length
    w, h = header[0], header[1]
    rows = np.frombuffer(zlib.decompress(idat), np.uint8).reshape(h, 1 + 3 * w)
    return rows[:, 1:].reshape(h, w, 3)


def write_png(path: Path, image: np.ndarray) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    with open(tmp, "wb") as f:
        f.write(encode_png(image))
        f.flush()
        os.fsync(f.fileno())
    tmp.replace(path)


class SheetCollector:
    """Keeps copies of the chosen frames as chunks stream past (a dozen frames, not the video)."""

    def __init__(self, total: int, count: int = 12):
        self.wanted = set(pick_indices(total, count))
        self.frames: list[np.ndarray] = []
        self.seen = 0

    def add(self, chunk: np.ndarray) -> None:
        for i in range(len(chunk)):
            if self.seen + i in self.wanted:
                self.frames.append(chunk[i].copy())
        self.seen += len(chunk)

    def image(self) -> np.ndarray:
        return compose(self.frames)
