"""Per-step cost of embedding relearning: the full model versus depth-k mini-models, in the real loop.

Each row runs minimodel.method.train.train on a relearning body (word embeddings and output bias trainable,
masked-only logits) and times its steps (bench/steps.py): batch construction, forward, backward, the
fused AdamW update, the schedule. FLOPs are counted by torch on the first step. The first row, logits
at every position, is the textbook recipe; the target (issue 8) is that depth k runs as much faster
than the full masked-only step as its FLOPs say: efficiency = time ratio / FLOP ratio >= 0.9.

    .venv/bin/python bench/relearn_step.py --model bundled:minilm-l6-mlm            # MiniLM, vocab 30,522
    .venv/bin/python bench/relearn_step.py --layers 12 --hidden 256 --vocab 8000    # a 12-layer BERT
"""

from __future__ import annotations

import argparse

import torch
import torch.nn.functional as F

from steps import loop_ms
from minimodel.method import models
from minimodel.method.embeddings import only_embeddings_trainable
from minimodel.method.mlm import mlm_batches, mlm_loss


def all_positions_loss(model, batch) -> torch.Tensor:
    logits = model(input_ids=batch["input_ids"]).logits
    return F.cross_entropy(logits.view(-1, logits.shape[-1]).float(), batch["labels"].view(-1))


def full_model(args, dev: torch.device):
    if args.model:
        return models.load_mlm(args.model)
    words = [f"w{i}" for i in range(args.vocab * 2)]
    tokenizer = models.empty_tokenizer("bert").train_new_from_iterator([" ".join(words)], args.vocab)
    return models.build_mlm(
        "bert", tokenizer, hidden=args.hidden, layers=args.layers, heads=max(1, args.hidden // 64), ffn=4 * args.hidden, max_len=args.seq
    ), tokenizer


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default="", help="a model to load (e.g. bundled:minilm-l6-mlm); else a BERT is built")
    ap.add_argument("--repeats", type=int, default=7)
    ap.add_argument("--hidden", type=int, default=256)
    ap.add_argument("--layers", type=int, default=12)
    ap.add_argument("--vocab", type=int, default=8000)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--seq", type=int, default=128)
    ap.add_argument("--precision", default="fp32")
    ap.add_argument("--threads", type=int, default=0)
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    dev = models.device()
    full, tokenizer = full_model(args, dev)
    n = len(models.layers(full))
    blocks = torch.randint(5, len(tokenizer), (512, args.seq), dtype=torch.int32)
    batches = mlm_batches(blocks, tokenizer, args.batch, seed=0, device=dev)
    print(
        f"# {torch.cpu.get_capabilities().get('cpu_name') if dev.type == 'cpu' else torch.cuda.get_device_name()}, "
        f"{torch.get_num_threads()} threads, torch {torch.__version__}, {args.precision}; {args.model or 'BERT'} "
        f"hidden {full.config.hidden_size}, {n} layers, vocab {len(tokenizer)}, batch {args.batch}x{args.seq}; "
        f"median of {args.repeats} steps of train() after 2 warm-ups"
    )
    rows = [("full, logits at all positions", n, all_positions_loss), ("full, masked-only logits (baseline)", n, mlm_loss)]
    rows += [(f"mini k={k}, masked-only logits", k, mlm_loss) for k in (4, 2, 1) if k < n]
    print("| body | GFLOPs/step | ms/step | FLOP ratio vs baseline | time ratio vs baseline | efficiency |")
    print("| --- | ---: | ---: | ---: | ---: | ---: |")
    full.to(dev)
    base = None
    for name, depth, loss_fn in rows:
        body = full if depth == n else models.mini_model(full, depth, models.new_head(full))
        only_embeddings_trainable(body)
        flops, ms = loop_ms(body, lambda b: loss_fn(body, b), batches, args.repeats, args.precision)
        if loss_fn is mlm_loss and base is None:
            base = (flops, ms)
        f_ratio, t_ratio = (base[0] / flops, base[1] / ms) if base else (float("nan"),) * 2
        print(f"| {name} | {flops / 1e9:.1f} | {ms:.0f} | {f_ratio:.2f} | {t_ratio:.2f} | {t_ratio / f_ratio:.2f} |", flush=True)


if __name__ == "__main__":
    main()
