"""Typer commands only: each body forwards to one function. torch is imported lazily, never for --help."""

from __future__ import annotations

import atexit
import inspect as pyinspect
import json
import os
import sys
import threading
from pathlib import Path
from typing import Annotated, Optional

import typer

from .errors import SoraError, Stopped
from .settings import SETTINGS

app = typer.Typer(
    name="sora", no_args_is_help=True, add_completion=False, pretty_exceptions_enable=False, rich_markup_mode=None,
    help="Text-to-video on your own machine, from open models.",
)
presets_app = typer.Typer(no_args_is_help=True, help="List and show presets (shipped and in $SORA_HOME/presets).")
models_app = typer.Typer(no_args_is_help=True, help="The models sora can run.")
app.add_typer(presets_app, name="presets")
app.add_typer(models_app, name="models")

def setting_option(name: str, help: str | None = None):
    """The option of one setting of the table (settings.py): its flag, type and help; None means "not given",
    so the preset decides."""
    setting = SETTINGS[name]
    decls = [f"{setting.flag}/--no-{setting.flag[2:]}"] if setting.kind is bool else [setting.flag]
    kind = list[str] if setting.kind is tuple else setting.kind  # a list setting's flag repeats
    metavar = {"metavar": "REF[:SCALE[:EXPERT]]"} if setting.kind is tuple else {}
    return Annotated[Optional[kind], typer.Option(*decls, help=help or setting.help, show_default=False, **metavar)]


def setting_flags(*, where: str = "flag", exclude: tuple[str, ...] = (), help: dict | None = None,
                  before: str = "preset"):
    """Gives a command taking **settings one option per setting the table allows as a flag (less `exclude`),
    placed before its parameter `before`; the command receives them in **settings."""

    def decorate(command):
        signature = pyinspect.signature(command, eval_str=True)
        own = [p for p in signature.parameters.values() if p.kind is not p.VAR_KEYWORD]
        added = [pyinspect.Parameter(n, pyinspect.Parameter.POSITIONAL_OR_KEYWORD, default=None,
                                   annotation=setting_option(n, (help or {}).get(n)))
                 for n, s in SETTINGS.items() if where in s.where and n not in exclude]
        at = next(i for i, p in enumerate(own) if p.name == before)
        command.__signature__ = signature.replace(parameters=[*own[:at], *added, *own[at:]])
        return command

    return decorate


# the settings `sora eval` takes as flags (generate and batch take all of them through setting_flags)
Model, Steps, Guidance, Sampler, Device, Dtype = (setting_option(n) for n in ("model", "steps", "guidance", "sampler",
                                                                         "device", "dtype"))
PresetRef = Annotated[Optional[str], typer.Option("--preset", help="Preset name or YAML file [default: the model's own, else default].")]
Output = Annotated[Optional[Path], typer.Option("--output", "-o", help="Output file: .mp4, .webm, .mkv or .gif [default: <prompt-slug>-<seed>.mp4].")]
ContactSheet = Annotated[bool, typer.Option("--contact-sheet", help="Also write a PNG grid of frames beside the video (<output>.png).")]
JsonResult = Annotated[bool, typer.Option("--json", help="Print one JSON object about each result on stdout.")]
Overwrite = Annotated[bool, typer.Option("--overwrite", help="Replace existing output files.")]
Quiet = Annotated[bool, typer.Option("--quiet", "-q", help="No progress and no messages, errors aside.")]
Debug = Annotated[bool, typer.Option("--debug", help="Show the traceback when something fails.")]


def _warn(quiet: bool):
    return (lambda message: None) if quiet else (lambda message: print(f"warning: {message}", file=sys.stderr))


def _flags(**values) -> dict:
    return {k: v for k, v in values.items() if v is not None}


