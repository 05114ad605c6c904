"""Property tests: whatever a prompt file or a preset holds, sora answers with rows or one clean error naming
the file (and line), never a traceback."""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sora_cli.errors import UsageError
from sora_cli.presets import resolve_preset
from sora_cli.prompts import read_prompt_files

SETTINGS = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
KEYS = st.sampled_from(["prompt", "name", "seed", "frames", "width", "steps", "guidance", "sampler", "bogus", ""])
SCALARS = st.one_of(st.none(), st.booleans(), st.integers(-2**70, 2**70), st.floats(allow_nan=True),
                    st.text(max_size=30))
VALUES = st.recursive(SCALARS, lambda inner: st.one_of(st.lists(inner, max_size=3),
                                                        st.dictionaries(KEYS, inner, max_size=3)), max_leaves=8)
ROWS = st.one_of(st.text(max_size=40), st.dictionaries(KEYS, VALUES, max_size=5), VALUES)


def parse(suffix: str, content: bytes):
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / f"prompts{suffix}"
        path.write_bytes(content)
        try:
            rows = read_prompt_files([path])
        except UsageError as exc:
            assert str(path) in str(exc), exc  # names the file (and the line where there is one)
            assert "\n" not in str(exc).strip()
            return None
        for row in rows:
            assert row.prompt.strip() and row.source.startswith(f"{path}:")
        return rows


@SETTINGS
@given(suffix=st.sampled_from([".txt", ".jsonl", ".yaml", ".csv"]), content=st.binary(max_size=300))
def test_any_bytes_give_rows_or_one_clean_error(suffix, content):
    parse(suffix, content)


@SETTINGS
@given(rows=st.lists(ROWS, max_size=5))
def test_any_json_lines_give_rows_or_one_clean_error(rows):
    parse(".jsonl", "\n".join(json.dumps(r) for r in rows).encode())


@SETTINGS
@given(rows=st.lists(ROWS, max_size=5))
def test_any_yaml_document_gives_rows_or_one_clean_error(rows):
    import yaml

    parse(".yaml", yaml.safe_dump(rows, allow_unicode=True).encode())


@SETTINGS
@given(header=st.lists(KEYS, min_size=1, max_size=4), cells=st.lists(st.lists(st.text(max_size=8), max_size=5),
                                                                      max_size=4))
def test_any_csv_gives_rows_or_one_clean_error(header, cells):
    import csv
    import io

    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(header)
    writer.writerows(cells)
    parse(".csv", buffer.getvalue().encode())


@SETTINGS
@given(content=st.one_of(st.binary(max_size=200), st.dictionaries(KEYS, VALUES, max_size=5).map(
    lambda d: json.dumps(d).encode())))
def test_any_preset_file_loads_or_gives_one_clean_error(content):
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "mine.yaml"
        path.write_bytes(content)
        try:
            resolve_preset(str(path))
        except UsageError as exc:
            assert str(path) in str(exc) and "\n" not in str(exc).strip()


@SETTINGS
@given(prompt=st.text(min_size=1, max_size=80).filter(str.strip), name=st.one_of(st.none(), st.text(max_size=80)),
       index=st.integers(0, 99999), ext=st.sampled_from([".mp4", ".mkv", ".webm", ".gif"]))
def test_output_names_stay_inside_the_batch_folder(prompt, name, index, ext):
    from sora_cli.batch import output_name
    from sora_cli.prompts import PromptRow

    out = Path("/batch/out")
    file = output_name(PromptRow(index=index, prompt=prompt, source="p.txt:1", name=name), ext)
    assert "/" not in file and "\\" not in file and not file.startswith(".") and file.isascii()
    assert (out / file).resolve().parent == out and file.startswith(f"{index:04d}-") and file.endswith(ext)
