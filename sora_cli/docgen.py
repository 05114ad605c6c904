"""Keeps docs/ in step with the code: each command page holds a generated block of its --help, and
docs/settings.md the settings table (settings.py), each between two markers.

`python -m sora_cli.docgen` rewrites the blocks; a test fails when a page and the code disagree.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

import typer

from .cli import app

BEGIN, END = "<!-- BEGIN GENERATED: sora {} --help -->", "<!-- END GENERATED -->"


def commands() -> dict[str, object]:
    """'generate' -> its click command; subcommands as 'presets list'."""
    root = typer.main.get_command(app)
    found = {}
    for name, cmd in root.commands.items():
        if hasattr(cmd, "commands"):
            found.update({f"{name} {sub}": c for sub, c in cmd.commands.items()})
        else:
            found[name] = cmd
    return found


def _cell(text: str) -> str:
    return re.sub(r"\s+", " ", text or "").replace("|", "\\|").strip()


def reference(name: str, cmd) -> str:
    args = " ".join(p.name.upper() for p in cmd.params if p.param_type_name == "argument")
    lines = [f"Usage: `sora {name} [OPTIONS]{' ' + args if args else ''}`", "", _cell(cmd.help), "",
             "| option | help |", "| --- | --- |"]
    for p in cmd.params:
        flags = " / ".join([*p.opts, *p.secondary_opts]) if p.param_type_name == "option" else p.name.upper()
        lines.append(f"| `{flags}` | {_cell(getattr(p, 'help', '') or '')} |")
    return "\n".join(lines)


def settings_reference() -> str:
    """The settings table as a page: every setting, its type, default, valid values and where it may appear."""
    from .families import FAMILIES
    from .settings import SETTINGS

    lines = ["| setting | flag | type | default | valid | preset | row | recipe | models | help |",
             "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
    for name, s in SETTINGS.items():
        valid = ", ".join(s.choices) if s.choices else (f"{s.low} to {s.high}" if s.low is not None else "")
        models = "all" if s.universal else ", ".join(f.name for f in FAMILIES.values() if name in f.options)
        marks = ["yes" if where in s.where else "" for where in ("preset", "row", "recipe")]
        flag = s.flag if "flag" in s.where else ""
        lines.append(f"| `{name}` | `{flag}` | {s.kind.__name__}{' or null' if s.nullable else ''} | "
                     f"`{s.default!r}` | {_cell(valid)} | {' | '.join(marks)} | {_cell(models)} | {_cell(s.help)} |")
    return "\n".join(lines)


def page_path(docs: Path, name: str) -> Path:
    return docs / "cli" / f"{name.replace(' ', '-')}.md"


def pages(docs: Path) -> dict[str, tuple[Path, str]]:
    """name -> (page, generated block body): each command's --help, and the settings table."""
    found = {name: (page_path(docs, name), reference(name, cmd)) for name, cmd in commands().items()}
    found["settings"] = (docs / "settings.md", settings_reference())
    return found


def update(docs: Path, check: bool = False) -> list[Path]:
    """Rewrites (or with check=True, lists) the pages whose generated block is missing or stale."""
    stale = []
    for name, (path, body) in pages(docs).items():
        block = f"{BEGIN.format(name)}\n{body}\n{END}"
        text = path.read_text(encoding="utf-8") if path.exists() else f"# sora {name}\n\n{block}\n"
        start, end = text.find(BEGIN.format(name)), text.find(END)
        if start >= 0 and end > start:
            new = text[:start] + block + text[end + len(END) :]
        else:
            new = text.rstrip() + "\n\n" + block + "\n"
        if new != text or not path.exists():
            stale.append(path)
            if not check:
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_text(new, encoding="utf-8")
    return stale


if __name__ == "__main__":
    changed = update(Path(sys.argv[1] if len(sys.argv) > 1 else "docs"))
    print("\n".join(str(p) for p in changed) or "docs are up to date")
