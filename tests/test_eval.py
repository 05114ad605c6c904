"""`sora eval`: a table on stdout, a JSON report, and clean errors for bad requests."""

import json

import pytest


def test_eval_prints_a_table_and_writes_a_json_report(cli, tiny_checkpoint, tmp_path):
    code, stdout, stderr = cli("eval", "--model", tiny_checkpoint, "--seen", 1, "--held-out", 1, "--seeds", 1,
                               "--frames", 9, "--steps", 2, "-o", tmp_path / "r.json")
    assert code == 0, stderr
    assert "colour" in stdout and "seen" in stdout and "held_out" in stdout and "seconds per clip" in stdout
    report = json.loads((tmp_path / "r.json").read_text())
    assert len(report["clips"]) == 2 and [c["held_out"] for c in report["clips"]] == [False, True]
    for group in ("seen", "held_out"):
        assert set(report["summary"][group]) == {"colour", "shape", "motion", "background", "present", "clips"}
    assert set(report["summary"]["steadiness"]) == {"background_drift_rgb_max", "colour_agreement_mean",
                                                    "shape_agreement_mean"}
    assert report["summary"]["seconds_per_clip"] > 0 and report["settings"]["frames"] == 9


@pytest.mark.parametrize("args, message", [
    (["--seeds", "0"], "--seeds must be >= 1"),
    (["--seen", "0", "--held-out", "0"], "nothing to evaluate"),
    (["-o", "r.txt"], "--output must end in .json"),
    (["--frames", "0"], "--frames must be >= 1"),
])
def test_bad_eval_requests_are_one_line_and_exit_2(cli, tiny_checkpoint, args, message):
    code, _, stderr = cli("eval", "--model", tiny_checkpoint, *args)
    assert code == 2 and message in stderr and len(stderr.strip().splitlines()) == 1


def test_eval_refuses_an_open_model_before_loading_it(cli, tmp_path):
    code, _, stderr = cli("eval", "--model", "mochi-1", "-o", tmp_path / "e.json")
    assert code == 2 and "scores native tiny-world models; mochi-1 is not one" in stderr


# --- `sora eval --random N --seed S`: fresh draws, rendered and encoded as `sora generate` does ---------------

RANDOM_RUN = ("--frames", 9, "--steps", 2, "-q")


def random_report(cli, checkpoint, path, n, seed):
    code, stdout, stderr = cli("eval", "--model", checkpoint, "--random", n, "--seed", seed, *RANDOM_RUN, "-o", path)
    assert code == 0, stderr
    return stdout, json.loads(path.read_text())


def without_timings(report):
    clips = [{k: v for k, v in c.items() if k != "seconds"} for c in report["clips"]]
    summary = {k: v for k, v in report["summary"].items() if k != "seconds_per_clip"}
    return report["settings"], summary, clips


def test_random_eval_same_seed_same_draws_and_report_other_seed_new_draws(cli, tiny_checkpoint, tmp_path):
    _, first = random_report(cli, tiny_checkpoint, tmp_path / "a.json", 4, 11)
    _, again = random_report(cli, tiny_checkpoint, tmp_path / "b.json", 4, 11)
    _, other = random_report(cli, tiny_checkpoint, tmp_path / "c.json", 4, 12)
    assert without_timings(first) == without_timings(again)
    draws = [(c["caption"], c["seed"]) for c in first["clips"]]
    assert len(set(draws)) == 4 and draws != [(c["caption"], c["seed"]) for c in other["clips"]]
    assert {c["seed"] for c in first["clips"]}.isdisjoint(c["seed"] for c in other["clips"])


def test_random_eval_report_settings_groups_all_five_and_confusion(cli, tiny_checkpoint, tmp_path):
    from sora_cli.data.world import MOTIONS, parse_caption

    stdout, report = random_report(cli, tiny_checkpoint, tmp_path / "r.json", 6, 3)
    settings = report["settings"]
    assert {k: settings[k] for k in ("mode", "random", "seed", "preset", "size", "frames", "steps", "sampler")} == {
        "mode": "random", "random": 6, "seed": 3, "preset": "default", "size": "256x256", "frames": 9, "steps": 2,
        "sampler": "dpmpp_2m"}
    assert settings["guidance"] == 5.0 and "libx264" in settings["video"]
    clips, summary = report["clips"], report["summary"]
    assert [c["held_out"] for c in clips] == [False, True] * 3  # alternating, as --help says
    for group in ("seen", "held_out"):
        assert set(summary[group]) == {"colour", "shape", "motion", "background", "present", "clips"}
        assert summary[group]["clips"] == 3
        rows = [c for c in clips if c["held_out"] == (group == "held_out")]
        assert summary["all_five"][group] == round(sum(all(c["correct"].values()) for c in rows) / 3, 4)
    assert 0 <= summary["steadiness"]["shape_agreement_mean"] <= 1
    confusion = summary["motion_confusion"]
    assert sum(sum(seen.values()) for seen in confusion.values()) == len(clips) == 6
    for asked, seen in confusion.items():
        assert asked in MOTIONS
        assert sum(seen.values()) == sum(parse_caption(c["caption"]).motion == asked for c in clips)
        assert seen.get(asked, 0) == sum(parse_caption(c["caption"]).motion == asked and c["correct"]["motion"]
                                         for c in clips)
    assert "all five" in stdout and "motion asked -> motion the checker saw" in stdout


