"""Mixed precision: bf16 autocast where the hardware computes bf16 natively, weights kept in fp32.

`precision` is a trial-config key: auto (bf16 on CUDA and on CPUs with native bf16, else fp32),
fp32 (no autocast) or bf16 (always autocast). Only the forward runs in bf16; parameters, gradients
and optimizer state stay fp32, and losses are computed from float32 logits.
"""

from __future__ import annotations

import contextlib
from typing import ContextManager

import torch

from minimodel.experiment.config import PRECISIONS


def native_bf16_cpu() -> bool:
    """Whether this CPU has bf16 instructions (AVX512-BF16, AMX or Arm BF16).

    torch.backends.cpu.get_cpu_capability() only says "AVX512" and oneDNN reports bf16 support for
    any AVX-512 CPU (it emulates it there, slower than fp32), so ask cpuinfo for the flags themselves.
    """
    caps = torch.cpu.get_capabilities()
    return any(caps.get(flag, False) for flag in ("avx512_bf16", "amx_bf16", "bf16"))


def autocast_dtype(precision: str, device: torch.device | str) -> torch.dtype | None:
    """The autocast dtype for `precision` on `device`, or None for plain fp32."""
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {', '.join(PRECISIONS)}, got {precision!r}")
    kind = torch.device(device).type
    if precision == "bf16" or (precision == "auto" and (kind == "cuda" or (kind == "cpu" and native_bf16_cpu()))):
        return torch.bfloat16
    return None


def autocast(precision: str, device: torch.device | str) -> ContextManager:
    """torch.autocast for `precision` on `device`; a no-op context for fp32."""
    dtype = autocast_dtype(precision, device)
    return contextlib.nullcontext() if dtype is None else torch.autocast(torch.device(device).type, dtype=dtype)
