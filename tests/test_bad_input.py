"""Bad input through the real CLI: each kind stops with exit 2 and one line naming the culprit, before
anything starts (no Ray for what validation can see; the cluster's resources once Ray is up).

The README's "Bad input" table lists the same kinds, tried on sweeps/demo.yaml.
"""

from __future__ import annotations

import json
import re
import shlex
import shutil
from pathlib import Path

import pytest
import ray
import yaml

from minimodel import cli
from minimodel.experiment.checks import ResourceError, check_resources
from minimodel.experiment.spec import load_spec
from trainables.sweep import cluster_nodes
from tests.ports import free_port

TINY = {
    "model": {"name": "scratch", "family": "bert", "hidden": 32, "layers": 3, "heads": 2, "ffn": 64, "vocab_size": 300},
    "pretrain": {"steps": 10},
    "data": {"seq_len": 32, "max_docs": 600, "max_eval": 60},
    "adapt": {"vocab_size": 300, "steps": 20, "eval_every": 10, "init": "random"},
}


@pytest.fixture(scope="module")
def bad(toy_data, tmp_path_factory) -> dict[str, str]:
    """A valid toy spec, and beside it damaged copies of its data and models of the wrong kind."""
    root = tmp_path_factory.mktemp("bad")
    data = root / "data"
    shutil.copytree(toy_data["root"], data)
    task = "{lang}/{split}.jsonl"
    for name in ("badjson", "badlabel", "nosplit"):
        shutil.copytree(data / "task", root / name)
    lines = (root / "badjson" / "xx" / "dev.jsonl").read_text().splitlines()
    (root / "badjson" / "xx" / "dev.jsonl").write_text("\n".join(lines[:2] + ['{"text": "q1z w2", "label": '] + lines[2:]))
    lines = (root / "badlabel" / "xx" / "test.jsonl").read_text().splitlines()
    lines[4] = json.dumps({"text": "w1 w2", "label": "cooking"})
    (root / "badlabel" / "xx" / "test.jsonl").write_text("\n".join(lines) + "\n")
    (root / "nosplit" / "xx" / "test.jsonl").unlink()
    (root / "empty").mkdir()
    (root / "empty" / "xx.txt").write_text("\n\n")
    for name, model_type in (("notokenizer", "bert"), ("gpt", "gpt2")):
        (root / name).mkdir()
        (root / name / "config.json").write_text(json.dumps({"model_type": model_type, "num_hidden_layers": 2}))
    (root / "gpt" / "vocab.json").write_text("{}")
    (root / "oldcorpus").mkdir()
    (root / "oldcorpus" / "oldcorpus.py").write_text("import datasets\n")
    (root / "syntax.yaml").write_text("name: toy\nlanguages: [xx\n")
    trial = {
        **TINY,
        "data": {
            **TINY["data"],
            "source_corpus": str(data / "corpus" / "{lang}.txt"),
            "target_corpus": str(data / "corpus" / "{lang}.txt"),
            "task": str(data / "task" / task),
        },
    }
    spec = {
        "name": "toy",
        "storage": str(root / "runs"),
        "tracking_uri": f"sqlite:///{root}/mlflow.db",
        "trial": trial,
        "languages": ["xx"],
        "methods": ["standard", "minipost"],
        "search": {"adapt.depth": {"type": "choice", "values": [1]}},
        "search_alg": "grid",
        "resources": {"cpus": 1},
        "stages": {"workers": 1, "cpus_per_worker": 1},
    }
    (root / "toy.yaml").write_text(yaml.safe_dump(spec))
    return {"root": str(root), "spec": str(root / "toy.yaml"), "task": task}


