"""`sora train` on a tiny configuration: the loss falls, and a stopped run resumes to the very same weights."""

import json
from dataclasses import replace

import pytest
import torch
from safetensors.torch import load_file

from sora_cli import train as training
from sora_cli.data.world import SHAPES, is_held_out, parse_caption, sample_scene
from sora_cli.models.text import tokenize
from sora_cli.train import Recipe, direction_swap, shape_swap, train

from .conftest import TINY

QUICK = Recipe(size=32, vae_steps=80, vae_batch=2, vae_frames=9, vae_lr=5e-4, dit_steps=60, dit_batch=4,
               dit_lr=2e-3, refine_steps=20, refine_lr=1e-3, refine_warmup=2, refine_buffer=6, direction_steps=40,
               direction_lr=2e-3, direction_warmup=2, warmup=2, buffer=8, refresh=1, buffer_latents=5,
               polish_steps=0, tempo_steps=0, checkpoint_every=20, eval_every=0)
SHORT = Recipe(**{**QUICK.__dict__, "vae_steps": 4, "dit_steps": 4, "refine_steps": 4, "direction_steps": 4})


def losses(run_dir, stage, key):
    records = [json.loads(line) for line in (run_dir / "log.jsonl").read_text().splitlines()]
    return [r[key] for r in records if r["stage"] == stage and key in r]


def test_a_short_run_lowers_the_losses_and_exports_a_checkpoint_sora_can_load(tmp_path):
    from sora_cli.weights import load_native

    exported = train(tmp_path / "run", QUICK, resume=False, params=TINY, report=lambda _: None)
    vae_l1, dit_loss = losses(tmp_path / "run", "vae", "l1"), losses(tmp_path / "run", "dit", "loss")
    assert len(vae_l1) == 4 and len(dit_loss) == 3
    assert vae_l1[-1] < 0.8 * vae_l1[0]
    assert dit_loss[-1] < 0.8 * dit_loss[0]
    # stage 3 ran from stage 2's weights: its plain loss continues where stage 2 ended, not from scratch
    direction = losses(tmp_path / "run", "direction", "loss")
    assert len(direction) == 2 and direction[-1] < dit_loss[0]
    model, family = load_native(exported, "cpu", torch.float32)
    assert family == "native" and model.params.vae.latent_scale != 1.0  # stage 1 measured the latent statistics
    assert {v.dtype for v in load_file(str(exported)).values()} == {torch.float16}


def test_the_direction_stage_contrasts_each_caption_with_its_direction_reversed():
    swap = direction_swap(32)
    captions = ["a red circle moving left on a white background", "a blue square moving up on a gray background",
                "a green triangle bouncing on a navy background"]
    reversed_ = [c.replace("left", "right").replace("up", "down") for c in captions]
    assert torch.equal(swap(tokenize(captions, 32)), tokenize(reversed_, 32))
    assert torch.equal(swap(swap(tokenize(captions, 32))), tokenize(captions, 32))


def test_the_shape_stage_contrasts_each_caption_with_another_shape_never_a_held_out_one():
    import numpy as np

    rng = np.random.default_rng(3)
    scenes = [sample_scene(rng) for _ in range(200)]
    captions = [s.caption.replace("a orange", "an orange") for s in scenes] + [""]
    tokens = tokenize(captions, 32)
    swapped = shape_swap(32)(tokens, np.random.default_rng(0))
    words = {int(tokenize([w], 32)[0, 1]): w for w in SHAPES}
    picked = set()
    for scene, before, after in zip(scenes, tokens, swapped):
        changed = (before != after).nonzero().flatten().tolist()
        others = [s for s in SHAPES if s != scene.shape and not is_held_out(parse_caption(
            scene.caption.replace(scene.shape, s)))]
        if not others:  # a purple circle bouncing: a square may not bounce, a triangle may not be purple
            assert not changed
            continue
        assert len(changed) == 1 and words[int(before[changed[0]])] == scene.shape
        picked.add(words[int(after[changed[0]])])
        assert words[int(after[changed[0]])] in others
    assert picked == set(SHAPES)
    assert torch.equal(swapped[-1], tokens[-1])  # a dropped caption stays dropped


