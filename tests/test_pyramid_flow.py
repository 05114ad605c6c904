"""Pyramid Flow: the native port against vectors recorded from the reference implementation
(tests/data/pyramid_flow/record.py), the block-noise sampler's statistics, and the CLI end to end on a tiny
checkpoint in the hub's layout."""

from __future__ import annotations

import json
import math
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from sora_cli.pyramid_flow.dit import load_dit, velocity
from sora_cli.pyramid_flow.sampler import Plan, sample
from sora_cli.pyramid_flow.schedule import block_noise
from sora_cli.video import read_frames

from . import tiny_checkpoints

DATA = Path(__file__).parent / "data" / "pyramid_flow"
TOLERANCE = 1e-4  # max abs difference in fp32


@pytest.fixture(scope="module")
def vectors() -> dict[str, torch.Tensor]:
    return load_file(DATA / "vectors.safetensors")


@pytest.fixture(scope="module")
def settings() -> dict:
    return json.loads((DATA / "vectors.json").read_text())


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory) -> Path:
    """The hub layout with its pickled VAE, converted the way a user would: `sora models convert`."""
    from sora_cli.cli import main

    folder = tiny_checkpoints.pyramid_flow(tmp_path_factory.mktemp("pyramid") / "miniflux")
    with pytest.raises(SystemExit) as done:
        main(["models", "convert", str(folder)])
    assert done.value.code == 0
    return folder


@pytest.fixture(scope="module")
def backend(checkpoint):
    from sora_cli.backends.pyramid_flow import PyramidFlowBackend

    return PyramidFlowBackend.load(str(checkpoint), device="cpu", dtype="float32", compile=False, offload="none")


def worst(a: torch.Tensor, b: torch.Tensor) -> float:
    assert a.shape == b.shape, (a.shape, b.shape)
    return (a.float() - b.float()).abs().max().item()


class Recorded:
    """The noise the reference drew, handed out in the same order."""

    def __init__(self, vectors: dict, prefix: str):
        self.vectors, self.prefix, self.blocks = vectors, prefix, 0

    def initial(self, shape):
        x = self.vectors[f"{self.prefix}.initial"]
        assert tuple(x.shape) == shape
        return x.clone()

    def block(self, shape):
        x = self.vectors[f"{self.prefix}.block{self.blocks}"]
        self.blocks += 1
        assert tuple(x.shape) == shape
        return x.clone()


def plan_for(settings: dict) -> Plan:
    return Plan(settings["latent_frames"], settings["height"] // 8, settings["width"] // 8, tuple(settings["steps"]),
                tuple(settings["video_steps"]), settings["guidance"], settings["video_guidance"])


def guided_velocity(backend, settings: dict):
    from sora_cli.job import Job

    negative = json_negative()
    job = Job(prompt=settings["prompt"], negative=negative, seed=0, steps=1, guidance=1.0, sampler="euler",
              shift=None, width=settings["width"], height=settings["height"], frames=1, generated_frames=1)
    return backend._guided(job)


def json_negative() -> str:
    import yaml

    return yaml.safe_load((Path(__file__).parents[1] / "presets" / "pyramid-flow-384p.yaml").read_text())["negative"]


# ---- parity with the reference ------------------------------------------------------------------------------
def test_vae_decodes_and_encodes_like_the_reference(backend, vectors):
    vae = backend.vae
    with torch.no_grad():
        whole = vae.decode(vectors["vae.z"])
        streamed = torch.cat(list(vae.decode_chunks(vectors["vae.z"], window=1)), dim=2)
        two_at_a_time = torch.cat(list(vae.decode_chunks(vectors["vae.z"], window=2)), dim=2)
        tiled = torch.cat(list(vae.decode_chunks(vectors["vae.z_wide"], window=1, tile=32)), dim=2)
        moments = vae.moments(vectors["vae.video"])
        image_mean = vae.moments(vectors["vae.image"]).chunk(2, dim=1)[0]
    assert whole.shape[2] == (vectors["vae.z"].shape[2] - 1) * 8 + 1
    assert worst(whole, vectors["vae.decode"]) <= TOLERANCE
    assert worst(streamed, vectors["vae.decode_chunked"]) <= TOLERANCE
    assert worst(two_at_a_time, vectors["vae.decode"]) <= TOLERANCE
    assert worst(tiled, vectors["vae.decode_tiled"]) <= TOLERANCE
    assert worst(moments, vectors["vae.encode_video"]) <= TOLERANCE
    assert worst(image_mean, vectors["vae.encode_image"]) <= TOLERANCE
    assert vectors["vae.decode"].abs().mean() > 0.05  # the vectors say something: not all zeros


