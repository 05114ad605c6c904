"""One table of settings, one record per family: what derives from them, and what a model refuses."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

from sora_cli.families import FAMILIES
from sora_cli.settings import RECIPE_SETTINGS, ROW_SETTINGS, SETTINGS
from sora_cli.video import read_frames

from . import tiny_checkpoints


@pytest.fixture(scope="module")
def wan(tmp_path_factory):
    return tiny_checkpoints.wan(tmp_path_factory.mktemp("wan") / "wan")


def test_every_flag_setting_is_an_option_of_generate_and_batch(cli):
    code, generate_help, _ = cli("generate", "--help")
    assert code == 0
    code, batch_help, _ = cli("batch", "--help")
    for name, setting in SETTINGS.items():
        assert setting.flag in generate_help, name
        assert (setting.flag in batch_help) == (name != "image"), name  # a batch's images come from its rows


def test_a_recipe_records_every_recipe_setting_and_restores_it(cli, tiny_checkpoint, tmp_path):
    out = tmp_path / "a.mkv"
    code, _, stderr = cli("generate", "a red circle", "--model", tiny_checkpoint, "--frames", 5, "--steps", 2,
                          "--width", 32, "--height", 32, "--sampler", "euler", "--shift", 2.0, "--seed", 4,
                          "-o", out, "-q")
    assert code == 0, stderr
    recipe = json.loads(out.with_suffix(".json").read_text())
    assert set(RECIPE_SETTINGS) <= set(recipe)
    assert (recipe["sampler"], recipe["shift"], recipe["negative_prompt"]) == ("euler", 2.0, "")
    again = tmp_path / "b.mkv"
    assert cli("generate", "--from", out.with_suffix(".json"), "-o", again, "-q")[0] == 0
    assert np.array_equal(read_frames(again), read_frames(out))


def test_sampler_auto_is_the_models_own_and_recorded_as_what_ran(cli, tiny_checkpoint, tmp_path):
    out = tmp_path / "a.mkv"
    assert cli("generate", "a red circle", "--model", tiny_checkpoint, "--frames", 5, "--steps", 2, "--width", 32,
               "--height", 32, "-o", out, "-q")[0] == 0
    assert json.loads(out.with_suffix(".json").read_text())["sampler"] == "dpmpp_2m"


def test_row_settings_are_the_jobs_fields():
    from dataclasses import fields

    from sora_cli.job import Job

    assert {f.name for f in fields(Job)} == {"prompt", "generated_frames", *ROW_SETTINGS}


@pytest.mark.parametrize("args, message", [
    (["--sampler", "heun"], "--sampler heun does not work with wan models; valid for them: auto, euler, unipc, "
                            "dpmpp_2m; heun works with: sora-tiny"),
    (["--video-steps", "3"], "--video-steps does not apply to wan models"),
    (["--video-guidance", "3"], "models that take it: pyramid-flow-384p, pyramid-flow-768p"),
    (["--cache", "taylorseer"], "--cache taylorseer does not work with wan models"),
])
def test_an_option_a_family_cannot_honour_is_one_line_exit_2_and_no_file(cli, wan, tmp_path, args, message):
    out = tmp_path / "x.mkv"
    code, _, stderr = cli("generate", "a cat", "--model", wan, *args, "-o", out)
    assert code == 2 and message in stderr and len(stderr.strip().splitlines()) == 1
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("args, message", [
    (["--offload", "model"], "--offload model does not work with native models; valid for them: auto, none"),
    (["--cache", "pab"], "--cache does not apply to native models"),
    (["--sampler", "unipc"], "--sampler unipc does not work with native models"),
])
def test_the_native_engine_refuses_what_it_cannot_honour(cli, tiny_checkpoint, tmp_path, args, message):
    code, _, stderr = cli("generate", "a cat", "--model", tiny_checkpoint, *args, "-o", tmp_path / "x.mp4")
    assert code == 2 and message in stderr and not (tmp_path / "x.mp4").exists()


def test_a_prompt_file_row_asking_for_what_the_model_cannot_do_fails_before_rendering(cli, wan, tmp_path):
    rows = tmp_path / "p.jsonl"
    rows.write_text('{"prompt": "a cat"}\n{"prompt": "a dog", "video_steps": 2}\n')
    code, _, stderr = cli("batch", rows, "--out", tmp_path / "out", "--model", wan, "--width", 32, "--height", 32,
                          "--frames", 5, "--steps", 1)
    assert code == 2 and "p.jsonl:2" in stderr and "--video-steps does not apply to wan models" in stderr


@pytest.mark.parametrize("sampler, scheduler", [("euler", "FlowMatchEulerDiscreteScheduler"),
                                                ("unipc", "UniPCMultistepScheduler"),
                                                ("dpmpp_2m", "DPMSolverMultistepScheduler")])
def test_a_sampler_on_an_open_model_runs_that_scheduler_as_the_pipeline_would(cli, wan, tmp_path, sampler,
                                                                               scheduler):
    """The recipe says which scheduler ran, and the frames equal the pipeline run with that scheduler."""
    import diffusers
    import torch

    from sora_cli.backends.schedulers import scheduler_for

    out = tmp_path / "x.mkv"
    code, _, stderr = cli("generate", "a cat surfing", "--model", wan, "--sampler", sampler, "--width", 32,
                          "--height", 32, "--frames", 5, "--steps", 3, "--seed", 1, "-o", out, "-q")
    assert code == 0, stderr
    recipe = json.loads(out.with_suffix(".json").read_text())
    assert (recipe["sampler"], recipe["scheduler"], recipe["scheduler_shift"]) == (sampler, scheduler, 3.0)
    pipe = diffusers.WanPipeline.from_pretrained(wan)
    pipe.scheduler = scheduler_for(pipe.scheduler, sampler, None)
    assert type(pipe.scheduler).__name__ == scheduler
    reference = pipe(prompt="a cat surfing", negative_prompt="", height=32, width=32, num_frames=5,
                     num_inference_steps=3, guidance_scale=recipe["guidance"], output_type="np",
                     generator=torch.Generator("cpu").manual_seed(1)).frames[0] * 255
    assert np.abs(read_frames(out).astype(np.float64) - reference).mean() <= 1.0


def test_a_shift_on_an_open_model_is_its_schedulers_and_recorded(cli, wan, tmp_path):
    out = tmp_path / "x.mkv"
    assert cli("generate", "a cat", "--model", wan, "--shift", 5.0, "--width", 32, "--height", 32, "--frames", 5,
               "--steps", 1, "-o", out, "-q")[0] == 0
    recipe = json.loads(out.with_suffix(".json").read_text())
    assert (recipe["scheduler"], recipe["scheduler_shift"]) == ("UniPCMultistepScheduler", 5.0)


def test_every_family_record_is_whole():
    """What a new family must say: a backend, a frame rule, and (diffusers) its pipelines and decode pieces."""
    from sora_cli.backends.stream_decode import PIECES

    for family in FAMILIES.values():
        assert family.backend.count(":") == 1 and family.fps > 0 and family.size_multiple > 0
        assert set(family.options) <= {n for n, s in SETTINGS.items() if not s.universal}, family.name
        if family.backend.endswith("DiffusersBackend"):
            assert "t2v" in family.pipelines or "i2v" in family.pipelines
            assert family.decode in PIECES, family.name


def test_the_job_and_request_checks_import_no_torch():
    code = ("import sys; import sora_cli.job, sora_cli.render, sora_cli.batch, sora_cli.families; "
            "assert 'torch' not in sys.modules, 'torch imported'")
    assert subprocess.run([sys.executable, "-c", code], capture_output=True).returncode == 0


def test_the_ray_executor_does_not_import_batch_back():
    """batch picks the executor; the row renderer both use lives in render.py, so there is no cycle."""
    import ast
    from pathlib import Path

    import sora_cli

    tree = ast.parse((Path(sora_cli.__file__).parent / "ray_executor.py").read_text())
    assert "batch" not in {n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) and n.module}


def test_train_takes_no_batch_options(cli):
    code, _, stderr = cli("train", "--executor", "ray")
    assert code == 2 and "No such option" in stderr


OLDER_FAMILIES = {"ltx-video": tiny_checkpoints.ltx, "hunyuanvideo": tiny_checkpoints.hunyuan,
                  "mochi": tiny_checkpoints.mochi, "cogvideox": tiny_checkpoints.cogvideox}


@pytest.mark.parametrize("family, sampler", [(f, s) for f in OLDER_FAMILIES
                                             for s in (FAMILIES[f].options.get("sampler") or ("auto",))])
def test_every_sampler_a_family_declares_runs_on_it(cli, tmp_path_factory, family, sampler):
    folder = OLDER_FAMILIES[family](tmp_path_factory.mktemp(family) / family)
    out = folder.parent / "x.mkv"
    code, _, stderr = cli("generate", "a cat", "--model", folder, "--sampler", sampler, "--width", 32, "--height",
                          32, "--frames", 9, "--steps", 2, "-o", out, "-q")
    assert code == 0, stderr
    assert read_frames(out).shape == (9, 32, 32, 3)
