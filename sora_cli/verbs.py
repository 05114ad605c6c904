"""Sora's verbs beyond a plain prompt: extend, remix, storyboard, loop, keyframes (and variations, which every model
does: several seeds, one model load). Torch-free: a request is checked, and refused in one line, before any
model loads; the backend turns a Verb into what its model conditions on (native_verbs.py for the native engine)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from .conditions import Keyframe, ShotSpec, SourceVideo, check_image, open_source, sha256
from .errors import UsageError

# what a family's record may declare it can do (Family.verbs); variations need nothing of the model
VERBS = ("extend", "remix", "storyboard", "loop", "keyframes")
LOOP_MIN_FRAMES = 25  # a loop needs windows enough to close on its own start
LOOP_OVERLAP = 8  # frames a loop makes past its end, cross-faded into the frames it starts from (pipeline.py)


@dataclass(frozen=True)
class Verb:
    """What a video is made from besides its prompt; the default is plain generation."""

    source: SourceVideo | None = None  # extend, remix
    extend: bool = False
    only_new: bool = False  # extend: write the continuation alone
    strength: float | None = None  # remix: how far from the source (0, 1]
    keyframes: tuple[Keyframe, ...] = ()
    shots: tuple[ShotSpec, ...] = ()  # storyboard
    loop: bool = False

    @property
    def names(self) -> tuple[str, ...]:
        """The verbs this asks of the model."""
        asked = {"extend": self.extend, "remix": self.strength is not None, "storyboard": bool(self.shots),
                 "loop": self.loop, "keyframes": bool(self.keyframes)}
        return tuple(n for n in VERBS if asked[n])

    @property
    def kept_frames(self) -> int:
        """Source frames written before the new ones (extend, unless --only-new)."""
        return self.source.frames if self.extend and not self.only_new else 0

    def shot_starts(self) -> list[int]:
        """The first frame of each storyboard shot."""
        starts, at = [], 0
        for shot in self.shots:
            starts.append(at)
            at += shot.frames
        return starts

    def all_keyframes(self) -> tuple[Keyframe, ...]:
        """--keyframe images and each storyboard shot's first image (held exactly at the shot's first frame)."""
        firsts = [Keyframe(s.image, str(at)) for s, at in zip(self.shots, self.shot_starts()) if s.image]
        return (*self.keyframes, *firsts)

    def record(self) -> dict | None:
        """The recipe's "verb" block: every input by name and SHA-256, so `--from` can render it again."""
        if not self.names:
            return None
        block: dict = {"verbs": list(self.names)}
        if self.source is not None:
            block["source"] = {"file": str(self.source.path), "sha256": self.source.digest,
                               "frames": self.source.frames, "fps": self.source.fps,
                               "width": self.source.width, "height": self.source.height}
        if self.extend:
            block["only_new"] = self.only_new
        if self.strength is not None:
            block["strength"] = self.strength
        if self.keyframes:
            block["keyframes"] = [{"image": k.image, "sha256": sha256(Path(k.image).expanduser()), "at": k.at,
                                   "strength": k.strength} for k in self.keyframes]
        if self.shots:
            block["storyboard"] = [{"prompt": s.prompt, "frames": s.frames, "cut": s.cut,
                                    **({"image": s.image, "sha256": sha256(Path(s.image))} if s.image else {})}
                                   for s in self.shots]
        if self.loop:
            block["loop"] = True
        return block


def check_strength(strength: float) -> float:
    if not 0.0 < strength <= 1.0:
        raise UsageError(f"--strength must be in (0, 1] (how far from the source: small stays close), got {strength:g}")
    return strength


def check_verb(verb: Verb, family, model_id: str, audio: bool = False) -> None:
    """One line naming the models that can, when this model's family cannot do a verb asked of it. A model with
    sound extends silently only: its soundtrack would cover the frames it continues too, not the new ones alone."""
    from .families import FAMILIES
    from .registry import MODELS

    for name in verb.names:
        if name not in family.verbs:
            can = [m.id for m in MODELS.values() if name in FAMILIES[m.family].verbs]
            raise UsageError(f"{model_id} cannot {'do ' if name in ('keyframes', 'storyboard') else ''}{name}; "
                             f"models that can: {', '.join(can) or 'none'}")
    if verb.extend and family.audio and audio:
        raise UsageError(f"{model_id} extends without its soundtrack only: add --no-audio")


def check_frames(verb: Verb, frames: int, fps: int) -> None:
    """What the verb needs of the video's length: keyframes inside it, a loop long enough and a whole number of
    latent steps (4k frames, so frame N+1 would be frame 0 again)."""
    for keyframe in verb.all_keyframes():
        keyframe.frame(frames, fps)
    if verb.loop and (frames < LOOP_MIN_FRAMES or frames % 4):
        raise UsageError(f"--loop needs a multiple of 4 frames, at least {LOOP_MIN_FRAMES}; asked for {frames} "
                         f"(try {max(LOOP_MIN_FRAMES + 3, frames + 3) // 4 * 4})")


def from_record(block: dict | None, where: Path) -> Verb:
    """The Verb a recipe's "verb" block describes; its files must still be there, unchanged (SHA-256)."""
    if not block:
        return Verb()

    def same(path: str, digest: str, what: str) -> str:
        file = Path(path).expanduser()
        if not file.is_file():
            raise UsageError(f"{where}: the {what} {path} is gone")
        if sha256(file) != digest:
            raise UsageError(f"{where}: the {what} {path} changed since (its SHA-256 differs)")
        return path

    verbs = block.get("verbs", [])
    source = None
    if "source" in block:  # opening it hashes it: compared with the recorded digest rather than hashed twice
        recorded = block["source"]
        if not Path(recorded["file"]).expanduser().is_file():
            raise UsageError(f"{where}: the source video {recorded['file']} is gone")
        source = open_source(Path(recorded["file"]))
        if source.digest != recorded["sha256"]:
            raise UsageError(f"{where}: the source video {recorded['file']} changed since (its SHA-256 differs)")
    keyframes = tuple(check_image(Keyframe(same(k["image"], k["sha256"], "keyframe image"), str(k["at"]),
                                           float(k["strength"]))) for k in block.get("keyframes", []))
    shots = tuple(ShotSpec(s["prompt"], int(s["frames"]),
                           same(s["image"], s["sha256"], "shot image") if s.get("image") else None, bool(s["cut"]))
                  for s in block.get("storyboard", []))
    return Verb(source, "extend" in verbs, bool(block.get("only_new", False)),
                block.get("strength") if "remix" in verbs else None, keyframes, shots, bool(block.get("loop")))
