"""An analytic judge of tiny-world clips: which background, colour, shape and motion a video shows.

It reads pixels only (no model), so it can score the renderer's own clips (it must get them all right) and a
model's decoded clips alike. The background is the frame's median colour; the object is every pixel more than
half-way from the background to the object's colour; the shape is the ideal circle, square or triangle of the same
area and centroid that overlaps the object best; motion comes from the centroid track, unwrapped across the edges.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

from .world import BACKGROUNDS, COLOURS, SHAPES, SIZE, Scene, signed_distance

ATTRIBUTES = ("colour", "shape", "motion", "background", "present")
MIN_CONTRAST = 40.0  # RGB distance from the background below which a pixel is background
PRESENT_FRACTION = 0.9  # the clip counts as showing the object when it is present in this share of frames


@dataclass(frozen=True)
class Verdict:
    background: str
    colour: str | None
    shape: str | None
    motion: str | None
    present: float  # share of frames where an object of about the right size is visible
    background_drift: float = 0.0  # flicker: the largest change of any frame's background from the clip's (RGB)
    colour_agreement: float = 0.0  # steadiness: share of object frames showing the clip's majority colour
    shape_agreement: float = 0.0  # ... and its majority shape

    def to_dict(self) -> dict:
        return asdict(self)


def _nearest(rgb: np.ndarray, table: dict[str, tuple[int, int, int]]) -> str:
    names = list(table)
    distances = [np.linalg.norm(rgb - np.array(table[n], np.float64)) for n in names]
    return names[int(np.argmin(distances))]


def _centring_shift(occupied: np.ndarray) -> int:
    """A circular shift that moves the largest empty run of a 1D occupancy to the ends (unsplits a wrapped shape)."""
    n = len(occupied)
    if occupied.all() or not occupied.any():
        return 0
    best_len, best_end, run = -1, 0, 0
    for i in range(2 * n):  # twice round, so a run that wraps is seen whole
        run = run + 1 if not occupied[i % n] else 0
        if run > best_len and run <= n:
            best_len, best_end = run, i % n
    gap_centre = best_end - best_len // 2
    return (n // 2 - (gap_centre + n // 2)) % n  # puts the gap's centre at index 0


def _frame_object(frame: np.ndarray, background: np.ndarray):
    """(mask, colour) of the object in one frame, or None when nothing stands out from the background."""
    diff = frame - background
    dist = np.linalg.norm(diff, axis=-1)
    peak = dist.max()
    if peak < MIN_CONTRAST:
        return None
    core = dist >= 0.8 * peak
    colour = np.median(frame[core], axis=0)
    axis = colour - background
    coverage = (diff @ axis) / max(float(axis @ axis), 1e-6)  # 0 at the background, 1 at the object's colour
    mask = coverage > 0.5
    return (mask, colour) if mask.any() else None


def _shape(mask: np.ndarray) -> str:
    """The ideal shape that overlaps the object best, each drawn with the object's area about its centroid.

    Matching whole templates survives soft or slightly rounded edges (a model's output) far better than any
    single measurement of corners or fill would."""
    h, w = mask.shape
    ys, xs = np.nonzero(mask)
    cy, cx, area = ys.mean() + 0.5, xs.mean() + 0.5, len(xs)
    gy, gx = np.mgrid[0:h, 0:w].astype(np.float64) + 0.5
    half_extent = {"circle": np.sqrt(area / np.pi), "square": np.sqrt(area) / 2, "triangle": np.sqrt(area / np.sqrt(3))}
    best, best_iou = "circle", -1.0
    for shape in SHAPES:
        template = signed_distance(shape, gx - cx, gy - cy, half_extent[shape]) < 0
        iou = (mask & template).sum() / max((mask | template).sum(), 1)
        if iou > best_iou:
            best, best_iou = shape, iou
    return best


def _motion(track: list[tuple[int, float, float]], fps: float) -> str:
    """track: (frame index, x, y) in fractions of the frame for frames showing the object."""
    if len(track) < 2:
        return "standing still"
    steps = [(b[0] - a[0], (b[1] - a[1] + 0.5) % 1 - 0.5, (b[2] - a[2] + 0.5) % 1 - 0.5)
             for a, b in zip(track, track[1:])]
    duration = sum(s[0] for s in steps) / fps
    vx, vy = sum(s[1] for s in steps) / duration, sum(s[2] for s in steps) / duration
    path_y = sum(abs(s[2]) for s in steps) / duration
    path_x = sum(abs(s[1]) for s in steps) / duration
    if path_y > 0.25 and abs(vy) < 0.6 * path_y and abs(vx) < 0.1:
        return "bouncing"  # goes up and down a lot without getting anywhere
    if max(abs(vx), abs(vy)) > 0.12:
        if abs(vx) >= abs(vy):
            return "moving right" if vx > 0 else "moving left"
        return "moving down" if vy > 0 else "moving up"
    if path_x + path_y < 0.15:
        return "standing still"
    return "unclear"


def judge(frames: np.ndarray, fps: float) -> Verdict:
    """frames: (F, H, W, 3) uint8 of one clip."""
    video = frames.astype(np.float64)
    f, h, w, _ = video.shape
    per_frame = np.median(video.reshape(f, -1, 3), axis=1)  # (F, 3): each frame's background
    background = per_frame.mean(axis=0)
    expected_area = (SIZE * min(h, w)) ** 2
    colours, shapes, track = [], [], []
    for i, frame in enumerate(video):
        found = _frame_object(frame, background)
        if found is None:
            continue
        mask, colour = found
        if not 0.25 * expected_area <= mask.sum() <= 2.0 * expected_area:
            continue
        sy, sx = _centring_shift(mask.any(axis=1)), _centring_shift(mask.any(axis=0))
        centred = np.roll(mask, (sy, sx), axis=(0, 1))
        ys, xs = np.nonzero(centred)
        track.append((i, ((xs.mean() + 0.5 - sx) / w) % 1, ((ys.mean() + 0.5 - sy) / h) % 1))
        colours.append(_nearest(colour, COLOURS))
        shapes.append(_shape(centred))

    def majority(values):
        return max(set(values), key=values.count) if values else None

    def agreement(values):
        return values.count(majority(values)) / len(values) if values else 0.0

    return Verdict(
        background=_nearest(background, BACKGROUNDS),
        colour=majority(colours),
        shape=majority(shapes),
        motion=_motion(track, fps) if track else None,
        present=len(track) / f,
        background_drift=float(np.abs(per_frame - background).max()),
        colour_agreement=agreement(colours),
        shape_agreement=agreement(shapes),
    )


def score(verdict: Verdict, scene: Scene) -> dict[str, bool]:
    """Per attribute: did the clip show what the caption asked for."""
    return {
        "colour": verdict.colour == scene.colour,
        "shape": verdict.shape == scene.shape,
        "motion": verdict.motion == scene.motion,
        "background": verdict.background == scene.background,
        "present": verdict.present >= PRESENT_FRACTION,
    }
