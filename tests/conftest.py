"""Shared fixtures: tiny models and a synthetic topic language (tests must run in seconds on 2 cores),
and what costs seconds to start, started once per run: one local Ray runtime, one MLflow server, one
stage cache."""

from __future__ import annotations

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
os.environ.setdefault("RAY_AUTH_MODE", "disabled")
os.environ.setdefault("TQDM_DISABLE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
if worker := os.environ.get("PYTEST_XDIST_WORKER"):  # `make test` runs two pytest workers: each its own Ray
    os.environ["RAY_TMPDIR"] = os.path.join(os.environ.get("RAY_TMPDIR", "/tmp"), worker)  # temp root and session_latest
    os.makedirs(os.environ["RAY_TMPDIR"], exist_ok=True)

import pytest  # noqa: E402 (the environment above must be set before these imports)
import torch  # noqa: E402

torch.set_num_threads(1)  # tiny models: one thread is fastest, and 2-core CI runs other processes too

from tests.synthetic import corpus_lines, write_language  # noqa: E402


# The files that take longest, longest first: `make test`'s two workers take files in collection order,
# so the long poles start at once instead of last (xdist's own order, by test count, started the
# cluster file last and left one worker idle for its whole length).
LONGEST_FIRST = ["test_cluster.py", "test_faults.py", "test_ui.py", "test_sweep.py", "test_toy_source.py", "test_tune.py"]


def pytest_collection_modifyitems(items: list) -> None:
    rank = {name: i for i, name in enumerate(LONGEST_FIRST)}
    items.sort(key=lambda item: rank.get(item.path.name, len(rank)))  # stable: a file's own order is kept


@pytest.fixture(scope="session")
def english_lines() -> list[str]:
    return corpus_lines(2000, seed=1)


@pytest.fixture(scope="session")
def toy_data(tmp_path_factory) -> dict:
    """Local files of the synthetic topic task in English and in a ciphered copy ("xx")."""
    root = tmp_path_factory.mktemp("toy")
    write_language(root)
    return {"corpus": str(root / "corpus" / "{lang}.txt"), "task": str(root / "task" / "{lang}" / "{split}.jsonl"), "root": root}


@pytest.fixture(scope="session")
def stage_cache(tmp_path_factory):
    """One stage cache for the in-process pipeline tests: entries are keyed by what they read, so tests
    with the same stages share them and tests with other stages cannot collide."""
    return tmp_path_factory.mktemp("stages")


@pytest.fixture(scope="session")
def mlflow_server(tmp_path_factory):
    """One real MLflow server over HTTP for the run; each test writes its own experiments."""
    from tests.mlflow_server import start_server, stop_server
    from tests.ports import free_port

    root = tmp_path_factory.mktemp("mlflow")
    port = free_port()
    proc = start_server(root, port)
    try:
        yield {"uri": f"http://127.0.0.1:{port}", "root": root}
    finally:
        stop_server(proc)


@pytest.fixture(scope="session")
def _ray_runtime():
    """Shuts down at the end of the run whatever local Ray runtime ray_session left up."""
    yield
    import ray

    ray.shutdown()


@pytest.fixture
def ray_session(_ray_runtime):
    """The run's one local Ray runtime (2 CPUs; ray.init costs seconds), started by its first user. A test
    that needs Ray's workers to see another environment shuts it down first; the next user restarts it."""
    import ray

    if not ray.is_initialized():
        ray.init(num_cpus=2, logging_level="WARNING", runtime_env={"env_vars": {"TQDM_DISABLE": "1", "TRANSFORMERS_VERBOSITY": "error"}})
    return ray


@pytest.fixture
def hub_folder(tmp_path, monkeypatch):
    """Write a dataset folder the way the hub stores it: README.md configs + parquet per config."""
    datasets = pytest.importorskip("datasets")
    monkeypatch.setattr(datasets.config, "HF_DATASETS_CACHE", tmp_path / "cache")

    def write(name: str, configs: dict[str, dict[str, dict]], features) -> str:
        root = tmp_path / name
        yaml = ["---", "configs:"]
        for config, splits in configs.items():
            yaml += [f"- config_name: {config}", "  data_files:"]
            for split, columns in splits.items():
                (root / config).mkdir(parents=True, exist_ok=True)
                path = root / config / f"{split}-00000-of-00001.parquet"
                datasets.Dataset.from_dict(columns, features=features).to_parquet(str(path))
                yaml += [f"  - split: {split}", f"    path: {config}/{split}-*"]
        (root / "README.md").write_text("\n".join(yaml + ["---", ""]))
        return str(root)

    return write, datasets