def test_random_draws_alternate_seen_and_held_out_and_cover_the_world():
    from sora_cli.data.world import BACKGROUNDS, COLOURS, MOTIONS, SHAPES, is_held_out
    from sora_cli.evaluate import random_draws

    draws = random_draws(301, seed=4)
    assert [is_held_out(scene) for scene, _ in draws] == [i % 2 == 1 for i in range(301)]
    assert random_draws(301, seed=4) == draws and random_draws(301, seed=5) != draws
    for values, attribute in ((COLOURS, "colour"), (SHAPES, "shape"), (MOTIONS, "motion"),
                              (BACKGROUNDS, "background")):
        assert {getattr(scene, attribute) for scene, _ in draws} == set(values)
    assert len({seed for _, seed in draws}) == 301 and all(0 <= seed < 2**31 for _, seed in draws)
    assert len({(scene.x, scene.y) for scene, _ in draws}) == 301  # random starts, not the centre


def test_the_checker_scores_the_worlds_clips_100_percent_through_the_encoded_path(tiny_checkpoint, monkeypatch):
    """The random eval's path (job from the default preset, render_to_file to an H.264 .mp4, decoded, area-
    downscaled) with the world's renderer in place of the model: the checker must get every clip right."""
    import torch

    from sora_cli import video
    from sora_cli.backends import backend_for
    from sora_cli.data.world import render
    from sora_cli.evaluate import random_draws, run_random_eval
    from sora_cli.pipeline import resize
    from sora_cli.presets import resolve_preset

    draws = random_draws(16, seed=21)
    scenes = {seed: scene for scene, seed in draws}

    def world_render(job, progress=None, verb=None):  # the drawn scene at 64x64, upscaled as the model's output is
        clip = torch.from_numpy(render(scenes[job.seed], job.frames, fps=24)).permute(3, 0, 1, 2)[None]
        big = resize(clip.float() / 127.5 - 1, job.height, job.width)
        yield ((big[0] + 1) * 127.5).round().clamp(0, 255).to(torch.uint8).permute(1, 2, 3, 0).numpy()

    preset = resolve_preset("default").with_overrides({"model": str(tiny_checkpoint), "device": "cpu"})
    backend = backend_for(preset)  # a real native backend, with the model swapped for the world's renderer
    monkeypatch.setattr(backend, "render", world_render)
    monkeypatch.setattr(backend, "frame_count", lambda frames: frames)
    read, files = video.read_frames, []

    def read_and_probe(path):  # every judged clip came back from a 256x256 H.264 file
        files.append({k: video.probe(path)[k] for k in ("codec", "width", "height", "frames")})
        return read(path)

    monkeypatch.setattr(video, "read_frames", read_and_probe)
    results = run_random_eval(backend, preset, draws)
    assert files == [{"codec": "h264", "width": 256, "height": 256, "frames": 72}] * 16 and len(results) == 16
    for result in results:
        assert all(result.correct.values()), result
        assert result.verdict["shape_agreement"] == 1


def test_fixed_eval_reports_all_five_and_the_motion_confusion_too(cli, tiny_checkpoint, tmp_path):
    code, stdout, stderr = cli("eval", "--model", tiny_checkpoint, "--seen", 2, "--held-out", 1, "--seeds", 1,
                               "--frames", 9, "--steps", 2, "-q", "-o", tmp_path / "r.json")
    assert code == 0, stderr
    report = json.loads((tmp_path / "r.json").read_text())
    assert report["settings"]["mode"] == "fixed" and set(report["summary"]["all_five"]) == {"seen", "held_out"}
    assert sum(sum(seen.values()) for seen in report["summary"]["motion_confusion"].values()) == 3
    assert "all five" in stdout


@pytest.mark.parametrize("args, message", [
    (["--random", "0"], "--random must be >= 1, got 0"),
    (["--random", "-3"], "--random must be >= 1, got -3"),
    (["--seed", "4"], "--seed picks the captions of --random N"),
])
def test_bad_random_eval_requests_are_one_line_and_exit_2(cli, tiny_checkpoint, tmp_path, args, message):
    code, _, stderr = cli("eval", "--model", tiny_checkpoint, *args, "-o", tmp_path / "r.json")
    assert code == 2 and message in stderr and len(stderr.strip().splitlines()) == 1
    assert not (tmp_path / "r.json").exists()
