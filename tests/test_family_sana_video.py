"""SANA-Video through sora: text- and image-to-video on one tiny checkpoint in the hub's layout, each equal to the
diffusers pipeline called as its docs show (`frames=`, no resolution binning, the default prompt instruction)."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from sora_cli.families import FAMILIES
from sora_cli.video import read_frames

from .tiny_checkpoints import sana_video

SAMPLERS = {"euler": "FlowMatchEulerDiscreteScheduler", "unipc": "UniPCMultistepScheduler",
            "dpmpp_2m": "DPMSolverMultistepScheduler"}


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    return sana_video.sana_video(tmp_path_factory.mktemp("sana-video") / "sana")



def reference(folder, recipe: dict) -> np.ndarray:
    """SanaVideoPipeline (SanaImageToVideoPipeline with an image) as diffusers' docs call it, at the size asked
    (use_resolution_binning=False), with the recipe sora recorded; 0-255 floats."""
    import diffusers
    from PIL import Image

    extra = {"image": Image.open(recipe["image"]).convert("RGB")} if recipe.get("image") else {}
    pipeline = diffusers.SanaImageToVideoPipeline if extra else diffusers.SanaVideoPipeline
    pipe = pipeline.from_pretrained(folder)
    pipe.set_progress_bar_config(disable=True)
    video = pipe(prompt=recipe["prompt"], negative_prompt=recipe["negative_prompt"], height=recipe["height"],
                 width=recipe["width"], frames=recipe["generated_frames"], guidance_scale=recipe["guidance"],
                 num_inference_steps=recipe["steps"], generator=torch.Generator("cpu").manual_seed(recipe["seed"]),
                 use_resolution_binning=False, output_type="np", **extra).frames[0]
    return video[: recipe["frames"]] * 255


def difference(out, expected) -> float:
    return float(np.abs(read_frames(out).astype(np.float64) - expected).mean())


@pytest.mark.parametrize("task", ["t2v", "i2v"])
def test_text_and_image_to_video_match_the_pipeline_trimmed_to_the_frames_asked(cli, folder, first_frame, tmp_path,
                                                                                task):
    out = tmp_path / "x.mkv"
    image = ("--image", first_frame) if task == "i2v" else ()
    code, _, stderr = cli("generate", "a cat surfing a wave at sunset motion score: 30.", "--model", folder, *image,
                          "--width", 64, "--height", 32, "--frames", 7, "--steps", 2, "--guidance", 6.0,
                          "--negative", "blurry, jittery", "--seed", 5, "-o", out, "-q")
    assert code == 0, stderr
    recipe = json.loads(out.with_suffix(".json").read_text())
    assert recipe["frames"] == 7 and recipe["generated_frames"] == 9  # the pipeline does not round: sora asks 4k+1
    assert recipe["scheduler"] == "DPMSolverMultistepScheduler" and recipe["scheduler_shift"] == 8.0
    assert recipe["pipeline_arguments"] == {"use_resolution_binning": False}
    assert read_frames(out).shape == (7, 32, 64, 3)
    assert difference(out, reference(folder, recipe)) <= 1.0


@pytest.mark.parametrize("sampler", [s for s in FAMILIES["sana-video"].options["sampler"] if s != "auto"])
def test_each_declared_sampler_runs_and_is_recorded(cli, folder, tmp_path, sampler):
    out = tmp_path / "x.mkv"
    code, _, stderr = cli("generate", "a cat", "--model", folder, "--sampler", sampler, "--width", 32, "--height",
                          32, "--frames", 1, "--steps", 2, "-o", out, "-q")
    assert code == 0, stderr
    assert json.loads(out.with_suffix(".json").read_text())["scheduler"] == SAMPLERS[sampler]


def test_a_sampler_or_cache_it_does_not_take_is_one_line_exit_2(cli, folder, tmp_path):
    code, _, stderr = cli("generate", "a cat", "--model", folder, "--sampler", "heun", "-o", tmp_path / "x.mkv")
    assert code == 2 and "--sampler heun does not work with sana-video models" in stderr
    assert len(stderr.strip().splitlines()) == 1
    code, _, stderr = cli("generate", "a cat", "--model", folder, "--cache", "pab", "-o", tmp_path / "x.mkv")
    assert code == 2 and "--cache pab does not work with sana-video models; valid for them: none" in stderr
    assert list(tmp_path.iterdir()) == []


def test_a_size_off_the_multiple_snaps_with_a_notice(cli, folder, tmp_path):
    out = tmp_path / "x.mkv"
    code, _, stderr = cli("generate", "a cat", "--model", folder, "--width", 40, "--height", 56, "--frames", 1,
                          "--steps", 1, "-o", out)
    assert code == 0 and "needs sizes in multiples of 32: rendering 32x64 instead of 40x56" in stderr
    assert read_frames(out).shape == (1, 64, 32, 3)


def test_compile_without_repeated_blocks_compiles_the_whole_transformer(folder):
    """Its transformer names no repeated blocks: --compile falls back to compiling it whole (lazily; no crash)."""
    from sora_cli.backends.open_models import DiffusersBackend

    backend = DiffusersBackend.load(str(folder), device="cpu", dtype="float32", compile=True)
    assert not backend.pipe.transformer._repeated_blocks
    assert backend.compiled and backend.pipe.transformer._compiled_call_impl is not None


def test_the_model_is_listed(cli):
    code, stdout, _ = cli("models", "list")
    assert code == 0 and "sana-video-2b-480p" in stdout
