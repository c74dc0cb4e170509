"""The bundled snapshot against its manifest, leakage, the Hugging Face path offline, loader errors."""

import gzip
import hashlib
import json
import lzma
from collections import Counter
from functools import cache

import pytest

from minimodel.text import data
from minimodel.text.data import DataError, data_dir, languages, read_corpus, read_task

BUNDLED = "bundled:ddtp-topic"


def normalise(text: str) -> str:
    return " ".join(text.split()).lower()


@cache
def manifest() -> dict:
    return json.loads((data_dir() / "ddtp-topic/manifest.json").read_text())


@cache
def corpus(language: str) -> list[str]:
    return read_corpus(BUNDLED, language)


# --- the committed snapshot --------------------------------------------------------------------


def test_snapshot_is_small_and_has_the_required_languages():
    files = [p for p in (data_dir() / "ddtp-topic").rglob("*") if p.is_file()]
    assert sum(p.stat().st_size for p in files) < 25e6
    assert {"en", "de", "fr", "es", "ru", "ja", "zh_CN"} <= set(languages(BUNDLED))
    assert set(manifest()["task"]["en"]) == {"train", "dev", "test"}


def test_manifest_matches_what_the_loader_reads():
    folder = data_dir() / "ddtp-topic"
    for language, splits in manifest()["task"].items():
        for split, entry in splits.items():
            assert hashlib.sha256(lzma.open(folder / entry["file"]).read()).hexdigest() == entry["sha256"]
            rows = read_task(BUNDLED, language, split)
            assert len(rows) == entry["count"]
            assert Counter(r["label"] for r in rows) == entry["classes"]
    for language, entry in manifest()["corpus"].items():
        assert hashlib.sha256(lzma.open(folder / entry["file"]).read()).hexdigest() == entry["sha256"]
        assert len(corpus(language)) == entry["docs"]


def test_target_labels_are_training_labels():
    train_labels = {r["label"] for r in read_task(BUNDLED, "en", "train")}
    assert len(train_labels) == 8
    for language in languages(BUNDLED):
        for split in ("dev", "test"):
            read_task(BUNDLED, language, split, labels=train_labels)  # raises on an unseen label


def test_no_dev_or_test_text_in_any_corpus_or_english_train():
    held_out = {
        normalise(r["text"]) for language in languages(BUNDLED) for split in ("dev", "test") for r in read_task(BUNDLED, language, split)
    }
    train = {normalise(r["text"]) for r in read_task(BUNDLED, "en", "train")}
    assert not held_out & train
    for language in languages(BUNDLED):
        leaked = held_out & {normalise(doc) for doc in corpus(language)}
        assert not leaked, f"{language}: {sorted(leaked)[:3]}"


def test_corpus_stops_at_max_docs():
    assert read_corpus(BUNDLED, "de", max_docs=7) == corpus("de")[:7]


# --- Hugging Face datasets, offline, on local folders in the hub's layout ----------------------


def test_hf_xnli_layout(hub_folder):
    write, datasets = hub_folder
    features = datasets.Features(
        {
            "premise": datasets.Value("string"),
            "hypothesis": datasets.Value("string"),
            "label": datasets.ClassLabel(names=["entailment", "neutral", "contradiction"]),
        }
    )
    split = {"premise": ["Er schläft.", "Sie liest."], "hypothesis": ["Er ist wach.", "Sie liest."], "label": [2, 0]}
    folder = write("xnli", {lang: {"train": split, "validation": split, "test": split} for lang in ("de", "en")}, features)
    rows = read_task(f"hf:{folder}", "de", "dev")  # dev is the hub's "validation"
    assert rows[0] == {"text": "Er schläft.", "text_pair": "Er ist wach.", "label": "contradiction"}
    train_labels = {r["label"] for r in read_task(f"hf:{folder}", "en", "train")}
    assert len(read_task(f"hf:{folder}", "de", "test", labels=train_labels)) == 2
    assert languages(f"hf:{folder}") == ["de", "en"]


def test_hf_pawsx_layout(hub_folder):
    write, datasets = hub_folder
    features = datasets.Features(
        {
            "id": datasets.Value("int32"),
            "sentence1": datasets.Value("string"),
            "sentence2": datasets.Value("string"),
            "label": datasets.ClassLabel(names=["0", "1"]),
        }
    )
    split = {"id": [1], "sentence1": ["A は B だ。"], "sentence2": ["B は A だ。"], "label": [1]}
    folder = write("paws-x", {"ja": {"test": split}}, features)
    assert read_task(f"hf:{folder}", "ja", "test") == [{"text": "A は B だ。", "text_pair": "B は A だ。", "label": "1"}]


