"""Extractive QA scores as MLQA's official evaluation defines them: exact match and token F1.

An answer is normalised before comparison: lower-cased, punctuation removed (ASCII and every Unicode
punctuation character), the language's articles removed, then split into tokens (on whitespace; for
Chinese every CJK character is a token). A prediction scores its best match over the gold answers.
For English this is SQuAD v1.1's evaluation (which removes ASCII punctuation only); languages MLQA
does not list have no articles removed. A cipher language's articles are its base language's,
enciphered, so the control is scored exactly like the language it copies.
"""

from __future__ import annotations

import re
import string
import unicodedata
from collections import Counter

from minimodel.text import cipher

ARTICLES = {
    "en": ("a", "an", "the"),
    "es": ("un", "una", "unos", "unas", "el", "la", "los", "las"),
    "de": ("ein", "eine", "einen", "einem", "eines", "einer", "der", "die", "das", "den", "dem", "des"),
    "vi": ("của", "là", "cái", "chiếc", "những"),
}
ARABIC_ARTICLE = "ال"  # MLQA strips it wherever it occurs
_ASCII_PUNCTUATION = set(string.punctuation)


def _is_punctuation(char: str) -> bool:
    return char in _ASCII_PUNCTUATION or unicodedata.category(char).startswith("P")


def _is_cjk(char: str) -> bool:
    code = ord(char)
    return (
        0x4E00 <= code <= 0x9FFF
        or 0x3400 <= code <= 0x4DBF
        or 0x20000 <= code <= 0x2A6DF
        or 0xF900 <= code <= 0xFAFF
        or 0x2F800 <= code <= 0x2FA1F
    )


def tokens(text: str, language: str) -> list[str]:
    """The normalised tokens of an answer in `language`."""
    base = cipher.base_language(language)
    text = "".join(c for c in text.lower() if not _is_punctuation(c))
    if base == "ar":
        text = text.replace(ARABIC_ARTICLE, " ")  # the cipher maps Latin letters only: Arabic stays
    elif base in ARTICLES:
        words = [cipher.encipher(a) if cipher.is_cipher(language) else a for a in ARTICLES[base]]
        text = re.sub(r"\b(" + "|".join(map(re.escape, words)) + r")\b", " ", text)
    if base == "zh":
        text = "".join(f" {c} " if _is_cjk(c) else c for c in text)
    return text.split()


def exact_match(prediction: str, golds: list[str], language: str) -> float:
    return max(float(tokens(prediction, language) == tokens(gold, language)) for gold in golds)


def f1(prediction: str, golds: list[str], language: str) -> float:
    predicted = tokens(prediction, language)
    best = 0.0
    for gold in golds:
        truth = tokens(gold, language)
        same = sum((Counter(predicted) & Counter(truth)).values())
        if same:
            precision, recall = same / len(predicted), same / len(truth)
            best = max(best, 2 * precision * recall / (precision + recall))
    return best


def scores(predictions: list[str], golds: list[list[str]], language: str) -> dict:
    """{"accuracy": mean F1, "exact_match": mean EM}, both 0-1: F1 is the QA frontier's accuracy axis."""
    n = len(predictions)
    return {
        "accuracy": round(sum(f1(p, g, language) for p, g in zip(predictions, golds)) / n, 4),
        "exact_match": round(sum(exact_match(p, g, language) for p, g in zip(predictions, golds)) / n, 4),
    }