@app.command()
@setting_flags()
def generate(
    prompt: Annotated[Optional[str], typer.Argument(help="What the video shows.", show_default=False)] = None,
    output: Output = None,
    preset: PresetRef = None,
    from_: Annotated[Optional[Path], typer.Option("--from", help="Render again from a video or recipe .json (flags override it).")] = None,
    overwrite: Overwrite = False,
    contact_sheet: ContactSheet = False,
    storyboard: Annotated[Optional[Path], typer.Option("--storyboard", help="A YAML or JSON list of shots, each with prompt and seconds or frames, optionally image (its first frame) and cut: true; one continuous video (no PROMPT).")] = None,
    keyframe: Annotated[Optional[list[str]], typer.Option("--keyframe", help="IMAGE[:AT[:STRENGTH]], repeatable: the video passes through IMAGE at frame AT (an index, -1 for the last, or a time like 2.5s; default 0) with STRENGTH in (0, 1] (default 1).")] = None,
    loop: Annotated[bool, typer.Option("--loop", help="The last frame leads back into the first (frames: a multiple of 4, at least 25).")] = False,
    variations: Annotated[int, typer.Option("--variations", "-n", help="Render N videos from consecutive seeds with one model load, named <stem>-<seed>.<ext>.")] = 1,
    json_: JsonResult = False,
    quiet: Quiet = False, debug: Debug = False, **settings,
) -> None:
    """Render one video from a text prompt (or a storyboard), optionally looped, through keyframes, or several."""
    from .generate import run_generate

    _report(quiet, json_, lambda reporter: run_generate(
        prompt, flags=_flags(**settings), preset_ref=preset, from_path=from_, output=output, overwrite=overwrite,
        progress=reporter, warn=_warn(quiet), contact_sheet=contact_sheet, keyframes=tuple(keyframe or ()),
        storyboard=storyboard, loop=loop, variations=variations))


@app.command()
@setting_flags(exclude=("image", "width", "height", "fps"))
def extend(
    video: Annotated[Path, typer.Argument(help="The video to continue (MP4, WebM, MKV, GIF...).", show_default=False)],
    prompt: Annotated[str, typer.Argument(help="What happens next.", show_default=False)],
    seconds: Annotated[Optional[float], typer.Option("--seconds", help="Length of the continuation in seconds (or --frames).")] = None,
    only_new: Annotated[bool, typer.Option("--only-new", help="Write the continuation alone, without the source's frames.")] = False,
    output: Output = None, preset: PresetRef = None, overwrite: Overwrite = False, contact_sheet: ContactSheet = False,
    json_: JsonResult = False, quiet: Quiet = False, debug: Debug = False, **settings,
) -> None:
    """Continue a video under a new prompt: its frames unchanged, then new ones, at its size and frame rate."""
    from .generate import run_source_verb

    _report(quiet, json_, lambda reporter: [run_source_verb(
        "extend", video, prompt, flags=_flags(**settings), preset_ref=preset, output=output, overwrite=overwrite,
        progress=reporter, warn=_warn(quiet), contact_sheet=contact_sheet, seconds=seconds, only_new=only_new)])


@app.command()
@setting_flags(exclude=("image", "width", "height", "fps"))
def remix(
    video: Annotated[Path, typer.Argument(help="The video to re-render (MP4, WebM, MKV, GIF...).", show_default=False)],
    prompt: Annotated[str, typer.Argument(help="What it should show now.", show_default=False)],
    strength: Annotated[float, typer.Option("--strength", help="How far from the source it may go, in (0, 1]: small keeps its look, 1 keeps nothing.")] = 0.6,
    output: Output = None, preset: PresetRef = None, overwrite: Overwrite = False, contact_sheet: ContactSheet = False,
    json_: JsonResult = False, quiet: Quiet = False, debug: Debug = False, **settings,
) -> None:
    """Re-render a video under a new prompt, keeping its layout and motion as far as --strength allows."""
    from .generate import run_source_verb

    _report(quiet, json_, lambda reporter: [run_source_verb(
        "remix", video, prompt, flags=_flags(**settings), preset_ref=preset, output=output, overwrite=overwrite,
        progress=reporter, warn=_warn(quiet), contact_sheet=contact_sheet, strength=strength)])


def _report(quiet: bool, json_: bool, render) -> None:
    """Runs `render(reporter)` under a progress display, then prints each result's path (or JSON)."""
    from .progress import make_reporter

    reporter = make_reporter(quiet)
    try:
        results = render(reporter)
    finally:
        reporter.close()
    for result in results:
        if json_:
            print(json.dumps(result.summary()))
        elif not quiet:
            print(result.output)


