"""Extractive QA: MLQA/SQuAD scoring, QA data in every form, windows over long contexts, segment ids,
and the cipher QA task end to end (tests/synthetic_qa.py): an English-trained span head reads the
ciphered language once its embeddings are relearned."""

from __future__ import annotations

import json
import shlex
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
from torch import nn

from minimodel.text import data, qa, qa_metric, tasks
from minimodel.experiment import pipeline
from minimodel.text.cipher import encipher
from minimodel.experiment.config import trial_config
from minimodel.text.data import DataError
from minimodel.method.models import empty_tokenizer
from minimodel.experiment.spec import load_spec
from tests.synthetic_qa import squad_json, write_qa


# --- scoring ---------------------------------------------------------------------------------


def test_mlqa_normalisation_per_language():
    assert qa_metric.tokens("The Cat, sat!", "en") == ["cat", "sat"]
    assert qa_metric.tokens("Der Hund «bellt» – laut.", "de") == ["hund", "bellt", "laut"]  # Unicode punctuation too
    assert qa_metric.tokens("北京大学 is big", "zh") == ["北", "京", "大", "学", "is", "big"]
    assert qa_metric.tokens("الكتاب", "ar") == ["كتاب"]
    assert qa_metric.tokens("the cat", "fr") == ["the", "cat"]  # MLQA lists no French articles
    assert qa_metric.tokens(encipher("The cat"), "cipher-en") == [encipher("cat")]  # the control scores like English


def test_exact_match_and_f1_as_the_official_scripts_compute_them():
    assert qa_metric.f1("the big cat", ["a cat"], "en") == pytest.approx(2 / 3)  # precision 1/2, recall 1
    assert qa_metric.exact_match("Cat.", ["dog", "the cat"], "en") == 1.0  # the best gold answer counts
    assert qa_metric.f1("", ["cat"], "en") == 0.0
    assert qa_metric.scores(["cat", "dog"], [["cat"], ["a cat"]], "en") == {"accuracy": 0.5, "exact_match": 0.5}


# --- data ------------------------------------------------------------------------------------


def qa_row(context: str, answer: str, qid: str = "q1", question: str = "which?") -> dict:
    return {"id": qid, "context": context, "question": question, "answers": {"text": [answer], "answer_start": [context.index(answer)]}}


