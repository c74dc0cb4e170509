"""Per-step cost of embedding relearning: through the full 12-layer model versus depth-k mini-models.

Baseline (same process): the textbook recipe, logits at every position through the frozen full
model. Then masked-positions-only logits through the full model and through mini-models of depth
1, 2 and 4. FLOPs are counted by torch on a real step; milliseconds are the median of repeated steps.

    .venv/bin/python bench/relearn_step.py [--repeats 10] [--hidden 256] [--layers 12]
"""
from __future__ import annotations

import argparse
import platform
import statistics
import time

import torch
import torch.nn.functional as F

from minimodel import models
from minimodel.compute import count_flops
from minimodel.embeddings import only_embeddings_trainable
from minimodel.mlm import mlm_batches, mlm_loss


def all_positions_loss(model, batch) -> torch.Tensor:
    logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
    return F.cross_entropy(logits.view(-1, logits.shape[-1]).float(), batch["labels"].view(-1))


def measure(body, loss_fn, batch, repeats: int, dev: torch.device) -> tuple[int, float]:
    params = [p for p in body.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=1e-4)

    def step():
        with torch.autocast("cuda", dtype=torch.bfloat16, enabled=dev.type == "cuda"):
            loss = loss_fn(body, batch)
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)

    flops = count_flops(step)
    step()  # warm-up
    times = []
    for _ in range(repeats):
        if dev.type == "cuda":
            torch.cuda.synchronize()
        start = time.perf_counter()
        step()
        if dev.type == "cuda":
            torch.cuda.synchronize()
        times.append((time.perf_counter() - start) * 1000)
    return flops, statistics.median(times)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeats", type=int, default=10)
    ap.add_argument("--hidden", type=int, default=256)
    ap.add_argument("--layers", type=int, default=12)
    ap.add_argument("--vocab", type=int, default=8000)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--seq", type=int, default=128)
    args = ap.parse_args()
    dev = models.device()
    words = [f"w{i}" for i in range(args.vocab * 2)]
    tokenizer = models.empty_tokenizer("bert").train_new_from_iterator([" ".join(words)], args.vocab)
    full = models.build_mlm("bert", tokenizer, hidden=args.hidden, layers=args.layers, heads=max(1, args.hidden // 64),
                            ffn=4 * args.hidden, max_len=args.seq)
    blocks = torch.randint(5, len(tokenizer), (256, args.seq), dtype=torch.int32)
    batch = {k: v.to(dev) for k, v in mlm_batches(blocks, tokenizer, args.batch, seed=0)(0).items()}
    print(f"# {platform.processor() or platform.machine()}, {torch.get_num_threads()} threads, device {dev}, "
          f"torch {torch.__version__}; BERT hidden {args.hidden}, FFN {4 * args.hidden}, {args.layers} layers, "
          f"vocab {len(tokenizer)}, batch {args.batch}x{args.seq}, median of {args.repeats}")
    rows = [("full, logits at all positions (baseline)", args.layers, all_positions_loss),
            ("full, masked-only logits", args.layers, mlm_loss)]
    rows += [(f"mini k={k}, masked-only logits", k, mlm_loss) for k in (4, 2, 1)]
    print("| body | GFLOPs/step | ms/step | FLOPs vs baseline | time vs baseline |")
    print("| --- | --- | --- | --- | --- |")
    base = None
    for name, depth, loss_fn in rows:
        body = full if depth == args.layers else models.mini_model(full, depth, models.new_head(full))
        only_embeddings_trainable(body)
        body.to(dev).train()
        flops, ms = measure(body, loss_fn, batch, args.repeats, dev)
        base = base or (flops, ms)
        print(f"| {name} | {flops / 1e9:.1f} | {ms:.0f} | {flops / base[0]:.2f} | {ms / base[1]:.2f} |", flush=True)


if __name__ == "__main__":
    main()
