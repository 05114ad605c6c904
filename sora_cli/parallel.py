"""`--gpus N`: one video split over N GPUs of this machine with diffusers' context parallelism (Ulysses or ring).

sora starts the N worker processes itself (spawned, one per GPU, NCCL between them; gloo where there is no
CUDA), each loads the model on its GPU and runs every denoising step on 1/N of the sequence. Rank 0 decodes and
writes the file; its progress comes back here to the one progress bar. Any worker failing or dying ends them all:
one line, no file.
"""

from __future__ import annotations

import signal
import socket
import time
from dataclasses import dataclass
from pathlib import Path

from .errors import RenderError, SoraError, UsageError


@dataclass(frozen=True)
class SplitTask:
    """One video for the workers: the request as render_request checked it."""

    prompt: str
    preset: object
    verb: object
    output: Path
    contact_sheet: bool = False


def cuda_devices() -> int:
    import torch

    return torch.cuda.device_count() if torch.cuda.is_available() else 0


def check_gpus(gpus: int) -> None:
    have = cuda_devices()
    if gpus > have:
        raise UsageError(f"--gpus {gpus}: this machine has {have} CUDA GPU{'s' if have != 1 else ''}")


def render_split(tasks: list[SplitTask], gpus: int, progress, warn) -> list:
    """Renders each task over `gpus` worker processes; the RenderResults, in order."""
    from multiprocessing.connection import wait

    import torch.multiprocessing as mp

    check_gpus(gpus)
    context = mp.get_context("spawn")  # CUDA cannot be forked; a fork of a threaded parent can deadlock too
    port = _free_port()
    pipes = [context.Pipe(duplex=False) for _ in range(gpus)]  # one each: a killed worker leaves no lock held
    workers = [context.Process(target=_worker, args=(rank, gpus, port, tasks, pipes[rank][1]), daemon=True)
               for rank in range(gpus)]
    for worker, (_, sender) in zip(workers, pipes):
        worker.start()
        sender.close()  # the worker holds the only copy: its end closes when it dies
    receivers = {receiver: rank for rank, (receiver, _) in enumerate(pipes)}
    results = []
    try:
        while len(results) < len(tasks):
            for receiver in wait(list(receivers), timeout=1.0):
                try:
                    kind, *payload = receiver.recv()
                except EOFError:  # the worker is gone: with an error said before, or killed
                    workers[receivers.pop(receiver)].join(timeout=5)
                    _check_alive(workers)
                    continue
                if kind == "progress" and progress:
                    progress(*payload)
                elif kind == "warn":
                    warn(payload[0])
                elif kind == "result":
                    results.append(payload[0])
                elif kind == "error":  # a worker that lost its peer says so too: the death is the news
                    _check_alive(workers, grace=2.0, killed_only=True)
                    code, message = payload
                    raise (UsageError if code == 2 else RenderError)(message)
            _check_alive(workers)
            if not receivers and len(results) < len(tasks):
                raise RenderError("the workers ended before the video was written")
        for worker in workers:
            worker.join(timeout=60)
        return results
    finally:
        for worker in workers:
            if worker.is_alive():
                worker.kill()
        for worker in workers:
            worker.join(timeout=10)
        if len(results) < len(tasks):
            for task in tasks[len(results):]:  # a killed rank 0 leaves its temporary file behind
                for part in task.output.parent.glob(f".{task.output.stem}.*.part{task.output.suffix}"):
                    part.unlink(missing_ok=True)


def _check_alive(workers, grace: float = 0.0, killed_only: bool = False) -> None:
    """RenderError naming a worker that died (a signal first; with `killed_only`, only a signal, waited for up to
    `grace` seconds)."""
    deadline = time.monotonic() + grace
    while grace and time.monotonic() < deadline and not any((w.exitcode or 0) < 0 for w in workers):
        time.sleep(0.05)
    for rank, worker in sorted(enumerate(workers), key=lambda item: (item[1].exitcode or 0) >= 0):
        if killed_only and (worker.exitcode or 0) >= 0:
            continue
        if worker.exitcode not in (None, 0):
            how = f"killed by {signal.Signals(-worker.exitcode).name}" if worker.exitcode < 0 else \
                f"exit code {worker.exitcode}"
            raise RenderError(f"worker {rank} of {len(workers)} stopped ({how}); all stopped, no file was written")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _worker(rank: int, world: int, port: int, tasks: list[SplitTask], events) -> None:
    """One GPU's share: join the group, load the model split over it, then render (rank 0) or compute (others).
    `events` is its end of a pipe to the parent: ("progress"|"warn"|"result"|"error", ...)."""
    import warnings

    import torch
    import torch.distributed as dist

    warnings.simplefilter("ignore", FutureWarning)  # diffusers' collectives call torch's deprecated names
    import threading

    from tqdm import tqdm

    tqdm.set_lock(threading.RLock())  # not tqdm's default process lock: a killed worker would leak its semaphore

    from .backends import backend_for
    from .device import pick_device
    from .generate import verb_job
    from .render import render_to_file

    try:
        cuda = pick_device(tasks[0].preset.device) == "cuda"
        if cuda:
            torch.cuda.set_device(rank)
        dist.init_process_group("nccl" if cuda else "gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank,
                                world_size=world)
        backend = backend_for(tasks[0].preset)
        if rank == 0:
            for note in backend.notes:
                events.send(("warn", note))
        for task in tasks:
            job, notes = verb_job(task.prompt, task.preset, backend, task.verb)
            if rank != 0:
                frames = iter(backend.render(job, None, task.verb if task.verb.names else None))
                next(frames)  # every denoising step has run: rank 0 decodes alone
                frames.close()
                continue
            for note in [*notes, *backend.prompt_notes(task.prompt)]:
                events.send(("warn", note))
            result = render_to_file(backend, job, task.preset, task.output,
                                    lambda *update: events.send(("progress", *update)),
                                    contact_sheet=task.contact_sheet, warn=lambda m: events.send(("warn", m)),
                                    verb=task.verb)
            events.send(("result", result))
        dist.destroy_process_group()
    except SoraError as exc:
        events.send(("error", exc.exit_code, str(exc)))
        raise SystemExit(exc.exit_code) from None
    except Exception as exc:  # noqa: BLE001 - any failure on any rank ends the whole run in one line
        first = str(exc).splitlines()[0] if str(exc) else ""
        events.send(("error", 1, f"worker {rank}: {type(exc).__name__}: {first}"))
        raise SystemExit(1) from None