def test_squad_json_and_jsonl_rows_are_qa(tmp_path):
    rows = [qa_row("Berlin is big.", "Berlin"), qa_row("Paris is old.", "old", "q2")]
    (tmp_path / "en").mkdir()
    (tmp_path / "en" / "dev.json").write_text(squad_json(rows))
    (tmp_path / "en" / "dev.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    for template in ("{lang}/{split}.json", "{lang}/{split}.jsonl"):
        read = data.read_task(str(tmp_path / template), "en", "dev")
        assert read == rows and data.is_qa(read)
    ciphered = data.read_task(str(tmp_path / "{lang}/{split}.json"), "cipher-en", "dev")
    assert all(
        r["context"][s : s + len(t)] == t for r in ciphered for t, s in zip(r["answers"]["text"], r["answers"]["answer_start"])
    )  # offsets still hold
    assert ciphered[1]["answers"]["text"] == [encipher("old")]
    assert not data.is_qa([{"text": "a", "label": "x"}])


def test_bad_qa_files_name_file_and_line(tmp_path):
    (tmp_path / "en").mkdir()
    shifted = {**qa_row("Berlin is big.", "big"), "answers": {"text": ["big"], "answer_start": [3]}}
    (tmp_path / "en" / "test.jsonl").write_text(json.dumps(qa_row("a b", "b")) + "\n" + json.dumps(shifted) + "\n")
    with pytest.raises(DataError, match=r"en/test\.jsonl:2: answer 'big' is not at answer_start 3"):
        data.read_task(str(tmp_path / "{lang}/{split}.jsonl"), "en", "test")
    (tmp_path / "en" / "test.json").write_text(json.dumps({"data": [{"title": "no paragraphs"}]}))
    with pytest.raises(DataError, match=r"en/test\.json: not SQuAD format"):
        data.read_task(str(tmp_path / "{lang}/{split}.json"), "en", "test")


def test_hf_mlqa_xquad_and_squad_offline(hub_folder, monkeypatch):
    write, datasets = hub_folder
    features = datasets.Features(
        {
            "id": datasets.Value("string"),
            "title": datasets.Value("string"),
            "context": datasets.Value("string"),
            "question": datasets.Value("string"),
            "answers": datasets.Sequence({"text": datasets.Value("string"), "answer_start": datasets.Value("int32")}),
        }
    )

    def split(n: int, lang: str) -> dict:
        rows = [qa_row(f"{lang} context {i} here", f"{i}", f"id{i}") for i in range(n)]
        return {
            "id": [r["id"] for r in rows],
            "title": ["t"] * n,
            "context": [r["context"] for r in rows],
            "question": [r["question"] for r in rows],
            "answers": [r["answers"] for r in rows],
        }

    mlqa = write("mlqa", {f"MLQA.{x}.{x}": {"test": split(3, x), "validation": split(2, x)} for x in ("de", "en")}, features)
    xquad = write("xquad", {"XQuAD.de": {"validation": split(40, "de")}}, features)
    squad = write("squad", {"plain_text": {"train": split(4, "en")}}, features)
    aliases = {"mlqa": (mlqa, "MLQA.{lang}.{lang}"), "xquad": (xquad, "XQuAD.{lang}"), "squad": (squad, "plain_text")}
    monkeypatch.setattr(data, "HF_ALIASES", {**data.HF_ALIASES, **aliases})
    monkeypatch.setattr(data, "HF_TRAIN_FROM", {aliases["mlqa"]: "hf:squad", aliases["xquad"]: "hf:squad"})
    monkeypatch.setattr(data, "HF_HALVED", {aliases["xquad"]: "validation"})
    monkeypatch.setattr(data, "HF_LANGUAGES", {**data.HF_LANGUAGES, squad: "en"})

    test = data.read_task("hf:mlqa", "de", "test")
    assert data.is_qa(test) and test[1] == qa_row("de context 1 here", "1", "id1")
    assert len(data.read_task("hf:mlqa", "de", "dev")) == 2  # dev is the hub's validation split
    assert [r["context"] for r in data.read_task("hf:mlqa", "en", "train")] == [f"en context {i} here" for i in range(4)]
    with pytest.raises(DataError, match=r"hf:squad \[de/train\]: offers en only"):
        data.read_task("hf:squad", "de", "train")
    dev, test = (data.read_task("hf:xquad", "de", s) for s in ("dev", "test"))
    assert {r["id"] for r in dev} | {r["id"] for r in test} == {f"id{i}" for i in range(40)}
    assert not {r["id"] for r in dev} & {r["id"] for r in test} and 10 < len(dev) < 30


def test_the_paper_spec_has_an_mlqa_variant_that_validates_offline():
    paper = Path(__file__).resolve().parents[1] / "sweeps" / "paper.yaml"
    lines = paper.read_text().splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("# MLQA"))
    args = shlex.split(" ".join(line.lstrip("# ").rstrip("\\ ") for line in lines[start + 1 : start + 3]))
    spec = load_spec(paper, [args[i + 1] for i, arg in enumerate(args) if arg == "--set"])
    assert spec.name == "paper-mlqa" and spec.bases["standard"]["data"]["task"] == "hf:mlqa"
    assert set(spec.languages) <= set(data.languages("hf:mlqa"))


# --- windows, spans, segment ids --------------------------------------------------------------


@pytest.fixture(scope="module")
def tokenizer():
    words = [f"a{i}" for i in range(80)]
    return empty_tokenizer("bert").train_new_from_iterator([" ".join(words), "which one ?"] * 20, 200)


def test_long_contexts_become_overlapping_windows_that_hold_the_answer(tokenizer):
    context = " ".join(f"a{i}" for i in range(60))
    items = [qa_row(context, "a40 a41 a42"), qa_row(context, "a3")]
    windows = qa.windows(tokenizer, items, seq_len=24)
    assert windows.example.count(0) >= 3 and len(windows) == 2
    features = qa.train_set(tokenizer, None, items, seq_len=24)
    found = []
    for f, i, offsets in zip(features, windows.example, windows.offsets):
        assert f["token_type_ids"][1] == 0 and f["token_type_ids"][-2] == 1  # question, then context segment
        if f["start_positions"]:
            found.append(context[offsets[f["start_positions"]][0] : offsets[f["end_positions"]][1]])
    assert "a40 a41 a42" in found and "a3" in found and set(found) == {"a40 a41 a42", "a3"}


class MarksAnswer(nn.Module):
    """A stand-in span model: high start logit on one token id, high end logit on another."""

    def __init__(self, start_id: int, end_id: int):
        super().__init__()
        self.ids, self.weight = (start_id, end_id), nn.Parameter(torch.zeros(1))

    def forward(self, input_ids, **_):
        return SimpleNamespace(start_logits=(input_ids == self.ids[0]).float() * 10, end_logits=(input_ids == self.ids[1]).float() * 10)


