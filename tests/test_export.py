"""Export, predict and the model registry on tiny trials (a classifier and a QA model): the exported
folder is plain transformers and scores exactly what the trial's zero-shot evaluation scored."""

from __future__ import annotations

import io
import json
import re
import subprocess
import sys

import pytest
import yaml

from minimodel import cli
from minimodel.text import data, qa
from minimodel.experiment import export, pipeline
from minimodel.experiment.spec import load_spec
from tests.synthetic_qa import write_qa

pytestmark = pytest.mark.slow  # every test exports a finished trial of each kind

TINY = {
    "precision": "fp32",  # the exported model runs in fp32 under plain transformers: compare like with like
    "model": {"name": "scratch", "family": "bert", "hidden": 32, "layers": 2, "heads": 2, "ffn": 64, "vocab_size": 300},
    "pretrain": {"steps": 40, "lr": 3e-3, "batch_size": 16},
    "data": {"seq_len": 32, "max_docs": 500, "max_eval": 40},
    "finetune": {"steps": 30, "lr": 2e-3, "batch_size": 16},
    "adapt": {"language": "xx", "method": "standard", "vocab_size": 300, "lr": 3e-2, "steps": 20, "eval_every": 10, "batch_size": 16},
}


def write_spec(path, name: str, storage, corpus: str, task: str, uri: str) -> str:
    trial = json.loads(json.dumps(TINY))
    trial["data"].update(source_corpus=corpus, target_corpus=corpus, task=task)
    path.write_text(
        yaml.safe_dump(
            {"name": name, "storage": str(storage), "tracking_uri": uri, "trial": trial, "languages": ["xx"], "methods": ["standard"]}
        )
    )
    return str(path)


@pytest.fixture(scope="module")
def trials(tmp_path_factory, toy_data):
    """A finished tiny trial per kind of task, each from its own spec, and an empty sqlite MLflow store."""
    root = tmp_path_factory.mktemp("export")
    qa_data = write_qa(root / "qa", train=120, dev=30, test=40)
    uri = f"sqlite:///{root / 'mlflow.db'}"
    specs = {
        "topic": write_spec(root / "topic.yaml", "topic", root / "runs", toy_data["corpus"], toy_data["task"], uri),
        "qa": write_spec(root / "qa.yaml", "qa", root / "runs", qa_data["corpus"], qa_data["task"], uri),
    }
    out = {"root": root, "uri": uri}
    for kind, path in specs.items():
        spec = load_spec(path)
        cfg = spec.config("standard", "xx")
        out[kind] = {"spec": path, "cfg": cfg, "cache": f"{spec.storage}/cache", "result": pipeline.run_trial(cfg, f"{spec.storage}/cache")}
    return out


def run_cli(capsys, *argv: str) -> tuple[int, str, str]:
    with pytest.raises(SystemExit) as exit_info:
        cli.main(list(argv))
        raise SystemExit(0)
    captured = capsys.readouterr()
    return exit_info.value.code, captured.out, captured.err


# Runs in a fresh interpreter with transformers only: the export must not need minimodel.
PLAIN = """
import json, sys
import torch
from transformers import pipeline
torch.set_num_threads(1)  # tiny model, shared cores: more threads only contend
folder, texts = sys.argv[1], json.loads(sys.stdin.read())
classify = pipeline("text-classification", model=folder, device="cpu")
print(json.dumps([r["label"] for r in classify(texts, batch_size=64)]))
assert not [m for m in sys.modules if m.startswith("minimodel")]
"""


