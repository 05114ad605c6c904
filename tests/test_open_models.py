"""Open models through diffusers: every family renders end to end from a tiny checkpoint folder, and sora's
lossless output equals the diffusers pipeline's own output for the same recipe."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from sora_cli.families import FAMILIES
from sora_cli.video import read_frames

from . import tiny_checkpoints
from .conftest import in_hub_cache, random_video

# family -> (width, height, frames asked for): small, and off the frame rule where the rule allows it
REQUESTS = {
    "ltx-video": (32, 32, 7),
    "wan": (32, 32, 10),
    "cogvideox": (32, 32, 9),
    "mochi": (32, 32, 7),
    "hunyuanvideo": (32, 32, 9),
}
RECIPE_KEYS = {"prompt", "negative_prompt", "seed", "steps", "guidance", "width", "height", "frames",
               "generated_frames", "fps", "model", "preset"}


@pytest.fixture(scope="session")
def checkpoints(tmp_path_factory):
    root = tmp_path_factory.mktemp("open-models")
    builders = {**tiny_checkpoints.BUILDERS, **tiny_checkpoints.I2V_BUILDERS}
    return {name: build(root / name) for name, build in builders.items()}



def ltx_condition(folder):
    """LTX-Video's condition pipeline on a text-to-video folder's components."""
    import diffusers

    return diffusers.LTXConditionPipeline.from_pipe(diffusers.LTXPipeline.from_pretrained(folder))


def reference_frames(folder, family: str, recipe: dict, pipeline: str | None = None) -> np.ndarray:
    """The diffusers pipeline called directly, as its documentation shows, with the recipe sora recorded."""
    import diffusers
    from PIL import Image

    name = pipeline or json.loads((folder / "model_index.json").read_text())["_class_name"]
    pipe = getattr(diffusers, name).from_pretrained(folder)
    kwargs = dict(prompt=recipe["prompt"], height=recipe["height"], width=recipe["width"],
                  num_frames=recipe["generated_frames"], num_inference_steps=recipe["steps"],
                  guidance_scale=recipe["guidance"], generator=torch.Generator("cpu").manual_seed(recipe["seed"]),
                  output_type="np")
    if family != "hunyuanvideo":
        kwargs["negative_prompt"] = recipe["negative_prompt"]
    if family == "ltx-video":
        kwargs["frame_rate"] = 24
    if recipe.get("image"):
        kwargs["image"] = Image.open(recipe["image"]).convert("RGB")
    assert FAMILIES[family].task_of(name) is not None
    video = pipe(**kwargs).frames[0][: recipe["frames"]]  # (f, H, W, 3) floats in [0, 1]
    return video * 255


@pytest.mark.parametrize("family", list(REQUESTS))
def test_each_family_renders_end_to_end_and_matches_the_diffusers_pipeline(cli, checkpoints, tmp_path, family):
    width, height, frames = REQUESTS[family]
    out = tmp_path / "x.mkv"
    code, stdout, stderr = cli("generate", "a cat surfing a wave at sunset", "--model", checkpoints[family],
                               "--width", width, "--height", height, "--frames", frames, "--steps", 2,
                               "--guidance", 4.0, "--negative", "blurry", "--seed", 7, "-o", out, "-q")
    assert code == 0, stderr
    recipe = json.loads(out.with_suffix(".json").read_text())
    assert RECIPE_KEYS <= set(recipe) and recipe["frames"] == frames and recipe["generated_frames"] >= frames
    video = read_frames(out)
    assert video.shape == (frames, height, width, 3)
    reference = reference_frames(checkpoints[family], family, recipe)
    assert np.abs(video.astype(np.float64) - reference).mean() <= 1.0


@pytest.mark.parametrize("name, family, pipeline", [
    ("ltx-video", "ltx-video", "LTXImageToVideoPipeline"),  # the text-to-video weights, conditioned on frame 0
    ("cogvideox-i2v", "cogvideox", None),
    ("wan-i2v", "wan", None),
    ("wan-ti2v", "wan", "WanImageToVideoPipeline"),  # Wan 2.2 TI2V-5B: the text-to-video weights
])
def test_image_to_video_matches_the_diffusers_pipeline(cli, checkpoints, first_frame, tmp_path, name, family,
                                                       pipeline):
    out = tmp_path / "x.mkv"
    code, _, stderr = cli("generate", "a cat surfing", "--model", checkpoints[name], "--image", first_frame,
                          "--width", 32, "--height", 32, "--frames", 9, "--steps", 2, "--seed", 3, "-o", out, "-q")
    assert code == 0, stderr
    recipe = json.loads(out.with_suffix(".json").read_text())
    assert recipe["image"] == str(first_frame)
    reference = reference_frames(checkpoints[name], family, recipe, pipeline)
    assert np.abs(read_frames(out).astype(np.float64) - reference).mean() <= 1.0


def test_wan_ti2v_weights_also_render_from_text_alone(cli, checkpoints, tmp_path):
    out = tmp_path / "x.mkv"
    code, _, stderr = cli("generate", "a cat surfing", "--model", checkpoints["wan-ti2v"], "--width", 40,
                          "--height", 32, "--frames", 9, "--steps", 2, "--seed", 5, "-o", out)
    assert code == 0 and "needs sizes in multiples of 32: rendering 32x32 instead of 40x32" in stderr  # 16x VAE, 2x2
    reference = reference_frames(checkpoints["wan-ti2v"], "wan", json.loads(out.with_suffix(".json").read_text()))
    assert np.abs(read_frames(out).astype(np.float64) - reference).mean() <= 1.0


def test_the_wrong_task_is_one_line_exit_2(cli, checkpoints, first_frame, tmp_path):
    code, _, stderr = cli("generate", "a cat", "--model", checkpoints["mochi"], "--image", first_frame,
                          "-o", tmp_path / "x.mkv")
    assert code == 2 and "renders from text only; --image needs an image-to-video model" in stderr
    code, _, stderr = cli("generate", "a cat", "--model", checkpoints["wan-i2v"], "-o", tmp_path / "x.mkv")
    assert code == 2 and "is image-to-video: give it --image" in stderr
    code, _, stderr = cli("generate", "a cat", "--image", first_frame, "-o", tmp_path / "x.mkv")
    assert code == 2 and "sora-tiny does not do image-to-video" in stderr


def test_a_pulled_model_is_found_in_the_hub_cache_by_its_id(cli, checkpoints, tmp_path, monkeypatch):
    """`--model ID` reads the standard Hugging Face cache layout under HF_HOME, offline."""
    from sora_cli.registry import get_spec

    in_hub_cache(checkpoints["wan"], get_spec("wan2.1-t2v-1.3b").repo, tmp_path, monkeypatch)
    out = tmp_path / "x.mkv"
    code, _, stderr = cli("generate", "a cat", "--model", "wan2.1-t2v-1.3b", "--width", 32, "--height", 32,
                          "--frames", 5, "--steps", 1, "-o", out, "-q")
    assert code == 0, stderr
    recipe = json.loads(out.with_suffix(".json").read_text())
    assert recipe["model"] == "wan2.1-t2v-1.3b" and recipe["preset"] == "wan2.1-t2v-1.3b"
    assert recipe["fps"] == 16 and recipe["scheduler"] == "UniPCMultistepScheduler"


def test_ctrl_c_while_denoising_exits_130_and_leaves_no_file(cli, checkpoints, tmp_path, monkeypatch):
    from sora_cli.backends.open_models import DiffusersBackend

    real = DiffusersBackend.pipeline_kwargs

    def interrupted(self, job, progress=None, verb=None):
        kwargs = real(self, job, progress, verb)

        def stop(pipe, i, t, tensors):
            raise KeyboardInterrupt

        return {**kwargs, "callback_on_step_end": stop}

    monkeypatch.setattr(DiffusersBackend, "pipeline_kwargs", interrupted)
    code, _, stderr = cli("generate", "a cat", "--model", checkpoints["wan"], "--width", 32, "--height", 32,
                          "--frames", 5, "--steps", 3, "-o", tmp_path / "x.mkv")
    assert code == 130 and "interrupted" in stderr
    assert list(tmp_path.iterdir()) == []


def test_wan_2_2_two_experts_match_the_diffusers_pipeline(cli, tmp_path):
    folder = tiny_checkpoints.wan(tmp_path / "wan22", two_experts=True)
    out = tmp_path / "x.mkv"
    code, _, stderr = cli("generate", "a cat surfing", "--model", folder, "--width", 32, "--height", 32, "--frames",
                          9, "--steps", 4, "--seed", 2, "-o", out, "-q")
    assert code == 0, stderr
    reference = reference_frames(folder, "wan", json.loads(out.with_suffix(".json").read_text()))
    assert np.abs(read_frames(out).astype(np.float64) - reference).mean() <= 1.0


def test_a_folder_that_is_not_a_checkpoint_is_one_line_exit_2(cli, tmp_path):
    (tmp_path / "stuff").mkdir()
    code, _, stderr = cli("generate", "a cat", "--model", tmp_path / "stuff", "-o", tmp_path / "x.mp4")
    assert code == 2 and "is not a checkpoint" in stderr and len(stderr.strip().splitlines()) == 1


def test_a_registry_model_not_downloaded_says_what_to_run(cli, tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    code, _, stderr = cli("generate", "a cat", "--model", "wan2.1-t2v-1.3b", "-o", tmp_path / "x.mp4")
    assert code == 2 and "sora models pull wan2.1-t2v-1.3b" in stderr and len(stderr.strip().splitlines()) == 1


def test_pull_without_a_reachable_hub_is_one_line_exit_2(cli, tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    monkeypatch.setenv("HF_ENDPOINT", "http://127.0.0.1:9")  # nothing listens there: refused at once
    code, _, stderr = cli("models", "pull", "wan2.1-t2v-1.3b")
    assert code == 2 and "cannot download Wan-AI/Wan2.1-T2V-1.3B-Diffusers" in stderr
    assert len(stderr.strip().splitlines()) == 1
    code, _, stderr = cli("models", "pull", "sora-tiny")
    assert code == 2 and "ships inside the package" in stderr


def test_more_frames_than_a_model_can_make_is_refused_before_loading(cli, tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    code, _, stderr = cli("generate", "a cat", "--model", "cogvideox-2b", "--frames", 200, "-o", tmp_path / "x.mp4")
    assert code == 2 and "at most 49 frames" in stderr and "200" in stderr


@pytest.mark.parametrize("family", ["wan", "cogvideox", "ltx-video", "hunyuanvideo"])
def test_streamed_decode_equals_the_vaes_own_decode_of_a_long_clip(checkpoints, family):
    """Piece by piece (causal caches, or blended temporal tiles) gives the frames the whole decode gives."""
    import diffusers

    from sora_cli.backends.stream_decode import stream_decode

    index = json.loads((checkpoints[family] / "model_index.json").read_text())
    vae = getattr(diffusers, index["vae"][1]).from_pretrained(checkpoints[family] / "vae").eval()
    if hasattr(vae, "use_framewise_decoding"):
        vae.use_framewise_decoding = True  # LTX and HunyuanVideo: overlapping temporal tiles
    channels = vae.config.get("z_dim") or vae.config.latent_channels
    latents = torch.randn(1, channels, 11, 4, 4, generator=torch.Generator().manual_seed(0))
    kwargs = {"temb": None} if family == "ltx-video" else {}
    with torch.inference_mode():
        whole = vae.decode(latents, return_dict=False, **kwargs)[0]
        pieces = list(stream_decode(vae, latents, pieces=FAMILIES[family].decode))
    assert len(pieces) > 1
    torch.testing.assert_close(torch.cat(pieces, dim=2), whole, rtol=1e-4, atol=1e-4)


def test_a_size_off_the_models_multiple_snaps_with_a_notice(cli, checkpoints, tmp_path):
    out = tmp_path / "x.mkv"
    code, _, stderr = cli("generate", "a cat", "--model", checkpoints["wan"], "--width", 40, "--height", 24,
                          "--frames", 5, "--steps", 1, "-o", out)
    assert code == 0 and "rendering 48x32 instead of 40x24" in stderr
    assert read_frames(out).shape == (5, 32, 48, 3)


def count_attention_calls(backend, job) -> int:
    """How many times the last block's attention really ran: the work a step cache saves (a cache replaces a
    skipped module's forward, so its query projection is what shows it)."""
    from sora_cli.backends.runtime import transformers_of

    model = transformers_of(backend.pipe)[0]
    last = (getattr(model, "blocks", None) or model.transformer_blocks)[-1]
    calls = []
    handle = (getattr(last, "attn1", None) or last.attn).to_q.register_forward_hook(lambda *_: calls.append(1))
    try:
        list(backend.render(job))
    finally:
        handle.remove()
    return len(calls)


