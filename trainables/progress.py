"""Training progress from Ray workers: live bars on the driver's terminal, and the step each loop reached.

minimodel.method.train draws a tqdm bar per training loop. In a Ray worker a plain bar writes carriage
returns into a log that Ray forwards line by line, so it is replaced here by Ray's distributed tqdm:
the driver draws one bar per running stage or trial, updated once a second. The same bar notes the
last step a loop finished in a small file, at most once a second and at the loop's end (a file write
per step would cost a GPU step's time on a cluster's shared file system), so that a trial killed
between checkpoints knows about how many steps its retry computes again (trial.py counts them as
recomputed work; up to a second's steps may go uncounted).
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Iterable, Iterator

from ray.experimental import tqdm_ray

from minimodel.method import train

_record: Path | None = None
NOTE_EVERY_S = 1.0


class Bar:
    """The part of tqdm's interface minimodel.method.train uses, drawn by the driver (TQDM_DISABLE=1: no bar)."""

    def __init__(
        self, iterable: Iterable[int], desc: str = "", initial: int = 0, total: int | None = None, disable: bool = False, **_: object
    ) -> None:
        self.iterable, self.desc, self.total, self.noted = iterable, desc, total, 0.0
        quiet = disable or os.environ.get("TQDM_DISABLE", "").lower() in ("1", "true")
        self.bar = None if quiet else tqdm_ray.tqdm(desc=desc, total=total, flush_interval_s=2.0)
        if self.bar:
            self.bar.n = initial

    def __iter__(self) -> Iterator[int]:
        for step in self.iterable:
            yield step
            if self.bar:
                self.bar.update(1)
            if _record and (time.monotonic() - self.noted >= NOTE_EVERY_S or step + 1 == self.total):
                _note(_record, self.desc, step + 1)
                self.noted = time.monotonic()
        if self.bar:
            self.bar.close()

    def set_postfix(self, **values: object) -> None:
        if self.bar:
            self.bar.set_description(f"{self.desc} " + " ".join(f"{k}={v}" for k, v in values.items()))


def use_ray_bars(record: Path | None = None) -> None:
    """Draw this worker's training loops on the driver; note each finished step in `record` if given."""
    global _record
    _record = record
    train.tqdm = Bar


def reached(record: Path) -> tuple[str, int]:
    """(loop, last finished step) noted in `record`, or ("", 0)."""
    try:
        noted = json.loads(record.read_text())
        return noted["desc"], noted["step"]
    except (OSError, ValueError, KeyError):
        return "", 0


def _note(record: Path, desc: str, step: int) -> None:
    record.parent.mkdir(parents=True, exist_ok=True)
    tmp = record.with_name(f"{record.name}.{os.getpid()}.tmp")  # every DDP rank notes its step
    tmp.write_text(json.dumps({"desc": desc, "step": step}))
    tmp.replace(record)
