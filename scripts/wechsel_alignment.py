"""How well WECHSEL's word-space alignment translates words here (RESULTS.md section 18).

    python scripts/wechsel_alignment.py SPEC LANGUAGE [LANGUAGE ...] [--set KEY=VALUE ...]

WECHSEL maps English fastText word vectors onto the target language's with an orthogonal Procrustes
map fitted on a bilingual dictionary, then initialises each target token from the English tokens
nearest to it in that shared space. This reads the same vectors, dictionary and tokenizers the
`wechsel` init of SPEC's trials uses (from the sweep's cache; built if missing, as the init would),
fits the same map (scipy's orthogonal_procrustes on every pair both vocabularies hold) and prints the
precision@1 of English -> target nearest-neighbour translation on those same pairs. They are the
map's own training pairs, so the figure is an upper bound; a random rotation's is printed beside it.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
from scipy.linalg import orthogonal_procrustes
from transformers import AutoTokenizer

from minimodel.experiment import inits, pipeline
from minimodel.experiment.spec import load_spec
from minimodel.text import data


def _unit(rows: np.ndarray) -> np.ndarray:
    return rows / (np.linalg.norm(rows, axis=1, keepdims=True) + 1e-9)


def precision_at_1(english, target, pairs: list[tuple[str, str]], rotation: np.ndarray) -> float:
    """Share of English words whose nearest target word under `rotation` is one of its translations."""
    gold: dict[str, set[str]] = {}
    for source, word in pairs:
        gold.setdefault(source, set()).add(word)
    words = target.words
    space = _unit(np.stack([target.get_word_vector(w) for w in words]))
    queries = _unit(np.stack([english.get_word_vector(s) for s in gold]) @ rotation)
    best = (queries @ space.T).argmax(axis=1)
    return float(np.mean([words[i] in gold[s] for s, i in zip(gold, best)]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("spec")
    parser.add_argument("languages", nargs="+")
    parser.add_argument("--set", action="append", default=[], dest="overrides")
    args = parser.parse_args()
    import fasttext

    spec = load_spec(args.spec, args.overrides)
    cache = Path(spec.storage) / "cache"
    for language in args.languages:
        cfg = spec.config("standard", language, {"adapt.init": "wechsel"})
        pipeline.run_stage("source", cfg, cache)
        source_tokenizer = AutoTokenizer.from_pretrained(pipeline.stage_dir("source", cfg, cache) / "model")
        texts = data.read_corpus(cfg["data"]["target_corpus"], language, cfg["data"]["max_docs"])
        tokenizer = pipeline.target_tokenizer(cfg, cache, source_tokenizer, texts)
        english_texts = data.read_corpus(cfg["data"]["source_corpus"], inits.SOURCE_LANGUAGE, cfg["data"]["max_docs"])
        english = fasttext.load_model(str(inits.vectors(cfg, cache, "words", source_tokenizer, english_texts)["path"]))
        target = fasttext.load_model(str(inits.vectors(cfg, cache, "words", tokenizer, texts)["path"]))
        lines = inits.dictionary(cfg, cache, tokenizer)["path"].read_text(encoding="utf-8").splitlines()
        known_english, known_target = set(english.words), set(target.words)
        pairs = [(s, t) for s, t in (line.split("\t") for line in lines) if s in known_english and t in known_target]
        fitted, _ = orthogonal_procrustes(
            np.stack([english.get_word_vector(s) for s, _ in pairs]), np.stack([target.get_word_vector(t) for _, t in pairs])
        )
        random, _ = np.linalg.qr(np.random.default_rng(0).normal(size=fitted.shape))
        fit, chance = (precision_at_1(english, target, pairs, rotation) for rotation in (fitted, random))
        print(
            f"{language}: {len(lines)} dictionary pairs, {len(pairs)} with both words in the vectors "
            f"(English {len(english.words)} words, {language} {len(target.words)}); precision@1 on them: "
            f"Procrustes {fit:.3f}, random rotation {chance:.3f}"
        )


if __name__ == "__main__":
    main()
