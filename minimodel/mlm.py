"""Masking, packed MLM batches and the masked-positions-only MLM loss.

The vocabulary head costs as much as several layers when run at every position; running it only at
the ~15% masked positions gives the same loss for a fraction of the compute.
"""
from __future__ import annotations

from typing import Callable

import torch
import torch.nn.functional as F
from torch import nn
from transformers import DataCollatorForLanguageModeling, PreTrainedModel, PreTrainedTokenizerBase

from minimodel.models import mlm_head


def pack(token_lists: list[list[int]], seq_len: int) -> torch.Tensor:
    """Concatenate tokenised documents and cut them into [n, seq_len] blocks (the tail is dropped)."""
    flat = torch.tensor([t for ids in token_lists for t in ids], dtype=torch.int32)
    n = len(flat) // seq_len
    if n == 0:
        raise ValueError(f"corpus too small: {len(flat)} tokens, fewer than one block of {seq_len}")
    return flat[: n * seq_len].view(n, seq_len)


def mlm_batches(blocks: torch.Tensor, tokenizer: PreTrainedTokenizerBase, batch_size: int, seed: int,
                rank: int = 0, world: int = 1) -> Callable[[int], dict]:
    """batch_at(i): the i-th masked batch, a pure function of (seed, i, rank) so a resumed run sees the same data."""
    collator = DataCollatorForLanguageModeling(tokenizer, mlm_probability=0.15, return_tensors="pt")

    def batch_at(i: int) -> dict:
        g = torch.Generator().manual_seed(seed * 1_000_003 + i * world + rank)
        rows = torch.randint(len(blocks), (batch_size,), generator=g)
        torch.manual_seed(int(torch.randint(2**31 - 1, (1,), generator=g)))  # the collator draws from the global RNG
        batch = collator([{"input_ids": blocks[r].long()} for r in rows.tolist()])
        batch["attention_mask"] = torch.ones_like(batch["input_ids"])
        return batch

    return batch_at


def masked_loss(head: nn.Module, hidden: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Cross-entropy of the head's predictions at masked positions only (labels != -100)."""
    where = labels != -100
    logits = head(hidden[where])
    return F.cross_entropy(logits.float(), labels[where])


def mlm_loss(model: PreTrainedModel, batch: dict) -> torch.Tensor:
    hidden = model.base_model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).last_hidden_state
    return masked_loss(mlm_head(model), hidden, batch["labels"])


@torch.no_grad()
def mlm_eval(model: PreTrainedModel, batches: list[dict]) -> dict:
    """Masked-token loss and accuracy on held-out batches."""
    model.eval()
    dev = next(model.parameters()).device
    loss = correct = total = 0.0
    for batch in batches:
        batch = {k: v.to(dev) for k, v in batch.items()}
        hidden = model.base_model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).last_hidden_state
        where = batch["labels"] != -100
        logits = mlm_head(model)(hidden[where]).float()
        loss += F.cross_entropy(logits, batch["labels"][where], reduction="sum").item()
        correct += (logits.argmax(-1) == batch["labels"][where]).sum().item()
        total += where.sum().item()
    model.train()
    return {"mlm_loss": loss / max(total, 1), "mlm_accuracy": correct / max(total, 1)}
