"""`sora info` and `sora models list`: what this install has and can do."""

from __future__ import annotations

from .presets import shipped_dir, sora_home, user_dir
from .recipe import package_versions
from .registry import MODELS
from .weights import packaged_weights


def model_rows() -> list[dict]:
    from .models.native import count_parameters

    rows = []
    for spec in MODELS.values():
        rows.append({
            "id": spec.id, "family": spec.family, "parameters": count_parameters(spec.params),
            "native_size": f"{spec.native_size[0]}x{spec.native_size[1]}", "frame_rule": spec.frame_rule,
            "size_multiple": spec.size_multiple, "fps": spec.fps, "tasks": list(spec.tasks),
            "weights": str(packaged_weights(spec.weights)),
            "weights_present": packaged_weights(spec.weights).is_file(),
        })
    return rows


def encoders() -> dict[str, bool]:
    import av

    from .video import FORMATS

    found = {}
    for ext, (_, codec, _, _) in FORMATS.items():
        try:
            av.codec.Codec(codec, "w")
            found[f"{ext} ({codec})"] = True
        except (av.error.FFmpegError, ValueError):
            found[f"{ext} ({codec})"] = False
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
        "weights": {spec.id: str(packaged_weights(spec.weights)) for spec in MODELS.values()},
        "sora_home": str(sora_home()),
        "presets": {"shipped": str(shipped_dir()), "user": str(user_dir())},
    }
