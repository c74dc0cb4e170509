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
    """Cumulative training compute of one stage (all ranks); evaluation time is not charged.

    A step only adds this process's counts (tokens may be a device tensor): nothing waits for the
    device or the other ranks. settle() folds them into the job's totals at report points.
    """

    flops: int = 0
    tokens: int = 0
    wall_s: float = 0.0
    per_shape: dict = field(default_factory=dict)
    _flops: int = 0
    _tokens: object = 0
    _since: float | None = None

    def begin(self) -> None:
        """Start the training clock (again, after an evaluation)."""
        self._since = time.perf_counter()

    def step(self, shape: tuple, tokens: object, run: Callable[[], object]) -> object:
        """Run one step, counting its FLOPs the first time this batch shape is seen."""
        if shape in self.per_shape:
            out = run()
        else:
            result = []
            self.per_shape[shape] = count_flops(lambda: result.append(run()))
            out = result[0]
        self._flops += self.per_shape[shape]
        self._tokens = self._tokens + tokens
        return out

    def settle(self, total: Callable[[list[int]], list[int]] | None = None) -> None:
        """Add the counts since the last settle and the seconds since begin() to the totals.

        Reading the token count waits for the device, so the clock includes all queued work.
        total maps this process's [flops, tokens] to the whole job's (a sum over the ranks of a
        distributed job, whose ranks may see different batch shapes); every rank calls it at the same step.
        """
        counts = [self._flops, int(self._tokens)]
        if self._since is not None:
            self.wall_s += time.perf_counter() - self._since
        flops, tokens = total(counts) if total else counts
        self.flops += flops
        self.tokens += tokens
        self._flops, self._tokens, self._since = 0, 0, None

    def totals(self) -> dict:
        return {"flops": self.flops, "tokens": self.tokens, "wall_s": round(self.wall_s, 3)}
