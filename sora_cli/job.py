"""The job: everything that decides one video's pixels (and sound), as render, batch and every backend pass it.

Torch-free, so checking a request or a prompt file never imports the engine. Its fields are the prompt, the
frame count the model's rule produced, and every per-video setting of the settings table (settings.py, the
ones a prompt-file row may change) with the table's defaults.
"""

from __future__ import annotations

from dataclasses import field, make_dataclass

from .settings import ROW_SETTINGS, SETTINGS

Job = make_dataclass(
    "Job",
    [("prompt", str), ("frames", int), ("generated_frames", int),  # delivered; made by the frame rule (>= frames)
     *[(name, SETTINGS[name].kind, field(default=SETTINGS[name].default)) for name in ROW_SETTINGS
       if name != "frames"]],
    frozen=True, namespace={"__module__": __name__},
)
Job.__doc__ = "One video: prompt, frames delivered and generated, and its per-video settings (settings.py)."
