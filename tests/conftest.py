"""Shared fixtures: tiny models and a synthetic topic language (tests must run in seconds on 2 cores)."""
from __future__ import annotations

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
os.environ.setdefault("RAY_AUTH_MODE", "disabled")
os.environ.setdefault("TQDM_DISABLE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import pytest  # noqa: E402 (the environment above must be set before these imports)
import torch  # noqa: E402

torch.set_num_threads(1)  # tiny models: one thread is fastest, and 2-core CI runs other processes too

from tests.synthetic import corpus_lines, write_language  # noqa: E402


@pytest.fixture(scope="session")
def english_lines() -> list[str]:
    return corpus_lines(2000, seed=1)


@pytest.fixture(scope="session")
def toy_data(tmp_path_factory) -> dict:
    """Local files of the synthetic topic task in English and in a ciphered copy ("xx")."""
    root = tmp_path_factory.mktemp("toy")
    write_language(root)
    return {"corpus": str(root / "corpus" / "{lang}.txt"), "task": str(root / "task" / "{lang}" / "{split}.jsonl"),
            "root": root}


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
