"""`sora info` and `sora models list`: what this install has and can do."""

from __future__ import annotations

from .presets import shipped_dir, sora_home, user_dir
from .recipe import package_versions
from .registry import MODELS
from .weights import packaged_weights


def model_rows() -> list[dict]:
    """One row per registry model, with its preset's recipe and where its weights stand on this machine."""
    from .presets import resolve_preset
    from .weights import hub_folder

    rows = []
    for spec in MODELS.values():
        preset = resolve_preset(spec.preset)
        if spec.weights:
            location = packaged_weights(spec.weights)
            state = "packaged" if location.is_file() else "missing"
        else:
            location = hub_folder(spec.repo, spec.revision, spec.hub_marker)
            state = "pulled" if location else "not pulled"
        rows.append({
            "id": spec.id, "family": spec.family, "description": spec.description, "parameters": spec.parameters,
            "repo": spec.repo, "native_size": f"{spec.native_size[0]}x{spec.native_size[1]}",
            "frame_rule": spec.frame_rule, "size_multiple": spec.size_multiple, "fps": spec.fps,
            "tasks": list(spec.tasks), "sound": spec.record.audio is not None, "vram_gb": spec.vram_gb,
            "published_speed": spec.published_speed,
            "steps": preset.steps, "guidance": preset.guidance, "shift": preset.shift,
            "negative_prompt": preset.negative, "weights": str(location) if location else None,
            "weights_state": state,
        })
    return rows


def encoders() -> dict[str, bool]:
    """Each container's video codec, and its audio codec for models with sound (.gif has none): available?"""
    import av

    from .video import AUDIO_FORMATS, FORMATS

    found = {}
    for ext, (_, codec, _, _) in FORMATS.items():
        for label, name in ((f"{ext} ({codec})", codec), (f"{ext} sound", AUDIO_FORMATS.get(ext, (None,))[0])):
            if name is None:
                continue
            try:
                av.codec.Codec(name, "w")
                found[label if name == codec else f"{label} ({name})"] = True
            except (av.error.FFmpegError, ValueError):
                found[label if name == codec else f"{label} ({name})"] = False
    return found


def system_info() -> dict:
    import torch

    from .device import available_devices, pick_dtype

    devices = available_devices()
    cuda = [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())] if "cuda" in devices else []
    return {
        "versions": package_versions(),
        "devices": devices,
        "cuda_devices": cuda,
        "default_device": devices[0],
        "default_dtype": pick_dtype("auto", devices[0]),
        "cpu_threads": torch.get_num_threads(),
        "encoders": encoders(),
        "weights": {spec.id: str(packaged_weights(spec.weights)) for spec in MODELS.values() if spec.weights},
        "sora_home": str(sora_home()),
        "presets": {"shipped": str(shipped_dir()), "user": str(user_dir())},
    }
