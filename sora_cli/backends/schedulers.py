"""`--sampler` and `--shift` on open models: the checkpoint's own scheduler, or sora's sampler names as
diffusers' flow-matching schedulers, configured from the checkpoint's (shift, dynamic shifting, terminal)."""

from __future__ import annotations

# sampler -> (diffusers scheduler class, what makes it a flow-matching scheduler)
FLOW_SCHEDULERS = {
    "euler": ("FlowMatchEulerDiscreteScheduler", {}),
    "unipc": ("UniPCMultistepScheduler", {"prediction_type": "flow_prediction", "use_flow_sigmas": True}),
    "dpmpp_2m": ("DPMSolverMultistepScheduler", {"prediction_type": "flow_prediction", "use_flow_sigmas": True,
                                                 "algorithm_type": "dpmsolver++", "solver_order": 2}),
}
SHIFT_KEYS = {"FlowMatchEulerDiscreteScheduler": "shift", "UniPCMultistepScheduler": "flow_shift",
              "DPMSolverMultistepScheduler": "flow_shift"}


def scheduler_for(own, sampler: str, shift: float | None):
    """The scheduler a job runs: `own` (the checkpoint's, never changed) when the sampler is auto and the shift
    its own; else a new one from its config. Which samplers a family takes is its record's (families.py)."""
    import diffusers

    own_name = type(own).__name__
    name, flow = (own_name, {}) if sampler == "auto" else FLOW_SCHEDULERS[sampler]
    own_shift = own.config.get(SHIFT_KEYS.get(own_name, ""))
    shift = own_shift if shift is None else shift
    if name == own_name and shift == own_shift:
        return own
    config = {**own.config, **flow}
    if name in SHIFT_KEYS and shift is not None:
        config[SHIFT_KEYS[name]] = shift
    return getattr(diffusers, name).from_config(config)


def describe(scheduler) -> dict:
    """What the recipe records of the scheduler that ran: its class, and its shift where it has one."""
    key = SHIFT_KEYS.get(type(scheduler).__name__)
    return {"scheduler": type(scheduler).__name__, "scheduler_shift": scheduler.config.get(key) if key else None}
