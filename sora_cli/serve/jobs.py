"""A job's request: from the Videos API's fields to a stored request, and from that back to what render takes.

The stored request (JSON in the queue) names files relative to the data folder and carries the seed drawn on
acceptance, so a job run again after a restart renders the same video.
"""

from __future__ import annotations

import base64
import binascii
import io
import math
import re
import shutil
from dataclasses import dataclass, replace
from pathlib import Path

from ..errors import UsageError
from ..settings import ROW_SETTINGS, SETTINGS, check_setting, parse_text_value
from ..verbs import Verb
from . import ApiError

OPENAI_MODELS = re.compile(r"sora-2(-pro)?(-\d{4}-\d{2}-\d{2})?")  # OpenAI's names: the server's own model
# sora settings a body may add (recorded in the recipe); `image` and `loras` would name files here: never
EXTRA_SETTINGS = tuple(n for n in ROW_SETTINGS if n not in ("image", "loras"))
FIELDS = {  # the API's own fields per endpoint
    "create": ("prompt", "model", "seconds", "size", "input_reference"),
    "remix": ("prompt", "model", "strength"),
    "extend": ("prompt", "model", "seconds", "video"),
    "edit": ("prompt", "model", "video", "strength"),
}
UPLOADS = "uploads"
REMIX_STRENGTH = 0.6  # `sora remix`'s default


@dataclass(frozen=True)
class Upload:
    filename: str
    data: bytes


@dataclass(frozen=True)
class Context:
    """What checking and rendering a request needs of the server: its data folder, settings and model."""

    data: Path
    preset: object  # the server's resolved settings (presets.Preset)
    backend: object  # a loaded backend, for the checks that need the model (sizes, frame rules, tasks)

    @property
    def model_id(self) -> str:
        return self.backend.model_id


def model_name(value, ctx: Context) -> str:
    """The model the client named: OpenAI's names and this server's model id run the loaded model."""
    if value is None:
        return "sora-2"
    if not isinstance(value, str) or not (OPENAI_MODELS.fullmatch(value) or value in (ctx.model_id,
                                                                                       ctx.preset.model)):
        raise ApiError(400, f"unknown model {value!r}; this server runs {ctx.model_id} (also as sora-2, sora-2-pro)",
                       "model", "invalid_model")
    return value


def build_request(kind: str, video_id: str, fields: dict, files: dict[str, Upload], ctx: Context,
                  source_id: str | None = None) -> dict:
    """Checks the fields of one endpoint's body and saves its uploads under data/uploads; the stored request."""
    allowed = (*FIELDS[kind], *EXTRA_SETTINGS)
    for name in [*fields, *files]:
        if name not in allowed:
            raise ApiError(400, f"unknown field '{name}'; valid: {', '.join(allowed)}", name, "unknown_parameter")
    prompt = fields.get("prompt")
    if not isinstance(prompt, str) or not prompt.strip():
        raise ApiError(400, "prompt is required: the text of the video", "prompt", "missing_required_parameter")
    request = {"kind": kind, "prompt": prompt.strip(), "model": model_name(fields.get("model"), ctx),
               "settings": extra_settings(fields)}
    if "seconds" in fields:
        request["seconds"] = parse_seconds(fields["seconds"])
        if "frames" in request["settings"]:
            raise ApiError(400, "give the length as seconds or frames, not both", "seconds")
    if "size" in fields:
        request["settings"].update(parse_size(fields["size"]))
    if "strength" in fields:
        request["strength"] = parse_number("strength", fields["strength"])
    elif kind in ("remix", "edit"):
        request["strength"] = REMIX_STRENGTH
    if kind == "create" and ("input_reference" in fields or "input_reference" in files):
        request.update(reference(video_id, fields.get("input_reference"), files.get("input_reference"), ctx))
    if kind in ("extend", "edit"):
        request["source"], request["remixed_from"] = source_video(video_id, fields.get("video"), files.get("video"),
                                                                  ctx)
    if kind == "remix":
        request["source"], request["remixed_from"] = copy_output(video_id, source_id, ctx), source_id
    return request


def extra_settings(fields: dict) -> dict:
    """sora's own settings in the body (seed, steps, guidance, negative, frames...), typed: a multipart body
    carries them as text."""
    settings = {}
    for name in EXTRA_SETTINGS:
        if name not in fields:
            continue
        value = fields[name]
        try:
            if isinstance(value, str) and SETTINGS[name].kind is not str:
                value = parse_text_value(name, value)
            settings[name] = check_setting(name, value)
        except ValueError as exc:
            raise ApiError(400, str(exc), name) from None
    return settings


def parse_number(name: str, value) -> float:
    try:
        number = float(value)
    except (TypeError, ValueError):
        number = math.nan
    if isinstance(value, bool) or not math.isfinite(number) or number <= 0:
        raise ApiError(400, f"{name} must be a positive number, got {value!r}", name)
    return number


def parse_seconds(value) -> float:
    """OpenAI's "4", "8", "12" or any positive length (snapped to the model's frame rule as the CLI snaps)."""
    return parse_number("seconds", value)


def parse_size(value) -> dict:
    match = re.fullmatch(r"(\d{1,5})x(\d{1,5})", value) if isinstance(value, str) else None
    if match is None:
        raise ApiError(400, f"size must be WIDTHxHEIGHT such as 720x1280, got {value!r}", "size")
    try:
        return {"width": check_setting("width", int(match[1])), "height": check_setting("height", int(match[2]))}
    except ValueError as exc:
        raise ApiError(400, f"size: {exc}", "size") from None


