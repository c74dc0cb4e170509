"""Masking, packed MLM batches and the masked-positions-only MLM loss.

The vocabulary head costs as much as several layers when run at every position; running it only at
the ~15% masked positions gives the same loss for a fraction of the compute.
"""

from __future__ import annotations

from typing import Callable

import torch
import torch.nn.functional as F
from torch import nn
from transformers import PreTrainedModel, PreTrainedTokenizerBase

from minimodel.method.models import layers, mlm_head
from minimodel.method.precision import autocast


def pack(token_lists: list[list[int]], seq_len: int) -> torch.Tensor:
    """Concatenate tokenised documents and cut them into [n, seq_len] blocks (the tail is dropped)."""
    flat = torch.tensor([t for ids in token_lists for t in ids], dtype=torch.int32)
    n = len(flat) // seq_len
    if n == 0:
        raise ValueError(f"corpus too small: {len(flat)} tokens, fewer than one block of {seq_len}")
    return flat[: n * seq_len].view(n, seq_len)


MASK_RATE = 0.15


def mlm_batches(
    blocks: torch.Tensor,
    tokenizer: PreTrainedTokenizerBase,
    batch_size: int,
    seed: int,
    rank: int = 0,
    world: int = 1,
    device: torch.device | str = "cpu",
    rate: float = MASK_RATE,
) -> Callable[[int], dict]:
    """batch_at(i): the i-th masked batch, a pure function of (seed, i, rank) so a resumed run sees the same data.

    On a CUDA `device` the blocks live there and rows and masks are drawn by a CUDA generator: batches
    are built on the device with no host work or copy per step (a different random stream from the CPU's).
    """
    specials = torch.tensor(sorted(set(tokenizer.all_special_ids)), device=device)
    blocks = blocks.to(device)

    def batch_at(i: int) -> dict:
        g = torch.Generator(device).manual_seed(seed * 1_000_003 + i * world + rank)
        rows = torch.randint(len(blocks), (batch_size,), generator=g, device=device)
        return mask(blocks[rows].long(), specials, tokenizer.mask_token_id, len(tokenizer), g, rate)

    return batch_at


def mask(
    input_ids: torch.Tensor, specials: torch.Tensor, mask_id: int, vocab_size: int, g: torch.Generator, rate: float = MASK_RATE
) -> dict:
    """BERT's masking with a fixed count: exactly round(rate x seq_len) positions per row (special
    tokens last in line), of which 80% become [MASK], 10% a random token, 10% stay.

    A fixed count, as in BERT's original data pipeline, keeps every batch of one shape at the same
    FLOPs (the head runs at masked positions only) and its tensors at static shapes: "masked" holds
    each row's masked positions in ascending order, [rows, count], so the loss gathers them without
    a data-dependent shape (no host sync on a GPU). Every operation here runs on input_ids' device.
    """
    rows, seq_len = input_ids.shape
    count = max(1, round(rate * seq_len))
    dev = input_ids.device
    score = torch.rand(rows, seq_len, generator=g, device=dev)
    score = score.masked_fill(torch.isin(input_ids, specials), -1.0)  # chosen only when a row has too few ordinary tokens
    masked = score.topk(count, dim=1).indices.sort(dim=1).values
    where = torch.zeros_like(input_ids, dtype=torch.bool).scatter_(1, masked, True)
    labels = torch.where(where, input_ids, -100)
    roll = torch.rand(rows, seq_len, generator=g, device=dev)
    ids = input_ids.masked_fill(where & (roll < 0.8), mask_id)
    random_ids = torch.randint(vocab_size, input_ids.shape, generator=g, device=dev)
    ids = torch.where(where & (roll >= 0.8) & (roll < 0.9), random_ids, ids)
    return {"input_ids": ids, "attention_mask": torch.ones_like(input_ids), "labels": labels, "masked": masked}


def masked_loss(head: nn.Module, hidden: torch.Tensor, labels: torch.Tensor, masked: torch.Tensor | None = None) -> torch.Tensor:
    """Cross-entropy of the head's predictions at masked positions only (labels != -100).

    With the batch's "masked" positions the hidden states are gathered at a static shape; without
    them a boolean selection finds the positions (a data-dependent shape: a host sync on a GPU).
    """
    if masked is None:
        where = labels != -100
        return F.cross_entropy(head(hidden[where]).float(), labels[where])
    picked = hidden.gather(1, masked.unsqueeze(-1).expand(-1, -1, hidden.shape[-1]))
    return F.cross_entropy(head(picked.flatten(0, 1)).float(), labels.gather(1, masked).flatten())


