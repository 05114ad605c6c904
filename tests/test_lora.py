"""--lora on a tiny Wan checkpoint: sora's render equals the diffusers pipeline with the same LoRAs loaded at the same
scales; LoRAs are made here with PEFT, saved as diffusers saves them."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from sora_cli.video import read_frames
from tests import tiny_checkpoints

ARGS = ("--width", 32, "--height", 32, "--frames", 9, "--steps", 3, "--seed", 4, "-q")
PROMPT = "a cat surfing"


def make_lora(folder, out_dir, seed: int, targets=("to_q", "to_k", "to_v", "to_out.0", "proj_out"), rank: int = 4):
    """A LoRA with random (non-zero) A and B on the attention and output projection of the folder's transformer."""
    import diffusers
    from peft import LoraConfig, get_peft_model_state_dict

    name = json.loads((folder / "model_index.json").read_text())["_class_name"]
    pipe = getattr(diffusers, name).from_pretrained(folder)
    torch.manual_seed(seed)
    pipe.transformer.add_adapter(LoraConfig(r=rank, lora_alpha=rank, target_modules=list(targets),
                                            init_lora_weights=False))
    state = {k: v * 12 for k, v in get_peft_model_state_dict(pipe.transformer).items()}  # strong enough to see
    getattr(diffusers, name).save_lora_weights(out_dir, transformer_lora_layers=state)
    return out_dir / "pytorch_lora_weights.safetensors"


@pytest.fixture(scope="module")
def wan(tmp_path_factory):
    root = tmp_path_factory.mktemp("lora")
    folder = tiny_checkpoints.wan(root / "wan")
    return folder, make_lora(folder, root / "a", 1), make_lora(folder, root / "b", 2, targets=("to_q", "to_v"))


def pipeline_frames(folder, recipe: dict, loras=()) -> np.ndarray:
    """The diffusers pipeline called directly with the LoRAs loaded and set as its documentation shows."""
    import diffusers

    pipe = diffusers.WanPipeline.from_pretrained(folder)
    for i, (path, _) in enumerate(loras):
        pipe.load_lora_weights(str(path), adapter_name=f"l{i}")
    if loras:
        pipe.set_adapters([f"l{i}" for i in range(len(loras))], [scale for _, scale in loras])
    video = pipe(prompt=recipe["prompt"], negative_prompt=recipe["negative_prompt"], height=recipe["height"],
                 width=recipe["width"], num_frames=recipe["generated_frames"], num_inference_steps=recipe["steps"],
                 guidance_scale=recipe["guidance"], generator=torch.Generator("cpu").manual_seed(recipe["seed"]),
                 output_type="np").frames[0][: recipe["frames"]]
    return video * 255


def render(cli, folder, out, *loras):
    args = [a for spec in loras for a in ("--lora", spec)]
    code, _, stderr = cli("generate", PROMPT, "--model", folder, *ARGS, *args, "-o", out)
    assert code == 0, stderr
    return read_frames(out).astype(np.float64), json.loads(out.with_suffix(".json").read_text())


def test_a_lora_matches_the_pipeline_and_is_recorded(cli, wan, tmp_path):
    folder, a, _ = wan
    frames, recipe = render(cli, folder, tmp_path / "a.mkv", f"{a}:0.7")
    assert np.abs(frames - pipeline_frames(folder, recipe, [(a, 0.7)])).mean() <= 1.0
    plain, _ = render(cli, folder, tmp_path / "plain.mkv")
    assert np.abs(frames - plain).mean() > 2.0  # the LoRA changed the video
    from sora_cli.conditions import sha256

    assert recipe["loras"] == [{"ref": str(a), "file": str(a.resolve()), "sha256": sha256(a), "scale": 0.7,
                                "expert": "both"}]
    again = tmp_path / "again.mkv"
    from_code, _, stderr = cli("generate", "--from", tmp_path / "a.json", "-o", again, "-q")
    assert from_code == 0, stderr
    assert np.array_equal(read_frames(again), frames.astype(np.uint8))


def test_scale_zero_is_no_lora_and_two_compose_as_the_pipeline_composes(cli, wan, tmp_path):
    folder, a, b = wan
    zero, _ = render(cli, folder, tmp_path / "zero.mkv", f"{a}:0")
    plain, _ = render(cli, folder, tmp_path / "plain.mkv")
    assert np.array_equal(zero, plain)
    both, recipe = render(cli, folder, tmp_path / "both.mkv", f"{a}:0.6", f"{b}:-0.8")
    assert np.abs(both - pipeline_frames(folder, recipe, [(a, 0.6), (b, -0.8)])).mean() <= 1.0
    assert [(r["scale"], r["file"]) for r in recipe["loras"]] == [(0.6, str(a.resolve())), (-0.8, str(b.resolve()))]