CACHE_CASES = [(family, cache) for family in REQUESTS for cache in FAMILIES[family].caches]


@pytest.mark.parametrize("family, cache", CACHE_CASES)
def test_each_supported_step_cache_skips_transformer_work(checkpoints, family, cache):
    from sora_cli.backends.open_models import DiffusersBackend
    from sora_cli.job import Job

    threshold = {"first-block": 10.0, "taylorseer": 3}.get(cache)  # generous: the test is that work is skipped
    plain = DiffusersBackend.load(str(checkpoints[family]), device="cpu", dtype="float32", compile=False)
    frames = REQUESTS[family][2]
    job = Job(prompt="a cat surfing", negative="", seed=0, steps=8, guidance=4.0, sampler="auto", shift=None,
              width=32, height=32, frames=frames, generated_frames=plain.frame_count(frames))
    cached = DiffusersBackend.load(str(checkpoints[family]), device="cpu", dtype="float32", compile=False,
                                   cache=cache, cache_threshold=threshold)
    assert count_attention_calls(cached, job) < count_attention_calls(plain, job)


def test_a_cache_a_family_cannot_use_is_refused_naming_the_valid_ones(cli, checkpoints, tmp_path):
    code, _, stderr = cli("generate", "a cat", "--model", checkpoints["wan"], "--cache", "faster", "-o",
                          tmp_path / "x.mkv")
    assert code == 2 and "--cache faster does not work with wan models; valid for them: none, first-block, pab" \
        in stderr


