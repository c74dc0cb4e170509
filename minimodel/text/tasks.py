"""Downstream: fine-tune the full model on a source-language task with embeddings frozen, and
zero-shot evaluation in a target language by swapping in its tokenizer and embeddings.

This module is sequence classification (single sentences or pairs); minimodel.text.qa is extractive QA
with the same functions (FOLDER, METRICS, new_model, load, train_set, eval_set, evaluate, floor),
so that the pipeline's stages serve both kinds of task.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Callable

import torch
from transformers import AutoModelForSequenceClassification, DataCollatorWithPadding, PreTrainedModel, PreTrainedTokenizerBase

from minimodel.text import data
from minimodel.method.models import trainable
from minimodel.method.precision import autocast

FOLDER = "classifier"  # where the fine-tune stage saves the model
METRICS = ("accuracy", "macro_f1")


def encode(tokenizer: PreTrainedTokenizerBase, items: list[dict], labels: list[str], seq_len: int) -> list[dict]:
    """Tokenise single sentences or pairs (optional "text_pair") and map labels to ids.

    Token types are kept where the tokenizer gives them (BERT): the collator pads them but would not
    rebuild them, and a pair's second segment needs its own segment embedding.
    Labels must be among `labels`: data.read_task(..., labels=) checks that with file and line.
    """
    index = {name: i for i, name in enumerate(labels)}
    pairs = [x.get("text_pair") for x in items]
    enc = tokenizer([x["text"] for x in items], pairs if any(p is not None for p in pairs) else None, truncation=True, max_length=seq_len)
    keep = [k for k in ("input_ids", "token_type_ids") if k in enc]
    return [{**{k: enc[k][i] for k in keep}, "labels": index[x["label"]]} for i, x in enumerate(items)]


def collate(tokenizer: PreTrainedTokenizerBase) -> Callable[[list[dict]], dict]:
    """Dynamic padding to a multiple of 16, so that FLOPs are counted for few distinct shapes."""
    return DataCollatorWithPadding(tokenizer, pad_to_multiple_of=16, return_tensors="pt")


def task_batches(
    encoded: list[dict], tokenizer: PreTrainedTokenizerBase, batch_size: int, seed: int, rank: int = 0, world: int = 1
) -> Callable[[int], dict]:
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


def new_model(folder: str | Path, train_items: list[dict]) -> PreTrainedModel:
    """A classifier over the training rows' labels (sorted: the same ids on every run)."""
    return classifier(folder, sorted({x["label"] for x in train_items}))


def load(folder: str | Path) -> PreTrainedModel:
    return AutoModelForSequenceClassification.from_pretrained(folder)


def labels(model: PreTrainedModel) -> list[str]:
    return [model.config.id2label[i] for i in range(model.config.num_labels)]


def train_set(tokenizer: PreTrainedTokenizerBase, model: PreTrainedModel, items: list[dict], seq_len: int) -> list[dict]:
    return encode(tokenizer, items, labels(model), seq_len)


def eval_set(
    tokenizer: PreTrainedTokenizerBase, model: PreTrainedModel, source: str, language: str, split: str, n: int, seq_len: int
) -> list[dict]:
    """A fixed sample of n rows of a split (all when n is 0), encoded; a label the model does not
    know is a DataError naming its row."""
    names = labels(model)
    return data.sample(encode(tokenizer, data.read_task(source, language, split, labels=names), names, seq_len), n)


def floor(encoded: list[dict]) -> dict:
    """The accuracy of always answering the most frequent label."""
    return {"majority_accuracy": round(max(Counter(x["labels"] for x in encoded).values()) / len(encoded), 4)}


@torch.no_grad()
def evaluate(
    model: PreTrainedModel, encoded: list[dict], tokenizer: PreTrainedTokenizerBase, batch_size: int = 64, precision: str = "auto"
) -> dict:
    """Accuracy and macro-F1 (over the classes present in gold or predictions); the forward under `precision`."""
    model.eval()
    pad, dev = collate(tokenizer), next(model.parameters()).device
    preds, gold = [], []
    for start in range(0, len(encoded), batch_size):
        batch = {k: v.to(dev) for k, v in pad(encoded[start : start + batch_size]).items()}
        gold.append(batch.pop("labels"))
        with autocast(precision, dev):
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
