"""The training loop under torch.distributed (2 gloo processes): ranks end identical even from different
initial weights, and a stage's FLOPs and tokens are the whole job's, summed over ranks."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
import torch.nn.functional as F
from safetensors.torch import load_file, save_file
from torch import nn

from minimodel.method.train import train
from tests.ports import free_port

VOCAB, BATCH, STEPS, WORLD = 50, 4, 3, 2


class Tiny(nn.Module):
    """A frozen embedding, a buffer and two trainable layers: every kind of state a rank must share."""

    def __init__(self) -> None:
        super().__init__()
        self.embed = nn.Embedding(VOCAB, 16).requires_grad_(False)
        self.hidden = nn.Linear(16, 16)
        self.out = nn.Linear(16, VOCAB)
        self.register_buffer("scale", torch.rand(1) + 0.5)

    def loss(self, batch: dict) -> torch.Tensor:
        logits = self.out(torch.tanh(self.hidden(self.embed(batch["input_ids"]) * self.scale)))
        return F.cross_entropy(logits.flatten(0, 1), batch["labels"].flatten())


def batches(rank: int, seq: int):
    def batch_at(i: int) -> dict:
        ids = torch.randint(VOCAB, (BATCH, seq), generator=torch.Generator().manual_seed(100 * i + rank))
        return {"input_ids": ids, "attention_mask": torch.ones_like(ids), "labels": ids.roll(1, -1)}

    return batch_at


def fit(model: Tiny, rank: int, seq: int) -> dict:
    stats = train(model, model.loss, batches(rank, seq), steps=STEPS, lr=1e-2, precision="fp32")
    return {k: stats[k] for k in ("flops", "tokens")}


def _worker(rank: int, port: int, out: str) -> None:
    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=WORLD)
    try:
        torch.manual_seed(rank)  # deliberately different initial weights on each rank
        model = Tiny()
        same = fit(model, rank, seq=8)
        mixed = fit(Tiny(), rank, seq=8 * (rank + 1))  # ranks with different batch shapes
        save_file(model.state_dict(), os.path.join(out, f"rank{rank}.safetensors"))
        Path(out, f"rank{rank}.json").write_text(json.dumps({"same": same, "mixed": mixed}))
    finally:
        dist.destroy_process_group()


@pytest.mark.slow
def test_ranks_end_identical_and_compute_is_summed_over_ranks(tmp_path):
    mp.spawn(_worker, args=(free_port(), str(tmp_path)), nprocs=WORLD, join=True)
    weights = [load_file(tmp_path / f"rank{r}.safetensors") for r in range(WORLD)]
    stats = [json.loads((tmp_path / f"rank{r}.json").read_text()) for r in range(WORLD)]
    assert weights[0].keys() == weights[1].keys()
    for name in weights[0]:
        assert torch.equal(weights[0][name], weights[1][name]), name
    assert stats[0] == stats[1]

    one = {seq: fit(Tiny(), 0, seq) for seq in (8, 16)}  # one process, no process group
    same = stats[0]["same"]
    assert same["tokens"] == WORLD * one[8]["tokens"]
    assert same["flops"] / same["tokens"] == one[8]["flops"] / one[8]["tokens"]
    assert stats[0]["mixed"] == {k: one[8][k] + one[16][k] for k in ("flops", "tokens")}
