"""Sweeps on a real local Ray runtime, with real Optuna and a real MLflow store, on a tiny scratch model.

The run's one Ray runtime (conftest.ray_session); each sweep goes through the CLI entry point.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pandas as pd
import pytest
import ray
import yaml
from mlflow.tracking import MlflowClient
from ray.util.state import list_actors

from minimodel import cli
from tests.ports import free_port

TINY = {
    "model": {"name": "scratch", "family": "bert", "hidden": 32, "layers": 3, "heads": 2, "ffn": 64, "vocab_size": 300},
    "pretrain": {"steps": 40, "lr": 2e-3, "batch_size": 16},
    "data": {"seq_len": 32, "max_docs": 600, "max_eval": 60},
    "finetune": {"steps": 30, "lr": 1e-3, "batch_size": 16},
    "align": {"steps": 20, "lr": 2e-3, "batch_size": 16},
    "adapt": {"vocab_size": 300, "lr": 1e-2, "steps": 60, "eval_every": 20, "batch_size": 16, "init": "random"},
}


def two_languages(toy_root: Path, root: Path) -> dict:
    """TINY's trial config over a copy of the synthetic task with two target languages (xx and a copy of it, yy)."""
    data = root / "data"
    shutil.copytree(toy_root, data)
    shutil.copytree(data / "task" / "xx", data / "task" / "yy")
    shutil.copy(data / "corpus" / "xx.txt", data / "corpus" / "yy.txt")
    return {
        **TINY,
        "data": {
            **TINY["data"],
            "source_corpus": str(data / "corpus" / "{lang}.txt"),
            "target_corpus": str(data / "corpus" / "{lang}.txt"),
            "task": str(data / "task" / "{lang}" / "{split}.jsonl"),
        },
    }


@pytest.fixture(scope="module")
def spec_path(toy_data, tmp_path_factory) -> Path:
    """The synthetic task with two target languages and a sweep spec over it."""
    root = tmp_path_factory.mktemp("sweep")
    trial = two_languages(toy_data["root"], root)
    spec = {
        "name": "toy",
        "storage": str(root / "runs"),
        "tracking_uri": f"sqlite:///{root}/mlflow.db",
        "trial": trial,
        "languages": ["xx", "yy"],
        "methods": ["standard", "minipost"],
        "search": {"adapt.depth": {"type": "choice", "values": [1]}, "adapt.lr": {"type": "loguniform", "low": 1e-3, "high": 1e-2}},
        "search_alg": "optuna-tpe",
        "num_samples": 4,
        "max_concurrent": 2,
        "resources": {"cpus": 1},
        "stages": {"workers": 2, "cpus_per_worker": 0.5},
    }
    path = root / "toy.yaml"
    path.write_text(yaml.safe_dump(spec))
    return path


def sweep(*argv: str) -> int:
    with pytest.raises(SystemExit) as done:
        cli.main(["sweep", *map(str, argv)])
    return done.value.code


def runs(path: Path, kind: str, parent: str) -> list:
    client = MlflowClient(f"sqlite:///{path.parent}/mlflow.db")
    experiment = client.get_experiment_by_name("toy").experiment_id
    return client.search_runs([experiment], f"tags.kind = '{kind}' and tags.mlflow.parentRunId = '{parent}'")


def latest_parent(path: Path):
    client = MlflowClient(f"sqlite:///{path.parent}/mlflow.db")
    experiment = client.get_experiment_by_name("toy").experiment_id
    return client.search_runs([experiment], "tags.kind = 'sweep'", order_by=["attributes.start_time DESC"])[0]


def train_workers() -> list:
    """The Ray Train workers this session's cluster ever ran, by its address: another Ray instance on the
    machine must not confuse the lookup."""
    return list_actors(address=ray.get_runtime_context().gcs_address, filters=[("class_name", "=", "RayTrainWorker")], detail=True)


def stage_jobs(path: Path) -> list[Path]:
    return sorted((path.parent / "runs" / "ray").glob("toy-stages-*"))


