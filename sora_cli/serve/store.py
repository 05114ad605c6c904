"""The server's job queue: one SQLite table under --data, so a restart (even after kill -9) loses no accepted job.

A row is written, committed, before its request is answered; a job that was running when the server died is
queued again on start, and a worker records a job done only after its video was renamed into place. Torch-free.
"""

from __future__ import annotations

import json
import sqlite3
import threading
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

DATABASE = "jobs.sqlite"
ID_PREFIX = "video_"
STATUSES = ("queued", "in_progress", "completed", "failed")

SCHEMA = """
CREATE TABLE IF NOT EXISTS videos (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,  -- acceptance order: the queue's and the list's
    id TEXT UNIQUE NOT NULL,
    created_at INTEGER NOT NULL,
    completed_at INTEGER,
    status TEXT NOT NULL,
    progress INTEGER NOT NULL DEFAULT 0,
    model TEXT NOT NULL,  -- as the client named it
    prompt TEXT NOT NULL,
    seconds TEXT NOT NULL,
    size TEXT NOT NULL,
    remixed_from TEXT,
    request TEXT NOT NULL,  -- JSON: everything the worker needs to render it (jobs.py)
    error TEXT  -- JSON {"code", "message"} of a failed job
)
"""


def new_id() -> str:
    return f"{ID_PREFIX}{uuid.uuid4().hex}"


def is_id(text: str) -> bool:
    """The shape of an id this server hands out: anything else (a path, say) names no video."""
    rest = text[len(ID_PREFIX):]
    return text.startswith(ID_PREFIX) and len(rest) == 32 and all(c in "0123456789abcdef" for c in rest)


@dataclass(frozen=True)
class VideoRow:
    seq: int
    id: str
    created_at: int
    completed_at: int | None
    status: str
    progress: int
    model: str
    prompt: str
    seconds: str
    size: str
    remixed_from: str | None
    request: dict
    error: dict | None


class JobStore:
    """Every access goes through one connection under one lock: the queries take microseconds, and a single
    writer keeps SQLite out of "database is locked"."""

    def __init__(self, folder: Path):
        folder.mkdir(parents=True, exist_ok=True)
        self.db = sqlite3.connect(folder / DATABASE, check_same_thread=False, isolation_level=None)
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute("PRAGMA synchronous=FULL")  # an answered create is on disk
        self.db.execute(SCHEMA)
        self.lock = threading.Lock()

    def close(self) -> None:
        with self.lock:
            self.db.close()

    def _rows(self, query: str, args=()) -> list[VideoRow]:
        with self.lock:
            rows = self.db.execute(f"SELECT * FROM videos {query}", args).fetchall()
        return [VideoRow(*r[:11], json.loads(r[11]), json.loads(r[12]) if r[12] else None) for r in rows]

    def requeue_interrupted(self) -> int:
        """On start: a job that was running when the server stopped runs again from the beginning."""
        with self.lock:
            return self.db.execute("UPDATE videos SET status = 'queued', progress = 0 "
                                   "WHERE status = 'in_progress'").rowcount

    def add(self, video_id: str, *, model: str, prompt: str, seconds: str, size: str, request: dict,
            remixed_from: str | None = None, max_queue: int | None = None) -> VideoRow | None:
        """Queues a job; None when `max_queue` jobs are already waiting (the caller answers 429)."""
        with self.lock:
            self.db.execute("BEGIN IMMEDIATE")
            try:
                waiting = self.db.execute("SELECT COUNT(*) FROM videos WHERE status = 'queued'").fetchone()[0]
                if max_queue is not None and waiting >= max_queue:
                    return None
                self.db.execute(
                    "INSERT INTO videos (id, created_at, status, model, prompt, seconds, size, remixed_from, request) "
                    "VALUES (?, ?, 'queued', ?, ?, ?, ?, ?, ?)",
                    (video_id, int(time.time()), model, prompt, seconds, size, remixed_from, json.dumps(request)))
            finally:
                self.db.execute("COMMIT")
        return self.get(video_id)

    def get(self, video_id: str) -> VideoRow | None:
        rows = self._rows("WHERE id = ?", (video_id,))
        return rows[0] if rows else None

    def page(self, after: str | None, limit: int, descending: bool) -> tuple[list[VideoRow], bool]:
        """A page of the list (acceptance order) after the video `after`, and whether more follow."""
        order, cmp = ("DESC", "<") if descending else ("ASC", ">")
        where, args = "", ()
        if after is not None:
            where, args = f"WHERE seq {cmp} (SELECT seq FROM videos WHERE id = ?)", (after,)
        rows = self._rows(f"{where} ORDER BY seq {order} LIMIT ?", (*args, limit + 1))
        return rows[:limit], len(rows) > limit

    def claim(self) -> VideoRow | None:
        """The oldest queued job, now in progress (one worker gets it)."""
        with self.lock:
            row = self.db.execute("UPDATE videos SET status = 'in_progress', progress = 0 WHERE seq = "
                                  "(SELECT seq FROM videos WHERE status = 'queued' ORDER BY seq LIMIT 1) "
                                  "RETURNING id").fetchone()
        return self.get(row[0]) if row else None

    def set_progress(self, video_id: str, progress: int) -> None:
        with self.lock:
            self.db.execute("UPDATE videos SET progress = ? WHERE id = ? AND status = 'in_progress'",
                            (progress, video_id))

    def finish(self, video_id: str, error: dict | None = None) -> bool:
        """Completed (or failed with `error`); False when the job was deleted meanwhile."""
        with self.lock:
            return self.db.execute(
                "UPDATE videos SET status = ?, progress = ?, completed_at = ?, error = ? "
                "WHERE id = ? AND status = 'in_progress'",
                ("failed" if error else "completed", 0 if error else 100, int(time.time()),
                 json.dumps(error) if error else None, video_id)).rowcount == 1

    def delete(self, video_id: str) -> VideoRow | None:
        """Removes the job (whatever its state) and returns it as it was."""
        row = self.get(video_id)
        if row is not None:
            with self.lock:
                self.db.execute("DELETE FROM videos WHERE id = ?", (video_id,))
        return row

    def count(self, status: str) -> int:
        with self.lock:
            return self.db.execute("SELECT COUNT(*) FROM videos WHERE status = ?", (status,)).fetchone()[0]
