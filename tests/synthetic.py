"""A synthetic topic language and its cipher: the method's correctness proof at toy scale.

Sentences mix topic-specific and common words; the label is the topic. The cipher maps every word
to a new string through a fixed random permutation, so the "target language" has the same structure
and no shared vocabulary: only relearned embeddings can make the English model read it.
"""
from __future__ import annotations

import json
import random
from pathlib import Path

TOPICS = ("games", "science", "network", "text")
COMMON = [f"w{i}" for i in range(40)]
TOPIC_WORDS = {t: [f"{t[:3]}{i}" for i in range(25)] for t in TOPICS}
VOCAB = COMMON + [w for ws in TOPIC_WORDS.values() for w in ws]


def sentence(rng: random.Random, topic: str) -> str:
    words = []
    for _ in range(rng.randint(8, 16)):
        pool = TOPIC_WORDS[topic] if rng.random() < 0.45 else COMMON
        words.append(rng.choice(pool))
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
    """A fixed bijection from source words onto new strings."""
    rng = random.Random(7)
    targets = [f"q{i}z" for i in range(len(VOCAB))]
    rng.shuffle(targets)
    return dict(zip(VOCAB, targets))


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
