"""`sora serve`: checks its options, loads the model once per worker, requeues what a stopped server left, and
serves until stopped (Ctrl-C or SIGTERM: a running job runs again on the next start)."""

from __future__ import annotations

import ipaddress
import os
import sys
import threading
from dataclasses import replace
from pathlib import Path

from ..errors import UsageError

LOCAL_HOSTS = ("localhost",)


def is_local(host: str) -> bool:
    if host in LOCAL_HOSTS:
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def check_options(host: str, port: int, api_key: str | None, workers: int | None, max_queue: int,
                  max_upload_mb: int) -> None:
    if not is_local(host) and not api_key:
        raise UsageError(f"--host {host} reaches beyond this machine: set an API key (--api-key or SORA_API_KEY), "
                         "or keep the default 127.0.0.1")
    if not 0 <= port <= 65535:
        raise UsageError(f"--port must be between 0 and 65535, got {port}")
    for name, value in (("--workers", workers), ("--max-queue", max_queue), ("--max-upload", max_upload_mb)):
        if value is not None and value < 1:
            raise UsageError(f"{name} must be >= 1, got {value}")


def server_dependencies():
    try:
        import fastapi  # noqa: F401
        import multipart  # noqa: F401
        import uvicorn
    except ImportError:
        raise UsageError("sora serve needs its extra: pip install 'sora-cli[serve]'") from None
    return uvicorn


def worker_devices(preset, workers: int | None) -> list[int | None]:
    """One worker per CUDA GPU (each with its model), else --workers of them on the one device."""
    from ..device import pick_device

    if pick_device(preset.device) == "cuda":
        import torch

        count = torch.cuda.device_count()
        if workers is not None and workers > count:
            raise UsageError(f"--workers {workers}: this machine has {count} CUDA GPU(s); one worker per GPU")
        return list(range(workers or count))
    return [None] * (workers or 1)


def run_server(*, host: str, port: int, flags: dict, preset_ref: str | None, data: Path, api_key: str | None,
               workers: int | None, max_queue: int, max_upload_mb: int) -> None:
    from ..generate import check_flags, model_preset
    from ..presets import resolve_preset
    from ..render import check_writable

    api_key = api_key or os.environ.get("SORA_API_KEY") or None
    check_options(host, port, api_key, workers, max_queue, max_upload_mb)
    uvicorn = server_dependencies()
    preset = resolve_preset(preset_ref or model_preset(flags.get("model"))).with_overrides(check_flags(flags))
    if preset.gpus > 1:
        raise UsageError("sora serve uses every GPU already, one worker (and job) per GPU: drop --gpus")
    data = data.expanduser()
    check_writable(data)

    from ..backends import backend_for
    from .app import Service, create_app
    from .jobs import Context
    from .store import JobStore
    from .worker import Worker, remove_stale_parts

    backends = []
    for gpu in worker_devices(preset, workers):
        if gpu is not None:
            import torch

            torch.cuda.set_device(gpu)
        backends.append((gpu, backend_for(preset)))
    data.mkdir(parents=True, exist_ok=True)
    remove_stale_parts(data)
    store = JobStore(data)
    requeued = store.requeue_interrupted()
    ctx = Context(data.resolve(), preset, backends[0][1])
    service = Service(ctx, store, threading.Condition(), api_key=api_key, max_queue=max_queue,
                      max_upload=max_upload_mb << 20)
    service.workers = [Worker(replace(ctx, backend=backend), store, service.wake, gpu) for gpu, backend in backends]
    for worker in service.workers:
        worker.start()
    for note in backends[0][1].notes:
        print(f"warning: {note}", file=sys.stderr)
    waiting = store.count("queued")
    print(f"sora serve: http://{host}:{port}/v1 - model {ctx.model_id}, {len(backends)} worker(s), data {data}"
          + (f", {waiting} job(s) waiting ({requeued} interrupted)" if waiting else ""), file=sys.stderr, flush=True)
    uvicorn.run(create_app(service), host=host, port=port, log_level="warning", access_log=False)