@pytest.mark.parametrize("stop_in", ["dit", "refine", "direction", "shape", "polish", "polish_direction", "tempo"])
def test_a_stopped_run_resumes_to_the_same_weights_as_one_that_never_stopped(tmp_path, monkeypatch, stop_in):
    recipe = replace(SHORT, shape_steps=4, polish_steps=4, polish_lr=1e-3, polish_direction_steps=4,
                     tempo_steps=4, tempo_lr=1e-3, checkpoint_every=2)
    train(tmp_path / "straight", recipe, resume=False, params=TINY, report=lambda _: None)

    real_save = training.Run.save

    def save_then_stop(self, model, stage, step, *args):
        real_save(self, model, stage, step, *args)
        if stage == stop_in and step == 2:
            raise KeyboardInterrupt

    monkeypatch.setattr(training.Run, "save", save_then_stop)
    with pytest.raises(KeyboardInterrupt):
        train(tmp_path / "stopped", recipe, resume=False, params=TINY, report=lambda _: None)
    monkeypatch.setattr(training.Run, "save", real_save)
    with pytest.raises(Exception, match="already holds a training run"):
        train(tmp_path / "stopped", recipe, resume=False, params=TINY, report=lambda _: None)
    train(tmp_path / "stopped", recipe, resume=True, params=TINY, report=lambda _: None)

    a = load_file(str(tmp_path / "straight" / "model.safetensors"))
    b = load_file(str(tmp_path / "stopped" / "model.safetensors"))
    assert a.keys() == b.keys()
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_refine_and_direction_from_the_stage_two_export_alone_give_the_weights_of_the_whole_run(tmp_path):
    """How the shipped weights were made from the previous ones (docs/sora-tiny.md): exactly what a run ends with."""
    from sora_cli.train import train_from_stage2

    recipe = SHORT
    train(tmp_path / "straight", recipe, resume=False, params=TINY, report=lambda _: None)
    train_from_stage2(tmp_path / "later", recipe, tmp_path / "straight" / "stage2.safetensors", report=lambda _: None)
    a = load_file(str(tmp_path / "straight" / "sora-tiny.safetensors"))
    b = load_file(str(tmp_path / "later" / "sora-tiny.safetensors"))
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    assert losses(tmp_path / "later", "refine", "loss") == losses(tmp_path / "straight", "refine", "loss")


def test_the_polish_stage_is_refine_and_direction_again_from_the_export_of_the_stages_before(tmp_path):
    """How the shipped weights were made (docs/sora-tiny.md): refine and direction run again from the four-stage
    export alone (`train_from_stage2` with the polish stage's steps and rate) give what a whole run ends with."""
    from sora_cli.train import train_from_stage2

    whole = replace(SHORT, polish_steps=6, polish_lr=2e-3, polish_direction_steps=3)
    train(tmp_path / "whole", whole, resume=False, params=TINY, report=lambda _: None)
    four = train(tmp_path / "four", replace(whole, polish_steps=0), resume=False, params=TINY, report=lambda _: None)
    again = replace(whole, refine_steps=6, refine_lr=2e-3, direction_steps=3, polish_steps=0)
    train_from_stage2(tmp_path / "again", again, four, report=lambda _: None)
    a = load_file(str(tmp_path / "whole" / "sora-tiny.safetensors"))
    b = load_file(str(tmp_path / "again" / "sora-tiny.safetensors"))
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    assert len(losses(tmp_path / "whole", "polish", "loss")) == 1 and losses(tmp_path / "whole", "polish_direction",
                                                                           "ratio")
    assert not all(torch.equal(a[k], v) for k, v in load_file(str(four)).items())  # it changed the weights


def test_the_polish_stage_added_to_a_finished_run_gives_the_weights_of_a_run_that_had_it(tmp_path):
    with_it = replace(SHORT, polish_steps=4, polish_lr=1e-3, polish_direction_steps=4)
    assert_added_stage_gives_the_weights_of_a_run_that_had_it(tmp_path, with_it, "polish")
    with pytest.raises(Exception, match="past the direction stage"):
        train(tmp_path / "added", replace(with_it, direction_steps=6), resume=True, params=TINY, report=lambda _: None)
    with pytest.raises(Exception, match="finished its polish stage with 4 steps; --polish-steps cannot change it"):
        train(tmp_path / "added", replace(with_it, polish_steps=8), resume=True, params=TINY, report=lambda _: None)