def distill_loss(teacher: PreTrainedModel, student: PreTrainedModel, batch: dict) -> torch.Tensor:
    """KL(teacher || student) of the predicted token distributions at the masked positions: the student
    learns to predict what the teacher predicts, not only the masked token."""
    where = batch["labels"] != -100
    with torch.no_grad():
        hidden = teacher.base_model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).last_hidden_state
        target = F.log_softmax(mlm_head(teacher)(hidden[where]).float(), -1)
    hidden = student.base_model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).last_hidden_state
    guess = F.log_softmax(mlm_head(student)(hidden[where]).float(), -1)
    return F.kl_div(guess, target, log_target=True, reduction="batchmean")


def mlm_loss(model: PreTrainedModel, batch: dict) -> torch.Tensor:
    """The masked-only MLM loss of a batch from mlm_batches: packed blocks, never padded, so the model
    gets no attention mask (Hugging Face would test an all-ones mask with a host sync every step).
    With the batch's masked positions the last layer runs at those positions only (masked_states)."""
    if "masked" not in batch:
        hidden = model.base_model(input_ids=batch["input_ids"]).last_hidden_state
        return masked_loss(mlm_head(model), hidden, batch["labels"])
    hidden = masked_states(model, batch["input_ids"], batch["masked"])
    labels = batch["labels"].gather(1, batch["masked"])
    return F.cross_entropy(mlm_head(model)(hidden.flatten(0, 1)).float(), labels.flatten())


def masked_states(model: PreTrainedModel, input_ids: torch.Tensor, masked: torch.Tensor) -> torch.Tensor:
    """The last layer's output at the masked positions only, [rows, count, hidden].

    Only those positions reach the loss, so the last layer computes its queries, attention output and
    feed-forward there alone (keys and values at every position): the states of the whole model at
    those positions, for about a quarter of the last layer's FLOPs. BERT, RoBERTa and XLM-R layers
    share this structure (attention.self, attention.output, intermediate, output).
    """
    hidden = model.base_model.embeddings(input_ids=input_ids)
    *below, last = layers(model)
    for layer in below:
        hidden = layer(hidden)
    attn = last.attention.self
    rows, _, width = hidden.shape
    picked = hidden.gather(1, masked.unsqueeze(-1).expand(-1, -1, width))

    def heads(x: torch.Tensor) -> torch.Tensor:
        return x.view(rows, -1, attn.num_attention_heads, attn.attention_head_size).transpose(1, 2)

    context = F.scaled_dot_product_attention(
        heads(attn.query(picked)),
        heads(attn.key(hidden)),
        heads(attn.value(hidden)),
        dropout_p=attn.dropout.p if attn.training else 0.0,
        scale=attn.scaling,
    )
    out = last.attention.output(context.transpose(1, 2).reshape(rows, -1, width), picked)
    return last.output(last.intermediate(out), out)


@torch.no_grad()
def mlm_eval(model: PreTrainedModel, batches: list[dict], precision: str = "auto") -> dict:
    """Masked-token loss and accuracy on held-out batches; the forward under `precision`, the loss in fp32."""

    model.eval()
    dev = next(model.parameters()).device
    loss = correct = total = 0.0
    for batch in batches:
        batch = {k: v.to(dev) for k, v in batch.items()}
        where = batch["labels"] != -100
        with autocast(precision, dev):
            hidden = model.base_model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).last_hidden_state
            logits = mlm_head(model)(hidden[where]).float()
        loss += F.cross_entropy(logits, batch["labels"][where], reduction="sum").item()
        correct += (logits.argmax(-1) == batch["labels"][where]).sum().item()
        total += where.sum().item()
    model.train()
    return {"mlm_loss": loss / max(total, 1), "mlm_accuracy": correct / max(total, 1)}


@torch.no_grad()
def agreement(reference: PreTrainedModel, other: PreTrainedModel, batches: list[dict], precision: str = "auto") -> float:
    """How often two MLMs predict the same token at the masked positions of held-out batches: how well a
    mini-model stands in for the big model it was carved from (1.0 = the same predictions)."""
    same = total = 0
    for batch in batches:
        guesses = []
        for model in (reference, other):
            model.eval()
            dev = next(model.parameters()).device
            with autocast(precision, dev):
                hidden = model.base_model(
                    input_ids=batch["input_ids"].to(dev), attention_mask=batch["attention_mask"].to(dev)
                ).last_hidden_state
                guesses.append(mlm_head(model)(hidden[batch["labels"].to(dev) != -100]).argmax(-1).cpu())
            model.train()
        same += int((guesses[0] == guesses[1]).sum())
        total += len(guesses[0])
    return same / max(total, 1)
