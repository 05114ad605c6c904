"""LTX-2 (video with synchronised sound) on a tiny random checkpoint in the hub's layout: sora's lossless output
equals the diffusers pipeline's frames and waveform, the soundtrack lands in every container that carries one, and
what cannot carry it or make it is said in one line."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
import torch

from sora_cli.families import FAMILIES
from sora_cli.registry import MODELS
from sora_cli.video import audio_info, probe, read_audio, read_frames

from .conftest import in_hub_cache, random_video
from .tiny_checkpoints.ltx2 import ltx2

PROMPT = "a cat surfing a wave at sunset"
SAMPLE_RATE = 24000  # the vocoder's output rate


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    return ltx2(tmp_path_factory.mktemp("ltx2") / "LTX-2")



def generate(cli, folder, out, *extra):
    code, _, stderr = cli("generate", PROMPT, "--model", folder, "--width", 32, "--height", 32, "--steps", 2,
                          "--seed", 7, "-o", out, *extra)
    assert code == 0, stderr
    return json.loads(out.with_suffix(".json").read_text()), stderr


def reference(folder, recipe: dict, pipeline: str = "LTX2Pipeline", **fixed):
    """The diffusers pipeline called as its documentation shows, with the recipe sora recorded: (frames in 0-255
    trimmed to the video, waveform (channels, samples) in [-1, 1])."""
    import diffusers
    from PIL import Image

    pipe = getattr(diffusers, pipeline).from_pretrained(folder)
    pipe.set_progress_bar_config(disable=True)
    if recipe.get("image"):
        fixed["image"] = Image.open(recipe["image"]).convert("RGB")
    out = pipe(prompt=recipe["prompt"], negative_prompt=recipe["negative_prompt"], height=recipe["height"],
               width=recipe["width"], num_frames=recipe["generated_frames"], frame_rate=float(recipe["fps"]),
               num_inference_steps=recipe["steps"], guidance_scale=recipe["guidance"],
               generator=torch.Generator("cpu").manual_seed(recipe["seed"]), output_type="np", **fixed)
    assert pipe.vocoder.config.output_sampling_rate == SAMPLE_RATE
    return out.frames[0][: recipe["frames"]] * 255, out.audio[0].float().numpy()


def assert_same_video_and_sound(path, recipe, frames, audio):
    video = read_frames(path).astype(np.float64)
    assert video.shape == (recipe["frames"], recipe["height"], recipe["width"], 3)
    assert np.abs(video - frames).mean() <= 1.0
    sound = read_audio(path)
    assert sound.sample_rate == SAMPLE_RATE and sound.channels == audio.shape[0] == 2
    # the soundtrack lasts exactly as long as the video: the pipeline's waveform, trimmed with the frames or, where
    # it ends a few milliseconds before them ((4L-3) x 240 samples for L audio latents), padded with silence
    assert sound.samples.shape[1] == round(recipe["frames"] / recipe["fps"] * SAMPLE_RATE)
    n = min(sound.samples.shape[1], audio.shape[1])
    assert np.abs(sound.samples[:, :n] - audio[:, :n]).max() <= 1e-4
    assert not sound.samples[:, n:].any()
    assert np.abs(audio[:, :n]).max() > 0.01  # a real waveform, not silence matching silence


def test_text_to_video_mkv_equals_the_pipelines_frames_and_waveform(cli, folder, tmp_path):
    out = tmp_path / "x.mkv"
    recipe, _ = generate(cli, folder, out, "--frames", 7, "--guidance", 4.0, "--negative", "blurry")
    assert recipe["frames"] == 7 and recipe["generated_frames"] == 9  # 8k+1, trimmed back
    assert recipe["scheduler"] == "FlowMatchEulerDiscreteScheduler"
    assert recipe["soundtrack"] == {"sample_rate": SAMPLE_RATE, "channels": 2, "codec": "flac",
                                    "seconds": round(7 / 24, 4)}
    frames, audio = reference(folder, recipe)
    assert audio.shape[1] > read_audio(out).samples.shape[1]  # 9 frames of sound, trimmed to 7
    assert_same_video_and_sound(out, recipe, frames, audio)


def test_image_to_video_mkv_equals_the_pipelines_frames_and_waveform(cli, folder, first_frame, tmp_path):
    out = tmp_path / "x.mkv"
    recipe, _ = generate(cli, folder, out, "--frames", 9, "--image", first_frame)
    assert recipe["image"] == str(first_frame)
    frames, audio = reference(folder, recipe, "LTX2ImageToVideoPipeline")
    assert audio.shape[1] < read_audio(out).samples.shape[1]  # (4*9-3)*240 samples: padded to 9 frames' worth
    assert_same_video_and_sound(out, recipe, frames, audio)


def model_work(pipe) -> dict[str, int]:
    """Counts the passes through each model of an LTX-2 pipeline from now on."""
    calls = {}
    for name in ("transformer", "connectors", "text_encoder", "vocoder"):
        getattr(pipe, name).register_forward_hook(lambda *_, name=name: calls.update({name: calls.get(name, 0) + 1}))
    for name in ("vae", "audio_vae"):
        getattr(pipe, name).decoder.register_forward_hook(
            lambda *_, name=name: calls.update({name: calls.get(name, 0) + 1}))
    return calls


def test_sora_adds_no_model_work_to_the_pipelines(folder):
    """The benchmark's overhead, counted instead of timed: the same passes through every model (the video VAE's
    decode moved out of the pipeline, not repeated)."""
    import diffusers

    from sora_cli.backends.open_models import DiffusersBackend
    from sora_cli.job import Job

    backend = DiffusersBackend.load(str(folder), device="cpu", dtype="float32", compile=False)
    job = Job(PROMPT, 9, 9, width=32, height=32, steps=3, guidance=3.0, seed=0)
    ours = model_work(backend.pipe)
    list(backend.render(job))
    pipe = diffusers.LTX2Pipeline.from_pretrained(folder)
    pipe.set_progress_bar_config(disable=True)
    theirs = model_work(pipe)
    pipe(prompt=PROMPT, negative_prompt="", height=32, width=32, num_frames=9, frame_rate=24.0, num_inference_steps=3,
         guidance_scale=3.0, generator=torch.Generator("cpu").manual_seed(0), output_type="np")
    assert ours == theirs and theirs["transformer"] == 9 and theirs["vae"] == theirs["vocoder"] == 1


def stream_seconds(path) -> dict[str, float]:
    import av

    with av.open(str(path)) as container:
        return {s.type: float(s.duration * s.time_base) for s in container.streams if s.type in ("video", "audio")}


def test_mp4_holds_h264_and_aac_of_the_videos_length_and_inspect_and_gallery_show_it(cli, folder, tmp_path):
    out = tmp_path / "a.mp4"
    generate(cli, folder, out, "--frames", 17)  # 0.71 s
    assert probe(out)["codec"] == "h264" and audio_info(out)["codec"] == "aac"
    seconds = stream_seconds(out)
    assert abs(seconds["video"] - 17 / 24) <= 1 / 24 and abs(seconds["audio"] - seconds["video"]) <= 1 / 24
    recipe = out.with_suffix(".json")
    recipe.rename(tmp_path / "aside.json")  # inspect reads the recipe the mp4 carries
    code, stdout, _ = cli("inspect", out)
    (tmp_path / "aside.json").rename(recipe)
    assert code == 0
    soundtrack = json.loads(stdout)["soundtrack"]
    assert {k: soundtrack[k] for k in ("sample_rate", "channels", "codec")} == {
        "sample_rate": SAMPLE_RATE, "channels": 2, "codec": "aac"}
    code, _, stderr = cli("gallery", tmp_path)
    assert code == 0, stderr
    html = (tmp_path / "index.html").read_text()
    assert '<video controls loop preload="metadata" src="a.mp4">' in html and "muted" not in html


def test_webm_gets_opus_and_no_audio_writes_the_video_alone(cli, folder, tmp_path):
    recipe, _ = generate(cli, folder, tmp_path / "a.webm", "--frames", 9)
    assert probe(tmp_path / "a.webm")["codec"] == "vp9"
    info = audio_info(tmp_path / "a.webm")
    assert info["codec"] == "opus" and info["channels"] == 2 and abs(info["seconds"] - 9 / 24) <= 1 / 24
    assert recipe["soundtrack"]["codec"] == "libopus" and recipe["soundtrack"]["sample_rate"] == SAMPLE_RATE
    recipe, _ = generate(cli, folder, tmp_path / "b.mp4", "--frames", 9, "--no-audio")
    assert audio_info(tmp_path / "b.mp4") is None and probe(tmp_path / "b.mp4")["frames"] == 9
    assert recipe["soundtrack"] is None and recipe["audio"] is False


def test_a_gif_is_written_silent_with_a_notice(cli, folder, tmp_path):
    recipe, stderr = generate(cli, folder, tmp_path / "a.gif", "--frames", 9)
    assert ".gif files carry no sound: writing the video silent" in stderr
    assert audio_info(tmp_path / "a.gif") is None and probe(tmp_path / "a.gif")["frames"] == 9
    assert recipe["soundtrack"] is None


def test_no_audio_on_a_silent_model_is_accepted(cli, tiny_checkpoint, tmp_path):
    out = tmp_path / "a.mp4"
    code, _, stderr = cli("generate", "a red circle", "--model", tiny_checkpoint, "--width", 32, "--height", 32,
                          "--frames", 5, "--steps", 1, "--no-audio", "-o", out, "-q")
    assert code == 0, stderr
    assert audio_info(out) is None


@pytest.mark.parametrize("part", ["audio_vae", "vocoder"])
def test_a_checkpoint_missing_a_part_that_makes_the_sound_is_one_line_exit_2(cli, folder, tmp_path, part):
    broken = tmp_path / "LTX-2"
    shutil.copytree(folder, broken, ignore=shutil.ignore_patterns(part))
    out = tmp_path / "x.mp4"
    code, _, stderr = cli("generate", "a cat", "--model", broken, "--frames", 9, "-o", out)
    assert code == 2 and len(stderr.strip().splitlines()) == 1
    assert f"is missing {part}: a LTX-2 checkpoint needs audio_vae and vocoder" in stderr
    assert list(tmp_path.glob("x*")) == []


@pytest.mark.parametrize("sampler, scheduler", [("euler", "FlowMatchEulerDiscreteScheduler"),
                                                ("unipc", "UniPCMultistepScheduler")])
def test_each_sampler_runs_and_the_recipe_names_its_scheduler(cli, folder, tmp_path, sampler, scheduler):
    out = tmp_path / "x.mkv"
    recipe, stderr = generate(cli, folder, out, "--frames", 9, "--sampler", sampler, "--width", 40, "--vae-tiling")
    assert recipe["scheduler"] == scheduler and recipe["vae_tiling"] is True
    assert "needs sizes in multiples of 32: rendering 32x32 instead of 40x32" in stderr
    assert read_frames(out).shape == (9, 32, 32, 3) and read_audio(out) is not None


@pytest.mark.parametrize("flag, value, says", [
    ("--sampler", "dpmpp_2m", "--sampler dpmpp_2m does not work with ltx2 models; valid for them: auto, euler, unipc"),
    ("--cache", "first-block", "--cache first-block does not work with ltx2 models; valid for them: none"),
    ("--shift", "3", "--shift does not apply to ltx2 models"),
    ("--steps", "1", "takes at least 2 steps: its schedule is stretched to end at sigma 0.1"),
])
def test_what_ltx2_cannot_do_is_one_line_exit_2_and_no_file(cli, folder, tmp_path, flag, value, says):
    code, _, stderr = cli("generate", "a cat", "--model", folder, "--width", 32, "--height", 32, "--frames", 9,
                          flag, value, "-o", tmp_path / "x.mp4")
    assert code == 2 and says in stderr and len(stderr.strip().splitlines()) == 1
    assert list(tmp_path.iterdir()) == []


def test_a_vae_that_pads_by_reflection_gets_at_least_64_pixels_a_side(cli, folder, tmp_path):
    """LTX-2.0's decoder pads reflecting (the tiny one pads zeros, as LTX-2.3's): a 1x1 latent (32 px) cannot be
    padded, so sizes snap to 64 with a notice instead of failing inside the VAE."""
    reflecting = tmp_path / "LTX-2"
    shutil.copytree(folder, reflecting)
    config = json.loads((reflecting / "vae" / "config.json").read_text())
    (reflecting / "vae" / "config.json").write_text(json.dumps({**config, "decoder_spatial_padding_mode": "reflect"}))
    out = tmp_path / "x.mkv"
    _, stderr = generate(cli, reflecting, out, "--frames", 9)
    assert "needs sizes in multiples of 32, at least 64: rendering 64x64 instead of 32x32" in stderr
    assert read_frames(out).shape == (9, 64, 64, 3)


def test_streamed_decode_equals_the_vaes_own_decode_of_a_long_clip(folder):
    """The LTX-2 VAE's blended temporal tiles, piece by piece, give the frames its whole decode gives."""
    from diffusers import AutoencoderKLLTX2Video

    from sora_cli.backends.stream_decode import stream_decode

    vae = AutoencoderKLLTX2Video.from_pretrained(folder / "vae").eval()
    vae.use_framewise_decoding = True
    latents = torch.randn(1, vae.config.latent_channels, 7, 2, 2, generator=torch.Generator().manual_seed(0))
    with torch.inference_mode():
        whole = vae.decode(latents, None, return_dict=False)[0]
        pieces = list(stream_decode(vae, latents, pieces=FAMILIES["ltx2"].decode))
    assert len(pieces) > 1
    torch.testing.assert_close(torch.cat(pieces, dim=2), whole, rtol=1e-4, atol=1e-4)


