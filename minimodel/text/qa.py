"""Extractive QA: a span head on the full model, long contexts in overlapping windows, answers as spans.

A question and its context are one input pair (the question first, its token type 0, the context's 1).
A context longer than seq_len is cut into windows that overlap by a quarter of seq_len (the fast
tokenizer's overflowing tokens), and the offset mapping ties every context token to its characters.
Training points each window at the tokens of its answer, or at the first token where the window
does not hold the whole answer. A prediction is the best start + end logit pair (end not before
start, at most MAX_ANSWER_TOKENS tokens, inside the context) over every window of a question; it is
scored by qa_metric (MLQA's exact match and F1).

The functions mirror minimodel.text.tasks (classification), so that the fine-tune and adapt stages serve
both kinds of task: FOLDER, METRICS, new_model, load, train_set, eval_set, evaluate, floor.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch
from transformers import AutoModelForQuestionAnswering, PreTrainedModel, PreTrainedTokenizerBase

from minimodel.text import data, qa_metric
from minimodel.method.models import trainable
from minimodel.method.precision import autocast
from minimodel.text.tasks import collate

FOLDER = "qa"  # where the fine-tune stage saves the model
METRICS = ("accuracy", "exact_match")  # accuracy is token F1: the frontier's accuracy axis
MAX_ANSWER_TOKENS = 30


@dataclass(frozen=True)
class Windows:
    """Questions with their windows: what the model reads, and how to read its spans back."""

    items: list[dict]  # the QA rows
    language: str  # how answers are normalised for scoring
    features: list[dict]  # per window: input_ids (and token_type_ids), what the collator pads
    example: list[int]  # per window: the index of its question in items
    offsets: list[list[tuple[int, int] | None]]  # per window token: its context characters, None outside it

    def __len__(self) -> int:
        return len(self.items)


def new_model(folder: str | Path, train_items: list[dict]) -> PreTrainedModel:
    """A span head on the body of a saved masked LM; its embeddings frozen for fine-tuning. (The
    training rows are for the classifier's labels; a span head needs none.)"""
    model = AutoModelForQuestionAnswering.from_pretrained(folder)
    trainable(model.base_model.embeddings, False)
    return model


def load(folder: str | Path) -> PreTrainedModel:
    return AutoModelForQuestionAnswering.from_pretrained(folder)


def windows(tokenizer: PreTrainedTokenizerBase, items: list[dict], seq_len: int, language: str = "") -> Windows:
    """Every question's windows over its context (`language` is for scoring; predictions need none).
    Questions longer than half of seq_len are cut there, so that each window keeps room for context."""
    questions = [_clip(tokenizer, x["question"].lstrip(), seq_len // 2) for x in items]
    enc = tokenizer(
        questions,
        [x["context"] for x in items],
        truncation="only_second",
        max_length=seq_len,
        stride=seq_len // 4,
        return_overflowing_tokens=True,
        return_offsets_mapping=True,
    )
    keep = [k for k in ("input_ids", "token_type_ids") if k in enc]
    features, offsets = [], []
    for w in range(len(enc["input_ids"])):
        features.append({k: enc[k][w] for k in keep})
        offsets.append([tuple(o) if s == 1 else None for o, s in zip(enc["offset_mapping"][w], enc.sequence_ids(w))])
    return Windows(items, language, features, list(enc["overflow_to_sample_mapping"]), offsets)


def _clip(tokenizer: PreTrainedTokenizerBase, question: str, limit: int) -> str:
    enc = tokenizer(question, add_special_tokens=False, return_offsets_mapping=True)
    return question if len(enc["input_ids"]) <= limit else question[: enc["offset_mapping"][limit - 1][1]]


def train_set(tokenizer: PreTrainedTokenizerBase, model: PreTrainedModel, items: list[dict], seq_len: int) -> list[dict]:
    """Training windows with start/end token positions of each question's first answer (`model` is
    the classifier's source of label ids; spans need none)."""
    w = windows(tokenizer, items, seq_len)
    out = []
    for features, i, offsets in zip(w.features, w.example, w.offsets):
        answers = items[i]["answers"]
        start, end = answers["answer_start"][0], answers["answer_start"][0] + len(answers["text"][0])
        out.append({**features, **dict(zip(("start_positions", "end_positions"), _span(offsets, start, end)))})
    return out


def _span(offsets: list[tuple[int, int] | None], start: int, end: int) -> tuple[int, int]:
    """Token positions of characters [start, end) in a window; (0, 0) unless the window holds them all."""
    inside = [t for t, o in enumerate(offsets) if o is not None]
    if not inside or offsets[inside[0]][0] > start or offsets[inside[-1]][1] < end:
        return 0, 0
    first = next(t for t in inside if offsets[t][1] > start)
    last = [t for t in inside if offsets[t][0] < end][-1]
    return first, max(first, last)


def eval_set(
    tokenizer: PreTrainedTokenizerBase, model: PreTrainedModel, source: str, language: str, split: str, n: int, seq_len: int
) -> Windows:
    """A fixed sample of n questions of a split (all when n is 0), in windows."""
    items = data.read_task(source, language, split)
    if not data.is_qa(items):
        raise data.DataError(
            f"{source} [{language}/{split}]: not QA rows (context, question, answers), but the fine-tuned model is a QA model"
        )
    return windows(tokenizer, data.sample(items, n), seq_len, language)


@torch.no_grad()
def predict(
    model: PreTrainedModel, w: Windows, tokenizer: PreTrainedTokenizerBase, batch_size: int = 64, precision: str = "auto"
) -> list[dict]:
    """Per question: {"answer", "start", "end", "score"}: the best span over its windows (character
    offsets into its context; the score is start + end logit)."""
    model.eval()
    pad, dev = collate(tokenizer), next(model.parameters()).device
    best = [{"answer": "", "start": 0, "end": 0, "score": float("-inf")} for _ in w.items]
    for first in range(0, len(w.features), batch_size):
        batch = {k: v.to(dev) for k, v in pad(w.features[first : first + batch_size]).items()}
        with autocast(precision, dev):
            out = model(**batch)
        offsets = w.offsets[first : first + batch_size]
        scores, starts, ends = _best_spans(out.start_logits.float().cpu(), out.end_logits.float().cpu(), offsets)
        for j, (score, s, e) in enumerate(zip(scores.tolist(), starts.tolist(), ends.tolist())):
            i = w.example[first + j]
            if score > best[i]["score"]:
                a, b = offsets[j][s][0], offsets[j][e][1]
                best[i] = {"answer": w.items[i]["context"][a:b], "start": a, "end": b, "score": round(score, 4)}
    model.train()
    return best


def _best_spans(
    start_logits: torch.Tensor, end_logits: torch.Tensor, offsets: list[list[tuple[int, int] | None]]
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(score, start, end) of the best valid span of each window in a batch."""
    size, length = start_logits.shape
    inside = torch.zeros(size, length, dtype=torch.bool)
    for j, window in enumerate(offsets):
        inside[j, : len(window)] = torch.tensor([o is not None for o in window])
    i = torch.arange(length)
    band = (i[None, :] >= i[:, None]) & (i[None, :] - i[:, None] < MAX_ANSWER_TOKENS)
    valid = inside[:, :, None] & inside[:, None, :] & band
    scores = (start_logits[:, :, None] + end_logits[:, None, :]).masked_fill(~valid, float("-inf"))
    score, flat = scores.flatten(1).max(1)
    return score, flat // length, flat % length


def evaluate(model: PreTrainedModel, w: Windows, tokenizer: PreTrainedTokenizerBase, batch_size: int = 64, precision: str = "auto") -> dict:
    """F1 (as `accuracy`) and exact match, 0-1, with the normalisation of the windows' language."""
    predictions = [p["answer"] for p in predict(model, w, tokenizer, batch_size, precision)]
    return qa_metric.scores(predictions, [x["answers"]["text"] for x in w.items], w.language)


def floor(w: Windows) -> dict:
    """QA has no majority-class floor."""
    return {}
