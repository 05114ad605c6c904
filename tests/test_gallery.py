"""The gallery page: every video and contact sheet it names exists, and the HTML is well formed."""

from __future__ import annotations

from html.parser import HTMLParser

VOID = {"meta", "img", "br", "link", "source", "input", "hr"}


class Checker(HTMLParser):
    """Collects every src/href and checks that every opened element is closed in order."""

    def __init__(self):
        super().__init__()
        self.stack, self.links, self.errors, self.tags = [], [], [], []

    def handle_starttag(self, tag, attrs):
        self.tags.append(tag)
        self.links += [v for k, v in attrs if k in ("src", "href")]
        if tag not in VOID:
            self.stack.append(tag)

    def handle_endtag(self, tag):
        if not self.stack or self.stack.pop() != tag:
            self.errors.append(f"unexpected </{tag}>")


def test_batch_gallery_lists_every_video_with_its_sheet_and_recipe(cli, tiny_checkpoint, tmp_path):
    (tmp_path / "p.txt").write_text('a red circle\na <script>alert("x")</script> square\n')
    out = tmp_path / "out"
    code, stdout, stderr = cli("batch", tmp_path / "p.txt", "--out", out, "--model", tiny_checkpoint, "--width", 32,
                               "--height", 32, "--steps", 1, "--frames", 5, "--gallery")
    assert code == 0, stderr
    page = (out / "index.html").read_text()
    checker = Checker()
    checker.feed(page)
    checker.close()
    assert checker.errors == [] and checker.stack == []
    assert checker.tags.count("video") == 2 and "<script>" not in page  # the prompt is escaped, not run
    for link in checker.links:
        assert (out / link).is_file() and (out / link).resolve().parent == out.resolve(), link
    assert sum(link.endswith(".png") for link in checker.links) >= 2
    assert str(out / "index.html") in stdout


def test_gallery_of_a_folder_without_videos_is_one_line_exit_2(cli, tmp_path):
    code, _, stderr = cli("gallery", tmp_path)
    assert code == 2 and "holds no videos" in stderr