def test_offload_on_a_cpu_is_refused_with_the_reason(cli, checkpoints, tmp_path):
    code, _, stderr = cli("generate", "a cat", "--model", checkpoints["wan"], "--offload", "model", "-o",
                          tmp_path / "x.mkv")
    assert code == 2 and "on the CPU use none" in stderr


def test_a_long_cpu_run_is_announced_with_its_memory_and_time(cli, checkpoints, tmp_path, monkeypatch):
    from sora_cli.backends import runtime

    monkeypatch.setattr(runtime, "CPU_GFLOPS", 1e-6)  # a tiny checkpoint on a very slow CPU: a long run
    code, _, stderr = cli("generate", "a cat", "--model", checkpoints["wan"], "--width", 32, "--height", 32,
                          "--frames", 5, "--steps", 2, "-o", tmp_path / "x.mkv")
    assert code == 0 and "on the CPU: about" in stderr and "GB of memory" in stderr and "for 2 steps" in stderr


def test_a_model_bigger_than_the_machines_memory_is_refused_before_loading(cli, checkpoints, tmp_path,
                                                                          monkeypatch):
    from sora_cli.backends import runtime

    monkeypatch.setattr(runtime, "memory_gb", lambda kind="SC_PHYS_PAGES": 1e-6)
    code, _, stderr = cli("generate", "a cat", "--model", checkpoints["wan"], "-o", tmp_path / "x.mkv")
    assert code == 2 and "needs about" in stderr and "this machine has" in stderr
    assert not (tmp_path / "x.mkv").exists()


