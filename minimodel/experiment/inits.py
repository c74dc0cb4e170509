"""FOCUS and WECHSEL initialisation of a new vocabulary's rows, through their own libraries.

FOCUS (Dobler & de Melo, 2023; PyPI `deepfocus`) copies the source vector of every token both
vocabularies share and makes each new token a sparse combination of shared ones, weighted by fastText
similarity on target text cut into target tokens. WECHSEL (Minixhofer et al., 2022; PyPI `wechsel`)
embeds both vocabularies in fastText word spaces, aligns them with a bilingual dictionary (Procrustes)
and makes each target token a softmax-weighted mix of its nearest source tokens.

What a hub would give these libraries is made here and cached like a stage: fastText vectors trained
with the `fasttext` package on the corpora a trial reads (the libraries' own trainers cache outside
minimodel's cache and, in wechsel 0.0.4, read an unflushed temporary file), and WECHSEL's dictionary
from Debian's FreeDict packages (minimodel.text.freedict). Cost is wall seconds: fastText, numpy and
numba do the work, so torch's FLOP counter sees none of it.
"""

from __future__ import annotations

import importlib.util
import json
import time
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file
from transformers import PreTrainedTokenizerBase

from minimodel.text import data, freedict
from minimodel.experiment.cache import build, text_digest
from minimodel.experiment.config import config_hash
from minimodel.method.train import distributed
from minimodel.text.vocab import shared_tokens

# What each library init needs installed: pip extra `inits` (pyproject.toml).
MODULES = {"focus": ("deepfocus", "fasttext"), "wechsel": ("wechsel", "fasttext", "nltk")}
SOURCE_LANGUAGE = "en"


class InitError(ValueError):
    """A library init whose resources are missing; one line naming what to install."""


def check(init: str, language: str, dictionary: str) -> None:
    """What `init` needs for `language` is here: its Python packages, and WECHSEL's dictionary."""
    missing = [m for m in MODULES.get(init, ()) if importlib.util.find_spec(m) is None]
    if missing:
        raise InitError(f"{init} needs the Python packages {', '.join(missing)}: pip install -e '.[inits]'")
    if init == "wechsel":
        if dictionary:
            if not Path(dictionary.format(lang=language)).is_file():
                raise InitError(f"wechsel for {language}: no dictionary file {dictionary.format(lang=language)}")
        else:
            try:
                freedict.installed(language)
            except freedict.DictionaryError as e:
                raise InitError(f"wechsel for {language}: {e}") from None


def key_parts(cfg: dict) -> list:
    """What a library init's rows depend on, beyond the source model and the vocabulary."""
    a, d = cfg["adapt"], cfg["data"]
    files = [(str(p), p.stat().st_size) for p in _dictionary_sources(cfg) if p.is_file()] if a["init"] == "wechsel" else []
    return [
        a["init"],
        a["language"],
        cfg["fasttext"],
        a["dictionary"],
        files,
        d["source_corpus"],
        d["target_corpus"],
        d["max_docs"],
        a["seed"] if a["init"] == "focus" else None,
    ]


def compute(
    cfg: dict,
    cache_dir: Path,
    out: Path,
    source_embeddings: torch.Tensor,
    source_tokenizer: PreTrainedTokenizerBase,
    tokenizer: PreTrainedTokenizerBase,
    texts: list[str],
) -> dict:
    """Write the init's rows into `out` (rows.safetensors, copied.json: target id -> source id of every
    row that holds its source vector unchanged) and return its stats (seconds, counts). Every rank
    calls this (the cached parts are built collectively); rank 0 computes."""
    a = cfg["adapt"]
    rank = distributed()[0]
    if a["init"] == "focus":
        target = vectors(cfg, cache_dir, "tokens", tokenizer, texts)
        parts = {"target_vectors_s": target["wall_s"]}
        if rank:
            return {}
        from deepfocus import FOCUS

        start = time.perf_counter()
        rows = FOCUS(
            target_tokenizer=tokenizer,
            source_tokenizer=source_tokenizer,
            source_embeddings=source_embeddings.float(),
            fasttext_model_path=str(target["path"]),
            exact_match_all=True,
            processes=1,
            seed=a["seed"],
            verbosity="silent",
        )
    else:
        english = data.read_corpus(cfg["data"]["source_corpus"], SOURCE_LANGUAGE, cfg["data"]["max_docs"])
        source = vectors(cfg, cache_dir, "words", source_tokenizer, english)
        target = vectors(cfg, cache_dir, "words", tokenizer, texts)
        pairs = dictionary(cfg, cache_dir, tokenizer)
        parts = {
            "source_vectors_s": source["wall_s"],
            "target_vectors_s": target["wall_s"],
            "dictionary_s": pairs["wall_s"],
            "dictionary_pairs": pairs["pairs"],
        }
        if rank:
            return {}
        import fasttext
        from wechsel import WECHSEL

        start = time.perf_counter()
        wechsel = WECHSEL(
            fasttext.load_model(str(source["path"])), fasttext.load_model(str(target["path"])), bilingual_dictionary=str(pairs["path"])
        )
        matrix, _ = wechsel.apply(source_tokenizer, tokenizer, source_embeddings.float().numpy())
        rows = torch.from_numpy(matrix).float()
    parts["library_s"] = round(time.perf_counter() - start, 3)
    copied = {t: s for t, s in shared_tokens(source_tokenizer, tokenizer).items() if torch.equal(rows[t], source_embeddings[s].float())}
    save_file({"rows": rows.contiguous()}, out / "rows.safetensors")
    (out / "copied.json").write_text(json.dumps(copied))
    # Paid once per language: its vectors, dictionary and the library's call. English's vectors
    # (WECHSEL) are paid once for every language.
    per_language = sum(v for k, v in parts.items() if k.endswith("_s") and not k.startswith("source"))
    return {
        **parts,
        "init_s": round(per_language, 3),
        "init_english_s": parts.get("source_vectors_s", 0.0),
        "copied_rows": len(copied),
        "rows": len(rows),
    }


