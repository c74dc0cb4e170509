"""The trial config: one nested dict that fully describes one adaptation run.

Every stage reads only its own sections, so a stage's cache key is the hash of those sections.
A sweep spec's `trial:` block is a partial config merged onto DEFAULTS; its search space names
dotted paths into it (e.g. `adapt.depth`). The config's one home: its defaults, the ranges of its
numbers (RANGES) and the values of its strings (ENUMS; adapt.method's are the arms of minimodel.experiment.arms),
and the dotted-key helpers (flatten, get_dotted, set_dotted) every layer uses.
"""

from __future__ import annotations

import copy
import hashlib
import json
from pathlib import Path
from typing import Any

from minimodel.experiment import arms
from minimodel.errors import UserError

PRECISIONS = ("auto", "fp32", "bf16")

# random and overlap are minimodel's; focus and wechsel call their libraries (minimodel.experiment.inits).
LIBRARY_INITS = ("focus", "wechsel")
INITS = ("random", "overlap", *LIBRARY_INITS)
SOURCE_LANGUAGE = "en"  # the language of the source model, its task fine-tune and every source corpus

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
    "pretrain": {"head_steps": 0, "steps": 0, "lr": 5e-4, "batch_size": 32, "warmup": 0.06, "joint_weight": 1.0, "eval_every": 0},
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
    "align": {"steps": 300, "lr": 3e-4, "batch_size": 32, "layers": 1, "init": "copy", "warmup": 0.06, "objective": "mlm"},
    # The trial proper: relearn one language's embeddings with one method through one depth.
    "adapt": {
        "language": "de",
        "method": "minipost",
        "depth": 2,
        "init": "overlap",  # random | overlap | focus | wechsel (README: Initialisations)
        "vocab_size": 8000,
        "lr": 1e-3,
        "steps": 500,
        "batch_size": 32,
        "warmup": 0.06,
        "eval_every": 100,
        "seed": 0,  # the adaptation's own seed (new rows, batches, masks): a spec's `seeds:` repeats trials over it
        # overlap init: whether the rows copied from the source (tokens both vocabularies share) train too,
        # or keep the source's vectors while the new rows learn to fit them
        "train_shared": True,
        # the spread of the new rows' random init, as a multiple of the source embeddings' spread
        "init_scale": 1.0,
        # wechsel: its bilingual dictionary, "" = Debian's FreeDict packages for the language, or a file
        # of "english<TAB>word" lines ({lang} is replaced by the language)
        "dictionary": "",
        # the share of each sequence's positions masked per step (the head runs at masked positions only)
        "mask_rate": 0.15,
    },
    # fastText vectors that focus (token level, target text) and wechsel (word level, English and
    # target text) are given, trained here on the trial's corpora (CBOW, both libraries' choice).
    "fasttext": {"dim": 100, "epochs": 10, "min_count": 5},
}


# Keys of older versions, and what replaced them: named in the error instead of "unknown key".
RETIRED = {
    "adapt.through_joint": "MiniJoint's baseline is the arm adapt.method: standard-through-joint (a spec adds it with joint_baseline: true)"
}


