"""Our relearning step against the hand-made Hugging Face step (bench/handmade_step.py), same model.

The bundled MiniLM cut to depth 2, batch 32x128, the same threads. First both losses on the same batch
(dropout off): fp32 must agree within 1e-5, bf16 is reported. Then tokens/s: the hand-made step in
fp32, ours (minimodel.train.train: masked-only logits, static shapes, fused AdamW) in fp32 and bf16.
Targets (issue 8): ours fp32 >= 4x the hand-made fp32; ours bf16 >= 6x it.

    .venv/bin/python bench/vs_handmade.py [--repeats 7] [--threads 2] [--depth 2]
"""
from __future__ import annotations

import argparse
import copy

import torch

from handmade_step import depth_model, handmade_step
from minimodel.embeddings import only_embeddings_trainable
from minimodel.mlm import mlm_batches, mlm_loss
from minimodel.precision import autocast
from steps import loop_ms, median_ms

TOKENS = 32 * 128


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--depth", type=int, default=2)
    ap.add_argument("--repeats", type=int, default=7)
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    model, tokenizer = depth_model(args.depth, args.threads)
    blocks = torch.randint(1000, len(tokenizer), (512, 128), dtype=torch.int32)
    batches = mlm_batches(blocks, tokenizer, 32, seed=0)
    batch = batches(0)
    print(f"# {torch.cpu.get_capabilities().get('cpu_name')}, {args.threads} threads, torch {torch.__version__}; "
          f"MiniLM depth {args.depth}, vocab {len(tokenizer)}, batch 32x128; median of {args.repeats} steps")

    model.eval()
    with torch.no_grad():
        theirs = model(**{k: batch[k] for k in ("input_ids", "attention_mask", "labels")}).loss
        for precision in ("fp32", "bf16"):
            with autocast(precision, "cpu"):
                ours = mlm_loss(model, batch)
            print(f"loss on one batch, {precision}: ours {ours.item():.6f}, hand-made fp32 {theirs.item():.6f}, "
                  f"|diff| {abs(ours - theirs).item():.2e} ({abs(ours - theirs).item() / theirs.item():.2%})")

    handmade = copy.deepcopy(model).train()
    base = median_ms(handmade_step(handmade, batch), args.repeats)
    print("| step | precision | ms/step | tokens/s | vs hand-made fp32 |")
    print("| --- | --- | ---: | ---: | ---: |")
    print(f"| hand-made Hugging Face | fp32 | {base:.0f} | {TOKENS / base * 1000:.0f} | 1.00 |", flush=True)
    for precision in ("fp32", "bf16"):
        ours = copy.deepcopy(model)
        only_embeddings_trainable(ours)
        _, ms = loop_ms(ours, lambda b: mlm_loss(ours, b), batches, args.repeats, precision)
        print(f"| ours (train(), masked-only) | {precision} | {ms:.0f} | {TOKENS / ms * 1000:.0f} | {base / ms:.2f} |",
              flush=True)


if __name__ == "__main__":
    main()