def test_exported_classifier_is_plain_transformers_and_scores_as_the_trial(trials, capsys, tmp_path):
    t = trials["topic"]
    folder = export.export(t["cfg"], t["cache"], tmp_path / "topic", mlm=True)
    test = data.read_task(t["cfg"]["data"]["task"], "xx", "test")
    run = subprocess.run(
        [sys.executable, "-c", PLAIN, str(folder)],
        input=json.dumps([x["text"] for x in test]),
        capture_output=True,
        text=True,
        timeout=300,
        cwd=tmp_path,
    )
    assert run.returncode == 0, run.stderr[-2000:]
    labels = json.loads(run.stdout)
    accuracy = sum(p == x["label"] for p, x in zip(labels, test)) / len(test)
    assert round(accuracy, 4) == t["result"]["test_accuracy"]  # the trial's final zero-shot test accuracy
    assert [p["label"] for p in export.predict(folder, test)] == labels
    from transformers import AutoModelForMaskedLM

    assert AutoModelForMaskedLM.from_pretrained(folder / "mlm").get_input_embeddings().weight.shape[0] == t["result"]["vocab_size"]
    card = (folder / "README.md").read_text()
    assert "pipeline_tag: text-classification" in card and "## Zero-shot scores" in card and "## Compute" in card
    assert f"| accuracy | {t['result']['accuracy']:.4f} | {t['result']['test_accuracy']:.4f} |" in card


def test_exported_qa_model_scores_as_the_trial_and_its_card_code_runs(trials, tmp_path):
    from transformers import AutoModelForQuestionAnswering, AutoTokenizer

    t = trials["qa"]
    folder = export.export(t["cfg"], t["cache"], tmp_path / "qa")
    model, tokenizer = AutoModelForQuestionAnswering.from_pretrained(folder), AutoTokenizer.from_pretrained(folder)
    test = data.read_task(t["cfg"]["data"]["task"], "xx", "test")
    scores = qa.evaluate(model, qa.windows(tokenizer, test, t["cfg"]["data"]["seq_len"], "xx"), tokenizer, precision="fp32")
    assert scores == {"accuracy": t["result"]["test_accuracy"], "exact_match": t["result"]["test_exact_match"]}
    card = (folder / "README.md").read_text()
    assert "pipeline_tag: question-answering" in card and "| F1 |" in card and "| exact match |" in card
    code = re.search(r"```python\n(.*?)```", card, re.S).group(1).replace("THIS_FOLDER", str(folder))
    row = test[0]
    script = f"question, context = {row['question']!r}, {row['context']!r}\n{code}\nprint(answer)"
    run = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300, cwd=tmp_path)
    assert run.returncode == 0, run.stderr[-2000:]
    assert run.stdout.strip() in row["context"]


def test_predict_reads_arguments_or_jsonl(trials, capsys, tmp_path, monkeypatch):
    topic = export.export(trials["topic"]["cfg"], trials["topic"]["cache"], tmp_path / "topic")
    code, out, _ = run_cli(capsys, "predict", str(topic), "w1 gam0 gam1", "sci2 w3")
    rows = [json.loads(line) for line in out.splitlines()]
    assert code == 0 and [r["text"] for r in rows] == ["w1 gam0 gam1", "sci2 w3"] and all("label" in r for r in rows)
    qa_folder = export.export(trials["qa"]["cfg"], trials["qa"]["cache"], tmp_path / "qa")
    row = data.read_task(trials["qa"]["cfg"]["data"]["task"], "xx", "dev")[0]
    monkeypatch.setattr(sys, "stdin", io.StringIO(json.dumps({"question": row["question"], "context": row["context"]}) + "\n"))
    code, out, _ = run_cli(capsys, "predict", str(qa_folder))
    answer = json.loads(out)
    assert code == 0 and row["context"][answer["start"] : answer["end"]] == answer["answer"]
    monkeypatch.setattr(sys, "stdin", io.StringIO('{"text": "no question here"}\n'))
    code, _, err = run_cli(capsys, "predict", str(qa_folder))
    assert code == 2 and "input 1: a question-answering model needs strings 'question', 'context'" in err
    code, _, err = run_cli(capsys, "predict", str(tmp_path / "nothing"), "text")
    assert code == 2 and err.endswith("nothing: not an exported model (no config.json there)\n")


