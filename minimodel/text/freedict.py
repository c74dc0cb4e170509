"""Bilingual word pairs English <-> a target language from Debian's FreeDict packages (dictd format).

WECHSEL aligns the English and target fastText spaces through a bilingual dictionary; its library would
download one of its own. Debian packages FreeDict as `dict-freedict-eng-deu` and the like: a dictd
database (`/usr/share/dictd/freedict-eng-deu.index` + `.dict.dz`, a gzip-compatible text file the
index points into). No maintained Python package reads dictd entries into word pairs, so this does:
single-word headwords and single-word translations only (WECHSEL maps words, not phrases).
"""

from __future__ import annotations

import gzip
import os
import re
from pathlib import Path

DICTD_DIR = Path(os.environ.get("MINIMODEL_DICTD") or "/usr/share/dictd")
# The languages Debian has FreeDict dictionaries of with English (bookworm), by the ISO 639-3 code
# FreeDict names them with, keyed by the two-letter code a sweep uses.
ISO3 = {
    "af": "afr",
    "ar": "ara",
    "bg": "bul",
    "cs": "ces",
    "cy": "cym",
    "da": "dan",
    "de": "deu",
    "el": "ell",
    "eo": "epo",
    "es": "spa",
    "fi": "fin",
    "fr": "fra",
    "ga": "gle",
    "hi": "hin",
    "hr": "hrv",
    "hu": "hun",
    "id": "ind",
    "is": "isl",
    "it": "ita",
    "ja": "jpn",
    "ku": "kur",
    "la": "lat",
    "lt": "lit",
    "nl": "nld",
    "no": "nor",
    "nb": "nor",
    "pl": "pol",
    "pt": "por",
    "ru": "rus",
    "sk": "slk",
    "sl": "slv",
    "sr": "srp",
    "sv": "swe",
    "sw": "swh",
    "tr": "tur",
}
_B64 = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
_NOT_TRANSLATION = re.compile(r'^("|\w+:)')  # quoted examples, Note:, Synonyms:, see:
_LABELS = re.compile(r"\[[^\]]*\]|<[^>]*>|\([^)]*\)|\{[^}]*\}|/[^/]*/|^\d+\.\s*")


class DictionaryError(ValueError):
    """No FreeDict dictionary between English and a language; the message names the package to install."""


def packages(language: str) -> list[str]:
    """The Debian packages that hold FreeDict dictionaries English -> language and back ([] if none exist)."""
    code = ISO3.get(language.split("_")[0])
    return [f"dict-freedict-eng-{code}", f"dict-freedict-{code}-eng"] if code else []


def installed(language: str) -> list[Path]:
    """The dictd index files of the FreeDict dictionaries for a language that are installed here.

    Raises DictionaryError naming what to install when there is none."""
    found = [DICTD_DIR / f"{p.removeprefix('dict-')}.index" for p in packages(language)]
    found = [p for p in found if p.is_file() and p.with_suffix(".dict.dz").is_file()]
    if found:
        return found
    if not packages(language):
        raise DictionaryError(
            f"FreeDict has no English dictionary for {language}; give a file of 'english<TAB>word' lines as trial.adapt.dictionary"
        )
    raise DictionaryError(f"no English-{language} FreeDict dictionary in {DICTD_DIR}: apt-get install {' or '.join(packages(language))}")


def word_pairs(index: Path) -> list[tuple[str, str]]:
    """(English word, target word) of every single-word translation of one FreeDict dictionary."""
    english_first = index.name.startswith("freedict-eng-")
    text = gzip.open(index.with_suffix(".dict.dz")).read()
    pairs, seen = [], set()
    for line in index.read_text(encoding="utf-8").splitlines():
        fields = line.split("\t")
        if len(fields) != 3 or fields[0].startswith("00database"):
            continue
        where = (_number(fields[1]), _number(fields[2]))
        if where in seen:  # several headwords can point at one entry
            continue
        seen.add(where)
        entry = text[where[0] : where[0] + where[1]].decode("utf-8", errors="replace").splitlines()
        headword = re.split(r" /| <", entry[0])[0].strip() if entry else ""
        if " " in headword or not any(c.isalpha() for c in headword):
            continue
        for translation in _translations(entry[1:]):
            pairs.append((headword, translation) if english_first else (translation, headword))
    return pairs


def _translations(lines: list[str]) -> list[str]:
    """The single-word translations of an entry's body: labels ([Br.], <fem>, (...)), numbering and
    pronunciations, cross-references dropped, comma- or semicolon-separated alternatives split."""
    words = []
    for line in lines:
        line = line.strip()
        if not line or _NOT_TRANSLATION.match(line):
            continue
        for part in re.split(r"[,;]", _LABELS.sub(" ", line)):
            part = part.strip()
            if " " not in part and any(c.isalpha() for c in part):
                words.append(part)
    return words


def _number(b64: str) -> int:
    """A dictd index number (base 64, most significant digit first)."""
    value = 0
    for char in b64:
        value = value * 64 + _B64.index(char)
    return value
