"""Cipher control languages: `cipher-en` is English with every letter mapped to another script.

Each English word becomes a new string through one fixed letter permutation (a-z onto 26 Cyrillic
letters, case kept), so the ciphered language has exactly English's structure and statistics but
shares no word with it; digits and punctuation stay, as they do between real languages. Its ideal
embeddings are known (English's, renamed), so its curve shows how much of the English accuracy a
method can recover, apart from how hard a real language is.
"""

from __future__ import annotations

import random

PREFIX = "cipher-"
# Cyrillic letters without й (an uncased tokenizer strips its breve and would merge it with и).
_TARGETS = "абвгдежзиклмнопрстуфхцчшщы"
_SHUFFLED = random.Random(2023).sample(_TARGETS, len(_TARGETS))
_TABLE = str.maketrans(
    {**dict(zip("abcdefghijklmnopqrstuvwxyz", _SHUFFLED)), **dict(zip("ABCDEFGHIJKLMNOPQRSTUVWXYZ", (c.upper() for c in _SHUFFLED)))}
)


def is_cipher(language: str) -> bool:
    return language.startswith(PREFIX)


def base_language(language: str) -> str:
    """The language a cipher language is made from ('cipher-en' -> 'en'); other codes unchanged."""
    return language.removeprefix(PREFIX)


def encipher(text: str) -> str:
    return text.translate(_TABLE)
