"""GPU checks of the relearning step, in one process (bench/gpu_check.sh runs it; a tiny CPU smoke path too).

1. No host sync inside a training step: minimodel.method.train.train runs relearning steps with batches built
   on the device (mlm_batches device=) under torch.cuda.set_sync_debug_mode("error") from the third
   step to the one before the last (the last settles the loss and the compute, a sync by design).
2. Step time follows FLOPs: the full model's masked-only relearning step versus depth 4, 2, 1.
3. MFU: full-model training stages (every weight trainable, MLM, batch >= 128x128) at base size, as
   counted FLOP/s over the card's dense bf16 peak: bf16 autocast over fp32 weights (what the pipeline
   does) and bf16 weights (what the casts cost), each eager and torch.compile'd.
Numbers go to stdout and, as JSON, to $OUT/gpu_step.json.

    python3 bench/gpu_step.py                                  # a GPU, BERT-base size
    python3 bench/gpu_step.py --device cpu --hidden 64 --layers 2 --heads 2 --vocab 500 --batch 4 --seq 32 --steps 3
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import traceback
from pathlib import Path

import torch

from steps import loop_ms
from minimodel.method import models
from minimodel.method.embeddings import only_embeddings_trainable
from minimodel.method.mlm import mlm_batches, mlm_loss
from minimodel.method.precision import autocast

# Dense bf16 peak TFLOP/s (no sparsity) from the vendors' data sheets, by a substring of the device name.
PEAK_BF16 = {
    "H200": 989,
    "H100 SXM": 989,
    "H100 80GB HBM3": 989,
    "H100 NVL": 835,
    "H100 PCIe": 756,
    "A100": 312,
    "L40S": 362,
    "L4": 121,
    "A10G": 70,
    "GH200": 989,
    "B200": 2250,
}


def peak_tflops(name: str) -> float | None:
    return next((v for k, v in PEAK_BF16.items() if k in name), None)


def sync_check(body, batches, steps: int) -> str:
    """'none' when steps 2..steps-2 ran under sync_debug_mode error, else where the first sync happened."""

    def batch_at(i: int) -> dict:
        torch.cuda.set_sync_debug_mode("error" if 2 <= i < steps - 1 else "default")
        return batches(i)

    try:
        loop_ms(body, lambda b: mlm_loss(body, b), batch_at, steps - 2, "bf16")
        return "none"
    except RuntimeError:
        frames = [f for f in traceback.extract_tb(__import__("sys").exc_info()[2]) if "site-packages/torch" not in f.filename]
        return " <- ".join(f"{Path(f.filename).name}:{f.lineno} {f.line}" for f in reversed(frames[-4:]))
    finally:
        torch.cuda.set_sync_debug_mode("default")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--hidden", type=int, default=768)
    ap.add_argument("--layers", type=int, default=12)
    ap.add_argument("--heads", type=int, default=12)
    ap.add_argument("--vocab", type=int, default=30000)
    ap.add_argument("--batch", type=int, default=128)
    ap.add_argument("--seq", type=int, default=128)
    ap.add_argument(
        "--relearn-batch",
        type=int,
        nargs="+",
        default=[32, 256],
        help="one table per batch size: 32 is the CPU benchmarks' batch, larger ones fill a GPU",
    )
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--no-compile", action="store_true")
    args = ap.parse_args()
    dev = torch.device(args.device)
    torch.backends.cuda.matmul.allow_tf32 = True
    name = torch.cuda.get_device_name(dev) if dev.type == "cuda" else "cpu"
    out: dict = {"device": name, "torch": torch.__version__, "args": vars(args)}
    print(f"# {name}, torch {torch.__version__}; BERT hidden {args.hidden}, {args.layers} layers, vocab {args.vocab}")

    words = " ".join(f"w{i}" for i in range(2 * args.vocab))
    tokenizer = models.empty_tokenizer("bert").train_new_from_iterator([words], args.vocab)
    full = models.build_mlm(
        "bert", tokenizer, hidden=args.hidden, layers=args.layers, heads=args.heads, ffn=4 * args.hidden, max_len=args.seq
    ).to(dev)
    blocks = torch.randint(5, len(tokenizer), (1024, args.seq), dtype=torch.int32)
    only_embeddings_trainable(full)
    bodies = {
        depth: full if depth == args.layers else models.mini_model(full, depth, models.new_head(full)).to(dev)
        for depth in dict.fromkeys((args.layers, 4, 2, 1))
        if depth <= args.layers
    }

    if dev.type == "cuda":
        relearn = mlm_batches(blocks, tokenizer, args.relearn_batch[0], seed=0, device=dev)
        out["sync_in_step"] = sync_check(full, relearn, args.steps)
        print(f"host syncs inside a relearning step (sync_debug_mode error): {out['sync_in_step']}", flush=True)

    out["relearn"] = []
    for batch in args.relearn_batch:
        relearn = mlm_batches(blocks, tokenizer, batch, seed=0, device=dev)
        print(f"\n## relearning step, bf16, batch {batch}x{args.seq}, {args.steps} steps of train() (mean on a GPU, median on a CPU)")
        print("| body | GFLOPs/step | ms/step | FLOP ratio | time ratio | efficiency |\n| --- | ---: | ---: | ---: | ---: | ---: |")
        base = None
        for depth, body in bodies.items():
            only_embeddings_trainable(body)
            flops, ms = loop_ms(body, lambda b: mlm_loss(body, b), relearn, args.steps, "bf16")
            base = base or (flops, ms)
            f_ratio, t_ratio = base[0] / flops, base[1] / ms
            out["relearn"].append({"batch": batch, "depth": depth, "gflops": flops / 1e9, "ms": ms, "efficiency": t_ratio / f_ratio})
            print(
                f"| {'full' if depth == args.layers else f'k={depth}'} | {flops / 1e9:.1f} | {ms:.1f} | {f_ratio:.2f} | "
                f"{t_ratio:.2f} | {t_ratio / f_ratio:.2f} |",
                flush=True,
            )

    peak = peak_tflops(name)
    print(
        f"\n## full-model training stage (all weights trainable), bf16, batch {args.batch}x{args.seq}; "
        f"peak {peak or '?'} TFLOP/s dense bf16"
    )
    print("| mode | TFLOPs/step | ms/step | TFLOP/s | MFU |\n| --- | ---: | ---: | ---: | ---: |")
    models.trainable(full, True)
    stage = mlm_batches(blocks, tokenizer, args.batch, seed=1, device=dev)
    pure = copy.deepcopy(full).to(torch.bfloat16)  # no fp32 master weights: what the casts cost, not a recipe
    out["stage"], flops = [], None
    for compiled in (False, *(() if args.no_compile else (True,))):
        for mode, model, precision in (("fp32 weights, bf16 autocast", full, "bf16"), ("bf16 weights", pure, "fp32")):
            loss = lambda b, model=model: mlm_loss(model, b)  # noqa: E731
            if compiled:
                loss = torch.compile(loss)
                with autocast(precision, dev):  # compile outside the FLOP counter: called first under it, it never compiles
                    loss(stage(0)).backward()
                model.zero_grad(set_to_none=True)
            counted, ms = loop_ms(model, loss, stage, args.steps, precision, warmups=3)
            flops = flops or counted  # counted on the first, eager run
            tflops = flops / ms / 1e9
            mfu = tflops / peak if peak else None
            name = f"{'compiled' if compiled else 'eager'}, {mode}"
            out["stage"].append({"mode": name, "ms": ms, "tflops_per_s": tflops, "mfu": mfu})
            print(f"| {name} | {flops / 1e12:.2f} | {ms:.1f} | {tflops:.0f} | {f'{mfu:.0%}' if mfu else '?'} |", flush=True)

    folder = Path(os.environ.get("OUT") or "/tmp")
    (folder / "gpu_step.json").write_text(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