@pytest.mark.slow
def test_sweep_then_rerun_from_cache(ray_session, spec_path, capsys, monkeypatch):
    earlier = {w.actor_id for w in train_workers()}  # the runtime is shared: other tests' workers are not ours
    # --set reaches the trials: 40 steps evaluated every 20 instead of the spec's 60.
    assert sweep(spec_path, "--set", "trial.adapt.steps=40") == 0
    out = capsys.readouterr().out
    parent = latest_parent(spec_path)
    assert parent.info.status == "FINISHED"
    assert "compute_to_match" in out and "frontier plot:" in out and "MLflow:" in out

    stages = runs(spec_path, "stage", parent.info.run_id)
    assert sorted(r.data.tags["stage"] for r in stages) == ["align", "finetune", "source"]
    assert all(r.data.tags["cached"] == "false" for r in stages)
    assert {(r.data.tags["train_workers"], r.data.tags["backend"]) for r in stages} == {("2", "gloo")}
    workers = [w for w in train_workers() if w.actor_id not in earlier]
    # Train workers hold their resources through a placement group (keys like CPU_group_<id>)
    cpus = [{v for k, v in w.required_resources.items() if k.startswith("CPU")} for w in workers]
    assert cpus == [{0.5}, {0.5}], [w.required_resources for w in workers]
    assert len(stage_jobs(spec_path)) == 1

    trials = runs(spec_path, "trial", parent.info.run_id)
    assert sorted((r.data.tags["method"], r.data.tags["language"]) for r in trials) == [
        ("minipost", "xx"),
        ("minipost", "yy"),
        ("standard", "xx"),
        ("standard", "yy"),
    ]
    assert all(r.info.status == "FINISHED" and r.data.params["adapt.steps"] == "40" for r in trials)
    client = MlflowClient(f"sqlite:///{spec_path.parent}/mlflow.db")
    # curves are logged against compute: MLflow's step is the cumulative GFLOPs, the training step a metric
    steps = client.get_metric_history(trials[0].info.run_id, "train_step")
    assert [m.value for m in steps] == [0, 20, 40]
    flops = {m.step: m.value for m in client.get_metric_history(trials[0].info.run_id, "flops")}
    assert sorted(flops) == [m.step for m in steps] and flops[0] == 0
    assert all(step >= round(f / 1e9) for step, f in flops.items())
    assert {"test_accuracy", "english_accuracy", "majority_accuracy", "flops"} <= set(trials[0].data.metrics)
    assert {t["arm"] for t in (r.data.tags for r in trials)} == {"standard", "minipost k=1"}
    assert client.get_experiment(parent.info.experiment_id).tags["mlflow.experimentKind"] == "custom_model_development"
    # two trials at a time: some pair of trial runs overlaps in time
    spans = sorted((r.info.start_time, r.info.end_time) for r in trials)
    assert any(b[0] < a[1] for a, b in zip(spans, spans[1:]))
    assert sorted(a.path for a in client.list_artifacts(parent.info.run_id)) == [
        "evaluations.csv",
        "frontier.csv",
        "frontier.md",
        "frontier.png",
        "frontier_curves.csv",
        "frontier_points.csv",
        "starts.csv",
    ]

    # Read back from MLflow, with a target 5 points under the baseline's plateau instead of 1.
    capsys.readouterr()
    cli.main(["frontier", str(spec_path), "--tolerance", "0.05", "--out", str(spec_path.parent / "loose")])
    assert "frontier plot:" in capsys.readouterr().out
    strict = pd.read_csv(spec_path.parent / "runs" / "toy" / parent.info.run_id / "frontier.csv")
    loose = pd.read_csv(spec_path.parent / "loose" / "frontier.csv")
    assert list(strict["target"] - loose["target"]) == pytest.approx([0.04] * len(strict))
    assert "tolerance-0.05/frontier.csv" in [
        a.path for a in MlflowClient(f"sqlite:///{spec_path.parent}/mlflow.db").list_artifacts(parent.info.run_id, "tolerance-0.05")
    ]
    # without --out, a second tolerance's files go beside the first's locally too, as in MLflow
    monkeypatch.chdir(spec_path.parent)
    for tolerance in ("0.05", "0.02"):
        cli.main(["frontier", str(spec_path), "--tolerance", tolerance])
    local = spec_path.parent / "frontier" / "toy" / parent.info.run_id
    assert pd.read_csv(local / "tolerance-0.05" / "frontier.csv")["target"].tolist() == loose["target"].tolist()
    assert (local / "tolerance-0.02" / "frontier.csv").exists()

    # The same sweep again: every stage and every trial comes from the cache; no Train job starts.
    assert sweep(spec_path, "--set", "trial.adapt.steps=40") == 0
    again = latest_parent(spec_path)
    assert again.info.run_id != parent.info.run_id
    assert all(r.data.tags["cached"] == "true" for r in runs(spec_path, "stage", again.info.run_id))
    replayed = runs(spec_path, "trial", again.info.run_id)
    assert len(replayed) == 4 and all(r.data.tags["cached"] == "true" for r in replayed)
    assert sorted(r.data.metrics["accuracy"] for r in replayed) == sorted(r.data.metrics["accuracy"] for r in trials)
    assert len(stage_jobs(spec_path)) == 1


@pytest.mark.slow
def test_large_trial_runs_as_torchtrainer_inside_the_trial(ray_session, spec_path):
    """resources.workers > 0: the adaptation is a 2-worker TorchTrainer inside the Tune trial (with ASHA on)."""
    code = sweep(
        spec_path,
        "--set",
        "methods=[standard]",
        "--set",
        "languages=[xx]",
        "--set",
        "num_samples=1",
        "--set",
        "trial.adapt.steps=20",
        "--set",
        "resources={cpus: 1, workers: 2, cpus_per_worker: 0.5}",
        "--set",
        "asha={grace_period: 1.0e+6, max_t: 1.0e+15}",
    )
    assert code == 0
    parent = latest_parent(spec_path)
    (trial,) = runs(spec_path, "trial", parent.info.run_id)
    assert trial.info.status == "FINISHED" and trial.data.tags["cached"] == "false"
    client = MlflowClient(f"sqlite:///{spec_path.parent}/mlflow.db")
    assert [m.value for m in client.get_metric_history(trial.info.run_id, "train_step")] == [0, 20]
    assert "test_accuracy" in trial.data.metrics


@pytest.mark.parametrize(
    "override, message",
    [
        ("languages=[xx, zz]", "languages: zz not in"),
        ("search.adapt.depth.values=[1, 3]", "search.adapt.depth: 'adapt.depth' must be between 1"),
        ("tracking_uri=http://127.0.0.1:{port}", "tracking_uri: cannot reach MLflow at http://127.0.0.1:"),  # a free port, at run time
    ],
)
def test_bad_input_stops_before_anything_runs(spec_path, capsys, override, message):
    before = sorted(p.name for p in (spec_path.parent / "runs" / "ray").glob("*"))
    assert sweep(spec_path, "--set", override.format(port=free_port())) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("minimodel: error: ") and message in err[0], err
    assert sorted(p.name for p in (spec_path.parent / "runs" / "ray").glob("*")) == before