def test_dit_matches_the_reference_with_and_without_history(checkpoint, vectors):
    dit = load_dit(checkpoint / "diffusion_transformer_384p", torch.float32)
    args = (vectors["dit.text"], vectors["dit.mask"], vectors["dit.pooled"], vectors["dit.t"])
    with torch.no_grad():
        alone = velocity(dit, [vectors["dit.current"]], *args)
        with_history = velocity(dit, [vectors["dit.history0"], vectors["dit.history1"], vectors["dit.current"]],
                                *args)
    assert worst(alone, vectors["dit.out"]) <= TOLERANCE
    assert worst(with_history, vectors["dit.out_history"]) <= TOLERANCE
    assert worst(vectors["dit.out"], vectors["dit.out_history"]) > 0.01  # history really changes the output


def test_text_to_video_matches_the_reference(backend, vectors, settings):
    """Three latent frames (17 frames) through the whole pyramid with guidance, then the streamed decode."""
    with torch.no_grad():
        frames = list(sample(guided_velocity(backend, settings), plan_for(settings), Recorded(vectors, "gen"), 4))
        decoded = torch.cat(list(backend._decode(iter(frames))), dim=2)
    assert worst(torch.cat(frames, dim=2), vectors["gen.latents"]) <= TOLERANCE
    assert worst(decoded, vectors["gen.video"]) <= TOLERANCE


def test_image_to_video_matches_the_reference(backend, vectors, settings):
    from sora_cli.backends.pyramid_flow import IMAGE_SCALE, IMAGE_SHIFT

    pixels = vectors["i2v.image"].float().permute(2, 0, 1)[None, :, None] / 127.5 - 1
    with torch.no_grad():
        mean, logvar = backend.vae.moments(pixels).chunk(2, dim=1)
        posterior = mean + torch.exp(0.5 * logvar.clamp(-30, 20)) * vectors["i2v.posterior_noise"]
        first = (posterior - IMAGE_SHIFT) * IMAGE_SCALE
        plan = plan_for({**settings, "steps": settings["video_steps"]})
        frames = list(sample(guided_velocity(backend, settings), plan, Recorded(vectors, "i2v"), 4,
                             first_latent=first))
    assert worst(torch.cat(frames, dim=2), vectors["i2v.latents"]) <= TOLERANCE


# ---- block noise ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("gamma", [1 / 3, 0.2, 0.0])
def test_block_noise_has_the_covariance_of_the_formula(gamma):
    """Each 2x2 block's four values: covariance (1+γ)I − γ·11ᵀ, estimated from 200k blocks."""
    x = block_noise((50, 1, 1, 4 * 2, 500 * 2), torch.Generator().manual_seed(0), gamma=gamma)
    blocks = x.reshape(50, 4, 2, 500, 2).permute(0, 1, 3, 2, 4).reshape(-1, 4).double()
    covariance = blocks.T @ blocks / len(blocks)
    expected = (1 + gamma) * torch.eye(4, dtype=torch.float64) - gamma * torch.ones(4, 4, dtype=torch.float64)
    assert (covariance - expected).abs().max() < 0.02, covariance
    assert blocks.mean(0).abs().max() < 0.01
    if gamma == 1 / 3:  # the formula's covariance is singular: no variance along the block mean at all
        assert blocks.mean(1).abs().max() < 1e-5


def test_block_noise_refuses_a_covariance_that_is_not_one():
    with pytest.raises(ValueError, match="gamma"):
        block_noise((1, 1, 1, 2, 2), gamma=0.4)


# ---- the CLI -------------------------------------------------------------------------------------------------
def test_generate_renders_end_to_end_and_records_the_recipe(cli, checkpoint, tmp_path):
    out = tmp_path / "x.mkv"
    args = ["generate", "a red circle moving left", "--model", checkpoint, "-o", out, "--frames", "12",
            "--width", "64", "--height", "64", "--steps", "2", "--video-steps", "1", "--seed", "3"]
    code, stdout, stderr = cli(*args)
    assert code == 0, stderr
    frames = read_frames(out)
    assert frames.shape == (12, 64, 64, 3)
    assert frames.std() > 1  # a picture, not a flat frame
    recipe = json.loads(out.with_suffix(".json").read_text())
    assert recipe["preset"] == "pyramid-flow-384p" and recipe["variant"] == "384p"
    assert (recipe["steps"], recipe["video_steps"], recipe["guidance"], recipe["video_guidance"]) == (2, 1, 7.0, 5.0)
    assert recipe["generated_frames"] == 17 and recipe["scheduler"] == "pyramid-flow-euler"
    again = tmp_path / "again.mkv"
    assert cli(*[again if a == out else a for a in args])[0] == 0
    assert np.array_equal(read_frames(again), frames)  # a seed gives the same video


