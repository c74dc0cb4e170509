"""A synthetic extractive QA task in the topic language of tests/synthetic.py, and its cipher.

A context is three sentences of three different topics joined by " . "; the question is up to three
words of one of those topics that the context does not contain; the answer is that topic's sentence.
Nothing in the question matches the context's surface: only what the words mean (their topic,
learned by MLM) finds the answer. The ciphered copy ("xx") maps words through synthetic.cipher(), so
its answers are known exactly, and only relearned embeddings let the English-trained span head read it.
"""

from __future__ import annotations

import json
import random
from pathlib import Path

from tests.synthetic import TOPIC_WORDS, TOPICS, cipher, sentence

SENTENCES = 3
SEPARATOR = " . "
QUESTION_WORDS = 3


def _item(sentences: list[str], question: str, target: int, qid: str) -> dict:
    context = SEPARATOR.join(sentences)
    start = sum(len(s) + len(SEPARATOR) for s in sentences[:target])
    return {"id": qid, "context": context, "question": question, "answers": {"text": [sentences[target]], "answer_start": [start]}}


def _draw(rng: random.Random, words: tuple[int, int]) -> tuple[list[str], str, int]:
    """(sentences, question, index of the answer sentence)."""
    topics = rng.sample(TOPICS, SENTENCES)
    sentences = [" ".join(sentence(rng, t).split()[: rng.randint(*words)]) for t in topics]
    target = rng.randrange(SENTENCES)
    present = set(SEPARATOR.join(sentences).split())
    pool = [w for w in TOPIC_WORDS[topics[target]] if w not in present] or TOPIC_WORDS[topics[target]]
    return sentences, " ".join(rng.sample(pool, min(QUESTION_WORDS, len(pool)))), target


def qa_items(n: int, seed: int, words: tuple[int, int] = (5, 9)) -> list[tuple[list[str], str, int]]:
    rng = random.Random(seed)
    return [_draw(rng, words) for _ in range(n)]


def encipher_word(word: str, table: dict[str, str]) -> str:
    return table.get(word, word)  # "." and common words stay


def squad_json(rows: list[dict]) -> str:
    """QA rows as a SQuAD v1.1 file: data > paragraphs > qas."""
    paragraphs = [
        {
            "context": r["context"],
            "qas": [
                {
                    "id": r["id"],
                    "question": r["question"],
                    "answers": [{"text": t, "answer_start": s} for t, s in zip(r["answers"]["text"], r["answers"]["answer_start"])],
                }
            ],
        }
        for r in rows
    ]
    return json.dumps({"version": "1.1", "data": [{"title": "synthetic", "paragraphs": paragraphs}]})


def write_qa(root: Path, train: int = 800, dev: int = 150, test: int = 200) -> dict:
    """English ("en") corpus and QA splits, the ciphered language's ("xx") corpus, dev and test, as
    local SQuAD-format files; returns the source templates."""
    table = cipher()
    splits = {"train": qa_items(train, 21), "dev": qa_items(dev, 22), "test": qa_items(test, 23)}
    corpus = [SEPARATOR.join(s) for s, _, _ in qa_items(3000, 24)]
    for lang in ("en", "xx"):
        convert = (lambda s: s) if lang == "en" else (lambda s: " ".join(encipher_word(w, table) for w in s.split()))
        (root / "corpus").mkdir(parents=True, exist_ok=True)
        (root / "corpus" / f"{lang}.txt").write_text("\n".join(convert(line) for line in corpus) + "\n")
        folder = root / "qa" / lang
        folder.mkdir(parents=True, exist_ok=True)
        for split, draws in splits.items():
            if lang == "xx" and split == "train":
                continue
            rows = [
                _item([convert(s) for s in sentences], convert(question), target, f"{split}-{i}")
                for i, (sentences, question, target) in enumerate(draws)
            ]
            (folder / f"{split}.json").write_text(squad_json(rows))
    return {"corpus": str(root / "corpus" / "{lang}.txt"), "task": str(root / "qa" / "{lang}" / "{split}.json")}