@pytest.mark.parametrize("family, pipeline", [("cogvideox", "CogVideoXVideoToVideoPipeline"),
                                              ("wan", "WanVideoToVideoPipeline")])
def test_remix_matches_the_families_video_to_video_pipeline(cli, checkpoints, tmp_path, family, pipeline):
    import diffusers
    from PIL import Image

    source = tmp_path / "source.mkv"
    frames = random_video(source, 9, seed=0, fps=8)
    out = tmp_path / "x.mkv"
    code, _, stderr = cli("remix", source, "a cat surfing", "--model", checkpoints[family], "--strength", 0.6,
                          "--steps", 4, "--guidance", 4.0, "--seed", 5, "-o", out, "-q")
    assert code == 0, stderr
    recipe = json.loads(out.with_suffix(".json").read_text())
    assert recipe["verb"]["strength"] == 0.6 and recipe["frames"] == 9
    base = getattr(diffusers, json.loads((checkpoints[family] / "model_index.json").read_text())["_class_name"])
    pipe = getattr(diffusers, pipeline).from_pipe(base.from_pretrained(checkpoints[family]))
    reference = pipe(video=[Image.fromarray(f) for f in frames], prompt="a cat surfing", negative_prompt="",
                     height=32, width=32, num_inference_steps=4, guidance_scale=4.0, strength=0.6,
                     generator=torch.Generator("cpu").manual_seed(5), output_type="np").frames[0] * 255
    assert np.abs(read_frames(out).astype(np.float64) - reference).mean() <= 1.0


