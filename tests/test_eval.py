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
