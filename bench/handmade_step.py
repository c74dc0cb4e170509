"""The hand-made Hugging Face relearning step: the baseline a user would otherwise write.

AutoModelForMaskedLM called with labels (logits at every position, Hugging Face's own loss), the body
frozen by requires_grad, torch's default AdamW over the word embeddings and the output bias.

    .venv/bin/python bench/handmade_step.py [--depth 2] [--repeats 5] [--threads 2]
"""

from __future__ import annotations

import argparse
from typing import Callable

import torch

from minimodel.method import models


def handmade_step(model, batch: dict, lr: float = 1e-4) -> Callable[[], torch.Tensor]:
    """One relearning step as a user would write it from the Hugging Face docs; returns the loss."""
    for p in model.parameters():
        p.requires_grad = False
    model.get_input_embeddings().weight.requires_grad = True
    models.output_bias(model).requires_grad = True
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=lr, weight_decay=0.01)

    def step() -> torch.Tensor:
        loss = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"], labels=batch["labels"]).loss
        loss.backward()
        opt.step()
        opt.zero_grad()
        return loss.detach()

    return step


def depth_model(depth: int, threads: int):
    """The bundled MiniLM (with its MLM head) cut to `depth` layers, and its tokenizer and a batch of 32x128."""
    torch.set_num_threads(threads)
    torch.manual_seed(0)
    full, tokenizer = models.load_mlm("bundled:minilm-l6-mlm")
    model = models.mini_model(full, depth, models.new_head(full)) if depth < len(models.layers(full)) else full
    return model, tokenizer


def main() -> None:
    from minimodel.method.mlm import mlm_batches
    from steps import median_ms

    ap = argparse.ArgumentParser()
    ap.add_argument("--depth", type=int, default=2)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    model, tokenizer = depth_model(args.depth, args.threads)
    blocks = torch.randint(1000, len(tokenizer), (512, 128), dtype=torch.int32)
    batch = mlm_batches(blocks, tokenizer, 32, seed=0)(0)
    model.train()
    ms = median_ms(handmade_step(model, batch), args.repeats)
    print(
        f"hand-made HF step, MiniLM depth {args.depth}, batch 32x128, {args.threads} threads, fp32: "
        f"{ms:.0f} ms/step, {32 * 128 / ms * 1000:.0f} tokens/s"
    )


if __name__ == "__main__":
    main()