@app.command()
@setting_flags(exclude=("image",), help={"seed": "Batch seed: row i gets seed + i unless it names one [default: random]."})
def batch(
    files: Annotated[list[Path], typer.Argument(help="Prompt files: .txt, .jsonl, .yaml or .csv.", show_default=False)],
    out: Annotated[Path, typer.Option("--out", help="Folder for the videos, their recipes and manifest.jsonl.")],
    preset: PresetRef = None,
    format: Annotated[str, typer.Option(help="Output container: mp4, webm, mkv or gif.")] = "mp4",
    executor: Annotated[str, typer.Option(help="local (this process) or ray (one actor per GPU or CPU worker; extra sora-cli[ray]).")] = "local",
    ray_address: Annotated[Optional[str], typer.Option(help="Ray cluster address [default: start a local one].")] = None,
    workers: Annotated[Optional[int], typer.Option(help="Ray actors [default: one per GPU, else per CPU].")] = None,
    gallery: Annotated[bool, typer.Option("--gallery", help="Also write --out/index.html: every video, its contact sheet, prompt and recipe.")] = False,
    resume: Annotated[bool, typer.Option("--resume", help="Continue the batch in --out: keep rows whose video is done and whole, render the rest.")] = False,
    retry_failed: Annotated[bool, typer.Option("--retry-failed", help="With --resume, render failed rows again too.")] = False,
    overwrite: Overwrite = False,
    json_: Annotated[bool, typer.Option("--json", help="Print one JSON object per row on stdout.")] = False,
    quiet: Quiet = False, debug: Debug = False, **settings,
) -> None:
    """Render every prompt of one or more prompt files, loading the model once."""
    from .batch import run_batch
    from .progress import make_reporter

    def on_row(result, total):
        if json_:
            print(json.dumps({k: v for k, v in result.__dict__.items() if k != "recipe"}), flush=True)
        elif not quiet:
            detail = result.error if result.error else f"{result.seconds:.1f} s"
            print(f"[{result.index + 1}/{total}] {result.status} {out / result.output} ({detail})", flush=True)

    reporter = make_reporter(quiet)
    try:
        results, stopped, failed = run_batch(files, out_dir=out, flags=_flags(**settings), preset_ref=preset, ext=format,
                                     overwrite=overwrite, resume=resume, retry_failed=retry_failed,
                                     executor=executor, ray_address=ray_address, workers=workers,
                                     progress=reporter, warn=_warn(quiet), on_row=on_row)
    finally:
        reporter.close()
    if gallery and not stopped:
        from .gallery import build_gallery

        index = build_gallery(out)
        if not quiet:
            print(index)
    if stopped:
        raise Stopped(f"stopped after {len(results)} of the videos to render; the same command with --resume "
                      "continues")
    if failed:
        raise typer.Exit(1)


@app.command()
@setting_flags(exclude=("image", "seed"))
def serve(
    host: Annotated[str, typer.Option("--host", help="Address to bind; anything but loopback needs an API key.")] = "127.0.0.1",
    port: Annotated[int, typer.Option("--port", help="Port to listen on.")] = 8000,
    data: Annotated[Path, typer.Option("--data", help="Folder for the job queue (jobs.sqlite), uploads, videos, recipes and manifest.jsonl.")] = Path("sora-serve"),
    api_key: Annotated[Optional[str], typer.Option("--api-key", help="Require Authorization: Bearer KEY [default: $SORA_API_KEY, else none].", show_default=False)] = None,
    workers: Annotated[Optional[int], typer.Option("--workers", help="Jobs rendered at once, each with its own copy of the model [default: one per CUDA GPU, else 1].")] = None,
    max_queue: Annotated[int, typer.Option("--max-queue", help="Jobs waiting at most; more are answered 429.")] = 100,
    max_upload: Annotated[int, typer.Option("--max-upload", help="Largest request body in MiB; larger is answered 413.")] = 64,
    preset: PresetRef = None, debug: Debug = False, **settings,
) -> None:
    """Serve OpenAI's Videos API (/v1/videos) on this machine's model (extra sora-cli[serve])."""
    from .serve.server import run_server

    run_server(host=host, port=port, flags=_flags(**settings), preset_ref=preset, data=data, api_key=api_key,
               workers=workers, max_queue=max_queue, max_upload_mb=max_upload)


@app.command()
def gallery(folder: Annotated[Path, typer.Argument(help="A folder of videos (a batch's --out).", show_default=False)]) -> None:
    """Write FOLDER/index.html: every video with its contact sheet, prompt and recipe, to look at in a browser."""
    from .gallery import build_gallery

    print(build_gallery(folder))


