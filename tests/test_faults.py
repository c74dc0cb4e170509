"""Faults a long sweep meets, each with nothing lost: a damaged cache, two sweeps on one cache, ...

Real processes, real files: a second process is a real `multiprocessing` process, damage is real truncation.
"""
from __future__ import annotations

import json
import multiprocessing
import time
from pathlib import Path

import pytest

from minimodel import cache, pipeline
from minimodel.config import trial_config


def tiny_config(toy_data: dict) -> dict:
    return trial_config({
        "model": {"name": "scratch", "family": "bert", "hidden": 32, "layers": 2, "heads": 2, "ffn": 64, "vocab_size": 300},
        "pretrain": {"steps": 10, "lr": 2e-3, "batch_size": 16},
        "data": {"source_corpus": toy_data["corpus"], "task": toy_data["task"], "target_corpus": toy_data["corpus"],
                 "seq_len": 32, "max_docs": 300, "max_eval": 40},
        "adapt": {"language": "xx", "method": "standard", "vocab_size": 300, "steps": 10, "eval_every": 5},
    })


def test_damaged_stage_and_token_entries_are_rebuilt_not_loaded(toy_data, tmp_path):
    cfg = tiny_config(toy_data)
    first = pipeline.run_stage("source", cfg, tmp_path)
    entry = pipeline.stage_dir("source", cfg, tmp_path)
    weights = entry / "model" / "model.safetensors"
    (tokens,) = (tmp_path / "tokens").glob("*/blocks.safetensors")
    sizes = weights.stat().st_size, tokens.stat().st_size
    # a half-copied cache: both files cut in the middle (the stats say the stage is done)
    for path in (weights, tokens):
        with open(path, "r+b") as f:
            f.truncate(path.stat().st_size // 2)
    cache._verified.clear()  # a new process: nothing checked yet
    assert not pipeline.stage_done("source", cfg, tmp_path)
    again = pipeline.run_stage("source", cfg, tmp_path)
    assert (weights.stat().st_size, tokens.stat().st_size) == sizes
    assert pipeline.stage_done("source", cfg, tmp_path)
    assert again["mlm_accuracy"] == first["mlm_accuracy"]  # the same deterministic stage, recomputed
    # a flipped byte, same size: the checksum catches it
    with open(weights, "r+b") as f:
        f.seek(sizes[0] // 2)
        byte = f.read(1)
        f.seek(sizes[0] // 2)
        f.write(bytes([byte[0] ^ 0xFF]))
    cache._verified.clear()
    assert not cache.valid(entry)


def _build_slowly(entry: str, log: str) -> str:
    """A builder that takes a while and notes each time it really computes."""
    def compute(tmp: Path) -> None:
        with open(log, "a") as f:
            f.write(f"start {time.time()}\n")
        (tmp / "half").write_text("x" * 1000)
        time.sleep(1.5)
        (tmp / "value.json").write_text(json.dumps({"answer": 42}))
    cache.build(entry, compute)
    return (Path(entry) / "value.json").read_text()


def test_two_sweeps_sharing_a_cache_build_an_entry_once(tmp_path):
    entry, log = tmp_path / "stage" / "abc", tmp_path / "computed.log"
    ctx = multiprocessing.get_context("fork")  # two processes, as two sweeps would be
    with ctx.Pool(2) as pool:
        results = pool.starmap(_build_slowly, [(str(entry), str(log))] * 2)
    assert results == ['{"answer": 42}'] * 2  # neither read a half-written entry
    assert len(log.read_text().splitlines()) == 1  # and only one computed it
    assert cache.valid(entry) and not cache.partial(entry).exists()
