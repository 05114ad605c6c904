"""SkyReels-V2 through sora: text-to-video, image-to-video and diffusion forcing (window after window past its
window) on tiny checkpoints in the hub's layout, each equal to the diffusers pipeline called as its docs show."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest
import torch

from sora_cli.families import FAMILIES, DiffusionForcingWindows
from sora_cli.video import read_frames

from .conftest import in_hub_cache, random_video
from .test_open_models import count_attention_calls
from .tiny_checkpoints import skyreels_v2

SAMPLERS = {"euler": "FlowMatchEulerDiscreteScheduler", "unipc": "UniPCMultistepScheduler",
            "dpmpp_2m": "DPMSolverMultistepScheduler"}


@pytest.fixture(scope="module")
def folders(tmp_path_factory):
    root = tmp_path_factory.mktemp("skyreels-v2")
    return {name: build(root / name) for name, build in (("t2v", skyreels_v2.skyreels_v2),
                                                         ("i2v", skyreels_v2.skyreels_v2_i2v),
                                                         ("df", skyreels_v2.skyreels_v2_df))}



def reference(folder, recipe: dict, pipeline: str | None = None, **extra) -> np.ndarray:
    """The diffusers pipeline as diffusers' SkyReels-V2 docs call it (UniPC's flow_shift set on the scheduler),
    with the recipe sora recorded; 0-255 floats."""
    import diffusers
    from PIL import Image

    name = pipeline or json.loads((folder / "model_index.json").read_text())["_class_name"]
    pipe = getattr(diffusers, name).from_pretrained(folder)
    pipe.set_progress_bar_config(disable=True)
    pipe.scheduler = diffusers.UniPCMultistepScheduler.from_config(pipe.scheduler.config,
                                                                    flow_shift=recipe["scheduler_shift"])
    if recipe.get("image"):
        extra["image"] = Image.open(recipe["image"]).convert("RGB")
    video = pipe(prompt=recipe["prompt"], negative_prompt=recipe["negative_prompt"], height=recipe["height"],
                 width=recipe["width"], num_frames=recipe["generated_frames"], num_inference_steps=recipe["steps"],
                 guidance_scale=recipe["guidance"], generator=torch.Generator("cpu").manual_seed(recipe["seed"]),
                 output_type="np", **extra).frames[0]
    return video[: recipe["frames"]] * 255


def difference(out, expected) -> float:
    return float(np.abs(read_frames(out).astype(np.float64) - expected).mean())


@pytest.mark.parametrize("task", ["t2v", "i2v"])
def test_text_and_image_to_video_match_the_pipeline_trimmed_to_the_frames_asked(cli, folders, first_frame,
                                                                                tmp_path, task):
    out = tmp_path / "x.mkv"
    image = ("--image", first_frame) if task == "i2v" else ()
    code, _, stderr = cli("generate", "a cat surfing a wave at sunset", "--model", folders[task], *image,
                          "--width", 32, "--height", 32, "--frames", 7, "--steps", 2, "--guidance", 5.0,
                          "--shift", 8.0, "--negative", "blurry", "--seed", 7, "-o", out, "-q")
    assert code == 0, stderr
    recipe = json.loads(out.with_suffix(".json").read_text())
    assert recipe["frames"] == 7 and recipe["generated_frames"] == 9  # 4k+1, trimmed
    assert recipe["scheduler"] == "UniPCMultistepScheduler" and recipe["scheduler_shift"] == 8.0
    assert read_frames(out).shape == (7, 32, 32, 3)
    assert difference(out, reference(folders[task], recipe)) <= 1.0


@pytest.mark.parametrize("task", ["t2v", "i2v"])
def test_diffusion_forcing_past_its_window_matches_the_pipeline(cli, folders, first_frame, tmp_path, monkeypatch,
                                                                task):
    """A window of 9 frames carrying 5 over (the real ones: 97 and 17): 17 frames take three windows; the recipe
    records the arguments, and the progress bar counts every window's steps."""
    windows = DiffusionForcingWindows(window=9, overlap=5)
    record = dataclasses.replace(FAMILIES["skyreels-v2-df"], call_arguments=windows.arguments,
                                 step_callbacks=windows.step_callbacks)
    monkeypatch.setitem(FAMILIES, "skyreels-v2-df", record)
    out = tmp_path / "x.mkv"
    image = ("--image", first_frame) if task == "i2v" else ()
    code, _, stderr = cli("generate", "a cat surfing a wave at sunset", "--model", folders["df"], *image,
                          "--width", 32, "--height", 32, "--frames", 17, "--steps", 2, "--shift", 8.0,
                          "--seed", 11, "-o", out)
    assert code == 0, stderr
    assert "denoising: 6/6" in stderr  # 2 steps x 3 windows
    recipe = json.loads(out.with_suffix(".json").read_text())
    arguments = {"base_num_frames": 9, "overlap_history": 5, "addnoise_condition": 20.0}
    assert recipe["pipeline_arguments"] == arguments and recipe["fps"] == 24
    torch.manual_seed(recipe["seed"])  # addnoise_condition draws from torch's global generator
    pipeline = "SkyReelsV2DiffusionForcingImageToVideoPipeline" if task == "i2v" else None
    expected = reference(folders["df"], recipe, pipeline, fps=recipe["fps"], **arguments)
    assert read_frames(out).shape == (17, 32, 32, 3)
    assert difference(out, expected) <= 1.0


