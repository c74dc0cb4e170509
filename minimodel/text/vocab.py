"""A new language's tokenizer, of the same kind as the source's, and its overlap with the source vocabulary."""

from __future__ import annotations

import json
from typing import Iterable

from tokenizers import Tokenizer
from transformers import PreTrainedTokenizerBase


def train_tokenizer(source: PreTrainedTokenizerBase, texts: Iterable[str], vocab_size: int) -> PreTrainedTokenizerBase:
    """Train a tokenizer on target text with the source's algorithm, normaliser, pre-tokeniser and special tokens.

    transformers' train_new_from_iterator keeps the whole pipeline and retrains only the model
    (WordPiece, BPE or Unigram). The padding id must match the source's: RoBERTa derives position ids from it.
    """
    target = canonical(source.train_new_from_iterator(texts, vocab_size, show_progress=False))
    if target.pad_token_id != source.pad_token_id:
        raise ValueError(f"the target tokenizer put {target.pad_token} at id {target.pad_token_id}, the source at {source.pad_token_id}")
    return target


def shared_tokens(source: PreTrainedTokenizerBase, target: PreTrainedTokenizerBase) -> dict[int, int]:
    """target id -> source id for every token string both vocabularies contain (specials included)."""
    source_vocab = source.get_vocab()
    return {tid: source_vocab[tok] for tok, tid in target.get_vocab().items() if tok in source_vocab}


def canonical(tokenizer: PreTrainedTokenizerBase) -> PreTrainedTokenizerBase:
    """Renumber a freshly trained vocabulary in a fixed order, special tokens keeping their ids.

    tokenizers' trainers give equally frequent tokens (the alphabet, for one) ids in hash order, so two
    trainings on the same text differ, and so would every model trained on them: a cached stage
    could then never be reproduced.
    """
    state = json.loads(tokenizer.backend_tokenizer.to_str())
    model, specials = state["model"], {t["content"] for t in state["added_tokens"]}
    if model["type"] == "Unigram":
        fixed = {i for i, (token, _) in enumerate(model["vocab"]) if token in specials}
        rest = iter(sorted((e for i, e in enumerate(model["vocab"]) if i not in fixed), key=lambda e: (-e[1], e[0])))
        model["vocab"] = [e if i in fixed else next(rest) for i, e in enumerate(model["vocab"])]
    else:  # WordPiece and BPE: a token -> id map
        free = sorted(i for t, i in model["vocab"].items() if t not in specials)
        ordered = sorted(t for t in model["vocab"] if t not in specials)
        model["vocab"] = {**{t: i for t, i in model["vocab"].items() if t in specials}, **dict(zip(ordered, free))}
    tokenizer._tokenizer = Tokenizer.from_str(json.dumps(state))
    return tokenizer
