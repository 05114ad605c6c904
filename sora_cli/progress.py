"""Progress on stderr: a Rich bar on a terminal, plain periodic lines in logs (CI), nothing when quiet.

Every reporter is a callable (phase, done, total), the same plain callback the samplers use.
"""

from __future__ import annotations

import sys
import time

PHASES = {"denoise": "denoising", "decode": "decoding + encoding"}


class PlainReporter:
    """One line per phase every `interval` seconds and at the end: readable in a CI log."""

    def __init__(self, stream=None, interval: float = 2.0):
        self.stream = stream or sys.stderr
        self.interval = interval
        self.phase, self.started, self.last = None, 0.0, 0.0

    def __call__(self, phase: str, done: int, total: int) -> None:
        now = time.monotonic()
        if phase != self.phase:
            self.phase, self.started, self.last = phase, now, 0.0
        if done < total and now - self.last < self.interval:
            return
        self.last = now
        elapsed = now - self.started
        unit = "it/s" if phase == "denoise" else "frames/s"
        rate = f" ({done / elapsed:.1f} {unit})" if elapsed > 0.05 else ""
        print(f"{PHASES.get(phase, phase)}: {done}/{total}{rate}", file=self.stream, flush=True)

    def close(self) -> None:
        pass


class RichReporter:
    """A live bar per phase: steps, rate, elapsed and ETA."""

    def __init__(self):
        from rich.console import Console
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            TaskProgressColumn,
            TextColumn,
            TimeElapsedColumn,
            TimeRemainingColumn,
        )

        class Rate(TextColumn):
            def render(self, task):
                speed = task.finished_speed or task.speed
                return super().render(task) if speed is None else f"{speed:.2f} {task.fields.get('unit', 'it')}/s"

        self.progress = Progress(
            TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TaskProgressColumn(),
            Rate(""), TimeElapsedColumn(), TextColumn("eta"), TimeRemainingColumn(),
            console=Console(stderr=True), transient=False,
        )
        self.progress.start()
        self.tasks: dict[str, int] = {}

    def __call__(self, phase: str, done: int, total: int) -> None:
        if phase not in self.tasks:
            unit = "it" if phase == "denoise" else "frames"
            self.tasks[phase] = self.progress.add_task(PHASES.get(phase, phase), total=total, unit=unit)
        self.progress.update(self.tasks[phase], completed=done, total=total)

    def close(self) -> None:
        self.progress.stop()


class SilentReporter:
    def __call__(self, phase: str, done: int, total: int) -> None:
        pass

    def close(self) -> None:
        pass


def make_reporter(quiet: bool):
    if quiet:
        return SilentReporter()
    return RichReporter() if sys.stderr.isatty() else PlainReporter()