def test_keyframes_on_ltx_match_its_condition_pipeline(cli, checkpoints, first_frame, tmp_path):
    from PIL import Image

    old = tmp_path / "old.mkv"  # 0.9.0/0.9.1: refused before anything is written
    code, _, stderr = cli("generate", "a cat", "--model", checkpoints["ltx-video"], "--keyframe", first_frame,
                          "--width", 32, "--height", 32, "--frames", 9, "--steps", 2, "-o", old, "-q")
    assert code == 2 and "cannot do keyframes: it is LTX-Video 0.9.0/0.9.1" in stderr and not old.exists()
    folder = tiny_checkpoints.ltx(tmp_path / "ltx-0.9.5", dynamic_shifting=False)

    second = tmp_path / "second.png"
    Image.fromarray(np.full((32, 32, 3), 200, np.uint8)).save(second)
    out = tmp_path / "x.mkv"
    code, _, stderr = cli("generate", "a cat surfing", "--model", folder, "--keyframe", first_frame,
                          "--keyframe", f"{second}:8:0.8", "--width", 32, "--height", 32, "--frames", 17,
                          "--steps", 2, "--seed", 3, "-o", out, "-q")
    assert code == 0, stderr
    recipe = json.loads(out.with_suffix(".json").read_text())
    assert [k["at"] for k in recipe["verb"]["keyframes"]] == ["0", "8"]
    pipe = ltx_condition(folder)
    reference = pipe(image=[Image.open(first_frame).convert("RGB"), Image.open(second).convert("RGB")],
                     frame_index=[0, 8], strength=[1.0, 0.8], prompt="a cat surfing", negative_prompt="",
                     height=32, width=32, num_frames=recipe["generated_frames"], frame_rate=24,
                     num_inference_steps=2, guidance_scale=recipe["guidance"],
                     generator=torch.Generator("cpu").manual_seed(3), output_type="np").frames[0] * 255
    assert np.abs(read_frames(out).astype(np.float64) - reference[:17]).mean() <= 1.0