def test_image_to_video_starts_from_the_image(cli, checkpoint, tmp_path):
    from PIL import Image

    image = tmp_path / "first.png"
    Image.fromarray(np.random.default_rng(1).integers(0, 256, (48, 80, 3), dtype=np.uint8)).save(image)
    out = tmp_path / "i2v.mkv"
    code, _, stderr = cli("generate", "the scene moves", "--model", checkpoint, "-o", out, "--image", image,
                          "--frames", "9", "--width", "64", "--height", "64", "--video-steps", "1", "--seed", "2")
    assert code == 0, stderr
    assert read_frames(out).shape == (9, 64, 64, 3)
    recipe = json.loads(out.with_suffix(".json").read_text())
    assert recipe["image"] == str(image)
    assert recipe["video_guidance"] == 4.0  # the reference's image-to-video default


def test_the_first_image_covers_the_frame_then_is_centre_cropped(checkpoint):
    """As the reference's app: resized to cover width x height (aspect kept), then the centre cut out."""
    from PIL import Image

    from sora_cli.backends.pyramid_flow import cover_and_crop

    wide = Image.new("RGB", (200, 50), (0, 0, 0))
    wide.paste((255, 0, 0), (90, 0, 110, 50))  # a red band in the middle tenth
    fitted = cover_and_crop(wide, 64, 64)
    assert fitted.size == (64, 64)
    pixels = np.asarray(fitted)
    assert pixels[:, 28:36, 0].min() > 200 and pixels[:, :4, 0].max() < 30  # the band stays centred and wide


def test_batch_renders_with_the_models_own_preset(cli, checkpoint, tmp_path):
    prompts = tmp_path / "prompts.txt"
    prompts.write_text("a red circle moving left\na blue square moving up\n")
    code, _, stderr = cli("batch", prompts, "--out", tmp_path / "renders", "--model", checkpoint, "--frames", "9",
                          "--width", "64", "--height", "64", "--steps", "1", "--video-steps", "1", "--seed", "0")
    assert code == 0, stderr
    rows = [json.loads(line) for line in (tmp_path / "renders" / "manifest.jsonl").read_text().splitlines()]
    rows = [r for r in rows if r["type"] == "row"]
    assert len(rows) == 2 and all(r["status"] == "done" for r in rows)
    assert {r["recipe"]["preset"] for r in rows} == {"pyramid-flow-384p"}
    assert all(read_frames(tmp_path / "renders" / r["output"]).shape == (9, 64, 64, 3) for r in rows)


def broken(checkpoint: Path, tmp_path: Path, change) -> Path:
    folder = tmp_path / "broken"
    shutil.copytree(checkpoint, folder)
    change(folder)
    return folder


@pytest.mark.parametrize("case, expected", [
    ("not pulled", "pyramid-flow-384p is not downloaded yet; run: sora models pull pyramid-flow-384p"),
    ("no T5", "missing text_encoder_2/"),
    ("pickled VAE", "convert it once with `sora models convert"),
    ("no DiT weights", "has no .safetensors weights"),
    ("odd size", "multiples of 64 (three pyramid stages of 2x2 patches); 100x64 is not: try 128x64"),
    ("too long", "renders at most 121 frames (8k+1 up to 121); asked for 200"),
])
def test_bad_requests_get_one_line_and_exit_2(cli, checkpoint, tmp_path, monkeypatch, case, expected):
    model, extra = str(checkpoint), []
    if case == "not pulled":
        monkeypatch.setenv("HF_HOME", str(tmp_path / "empty-hf-home"))
        model = "pyramid-flow-384p"
    elif case == "no T5":
        model = str(broken(checkpoint, tmp_path, lambda f: shutil.rmtree(f / "text_encoder_2")))
    elif case == "pickled VAE":
        model = str(broken(checkpoint, tmp_path,
                           lambda f: (f / "causal_video_vae" / "diffusion_pytorch_model.safetensors").unlink()))
    elif case == "no DiT weights":
        model = str(broken(checkpoint, tmp_path, lambda f: [p.unlink() for p in
                                                             (f / "diffusion_transformer_384p").glob("*.safetensors")]))
    elif case == "odd size":
        extra = ["--width", "100"]
    else:
        extra = ["--frames", "200"]
    out = tmp_path / "x.mkv"
    code, _, stderr = cli("generate", "a cat", "--model", model, "-o", out, "--width", "64", "--height", "64",
                          "--steps", "1", *extra)
    assert code == 2
    assert stderr.strip().count("\n") == 0 and "Traceback" not in stderr
    assert expected in stderr
    assert not out.exists()