def test_the_distilled_model_runs_its_eight_trained_sigmas_without_guidance(cli, folder, tmp_path, monkeypatch):
    """`--model ltx-2-distilled` is the diffusers docs' distilled recipe: DISTILLED_SIGMA_VALUES, guidance 1 and
    every other guidance term of the pipeline off, so one transformer pass per step."""
    from diffusers import LTX2VideoTransformer3DModel
    from diffusers.pipelines.ltx2.utils import DISTILLED_SIGMA_VALUES

    in_hub_cache(folder, MODELS["ltx-2-distilled"].repo, tmp_path, monkeypatch)
    passes = []
    forward = LTX2VideoTransformer3DModel.forward
    monkeypatch.setattr(LTX2VideoTransformer3DModel, "forward",
                        lambda self, *a, **k: passes.append(1) or forward(self, *a, **k))
    out = tmp_path / "x.mkv"
    code, _, stderr = cli("generate", PROMPT, "--model", "ltx-2-distilled", "--width", 32, "--height", 32,
                          "--frames", 9, "--seed", 4, "-o", out, "-q")
    assert code == 0, stderr
    recipe = json.loads(out.with_suffix(".json").read_text())
    assert (recipe["preset"], recipe["steps"], recipe["guidance"]) == ("ltx-2-distilled", 8, 1.0)
    assert recipe["pipeline_arguments"]["sigmas"] == DISTILLED_SIGMA_VALUES
    assert len(passes) == 8
    monkeypatch.setattr(LTX2VideoTransformer3DModel, "forward", forward)
    frames, audio = reference(folder, recipe, sigmas=DISTILLED_SIGMA_VALUES, audio_guidance_scale=1.0,
                              stg_scale=0.0, audio_stg_scale=0.0, modality_scale=1.0, audio_modality_scale=1.0)
    assert_same_video_and_sound(out, recipe, frames, audio)
    code, _, stderr = cli("generate", PROMPT, "--model", "ltx-2-distilled", "--steps", 4, "-o", tmp_path / "y.mkv")
    assert code == 2 and "ltx-2-distilled runs the 8 steps it was trained for: --steps 8 (asked for 4)" in stderr


