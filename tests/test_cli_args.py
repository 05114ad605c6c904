"""The CLI layer alone, through Typer's runner: flags reach the one function each command forwards to."""

from pathlib import Path

from typer.testing import CliRunner

from sora_cli import generate as generate_module
from sora_cli.cli import app
from sora_cli.render import RenderResult


def test_generate_forwards_only_the_flags_given(monkeypatch):
    received = {}

    def fake_run_generate(prompt, **kwargs):
        received.update(prompt=prompt, **kwargs)
        recipe = {"seed": 5, "frames": 9, "fps": 8, "width": 32, "height": 32, "model": "m", "preset": "smoke",
                  "timings": {"total_s": 0.1}}
        return [RenderResult(Path("x.mp4"), recipe)]

    monkeypatch.setattr(generate_module, "run_generate", fake_run_generate)
    result = CliRunner().invoke(app, ["generate", "a cat", "--frames", "9", "--no-compile", "--dtype", "bf16",
                                      "--preset", "smoke", "-o", "x.mp4", "--overwrite", "--json", "-q"])
    assert result.exit_code == 0, result.output
    assert received["prompt"] == "a cat"
    assert received["flags"] == {"frames": 9, "compile": False, "dtype": "bf16"}
    assert (received["preset_ref"], received["output"], received["overwrite"]) == ("smoke", Path("x.mp4"), True)
    assert '"seed": 5' in result.stdout


def test_rich_progress_shows_steps_rate_and_both_phases(capsys):
    from sora_cli.progress import RichReporter

    reporter = RichReporter()
    for step in range(1, 5):
        reporter("denoise", step, 4)
    reporter("decode", 9, 9)
    reporter.close()
    err = capsys.readouterr().err
    assert "denoising" in err and "4/4" in err and "decoding + encoding" in err and "9/9" in err