# Ranges of the trial config's numbers: (lowest, highest, whether the lowest itself is allowed). A value
# outside would fail (or silently do nothing) only once a stage or trial runs.
STEPS, RATE, COUNT, FRACTION = (0, None, True), (0, None, False), (1, None, True), (0, 1, True)
RANGES = {
    "seed": STEPS,
    "model.hidden": COUNT,
    "model.layers": COUNT,
    "model.heads": COUNT,
    "model.ffn": COUNT,
    "model.vocab_size": COUNT,
    "model.max_len": COUNT,
    "pretrain.head_steps": STEPS,
    "pretrain.steps": STEPS,
    "pretrain.lr": RATE,
    "pretrain.batch_size": COUNT,
    "pretrain.warmup": FRACTION,
    "pretrain.joint_weight": STEPS,
    "pretrain.eval_every": STEPS,
    "data.seq_len": (8, None, True),
    "data.max_docs": COUNT,
    "data.max_eval": STEPS,
    "data.max_test": STEPS,
    "finetune.steps": COUNT,
    "finetune.lr": RATE,
    "finetune.batch_size": COUNT,
    "finetune.warmup": FRACTION,
    "align.steps": COUNT,
    "align.lr": RATE,
    "align.batch_size": COUNT,
    "align.layers": COUNT,
    "align.warmup": FRACTION,
    "adapt.vocab_size": (100, None, True),
    "adapt.lr": RATE,
    "adapt.steps": COUNT,
    "adapt.batch_size": COUNT,
    "adapt.warmup": FRACTION,
    "adapt.eval_every": COUNT,
    "adapt.seed": STEPS,
    "adapt.init_scale": RATE,
    "adapt.mask_rate": (0, 1, False),
    "fasttext.dim": COUNT,
    "fasttext.epochs": COUNT,
    "fasttext.min_count": COUNT,
}
# The values a string key may take (adapt.method: the arms of minimodel.experiment.arms).
ENUMS = {"precision": PRECISIONS, "adapt.init": INITS, "align.objective": ("mlm", "distill"), "align.init": ("copy", "random")}


class ConfigError(UserError):
    """A bad key or value in a config; the message names the dotted key."""


def retired(path: str) -> str | None:
    """What replaced a key of an older version ('trial.adapt.through_joint' too), or None."""
    return next((why for key, why in RETIRED.items() if path == key or path.endswith(f".{key}")), None)


def merge(base: dict, overrides: dict, prefix: str = "") -> dict:
    """Deep-merge overrides onto a copy of base; unknown keys and type mismatches raise ConfigError."""
    out = copy.deepcopy(base)
    for key, value in overrides.items():
        path = f"{prefix}{key}"
        if key not in out:
            if retired(path):
                raise ConfigError(f"'{path}' is retired: {retired(path)}")
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
    for key, allowed in {**ENUMS, "adapt.method": tuple(arms.ARMS)}.items():
        if get_dotted(cfg, key) not in allowed:
            choices = " or ".join(allowed) if len(allowed) == 2 else f"one of {', '.join(allowed)}"
            raise ConfigError(f"'{key}' must be {choices}, got {get_dotted(cfg, key)!r}")
    layers = cfg["model"]["layers"] if cfg["model"]["name"] == "scratch" else None
    if arms.get(cfg).has_depth and (adapt["depth"] < 1 or (layers and adapt["depth"] >= layers)):
        raise ConfigError(f"'adapt.depth' must be between 1 and the model's layers - 1, got {adapt['depth']}")
    return cfg


def flatten(tree: dict, prefix: str = "") -> dict[str, Any]:
    """{'adapt': {'lr': 1e-3}} -> {'adapt.lr': 1e-3}: a (partial) config by dotted key (MLflow params too)."""
    out = {}
    for key, value in tree.items():
        if isinstance(value, dict):
            out.update(flatten(value, f"{prefix}{key}."))
        else:
            out[f"{prefix}{key}"] = value
    return out


def get_dotted(cfg: dict, dotted: str) -> Any:
    """cfg['a']['b'] for 'a.b'."""
    node = cfg
    for part in dotted.split("."):
        node = node[part]
    return node


def short_values(cfg: dict, keys: list[str]) -> str:
    """'init=overlap, lr=0.001': the values of dotted keys in a trial config, adapt.* without the prefix."""
    values = ((key.removeprefix("adapt."), get_dotted(cfg, key)) for key in keys)
    return ", ".join(f"{name}={value:g}" if isinstance(value, float) else f"{name}={value}" for name, value in values)


def set_dotted(cfg: dict, dotted: str, value: Any) -> None:
    """cfg['a']['b'] = value for 'a.b' (used by --set and search spaces); unknown paths raise ConfigError."""
    *parents, leaf = dotted.split(".")
    node = cfg
    for i, part in enumerate(parents):
        if not isinstance(node.get(part), dict):
            raise ConfigError(f"unknown key '{'.'.join(parents[: i + 1])}'")
        node = node[part]
    if leaf not in node:
        raise ConfigError(f"'{dotted}' is retired: {retired(dotted)}" if retired(dotted) else f"unknown key '{dotted}'")
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
