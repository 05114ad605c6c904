"""HunyuanVideo 1.5 on tiny random checkpoints in the hub's layout: sora's lossless output equals the diffusers
pipelines' (text-to-video, and image-to-video sized from the image), guidance reaches the pipeline's guider, the
samplers and step caches its record declares work, and its causal VAE streams frame by frame exactly."""

from __future__ import annotations

import json
from dataclasses import replace

import numpy as np
import pytest
import torch

from sora_cli.families import FAMILIES
from sora_cli.video import read_frames

from .test_open_models import count_attention_calls
from .tiny_checkpoints.hunyuanvideo15 import hunyuanvideo15, hunyuanvideo15_i2v

PROMPT = "a cat surfing a wave at sunset"
FAMILY = FAMILIES["hunyuanvideo15"]


@pytest.fixture(scope="module")
def folders(tmp_path_factory):
    root = tmp_path_factory.mktemp("hunyuanvideo15")
    return {"t2v": hunyuanvideo15(root / "480p_t2v"), "i2v": hunyuanvideo15_i2v(root / "480p_i2v")}


@pytest.fixture(scope="module")
def wide_image(tmp_path_factory):
    """A 2:1 first frame: at the tiny checkpoints' target size (32) its bucket is 32x16."""
    from PIL import Image

    path = tmp_path_factory.mktemp("image") / "wide.png"
    Image.fromarray(np.random.default_rng(0).integers(0, 256, (32, 64, 3), dtype=np.uint8)).save(path)
    return path


def generate(cli, folder, out, *extra):
    code, _, stderr = cli("generate", PROMPT, "--model", folder, "--steps", 2, "--seed", 7, "-o", out, *extra)
    assert code == 0, stderr
    return json.loads(out.with_suffix(".json").read_text()), stderr


def reference(folder, recipe: dict) -> np.ndarray:
    """The diffusers pipeline called as its documentation shows (guidance set on its guider; image-to-video
    without a size), with the recipe sora recorded: frames in 0-255, trimmed to the video."""
    import diffusers
    from PIL import Image

    index = json.loads((folder / "model_index.json").read_text())
    pipe = getattr(diffusers, index["_class_name"]).from_pretrained(folder)
    pipe.set_progress_bar_config(disable=True)
    pipe.guider = pipe.guider.new(guidance_scale=recipe["guidance"])
    kwargs = dict(prompt=recipe["prompt"], negative_prompt=recipe["negative_prompt"],
                  num_frames=recipe["generated_frames"], num_inference_steps=recipe["steps"],
                  generator=torch.Generator("cpu").manual_seed(recipe["seed"]), output_type="np")
    if recipe.get("image"):
        kwargs["image"] = Image.open(recipe["image"]).convert("RGB")
    else:
        kwargs.update(height=recipe["height"], width=recipe["width"])
    return pipe(**kwargs).frames[0][: recipe["frames"]] * 255


def assert_matches(path, recipe, frames):
    video = read_frames(path).astype(np.float64)
    assert video.shape == (recipe["frames"], recipe["height"], recipe["width"], 3)
    assert np.abs(video - frames).mean() <= 1.0


def count_passes(monkeypatch, *classes) -> dict:
    """Counts the forward passes of every instance of these model classes."""
    counts = dict.fromkeys((cls.__name__ for cls in classes), 0)
    for cls in classes:
        def forward(self, *args, _real=cls.forward, _name=cls.__name__, **kwargs):
            counts[_name] += 1
            return _real(self, *args, **kwargs)

        monkeypatch.setattr(cls, "forward", forward)
    return counts


def test_text_to_video_equals_the_pipeline_with_exact_frames_and_a_snapped_size(cli, folders, tmp_path,
                                                                                  monkeypatch):
    from diffusers import HunyuanVideo15Transformer3DModel
    from transformers import Qwen2_5_VLTextModel

    passes = count_passes(monkeypatch, HunyuanVideo15Transformer3DModel, Qwen2_5_VLTextModel)
    out = tmp_path / "x.mkv"
    recipe, stderr = generate(cli, folders["t2v"], out, "--width", 40, "--height", 24, "--frames", 7,
                              "--guidance", 4.0, "--negative", "blurry")
    assert "needs sizes in multiples of 16: rendering 48x32 instead of 40x24" in stderr
    assert (recipe["width"], recipe["height"], recipe["frames"], recipe["generated_frames"]) == (48, 32, 7, 9)
    assert recipe["scheduler"] == "FlowMatchEulerDiscreteScheduler" and recipe["scheduler_shift"] == 5.0
    ours = dict(passes)
    passes.update(dict.fromkeys(passes, 0))
    assert_matches(out, recipe, reference(folders["t2v"], recipe))
    assert ours == passes == {"HunyuanVideo15Transformer3DModel": 4, "Qwen2_5_VLTextModel": 2}  # 2 steps x 2 passes


def test_image_to_video_is_sized_from_the_image_with_a_notice_and_equals_the_pipeline(cli, folders, wide_image,
                                                                                    tmp_path):
    out = tmp_path / "x.mkv"
    recipe, stderr = generate(cli, folders["i2v"], out, "--image", wide_image, "--width", 48, "--height", 48,
                              "--frames", 9)
    assert "sizes image-to-video from the image: rendering 32x16" in stderr and "instead of 48x48" in stderr
    assert (recipe["width"], recipe["height"]) == (32, 16) and recipe["image"] == str(wide_image)
    assert_matches(out, recipe, reference(folders["i2v"], recipe))