# (kind, command after `minimodel`, a part of the one line it must print); {root} and {spec} filled in.
CASES = [
    ("YAML syntax", "validate {root}/syntax.yaml", "syntax.yaml: not valid YAML at line 3"),
    ("no spec file", "validate {root}/nospec.yaml", "nospec.yaml: no such spec file"),
    ("unknown key", "validate {spec} --set max_concurent=4", "max_concurent: unknown key; did you mean max_concurrent?"),
    ("unknown trial key", "validate {spec} --set trial.adapt.setps=3", "trial.adapt.setps: unknown key; did you mean trial.adapt.steps?"),
    ("wrong type", "validate {spec} --set trial.adapt.steps=many", "'trial.adapt.steps' must be int, got 'many'"),
    ("negative steps", "validate {spec} --set trial.adapt.steps=-5", "trial.adapt.steps: must be at least 1 (got -5)"),
    ("learning rate 0", "validate {spec} --set trial.adapt.lr=0", "trial.adapt.lr: must be greater than 0 (got 0.0)"),
    ("batch size 0", "validate {spec} --set trial.finetune.batch_size=0", "trial.finetune.batch_size: must be at least 1 (got 0)"),
    ("eval_every > steps", "validate {spec} --set trial.adapt.eval_every=50", "trial.adapt.eval_every: evaluating every 50 steps of 20"),
    ("warmup > 1", "validate {spec} --set trial.adapt.warmup=1.5", "trial.adapt.warmup: must be between 0 and 1 (got 1.5)"),
    (
        "search low > high",
        "validate {spec} --set 'search.adapt.lr={{type: loguniform, low: 0.1, high: 0.01}}'",
        "search.adapt.lr: low 0.1 is greater than high 0.01",
    ),
    (
        "retired key",
        "validate {spec} --set trial.adapt.through_joint=true",
        "trial.adapt.through_joint: retired; MiniJoint's baseline is the arm adapt.method: standard-through-joint",
    ),
    ("--set path that does not exist", "validate {spec} --set trial.adapt.nothing.x=3", "trial.adapt.nothing: unknown key"),
    ("--set into a value", "validate {spec} --set name.first=x", "--set name.first: 'name' is not a mapping"),
    (
        "missing data files",
        "validate {spec} --set trial.data.task=/nowhere/{{lang}}/{{split}}.jsonl",
        "trial.data.task: no file matches /nowhere/{{lang}}/{{split}}.jsonl",
    ),
    ("missing split", "validate {spec} --set trial.data.task={root}/nosplit/{task}", "nosplit/xx/test.jsonl: no such file"),
    (
        "empty corpus",
        "validate {spec} --set trial.data.target_corpus={root}/empty/{{lang}}.txt",
        "trial.data.target_corpus: {root}/empty/xx.txt: empty corpus",
    ),
    ("malformed JSONL", "validate {spec} --set trial.data.task={root}/badjson/{task}", "badjson/xx/dev.jsonl:3: not JSON"),
    (
        "label never trained",
        "validate {spec} --set trial.data.task={root}/badlabel/{task}",
        "badlabel/xx/test.jsonl:5: label 'cooking' not among the training labels",
    ),
    ("unknown language", "validate {spec} --set languages=[xx,zz]", "languages: zz not in"),
    (
        "unknown model",
        "validate {spec} --set trial.model.name=no-such-model-xyz",
        "trial.model.name: no-such-model-xyz is not a local folder, not in the Hugging Face cache",
    ),
    (
        "model without tokenizer",
        "validate {spec} --set trial.model.name={root}/notokenizer --set trial.pretrain.head_steps=5",
        "notokenizer has no tokenizer",
    ),
    (
        "not a masked LM family",
        "validate {spec} --set trial.model.name={root}/gpt --set trial.pretrain.head_steps=5",
        "gpt is a 'gpt2' model; supported masked LMs: bert, roberta, xlm-roberta",
    ),
    (
        "vocabulary beyond the corpus",
        "validate {spec} --set trial.adapt.vocab_size=100000",
        "trial.adapt.vocab_size: 100000 tokens are more than the xx corpus",
    ),
    ("depth >= layers", "validate {spec} --set search.adapt.depth.values=[3]", "search.adapt.depth: 'adapt.depth' must be between 1"),
    ("heads do not divide hidden", "validate {spec} --set trial.model.heads=3", "model.hidden 32 is not a multiple of model.heads 3"),
    (
        "script-only dataset",
        "validate {spec} --set trial.data.task=hf:facebook/mlqa",
        "trial.data.task: hf:facebook/mlqa: facebook/mlqa is a loading-script dataset, which datasets 4 and later refuse; use hf:mlqa",
    ),
    (
        "local loading-script folder",
        "validate {spec} --set trial.data.target_corpus=hf:{root}/oldcorpus",
        "oldcorpus is a loading-script dataset",
    ),
    ("GPUs this machine lacks", "validate {spec} --set resources.gpus=4", "resources.gpus: 4 GPU on one node, but this machine has"),
    ("frontier tolerance out of range", "frontier {spec} --tolerance 2", "--tolerance 2: an accuracy difference"),
    (
        "unreachable tracking server",
        "sweep {spec} --set tracking_uri=http://127.0.0.1:{port}",
        "tracking_uri: cannot reach MLflow at http://127.0.0.1:{port}",
    ),
]


