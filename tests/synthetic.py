"""A synthetic topic language and its cipher: the method's correctness proof at toy scale.

Sentences mix topic words and common words; the label is the topic. The cipher maps every topic
word to a new string through a fixed random permutation and keeps the common words, the way real
languages share digits, punctuation and names: those shared tokens carry no label (every topic uses
them alike, or nearly: see LEANS) but anchor the space. Only
relearned embeddings for the topic words can make the English model read the ciphered language.
(With no shared token at all, a toy-sized model relearned from random init lands on a permuted
solution of equal MLM loss; docs/DATA-SOURCES.md notes the same on real German at CPU-sized budgets.)
"""

from __future__ import annotations

import json
import random
from pathlib import Path

TOPICS = ("games", "science", "network", "text")
COMMON = [f"w{i}" for i in range(20)]
TOPIC_WORDS = {t: [f"{t[:3]}{i}" for i in range(size)] for t, size in zip(TOPICS, (6, 15, 10, 20))}
VOCAB = COMMON + [w for ws in TOPIC_WORDS.values() for w in ws]
_pick = random.Random(11)
SUCCESSOR = {w: _pick.choice(COMMON) for ws in TOPIC_WORDS.values() for w in ws}
# Each topic leans on its own overlapping window of common words, as real topics lean on their own
# names and numbers: weak label evidence on its own, but it ties each topic to its place in the space.
LEANS = {t: [COMMON[(5 * i + j) % len(COMMON)] for j in range(8)] for i, t in enumerate(TOPICS)}


def zipf(rng: random.Random, pool: list[str]) -> str:
    return rng.choices(pool, weights=[1 / (i + 1) for i in range(len(pool))])[0]


def sentence(rng: random.Random, topic: str) -> str:
    words: list[str] = []
    for _ in range(rng.randint(8, 16)):
        if words and words[-1] in SUCCESSOR and rng.random() < 0.6:
            words.append(SUCCESSOR[words[-1]])
        else:
            r = rng.random()
            words.append(zipf(rng, TOPIC_WORDS[topic] if r < 0.5 else LEANS[topic] if r < 0.8 else COMMON))
    return " ".join(words)


def corpus_lines(n: int, seed: int) -> list[str]:
    rng = random.Random(seed)
    return [sentence(rng, rng.choice(TOPICS)) for _ in range(n)]


def task_items(n: int, seed: int) -> list[dict]:
    rng = random.Random(seed)
    items = []
    for _ in range(n):
        topic = rng.choice(TOPICS)
        items.append({"text": sentence(rng, topic), "label": topic})
    return items


def cipher() -> dict[str, str]:
    """A fixed bijection from topic words onto new strings; common words map to themselves."""
    rng = random.Random(7)
    topic_words = [w for ws in TOPIC_WORDS.values() for w in ws]
    targets = [f"q{i}z" for i in range(len(topic_words))]
    rng.shuffle(targets)
    return {**{w: w for w in COMMON}, **dict(zip(topic_words, targets))}


def encipher(text: str, table: dict[str, str]) -> str:
    return " ".join(table[w] for w in text.split())


def write_language(root: Path) -> None:
    """English ("en") corpus and task, and the ciphered language ("xx"), as local JSONL/text files."""
    table = cipher()
    splits = {"train": task_items(600, 2), "dev": task_items(120, 3), "test": task_items(200, 4)}
    for lang, seed, conv in (("en", 1, lambda s: s), ("xx", 5, lambda s: encipher(s, table))):
        (root / "corpus").mkdir(parents=True, exist_ok=True)
        (root / "corpus" / f"{lang}.txt").write_text("\n".join(conv(s) for s in corpus_lines(3000, seed)) + "\n")
        for split, items in splits.items():
            if lang == "xx" and split == "train":
                continue
            folder = root / "task" / lang
            folder.mkdir(parents=True, exist_ok=True)
            lines = [json.dumps({"text": conv(x["text"]), "label": x["label"]}) for x in items]
            (folder / f"{split}.jsonl").write_text("\n".join(lines) + "\n")
