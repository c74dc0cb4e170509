"""Rebuild data/minilm-l6-mlm/: an MLM head for all-MiniLM-L6-v2 (which ships without one), so that
`bundled:minilm-l6-mlm` needs no head restore at run time.

    python scripts/restore_minilm_head.py [--head-steps 150] [--steps 450] [--top-layers 6]

MiniLM's body was tuned for sentence embeddings and is poor at predicting words: a head trained on the
frozen body learns slowly (0.06 held-out masked accuracy after 150 steps of 32 x 128 here), and with
only the top 2 layers training too it reached 0.19 after 450 more. So after `--head-steps` with only
the head trainable, the top `--top-layers` layers (by default all six: 0.34) train with it for
`--steps`; the word embeddings, which the decoder is tied to, stay MiniLM's own. The shipped file holds
the head (its decoder not stored) and those layers in bf16, with a JSON record of the command, the
held-out masked accuracy curve and the wall time.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch
from safetensors.torch import save_file

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from minimodel.text import data  # noqa: E402
from minimodel.method.mlm import mlm_batches, mlm_eval, mlm_loss, pack  # noqa: E402
from minimodel.method.models import layers, load_mlm, mlm_head, trainable  # noqa: E402
from minimodel.method.train import train  # noqa: E402

HELD_OUT = 64  # blocks kept out of training (the pipeline's source stage keeps out the same first blocks)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--head-steps", type=int, default=150)
    p.add_argument("--steps", type=int, default=450)
    p.add_argument("--top-layers", type=int, default=6)
    p.add_argument("--head-lr", type=float, default=2e-3)
    p.add_argument("--lr", type=float, default=5e-4)
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--seq-len", type=int, default=128)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--out", type=Path, default=ROOT / "data" / "minilm-l6-mlm")
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    started = time.time()
    model, tokenizer = load_mlm("bundled:minilm-l6")
    blocks = pack(tokenizer(data.read_corpus("bundled:ddtp-topic", "en", 20000), truncation=False)["input_ids"], args.seq_len)
    held = [mlm_batches(blocks[:HELD_OUT], tokenizer, args.batch_size, seed=12345)(i) for i in range(HELD_OUT // args.batch_size)]
    batches = mlm_batches(blocks[HELD_OUT:], tokenizer, args.batch_size, seed=0)
    top = layers(model)[len(layers(model)) - args.top_layers :]
    record = {
        "command": "python scripts/restore_minilm_head.py " + " ".join(sys.argv[1:]),
        "args": vars(args) | {"out": None},
        "held_out_before": mlm_eval(model, held),
    }
    trainable(model, False)
    trainable(mlm_head(model), True)
    model.get_input_embeddings().weight.requires_grad_(False)  # the decoder is tied to it
    common = dict(evaluate=lambda: mlm_eval(model, held), eval_every=50, precision="auto")
    record["head"] = train(model, lambda b: mlm_loss(model, b), batches, steps=args.head_steps, lr=args.head_lr, desc="head", **common)[
        "curve"
    ]
    trainable(top, True)
    record["top"] = train(
        model,
        lambda b: mlm_loss(model, b),
        lambda i: batches(args.head_steps + i),
        steps=args.steps,
        lr=args.lr,
        desc="head + top layers",
        **common,
    )["curve"]
    record["held_out_after"] = mlm_eval(model, held)
    record["wall_s"] = round(time.time() - started)
    prefixes = ("cls.", *(f"bert.encoder.layer.{i}." for i in range(len(layers(model)) - args.top_layers, len(layers(model)))))
    tensors = {
        k: v.detach().to(torch.bfloat16).contiguous()
        for k, v in model.state_dict().items()
        if k.startswith(prefixes) and not k.endswith("decoder.weight")
    }
    args.out.mkdir(parents=True, exist_ok=True)
    save_file(tensors, args.out / "head.safetensors")
    (args.out / "head.json").write_text(json.dumps(record, indent=1) + "\n")
    print(
        f"held-out English masked accuracy {record['held_out_before']['mlm_accuracy']:.3f} -> "
        f"{record['held_out_after']['mlm_accuracy']:.3f} in {record['wall_s']} s; wrote {args.out}"
    )


if __name__ == "__main__":
    main()