@app.command()
def train(
    out: Annotated[Path, typer.Option("--out", help="Run folder: checkpoints, log.jsonl and the exported sora-tiny.safetensors.")] = Path("build/sora-tiny"),
    vae_steps: Annotated[Optional[int], typer.Option(help="Autoencoder steps (stage 1) [default: the shipped recipe's].")] = None,
    dit_steps: Annotated[Optional[int], typer.Option(help="Text tower + DiT steps (stage 2) [default: the shipped recipe's].")] = None,
    direction_steps: Annotated[Optional[int], typer.Option(help="Motion-direction fine-tune steps (stage 3; adds to a finished run with --resume) [default: the shipped recipe's].")] = None,
    shape_steps: Annotated[Optional[int], typer.Option(help="Shape fine-tune steps (stage 4, after stage 3; adds to a finished run with --resume) [default: the shipped recipe's].")] = None,
    polish_steps: Annotated[Optional[int], typer.Option(help="Polish steps: refine again from the stages before, then its direction pass (before tempo; 0: none; adds to a finished run with --resume) [default: the shipped recipe's].")] = None,
    tempo_steps: Annotated[Optional[int], typer.Option(help="Tempo steps: refine once more on the world at twice the frame rate; the model then makes two frames for each it delivers (last; 0: none; adds to a finished run with --resume) [default: the shipped recipe's].")] = None,
    seed: Annotated[int, typer.Option(help="Seed: the same seed and steps give the same weights.")] = 0,
    resume: Annotated[bool, typer.Option("--resume", help="Continue the run in --out from its last checkpoint.")] = False,
    from_stage2: Annotated[Optional[Path], typer.Option("--from-stage2", help="Skip stages 1 and 2: the stages after them from this stage-2 export (RUN/stage2.safetensors).")] = None,
    device: Annotated[str, typer.Option(help="cpu, cuda, mps or auto. The same seed gives the same weights on the same device; cpu makes the shipped file's bits. A GPU trains on the same batches (see docs/sora-tiny.md).")] = "cpu",
    debug: Debug = False,
) -> None:
    """Train sora-tiny from scratch on the procedural tiny world (resumable, on any device)."""
    from .train import run_training

    print(run_training(out, vae_steps=vae_steps, dit_steps=dit_steps, direction_steps=direction_steps,
                       shape_steps=shape_steps, polish_steps=polish_steps, tempo_steps=tempo_steps, seed=seed,
                       resume=resume, stage2=from_stage2, device=device))


@app.command("eval")
def eval_(
    model: Model = None,
    seen: Annotated[int, typer.Option(help="Fixed set: captions of combinations seen in training.")] = 24,
    held_out: Annotated[int, typer.Option(help="Fixed set: captions of held-out combinations.")] = 24,
    seeds: Annotated[int, typer.Option(help="Fixed set: seeds per caption (0, 1, ...).")] = 2,
    random: Annotated[Optional[int], typer.Option("--random", help="Instead of the fixed set: N fresh captions drawn from the world, alternately seen and held-out combinations (draws 0, 2, 4, ... seen; 1, 3, 5, ... held-out), each with a random render seed, rendered as sora generate does (the preset's size, steps, guidance, sampler) into an H.264 .mp4, decoded again and judged.")] = None,
    seed: Annotated[Optional[int], typer.Option(help="With --random: seeds the draws; the same seed gives the same captions and render seeds [default: 0].")] = None,
    frames: Annotated[int, typer.Option(help="Frames per clip.")] = 72,
    steps: Steps = None, guidance: Guidance = None, sampler: Sampler = None, preset: PresetRef = None,
    device: Device = None, dtype: Dtype = None,
    output: Annotated[Path, typer.Option("--output", "-o", help="Where to write the JSON report.")] = Path("sora-eval.json"),
    quiet: Quiet = False, debug: Debug = False,
) -> None:
    """Score a native model on tiny-world captions: colour, shape, motion, background, presence."""
    from .evaluate import run_eval_command

    flags = _flags(model=model, steps=steps, guidance=guidance, sampler=sampler, device=device, dtype=dtype)
    print(run_eval_command(flags, preset, seen=seen, held_out=held_out, seeds=seeds, frames=frames, output=output,
                           quiet=quiet, random=random, seed=seed))


@app.command()
def inspect(video: Annotated[Path, typer.Argument(help="A video sora wrote, or its recipe .json.", show_default=False)]) -> None:
    """Print the recipe a video was rendered with."""
    from .recipe import load_recipe

    print(json.dumps(load_recipe(video), indent=2))


@app.command()
def info(json_: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False) -> None:
    """Versions, devices, default dtype, encoders and where weights live."""
    from .info import system_info

    data = system_info()
    if json_:
        print(json.dumps(data, indent=2))
        return
    for key, value in data.items():
        if isinstance(value, dict):
            print(f"{key}:")
            for k, v in value.items():
                print(f"  {k}: {v}")
        else:
            print(f"{key}: {', '.join(value) if isinstance(value, list) else value}")


@presets_app.command("list")
def presets_list() -> None:
    """List preset names, where each comes from, and what it is for."""
    from .presets import preset_names, resolve_preset

    names = preset_names()
    width = max(map(len, names), default=0)
    for name, origin in names.items():
        print(f"{name:<{width}}  {origin:<13} {resolve_preset(name).description}")


