"""The HTTP side of `sora serve`: OpenAI's Videos API routes on FastAPI, errors in OpenAI's shape.

Handlers only read and write the queue (store.py) and files; checking a request that needs the disk or the model
runs in the thread pool, so the event loop answers while a worker renders.
"""

from __future__ import annotations

import hmac
import json
import sys
import threading
from dataclasses import dataclass, field

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, JSONResponse
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import UploadFile
from starlette.exceptions import HTTPException

from ..errors import UsageError
from . import ApiError
from .jobs import Context, Upload, build_request, resolve
from .store import JobStore, VideoRow, is_id, new_id
from .worker import output_path, remove_files

POLL_AFTER_MS = "250"  # how often `create_and_poll` asks again (the openai client reads openai-poll-after-ms)
CONTENT = {"video": (".mp4", "video/mp4"), "thumbnail": (".jpg", "image/jpeg"),
           "spritesheet": (".png", "image/png")}


@dataclass
class Service:
    ctx: Context
    store: JobStore
    wake: threading.Condition
    workers: list = field(default_factory=list)
    api_key: str | None = None
    max_queue: int = 100
    max_upload: int = 64 << 20

    def queued(self) -> None:
        with self.wake:
            self.wake.notify_all()


def video_object(row: VideoRow) -> dict:
    return {"id": row.id, "object": "video", "created_at": row.created_at, "completed_at": row.completed_at,
            "expires_at": None, "status": row.status, "progress": row.progress, "model": row.model,
            "prompt": row.prompt, "seconds": row.seconds, "size": row.size,
            "remixed_from_video_id": row.remixed_from, "error": row.error}


def create_app(service: Service) -> FastAPI:
    app = FastAPI(title="sora serve", docs_url=None, redoc_url=None, openapi_url=None)
    headers = {"x-sora-model": service.ctx.model_id}

    def answer(row: VideoRow, status: int = 200) -> JSONResponse:
        return JSONResponse(video_object(row), status, {**headers, "openai-poll-after-ms": POLL_AFTER_MS})

    @app.exception_handler(ApiError)
    async def api_error(request: Request, exc: ApiError):
        return JSONResponse(exc.body(), exc.status, headers)

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, exc: RequestValidationError):
        first = exc.errors()[0] if exc.errors() else {}
        param = str(first.get("loc", ["", ""])[-1]) or None
        return JSONResponse(ApiError(400, f"{param}: {first.get('msg', 'invalid request')}", param).body(), 400)

    @app.exception_handler(HTTPException)
    async def http_error(request: Request, exc: HTTPException):
        code = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code)
        return JSONResponse(ApiError(exc.status_code, str(exc.detail), None, code).body(), exc.status_code)

    @app.exception_handler(Exception)
    async def unexpected(request: Request, exc: Exception):
        print(f"sora serve: {request.method} {request.url.path} failed: {type(exc).__name__}: {exc}",
              file=sys.stderr, flush=True)
        error = ApiError(500, f"the server failed: {type(exc).__name__}: {exc}", None, "server_error", "server_error")
        return JSONResponse(error.body(), 500)

    @app.middleware("http")
    async def guard(request: Request, call_next):
        """The key (when one is set) and the upload limit, before a body is read."""
        if service.api_key is not None:
            given = request.headers.get("authorization", "")
            token = given[7:] if given.lower().startswith("bearer ") else ""
            if not hmac.compare_digest(token.encode(), service.api_key.encode()):
                error = ApiError(401, "incorrect or missing API key (Authorization: Bearer KEY)", None,
                                 "invalid_api_key")
                return JSONResponse(error.body(), 401)
        length = request.headers.get("content-length")
        if length is not None and length.isdigit() and int(length) > service.max_upload:
            return JSONResponse(too_large(service).body(), 413)
        return await call_next(request)

    def find(video_id: str, param: str = "video_id") -> VideoRow:
        row = service.store.get(video_id) if is_id(video_id) else None
        if row is None:
            raise ApiError(404, f"no video with id '{video_id}'", param, "not_found")
        return row

    async def accept(kind: str, request: Request, source_id: str | None = None) -> JSONResponse:
        fields, files = await read_body(request, service)
        param = "video_id"
        if kind in ("extend", "edit") and isinstance(fields.get("video"), dict):
            source_id, param = str(fields["video"].get("id")), "video"
        if source_id is not None:
            source = find(source_id, param)
            if source.status != "completed":
                raise ApiError(409, f"video {source_id} is {source.status}, not completed", param, "video_not_ready")
        row = await run_in_threadpool(queue_job, service, kind, fields, files, source_id)
        service.queued()
        return answer(row)

    @app.post("/v1/videos")
    async def create(request: Request):
        return await accept("create", request)

    @app.post("/v1/videos/extensions")
    async def extend(request: Request):
        return await accept("extend", request)

    @app.post("/v1/videos/edits")
    async def edit(request: Request):
        return await accept("edit", request)

    @app.post("/v1/videos/{video_id}/remix")
    async def remix(video_id: str, request: Request):
        find(video_id)
        return await accept("remix", request, video_id)

    @app.get("/v1/videos")
    def list_videos(after: str | None = None, limit: int = 20, order: str = "desc"):
        if not 1 <= limit <= 100:
            raise ApiError(400, f"limit must be between 1 and 100, got {limit}", "limit")
        if order not in ("asc", "desc"):
            raise ApiError(400, f"order must be asc or desc, got {order!r}", "order")
        if after is not None:
            find(after)
        rows, more = service.store.page(after, limit, order == "desc")
        data = [video_object(r) for r in rows]
        return JSONResponse({"object": "list", "data": data, "first_id": data[0]["id"] if data else None,
                             "last_id": data[-1]["id"] if data else None, "has_more": more}, headers=headers)

    @app.get("/v1/videos/{video_id}")
    def retrieve(video_id: str):
        return answer(find(video_id))

    @app.delete("/v1/videos/{video_id}")
    def delete(video_id: str):
        find(video_id)
        service.store.delete(video_id)
        for worker in service.workers:
            worker.cancel(video_id)
        remove_files(service.ctx.data, video_id)
        return JSONResponse({"id": video_id, "object": "video.deleted", "deleted": True}, headers=headers)

    @app.get("/v1/videos/{video_id}/content")
    def content(video_id: str, variant: str = "video"):
        if variant not in CONTENT:
            raise ApiError(400, f"unknown variant {variant!r}; valid: {', '.join(CONTENT)}", "variant")
        row = find(video_id)
        if row.status != "completed":
            raise ApiError(409, f"video {video_id} is {row.status}; its content is ready when it is completed",
                           None, "video_not_ready")
        suffix, media = CONTENT[variant]
        path = output_path(service.ctx.data, video_id, suffix)
        if not path.is_file():
            raise ApiError(404, f"the {variant} of {video_id} is gone", "variant", "not_found")
        return FileResponse(path, media_type=media, headers=headers,
                            filename=f"{video_id}{suffix}" if variant == "video" else None)

    return app


