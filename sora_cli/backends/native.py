"""The native backend: sora's own latent video diffusion engine (sora-tiny and checkpoints like it)."""

from __future__ import annotations

import torch

from ..device import pick_device, pick_dtype, torch_dtype
from ..errors import UsageError
from ..families import FAMILIES
from ..job import Job
from ..models.native import build_model, randomize
from ..pipeline import generate
from ..registry import MODELS, get_spec
from ..weights import checkpoint_path, load_native, packaged_weights

OWN_SAMPLER = "dpmpp_2m"  # what --sampler auto runs: the sampler sora-tiny's eval and presets were tuned with
UNTRAINED_SEED = 0  # the seeded random weights used when a model has no trained weights here
OUTPUT_MULTIPLE = 16  # outputs are resized from the native grid; 16 keeps every encoder's macroblocks whole


class NativeBackend:
    def __init__(self, model, model_id: str, device: str, dtype: str, compiled: bool, notes: list[str]):
        self.model, self.model_id, self.device, self.dtype = model, model_id, device, dtype
        self.compiled, self.notes = compiled, notes
        self.family, self.own_sampler = FAMILIES["native"], OWN_SAMPLER
        self.runtime = {"offload": "none", "vae_tiling": False, "cache": "none", "cache_threshold": None}

    @classmethod
    def load(cls, model_ref: str, *, device: str, dtype: str, compile: bool | None, **options) -> NativeBackend:
        """`options` (offload and the like) were checked against the family record: it runs whole on one device."""
        device = pick_device(device)
        dtype = pick_dtype(dtype, device)
        notes = []
        path = checkpoint_path(model_ref)
        if path is None:
            spec = get_spec(model_ref)
            path = packaged_weights(spec.weights)
            if not path.is_file():
                notes.append(f"{model_ref} has no trained weights in this install: "
                             "rendering with seeded random weights")
                model = randomize(build_model(spec.params, "cpu"), UNTRAINED_SEED)
                model = model.to(device=device, dtype=torch_dtype(dtype)).eval().requires_grad_(False)
                return cls._finish(model, model_ref, device, dtype, compile, notes)
        model, _ = load_native(path, device, torch_dtype(dtype))
        return cls._finish(model, model_ref, device, dtype, compile, notes)

    @classmethod
    def _finish(cls, model, model_id, device, dtype, compile, notes) -> NativeBackend:
        compiled = device == "cuda" if compile is None else compile
        if compiled:  # regional compilation: the repeated blocks, not the whole graph
            for block in model.dit.blocks:
                block.compile(dynamic=False)
        return cls(model, model_id, device, dtype, compiled, notes)

    def frame_count(self, frames: int) -> int:
        return self.model.frame_count(frames)

    def fit_size(self, width: int, height: int, image: str | None = None) -> tuple[int, int, str | None]:
        m = OUTPUT_MULTIPLE
        for name, value in (("width", width), ("height", height)):
            if value % m:
                lower, upper = value // m * m, (value // m + 1) * m
                raise UsageError(f"{name} {value} is not a multiple of {m}, which {self.model_id} needs; "
                                 f"try {lower or upper} or {upper}")
        return width, height, None

    def prompt_notes(self, prompt: str) -> list[str]:
        """Native checkpoints are trained on the tiny world: name the words it never saw."""
        from ..data.world import unknown_words

        unknown = unknown_words(prompt)
        if not unknown:
            return []
        name = self.model_id if self.model_id in MODELS else "this model"
        words = ", ".join(f"'{w}'" for w in unknown)
        return [f"{name} knows shapes, colours and motions; for {words} try an open model: sora models list"]

    def job_notes(self, job: Job) -> list[str]:
        return []

    def check_task(self, image: str | None) -> None:
        if image:
            raise UsageError(f"{self.model_id} renders from text only; for --image use an image-to-video model "
                             "(sora models list, tasks i2v)")

    def render(self, job: Job, progress=None, verb=None):
        """`verb` (verbs.py): extend, remix, storyboard, loop, keyframes; None or empty renders from the prompt."""
        from ..native_verbs import guide_for

        device, dtype = torch.device(self.device), torch_dtype(self.dtype)
        guide = guide_for(self.model, verb, job, device, dtype) if verb is not None else None
        return generate(self.model, job, device, dtype, progress, guide)