def test_first_and_last_keyframes_on_wan_flf2v_match_its_pipeline(cli, checkpoints, first_frame, tmp_path):
    import diffusers
    from PIL import Image

    last = tmp_path / "last.png"
    Image.fromarray(np.full((32, 32, 3), 200, np.uint8)).save(last)
    out = tmp_path / "x.mkv"
    args = ("--width", 32, "--height", 32, "--frames", 9, "--steps", 2, "--seed", 3, "-q")
    flf2v = tiny_checkpoints.wan_i2v(tmp_path / "flf2v", first_last=True)
    code, _, stderr = cli("generate", "a cat surfing", "--model", flf2v, "--keyframe", first_frame,
                          "--keyframe", f"{last}:-1", *args, "-o", out)
    assert code == 0, stderr
    recipe = json.loads(out.with_suffix(".json").read_text())
    pipe = diffusers.WanImageToVideoPipeline.from_pretrained(flf2v)
    reference = pipe(image=Image.open(first_frame).convert("RGB"), last_image=Image.open(last).convert("RGB"),
                     prompt="a cat surfing", negative_prompt="", height=32, width=32,
                     num_frames=recipe["generated_frames"], num_inference_steps=2, guidance_scale=recipe["guidance"],
                     generator=torch.Generator("cpu").manual_seed(3), output_type="np").frames[0] * 255
    assert np.abs(read_frames(out).astype(np.float64) - reference[:9]).mean() <= 1.0
    for bad, message in (((f"{last}:4",), "Wan takes keyframes at the first frame and the last (-1) only"),
                         ((f"{last}:-1",), "a last frame needs a first-last-frame checkpoint (Wan 2.1 FLF2V)"),
                         ((), None)):
        wrong = tmp_path / "wrong.mkv"
        if message is None:  # text-to-video weights: refused, saying why
            code, _, stderr = cli("generate", "a cat", "--model", checkpoints["wan"], "--keyframe", first_frame,
                                  *args, "-o", wrong)
            assert code == 2 and "keyframes need a Wan image-to-video checkpoint" in stderr
        else:
            code, _, stderr = cli("generate", "a cat", "--model", checkpoints["wan-i2v"], "--keyframe", first_frame,
                                  "--keyframe", *bad, *args, "-o", wrong)
            assert code == 2 and message in stderr
        assert not wrong.exists()


def test_extend_on_ltx_keeps_the_source_and_matches_its_condition_pipeline(cli, tmp_path):
    from PIL import Image

    folder = tiny_checkpoints.ltx(tmp_path / "ltx-0.9.5", dynamic_shifting=False)
    source = tmp_path / "source.mkv"
    frames = random_video(source, 24, seed=1)
    out = tmp_path / "longer.mkv"
    code, _, stderr = cli("extend", source, "a cat surfing", "--model", folder, "--frames", 16, "--steps", 2,
                          "--seed", 3, "-o", out, "-q")
    assert code == 0, stderr
    video = read_frames(out)
    assert len(video) == 40 and np.array_equal(video[:24], frames)
    recipe = json.loads(out.with_suffix(".json").read_text())
    pipe = ltx_condition(folder)
    reference = pipe(video=[[Image.fromarray(f) for f in frames[-17:]]], frame_index=[0], strength=[1.0],
                     prompt="a cat surfing", negative_prompt="", height=32, width=32,
                     num_frames=recipe["generated_frames"], frame_rate=24, num_inference_steps=2,
                     guidance_scale=recipe["guidance"], generator=torch.Generator("cpu").manual_seed(3),
                     output_type="np").frames[0] * 255
    assert np.abs(video[24:].astype(np.float64) - reference[17:33]).mean() <= 1.0


def test_remix_on_ltx_matches_its_condition_pipeline_editing_the_sources_latents(cli, tmp_path):
    from diffusers.pipelines.ltx.pipeline_ltx_condition import retrieve_latents
    from PIL import Image

    folder = tiny_checkpoints.ltx(tmp_path / "ltx-0.9.5", dynamic_shifting=False)
    source = tmp_path / "source.mkv"
    frames = random_video(source, 17, seed=3)
    out = tmp_path / "x.mkv"
    code, _, stderr = cli("remix", source, "a cat surfing", "--model", folder, "--strength", 0.5, "--steps", 4,
                          "--seed", 6, "-o", out, "-q")
    assert code == 0, stderr
    recipe = json.loads(out.with_suffix(".json").read_text())
    pipe = ltx_condition(folder)
    video = pipe.video_processor.preprocess_video([Image.fromarray(f) for f in frames], 32, 32)
    latents = pipe._normalize_latents(retrieve_latents(pipe.vae.encode(video), sample_mode="argmax"),
                                      pipe.vae.latents_mean, pipe.vae.latents_std)
    reference = pipe(latents=latents, denoise_strength=0.5, prompt="a cat surfing", negative_prompt="", height=32,
                     width=32, num_frames=17, frame_rate=24, num_inference_steps=4, guidance_scale=recipe["guidance"],
                     generator=torch.Generator("cpu").manual_seed(6), output_type="np").frames[0] * 255
    result = read_frames(out).astype(np.float64)
    assert np.abs(result - reference).mean() <= 1.0
    assert np.abs(result - frames).mean() > 1.0  # it did re-render