def test_export_of_an_unknown_language_or_trial_is_one_line(trials, capsys, tmp_path):
    spec = trials["topic"]["spec"]
    for argv, message in [
        (["--language", "zz"], r"--language zz: the spec's languages are xx"),
        (["--language", "xx", "--set", "trial.adapt.steps=21"], r"no finished trial standard xx seed 0 in .*run it first"),
        (["--language", "xx", "--register", "m"], r"--register: needs --trial ID or --best"),
    ]:
        code, _, err = run_cli(capsys, "export", spec, "--out", str(tmp_path / "x"), *argv)
        assert code == 2 and re.fullmatch(rf"minimodel: error: [^\n]*{message}[^\n]*\n", err), err


def log_trial(uri: str, experiment: str, root, cfg: dict, key: str, accuracy: float) -> str:
    """A finished trial run as trainables/trial.py logs it: tags, the flattened config, its accuracy."""
    from minimodel.experiment import arms
    from trainables import tracking

    sweep = tracking.start_sweep(uri, experiment, str(root), {}, resume=True)
    a = cfg["adapt"]
    tags = {
        "kind": "trial",
        "key": key,
        "language": a["language"],
        "method": a["method"],
        "seed": str(a["seed"]),
        "arm": arms.arm(cfg),
        "adapt_key": pipeline.stage_keys(cfg)["adapt"],
    }
    run_id = tracking.start_child(sweep, key, tags, {"method": a["method"], **tracking.flatten(cfg)})
    tracking.log_metrics(sweep, run_id, {"accuracy": accuracy})
    tracking.end_run(sweep, run_id)
    return run_id


def test_best_trial_is_logged_and_registered_from_its_run(trials, capsys, tmp_path):
    import mlflow.transformers
    from mlflow.tracking import MlflowClient
    from transformers import AutoModelForQuestionAnswering

    t, uri = trials["topic"], trials["uri"]
    ids = {
        seed: log_trial(uri, "topic", trials["root"], {**t["cfg"], "adapt": {**t["cfg"]["adapt"], "seed": seed}}, f"trial_{seed}", accuracy)
        for seed, accuracy in ((0, 0.9), (1, 0.5))
    }  # seed 1 was never run: --best must pick seed 0
    code, out, err = run_cli(
        capsys, "export", t["spec"], "--language", "xx", "--best", "--register", "topic-xx", "--out", str(tmp_path / "best")
    )
    assert code == 0, err
    assert "registered model 'topic-xx' version 1" in out
    client = MlflowClient(tracking_uri=uri)
    version = client.get_model_version("topic-xx", "1")
    assert version.run_id == ids[0] and version.tags["language"] == "xx" and version.tags["trial"] == "trial_0"
    assert json.loads((tmp_path / "best" / "trial.json").read_text())["mlflow_run_id"] == ids[0]
    mlflow.set_tracking_uri(uri)
    classify = mlflow.transformers.load_model("models:/topic-xx/1")
    texts = ["w1 gam0 gam1", "sci2 w3"]
    assert [r["label"] for r in classify(texts)] == [p["label"] for p in export.predict(tmp_path / "best", [{"text": x} for x in texts])]

    code, _, err = run_cli(capsys, "export", t["spec"], "--language", "xx", "--trial", "trial_1", "--out", str(tmp_path / "one"))
    assert code == 2 and "no finished trial standard xx seed 1" in err
    code, _, err = run_cli(capsys, "export", t["spec"], "--language", "xx", "--trial", "nope")
    assert code == 2 and "--trial nope: no trial run with that id in experiment 'topic'" in err

    q = trials["qa"]
    run_id = log_trial(uri, "qa", trials["root"], q["cfg"], "trial_qa", 0.4)
    code, out, err = run_cli(
        capsys, "export", q["spec"], "--language", "xx", "--trial", "trial_qa", "--register", "qa-xx", "--out", str(tmp_path / "qa")
    )
    assert code == 0, err
    version = client.get_model_version("qa-xx", "1")
    assert version.run_id == run_id
    folder = mlflow.artifacts.download_artifacts(version.source, dst_path=str(tmp_path / "downloaded"))
    assert AutoModelForQuestionAnswering.from_pretrained(folder).config.architectures == ["BertForQuestionAnswering"]
