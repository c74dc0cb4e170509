"""Corpora and tasks from one kind of name: bundled snapshots, local files or Hugging Face datasets.

Source forms (the same in a sweep spec for corpora and tasks):
- `bundled:ddtp-topic`: a snapshot under the repository's data/ folder (or $MINIMODEL_DATA).
- a path template with `{lang}` (and `{split}` for tasks): `corpora/{lang}.txt.gz`,
  `mytask/{lang}/{split}.jsonl`. Tasks are JSONL `{"text", "label"[, "text_pair"]}`; corpora
  one document per line; `.gz`/`.xz` are read transparently.
- extractive QA in the same forms: SQuAD-format JSON (`qa/{lang}/{split}.json`: data, paragraphs,
  qas) or JSONL rows `{"context", "question", "answers": {"text": [...], "answer_start": [...]}}`.
  The rows' layout says which kind a task is (`is_qa`), so no setting names it.
- `hf:NAME` or `hf:NAME:CONFIG` (CONFIG may hold `{lang}`): `datasets.load_dataset`; corpora are
  streamed so only the documents a run needs are read. NAME is a hub id, a short alias below, or a
  local folder in the hub layout. Columns are mapped by what the dataset has, not by its name.

No Ray or MLflow here: the core and the sweep layer both call these functions.
"""

from __future__ import annotations

import gzip
import hashlib
import itertools
import json
import lzma
import os
import random
import re
from collections.abc import Collection, Iterator
from glob import glob
from pathlib import Path

from minimodel.text import cipher
from minimodel.errors import UserError

SPLITS = ("train", "dev", "test")

