"""LoRAs on a loaded diffusers pipeline: each file loaded once (through the pipeline's own LoRA loader, PEFT
underneath), checked to fit before any frame renders, then set per job at its scales.

A LoRA fits when every layer it adapts exists in the transformer it goes into (after diffusers converts its
format: original, Kohya, Musubi...). One that does not is refused in one line naming what it was made for.
"""

from __future__ import annotations

import re

from ..errors import UsageError
from ..lora import Lora, lora_file, parse_lora

EXPERT_COMPONENTS = {"both": ("transformer", "transformer_2"), "high": ("transformer",), "low": ("transformer_2",)}
LAYER = re.compile(r"^(?:transformer(?:_2)?\.)?(.+?)\.(?:lora_[AB]|lora_down|lora_up|lora\.(?:down|up)|alpha)\b")
# what a LoRA's keys say about the model it was made for, when it fits nothing here (first match wins)
MADE_FOR = (
    (re.compile(r"(^|\.)blocks\.\d+\.(attn1|attn2|self_attn|cross_attn|ffn)\."), "Wan"),
    (re.compile(r"(^|\.)(double_blocks|single_blocks)\.\d+\.|single_transformer_blocks\.\d+\."),
     "Flux or HunyuanVideo"),
    (re.compile(r"lora_unet_|(^|\.)(down_blocks|up_blocks|mid_block)\."), "Stable Diffusion (a UNet)"),
    (re.compile(r"(^|\.)transformer_blocks\.\d+\.attn1\."), "LTX-Video, CogVideoX or Mochi"),
)


class LoraSet:
    """The LoRAs loaded into one pipeline's transformer(s), by file and expert."""

    def __init__(self, pipe, model_id: str):
        self.pipe, self.model_id = pipe, model_id
        self.loaded: dict[tuple[str, str], str] = {}  # (file, component) -> adapter name

    def components(self, lora: Lora) -> tuple[str, ...]:
        present = tuple(c for c in EXPERT_COMPONENTS[lora.expert] if getattr(self.pipe, c, None) is not None)
        if lora.expert != "both" and getattr(self.pipe, "transformer_2", None) is None:
            raise UsageError(f"LoRA {lora.ref}:{lora.scale:g}:{lora.expert}: {self.model_id} has one transformer; "
                             "high and low name the experts of a two-expert model (Wan 2.2 A14B)")
        return present

    def prepare(self, specs: tuple[str, ...]) -> None:
        """Loads every LoRA of a job that is not loaded yet (a misfit is refused before any frame renders)."""
        if specs and not hasattr(self.pipe, "load_lora_weights"):
            raise UsageError(f"{self.model_id}: its pipeline ({type(self.pipe).__name__}) loads no LoRAs")
        for lora, path, component in self._placements(specs):
            if (path, component) not in self.loaded:
                self._load(lora, path, component)

    def _placements(self, specs: tuple[str, ...]):
        """(LoRA, its resolved file, a transformer it goes into) for each of the job's LoRAs and experts."""
        for spec in specs:
            lora = parse_lora(spec)
            path = str(lora_file(lora).resolve())
            for component in self.components(lora):
                yield lora, path, component

    def _load(self, lora: Lora, path: str, component: str) -> None:
        model = getattr(self.pipe, component)
        try:
            state = self.pipe.lora_state_dict(path)
        except Exception as exc:  # noqa: BLE001 - every converter raises its own kind on a foreign layout
            raise UsageError(f"LoRA {lora.ref} does not fit {self.model_id}: {self.made_for(path)} "
                             f"({type(exc).__name__} reading it)") from None
        state = state[0] if isinstance(state, tuple) else state
        layers = {m[1] for key in state if (m := LAYER.match(key))}
        modules = {name for name, _ in model.named_modules()}
        missing = sorted(layers - modules)
        if not layers or missing:
            raise UsageError(f"LoRA {lora.ref} does not fit {self.model_id}: {self.made_for(path)} "
                             f"({len(missing) or 'no'} of its {len(layers)} layers found in no layer here"
                             + (f", e.g. {missing[0]})" if missing else ")"))
        name = f"lora{len(self.loaded)}"
        extra = {"load_into_transformer_2": True} if component == "transformer_2" else {}
        self.pipe.load_lora_weights(path, adapter_name=name, **extra)
        self.loaded[(path, component)] = name

    def made_for(self, path: str) -> str:
        """What the file's metadata or key names say it was made for."""
        from safetensors import safe_open

        try:
            with safe_open(path, "np") as f:
                keys, meta = list(f.keys()), f.metadata() or {}
        except Exception:  # noqa: BLE001 - a damaged header
            return "it is not a readable safetensors file"
        for field in ("modelspec.architecture", "ss_base_model_version", "base_model"):
            if meta.get(field):
                return f"made for {meta[field]}"
        text = "\n".join(keys)
        for pattern, title in MADE_FOR:
            if pattern.search(text):
                return f"made for {title}"
        return "made for another model"

    def apply(self, specs: tuple[str, ...]) -> None:
        """The job's LoRAs at their scales on each transformer; none of them active for a job without."""
        wanted: dict[str, tuple[list, list]] = {}
        for lora, path, component in self._placements(specs):
            names, weights = wanted.setdefault(component, ([], []))
            names.append(self.loaded[(path, component)])
            weights.append(lora.scale)
        for component in {c for _, c in self.loaded}:
            model = getattr(self.pipe, component)
            if component in wanted:
                model.enable_lora()
                model.set_adapters(*wanted[component])
            else:
                model.disable_lora()
