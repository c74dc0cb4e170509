"""Timing helpers shared by the bench scripts: the real training loop's step time, and a median.

The relearning step is timed inside minimodel.method.train.train itself (batch construction, forward,
backward, fused AdamW, schedule): the interval between two consecutive batch requests is one whole step.
"""

from __future__ import annotations

import statistics
import time
from typing import Callable

import torch

from minimodel.method.train import train


def loop_ms(
    model, loss_fn: Callable[[dict], torch.Tensor], batch_at: Callable[[int], dict], steps: int, precision: str = "fp32", warmups: int = 2
) -> tuple[int, float]:
    """(FLOPs of one step, ms of one step of train() after `warmups` steps; the first counts FLOPs).

    On the CPU the median gap between batch requests; on a GPU, where steps are queued ahead and
    overlap, the mean over the run from the first timed step to train()'s return (which waits).
    """
    stamps: list[float] = []

    def timed_batch(i: int) -> dict:
        stamps.append(time.perf_counter())
        return batch_at(i)

    total = warmups + steps
    stats = train(model, loss_fn, timed_batch, steps=total, lr=1e-4, precision=precision, desc="bench")
    end = time.perf_counter()
    if next(model.parameters()).is_cuda:
        ms = (end - stamps[warmups]) * 1000 / steps
    else:
        ms = statistics.median((b - a) * 1000 for a, b in zip(stamps[warmups:], [*stamps[warmups + 1 :], end]))
    return stats["flops"] // total, ms


def median_ms(step: Callable[[], object], repeats: int, warmups: int = 2) -> float:
    """Median milliseconds of step() over `repeats` calls after `warmups` calls."""
    for _ in range(warmups):
        step()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        step()
        times.append((time.perf_counter() - start) * 1000)
    return statistics.median(times)