def load(entry: Path) -> tuple[torch.Tensor, dict[int, int], dict]:
    """(rows, copied target id -> source id, stats) of a computed init."""
    copied = {int(t): s for t, s in json.loads((entry / "copied.json").read_text()).items()}
    return load_file(entry / "rows.safetensors")["rows"], copied, json.loads((entry / "stats.json").read_text())


def vectors(cfg: dict, cache_dir: Path, kind: str, tokenizer: PreTrainedTokenizerBase, texts: list[str]) -> dict:
    """fastText CBOW vectors (cached) of a corpus cut into `tokens` of the tokenizer (FOCUS's
    token-level vectors) or into normalised `words` (WECHSEL's word vectors), with the settings each
    library's own trainer uses; returns the model's path and what training it cost."""
    f = cfg["fasttext"]
    state = json.loads(tokenizer.backend_tokenizer.to_str())
    cut = state if kind == "tokens" else state["normalizer"]
    digest = config_hash("vectors", kind, cut, f, text_digest(texts))
    entry = cache_dir / "vectors" / digest

    def train(tmp: Path) -> None:
        if distributed()[0]:
            return
        import fasttext

        start = time.perf_counter()
        corpus = tmp / "corpus.txt"
        with corpus.open("w", encoding="utf-8") as out:
            for text in texts:
                out.write(" ".join(_cut(kind, tokenizer, text)) + "\n")
        subwords = {} if kind == "tokens" else {"minn": 5, "maxn": 5}  # wechsel.train_embeddings' setting
        model = fasttext.train_unsupervised(
            str(corpus),
            model="cbow",
            dim=f["dim"],
            epoch=f["epochs"],
            minCount=f["min_count"],
            neg=10,
            thread=torch.get_num_threads(),
            verbose=0,
            **subwords,
        )
        model.save_model(str(tmp / "vectors.bin"))
        corpus.unlink()
        (tmp / "stats.json").write_text(json.dumps({"wall_s": round(time.perf_counter() - start, 3), "words": len(model.words)}))

    build(entry, train)
    return {**json.loads((entry / "stats.json").read_text()), "path": entry / "vectors.bin"}


def _cut(kind: str, tokenizer: PreTrainedTokenizerBase, text: str) -> list[str]:
    if kind == "tokens":
        return tokenizer.tokenize(text)
    from nltk.tokenize import wordpunct_tokenize

    return wordpunct_tokenize(_normalize(tokenizer, text))


def _normalize(tokenizer: PreTrainedTokenizerBase, text: str) -> str:
    """Text as the tokenizer's normaliser sees it (an uncased BERT lowercases and strips accents), so
    that fastText words, dictionary words and decoded tokens match."""
    normalizer = tokenizer.backend_tokenizer.normalizer
    return normalizer.normalize_str(text) if normalizer else text


def dictionary(cfg: dict, cache_dir: Path, tokenizer: PreTrainedTokenizerBase) -> dict:
    """WECHSEL's bilingual dictionary as its 'english<TAB>word' file, normalised like the vectors (cached)."""
    a = cfg["adapt"]
    given = bool(a["dictionary"])
    sources = _dictionary_sources(cfg)
    if not sources:
        freedict.installed(a["language"])  # raises, naming the package to install
    entry = (
        cache_dir
        / "dictionary"
        / config_hash(
            "dictionary", [(str(p), p.stat().st_size) for p in sources], json.loads(tokenizer.backend_tokenizer.to_str())["normalizer"]
        )
    )

    def write(tmp: Path) -> None:
        if distributed()[0]:
            return
        start = time.perf_counter()
        if given:
            pairs = [tuple(line.split("\t")[:2]) for line in sources[0].read_text(encoding="utf-8").splitlines() if "\t" in line]
        else:
            pairs = [pair for index in sources for pair in freedict.word_pairs(index)]
        unique = sorted({(_normalize(tokenizer, s), _normalize(tokenizer, t)) for s, t in pairs})
        (tmp / "pairs.tsv").write_text("".join(f"{s}\t{t}\n" for s, t in unique if s and t), encoding="utf-8")
        (tmp / "stats.json").write_text(json.dumps({"wall_s": round(time.perf_counter() - start, 3), "pairs": len(unique)}))

    build(entry, write)
    return {**json.loads((entry / "stats.json").read_text()), "path": entry / "pairs.tsv"}


def _dictionary_sources(cfg: dict) -> list[Path]:
    """WECHSEL's dictionary files: the one adapt.dictionary names, else the installed FreeDict ones ([] if none)."""
    a = cfg["adapt"]
    if a["dictionary"]:
        return [Path(a["dictionary"].format(lang=a["language"]))]
    try:
        return freedict.installed(a["language"])
    except freedict.DictionaryError:
        return []
