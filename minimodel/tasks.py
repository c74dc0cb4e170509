"""Downstream: fine-tune the full model on a source-language task with embeddings frozen, and
zero-shot evaluation in a target language by swapping in its tokenizer and embeddings."""
from __future__ import annotations

from pathlib import Path
from typing import Callable

import torch
from transformers import AutoModelForSequenceClassification, DataCollatorWithPadding, PreTrainedModel, PreTrainedTokenizerBase

from minimodel.models import trainable


def encode(tokenizer: PreTrainedTokenizerBase, items: list[dict], labels: list[str], seq_len: int) -> list[dict]:
    """Tokenise single sentences or pairs (optional "text_pair") and map labels to ids.

    Labels must be among `labels`: data.read_task(..., labels=) checks that with file and line.
    """
    index = {name: i for i, name in enumerate(labels)}
    pairs = [x.get("text_pair") for x in items]
    enc = tokenizer([x["text"] for x in items], pairs if any(p is not None for p in pairs) else None,
                    truncation=True, max_length=seq_len)
    return [{"input_ids": ids, "labels": index[x["label"]]} for ids, x in zip(enc["input_ids"], items)]


def collate(tokenizer: PreTrainedTokenizerBase) -> Callable[[list[dict]], dict]:
    """Dynamic padding to a multiple of 16, so that FLOPs are counted for few distinct shapes."""
    return DataCollatorWithPadding(tokenizer, pad_to_multiple_of=16, return_tensors="pt")


def task_batches(encoded: list[dict], tokenizer: PreTrainedTokenizerBase, batch_size: int, seed: int,
                 rank: int = 0, world: int = 1) -> Callable[[int], dict]:
    """batch_at(i): a pure function of (seed, i, rank), like the MLM batches."""
    pad = collate(tokenizer)

    def batch_at(i: int) -> dict:
        g = torch.Generator().manual_seed(seed * 1_000_003 + i * world + rank)
        return pad([encoded[r] for r in torch.randint(len(encoded), (batch_size,), generator=g).tolist()])

    return batch_at


def classifier(folder: str | Path, labels: list[str]) -> PreTrainedModel:
    """A sequence classifier on the body of a saved masked LM; its embeddings frozen for fine-tuning."""
    model = AutoModelForSequenceClassification.from_pretrained(
        folder, num_labels=len(labels), id2label=dict(enumerate(labels)), label2id={n: i for i, n in enumerate(labels)}
    )
    trainable(model.base_model.embeddings, False)
    return model


def classification_loss(model: PreTrainedModel) -> Callable[[dict], torch.Tensor]:
    return lambda batch: model(**batch).loss


@torch.no_grad()
def evaluate(model: PreTrainedModel, encoded: list[dict], tokenizer: PreTrainedTokenizerBase,
             batch_size: int = 64) -> dict:
    """Accuracy and macro-F1 (over the classes present in gold or predictions)."""
    model.eval()
    pad, dev = collate(tokenizer), next(model.parameters()).device
    preds, gold = [], []
    for start in range(0, len(encoded), batch_size):
        batch = {k: v.to(dev) for k, v in pad(encoded[start : start + batch_size]).items()}
        gold.append(batch.pop("labels"))
        with torch.autocast("cuda", dtype=torch.bfloat16, enabled=dev.type == "cuda"):
            preds.append(model(**batch).logits.argmax(-1))
    model.train()
    return scores(torch.cat(preds).cpu(), torch.cat(gold).cpu())


def scores(pred: torch.Tensor, gold: torch.Tensor) -> dict:
    f1s = []
    for c in torch.unique(torch.cat([pred, gold])):
        tp = ((pred == c) & (gold == c)).sum().item()
        denom = (pred == c).sum().item() + (gold == c).sum().item()
        f1s.append(2 * tp / denom)
    return {"accuracy": round((pred == gold).float().mean().item(), 4), "macro_f1": round(sum(f1s) / len(f1s), 4)}
