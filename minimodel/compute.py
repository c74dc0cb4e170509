"""Compute accounting: FLOPs counted by torch on a real step, plus tokens and wall seconds.

FLOPs come from torch.utils.flop_counter on the first step of each batch shape, not from a formula,
so frozen layers (no weight gradients) and masked-only heads are charged what they really cost.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Callable

from torch.utils.flop_counter import FlopCounterMode


def count_flops(step: Callable[[], object]) -> int:
    """Run step() once under the FLOP counter and return the FLOPs it performed (forward and backward)."""
    with FlopCounterMode(display=False) as counter:
        step()
    return int(counter.get_total_flops())


@dataclass
class Meter:
    """Cumulative training compute of one stage (all ranks); evaluation time is not charged."""

    flops: int = 0
    tokens: int = 0
    wall_s: float = 0.0
    per_shape: dict = field(default_factory=dict)

    def step(self, shape: tuple, tokens: int, run: Callable[[], object],
             total: Callable[[list[int]], list[int]] | None = None) -> object:
        """Run one step, counting its FLOPs the first time this batch shape is seen.

        total maps this process's [flops, tokens] to the whole job's (a sum over the ranks of a
        distributed job, whose ranks may see different batch shapes), so every rank holds the job's totals.
        """
        start = time.perf_counter()
        if shape in self.per_shape:
            out = run()
        else:
            result = []
            self.per_shape[shape] = count_flops(lambda: result.append(run()))
            out = result[0]
        flops, tokens = total([self.per_shape[shape], tokens]) if total else (self.per_shape[shape], tokens)
        self.flops += flops
        self.tokens += tokens
        self.wall_s += time.perf_counter() - start
        return out

    def totals(self) -> dict:
        return {"flops": self.flops, "tokens": self.tokens, "wall_s": round(self.wall_s, 3)}