def reference(video_id: str, value, upload: Upload | None, ctx: Context) -> dict:
    """input_reference, an uploaded image or a data: URL, saved under uploads/: the first frame of an
    image-to-video model, else the first keyframe of a model that takes keyframes."""
    from PIL import Image, UnidentifiedImageError

    if upload is None:
        upload = data_url(value)
    try:
        with Image.open(io.BytesIO(upload.data)) as image:
            image.verify()
            suffix = "." + (image.format or "png").lower().replace("jpeg", "jpg")
    except (OSError, UnidentifiedImageError, ValueError, SyntaxError):
        raise ApiError(400, f"input_reference {upload.filename or ''} is not an image (PNG, JPEG, WebP...)".replace(
            "  ", " "), "input_reference", "invalid_image") from None
    path = save_upload(ctx.data, video_id, "reference", suffix, upload.data)
    try:
        ctx.backend.check_task(str(ctx.data / path))
        return {"image": path}
    except UsageError:
        if "keyframes" in ctx.backend.family.verbs:
            return {"keyframe": path}
        (ctx.data / path).unlink(missing_ok=True)
        raise ApiError(400, f"{ctx.model_id} takes no input_reference (no image-to-video, no keyframes)",
                       "input_reference") from None


def data_url(value) -> Upload:
    url = value.get("image_url") if isinstance(value, dict) else None
    if isinstance(value, dict) and "file_id" in value:
        raise ApiError(400, "input_reference.file_id: this server has no Files API; upload the image or send a "
                            "data: URL", "input_reference")
    if not isinstance(url, str) or not url.startswith("data:") or ";base64," not in url:
        raise ApiError(400, "input_reference must be an uploaded image or {\"image_url\": \"data:image/...;base64,"
                            "...\"} (this server fetches no URLs)", "input_reference")
    try:
        return Upload("image_url", base64.b64decode(url.split(";base64,", 1)[1], validate=True))
    except (binascii.Error, ValueError):
        raise ApiError(400, "input_reference.image_url: the base64 data does not decode", "input_reference") from None


def source_video(video_id: str, value, upload: Upload | None, ctx: Context) -> tuple[str, str | None]:
    """`video`: an uploaded video (saved under uploads/) or {"id": ...} of a completed one; (path, id or None)."""
    from ..conditions import open_source

    if upload is not None:
        suffix = Path(upload.filename or "").suffix.lower()
        suffix = suffix if re.fullmatch(r"\.[a-z0-9]{1,5}", suffix) else ".mp4"
        path = save_upload(ctx.data, video_id, "source", suffix, upload.data)
        try:
            open_source(ctx.data / path)
        except UsageError:
            (ctx.data / path).unlink(missing_ok=True)
            raise ApiError(400, f"video {upload.filename or ''} is not a video sora can read".replace("  ", " "),
                           "video", "invalid_video") from None
        return path, None
    source_id = value.get("id") if isinstance(value, dict) else None
    if not isinstance(source_id, str):
        raise ApiError(400, "video is required: an uploaded video or {\"id\": \"video_...\"}", "video",
                       "missing_required_parameter")
    return copy_output(video_id, source_id, ctx), source_id


def copy_output(video_id: str, source_id: str, ctx: Context) -> str:
    """A completed video's file, copied for the job (deleting the source later leaves the job whole)."""
    from .store import is_id

    output = ctx.data / f"{source_id}.mp4"
    if not is_id(source_id) or not output.is_file():
        raise ApiError(404, f"no completed video with id '{source_id}'", "video", "not_found")
    path = upload_path(ctx.data, video_id, "source", ".mp4")
    shutil.copyfile(output, ctx.data / path)
    return path


def upload_path(data: Path, video_id: str, what: str, suffix: str) -> str:
    """uploads/<id>-<what><suffix>, relative to the data folder (created on first use)."""
    (data / UPLOADS).mkdir(exist_ok=True)
    return f"{UPLOADS}/{video_id}-{what}{suffix}"


def save_upload(data: Path, video_id: str, what: str, suffix: str, content: bytes) -> str:
    path = upload_path(data, video_id, what, suffix)
    (data / path).write_bytes(content)
    return path


def resolve(request: dict, ctx: Context):
    """The request as render takes it: (prompt, settings, verb), checked (UsageError says what is wrong)."""
    from ..conditions import Keyframe, check_image, open_source
    from ..generate import check_render, source_verb

    settings = dict(request["settings"])
    preset = ctx.preset.with_overrides(settings)
    verb = Verb()
    if "source" in request:
        name = "extend" if request["kind"] == "extend" else "remix"
        preset, verb = source_verb(name, open_source(ctx.data / request["source"]), preset, settings.get("frames"),
                                   request.get("seconds"), strength=request.get("strength"))
    elif "seconds" in request:
        preset = preset.with_overrides({"frames": max(1, round(request["seconds"] * preset.fps))})
    if "image" in request:
        preset = preset.with_overrides({"image": str(ctx.data / request["image"])})
    if "keyframe" in request:
        verb = replace(verb, keyframes=(check_image(Keyframe(str(ctx.data / request["keyframe"]))),))
    prompt, preset = check_render(request["prompt"], preset, verb)
    return prompt, preset, verb