def test_hf_corpora_stream_and_stop(hub_folder):
    write, datasets = hub_folder
    cc100 = write(
        "cc100",
        {"sw": {"train": {"id": ["0", "1", "2", "3"], "text": ["Habari ya asubuhi.", "", "Karibu sana.", "Asante."]}}},
        datasets.Features({"id": datasets.Value("string"), "text": datasets.Value("string")}),
    )
    assert read_corpus(f"hf:{cc100}", "sw") == ["Habari ya asubuhi.", "Karibu sana.", "Asante."]
    assert read_corpus(f"hf:{cc100}", "sw", max_docs=2) == ["Habari ya asubuhi.", "Karibu sana."]

    article = {
        "id": ["1"],
        "url": ["https://de.wikipedia.org/wiki/Alan_Turing"],
        "title": ["Alan Turing"],
        "text": ["Alan Mathison Turing war ein britischer Logiker."],
    }
    wiki = write("wikipedia", {"20231101.de": {"train": article}}, datasets.Features({k: datasets.Value("string") for k in article}))
    source = f"hf:{wiki}:20231101.{{lang}}"
    assert read_corpus(source, "de") == article["text"]
    assert languages(source) == ["de"]


def test_hf_unreachable_is_one_line_error(monkeypatch):
    pytest.importorskip("datasets")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(DataError, match=r"^hf:/nonexistent/xnli \[de/test\]: [^\n]*$"):
        read_task("hf:/nonexistent/xnli", "de", "test")
    assert "de" in languages("hf:xnli") and "zh" in languages("hf:cc100")  # cc100 spells it zh-Hans


def test_hf_aliases_name_parquet_repositories():
    """Every shipped alias reads a repository datasets 4+ loads: parquet on its main branch, or (CC100,
    a script dataset) the hub's parquet export of it, one folder per language."""
    resolved = {alias: data._hf(f"hf:{alias}") for alias in data.HF_ALIASES}
    assert resolved["cc100"] == ("statmt/cc100", "{lang}") and data.HF_PARQUET_EXPORT["statmt/cc100"] == "refs/convert/parquet"
    assert resolved["xnli"] == ("facebook/xnli", "{lang}") and resolved["wikipedia"] == ("wikimedia/wikipedia", "20231101.{lang}")
    assert resolved["mlqa"][0] == resolved["xquad"][0] == "google/xtreme"
    assert not {path for path, _ in resolved.values()} & set(data.HF_SCRIPT_ONLY)


def test_hf_parquet_export_layout_reads_by_language(tmp_path, monkeypatch):
    """The export's layout ({config}/train or {config}/partial-train, parquet) read the way hf:cc100 reads it."""
    datasets = pytest.importorskip("datasets")
    monkeypatch.setattr(datasets.config, "HF_DATASETS_CACHE", tmp_path / "cache")
    root = tmp_path / "cc100"
    for folder, texts in {"de/partial-train": ["Guten Morgen.", "", "Danke."], "zh-Hans/train": ["你好。"]}.items():
        (root / folder).mkdir(parents=True)
        datasets.Dataset.from_dict({"id": [str(i) for i in range(len(texts))], "text": texts}).to_parquet(
            str(root / folder / "0000.parquet")
        )
    monkeypatch.setitem(data.HF_ALIASES, "cc100", (str(root), "{lang}"))
    monkeypatch.setitem(data.HF_PARQUET_EXPORT, str(root), "refs/convert/parquet")
    monkeypatch.setitem(data.HF_CODES, str(root), {"zh": "zh-Hans"})
    assert read_corpus("hf:cc100", "de") == ["Guten Morgen.", "Danke."]
    assert read_corpus("hf:cc100", "zh") == ["你好。"]


