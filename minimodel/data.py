"""Corpora and tasks from one kind of name: bundled snapshots, local files or Hugging Face datasets.

Source forms (the same in a sweep spec for corpora and tasks):
- `bundled:ddtp-topic`: a snapshot under the repository's data/ folder (or $MINIMODEL_DATA).
- a path template with `{lang}` (and `{split}` for tasks): `corpora/{lang}.txt.gz`,
  `mytask/{lang}/{split}.jsonl`. Tasks are JSONL `{"text", "label"[, "text_pair"]}`; corpora
  one document per line; `.gz`/`.xz` are read transparently.
- `hf:NAME` or `hf:NAME:CONFIG` (CONFIG may hold `{lang}`): `datasets.load_dataset`; corpora are
  streamed so only the documents a run needs are read. NAME is a hub id, a short alias below, or a
  local folder in the hub layout. Columns are mapped by what the dataset has, not by its name.

No Ray or MLflow here: the core and the sweep layer both call these functions.
"""

from __future__ import annotations

import gzip
import itertools
import json
import lzma
import os
import re
from collections.abc import Collection, Iterator
from glob import glob
from pathlib import Path

SPLITS = ("train", "dev", "test")

# Short names for the datasets of the paper, with their hub id, config template and languages.
HF_ALIASES = {
    "xnli": ("facebook/xnli", "{lang}"),
    "paws-x": ("google-research-datasets/paws-x", "{lang}"),
    "cc100": ("statmt/cc100", "{lang}"),
    "wikipedia": ("wikimedia/wikipedia", "20231101.{lang}"),
    "wikimedia/wikipedia": ("wikimedia/wikipedia", "20231101.{lang}"),
}
HF_LANGUAGES = {
    "facebook/xnli": "ar bg de el en es fr hi ru sw th tr ur vi zh",
    "google-research-datasets/paws-x": "de en es fr ja ko zh",
    "statmt/cc100": "af am ar as az be bg bn bn_rom br bs ca cs cy da de el en eo es et eu fa ff fi fr "
                    "fy ga gd gl gn gu ha he hi hi_rom hr ht hu hy id ig is it ja jv ka kk km kn ko ku "
                    "ky la lg li ln lo lt lv mg mk ml mn mr ms my my_zaw ne nl no ns om or pa pl ps pt "
                    "qu rm ro ru sa sc sd si sk sl so sq sr ss su sv sw ta ta_rom te te_rom th tl tn tr "
                    "ug uk ur ur_rom uz vi wo xh yi yo zh zh-Hant zu",
}
# Where a dataset spells a language its own way: a sweep says "zh" for every dataset.
HF_CODES = {"statmt/cc100": {"zh": "zh-Hans"}}
HF_SPLITS = {"dev": "validation"}  # hub datasets call the dev split "validation"
PAIR_COLUMNS = [("premise", "hypothesis"), ("sentence1", "sentence2"), ("text", "text_pair")]


class DataError(ValueError):
    """Bad or missing data; the message is one line naming the file (and line) or dataset."""


# --- local files and bundled snapshots ---------------------------------------------------------

def data_dir() -> Path:
    """The bundled snapshots: the repository's data/ folder unless $MINIMODEL_DATA says otherwise."""
    return Path(os.environ.get("MINIMODEL_DATA") or Path(__file__).resolve().parents[1] / "data")


def _bundled(name: str) -> tuple[Path, dict]:
    folder = data_dir() / name
    try:
        manifest = json.loads((folder / "manifest.json").read_text())
    except FileNotFoundError:
        offered = sorted(p.parent.name for p in data_dir().glob("*/manifest.json"))
        raise DataError(f"bundled:{name}: no {folder / 'manifest.json'} (bundled: {offered})") from None
    return folder, manifest


def _template(source: str, kind: str) -> str:
    """The path template of a bundled or local source for kind 'task' or 'corpus'."""
    if source.startswith("bundled:"):
        folder, _ = _bundled(source.removeprefix("bundled:"))
        name = "task/{lang}/{split}.jsonl.xz" if kind == "task" else "corpus/{lang}.txt.xz"
        return str(folder / name)
    if "{lang}" not in source or (kind == "task" and "{split}" not in source):
        fields = "{lang} and {split}" if kind == "task" else "{lang}"
        raise DataError(f"{source}: a local {kind} path must contain {fields}")
    return source


def _lines(path: str) -> Iterator[str]:
    """Lines of a text file, decompressing .gz/.xz; a missing file is a DataError naming it."""
    opener = {".gz": gzip.open, ".xz": lzma.open}.get(Path(path).suffix, open)
    try:
        with opener(path, "rt", encoding="utf-8") as f:
            for line in f:
                yield line.rstrip("\n")
    except FileNotFoundError:
        raise DataError(f"{path}: no such file") from None
    except (UnicodeDecodeError, OSError, EOFError, lzma.LZMAError) as e:
        raise DataError(f"{path}: cannot read ({e})") from None


def _task_row(line: str, where: str) -> dict:
    """One JSONL task line as {"text", "label"[, "text_pair"]}, labels as strings."""
    try:
        row = json.loads(line)
    except json.JSONDecodeError as e:
        raise DataError(f"{where}: not JSON ({e.msg})") from None
    if not isinstance(row, dict) or not isinstance(row.get("text"), str) or row.get("label") is None:
        raise DataError(f"{where}: needs a string \"text\" and a \"label\"")
    out = {"text": row["text"], "label": str(row["label"])}
    if row.get("text_pair") is not None:
        out["text_pair"] = str(row["text_pair"])
    return out