RELAYED = re.compile(r"^\(\S+ pid=\d+(, ip=\S+)?\) ")


def fail(argv: list[str], capsys) -> str:
    """Run the CLI; it must exit 2 with exactly one stderr line, which is returned.

    Lines Ray relays from an earlier test's workers ("(RayTrainWorker pid=...) ...") are not the CLI's
    own and may arrive at any time while this process holds a Ray session: they are left out.
    """
    capsys.readouterr()
    with pytest.raises(SystemExit) as done:
        cli.main(argv)
    err = [line for line in capsys.readouterr().err.strip().splitlines() if not RELAYED.match(line)]
    assert done.value.code == 2 and len(err) == 1 and err[0].startswith("minimodel: error: "), err
    return err[0].removeprefix("minimodel: error: ")


@pytest.mark.parametrize("kind, command, expected", CASES, ids=[c[0] for c in CASES])
def test_bad_input_is_one_line_before_anything_starts(bad, capsys, kind, command, expected):
    ray.shutdown()  # a runtime an earlier test left up would hide one started here
    fill = {**bad, "port": free_port()}
    line = fail(shlex.split(command.format(**fill)), capsys)
    assert expected.format(**fill) in line, line
    assert not ray.is_initialized()  # nothing started
    assert not (Path(bad["root"]) / "runs").exists()  # nothing written


@pytest.mark.slow
def test_the_clusters_resources_are_checked_once_ray_is_up(ray_session, bad, capsys, monkeypatch, tmp_path):
    """`sweep` asks the Ray cluster (here the run's 2-CPU local one) what it offers; nothing runs, no MLflow run."""
    line = fail(["sweep", bad["spec"], "--set", "resources.gpus=1"], capsys)
    assert line.startswith("resources.gpus: 1 GPU on one node, but the Ray cluster has 2 CPU and 0 GPU"), line
    line = fail(["sweep", bad["spec"], "--set", "stages.workers=3"], capsys)
    assert line.startswith("stages: one stage job needs 3 CPU in all, but the Ray cluster has 2 CPU"), line

    # On a `ray up` head, the node types the autoscaler may add (its bootstrap config) count too:
    # a GPU trial is possible before any GPU node is up, a 2-GPU stage worker is not.
    monkeypatch.setenv("HOME", str(tmp_path))
    types = {"head": {"resources": {}, "max_workers": 0}, "gpu": {"resources": {"CPU": 8, "GPU": 1}, "max_workers": 8}}
    (tmp_path / "ray_bootstrap_config.yaml").write_text(yaml.safe_dump({"available_node_types": types}))
    spec = load_spec(bad["spec"], ["resources.gpus=1"])
    check_resources(spec.resources, spec.stages, cluster_nodes(), "the Ray cluster")
    spec = load_spec(bad["spec"], ["stages.gpus_per_worker=2"])
    with pytest.raises(
        ResourceError,
        match="stages.gpus_per_worker: 2 GPU on one node, but the Ray cluster has 10 CPU and 1 GPU, at most 8 CPU and 1 GPU on one node",
    ):
        check_resources(spec.resources, spec.stages, cluster_nodes(), "the Ray cluster")
    types["gpu"]["resources"] = {}  # a node type that does not say what it has: nothing can be checked
    (tmp_path / "ray_bootstrap_config.yaml").write_text(yaml.safe_dump({"available_node_types": types}))
    assert cluster_nodes() is None
    assert not (Path(bad["root"]) / "mlflow.db").exists() and not (Path(bad["root"]) / "runs" / "ray").exists()
