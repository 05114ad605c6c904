"""Prompt files in every format, and their errors naming file:line."""

import pytest

from sora_cli.errors import UsageError
from sora_cli.prompts import read_prompt_files


def write(tmp_path, name, text):
    path = tmp_path / name
    path.write_text(text)
    return path


def test_txt_skips_comments_and_blank_lines(tmp_path):
    rows = read_prompt_files([write(tmp_path, "p.txt", "# header\n\na red circle\n  # indented comment\nblue sky\n")])
    assert [(r.index, r.prompt, r.source.rsplit(":", 1)[1]) for r in rows] == [(0, "a red circle", "3"),
                                                                            (1, "blue sky", "5")]


def test_jsonl_rows_carry_overrides(tmp_path):
    path = write(tmp_path, "p.jsonl", '{"prompt": "a", "seed": 4, "frames": 9}\n"b"\n')
    rows = read_prompt_files([path])
    assert rows[0].overrides == {"seed": 4, "frames": 9} and rows[1].prompt == "b" and rows[1].overrides == {}


def test_yaml_list_or_prompts_key(tmp_path):
    a = write(tmp_path, "a.yaml", "- a red circle\n- prompt: blue\n  steps: 3\n  name: sky\n")
    b = write(tmp_path, "b.yml", "prompts:\n  - one\n  - two\n")
    rows = read_prompt_files([a, b])
    assert [r.prompt for r in rows] == ["a red circle", "blue", "one", "two"]
    assert rows[1].overrides == {"steps": 3} and rows[1].name == "sky" and rows[1].source.endswith("a.yaml:2")
    assert [r.index for r in rows] == [0, 1, 2, 3]


def test_csv_converts_cells_and_empty_cells_mean_unset(tmp_path):
    path = write(tmp_path, "p.csv", "prompt,seed,guidance\na red circle,3,\nblue,,2.5\n")
    rows = read_prompt_files([path])
    assert rows[0].overrides == {"seed": 3} and rows[1].overrides == {"guidance": 2.5}


@pytest.mark.parametrize("name, text, message", [
    ("p.jsonl", '{"prompt": "a"}\n{broken\n', "p.jsonl:2: not valid JSON"),
    ("p.jsonl", '{"prompt": "a", "colour": 1}\n', "p.jsonl:1: unknown key 'colour'; valid keys: prompt, name"),
    ("p.jsonl", '{"prompt": "a", "frames": -1}\n', "p.jsonl:1: frames must be between 1"),
    ("p.jsonl", '{"seed": 3}\n', "p.jsonl:1: the row has no prompt"),
    ("p.yaml", "- a\n- b: c: d\n", "p.yaml:2: not valid YAML"),
    ("p.yaml", "just a string\n", "p.yaml:1: expected a list"),
    ("p.csv", "text,seed\na,1\n", "p.csv:1: a CSV prompt file needs a header row with a 'prompt' column"),
    ("p.csv", "prompt,seed\na,x\n", "p.csv:2: seed must be int"),
    ("p.txt", "# only comments\n", "no prompts"),
    ("p.doc", "a\n", "unsupported prompt file type '.doc'; valid: .txt, .jsonl"),
])
def test_malformed_files_name_file_and_line(tmp_path, name, text, message):
    with pytest.raises(UsageError, match=message.replace("[", r"\[").replace(".", r"\.")):
        read_prompt_files([write(tmp_path, name, text)])


def test_missing_file(tmp_path):
    with pytest.raises(UsageError, match="no such prompt file"):
        read_prompt_files([tmp_path / "nope.txt"])
