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


PROBE = """<script>
const media = [...document.querySelectorAll('img, video')];
Promise.all(media.map(m => new Promise(done => {
  const ok = () => done([m.tagName, 'ok', m.getAttribute('src')]);
  const bad = () => done([m.tagName, 'error', m.getAttribute('src')]);
  if (m.tagName === 'IMG') { if (m.complete) (m.naturalWidth ? ok : bad)(); else { m.onload = ok; m.onerror = bad; } }
  else { if (m.readyState >= 1) ok(); else { m.onloadedmetadata = ok; m.onerror = bad; m.load(); } }
}))).then(r => document.body.setAttribute('data-loaded', JSON.stringify(r)));
</script>"""


def browser() -> str | None:
    import shutil

    return next((shutil.which(b) for b in ("chromium", "chromium-browser", "google-chrome") if shutil.which(b)), None)


def test_every_video_and_contact_sheet_loads_in_a_headless_browser(cli, tiny_checkpoint, tmp_path):
    """Chromium (from Debian's packages; `make test` installs it where it can) opens the page from disk, in a
    private network namespace, and reports every <video> and <img> as loaded."""
    import json
    import os
    import re
    import subprocess

    import pytest

    chromium = browser()
    if chromium is None:
        pytest.skip("no Chromium here; test_batch_gallery_... validated the HTML and its files instead")
    (tmp_path / "p.txt").write_text("a red circle\na blue square\n")
    out = tmp_path / "out"
    code, _, stderr = cli("batch", tmp_path / "p.txt", "--out", out, "--model", tiny_checkpoint, "--width", 64,
                          "--height", 64, "--steps", 1, "--frames", 9, "--format", "webm", "--gallery", "-q")
    assert code == 0, stderr
    probe = out / "probe.html"  # the page as written, plus a script that waits for every element to load
    probe.write_text((out / "index.html").read_text().replace("</body>", PROBE + "</body>"))
    browse = (f"ip link set lo up && exec {chromium} --headless --no-sandbox --disable-gpu --no-first-run "
              f"--user-data-dir={tmp_path / 'profile'} --allow-file-access-from-files --virtual-time-budget=15000 "
              f"--dump-dom file://{probe}")
    done = subprocess.run(["unshare", "-n", "bash", "-c", browse], capture_output=True, text=True, timeout=120,
                          env={**os.environ, "HOME": str(tmp_path)})
    found = re.search(r"data-loaded=\"([^\"]*)\"", done.stdout)
    assert found, done.stderr[-1500:]
    loaded = json.loads(found.group(1).replace("&quot;", '"'))
    assert sorted(tag for tag, _, _ in loaded) == ["IMG", "IMG", "VIDEO", "VIDEO"]
    assert all(state == "ok" for _, state, _ in loaded), loaded
