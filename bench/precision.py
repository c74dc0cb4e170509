"""fp32 versus bf16 autocast on this CPU, for the bundled MiniLM (6 layers, hidden 384, 30,522 WordPieces).

Three kinds of work: (a) an embedding-relearning step through the whole frozen model (word embeddings
and output bias trainable, masked-only logits), (b) a whole-model training step, both as steps of the
real loop (minimodel.method.train.train, bench/steps.py), (c) a forward-only classification eval batch through
tasks.evaluate. Milliseconds are the median of repeated steps after warm-ups (the first counts the
FLOPs); weights stay fp32 in both settings.

    .venv/bin/python bench/precision.py [--repeats 5] [--threads 2]
"""

from __future__ import annotations

import argparse
import tempfile
from typing import Callable

import torch

from minimodel.text import tasks
from minimodel.method.compute import count_flops
from minimodel.method.embeddings import only_embeddings_trainable
from minimodel.method.mlm import mlm_batches, mlm_loss
from minimodel.method.models import load_mlm, trainable
from steps import loop_ms, median_ms

WARMUPS = 2


def timed(step: Callable[[], object], repeats: int) -> tuple[int, float]:
    """(FLOPs of one call, median milliseconds over `repeats` calls after WARMUPS warm-ups)."""
    return count_flops(step), median_ms(step, repeats, WARMUPS - 1)


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
    print(
        f"# {caps.get('cpu_name')}, bf16 flags {flags or 'none'}, {args.threads} threads, torch {torch.__version__}; "
        f"MiniLM-L6, median of {args.repeats} after {WARMUPS} warm-ups"
    )
    print("| work | batch | fp32 ms | bf16 ms | speed-up | GFLOP/s fp32 | GFLOP/s bf16 |")
    print("| --- | --- | --- | --- | --- | --- | --- |")

    def row(work: str, shape: str, measure: Callable[[str], tuple[int, float]]) -> None:
        (flops, fp32), (_, bf16) = (measure(p) for p in ("fp32", "bf16"))
        print(
            f"| {work} | {shape} | {fp32:.0f} | {bf16:.0f} | {fp32 / bf16:.2f} | {flops / fp32 / 1e6:.0f} | {flops / bf16 / 1e6:.0f} |",
            flush=True,
        )

    model.train()
    for batch_size, seq in ((16, 64), (32, 128)):
        blocks = torch.randint(1000, len(tokenizer), (256, seq), dtype=torch.int32)
        batches = mlm_batches(blocks, tokenizer, batch_size, seed=0)

        def in_loop(p: str) -> tuple[int, float]:
            return loop_ms(model, lambda b: mlm_loss(model, b), batches, args.repeats, p, WARMUPS)

        only_embeddings_trainable(model)
        row("(a) relearn: embeddings + bias trainable", f"{batch_size}x{seq}", in_loop)
        trainable(model, True)
        row("(b) whole model trainable", f"{batch_size}x{seq}", in_loop)

    with tempfile.TemporaryDirectory() as folder:
        model.save_pretrained(folder)
        classifier = tasks.classifier(folder, ["a", "b", "c"])
    items = [{"input_ids": torch.randint(1000, len(tokenizer), (64,)).tolist(), "labels": 0} for _ in range(64)]
    row(
        "(c) classification eval, forward only",
        "64x64",
        lambda p: timed(lambda: tasks.evaluate(classifier, items, tokenizer, batch_size=64, precision=p), args.repeats),
    )


if __name__ == "__main__":
    main()
