"""Fast start: --help and presets list never import torch; the console script and docs stay in step."""

import os
import subprocess
import sys

import pytest

from sora_cli.docgen import update

from .conftest import ROOT, sora_process

PROBE = """
import sys
from sora_cli.cli import main
try:
    main({args!r})
except SystemExit:
    pass
print("TORCH_IMPORTED" if "torch" in sys.modules else "NO_TORCH", file=sys.stderr)
"""


@pytest.mark.parametrize("args", [["--help"], [], ["generate", "--help"], ["batch", "--help"], ["presets", "list"],
                                  ["presets", "show", "smoke"]])
def test_help_and_presets_do_not_import_torch(args):
    done = subprocess.run([sys.executable, "-c", PROBE.format(args=args)], capture_output=True, text=True)
    assert done.stderr.strip().endswith("NO_TORCH"), done.stderr

# the console script's way in (argv from sys.argv), in a process that has loaded torch: it ends without the
# interpreter's teardown, which must still leave exit handlers run and piped output whole
ENDS = """
import atexit, sys
import torch
atexit.register(lambda: print("EXIT HANDLER RAN", file=sys.stderr))
from sora_cli.cli import main
sys.argv = ["sora", *{args!r}]
main()
print("NOT REACHED", file=sys.stderr)
"""


@pytest.mark.parametrize(("args", "code"), [(["presets", "list"], 0), (["generate", "x", "--frames", "-3"], 2)])
def test_the_console_entry_ends_the_process_with_its_code_output_whole_and_exit_handlers_run(args, code):
    env = {k: v for k, v in os.environ.items() if k != "PYTHONUNBUFFERED"}  # piped stdout is block-buffered
    done = subprocess.run([sys.executable, "-c", ENDS.format(args=args)], capture_output=True, text=True, env=env)
    assert done.returncode == code, done.stderr
    assert done.stderr.splitlines()[-1] == "EXIT HANDLER RAN" and "NOT REACHED" not in done.stderr
    if code == 0:
        assert done.stdout.splitlines() == sora_process("presets", "list").stdout.splitlines()
    else:
        assert done.stderr.splitlines()[0].startswith("sora: error: --frames")


def test_the_collector_is_back_on_after_the_backend_that_loaded_torch():
    """torch loads with the collector off (start-up time); it must be on again for the render itself."""
    probe = ("import gc, sys; from sora_cli.backends import load_backend; "
             "load_backend('sora-tiny', device='cpu', dtype='float32', compile=False); "
             "print('torch' in sys.modules, gc.isenabled(), gc.get_freeze_count() > 0)")
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True)
    assert done.stdout.split() == ["True", "True", "True"], done.stderr


def test_console_script_starts_and_lists_presets():
    done = sora_process("presets", "list")
    assert done.returncode == 0
    from sora_cli.registry import MODELS

    listed = [line.split()[0] for line in done.stdout.splitlines()]
    assert listed == sorted({"smoke", *(spec.preset for spec in MODELS.values())})


def test_models_list_and_info_describe_this_install():
    models = sora_process("models", "list")
    assert models.returncode == 0 and "sora-tiny" in models.stdout and "4k+1" in models.stdout
    info = sora_process("info")
    assert info.returncode == 0 and "devices: cpu" in info.stdout and ".mp4 (libx264): True" in info.stdout


def test_docs_match_help():
    stale = update(ROOT / "docs", check=True)
    assert not stale, f"run `make docs`: {', '.join(map(str, stale))} differ from --help"


def test_readme_commands_exist_in_the_makefile():
    makefile = (ROOT / "Makefile").read_text()
    readme = (ROOT / "README.md").read_text()
    for target in ("demo", "test"):
        assert f"make {target}" in readme and f"\n{target}:" in makefile
    assert "make test" in (ROOT / ".ci" / "run").read_text()