def test_convert_reads_tensors_only(cli, tmp_path):
    """A pickle that would run code is refused (weights_only=True) and nothing runs; tensors convert exactly."""
    folder = tiny_checkpoints.pyramid_flow(tmp_path / "f")
    vae = folder / "causal_video_vae"
    state = torch.load(vae / "diffusion_pytorch_model.bin", weights_only=True)
    marker = tmp_path / "ran"

    class Payload:
        def __reduce__(self):
            return (Path.touch, (marker,))

    good = vae / "diffusion_pytorch_model.bin"
    shutil.copy(good, tmp_path / "good.bin")
    torch.save({"weight": Payload()}, good)
    code, _, stderr = cli("models", "convert", folder)
    assert code == 2 and "refusing to load it" in stderr
    assert not marker.exists() and not (vae / "diffusion_pytorch_model.safetensors").exists()
    shutil.copy(tmp_path / "good.bin", good)
    assert cli("models", "convert", folder)[0] == 0
    converted = load_file(vae / "diffusion_pytorch_model.safetensors")
    assert converted.keys() == state.keys()
    assert all(torch.equal(converted[k], state[k]) for k in state)


def test_pull_takes_its_own_variant_and_converts_the_vae(monkeypatch, tmp_path):
    """The network is the only thing replaced: the hub's answer is a folder in its layout."""
    from sora_cli import weights

    hub = tiny_checkpoints.pyramid_flow(tmp_path / "snapshot")
    calls = []

    def fake_pull(repo, revision, ignore=weights.HUB_IGNORE, allow=None):
        calls.append((repo, revision, list(ignore), allow))
        return hub

    monkeypatch.setattr(weights, "pull", fake_pull)
    assert weights.pull_model("pyramid-flow-768p") == hub
    (repo, _, ignore, allow), (_, _, vae_ignore, vae_allow) = calls
    assert repo == "rain1011/pyramid-flow-miniflux"
    assert "diffusion_transformer_384p/*" in ignore and "*.bin" in ignore
    assert vae_allow == ["causal_video_vae/diffusion_pytorch_model.bin"] and vae_ignore == []
    assert (hub / "causal_video_vae" / "diffusion_pytorch_model.safetensors").is_file()


def test_models_list_shows_both_variants(cli):
    code, stdout, _ = cli("models", "list", "--json")
    rows = {r["id"]: r for r in json.loads(stdout)}
    assert rows["pyramid-flow-384p"]["native_size"] == "640x384" and rows["pyramid-flow-384p"]["frame_rule"] == \
        "8k+1 up to 121"
    assert rows["pyramid-flow-768p"]["native_size"] == "1280x768" and rows["pyramid-flow-768p"]["steps"] == 20
    assert math.isclose(rows["pyramid-flow-768p"]["guidance"], 7.0)


def test_guidance_off_is_the_prompt_alone_as_in_the_reference(backend, settings):
    """At guidance <= 1 the reference runs the positive prompt alone (no negative pass): so does sora."""
    velocity = guided_velocity(backend, settings)
    x = torch.randn(1, backend.vae.latent_channels, 1, settings["height"] // 8, settings["width"] // 8,
                    generator=torch.Generator().manual_seed(0))
    t = torch.tensor(500.0, dtype=torch.float64)
    with torch.no_grad():
        off, half, one, two = (velocity([x], t, g) for g in (0.0, 0.5, 1.0, 2.0))
    torch.testing.assert_close(off, one)
    torch.testing.assert_close(half, one)
    assert (two - one).abs().max() > 1e-3  # above 1 the negative prompt steers


def test_presets_decode_tiled_as_the_reference_does():
    from sora_cli.presets import resolve_preset

    for name in ("pyramid-flow-384p", "pyramid-flow-768p"):
        preset = resolve_preset(name)
        assert preset.vae_tiling is True and preset.video_guidance is None  # 5 from text, 4 from an image
