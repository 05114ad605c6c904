"""`sora serve`: OpenAI's Videos API (/v1/videos...) on this machine's model.

store.py keeps the job queue (SQLite), jobs.py turns the API's fields into sora's settings and verbs, worker.py
renders queued jobs with the model loaded once, app.py answers HTTP (FastAPI), server.py starts it all.
"""

from __future__ import annotations


class ApiError(Exception):
    """An error answered in OpenAI's shape: {"error": {"message", "type", "param", "code"}} with its status."""

    def __init__(self, status: int, message: str, param: str | None = None, code: str | None = None,
                 kind: str = "invalid_request_error"):
        super().__init__(message)
        self.status, self.message, self.param, self.code, self.kind = status, message, param, code, kind

    def body(self) -> dict:
        return {"error": {"message": self.message, "type": self.kind, "param": self.param, "code": self.code}}