def test_a_pull_fetches_the_pipelines_folders_only(cli, tmp_path, monkeypatch):
    """Lightricks/LTX-2 also holds single-file checkpoints, LoRAs and upsamplers of tens of GB each."""
    import huggingface_hub

    asked = {}
    monkeypatch.setattr(huggingface_hub, "snapshot_download", lambda repo, **kw: asked.update(kw, repo=repo) or
                        str(tmp_path))
    code, _, stderr = cli("models", "pull", "ltx-2")
    assert code == 0, stderr
    assert asked["repo"] == "Lightricks/LTX-2"
    assert {"model_index.json", "transformer/*", "audio_vae/*", "vocoder/*", "connectors/*"} <= set(
        asked["allow_patterns"]) and not any(p.endswith(".safetensors") for p in asked["allow_patterns"])


def test_models_list_shows_ltx2_with_its_presets(cli):
    code, stdout, _ = cli("models", "list")
    assert code == 0
    rows = {line.split()[0]: line for line in stdout.splitlines()[1:]}
    assert "t2v, i2v" in rows["ltx-2"] and " 30 " in rows["ltx-2"] and " 3.0 " in rows["ltx-2"]
    assert " 8 " in rows["ltx-2-distilled"] and " 1.0 " in rows["ltx-2-distilled"]