def test_the_tempo_stage_from_the_export_of_the_stages_before_gives_the_weights_of_the_whole_run(tmp_path):
    """How the shipped weights were made (docs/sora-tiny.md): the tempo stage on the five stages' export alone."""
    from sora_cli.train import train_from_stage2
    from sora_cli.weights import load_native

    whole = replace(SHORT, polish_steps=2, polish_lr=2e-3, polish_direction_steps=2, tempo_steps=5, tempo_lr=2e-3)
    train(tmp_path / "whole", whole, resume=False, params=TINY, report=lambda _: None)
    five = train(tmp_path / "five", replace(whole, tempo_steps=0), resume=False, params=TINY, report=lambda _: None)
    train_from_stage2(tmp_path / "again", replace(whole, refine_steps=0, direction_steps=0, polish_steps=0), five,
                      report=lambda _: None)
    a = load_file(str(tmp_path / "whole" / "sora-tiny.safetensors"))
    b = load_file(str(tmp_path / "again" / "sora-tiny.safetensors"))
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    assert len(losses(tmp_path / "again", "tempo", "loss")) == 1 and not losses(tmp_path / "again", "refine", "loss")
    assert not all(torch.equal(a[k], v) for k, v in load_file(str(five)).items())  # it changed the weights
    # the model it ships makes two frames for each it delivers; the one before it, one
    strides = [load_native(f, "cpu", torch.float32)[0].params.frame_stride
               for f in (tmp_path / "whole" / "sora-tiny.safetensors", five)]
    assert strides == [2, 1]


def test_the_tempo_stage_added_to_a_finished_run_gives_the_weights_of_a_run_that_had_it(tmp_path):
    with_it = replace(SHORT, tempo_steps=4, tempo_lr=1e-3)
    assert_added_stage_gives_the_weights_of_a_run_that_had_it(tmp_path, with_it, "tempo")
    with pytest.raises(Exception, match="past the tempo stage; --direction-steps can only grow before it"):
        train(tmp_path / "added", replace(with_it, direction_steps=6), resume=True, params=TINY, report=lambda _: None)
    for steps in (8, 2, 0):  # a finished stage's length is what it was: neither continued nor silently kept
        with pytest.raises(Exception, match="finished its tempo stage with 4 steps; --tempo-steps cannot change it"):
            train(tmp_path / "added", replace(with_it, tempo_steps=steps), resume=True, params=TINY,
                  report=lambda _: None)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_a_cuda_run_trains_on_the_batches_the_cpu_run_draws(tmp_path):
    """--device cuda: every stage runs there, on the CPU run's batches (so its losses are the CPU run's, up to the
    GPU's arithmetic), and exports a file sora loads."""
    from sora_cli.weights import load_native

    recipe = replace(SHORT, shape_steps=2, polish_steps=2, polish_lr=1e-3, polish_direction_steps=2, tempo_steps=2,
                     tempo_lr=1e-3)
    train(tmp_path / "cpu", recipe, resume=False, params=TINY, report=lambda _: None)
    exported = train(tmp_path / "cuda", recipe, resume=False, params=TINY, report=lambda _: None, device="cuda")
    for stage, key in (("vae", "l1"), ("dit", "loss"), ("refine", "loss"), ("direction", "loss"),
                       ("shape", "loss"), ("polish", "loss"), ("tempo", "loss")):
        cpu, cuda = losses(tmp_path / "cpu", stage, key), losses(tmp_path / "cuda", stage, key)
        assert cpu and len(cpu) == len(cuda), stage
        assert all(abs(a - b) <= 0.05 * abs(a) + 1e-4 for a, b in zip(cpu, cuda)), (stage, cpu, cuda)
    model, family = load_native(exported, "cpu", torch.float32)
    assert family == "native" and model.params.frame_stride == 2


def assert_added_stage_gives_the_weights_of_a_run_that_had_it(tmp_path, with_it: Recipe, stage: str) -> None:
    """A run finished without `stage`, then resumed with it, ends as a run that had it from the start."""
    train(tmp_path / "straight", with_it, resume=False, params=TINY, report=lambda _: None)
    without = replace(with_it, **{f"{stage}_steps": 0})
    train(tmp_path / "added", without, resume=False, params=TINY, report=lambda _: None)
    train(tmp_path / "added", with_it, resume=True, params=TINY, report=lambda _: None)

    a = load_file(str(tmp_path / "straight" / "model.safetensors"))
    b = load_file(str(tmp_path / "added" / "model.safetensors"))
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert losses(tmp_path / "added", stage, "loss") == losses(tmp_path / "straight", stage, "loss")


def test_the_direction_stage_added_to_a_finished_run_gives_the_weights_of_a_run_that_had_it(tmp_path):
    with_it = Recipe(**{**QUICK.__dict__, "vae_steps": 4, "dit_steps": 4, "direction_steps": 4})
    assert_added_stage_gives_the_weights_of_a_run_that_had_it(tmp_path, with_it, "direction")


