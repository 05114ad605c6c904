"""Presets: every shipped one loads, unknown keys are refused, layers apply in order."""

import pytest

from sora_cli.errors import UsageError
from sora_cli.presets import preset_names, resolve_preset, shipped_dir


def test_every_shipped_preset_loads_completely():
    names = [p.stem for p in shipped_dir().glob("*.yaml")]
    assert {"default", "smoke"} <= set(names)
    for name in names:
        preset = resolve_preset(name)
        assert preset.name == name and preset.description


def test_smoke_is_small_and_fast():
    smoke = resolve_preset("smoke")
    assert smoke.width * smoke.height <= 64 * 64 and smoke.steps <= 10 and smoke.frames <= 32


def test_unknown_key_is_refused_naming_the_valid_ones(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("width: 64\nstepz: 3\n")
    with pytest.raises(UsageError, match=r"bad.yaml: unknown key 'stepz'; valid keys: model, width"):
        resolve_preset(str(path))


@pytest.mark.parametrize("body, message", [
    ("width: wide\n", "width must be int"),
    ("frames: 0\n", "frames must be between 1"),
    ("sampler: magic\n", "unknown sampler 'magic'; valid: euler, heun, dpmpp_2m"),
    ("- a list\n", "must be a mapping"),
    ("width: [1\n", "not valid YAML"),
])
def test_bad_values_name_the_file_and_the_problem(tmp_path, body, message):
    path = tmp_path / "p.yaml"
    path.write_text(body)
    with pytest.raises(UsageError, match=message):
        resolve_preset(str(path))


def test_user_presets_layer_over_shipped_ones(sora_home):
    (sora_home / "presets").mkdir()
    (sora_home / "presets" / "smoke.yaml").write_text("steps: 2\n")
    (sora_home / "presets" / "mine.yaml").write_text("description: mine\nfps: 12\n")
    smoke = resolve_preset("smoke")
    assert smoke.steps == 2 and smoke.width == 64  # user value over shipped, the rest kept
    assert resolve_preset("mine").fps == 12 and resolve_preset("mine").width == resolve_preset("default").width
    names = preset_names()
    assert (names["default"], names["mine"], names["smoke"], names["mochi-1"]) == ("shipped", "user", "shipped+user",
                                                                                "shipped")


def test_unknown_preset_names_the_valid_ones():
    with pytest.raises(UsageError, match="unknown preset 'nope'; valid: cogvideox-2b, .*default, .*smoke"):
        resolve_preset("nope")
