"""Prompt files (.txt, .jsonl, .yaml, .csv) -> rows of (prompt, per-row settings, output name, file:line)."""

from __future__ import annotations

import csv
import io
import json
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from .errors import UsageError
from .settings import ROW_SETTINGS, check_setting, parse_text_value

ROW_KEYS = ("prompt", "name", "variations", *ROW_SETTINGS)
SUFFIXES = (".txt", ".jsonl", ".yaml", ".yml", ".csv")


@dataclass(frozen=True)
class PromptRow:
    index: int  # position in the whole batch, from 0: stable across runs of the same files
    prompt: str
    source: str  # "file:line", for messages and the manifest
    name: str | None = None  # output name the row asks for (sanitised later)
    overrides: dict = field(default_factory=dict)  # settings this row changes
    variations: int = 1  # videos from consecutive seeds (the row's seed, + 1, ...)


def _row(value, where: str, index: int) -> PromptRow:
    if isinstance(value, str):
        value = {"prompt": value}
    if not isinstance(value, dict):
        kind = type(value).__name__
        raise UsageError(f"{where}: a row must be a prompt string or a mapping with 'prompt', got {kind}")
    unknown = [k for k in value if k not in ROW_KEYS]
    if unknown:
        raise UsageError(f"{where}: unknown key '{unknown[0]}'; valid keys: {', '.join(ROW_KEYS)}")
    prompt = value.get("prompt")
    if not isinstance(prompt, str) or not prompt.strip():
        raise UsageError(f"{where}: the row has no prompt")
    name = value.get("name")
    if name is not None and not isinstance(name, str | int):
        raise UsageError(f"{where}: name must be text, got {name!r}")
    overrides = {}
    for key in ROW_SETTINGS:
        if key in value:
            try:
                overrides[key] = check_setting(key, value[key])
            except ValueError as exc:
                raise UsageError(f"{where}: {exc}") from None
    variations = value.get("variations", 1)
    if isinstance(variations, str) and variations.strip().isdigit():  # a CSV cell
        variations = int(variations)
    if not isinstance(variations, int) or isinstance(variations, bool) or variations < 1:
        raise UsageError(f"{where}: variations must be a whole number >= 1, got {variations!r}")
    return PromptRow(index, prompt.strip(), where, str(name) if name is not None else None, overrides, variations)


def _txt(text: str, path: Path):
    for number, line in enumerate(text.splitlines(), 1):
        if line.strip() and not line.lstrip().startswith("#"):
            yield f"{path}:{number}", line.strip()


def _jsonl(text: str, path: Path):
    for number, line in enumerate(text.splitlines(), 1):
        if line.strip():
            try:
                yield f"{path}:{number}", json.loads(line)
            except json.JSONDecodeError as exc:
                raise UsageError(f"{path}:{number}: not valid JSON ({exc.msg})") from None


def _first_line(problem) -> str:
    return str(problem).strip().splitlines()[0] if str(problem).strip() else "unreadable"


def _yaml(text: str, path: Path):
    try:
        loader = yaml.SafeLoader(text)  # it already reads the text: a control character fails here
    except yaml.YAMLError as exc:
        raise UsageError(f"{path}: not valid YAML ({_first_line(getattr(exc, 'problem', None) or exc)})") from None
    try:
        root = loader.get_single_node()
        if root is None:
            return
        items = root.value if isinstance(root, yaml.SequenceNode) else None
        if isinstance(root, yaml.MappingNode):  # {prompts: [...]}
            items = next((v.value for k, v in root.value if k.value == "prompts" and isinstance(v, yaml.SequenceNode)),
                         None)
        if items is None:
            raise UsageError(f"{path}:{root.start_mark.line + 1}: expected a list of prompts (or 'prompts: [...]')")
        for node in items:
            yield f"{path}:{node.start_mark.line + 1}", loader.construct_object(node, deep=True)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"{path}:{mark.line + 1}" if mark else str(path)
        raise UsageError(f"{where}: not valid YAML ({_first_line(getattr(exc, 'problem', None) or exc)})") from None
    finally:
        loader.dispose()


def _csv(text: str, path: Path):
    reader = csv.DictReader(io.StringIO(text))
    if not reader.fieldnames or "prompt" not in reader.fieldnames:
        raise UsageError(f"{path}:1: a CSV prompt file needs a header row with a 'prompt' column")
    try:
        for record in reader:
            where = f"{path}:{reader.line_num}"
            if None in record:
                raise UsageError(f"{where}: more cells than header columns")
            row = {}
            for key, cell in record.items():
                cell = (cell or "").strip()
                try:
                    value = parse_text_value(key, cell) if key in ROW_SETTINGS else cell
                except ValueError as exc:
                    raise UsageError(f"{where}: {exc}") from None
                if value not in (None, "") or key == "prompt":
                    row[key] = value
            if any(row.values()):
                yield where, row
    except csv.Error as exc:
        raise UsageError(f"{path}:{reader.line_num}: not valid CSV ({exc})") from None


READERS = {".txt": _txt, ".jsonl": _jsonl, ".yaml": _yaml, ".yml": _yaml, ".csv": _csv}


def read_prompt_files(paths: list[Path]) -> list[PromptRow]:
    rows: list[PromptRow] = []
    for path in paths:
        path = Path(path)
        reader = READERS.get(path.suffix.lower())
        if reader is None:
            raise UsageError(f"{path}: unsupported prompt file type '{path.suffix}'; valid: {', '.join(SUFFIXES)}")
        try:
            text = path.read_text(encoding="utf-8")
        except FileNotFoundError:
            raise UsageError(f"{path}: no such prompt file") from None
        except (OSError, UnicodeDecodeError) as exc:
            raise UsageError(f"{path}: cannot read the prompt file ({getattr(exc, 'strerror', None) or exc})") from None
        for where, value in reader(text, path):
            rows.append(_row(value, where, len(rows)))
    if not rows:
        raise UsageError(f"no prompts in {', '.join(str(p) for p in paths)}")
    return rows