@presets_app.command("show")
def presets_show(name: Annotated[str, typer.Argument(help="Preset name or YAML file.", show_default=False)]) -> None:
    """Show a preset's resolved values (defaults and user presets applied)."""
    import yaml

    from .presets import resolve_preset

    print(yaml.safe_dump(vars(resolve_preset(name)), sort_keys=False).rstrip())


@models_app.command("list")
def models_list(json_: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False) -> None:
    """Every model: family, size, frame rule, fps, tasks, memory, its preset's recipe and whether it is here."""
    from .info import model_rows

    rows = model_rows()
    if json_:
        print(json.dumps(rows, indent=2))
        return
    columns = [("id", "id"), ("family", "family"), ("params", "parameters"), ("native", "native_size"),
               ("frames", "frame_rule"), ("fps", "fps"), ("tasks", "tasks"), ("VRAM GB", "vram_gb"),
               ("steps", "steps"), ("guidance", "guidance"), ("weights", "weights_state")]
    cells = [[", ".join(r[k]) if isinstance(r[k], list) else str(r[k] if r[k] is not None else "-") for _, k in columns]
             for r in rows]
    widths = [max(len(title), *(len(c[i]) for c in cells)) for i, (title, _) in enumerate(columns)]
    for line in [[title for title, _ in columns], *cells]:
        print("  ".join(c.ljust(w) for c, w in zip(line, widths)).rstrip())


@models_app.command("pull")
def models_pull(model_id: Annotated[str, typer.Argument(help="A model id from sora models list, or a hub LoRA (owner/repo[/file.safetensors]).", show_default=False)]) -> None:
    """Download a model's weights (or a LoRA) into the Hugging Face cache (HF_HOME; HF_TOKEN for gated repos)."""
    from .lora import HUB_ID, pull_lora
    from .registry import MODELS
    from .weights import pull_model

    print(pull_model(model_id) if model_id in MODELS or not HUB_ID.fullmatch(model_id) else pull_lora(model_id))


@models_app.command("convert")
def models_convert(folder: Annotated[Path, typer.Argument(help="A Pyramid Flow checkpoint folder (the hub's layout).", show_default=False)]) -> None:
    """Convert a Pyramid Flow folder's pickled VAE (.bin) to safetensors, once (tensors only are read)."""
    from .pyramid_flow.checkpoint import convert_vae, require_folder

    written = convert_vae(require_folder(folder))
    print(written if written else f"{folder}: nothing to convert (the VAE is already safetensors)")


def main(argv: list[str] | None = None) -> None:
    """Entry point: one line on stderr for any failure; 2 bad input, 1 failed render, 130 interrupted."""
    args = sys.argv[1:] if argv is None else argv
    args = args or ["--help"]  # bare `sora` shows help and succeeds
    debug = "--debug" in args
    try:
        code = typer.main.get_command(app).main(args=args, prog_name="sora", standalone_mode=False)
        if code == 130:  # Typer turns KeyboardInterrupt inside a command into a silent Exit(130)
            code = _fail("interrupted; no partial file was left", 130)
    except (KeyboardInterrupt, typer.Abort):
        code = _fail("interrupted; no partial file was left", 130)
    except SoraError as exc:  # bad input (2), a failed render (1), a stop (130): each says what it is
        if debug and exc.exit_code == 1:
            raise
        code = _fail(str(exc), exc.exit_code)
    except Exception as exc:
        if hasattr(exc, "format_message") and hasattr(exc, "exit_code"):  # click's usage errors (Typer vendors click)
            code = _fail(exc.format_message(), exc.exit_code)
        elif debug:
            raise
        else:  # a failure while running: one line
            code = _fail(f"{type(exc).__name__}: {exc}", 1)
    code = code if isinstance(code, int) else 0
    if argv is None:  # the console script: this process ends here
        _end_process(code)
    sys.exit(code)


def _end_process(code: int) -> None:
    """Ends the process without the interpreter's teardown once torch is loaded: freeing every object it made costs
    about 0.4 s of each render on a 2-core machine and does nothing a closed file needs. Exit handlers run and the
    streams are flushed first; while a non-daemon thread still runs, the normal way out waits for it."""
    others = [t for t in threading.enumerate() if t is not threading.main_thread() and not t.daemon]
    if "torch" not in sys.modules or others:
        sys.exit(code)
    atexit._run_exitfuncs()  # what sys.exit would run: temporary folders removed, child processes ended
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):  # a closed pipe (`sora ... | head`) has nothing left to take
            pass
    os._exit(code)


def _fail(message: str, code: int) -> int:
    print(f"sora: error: {message}".splitlines()[0], file=sys.stderr)
    return code
