"""The trial config: one nested dict that fully describes one adaptation run.

Every stage reads only its own sections, so a stage's cache key is the hash of those sections.
A sweep spec's `trial:` block is a partial config merged onto DEFAULTS; its search space names
dotted paths into it (e.g. `adapt.depth`).
"""
from __future__ import annotations

import copy
import hashlib
import json
from pathlib import Path
from typing import Any

METHODS = ("standard", "minijoint", "minipost")
PRECISIONS = ("auto", "fp32", "bf16")

DEFAULTS: dict[str, Any] = {
    "seed": 0,
    "precision": "auto",  # auto (bf16 autocast on CUDA and on CPUs with native bf16) | fp32 | bf16
    # Source model: a hub name, a local folder, "bundled:minilm-l6", or "scratch" (built from the fields below).
    "model": {
        "name": "bundled:minilm-l6",
        "family": "bert",  # scratch only: bert | roberta | xlm-roberta
        "hidden": 64,
        "layers": 4,
        "heads": 4,
        "ffn": 256,
        "vocab_size": 8000,
        "max_len": 128,
    },
    # MLM training of the source model before anything else: from scratch for "scratch", else head
    # restore (head_steps with only the MLM head trainable, then `steps` of the whole model); 0 and 0
    # = use the checkpoint as it is. MiniJoint adds a second head at adapt.depth and trains both
    # with loss = full + joint_weight * mini.
    "pretrain": {"head_steps": 0, "steps": 0, "lr": 5e-4, "batch_size": 32, "warmup": 0.06, "joint_weight": 1.0,
                 "eval_every": 0},
    "data": {
        "source_corpus": "bundled:ddtp-topic",
        "task": "bundled:ddtp-topic",
        "target_corpus": "bundled:ddtp-topic",
        "seq_len": 128,
        "max_docs": 50000,  # read at most this many documents from each corpus
        "max_eval": 500,  # dev items evaluated at each interval (a fixed random sample; 0 = all)
        "max_test": 0,  # test items evaluated at each interval (a fixed random sample; 0 = all)
    },
    # English task fine-tune of the full model, word embeddings frozen.
    "finetune": {"steps": 300, "lr": 5e-5, "batch_size": 32, "warmup": 0.1},
    # MiniPost alignment: new top layers over frozen layers[:depth].
    # objective: mlm (the paper's: the new top learns MLM on its own) or distill (it learns to predict
    # what the big model predicts, at the masked positions).
    "align": {"steps": 300, "lr": 3e-4, "batch_size": 32, "layers": 1, "init": "copy", "warmup": 0.06,
              "objective": "mlm"},
    # The trial proper: relearn one language's embeddings with one method through one depth.
    "adapt": {
        "language": "de",
        "method": "minipost",
        "depth": 2,
        "init": "overlap",  # random | overlap
        "vocab_size": 8000,
        "lr": 1e-3,
        "steps": 500,
        "batch_size": 32,
        "warmup": 0.06,
        "eval_every": 100,
        "seed": 0,  # the adaptation's own seed (new rows, batches, masks): a spec's `seeds:` repeats trials over it
        "through_joint": False,  # standard only: relearn through MiniJoint's jointly trained model (its baseline)
        # overlap init: whether the rows copied from the source (tokens both vocabularies share) train too,
        # or keep the source's vectors while the new rows learn to fit them
        "train_shared": True,
        # the spread of the new rows' random init, as a multiple of the source embeddings' spread
        "init_scale": 1.0,
        # the share of each sequence's positions masked per step (the head runs at masked positions only)
        "mask_rate": 0.15,
    },
}


class ConfigError(ValueError):
    """A bad key or value in a config; the message names the dotted key."""


def merge(base: dict, overrides: dict, prefix: str = "") -> dict:
    """Deep-merge overrides onto a copy of base; unknown keys and type mismatches raise ConfigError."""
    out = copy.deepcopy(base)
    for key, value in overrides.items():
        path = f"{prefix}{key}"
        if key not in out:
            raise ConfigError(f"unknown key '{path}' (known: {', '.join(sorted(out))})")
        if isinstance(out[key], dict):
            if not isinstance(value, dict):
                raise ConfigError(f"'{path}' must be a mapping, got {value!r}")
            out[key] = merge(out[key], value, path + ".")
        else:
            out[key] = _coerce(path, out[key], value)
    return out


def _coerce(path: str, default: Any, value: Any) -> Any:
    if isinstance(default, bool) or default is None or isinstance(default, str):
        ok = default is None or isinstance(value, type(default))
    elif isinstance(default, int):
        ok = isinstance(value, int) and not isinstance(value, bool)
    elif isinstance(default, float):
        ok = isinstance(value, (int, float)) and not isinstance(value, bool)
        value = float(value) if ok else value
    else:
        ok = True
    if not ok:
        raise ConfigError(f"'{path}' must be {type(default).__name__}, got {value!r}")
    return value


def trial_config(overrides: dict | None = None) -> dict:
    """DEFAULTS with overrides merged and checked."""
    cfg = merge(DEFAULTS, overrides or {})
    adapt = cfg["adapt"]
    if cfg["precision"] not in PRECISIONS:
        raise ConfigError(f"'precision' must be one of {', '.join(PRECISIONS)}, got {cfg['precision']!r}")
    if adapt["method"] not in METHODS:
        raise ConfigError(f"'adapt.method' must be one of {', '.join(METHODS)}, got {adapt['method']!r}")
    if adapt["init"] not in ("random", "overlap"):
        raise ConfigError(f"'adapt.init' must be random or overlap, got {adapt['init']!r}")
    if cfg["align"]["objective"] not in ("mlm", "distill"):
        raise ConfigError(f"'align.objective' must be mlm or distill, got {cfg['align']['objective']!r}")
    if cfg["align"]["init"] not in ("copy", "random"):
        raise ConfigError(f"'align.init' must be copy or random, got {cfg['align']['init']!r}")
    if adapt["through_joint"] and adapt["method"] != "standard":
        raise ConfigError(f"'adapt.through_joint' is for method standard only (got {adapt['method']!r})")
    layers = cfg["model"]["layers"] if cfg["model"]["name"] == "scratch" else None
    if adapt["method"] != "standard" and (adapt["depth"] < 1 or (layers and adapt["depth"] >= layers)):
        raise ConfigError(f"'adapt.depth' must be between 1 and the model's layers - 1, got {adapt['depth']}")
    return cfg


def set_dotted(cfg: dict, dotted: str, value: Any) -> None:
    """cfg['a']['b'] = value for 'a.b' (used by --set and search spaces); unknown paths raise ConfigError."""
    *parents, leaf = dotted.split(".")
    node = cfg
    for i, part in enumerate(parents):
        if not isinstance(node.get(part), dict):
            raise ConfigError(f"unknown key '{'.'.join(parents[: i + 1])}'")
        node = node[part]
    if leaf not in node:
        raise ConfigError(f"unknown key '{dotted}'")
    node[leaf] = _coerce(dotted, node[leaf], value)


def file_sha256(path: str | Path) -> str:
    """sha256 of a file's bytes, read in blocks (model weights run to gigabytes)."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def config_hash(*parts: Any) -> str:
    """Stable short hash of JSON-able parts: the cache key of a stage."""
    blob = json.dumps(parts, sort_keys=True, default=str).encode()
    return hashlib.sha256(blob).hexdigest()[:16]