def test_guidance_goes_to_the_guider_for_the_call_and_the_checkpoints_comes_back(folders):
    from sora_cli.backends.open_models import DiffusersBackend
    from sora_cli.job import Job

    backend = DiffusersBackend.load(str(folders["t2v"]), device="cpu", dtype="float32", compile=False)
    assert backend.pipe.guider.guidance_scale == 6.0  # the checkpoint's
    seen, steps = [], []
    real = type(backend.pipe.guider).__call__

    def spy(guider, state):
        seen.append((guider.guidance_scale, guider.num_conditions))
        return real(guider, state)

    job = Job(prompt=PROMPT, negative="", seed=1, steps=2, guidance=1.0, sampler="auto", shift=None, width=32,
              height=32, frames=5, generated_frames=5)
    with pytest.MonkeyPatch.context() as m:
        m.setattr(type(backend.pipe.guider), "__call__", spy)
        off = np.concatenate(list(backend.render(job, progress=lambda *a: steps.append(a))))
        on = np.concatenate(list(backend.render(replace(job, guidance=3.0))))
    assert seen == [(1.0, 1)] * 2 + [(3.0, 2)] * 2  # guidance 1: one pass a step; otherwise two
    assert backend.pipe.guider.guidance_scale == 6.0
    assert [s for s in steps if s[0] == "denoise"] == [("denoise", 1, 2), ("denoise", 2, 2)]  # its progress bar
    assert np.abs(off.astype(float) - on).mean() > 1.0  # the guidance changes the frames


@pytest.mark.parametrize("sampler, scheduler", [("euler", "FlowMatchEulerDiscreteScheduler"),
                                                ("unipc", "UniPCMultistepScheduler")])
def test_each_declared_sampler_runs_and_is_recorded(cli, folders, tmp_path, sampler, scheduler):
    out = tmp_path / "x.mkv"
    recipe, _ = generate(cli, folders["t2v"], out, "--width", 32, "--height", 32, "--frames", 1, "--sampler",
                         sampler, "--shift", 3.0)
    assert recipe["scheduler"] == scheduler and recipe["scheduler_shift"] == 3.0
    assert read_frames(out).shape == (1, 32, 32, 3)


def test_a_sampler_it_cannot_take_is_one_line_exit_2_and_no_file(cli, folders, tmp_path):
    assert "dpmpp_2m" not in FAMILY.options["sampler"]  # the pipeline passes sigmas, which DPM-Solver++ refuses
    code, _, stderr = cli("generate", PROMPT, "--model", folders["t2v"], "--sampler", "dpmpp_2m", "-o",
                          tmp_path / "x.mkv")
    assert code == 2 and "--sampler dpmpp_2m does not work with hunyuanvideo15 models" in stderr
    assert len(stderr.strip().splitlines()) == 1 and not list(tmp_path.iterdir())


def cache_job():
    from sora_cli.job import Job

    return Job(prompt=PROMPT, negative="", seed=0, steps=6, guidance=4.0, sampler="auto", shift=None, width=32,
               height=32, frames=1, generated_frames=1)


@pytest.fixture(scope="module")
def uncached_passes(folders):
    from sora_cli.backends.open_models import DiffusersBackend

    plain = DiffusersBackend.load(str(folders["t2v"]), device="cpu", dtype="float32", compile=False)
    return count_attention_calls(plain, cache_job())


@pytest.mark.parametrize("cache", FAMILY.caches)
def test_each_declared_step_cache_skips_transformer_work(folders, uncached_passes, cache):
    from sora_cli.backends.open_models import DiffusersBackend

    cached = DiffusersBackend.load(str(folders["t2v"]), device="cpu", dtype="float32", compile=False, cache=cache,
                                   cache_threshold=2 if cache == "taylorseer" else None)
    assert count_attention_calls(cached, cache_job()) < uncached_passes


def test_the_streamed_decode_equals_the_vaes_whole_decode(folders):
    """One latent frame at a time through the convolution and attention caches: the whole-clip frames."""
    from diffusers import AutoencoderKLHunyuanVideo15

    from sora_cli.backends.stream_decode import stream_decode

    vae = AutoencoderKLHunyuanVideo15.from_pretrained(folders["t2v"] / "vae").eval()
    latents = torch.randn(1, 4, 8, 3, 2, generator=torch.Generator().manual_seed(0))
    with torch.inference_mode():
        whole = vae.decode(latents, return_dict=False)[0]
        pieces = list(stream_decode(vae, latents, pieces=FAMILY.decode))
    assert [p.shape[2] for p in pieces] == [1] + [4] * 7
    torch.testing.assert_close(torch.cat(pieces, dim=2), whole, rtol=1e-4, atol=1e-4)
    assert not any("forward" in vars(m) for m in vae.modules())  # the decoder's own forwards are back


def test_the_models_are_listed_with_their_recipes(cli):
    code, stdout, _ = cli("models", "list")
    assert code == 0
    rows = {line.split()[0]: line for line in stdout.splitlines()[1:] if line.strip()}
    for model in ("hunyuanvideo-1.5-480p", "hunyuanvideo-1.5-720p", "hunyuanvideo-1.5-480p-i2v",
                  "hunyuanvideo-1.5-720p-i2v", "hunyuanvideo-1.5-480p-distilled",
                  "hunyuanvideo-1.5-480p-i2v-distilled", "hunyuanvideo-1.5-480p-i2v-step-distilled"):
        assert model in rows
    assert "848x480" in rows["hunyuanvideo-1.5-480p"] and "1280x720" in rows["hunyuanvideo-1.5-720p"]