def test_the_shape_stage_added_to_a_finished_run_gives_the_weights_of_a_run_that_had_it(tmp_path):
    with_it = Recipe(**{**QUICK.__dict__, "vae_steps": 4, "dit_steps": 4, "refine_steps": 4, "direction_steps": 4,
                        "shape_steps": 4, "shape_lr": 2e-3, "shape_warmup": 2})
    assert_added_stage_gives_the_weights_of_a_run_that_had_it(tmp_path, with_it, "shape")
    assert losses(tmp_path / "straight", "shape", "shape_ratio")
    with pytest.raises(Exception, match="past the direction stage"):
        train(tmp_path / "added", replace(with_it, direction_steps=6), resume=True, params=TINY, report=lambda _: None)


@pytest.mark.parametrize("args, message", [
    (["--vae-steps", "-1"], "--vae-steps must be >= 0"),
    (["--dit-steps", "-5"], "--dit-steps must be >= 0"),
    (["--direction-steps", "-2"], "--direction-steps must be >= 0"),
    (["--shape-steps", "-3"], "--shape-steps must be >= 0"),
    (["--polish-steps", "-4"], "--polish-steps must be >= 0"),
    (["--tempo-steps", "-1"], "--tempo-steps must be >= 0"),
    (["--device", "tpu"], "unknown device 'tpu'; valid: auto, cuda, mps, cpu"),
    pytest.param(["--device", "cuda"], "device 'cuda' is not available on this machine; available:",
                 marks=pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA")),
])
def test_bad_training_options_are_one_line_and_exit_2(cli, tmp_path, args, message):
    code, _, stderr = cli("train", "--out", tmp_path / "run", *args)
    assert code == 2 and message in stderr and len(stderr.strip().splitlines()) == 1
    assert not (tmp_path / "run").exists()


def test_the_text_stage_pretrains_the_tower_resumes_exactly_and_leaves_it_frozen_in_stage_two(tmp_path, monkeypatch):
    from sora_cli.text_probe import text_probe
    from sora_cli.weights import load_native

    recipe = Recipe(**{**QUICK.__dict__, "vae_steps": 2, "text_steps": 4, "text_batch": 4, "dit_steps": 2,
                       "refine_steps": 0, "direction_steps": 0, "text_lr_scale": 0.0, "checkpoint_every": 2})
    real_save, pretrained = training.Run.save, {}

    def save_and_keep(self, model, stage, step, *args):
        real_save(self, model, stage, step, *args)
        if stage == "dit" and step == 0:  # the end of the text stage
            pretrained.update({k: v.clone() for k, v in model.text.state_dict().items()})

    monkeypatch.setattr(training.Run, "save", save_and_keep)
    train(tmp_path / "straight", recipe, resume=False, params=TINY, report=lambda _: None)
    assert len(losses(tmp_path / "straight", "text", "loss")) == 2 and losses(tmp_path / "straight", "text", "reversed")

    def save_then_stop(self, model, stage, step, *args):
        real_save(self, model, stage, step, *args)
        if stage == "text" and step == 2:
            raise KeyboardInterrupt

    monkeypatch.setattr(training.Run, "save", save_then_stop)
    with pytest.raises(KeyboardInterrupt):
        train(tmp_path / "stopped", recipe, resume=False, params=TINY, report=lambda _: None)
    monkeypatch.setattr(training.Run, "save", real_save)
    train(tmp_path / "stopped", recipe, resume=True, params=TINY, report=lambda _: None)
    a = load_file(str(tmp_path / "straight" / "model.safetensors"))
    b = load_file(str(tmp_path / "stopped" / "model.safetensors"))
    assert all(torch.equal(a[k], b[k]) for k in a)

    # stage 2 kept the tower the text stage made, frozen (its EMA is that tower), and trained the DiT
    model, _ = load_native(tmp_path / "straight" / "model.safetensors", "cpu", torch.float32)
    assert all(torch.equal(model.text.state_dict()[k], v) for k, v in pretrained.items())
    model, _ = load_native(tmp_path / "straight" / "model.safetensors", "cpu", torch.float32)
    probe = text_probe(model, n=4, seed=0, fit_steps=2)
    cosines = [v for pair in probe["cosine"].values() for v in pair.values()]
    accuracies = [v for group in probe["retrieval"].values() for v in group.values()]
    assert set(probe["cosine"]) >= {"left/right", "up/down"} and all(-1 <= v <= 1 for v in cosines)
    assert set(probe["retrieval"]) == {"seen", "held_out"} and all(0 <= v <= 1 for v in accuracies)
