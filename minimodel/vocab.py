"""A new language's tokenizer, of the same kind as the source's, and its overlap with the source vocabulary."""
from __future__ import annotations

from typing import Iterable

from transformers import PreTrainedTokenizerBase


def train_tokenizer(source: PreTrainedTokenizerBase, texts: Iterable[str], vocab_size: int) -> PreTrainedTokenizerBase:
    """Train a tokenizer on target text with the source's algorithm, normaliser, pre-tokeniser and special tokens.

    transformers' train_new_from_iterator keeps the whole pipeline and retrains only the model
    (WordPiece, BPE or Unigram). The padding id must match the source's: RoBERTa derives position ids from it.
    """
    target = source.train_new_from_iterator(texts, vocab_size)
    if target.pad_token_id != source.pad_token_id:
        raise ValueError(
            f"the target tokenizer put {target.pad_token} at id {target.pad_token_id}, the source at {source.pad_token_id}"
        )
    return target


def shared_tokens(source: PreTrainedTokenizerBase, target: PreTrainedTokenizerBase) -> dict[int, int]:
    """target id -> source id for every token string both vocabularies contain (specials included)."""
    source_vocab = source.get_vocab()
    return {tid: source_vocab[tok] for tok, tid in target.get_vocab().items() if tok in source_vocab}