def test_a_batch_row_sets_its_own_loras(cli, wan, tmp_path):
    folder, a, _ = wan
    rows = tmp_path / "rows.jsonl"
    rows.write_text(json.dumps({"prompt": PROMPT, "seed": 4}) + "\n"
                    + json.dumps({"prompt": PROMPT, "seed": 4, "loras": [f"{a}:0.7"]}) + "\n")
    code, _, stderr = cli("batch", rows, "--out", tmp_path / "out", "--model", folder, "--width", 32, "--height", 32,
                          "--frames", 9, "--steps", 3, "--format", "mkv", "-q")
    assert code == 0, stderr
    plain, with_lora = (read_frames(p) for p in sorted((tmp_path / "out").glob("*.mkv")))
    single, _ = render(cli, folder, tmp_path / "single.mkv", f"{a}:0.7")
    assert np.array_equal(with_lora, single.astype(np.uint8)) and not np.array_equal(plain, with_lora)


def test_loras_that_cannot_apply_are_one_line_exit_2_before_rendering(cli, wan, tmp_path):
    folder, a, _ = wan
    ltx = tiny_checkpoints.ltx(tmp_path / "ltx")
    cases = [
        (("--model", ltx, "--lora", a), "does not fit", "made for Wan"),
        (("--model", folder, "--lora", tmp_path / "missing.safetensors"), "LoRA file not found", None),
        (("--model", folder, "--lora", tmp_path / "x.bin"), "only .safetensors files", None),
        (("--model", folder, "--lora", f"{a}:abc:high"), "scale", None),
        (("--model", folder, "--lora", f"{a}:1:high"), "has one transformer", None),
        (("--lora", a), "--lora does not apply to native models", None),
    ]
    damaged = tmp_path / "damaged.safetensors"
    damaged.write_bytes(b"\x08\x00\x00\x00\x00\x00\x00\x00{not json")
    cases.append((("--model", folder, "--lora", damaged), "does not fit", "not a readable safetensors"))
    for args, message, detail in cases:
        out = tmp_path / "x.mp4"
        code, _, stderr = cli("generate", PROMPT, *args, "--width", 32, "--height", 32, "--frames", 9, "--steps", 1,
                              "-o", out)
        assert code == 2 and message in stderr and len(stderr.strip().splitlines()) == 1, (args, stderr)
        assert detail is None or detail in stderr, stderr
        assert not out.exists()


def test_wan_2_2_loras_go_into_both_experts_or_the_one_named(cli, tmp_path):
    import diffusers

    folder = tiny_checkpoints.wan(tmp_path / "wan22", two_experts=True)
    a = make_lora(folder, tmp_path / "a", 3)
    runs = {}
    for expert in ("both", "high", "low"):
        frames, recipe = render(cli, folder, tmp_path / f"{expert}.mkv", f"{a}:0.8:{expert}")
        runs[expert] = frames
        pipe = diffusers.WanPipeline.from_pretrained(folder)
        names = []
        if expert in ("both", "high"):
            pipe.load_lora_weights(str(a), adapter_name="high")
            names.append("high")
        if expert in ("both", "low"):
            pipe.load_lora_weights(str(a), adapter_name="low", load_into_transformer_2=True)
            names.append("low")
        for component, name in (("transformer", "high"), ("transformer_2", "low")):
            if name in names:
                getattr(pipe, component).set_adapters([name], [0.8])
        reference = pipe(prompt=PROMPT, negative_prompt="", height=32, width=32, num_frames=recipe["generated_frames"],
                         num_inference_steps=3, guidance_scale=recipe["guidance"],
                         generator=torch.Generator("cpu").manual_seed(4), output_type="np").frames[0][:9] * 255
        assert np.abs(frames - reference).mean() <= 1.0, expert
    assert not np.array_equal(runs["high"], runs["low"])


def test_a_hub_lora_comes_from_the_cache_and_pull_names_it(cli, wan, tmp_path, monkeypatch):
    from tests.conftest import in_hub_cache

    folder, a, _ = wan
    in_hub_cache(a.parent, "someone/cat-style", tmp_path, monkeypatch)
    by_file, _ = render(cli, folder, tmp_path / "file.mkv", f"{a}:0.7")
    by_id, recipe = render(cli, folder, tmp_path / "hub.mkv", "someone/cat-style:0.7")
    assert np.array_equal(by_file, by_id) and recipe["loras"][0]["ref"] == "someone/cat-style"
    code, _, stderr = cli("generate", PROMPT, "--model", folder, *ARGS, "--lora", "someone/other", "-o",
                          tmp_path / "x.mp4")
    assert code == 2 and "sora models pull someone/other" in stderr
    monkeypatch.setenv("HF_ENDPOINT", "http://127.0.0.1:9")
    monkeypatch.delenv("HF_HUB_OFFLINE")
    code, _, stderr = cli("models", "pull", "someone/other")
    assert code == 2 and "cannot download someone/other" in stderr and len(stderr.strip().splitlines()) == 1
