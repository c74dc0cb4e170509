"""Precision: which autocast each setting picks, and that bf16 training matches fp32 with fp32 weights."""

from __future__ import annotations

import copy
import math
from pathlib import Path

import pytest
import torch

from minimodel.method import models
from minimodel.experiment.config import ConfigError, trial_config
from minimodel.method.mlm import mlm_batches, mlm_eval, mlm_loss, pack
from minimodel.method.precision import autocast, autocast_dtype, native_bf16_cpu
from minimodel.method.train import train


def test_fp32_means_no_autocast_and_bf16_forces_it():
    for device in ("cpu", "cuda"):
        assert autocast_dtype("fp32", device) is None
        assert autocast_dtype("bf16", device) is torch.bfloat16
    assert autocast_dtype("auto", "cuda") is torch.bfloat16
    a, b = torch.randn(4, 4), torch.randn(4, 4)
    with autocast("fp32", "cpu"):
        assert not torch.is_autocast_enabled("cpu")
        assert (a @ b).dtype is torch.float32
    with autocast("bf16", "cpu"):
        assert (a @ b).dtype is torch.bfloat16
    with pytest.raises(ValueError, match="precision"):
        autocast_dtype("fp16", "cpu")


def test_auto_on_this_cpu_follows_its_bf16_flags():
    cpuinfo = Path("/proc/cpuinfo")
    if not cpuinfo.exists() or torch.cpu.get_capabilities()["architecture"] != "x86_64":
        pytest.skip("checks the flags Linux reports on x86")
    flags = set(cpuinfo.read_text().split())
    native = bool({"avx512_bf16", "amx_bf16"} & flags)
    assert native_bf16_cpu() == native
    assert autocast_dtype("auto", "cpu") is (torch.bfloat16 if native else None)


def test_config_rejects_an_unknown_precision():
    assert trial_config()["precision"] == "auto"
    assert trial_config({"precision": "bf16"})["precision"] == "bf16"
    with pytest.raises(ConfigError, match="'precision'"):
        trial_config({"precision": "fp16"})


def test_bf16_training_matches_fp32_and_keeps_fp32_weights(english_lines):
    tokenizer = models.empty_tokenizer("bert").train_new_from_iterator(english_lines, 300)
    model = models.build_mlm("bert", tokenizer, hidden=48, layers=2, heads=2, ffn=96, max_len=32, seed=0)
    blocks = pack(tokenizer(english_lines)["input_ids"], 32)
    held = [mlm_batches(blocks, tokenizer, 16, seed=1)(i) for i in range(2)]
    results = {}
    for precision in ("fp32", "bf16"):
        trained = copy.deepcopy(model)
        stats = train(
            trained, lambda b: mlm_loss(trained, b), mlm_batches(blocks, tokenizer, 16, seed=0), steps=4, lr=1e-3, precision=precision
        )
        assert all(p.dtype is torch.float32 for p in trained.parameters())
        results[precision] = (stats["loss"], mlm_eval(trained, held, precision)["mlm_loss"])
    for fp32, bf16 in zip(results["fp32"], results["bf16"]):
        assert math.isfinite(bf16) and abs(bf16 - fp32) / fp32 < 0.05, results
