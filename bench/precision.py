"""fp32 versus bf16 autocast on this CPU, for the bundled MiniLM (6 layers, hidden 384, 30,522 WordPieces).

Three kinds of work: (a) an embedding-relearning step through the whole frozen model (word embeddings
and output bias trainable, masked-only logits), (b) a whole-model training step, (c) a forward-only
classification eval batch through tasks.evaluate. Milliseconds are the median of repeated steps after
warm-ups (the first warm-up counts the FLOPs); weights stay fp32 in both settings.

    .venv/bin/python bench/precision.py [--repeats 5] [--threads 2]
"""
from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from typing import Callable

import torch

from minimodel import tasks
from minimodel.compute import count_flops
from minimodel.embeddings import only_embeddings_trainable
from minimodel.mlm import mlm_batches, mlm_loss
from minimodel.models import load_mlm, trainable
from minimodel.precision import autocast

WARMUPS = 2


def timed(step: Callable[[], object], repeats: int) -> tuple[int, float]:
    """(FLOPs of one step, median milliseconds over `repeats` steps after WARMUPS warm-ups)."""
    flops = count_flops(step)
    for _ in range(WARMUPS - 1):
        step()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        step()
        times.append((time.perf_counter() - start) * 1000)
    return flops, statistics.median(times)


def train_step(model, batch: dict, precision: str) -> Callable[[], None]:
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-5)

    def step() -> None:
        with autocast(precision, "cpu"):
            loss = mlm_loss(model, batch)
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)

    return step


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    model, tokenizer = load_mlm("bundled:minilm-l6")
    caps = torch.cpu.get_capabilities()
    flags = [f for f in ("avx512_bf16", "amx_bf16") if caps.get(f)]
    print(f"# {caps.get('cpu_name')}, bf16 flags {flags or 'none'}, {args.threads} threads, torch {torch.__version__}; "
          f"MiniLM-L6, median of {args.repeats} after {WARMUPS} warm-ups")
    print("| work | batch | fp32 ms | bf16 ms | speed-up | GFLOP/s fp32 | GFLOP/s bf16 |")
    print("| --- | --- | --- | --- | --- | --- | --- |")

    def row(work: str, shape: str, make: Callable[[str], Callable[[], object]]) -> None:
        (flops, fp32), (_, bf16) = (timed(make(p), args.repeats) for p in ("fp32", "bf16"))
        print(f"| {work} | {shape} | {fp32:.0f} | {bf16:.0f} | {fp32 / bf16:.2f} | "
              f"{flops / fp32 / 1e6:.0f} | {flops / bf16 / 1e6:.0f} |", flush=True)

    model.train()
    for batch_size, seq in ((16, 64), (32, 128)):
        blocks = torch.randint(1000, len(tokenizer), (256, seq), dtype=torch.int32)
        batch = mlm_batches(blocks, tokenizer, batch_size, seed=0)(0)
        only_embeddings_trainable(model)
        row("(a) relearn: embeddings + bias trainable", f"{batch_size}x{seq}", lambda p: train_step(model, batch, p))
        trainable(model, True)
        row("(b) whole model trainable", f"{batch_size}x{seq}", lambda p: train_step(model, batch, p))

    with tempfile.TemporaryDirectory() as folder:
        model.save_pretrained(folder)
        classifier = tasks.classifier(folder, ["a", "b", "c"])
    items = [{"input_ids": torch.randint(1000, len(tokenizer), (64,)).tolist(), "labels": 0} for _ in range(64)]
    row("(c) classification eval, forward only", "64x64",
        lambda p: lambda: tasks.evaluate(classifier, items, tokenizer, batch_size=64, precision=p))


if __name__ == "__main__":
    main()