def test_the_registry_model_renders_past_its_97_frame_window(cli, folders, tmp_path, monkeypatch):
    """`--model skyreels-v2-df-1.3b-540p --frames 101` (a pulled copy in the hub cache): the real window and
    overlap, two windows (257 frames would be three: decoding them is slow on a CPU), every frame delivered."""
    from sora_cli.registry import get_spec

    in_hub_cache(folders["df"], get_spec("skyreels-v2-df-1.3b-540p").repo, tmp_path, monkeypatch)
    out = tmp_path / "x.mkv"
    code, _, stderr = cli("generate", "a cat", "--model", "skyreels-v2-df-1.3b-540p", "--frames", 101, "--width", 16,
                          "--height", 16, "--steps", 1, "-o", out)
    assert code == 0, stderr
    assert "denoising: 2/2" in stderr
    recipe = json.loads(out.with_suffix(".json").read_text())
    assert recipe["pipeline_arguments"] == {"base_num_frames": 97, "overlap_history": 17, "addnoise_condition": 20.0}
    assert recipe["preset"] == "skyreels-v2-df-1.3b-540p" and recipe["scheduler_shift"] == 8.0
    assert read_frames(out).shape == (101, 16, 16, 3)


def test_diffusion_forcing_windows_follow_the_published_recipe():
    job = dataclasses.make_dataclass("J", ["width", "height", "generated_frames", "steps"])
    windows = DiffusionForcingWindows()
    assert windows.arguments(job(960, 544, 97, 30)) == {"base_num_frames": 97}
    assert windows.arguments(job(960, 544, 257, 30)) == {"base_num_frames": 97, "overlap_history": 17,
                                                         "addnoise_condition": 20.0}
    assert windows.windows(job(960, 544, 257, 30)) == 3  # the diffusers docs' 257-frame example: three windows
    assert windows.base(job(1280, 720, 257, 30)) == 121  # 720p
    assert windows.step_callbacks(job(960, 544, 257, 30)) == 90


DECLARED = [(task, sampler) for task, family in (("t2v", "skyreels-v2"), ("df", "skyreels-v2-df"))
            for sampler in FAMILIES[family].options["sampler"] if sampler != "auto"]


@pytest.mark.parametrize("task, sampler", DECLARED)
def test_each_declared_sampler_runs_and_is_recorded(cli, folders, tmp_path, task, sampler):
    out = tmp_path / "x.mkv"
    code, _, stderr = cli("generate", "a cat", "--model", folders[task], "--sampler", sampler, "--width", 16,
                          "--height", 16, "--frames", 1, "--steps", 2, "-o", out, "-q")
    assert code == 0, stderr
    assert json.loads(out.with_suffix(".json").read_text())["scheduler"] == SAMPLERS[sampler]


@pytest.mark.parametrize("task, sampler, family", [("t2v", "heun", "skyreels-v2"),
                                                   ("df", "euler", "skyreels-v2-df")])  # per-frame integer steps