# Short names for the datasets of the paper, with their hub id, config template and languages.
# Datasets 4 and later refuse loading scripts: every alias reads parquet. facebook/xnli and
# google-research-datasets/paws-x hold parquet per language on their main branch (converted in 2024).
HF_ALIASES = {
    "xnli": ("facebook/xnli", "{lang}"),
    "paws-x": ("google-research-datasets/paws-x", "{lang}"),
    # CC100, the paper's corpus, is a script dataset; see HF_PARQUET_EXPORT.
    "cc100": ("statmt/cc100", "{lang}"),
    "wikipedia": ("wikimedia/wikipedia", "20231101.{lang}"),
    "wikimedia/wikipedia": ("wikimedia/wikipedia", "20231101.{lang}"),
    # Datasets 4 refuses loading scripts, and facebook/mlqa and google/xquad are script datasets:
    # google/xtreme holds both as parquet (configs MLQA.{lang}.{lang}, XQuAD.{lang}); SQuAD is
    # parquet at rajpurkar/squad.
    "mlqa": ("google/xtreme", "MLQA.{lang}.{lang}"),
    "xquad": ("google/xtreme", "XQuAD.{lang}"),
    "squad": ("rajpurkar/squad", "plain_text"),
}
# MLQA and XQuAD have no training split: English trains on SQuAD v1.1, as in XTREME.
HF_TRAIN_FROM = {("google/xtreme", "MLQA.{lang}.{lang}"): "hf:squad", ("google/xtreme", "XQuAD.{lang}"): "hf:squad"}
# XQuAD has one split (validation): a fixed half of its questions (by id) is dev, the other half test.
HF_HALVED = {("google/xtreme", "XQuAD.{lang}"): "validation"}
HF_LANGUAGES = {
    "google/xtreme:MLQA.{lang}.{lang}": "ar de en es hi vi zh",
    "google/xtreme:XQuAD.{lang}": "ar de el en es hi ro ru th tr vi zh",
    "rajpurkar/squad": "en",
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
# Script datasets the hub has converted: their parquet export (revision refs/convert/parquet) holds one
# folder per config with a train (or, past about 5 GB, partial-train) folder of parquet files, which
# datasets reads as a plain parquet dataset with data_dir = the config. CC100's export keeps at least
# the first 5 GB of each language: more documents than data.max_docs reads at paper scale.
HF_PARQUET_EXPORT = {"statmt/cc100": "refs/convert/parquet"}
# Script-only datasets (no parquet to read) and what reads the same data: validation names the fix.
HF_SCRIPT_ONLY = {
    "facebook/mlqa": "hf:mlqa (google/xtreme's parquet MLQA configs)",
    "google/xquad": "hf:xquad (google/xtreme's parquet XQuAD configs)",
    "legacy-datasets/wikipedia": "hf:wikipedia (wikimedia/wikipedia, parquet, 20231101.{lang})",
}
HF_SPLITS = {"dev": "validation"}  # hub datasets call the dev split "validation"
PAIR_COLUMNS = [("premise", "hypothesis"), ("sentence1", "sentence2"), ("text", "text_pair")]


class DataError(UserError):
    """Bad or missing data; the message is one line naming the file (and line) or dataset."""


# --- local files and bundled snapshots ---------------------------------------------------------


def data_dir() -> Path:
    """The bundled snapshots: the repository's data/ folder unless $MINIMODEL_DATA says otherwise."""
    return Path(os.environ.get("MINIMODEL_DATA") or Path(__file__).resolve().parents[2] / "data")


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
    if isinstance(row, dict) and "context" in row:
        return _qa_row(row, where)
    if not isinstance(row, dict) or not isinstance(row.get("text"), str) or row.get("label") is None:
        raise DataError(f'{where}: needs a string "text" and a "label"')
    out = {"text": row["text"], "label": str(row["label"])}
    if row.get("text_pair") is not None:
        out["text_pair"] = str(row["text_pair"])
    return out


def _qa_row(row: dict, where: str) -> dict:
    """A QA row {"id", "context", "question", "answers": {"text", "answer_start"}}, every answer checked
    to stand at its answer_start: a shifted offset would train the span head on the wrong tokens."""
    answers = row.get("answers")
    if (
        not isinstance(row.get("context"), str)
        or not isinstance(row.get("question"), str)
        or not isinstance(answers, dict)
        or not isinstance(answers.get("text"), list)
        or not isinstance(answers.get("answer_start"), list)
        or len(answers["text"]) != len(answers["answer_start"])
        or not answers["text"]
    ):
        raise DataError(
            f'{where}: a QA row needs strings "context", "question" and "answers" '
            '{"text": [...], "answer_start": [...]} of equal, non-zero length'
        )
    for text, start in zip(answers["text"], answers["answer_start"]):
        if not isinstance(start, int) or row["context"][start : start + len(text)] != text:
            raise DataError(f"{where}: answer {text!r} is not at answer_start {start} of the context")
    return {
        "id": str(row.get("id", where)),
        "context": row["context"],
        "question": row["question"],
        "answers": {"text": list(answers["text"]), "answer_start": list(answers["answer_start"])},
    }


def _squad_rows(path: str) -> list[tuple[str, dict]]:
    """(where, row) of every question in a SQuAD-format JSON file (data > paragraphs > qas)."""
    try:
        squad = json.loads("\n".join(_lines(path)))
        paragraphs = [(p["context"], p["qas"]) for article in squad["data"] for p in article["paragraphs"]]
    except json.JSONDecodeError as e:
        raise DataError(f"{path}: not JSON ({e.msg} at line {e.lineno})") from None
    except (KeyError, TypeError):
        raise DataError(f"{path}: not SQuAD format (data > paragraphs > context, qas)") from None
    rows = []
    for context, qas in paragraphs:
        for qa in qas:
            if not isinstance(qa, dict):
                raise DataError(f"{path}: not SQuAD format (a qas entry is {type(qa).__name__}, not an object)")
            where = f"{path} question {qa.get('id', len(rows) + 1)}"
            answers = qa.get("answers") or []
            row = {
                "id": qa.get("id"),
                "context": context,
                "question": qa.get("question"),
                "answers": {"text": [a.get("text") for a in answers], "answer_start": [a.get("answer_start") for a in answers]},
            }
            rows.append((where, _qa_row(row, where)))
    return rows


def is_qa(rows: list[dict]) -> bool:
    """Whether task rows are extractive QA (context, question, answers) rather than classification."""
    return bool(rows) and "context" in rows[0]


# --- Hugging Face datasets ---------------------------------------------------------------------


def _hf(source: str) -> tuple[str, str]:
    """hf:NAME[:CONFIG] -> (dataset path for load_dataset, config template)."""
    name, _, config = source.removeprefix("hf:").partition(":")
    path, default_config = HF_ALIASES.get(name, (name, "{lang}"))
    return path, config or default_config


def check_loadable(source: str) -> None:
    """Refuse, offline and at once, an hf: source that datasets 4+ cannot load: a known script-only
    dataset, or a local folder holding a loading script (NAME/NAME.py: datasets refuses the folder)."""
    if not source.startswith("hf:"):
        return
    path, _ = _hf(source)
    fix = HF_SCRIPT_ONLY.get(path)
    folder = Path(path).expanduser()
    if fix is None and (folder / f"{folder.name}.py").is_file():
        fix = "a copy of its data as parquet or JSONL (datasets-cli convert_to_parquet), named by its folder or files"
    if fix:
        raise DataError(f"{source}: {path} is a loading-script dataset, which datasets 4 and later refuse; use {fix}")


def _hf_load(source: str, language: str, split: str, streaming: bool):
    """load_dataset with any failure (offline hub, unknown config) turned into one DataError line."""
    import datasets  # heavy; only the hf: path needs it

    check_loadable(source)
    path, config = _hf(source)
    known = _hf_languages(path, config)
    if "{lang}" not in config and known and language not in known:  # it would load its one language for any
        raise DataError(f"{source} [{language}/{split}]: offers {', '.join(known)} only")
    code = HF_CODES.get(path, {}).get(language, language)
    where = (
        {"revision": HF_PARQUET_EXPORT[path], "data_dir": config.format(lang=code)}
        if path in HF_PARQUET_EXPORT
        else {"name": config.format(lang=code)}
    )
    try:
        return datasets.load_dataset(path, split=split, streaming=streaming, **where)
    except Exception as e:  # datasets raises many types (ConnectionError, ValueError, FileNotFoundError...)
        message = str(e).strip().split("\n")[0]
        if "scripts are no longer supported" in message:
            raise DataError(
                f"{source}: {path} is a loading-script dataset, which datasets 4 and later refuse; "
                "point at a parquet copy of it (see the README's hf: aliases)"
            ) from None
        raise DataError(f"{source} [{language}/{split}]: {type(e).__name__}: {message}") from None


def _hf_languages(path: str, config: str) -> list[str] | None:
    """The languages a hub dataset is known to offer without asking the hub (None: unknown)."""
    known = HF_LANGUAGES.get(f"{path}:{config}") or HF_LANGUAGES.get(path)
    return known.split() if known else None


def _hf_task(source: str, language: str, split: str) -> list[dict]:
    """XNLI / PAWS-X / text-label style columns -> task rows, ClassLabel ids becoming their names;
    SQuAD-style columns (context, question, answers) -> QA rows."""
    path, config = _hf(source)
    if split == "train" and (path, config) in HF_TRAIN_FROM:
        return _hf_task(HF_TRAIN_FROM[path, config], language, split)
    halved = HF_HALVED.get((path, config)) if split in ("dev", "test") else None
    dataset = _hf_load(source, language, halved or HF_SPLITS.get(split, split), streaming=False)
    columns = set(dataset.column_names)
    if {"context", "question", "answers"} <= columns:
        rows = [
            {"id": str(x.get("id", i)), "context": x["context"], "question": x["question"], "answers": _answers(x["answers"])}
            for i, x in enumerate(dataset)
        ]
        return [r for r in rows if _dev_half(r["id"]) == (split == "dev")] if halved else rows
    first, second = next(
        ((a, b) for a, b in PAIR_COLUMNS if a in columns and b in columns), ("text" if "text" in columns else "sentence", None)
    )
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


def _answers(value: dict | list) -> dict:
    """Answers as {"text": [...], "answer_start": [...]}, whether stored as columns or as a list of records."""
    if isinstance(value, list):
        return {"text": [a["text"] for a in value], "answer_start": [a["answer_start"] for a in value]}
    return {"text": list(value["text"]), "answer_start": list(value["answer_start"])}


def _dev_half(question_id: str) -> bool:
    """A fixed half of a one-split dataset's questions, the same in every language (ids are shared)."""
    return hashlib.sha256(question_id.encode()).digest()[0] % 2 == 0


def _hf_corpus(source: str, language: str, max_docs: int | None) -> list[str]:
    """Stream the train split's "text" column, skipping empty lines (cc100 separates documents so)."""
    stream = _hf_load(source, language, "train", streaming=True)
    texts = (example["text"].strip() for example in stream)
    return list(itertools.islice((t for t in texts if t), max_docs))


# --- the interface -----------------------------------------------------------------------------


def read_corpus(source: str, language: str, max_docs: int | None = None) -> list[str]:
    """Documents of one language, reading no further than max_docs (the run's token budget)."""
    if cipher.is_cipher(language):
        return [cipher.encipher(doc) for doc in read_corpus(source, cipher.base_language(language), max_docs)]
    if source.startswith("hf:"):
        docs, where = _hf_corpus(source, language, max_docs), f"{source} [{language}]"
    else:
        where = _template(source, "corpus").format(lang=language)
        lines = (line.strip() for line in _lines(where))
        docs = list(itertools.islice((line for line in lines if line), max_docs))
    if not docs:
        raise DataError(f"{where}: empty corpus")
    return docs


def read_task(source: str, language: str, split: str, labels: Collection[str] | None = None) -> list[dict]:
    """Rows {"text", "label"[, "text_pair"]} of one split, or QA rows {"id", "context", "question",
    "answers"} (see is_qa).

    With `labels` (the training labels), a row whose label is not among them is a DataError naming
    its file and line: a zero-shot test label the classifier never saw would silently score zero.
    A cipher language's rows are its base language's, texts enciphered and labels kept (answer
    offsets too: the cipher maps one character to one character).
    """
    if cipher.is_cipher(language):
        return [_enciphered(row) for row in read_task(source, cipher.base_language(language), split, labels)]
    if source.startswith("hf:"):
        rows = _hf_task(source, language, split)
        where = f"{source} [{language}/{split}]"
        numbered = [(f"{where} row {i}", row) for i, row in enumerate(rows, 1)]
    else:
        where = _template(source, "task").format(lang=language, split=split)
        if re.search(r"\.json(\.gz|\.xz)?$", where):
            numbered = _squad_rows(where)
        else:
            numbered = [(f"{where}:{n}", _task_row(line, f"{where}:{n}")) for n, line in enumerate(_lines(where), 1) if line.strip()]
    if not numbered:
        raise DataError(f"{where}: empty split")
    if labels is not None:
        for at, row in numbered:
            if row["label"] not in labels:
                raise DataError(f"{at}: label {row['label']!r} not among the training labels {sorted(labels)}")
    return [row for _, row in numbered]


def _enciphered(row: dict) -> dict:
    out = {**row, **{k: cipher.encipher(row[k]) for k in ("text", "text_pair", "context", "question") if row.get(k) is not None}}
    if "answers" in row:
        out["answers"] = {**row["answers"], "text": [cipher.encipher(t) for t in row["answers"]["text"]]}
    return out


def sample(items: list, n: int, seed: int = 0) -> list:
    """A fixed random sample of n items in their original order (all items when n is 0 or too large).

    Files are often sorted (DDTP by package name): the first n items would be one topic's."""
    if not n or n >= len(items):
        return items
    return [items[i] for i in sorted(random.Random(seed).sample(range(len(items)), n))]


def languages(source: str) -> list[str]:
    """Languages a source offers, for validating a spec before anything runs (each one's cipher
    control, `cipher-en` for `en`, is there too without being listed)."""
    if source.startswith("bundled:"):
        _, manifest = _bundled(source.removeprefix("bundled:"))
        return sorted(manifest["task"])
    if source.startswith("hf:"):
        path, config = _hf(source)
        if known := _hf_languages(path, config):
            return known
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
