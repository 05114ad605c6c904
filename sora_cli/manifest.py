"""A batch folder's manifest (manifest.jsonl, append-only) and its lock.

One record per event: a "batch" record each time a run starts (its seed and files), then a "row" record each
time a row ends (done or failed, its recipe, its output's size and SHA-256). The newest record of a row wins, so a
resumed run only appends. A record is written only after its video was renamed into place, and a line cut short
by a crash is ignored on reading.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path

from .errors import UsageError

MANIFEST = "manifest.jsonl"
LOCK = ".sora-batch.lock"


@dataclass(frozen=True)
class RowResult:
    """One row's outcome; resume and distributed runs key on `index`."""

    index: int
    source: str
    prompt: str
    output: str  # relative to the batch folder
    status: str  # "done" or "failed"
    seed: int
    seconds: float
    error: str | None = None
    bytes: int | None = None  # the finished video's size and hash: `--resume` trusts only a file that still matches
    sha256: str | None = None
    recipe: dict = field(default_factory=dict)


def file_digest(path: Path) -> tuple[int, str]:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return path.stat().st_size, digest.hexdigest()


def append(folder: Path, record: dict) -> None:
    """One JSON line, flushed to disk before returning."""
    with open(folder / MANIFEST, "a", encoding="utf-8") as f:
        f.write(json.dumps(record, ensure_ascii=False) + "\n")
        f.flush()
        os.fsync(f.fileno())


def append_row(folder: Path, result: RowResult) -> None:
    append(folder, {"type": "row", **asdict(result)})


def read(folder: Path) -> tuple[list[dict], dict[str, dict]]:
    """(batch records, newest row record per output file); lines a crash cut short are skipped."""
    path = folder / MANIFEST
    batches, rows = [], {}
    if not path.is_file():
        return batches, rows
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            record = json.loads(line)
        except json.JSONDecodeError:
            continue
        if record.get("type") == "batch":
            batches.append(record)
        elif record.get("type") == "row" and isinstance(record.get("output"), str):
            rows[record["output"]] = record
    return batches, rows


def is_whole(folder: Path, record: dict) -> bool:
    """A done row whose video is still there, byte for byte as it was written."""
    path = folder / record.get("output", "")
    if record.get("status") != "done" or not path.is_file() or path.parent != folder:
        return False
    return file_digest(path) == (record.get("bytes"), record.get("sha256"))


class BatchLock:
    """An exclusive lock on the batch folder for the whole run: a second `sora batch` there is refused."""

    def __init__(self, folder: Path):
        self.path, self.fd = folder / LOCK, None

    def __enter__(self) -> BatchLock:
        import fcntl

        self.fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(self.fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(self.fd)
            raise UsageError(f"another sora batch is running in {self.path.parent}; wait for it or use another "
                             "--out") from None
        os.ftruncate(self.fd, 0)
        os.write(self.fd, f"{os.getpid()}\n".encode())
        return self

    def __exit__(self, *exc) -> None:
        os.close(self.fd)  # closing releases the lock; the file stays (removing it would race a waiting run)
