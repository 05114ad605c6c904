"""--quantize on a Wan checkpoint with layers wide enough for weight-only int8 to pay: the weight memory
measured on the loaded transformer, the frames against the unquantised render."""

from __future__ import annotations

import json

import numpy as np
import pytest

from sora_cli.video import read_frames
from tests import tiny_checkpoints

WIDE = dict(num_attention_heads=4, attention_head_dim=32, ffn_dim=512, text_dim=32, num_layers=2)
ARGS = ("--width", 32, "--height", 32, "--frames", 9, "--steps", 3, "--seed", 5, "-q")
MEAN_DIFFERENCE = {"int8": 1.0, "fp8": 2.0}  # the stated bound, /255, against the unquantised frames


@pytest.fixture(scope="module")
def wide_wan(tmp_path_factory):
    return tiny_checkpoints.wan(tmp_path_factory.mktemp("quant") / "wan", transformer_overrides=WIDE)


@pytest.mark.parametrize("dtype", ["float32", "bfloat16"])
def test_int8_weights_take_at_most_055_of_the_unquantised(wide_wan, dtype):
    from sora_cli.backends.open_models import DiffusersBackend
    from sora_cli.backends.quantize import weight_bytes

    plain = DiffusersBackend.load(str(wide_wan), device="cpu", dtype=dtype, compile=False)
    int8 = DiffusersBackend.load(str(wide_wan), device="cpu", dtype=dtype, compile=False, quantize="int8")
    ratio = weight_bytes(int8.pipe.transformer) / weight_bytes(plain.pipe.transformer)
    assert ratio <= 0.55, ratio
    assert int8.weights_gb < plain.weights_gb  # the estimate the memory checks and auto-offload use


@pytest.mark.parametrize("quantize", ["int8", "fp8"])
def test_quantised_frames_stay_near_the_unquantised(cli, wide_wan, tmp_path, quantize):
    renders = {}
    for name in ("none", quantize):
        out = tmp_path / f"{name}.mkv"
        code, _, stderr = cli("generate", "a cat surfing", "--model", wide_wan, *ARGS, "--quantize", name, "-o", out)
        assert code == 0, stderr
        renders[name] = read_frames(out).astype(np.float64)
    difference = np.abs(renders[quantize] - renders["none"]).mean()
    assert 0 < difference <= MEAN_DIFFERENCE[quantize], difference
    assert json.loads((tmp_path / f"{quantize}.json").read_text())["quantize"] == quantize


def test_what_cannot_be_quantised_here_is_one_line_exit_2(cli, wide_wan, tmp_path):
    bad_gguf = tmp_path / "broken.gguf"
    bad_gguf.write_bytes(b"GGUF\x03\x00\x00\x00not really")
    cases = [
        (("--model", wide_wan, "--quantize", "nf4"), "runs on CUDA only"),
        (("--model", wide_wan, "--quantize", "int4"), "unknown quantize 'int4'"),
        (("--quantize", "int8"), "--quantize does not apply to native models"),
        (("--model", wide_wan, "--transformer", tmp_path / "missing.gguf"), "not found"),
        (("--model", wide_wan, "--transformer", tmp_path / "x.safetensors"), "takes a .gguf file"),
        (("--model", wide_wan, "--transformer", bad_gguf), "is not a WanTransformer3DModel GGUF file"),
        (("--model", bad_gguf), "holds a transformer alone"),
    ]
    for args, message in cases:
        out = tmp_path / "x.mp4"
        code, _, stderr = cli("generate", "a cat", *args, *ARGS[:6], "-o", out)
        assert code == 2 and message in stderr and len(stderr.strip().splitlines()) == 1, (args, stderr)
        assert not out.exists()


def test_a_gguf_transformer_renders_as_its_dequantised_weights(cli, wide_wan, tmp_path):
    """A Q8_0 GGUF written here (Wan's original key names, as shared GGUFs are) through --transformer equals a
    checkpoint holding the same weights dequantised; the memory estimate counts the file, not the folder's."""
    import shutil

    import diffusers

    from sora_cli.backends.open_models import DiffusersBackend
    from tests.tiny_checkpoints.gguf_wan import write_gguf

    transformer = diffusers.WanTransformer3DModel.from_pretrained(wide_wan, subfolder="transformer")
    held = write_gguf(transformer, tmp_path / "wan-q8_0.gguf")
    dequantised = tmp_path / "dequantised"
    shutil.copytree(wide_wan, dequantised)
    transformer.load_state_dict(held)
    transformer.save_pretrained(dequantised / "transformer")
    renders = {}
    for name, args in (("gguf", ("--model", wide_wan, "--transformer", tmp_path / "wan-q8_0.gguf")),
                       ("dequantised", ("--model", dequantised))):
        out = tmp_path / f"{name}.mkv"
        code, _, stderr = cli("generate", "a cat surfing", *args, *ARGS, "-o", out)
        assert code == 0 and not stderr, stderr
        renders[name] = read_frames(out).astype(np.float64)
    assert np.abs(renders["gguf"] - renders["dequantised"]).mean() <= 1.0
    recipe = json.loads((tmp_path / "gguf.json").read_text())
    assert recipe["transformer"] == str(tmp_path / "wan-q8_0.gguf")
    plain = DiffusersBackend.load(str(wide_wan), device="cpu", dtype="float32", compile=False)
    gguf = DiffusersBackend.load(str(wide_wan), device="cpu", dtype="float32", compile=False,
                                 transformer=str(tmp_path / "wan-q8_0.gguf"))
    assert gguf.weights_gb < plain.weights_gb
