"""Our relearning step against the hand-made Hugging Face step (bench/handmade_step.py), same model.

The bundled MiniLM cut to depth 2, batch 32x128, the same threads. First both losses on the same batch
(dropout off): fp32 must agree within 1e-5, bf16 is reported. Then step times: the hand-made step in
fp32, ours (minimodel.method.train.train: masked-only logits, static shapes, fused AdamW) in fp32 and bf16,
interleaved in rounds (each a median of --repeats steps) so that the machine's drifting speed (a
shared cloud VM: 30% between runs) falls on all three alike; the speed-up is the median over rounds.
Targets (issue 8): ours fp32 >= 4x the hand-made fp32; ours bf16 >= 6x it.

    .venv/bin/python bench/vs_handmade.py [--rounds 5] [--repeats 3] [--threads 2] [--depth 2]
"""

from __future__ import annotations

import argparse
import copy
import statistics

import torch

from handmade_step import depth_model, handmade_step
from minimodel.method.embeddings import only_embeddings_trainable
from minimodel.method.mlm import mlm_batches, mlm_loss
from minimodel.method.precision import autocast
from steps import loop_ms, median_ms


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--depth", type=int, default=2)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    model, tokenizer = depth_model(args.depth, args.threads)
    blocks = torch.randint(1000, len(tokenizer), (512, 128), dtype=torch.int32)
    batches = mlm_batches(blocks, tokenizer, 32, seed=0)
    batch = batches(0)
    print(
        f"# {torch.cpu.get_capabilities().get('cpu_name')}, {args.threads} threads, torch {torch.__version__}; "
        f"MiniLM depth {args.depth}, vocab {len(tokenizer)}, batch 32x128; median of {args.repeats} steps, in rounds"
    )

    model.eval()
    with torch.no_grad():
        theirs = model(**{k: batch[k] for k in ("input_ids", "attention_mask", "labels")}).loss
        for precision in ("fp32", "bf16"):
            with autocast(precision, "cpu"):
                ours = mlm_loss(model, batch)
            print(
                f"loss on one batch, {precision}: ours {ours.item():.6f}, hand-made fp32 {theirs.item():.6f}, "
                f"|diff| {abs(ours - theirs).item():.2e} ({abs(ours - theirs).item() / theirs.item():.2%})"
            )

    handmade = copy.deepcopy(model).train()
    handmade_fn = handmade_step(handmade, batch)
    ours = {p: copy.deepcopy(model) for p in ("fp32", "bf16")}
    for m in ours.values():
        only_embeddings_trainable(m)
    print("| round | hand-made fp32 ms | ours fp32 ms | ours bf16 ms | fp32 vs hand-made | bf16 vs hand-made |")
    print("| --- | ---: | ---: | ---: | ---: | ---: |")
    speedups = {"fp32": [], "bf16": []}
    for r in range(args.rounds):
        base = median_ms(handmade_fn, args.repeats)
        ms = {p: loop_ms(m, lambda b, m=m: mlm_loss(m, b), batches, args.repeats, p)[1] for p, m in ours.items()}
        for p in ms:
            speedups[p].append(base / ms[p])
        print(
            f"| {r + 1} | {base:.0f} | {ms['fp32']:.0f} | {ms['bf16']:.0f} | {base / ms['fp32']:.2f} | {base / ms['bf16']:.2f} |",
            flush=True,
        )
    for p, xs in speedups.items():
        print(
            f"ours {p} vs hand-made fp32: median {statistics.median(xs):.2f}x over {args.rounds} rounds (range {min(xs):.2f}-{max(xs):.2f})"
        )


if __name__ == "__main__":
    main()