def test_a_sampler_it_does_not_take_is_one_line_exit_2(cli, folders, tmp_path, task, sampler, family):
    code, _, stderr = cli("generate", "a cat", "--model", folders[task], "--sampler", sampler, "-o",
                          tmp_path / "x.mkv")
    assert code == 2 and f"--sampler {sampler} does not work with {family} models" in stderr
    assert len(stderr.strip().splitlines()) == 1 and list(tmp_path.iterdir()) == []


def test_a_size_off_the_multiple_snaps_with_a_notice(cli, folders, tmp_path):
    out = tmp_path / "x.mkv"
    code, _, stderr = cli("generate", "a cat", "--model", folders["t2v"], "--width", 40, "--height", 24,
                          "--frames", 5, "--steps", 1, "-o", out)
    assert code == 0 and "needs sizes in multiples of 16: rendering 48x32 instead of 40x24" in stderr
    assert read_frames(out).shape == (5, 32, 48, 3)


def test_pab_skips_transformer_work_and_diffusion_forcing_takes_no_cache(cli, folders, tmp_path):
    from sora_cli.backends.open_models import DiffusersBackend
    from sora_cli.job import Job

    assert FAMILIES["skyreels-v2"].caches == ("pab",) and FAMILIES["skyreels-v2-df"].caches == ()
    job = Job(prompt="a cat surfing", negative="", seed=0, steps=8, guidance=4.0, sampler="auto", shift=None,
              width=16, height=16, frames=5, generated_frames=5)
    runs = [DiffusersBackend.load(str(folders["t2v"]), device="cpu", dtype="float32", compile=False, cache=cache)
            for cache in ("none", "pab")]
    assert count_attention_calls(runs[1], job) < count_attention_calls(runs[0], job)
    code, _, stderr = cli("generate", "a cat", "--model", folders["df"], "--cache", "pab", "-o", tmp_path / "x.mkv")
    assert code == 2 and "--cache pab does not work with skyreels-v2-df models; valid for them: none" in stderr


def test_the_models_are_listed(cli):
    code, stdout, _ = cli("models", "list")
    assert code == 0
    for model in ("skyreels-v2-t2v-14b-540p", "skyreels-v2-i2v-14b-540p", "skyreels-v2-i2v-1.3b-540p",
                  "skyreels-v2-df-1.3b-540p", "skyreels-v2-df-14b-540p"):
        assert model in stdout


def test_extend_on_diffusion_forcing_keeps_the_source_and_matches_its_video_to_video_pipeline(cli, folders,
                                                                                             tmp_path):
    import diffusers
    from PIL import Image

    source = tmp_path / "source.mkv"
    frames = random_video(source, 24, seed=2)
    out = tmp_path / "longer.mkv"
    code, _, stderr = cli("extend", source, "a cat surfing", "--model", folders["df"], "--frames", 8, "--steps", 2,
                          "--shift", 8.0, "--seed", 4, "-o", out, "-q")
    assert code == 0, stderr
    video = read_frames(out)
    assert len(video) == 32 and np.array_equal(video[:24], frames)
    recipe = json.loads(out.with_suffix(".json").read_text())
    assert recipe["generated_frames"] == 25  # the 17 frames it continues, rendered again, and 8 new
    pipe = diffusers.SkyReelsV2DiffusionForcingVideoToVideoPipeline.from_pipe(
        diffusers.SkyReelsV2DiffusionForcingPipeline.from_pretrained(folders["df"]))
    pipe.scheduler = diffusers.UniPCMultistepScheduler.from_config(pipe.scheduler.config, flow_shift=8.0)
    reference = pipe(video=[Image.fromarray(f) for f in frames[-17:]], overlap_history=17, prompt="a cat surfing",
                     negative_prompt="", height=32, width=32, num_frames=25, num_inference_steps=2,
                     guidance_scale=recipe["guidance"], fps=24, generator=torch.Generator("cpu").manual_seed(4),
                     output_type="np", **recipe["pipeline_arguments"]).frames[0] * 255
    assert len(reference) == 17 + 25  # what it was given, then what it decoded: the 17 again and the 8 new
    assert np.abs(video[24:].astype(np.float64) - reference[34:]).mean() <= 1.0
