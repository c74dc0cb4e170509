"""No secret from the environment reaches MLflow: tokens and credentials are planted in the environment
Ray starts from, a tiny sweep runs through the CLI, and every run's params, tags, metric names and
text artifacts are searched for them.

Its own module (not test_sweep's Ray session): the secrets must be in the environment before Ray
starts, as they are for a user whose shell exports them, so that every worker inherits them.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

import pytest
import ray
import yaml
from mlflow.tracking import MlflowClient

from minimodel import cli

SECRETS = {
    "HF_TOKEN": "hf_plantedSecretToken0123456789abcdef",
    "AWS_SECRET_ACCESS_KEY": "plantedAwsSecret/0123456789abcdefghijklmnopq",
    "AWS_ACCESS_KEY_ID": "AKIAPLANTEDKEY012345",
    "MLFLOW_TRACKING_PASSWORD": "planted-mlflow-password-0123",
    "WANDB_API_KEY": "plantedwandbkey0123456789abcdef01234567",
}
TEXT = (".md", ".csv", ".json", ".txt", ".yaml", ".yml", ".log", ".html")


@pytest.fixture(scope="module")
def swept(toy_data, tmp_path_factory) -> Path:
    """A one-trial sweep run with the secrets in the environment of the driver and every Ray worker."""
    root = tmp_path_factory.mktemp("secrets")
    trial = {
        "model": {"name": "scratch", "family": "bert", "hidden": 32, "layers": 2, "heads": 2, "ffn": 64, "vocab_size": 300},
        "pretrain": {"steps": 10, "batch_size": 16},
        "data": {
            "seq_len": 32,
            "max_docs": 300,
            "max_eval": 30,
            "max_test": 30,
            "source_corpus": toy_data["corpus"],
            "target_corpus": toy_data["corpus"],
            "task": toy_data["task"],
        },
        "finetune": {"steps": 10, "batch_size": 16},
        "adapt": {"vocab_size": 300, "steps": 10, "eval_every": 5, "batch_size": 16, "init": "random"},
    }
    spec = {
        "name": "secrets",
        "storage": str(root / "runs"),
        "tracking_uri": f"sqlite:///{root}/mlflow.db",
        "trial": trial,
        "languages": ["xx"],
        "methods": ["standard"],
        "search_alg": "grid",
        "resources": {"cpus": 1},
        "stages": {"workers": 1, "cpus_per_worker": 1},
    }
    (root / "spec.yaml").write_text(yaml.safe_dump(spec))
    before = {k: os.environ.get(k) for k in SECRETS}
    os.environ.update(SECRETS)
    ray.shutdown()  # Ray's workers must start with the secrets in their environment: not the run's shared runtime
    ray.init(num_cpus=2, logging_level="WARNING")
    try:
        with pytest.raises(SystemExit) as done:
            cli.main(["sweep", str(root / "spec.yaml")])
        assert done.value.code == 0
    finally:
        ray.shutdown()
        for key, value in before.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
    return root


@pytest.mark.slow
def test_no_planted_secret_reaches_any_mlflow_run(swept):
    client = MlflowClient(f"sqlite:///{swept}/mlflow.db")
    experiment = client.get_experiment_by_name("secrets").experiment_id
    runs = client.search_runs([experiment])
    assert {r.data.tags["kind"] for r in runs} >= {"sweep", "stage", "trial"}  # the search covers every kind
    seen, texts = [], 0
    for run in runs:
        seen += [
            run.info.run_name or "",
            *run.data.params,
            *run.data.params.values(),
            *run.data.tags,
            *run.data.tags.values(),
            *run.data.metrics,
        ]
        with tempfile.TemporaryDirectory() as folder:
            local = Path(client.download_artifacts(run.info.run_id, "", folder))
            for path in local.rglob("*"):
                if path.is_file() and path.suffix in TEXT:
                    seen.append(path.read_text(errors="replace"))
                    texts += 1
    assert texts >= 4  # the sweep's frontier table and CSVs at least
    found = [name for name, secret in SECRETS.items() if any(secret in text for text in seen)]
    assert not found, f"secrets in MLflow: {found}"
    shutil.rmtree(swept / "runs", ignore_errors=True)