def test_keyframes_equal_its_condition_pipelines_frames_and_waveform(cli, folder, first_frame, tmp_path):
    from diffusers.pipelines.ltx2.pipeline_ltx2_condition import LTX2VideoCondition
    from PIL import Image

    second = tmp_path / "second.png"
    Image.fromarray(np.full((32, 32, 3), 200, np.uint8)).save(second)
    out = tmp_path / "x.mkv"
    recipe, _ = generate(cli, folder, out, "--frames", 17, "--keyframe", first_frame, "--keyframe", f"{second}:8:0.7")
    assert [(k["at"], k["strength"]) for k in recipe["verb"]["keyframes"]] == [("0", 1.0), ("8", 0.7)]
    conditions = [LTX2VideoCondition(frames=Image.open(first_frame).convert("RGB"), index=0, strength=1.0),
                  LTX2VideoCondition(frames=Image.open(second).convert("RGB"), index=8, strength=0.7)]
    frames, audio = reference(folder, recipe, "LTX2ConditionPipeline", conditions=conditions)
    assert_same_video_and_sound(out, recipe, frames, audio)


def test_extend_keeps_the_source_and_equals_its_condition_pipelines_new_frames(cli, folder, tmp_path):
    from diffusers.pipelines.ltx2.pipeline_ltx2_condition import LTX2VideoCondition
    from PIL import Image

    source = tmp_path / "source.mkv"
    frames = random_video(source, 20, seed=4)
    out = tmp_path / "longer.mkv"
    args = ("extend", source, PROMPT, "--model", folder, "--frames", 8, "--steps", 2, "--seed", 7, "-o", out, "-q")
    code, _, stderr = cli(*args)
    assert code == 2 and "extends without its soundtrack only: add --no-audio" in stderr and not out.exists()
    code, _, stderr = cli(*args, "--no-audio")
    assert code == 0, stderr
    video = read_frames(out)
    assert len(video) == 28 and np.array_equal(video[:20], frames) and read_audio(out) is None
    recipe = json.loads(out.with_suffix(".json").read_text())
    assert recipe["generated_frames"] == 25  # the 17 frames it continues, rendered again, and 8 new
    tail = [Image.fromarray(f) for f in frames[-17:]]
    expected, _ = reference(folder, {**recipe, "frames": 25}, "LTX2ConditionPipeline",
                            conditions=[LTX2VideoCondition(frames=tail, index=0, strength=1.0)])
    assert np.abs(video[20:].astype(np.float64) - expected[17:]).mean() <= 1.0
