"""`sora batch --executor ray`: one Ray actor per GPU (or CPU worker), each loading the model once; rows are
handed out as actors free up, and the driver alone writes the manifest. Needs the `ray` extra."""

from __future__ import annotations

from .errors import UsageError
from .manifest import RowResult


class RenderWorker:
    """Lives in a Ray worker process: the model loads once, then renders rows into the shared output folder."""

    def __init__(self, preset):
        from .backends import backend_for

        self.backend = backend_for(preset)

    def render(self, row, settings, output) -> RowResult:
        from .render import make_job, render_row

        try:
            job, _ = make_job(row.prompt, settings, self.backend)
        except UsageError as exc:
            return RowResult(row.index, row.source, row.prompt, output.name, "failed", settings.seed, 0.0, str(exc))
        return render_row(self.backend, row, settings, output, job)


def render_on_ray(plans, preset, *, address: str | None, workers: int | None, stop, on_result) -> list[RowResult]:
    try:
        import ray
    except ImportError:
        raise UsageError("--executor ray needs Ray: pip install 'sora-cli[ray]'") from None
    started_here = not ray.is_initialized()
    if started_here:
        try:
            ray.init(address=address, include_dashboard=False, log_to_driver=False)
        except (ConnectionError, RuntimeError, ValueError) as exc:
            raise UsageError(f"cannot reach the Ray cluster at {address or 'local'}: {exc}") from None
    try:
        resources = ray.cluster_resources()
        gpus = int(resources.get("GPU", 0))
        per_actor = {"num_gpus": 1} if gpus and preset.device in ("auto", "cuda") else {"num_cpus": 1}
        count = workers or max(1, gpus if "num_gpus" in per_actor else int(resources.get("CPU", 1)))
        actor = ray.remote(**per_actor)(RenderWorker)
        idle = [actor.remote(preset) for _ in range(min(count, max(len(plans), 1)))]
        queue, pending, results = list(plans), {}, []
        while queue or pending:
            while idle and queue and not stop.requested:
                row, settings, output = queue.pop(0)
                worker = idle.pop()
                pending[worker.render.remote(row, settings, output)] = worker
            if not pending:
                break
            done, _ = ray.wait(list(pending), num_returns=1)
            idle.append(pending.pop(done[0]))
            results.append(on_result(ray.get(done[0])))
        return results
    finally:
        if started_here:
            ray.shutdown()
