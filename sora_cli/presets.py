"""Presets: short YAML files parsed into a frozen dataclass.

Precedence, lowest first: the settings table's defaults (settings.py) < shipped `default` < user `default` <
shipped preset < user preset (same name, in $SORA_HOME/presets) < prompt-file row < CLI flag. A preset says only
what differs from the table.
"""

from __future__ import annotations

import os
from dataclasses import field, make_dataclass, replace
from importlib.util import find_spec
from pathlib import Path

import yaml

from .errors import UsageError
from .settings import SETTINGS, check_setting

META_KEYS = ("description",)


def _with_overrides(self, overrides: dict):
    return replace(self, **overrides)


# The merged settings of one render: a name, a description, and every setting of the table (settings.py).
Preset = make_dataclass(
    "Preset", [("name", str), ("description", str),
               *[(n, s.kind, field(default=s.default)) for n, s in SETTINGS.items()]],
    frozen=True, namespace={"__module__": __name__, "with_overrides": _with_overrides},
)


def sora_home() -> Path:
    return Path(os.environ.get("SORA_HOME") or "~/.config/sora").expanduser()


def shipped_dir() -> Path:
    return Path(find_spec("sora_cli.shipped_presets").submodule_search_locations[0])


def user_dir() -> Path:
    return sora_home() / "presets"


def load_layer(path: Path) -> dict:
    """One preset file -> {setting: value}, every key and value checked; errors name the file."""
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise UsageError(f"cannot read preset {path}: {exc.strerror}") from None
    except UnicodeDecodeError as exc:
        raise UsageError(f"{path}: not UTF-8 text (byte {exc.start})") from None
    except yaml.YAMLError as exc:
        line = getattr(getattr(exc, "problem_mark", None), "line", None)
        where = f"{path}:{line + 1}" if line is not None else str(path)
        problem = str(getattr(exc, "problem", None) or exc).strip().splitlines() or ["unreadable"]
        raise UsageError(f"{where}: not valid YAML ({problem[0]})") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise UsageError(f"{path}: a preset must be a mapping of settings, got {type(data).__name__}")
    layer = {}
    for key, value in data.items():
        if key in META_KEYS:
            layer[key] = str(value)
            continue
        if key not in SETTINGS:
            valid = ", ".join([*SETTINGS, *META_KEYS])
            raise UsageError(f"{path}: unknown key '{key}'; valid keys: {valid}")
        try:
            layer[key] = check_setting(key, value)
        except ValueError as exc:
            raise UsageError(f"{path}: {exc}") from None
    return layer


def _named_files(name: str) -> list[Path]:
    return [p for p in (shipped_dir() / f"{name}.yaml", user_dir() / f"{name}.yaml") if p.is_file()]


def preset_names() -> dict[str, str]:
    """Every preset name -> where it comes from (shipped, user, or shipped+user)."""
    names: dict[str, list[str]] = {}
    for origin, folder in (("shipped", shipped_dir()), ("user", user_dir())):
        if folder.is_dir():
            for path in sorted(folder.glob("*.yaml")):
                names.setdefault(path.stem, []).append(origin)
    return {name: "+".join(origins) for name, origins in sorted(names.items())}


def is_preset_file(ref: str) -> bool:
    return ref.endswith((".yaml", ".yml")) or os.sep in ref


def resolve_preset(ref: str = "default") -> Preset:
    """A preset name or a YAML file -> the fully resolved Preset."""
    layers = [load_layer(p) for p in _named_files("default")]
    if is_preset_file(ref):
        path = Path(ref).expanduser()
        if not path.is_file():
            raise UsageError(f"preset file not found: {path}")
        layers.append(load_layer(path))
        name = path.stem
    else:
        if ref != "default":
            files = _named_files(ref)
            if not files:
                raise UsageError(f"unknown preset '{ref}'; valid: {', '.join(preset_names())}, or a .yaml file")
            layers.extend(load_layer(p) for p in files)
        name = ref
    merged: dict = {"name": name, "description": ""}
    for layer in layers:
        merged.update(layer)
    return Preset(**merged)
