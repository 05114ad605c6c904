"""`sora gallery DIR`: one index.html to look at a folder of renders at a glance.

Every video in the folder (in the manifest's order when there is one) gets a card: the video itself, its contact
sheet (made from the video when it has none yet), its prompt and its recipe. Everything is escaped and every
link is relative, so the folder can be moved or served as it is.
"""

from __future__ import annotations

import html
import json
from pathlib import Path

from .contact_sheet import SheetCollector, sheet_path, write_png
from .errors import UsageError
from .manifest import read as read_manifest
from .recipe import sidecar_path
from .video import FORMATS

INDEX = "index.html"
RECIPE_SHOWN = ("seed", "model", "preset", "width", "height", "frames", "fps", "steps", "guidance", "negative_prompt")
STYLE = """body{font-family:system-ui,sans-serif;margin:2rem;background:#111;color:#eee}
main{display:grid;grid-template-columns:repeat(auto-fill,minmax(340px,1fr));gap:1.5rem}
article{background:#1c1c1c;border-radius:8px;padding:1rem}video,img{width:100%;border-radius:4px}
h2{font-size:1rem;margin:.5rem 0}dl{display:grid;grid-template-columns:auto 1fr;gap:.1rem .8rem;font-size:.8rem}
dt{color:#999}dd{margin:0;overflow-wrap:anywhere}.failed{color:#f77}"""


def videos_in(folder: Path) -> list[Path]:
    """The folder's videos: the manifest's order (newest record per video) when it has one, else by name."""
    _, rows = read_manifest(folder)
    ordered = [folder / rows[i]["output"] for i in sorted(rows) if rows[i].get("status") == "done"]
    ordered = [p for p in ordered if p.is_file() and p.parent == folder]
    seen = set(ordered)
    rest = sorted(p for p in folder.iterdir() if p.suffix.lower() in FORMATS and p.is_file()
                  and not p.name.startswith(".") and p not in seen)
    return ordered + rest


def ensure_sheet(video: Path) -> Path:
    """The video's contact sheet, made from its frames when it is missing."""
    import av

    path = sheet_path(video)
    if path.is_file():
        return path
    with av.open(str(video)) as container:
        total = container.streams.video[0].frames or sum(1 for _ in container.decode(video=0))
    collector = SheetCollector(total)
    with av.open(str(video)) as container:
        for frame in container.decode(video=0):
            collector.add(frame.to_ndarray(format="rgb24")[None])
    write_png(path, collector.image())
    return path


def _recipe(video: Path) -> dict:
    try:
        return json.loads(sidecar_path(video).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}


def _card(video: Path, sheet: Path) -> str:
    recipe = _recipe(video)
    prompt = recipe.get("prompt", video.stem)
    rows = "".join(f"<dt>{html.escape(k)}</dt><dd>{html.escape(str(recipe[k]))}</dd>"
                   for k in RECIPE_SHOWN if recipe.get(k) not in (None, ""))
    src, sheet_src = html.escape(video.name, quote=True), html.escape(sheet.name, quote=True)
    muted = "" if recipe.get("soundtrack") else " muted"  # a video with sound plays it
    media = f'<video controls loop{muted} preload="metadata" src="{src}"></video>' \
        if video.suffix.lower() != ".gif" else f'<img src="{src}" alt="">'
    return (f"<article>{media}<h2>{html.escape(prompt)}</h2>"
            f'<a href="{sheet_src}"><img src="{sheet_src}" alt="contact sheet of {html.escape(prompt, quote=True)}">'
            f'</a><dl>{rows}</dl><p><a href="{html.escape(sidecar_path(video).name, quote=True)}">recipe</a></p>'
            "</article>")


def build_gallery(folder: Path) -> Path:
    """Writes folder/index.html (atomically) and returns its path."""
    folder = Path(folder)
    if not folder.is_dir():
        raise UsageError(f"no such folder: {folder}")
    videos = videos_in(folder)
    if not videos:
        raise UsageError(f"{folder} holds no videos ({', '.join(FORMATS)})")
    cards = "\n".join(_card(v, ensure_sheet(v)) for v in videos)
    _, rows = read_manifest(folder)
    failed = [r for r in rows.values() if r.get("status") == "failed"]
    listed = html.escape(", ".join(f"{r.get('source')} ({r.get('error')})" for r in failed))
    note = f'<p class="failed">{len(failed)} failed: {listed}</p>' if failed else ""
    title = html.escape(f"sora: {folder.resolve().name}")
    page = (f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8"><title>{title}</title>'
            f'<meta name="viewport" content="width=device-width, initial-scale=1"><style>{STYLE}</style></head>\n'
            f"<body><h1>{title}</h1><p>{len(videos)} videos</p>{note}\n<main>\n{cards}\n</main></body></html>\n")
    index = folder / INDEX
    tmp = folder / f".{INDEX}.part"
    tmp.write_text(page, encoding="utf-8")
    tmp.replace(index)
    return index