# --- Hugging Face datasets ---------------------------------------------------------------------

def _hf(source: str) -> tuple[str, str]:
    """hf:NAME[:CONFIG] -> (dataset path for load_dataset, config template)."""
    name, _, config = source.removeprefix("hf:").partition(":")
    path, default_config = HF_ALIASES.get(name, (name, "{lang}"))
    return path, config or default_config


def _hf_load(source: str, language: str, split: str, streaming: bool):
    """load_dataset with any failure (offline hub, unknown config) turned into one DataError line."""
    import datasets  # heavy; only the hf: path needs it

    path, config = _hf(source)
    try:
        code = HF_CODES.get(path, {}).get(language, language)
        return datasets.load_dataset(path, config.format(lang=code), split=split, streaming=streaming)
    except Exception as e:  # datasets raises many types (ConnectionError, ValueError, FileNotFoundError...)
        message = str(e).strip().split("\n")[0]
        raise DataError(f"{source} [{language}/{split}]: {type(e).__name__}: {message}") from None


def _hf_task(source: str, language: str, split: str) -> list[dict]:
    """XNLI / PAWS-X / text-label style columns -> task rows; ClassLabel ids become their names."""
    dataset = _hf_load(source, language, HF_SPLITS.get(split, split), streaming=False)
    columns = set(dataset.column_names)
    first, second = next(((a, b) for a, b in PAIR_COLUMNS if a in columns and b in columns),
                         ("text" if "text" in columns else "sentence", None))
    if first not in columns or "label" not in columns:
        raise DataError(f"{source} [{language}/{split}]: no text/label columns in {sorted(columns)}")
    label_feature = dataset.features["label"]
    names = getattr(label_feature, "int2str", str)  # ClassLabel maps ids to names
    rows = []
    for example in dataset:
        row = {"text": example[first], "label": str(names(example["label"]))}
        if second:
            row["text_pair"] = example[second]
        rows.append(row)
    return rows


def _hf_corpus(source: str, language: str, max_docs: int | None) -> list[str]:
    """Stream the train split's "text" column, skipping empty lines (cc100 separates documents so)."""
    stream = _hf_load(source, language, "train", streaming=True)
    texts = (example["text"].strip() for example in stream)
    return list(itertools.islice((t for t in texts if t), max_docs))


# --- the interface -----------------------------------------------------------------------------

def read_corpus(source: str, language: str, max_docs: int | None = None) -> list[str]:
    """Documents of one language, reading no further than max_docs (the run's token budget)."""
    if source.startswith("hf:"):
        docs, where = _hf_corpus(source, language, max_docs), f"{source} [{language}]"
    else:
        where = _template(source, "corpus").format(lang=language)
        lines = (line.strip() for line in _lines(where))
        docs = list(itertools.islice((line for line in lines if line), max_docs))
    if not docs:
        raise DataError(f"{where}: empty corpus")
    return docs


def read_task(source: str, language: str, split: str,
              labels: Collection[str] | None = None) -> list[dict]:
    """Rows {"text", "label"[, "text_pair"]} of one split.

    With `labels` (the training labels), a row whose label is not among them is a DataError naming
    its file and line: a zero-shot test label the classifier never saw would silently score zero.
    """
    if source.startswith("hf:"):
        rows = _hf_task(source, language, split)
        where = f"{source} [{language}/{split}]"
        numbered = [(f"{where} row {i}", row) for i, row in enumerate(rows, 1)]
    else:
        where = _template(source, "task").format(lang=language, split=split)
        numbered = [(f"{where}:{n}", _task_row(line, f"{where}:{n}"))
                    for n, line in enumerate(_lines(where), 1) if line.strip()]
    if not numbered:
        raise DataError(f"{where}: empty split")
    if labels is not None:
        for at, row in numbered:
            if row["label"] not in labels:
                raise DataError(f"{at}: label {row['label']!r} not among the training labels "
                                f"{sorted(labels)}")
    return [row for _, row in numbered]


def languages(source: str) -> list[str]:
    """Languages a source offers, for validating a spec before anything runs."""
    if source.startswith("bundled:"):
        _, manifest = _bundled(source.removeprefix("bundled:"))
        return sorted(manifest["task"])
    if source.startswith("hf:"):
        path, config = _hf(source)
        if path in HF_LANGUAGES:
            return HF_LANGUAGES[path].split()
        import datasets

        try:
            configs = datasets.get_dataset_config_names(path)
        except Exception as e:
            raise DataError(f"{source}: cannot list configs ({type(e).__name__})") from None
        pattern = re.escape(config).replace(re.escape("{lang}"), "(.+)")
        return sorted(m.group(1) for c in configs if (m := re.fullmatch(pattern, c)))
    pattern = re.escape(source).replace(re.escape("{lang}"), "(?P<lang>[^/]+)", 1)
    pattern = pattern.replace(re.escape("{lang}"), "(?P=lang)").replace(re.escape("{split}"), "[^/]+")
    paths = glob(source.replace("{lang}", "*").replace("{split}", "*"))
    return sorted({m.group("lang") for p in paths if (m := re.fullmatch(pattern, p))})