def too_large(service: Service) -> ApiError:
    return ApiError(413, f"the request is larger than the {service.max_upload >> 20} MiB this server accepts "
                         "(--max-upload)", None, "request_too_large")


async def read_body(request: Request, service: Service) -> tuple[dict, dict[str, Upload]]:
    """A JSON object or a multipart/url-encoded form (nested fields as `video[id]`); at most --max-upload."""
    body = bytearray()
    async for chunk in request.stream():
        body.extend(chunk)
        if len(body) > service.max_upload:
            raise too_large(service)
    request._body = bytes(body)  # the form parser reads the cached body
    kind = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if kind in ("multipart/form-data", "application/x-www-form-urlencoded"):
        try:
            form = await request.form(max_files=4, max_fields=64, max_part_size=service.max_upload)
        except Exception as exc:  # noqa: BLE001 - the form parser raises several kinds for a malformed body
            raise ApiError(400, f"malformed form body: {exc}", None, "invalid_body") from None
        fields, files = {}, {}
        for name, value in form.multi_items():
            if isinstance(value, UploadFile):
                files[name] = Upload(value.filename or "", await value.read())
            elif "[" in name and name.endswith("]"):  # video[id] -> {"video": {"id": ...}}
                outer, inner = name[:-1].split("[", 1)
                fields.setdefault(outer, {})[inner] = value
            else:
                fields[name] = value
        return fields, files
    try:
        fields = json.loads(body or b"{}")
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ApiError(400, f"malformed JSON body: {exc}", None, "invalid_json") from None
    if not isinstance(fields, dict):
        raise ApiError(400, "the body must be a JSON object", None, "invalid_json")
    return fields, {}


def queue_job(service: Service, kind: str, fields: dict, files: dict, source_id: str | None) -> VideoRow:
    """Checks the request as far as the model allows (sizes, lengths, what the model can do), then queues it with
    its seed; a bad request leaves nothing behind."""
    from ..generate import verb_job

    ctx, video_id = service.ctx, new_id()
    try:
        request = build_request(kind, video_id, fields, files, ctx, source_id)
        prompt, preset, verb = resolve(request, ctx)
        job, _ = verb_job(prompt, preset, ctx.backend, verb)
    except UsageError as exc:
        remove_files(ctx.data, video_id)
        raise ApiError(400, str(exc), None, "invalid_request") from None
    except ApiError:
        remove_files(ctx.data, video_id)
        raise
    request["settings"]["seed"] = job.seed
    frames = verb.kept_frames + job.frames
    row = service.store.add(video_id, model=request["model"], prompt=prompt, seconds=f"{frames / job.fps:g}",
                            size=f"{job.width}x{job.height}", request=request,
                            remixed_from=request.get("remixed_from"), max_queue=service.max_queue)
    if row is None:
        remove_files(ctx.data, video_id)
        raise ApiError(429, f"the queue is full ({service.max_queue} jobs waiting); try again later", None,
                       "queue_full", "rate_limit_error")
    return row