def test_prediction_is_the_best_span_over_all_windows(tokenizer):
    context = " ".join(f"a{i}" for i in range(60))
    windows = qa.windows(tokenizer, [qa_row(context, "a50 a51 a52")], seq_len=24, language="en")
    model = MarksAnswer(*tokenizer.convert_tokens_to_ids(["a50", "a52"]))
    [best] = qa.predict(model, windows, tokenizer)
    assert best["answer"] == "a50 a51 a52" and context[best["start"] : best["end"]] == best["answer"]
    assert qa.evaluate(model, windows, tokenizer) == {"accuracy": 1.0, "exact_match": 1.0}


def test_sentence_pairs_keep_their_segment_ids(tokenizer):
    [pair] = tasks.encode(tokenizer, [{"text": "a1 a2", "text_pair": "a3", "label": "x"}], ["x"], 16)
    assert pair["token_type_ids"] == [0, 0, 0, 0, 1, 1]
    batch = tasks.collate(tokenizer)([pair, {**pair, "input_ids": pair["input_ids"][:3], "token_type_ids": [0, 0, 0]}])
    assert batch["token_type_ids"][0, :6].tolist() == [0, 0, 0, 0, 1, 1] and batch["token_type_ids"].shape[1] == 16


# --- end to end on the cipher QA task ---------------------------------------------------------


def qa_config(sources: dict, **adapt) -> dict:
    return trial_config(
        {
            "model": {"name": "scratch", "family": "bert", "hidden": 64, "layers": 2, "heads": 4, "ffn": 128, "vocab_size": 400},
            "pretrain": {"steps": 1500, "lr": 3e-3, "batch_size": 32},
            "data": {
                "source_corpus": sources["corpus"],
                "task": sources["task"],
                "target_corpus": sources["corpus"],
                "seq_len": 32,
                "max_docs": 3000,
                "max_eval": 150,
            },
            "finetune": {"steps": 600, "lr": 2e-3, "batch_size": 32},
            "adapt": {
                "language": "xx",
                "method": "standard",
                "init": "overlap",
                "vocab_size": 400,
                "lr": 3e-2,
                "steps": 200,
                "eval_every": 50,
                **adapt,
            },
        }
    )


@pytest.fixture(scope="module")
def qa_trial(tmp_path_factory, stage_cache):
    sources = write_qa(tmp_path_factory.mktemp("qa"))
    cfg, points = qa_config(sources), []
    result = pipeline.run_trial(cfg, stage_cache, points.append)
    return {"cfg": cfg, "cache": stage_cache, "result": result, "points": points, "sources": sources}


@pytest.mark.slow
def test_cipher_qa_recovers_most_of_english_f1(qa_trial):
    result, points = qa_trial["result"], qa_trial["points"]
    print(
        {k: result[k] for k in ("english_accuracy", "english_exact_match", "accuracy", "exact_match", "test_accuracy", "test_exact_match")},
        "step 0:",
        {k: points[0][k] for k in ("test_accuracy", "test_exact_match")},
    )
    assert result["english_accuracy"] > 0.9 and result["english_exact_match"] > 0.75
    assert points[0]["test_accuracy"] < 0.55  # only the shared common words and "." are known
    assert result["test_accuracy"] > 0.75 and result["test_accuracy"] > points[0]["test_accuracy"] + 0.25
    assert result["test_exact_match"] > points[0]["test_exact_match"] + 0.25
    assert "macro_f1" not in result and "majority_accuracy" not in result  # QA has neither


@pytest.mark.slow
def test_qa_stages_save_a_span_model_and_count_windows(qa_trial):
    from transformers import AutoModelForMaskedLM, AutoModelForQuestionAnswering, AutoTokenizer

    cfg, cache = qa_trial["cfg"], qa_trial["cache"]
    folder = pipeline.stage_dir("finetune", cfg, cache) / qa.FOLDER
    model = AutoModelForQuestionAnswering.from_pretrained(folder)
    source = pipeline.stage_dir("source", cfg, cache) / "model"
    assert torch.equal(
        model.bert.embeddings.word_embeddings.weight, AutoModelForMaskedLM.from_pretrained(source).bert.embeddings.word_embeddings.weight
    )  # frozen
    test = data.read_task(qa_trial["sources"]["task"], "en", "test")
    windows = qa.windows(AutoTokenizer.from_pretrained(folder), test, cfg["data"]["seq_len"])
    assert len(windows.features) > len(test)  # some contexts are longer than seq_len: windows were needed
