"""Tokens/s of one adaptation (embedding relearning) run as a 1- and a 2-worker Ray TorchTrainer (gloo).

Each worker runs minimodel.method.train.train on the MiniLM cut to depth 2 with its own shard of the batches
(mlm_batches rank/world, as pipeline._adapt does); gradients of the embeddings and output bias are
all-reduced every step. Step time is the median gap of rank 0's steps after 2 warm-ups (bench/steps.py);
the job's tokens per step are world x batch x seq. DDP efficiency = tokens/s(N workers) / (N x tokens/s
of 1 worker with the same threads per worker). Starts its own local Ray instance.

    .venv/bin/python bench/ddp_scaling.py [--steps 5] [--batch 16]
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

import ray
import torch
from ray.train import RunConfig, ScalingConfig
from ray.train.torch import TorchConfig, TorchTrainer

from minimodel.method import models
from minimodel.method.embeddings import only_embeddings_trainable
from minimodel.method.mlm import mlm_batches, mlm_loss
from minimodel.method.train import distributed


def loop(config: dict) -> None:
    import sys

    sys.path.insert(0, config["bench"])
    from steps import loop_ms

    torch.set_num_threads(config["threads"])
    rank, world = distributed()
    full, tokenizer = models.load_mlm("bundled:minilm-l6-mlm")
    body = models.mini_model(full, 2, models.new_head(full))
    only_embeddings_trainable(body)
    blocks = torch.randint(1000, len(tokenizer), (512, config["seq"]), dtype=torch.int32, generator=torch.Generator().manual_seed(0))
    batches = mlm_batches(blocks, tokenizer, config["batch"], seed=0, rank=rank, world=world)
    _, ms = loop_ms(body, lambda b: mlm_loss(body, b), batches, config["steps"])
    if rank == 0:  # Train V2 keeps no metrics reported without a checkpoint: hand them back in a file
        Path(config["out"]).write_text(json.dumps({"ms": ms, "tokens_per_s": world * config["batch"] * config["seq"] / ms * 1000}))


def main() -> None:
    import os

    ap = argparse.ArgumentParser()
    ap.add_argument("--steps", type=int, default=5)
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--seq", type=int, default=128)
    args = ap.parse_args()
    ray.init(address="local", num_cpus=4, include_dashboard=False)
    bench = os.path.dirname(os.path.abspath(__file__))
    results = {}
    try:
        with tempfile.TemporaryDirectory() as storage:
            for workers, threads in ((1, 1), (1, 2), (2, 1)):
                trainer = TorchTrainer(
                    loop,
                    train_loop_config={**vars(args), "threads": threads, "bench": bench, "out": f"{storage}/{workers}x{threads}.json"},
                    scaling_config=ScalingConfig(num_workers=workers, resources_per_worker={"CPU": threads}),
                    torch_config=TorchConfig(backend="gloo"),
                    run_config=RunConfig(name=f"ddp-{workers}x{threads}", storage_path=storage),
                )
                trainer.fit()
                results[workers, threads] = json.loads(Path(storage, f"{workers}x{threads}.json").read_text())
    finally:
        ray.shutdown()
    one = results[1, 1]["tokens_per_s"]
    print(f"# MiniLM depth 2, batch {args.batch}x{args.seq} per worker, gloo, median of {args.steps} steps")
    print("| workers x threads | ms/step | job tokens/s | DDP efficiency |\n| --- | ---: | ---: | ---: |")
    for (workers, threads), m in results.items():
        eff = m["tokens_per_s"] / (workers * one) if threads == 1 else float("nan")
        print(f"| {workers} x {threads} | {m['ms']:.0f} | {m['tokens_per_s']:.0f} | {eff:.2f} |")


if __name__ == "__main__":
    main()