def test_script_only_datasets_are_named_with_the_fix(tmp_path):
    with pytest.raises(
        DataError,
        match=r"^hf:facebook/mlqa: facebook/mlqa is a loading-script dataset, which "
        r"datasets 4 and later refuse; use hf:mlqa",
    ):
        data.check_loadable("hf:facebook/mlqa")
    folder = tmp_path / "oldcorpus"
    folder.mkdir()
    (folder / "oldcorpus.py").write_text("import datasets\n")
    with pytest.raises(DataError, match=r"oldcorpus is a loading-script dataset.*convert_to_parquet"):
        read_corpus(f"hf:{folder}", "de")
    data.check_loadable("hf:cc100")  # the alias reads the parquet export: no complaint


# --- local files and their errors --------------------------------------------------------------


def write_task(tmp_path, split: str, lines: list[str], lang: str = "de", opener=open) -> str:
    (tmp_path / lang).mkdir(exist_ok=True)
    with opener(tmp_path / lang / f"{split}.jsonl", "wt", encoding="utf-8") as f:
        f.write("".join(line + "\n" for line in lines))
    return str(tmp_path / "{lang}" / "{split}.jsonl")


def test_local_task_and_compressed_corpus(tmp_path):
    lines = ['{"text": "a", "label": 1}', "", '{"text": "b", "label": "x", "text_pair": "c"}']
    source = write_task(tmp_path, "train", lines)
    assert read_task(source, "de", "train") == [{"text": "a", "label": "1"}, {"text": "b", "label": "x", "text_pair": "c"}]
    assert languages(source) == ["de"]
    with gzip.open(tmp_path / "de.txt.gz", "wt", encoding="utf-8") as f:
        f.write("eins\n\nzwei\n")
    with lzma.open(tmp_path / "fr.txt.xz", "wt", encoding="utf-8") as f:
        f.write("un\n")
    assert read_corpus(str(tmp_path / "{lang}.txt.gz"), "de") == ["eins", "zwei"]
    assert read_corpus(str(tmp_path / "{lang}.txt.xz"), "fr") == ["un"]


@pytest.mark.parametrize(
    "line, message",
    [
        ("{not json", "not JSON"),
        ('{"text": "no label"}', 'needs a string "text" and a "label"'),
        ('{"label": "x"}', 'needs a string "text" and a "label"'),
    ],
)
def test_bad_line_names_file_and_line(tmp_path, line, message):
    source = write_task(tmp_path, "train", ['{"text": "ok", "label": "x"}', line])
    with pytest.raises(DataError, match=rf"de/train\.jsonl:2: {message}"):
        read_task(source, "de", "train")


def test_missing_file_empty_split_and_unseen_label(tmp_path):
    source = write_task(tmp_path, "test", ['{"text": "a", "label": "x"}', '{"text": "b", "label": "y"}'])
    with pytest.raises(DataError, match=r"fr/test\.jsonl: no such file"):
        read_task(source, "fr", "test")
    write_task(tmp_path, "dev", [])
    with pytest.raises(DataError, match=r"de/dev\.jsonl: empty split"):
        read_task(source, "de", "dev")
    with pytest.raises(DataError, match=r"de/test\.jsonl:2: label 'y' not among the training labels"):
        read_task(source, "de", "test", labels={"x"})
    with pytest.raises(DataError, match=r"must contain \{lang\} and \{split\}"):
        read_task(str(tmp_path / "de.jsonl"), "de", "test")
    with pytest.raises(DataError, match=r"bundled:nope: no .*manifest\.json"):
        languages("bundled:nope")


def test_cipher_control_is_english_in_another_alphabet(toy_data):
    from minimodel.text.cipher import encipher

    english, ciphered = (read_task(toy_data["task"], lang, "dev") for lang in ("en", "cipher-en"))
    assert [x["label"] for x in ciphered] == [x["label"] for x in english]
    assert [x["text"] for x in ciphered] == [encipher(x["text"]) for x in english]
    words = {w for x in english for w in x["text"].split()}
    # one word, one new string: the permutation loses nothing and shares no word with English
    assert len({encipher(w) for w in words}) == len(words) and not words & {encipher(w) for w in words}
    assert read_corpus(toy_data["corpus"], "cipher-en", 5) == [encipher(x) for x in read_corpus(toy_data["corpus"], "en", 5)]


def test_dev_sample_is_random_fixed_and_in_order():
    from minimodel.text.data import sample

    items = list(range(1000))
    picked = sample(items, 100)
    assert picked == sample(items, 100) == sorted(picked) and len(set(picked)) == 100
    assert max(picked) > 900 and min(picked) < 100  # spread over the file, not its first lines
    assert sample(items, 0) == items and sample(items, 5000) == items
