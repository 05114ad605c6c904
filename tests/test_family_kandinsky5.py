"""Kandinsky 5.0 Video on tiny random checkpoints in the hub's layout: sora's lossless output equals the diffusers
pipelines' (text-to-video and image-to-video), every flow sampler runs, image-to-video below its 17-frame minimum
is refused before loading, and its VAE's temporal tiles stream exactly."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from sora_cli.families import FAMILIES, FLOW_SAMPLERS
from sora_cli.video import read_frames

from .tiny_checkpoints.kandinsky5 import kandinsky5, kandinsky5_i2v

PROMPT = "a cat surfing a wave at sunset"
FAMILY = FAMILIES["kandinsky5"]


@pytest.fixture(scope="module")
def folders(tmp_path_factory):
    root = tmp_path_factory.mktemp("kandinsky5")
    return {"t2v": kandinsky5(root / "Lite-sft-5s"), "i2v": kandinsky5_i2v(root / "I2V-5s")}



def generate(cli, folder, out, *extra):
    code, _, stderr = cli("generate", PROMPT, "--model", folder, "--steps", 2, "--seed", 7, "-o", out, *extra)
    assert code == 0, stderr
    return json.loads(out.with_suffix(".json").read_text()), stderr


def reference(folder, recipe: dict) -> np.ndarray:
    """The diffusers pipeline called as its documentation shows, with the recipe sora recorded: frames in 0-255,
    trimmed to the video."""
    import diffusers
    from PIL import Image

    index = json.loads((folder / "model_index.json").read_text())
    pipe = getattr(diffusers, index["_class_name"]).from_pretrained(folder)
    pipe.set_progress_bar_config(disable=True)
    kwargs = dict(prompt=recipe["prompt"], negative_prompt=recipe["negative_prompt"], height=recipe["height"],
                  width=recipe["width"], num_frames=recipe["generated_frames"], num_inference_steps=recipe["steps"],
                  guidance_scale=recipe["guidance"], generator=torch.Generator("cpu").manual_seed(recipe["seed"]),
                  output_type="np")
    if recipe.get("image"):
        kwargs["image"] = Image.open(recipe["image"]).convert("RGB")
    return pipe(**kwargs).frames[0][: recipe["frames"]] * 255


def assert_matches(path, recipe, frames):
    video = read_frames(path).astype(np.float64)
    assert video.shape == (recipe["frames"], recipe["height"], recipe["width"], 3)
    assert np.abs(video - frames).mean() <= 1.0


def test_text_to_video_equals_the_pipeline_with_exact_frames_and_a_snapped_size(cli, folders, tmp_path):
    out = tmp_path / "x.mkv"
    recipe, stderr = generate(cli, folders["t2v"], out, "--width", 40, "--height", 24, "--frames", 10,
                              "--guidance", 4.0, "--negative", "blurry")
    assert "needs sizes in multiples of 16: rendering 48x32 instead of 40x24" in stderr
    # 10 is off its 4k+1 rule: sora asks for 13 (the pipeline itself would round down to 9) and trims
    assert (recipe["width"], recipe["height"], recipe["frames"], recipe["generated_frames"]) == (48, 32, 10, 13)
    assert recipe["scheduler"] == "FlowMatchEulerDiscreteScheduler" and recipe["scheduler_shift"] == 5.0
    assert_matches(out, recipe, reference(folders["t2v"], recipe))


def test_image_to_video_equals_the_pipeline(cli, folders, first_frame, tmp_path):
    out = tmp_path / "x.mkv"
    recipe, _ = generate(cli, folders["i2v"], out, "--image", first_frame, "--width", 32, "--height", 32,
                         "--frames", 17, "--guidance", 4.0)
    assert recipe["image"] == str(first_frame) and recipe["generated_frames"] == 17
    frames = reference(folders["i2v"], recipe)
    assert not np.isnan(frames).any()
    assert_matches(out, recipe, frames)


def test_image_to_video_below_its_minimum_is_refused_before_loading(cli, folders, first_frame, tmp_path,
                                                                   monkeypatch):
    from sora_cli.backends.open_models import DiffusersBackend

    def never(*args, **kwargs):
        raise AssertionError("loaded the model")

    monkeypatch.setattr(DiffusersBackend, "load", never)
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))  # nothing pulled: the registry id is refused first too
    for model in (folders["i2v"], "kandinsky-5-pro-i2v"):
        code, _, stderr = cli("generate", PROMPT, "--model", model, "--image", first_frame, "--frames", 13, "-o",
                              tmp_path / "x.mkv")
        assert code == 2 and "renders image-to-video from 17 frames up" in stderr and "asked for 13" in stderr
        assert len(stderr.strip().splitlines()) == 1 and not (tmp_path / "x.mkv").exists()


@pytest.mark.parametrize("sampler, scheduler", [("euler", "FlowMatchEulerDiscreteScheduler"),
                                                ("unipc", "UniPCMultistepScheduler"),
                                                ("dpmpp_2m", "DPMSolverMultistepScheduler")])
def test_each_declared_sampler_runs_and_is_recorded(cli, folders, tmp_path, sampler, scheduler):
    assert sampler in FAMILY.options["sampler"] and set(FAMILY.options["sampler"]) == set(FLOW_SAMPLERS)
    out = tmp_path / "x.mkv"
    recipe, _ = generate(cli, folders["t2v"], out, "--width", 32, "--height", 32, "--frames", 1, "--sampler",
                         sampler, "--shift", 3.0)
    assert recipe["scheduler"] == scheduler and recipe["scheduler_shift"] == 3.0
    video = read_frames(out)
    assert video.shape == (1, 32, 32, 3) and video.std() > 0


def test_what_it_does_not_take_is_one_line_exit_2_and_no_file(cli, folders, tmp_path):
    """No step cache takes effect on it while guidance runs two passes: it declares none."""
    assert FAMILY.caches == ()
    for option, value, message in (("--sampler", "heun", "--sampler heun does not work with kandinsky5 models"),
                                   ("--cache", "pab", "--cache pab does not work with kandinsky5 models")):
        code, _, stderr = cli("generate", PROMPT, "--model", folders["t2v"], option, value, "-o", tmp_path / "x.mkv")
        assert code == 2 and message in stderr and len(stderr.strip().splitlines()) == 1
    assert not list(tmp_path.iterdir())


def test_the_streamed_decode_equals_the_vaes_whole_decode(folders):
    """HunyuanVideo's VAE (framewise by default): sora's blended temporal tiles give the frames its decode does."""
    from diffusers import AutoencoderKLHunyuanVideo

    from sora_cli.backends.stream_decode import stream_decode

    vae = AutoencoderKLHunyuanVideo.from_pretrained(folders["t2v"] / "vae").eval()
    assert vae.use_framewise_decoding
    latents = torch.randn(1, 16, 7, 2, 2, generator=torch.Generator().manual_seed(0))  # tiles at 0, 3 and 6
    with torch.inference_mode():
        whole = vae.decode(latents).sample
        pieces = list(stream_decode(vae, latents, pieces=FAMILY.decode))
    assert len(pieces) > 1
    torch.testing.assert_close(torch.cat(pieces, dim=2), whole, rtol=1e-4, atol=1e-4)


def test_the_models_are_listed_with_their_recipes(cli):
    code, stdout, _ = cli("models", "list")
    assert code == 0
    rows = {line.split()[0]: line for line in stdout.splitlines()[1:] if line.strip()}
    assert "768x512" in rows["kandinsky-5-lite-t2v"] and "t2v" in rows["kandinsky-5-lite-t2v"]
    assert " 16 " in rows["kandinsky-5-lite-t2v-distilled"] and " 1.0 " in rows["kandinsky-5-lite-t2v-distilled"]
    assert "i2v" in rows["kandinsky-5-pro-i2v"] and "19B" in rows["kandinsky-5-pro-i2v"]
