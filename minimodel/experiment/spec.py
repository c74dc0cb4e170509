"""The sweep spec: a YAML file that says what a sweep runs, checked completely before anything starts
(minimodel.experiment.plan holds the validated Spec and the trials it runs).

A spec names a partial trial config (merged onto config.DEFAULTS), per-method overrides, the target
languages, a search space of dotted trial-config keys, the search algorithm and the resources.
Every problem is one SpecError line that names the key, so `minimodel validate` can fail fast.
"""

from __future__ import annotations

import copy
import difflib
import glob
import os
import re
from pathlib import Path
from typing import Any

import yaml

from minimodel.experiment import arms, checks
from minimodel.text import cipher, data
from minimodel.experiment import inits
from minimodel.experiment.config import DEFAULTS, RANGES, SOURCE_LANGUAGE, ConfigError, flatten, get_dotted, merge, retired, set_dotted
from minimodel.errors import UserError
from minimodel.method.models import ModelError, has_mlm_head
from minimodel.experiment.plan import Spec

SEARCH_ALGS = ("optuna-tpe", "optuna-multi", "grid")
DIM_TYPES = ("int", "float", "loguniform", "choice")

# Defaults of every optional section; a key not listed here is unknown.
RESOURCES = {"cpus": 1.0, "gpus": 0.0, "workers": 0, "cpus_per_worker": 1.0, "gpus_per_worker": 0.0}
STAGES = {"workers": 1, "cpus_per_worker": 1.0, "gpus_per_worker": 0.0}
ASHA = {"time_attr": "flops", "grace_period": None, "max_t": None, "reduction_factor": 3.0}
# A tuning phase: `trials` Optuna trials per arm and language, each arm its own study; `minimodel confirm`
# then runs each arm's chosen config (the cheapest within `tolerance` of its best dev accuracy) on fresh seeds.
TUNE = {"trials": 8, "tolerance": 0.01}
TOP = {
    "name",
    "description",
    "storage",
    "tracking_uri",
    "trial",
    "languages",
    "methods",
    "search",
    "search_alg",
    "num_samples",
    "max_concurrent",
    "resources",
    "stages",
    "asha",
    "seeds",
    "joint_baseline",
    "allow_differences",
    "tune",
}
# Hyper-parameters chosen on dev for every arm alike (the frontier keeps each arm's best on dev); any
# other searched key but the depth is a condition that every arm of a comparison must share.
TUNED = ("adapt.lr", "adapt.warmup")


class SpecError(UserError):
    """A bad sweep spec; the message is one line that names the key or file."""


class _Loader(yaml.SafeLoader):
    """YAML 1.1 reads `1e-4` as a string; learning rates are written that way, so read it as a float."""


_Loader.add_implicit_resolver("tag:yaml.org,2002:float", re.compile(r"^[-+]?(\d+\.?\d*|\.\d+)[eE][-+]?\d+$"), list("-+0123456789."))


def parse_value(text: str) -> Any:
    """A --set value, typed as YAML would type it (`3` int, `1e-4` float, `[de, fr]` list)."""
    try:
        return yaml.load(text, Loader=_Loader)
    except yaml.YAMLError:
        return text


def load_spec(path: str | os.PathLike, overrides: list[str] | tuple[str, ...] = ()) -> Spec:
    """Read a spec file, apply `key.path=value` overrides, validate; SpecError on any problem."""
    path = Path(path)
    try:
        raw = yaml.load(path.read_text(encoding="utf-8"), Loader=_Loader)
    except FileNotFoundError:
        raise SpecError(f"{path}: no such spec file") from None
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark else ""
        raise SpecError(f"{path}: not valid YAML{where}: {getattr(e, 'problem', e)}") from None
    if not isinstance(raw, dict):
        raise SpecError(f"{path}: a spec must be a YAML mapping")
    for item in overrides:
        apply_override(raw, item)
    return validate(raw)


def apply_override(raw: dict, item: str) -> None:
    """Set `a.b.c=value` in the raw spec, creating missing levels. Search keys are dotted trial keys
    themselves: `search.adapt.lr.low=1e-5` sets field `low` of key `adapt.lr`, and
    `search.adapt.steps={type: int, low: 50, high: 200}` adds a dimension."""
    dotted, sep, text = item.partition("=")
    if not sep or not dotted:
        raise SpecError(f"--set {item!r}: expected key.path=value")
    parts = dotted.split(".")
    if parts[0] == "search" and len(parts) > 2:
        field = parts[-1] in ("type", "low", "high", "values")
        parts = ["search", ".".join(parts[1:-1] if field else parts[1:])] + (parts[-1:] if field else [])
    node = raw
    for i, key in enumerate(parts[:-1]):
        if node.get(key) is None:
            node[key] = {}
        if not isinstance(node[key], dict):
            raise SpecError(f"--set {dotted}: '{'.'.join(parts[: i + 1])}' is not a mapping")
        node = node[key]
    node[parts[-1]] = parse_value(text)


def validate(raw: dict) -> Spec:
    """Check a raw spec dict and fill in defaults."""
    _known(raw, TOP, "")
    name = _get(raw, "name", str, None)
    if not name or not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.-]*", name):
        raise SpecError(f"name: must be letters, digits, '_', '.', '-' (got {name!r})")
    storage = _get(raw, "storage", str, "./minimodel-runs")
    if "://" not in storage:
        storage = str(Path(storage).expanduser().resolve())
    # As in MLflow itself, MLFLOW_TRACKING_URI is the default (a cluster points it at the head's server).
    default_uri = os.environ.get("MLFLOW_TRACKING_URI") or f"sqlite:///{Path.cwd() / 'mlflow.db'}"
    tracking_uri = _get(raw, "tracking_uri", str, default_uri)

    trial = _get(raw, "trial", dict, {})
    _known_tree(trial, DEFAULTS, "trial.")
    try:
        base = merge(DEFAULTS, trial, "trial.")
    except ConfigError as e:
        raise SpecError(str(e)) from None
    bases, pinned = _methods(raw.get("methods", arms.methods()), base)
    languages = _languages(raw, base)
    search = {key: _dim(key, dim) for key, dim in _get(raw, "search", dict, {}).items()}

    search_alg = _get(raw, "search_alg", str, "optuna-tpe")
    if search_alg not in SEARCH_ALGS:
        raise SpecError(f"search_alg: must be one of {', '.join(SEARCH_ALGS)} (got {search_alg!r})")
    pairs = len(bases) * len(languages)
    tune = None if raw.get("tune") in (None, False) else _tune(raw, search_alg)
    if tune:
        num_samples = 0  # tune.trials per arm and language, counted once the arms are known
    elif search_alg == "grid":
        if raw.get("num_samples") is not None:
            raise SpecError("num_samples: not used by search_alg grid (it runs every combination once); remove it or set it to null")
        for key, dim in search.items():
            if dim["type"] not in ("int", "choice"):
                raise SpecError(f"search.{key}: grid needs type int or choice (got {dim['type']})")
        num_samples = 0
    else:
        num_samples = _get(raw, "num_samples", int, max(8, pairs))
        if num_samples < pairs:
            raise SpecError(
                f"num_samples: {num_samples} is fewer than the {pairs} language x method pairs; every pair needs a trial for the frontier"
            )
    max_concurrent = _get(raw, "max_concurrent", int, 2)
    if max_concurrent < 1:
        raise SpecError(f"max_concurrent: must be at least 1 (got {max_concurrent})")

    resources = _section(raw, "resources", RESOURCES)
    stages = _section(raw, "stages", STAGES)
    if resources["cpus"] <= 0:
        raise SpecError("resources.cpus: must be > 0 (Ray rejects a trial with no CPU)")
    if stages["workers"] < 1:
        raise SpecError(f"stages.workers: must be at least 1 (got {stages['workers']})")
    asha = None if raw.get("asha") in (None, False) else _asha(raw)
    seeds = _seeds(raw, base, search_alg)
    borrowing = [a for a in arms.ARMS.values() if a.borrows]
    joint_baseline = _get(raw, "joint_baseline", bool, any(a.borrows in bases for a in borrowing))
    if joint_baseline and not any({a.variant_of, a.borrows} <= set(bases) for a in borrowing):
        raise SpecError(
            "joint_baseline: needs both " + " or ".join(f"{a.variant_of} and {a.borrows}" for a in borrowing) + " among the methods"
        )
    if tune:
        added = [a for a in borrowing if joint_baseline and a.borrows in bases and a.name not in bases]
        num_samples = tune["trials"] * (len(bases) + len(added)) * len(languages)
        for a in added:
            if "adapt.depth" in search and "adapt.depth" not in pinned[a.borrows]:
                raise SpecError(
                    f"search.adapt.depth: a tuning phase with joint_baseline needs methods.{a.borrows}.adapt.depth "
                    f"pinned, so that {a.borrows} and its baseline are tuned through the same joint model"
                )
    _controlled(raw, search, search_alg, joint_baseline, bool(tune))

    spec = Spec(
        name=name,
        storage=storage,
        tracking_uri=tracking_uri,
        bases=bases,
        pinned=pinned,
        languages=languages,
        search=search,
        search_alg=search_alg,
        num_samples=num_samples,
        max_concurrent=max_concurrent,
        resources=resources,
        stages=stages,
        asha=asha,
        seeds=seeds,
        joint_baseline=joint_baseline,
        conditions=["adapt.init", *(k for k in search if k not in (*TUNED, "adapt.depth", "adapt.init"))],
        tuned=[k for k in search if k in TUNED],
        description=_get(raw, "description", str, ""),
        tune=tune,
    )
    _check_every_config(spec)
    _check_data(spec)
    _check_inits(spec)
    return spec


def _get(raw: dict, key: str, kind: type, default: Any, where: str = "") -> Any:
    value = raw.get(key, default)
    if value is None and default is None:
        return None
    if kind is float and isinstance(value, int) and not isinstance(value, bool):
        value = float(value)
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        raise SpecError(f"{where}{key}: must be {kind.__name__} (got {value!r})")
    return value


def _known(raw: dict, known, where: str) -> None:
    for key in raw:
        if key not in known:
            close = difflib.get_close_matches(str(key), [str(k) for k in known], n=1)
            hint = f"; did you mean {where}{close[0]}?" if close else ""
            raise SpecError(f"{where}{key}: unknown key{hint} (known: {', '.join(sorted(known))})")


def _known_tree(tree: dict, defaults: dict, where: str) -> None:
    """Every key of a partial trial config (a trial: block, a method's overrides) exists in DEFAULTS."""
    for key in tree:
        if key not in defaults and retired(f"{where}{key}"):
            raise SpecError(f"{where}{key}: retired; {retired(f'{where}{key}')}")
    _known(tree, defaults, where)
    for key, value in tree.items():
        if isinstance(defaults[key], dict) and isinstance(value, dict):
            _known_tree(value, defaults[key], f"{where}{key}.")


def _section(raw: dict, key: str, defaults: dict) -> dict:
    given = _get(raw, key, dict, {})
    _known(given, defaults, f"{key}.")
    out = {}
    for k, default in defaults.items():
        out[k] = _get(given, k, type(default), default, f"{key}.")
        if out[k] < 0:
            raise SpecError(f"{key}.{k}: must not be negative (got {out[k]})")
    return out


def _methods(methods: Any, base: dict) -> tuple[dict[str, dict], dict[str, set[str]]]:
    """`methods:` is a list of method names, or a mapping method -> trial-config overrides (e.g.
    MiniJoint pretrains its own small model at one depth while the others adapt a pretrained one).
    Returns each method's base config and the dotted keys it pins."""
    if isinstance(methods, list):
        methods = {m: {} for m in methods}
    if not isinstance(methods, dict) or not methods:
        raise SpecError("methods: must be a non-empty list of methods or a mapping method -> trial overrides")
    bases, pinned = {}, {}
    for method, overrides in methods.items():
        if method not in arms.methods():
            added = f"; joint_baseline adds {method}" if method in arms.ARMS else ""
            raise SpecError(f"methods: unknown method {method!r} (known: {', '.join(arms.methods())}){added}")
        if not isinstance(overrides, dict | None):
            raise SpecError(f"methods.{method}: must be a mapping of trial-config overrides")
        _known_tree(overrides or {}, DEFAULTS, f"methods.{method}.")
        try:
            bases[method] = merge(base, overrides or {}, f"methods.{method}.")
        except ConfigError as e:
            raise SpecError(str(e)) from None
        pinned[method] = set(flatten(overrides or {})) | arms.ARMS[method].pinned
    return bases, pinned


def _seeds(raw: dict, base: dict, search_alg: str) -> list[int]:
    seeds = raw.get("seeds", [base["adapt"]["seed"]])
    if not isinstance(seeds, list) or not seeds or not all(isinstance(x, int) and not isinstance(x, bool) for x in seeds):
        raise SpecError(f"seeds: must be a non-empty list of integers (got {seeds!r})")
    if len(set(seeds)) != len(seeds):
        raise SpecError(f"seeds: listed twice: {seeds}")
    if len(seeds) > 1 and search_alg != "grid":
        raise SpecError(
            f"seeds: repeating every point over seeds needs search_alg: grid ({search_alg} samples points and cannot repeat them)"
        )
    return seeds


def _controlled(raw: dict, search: dict, search_alg: str, joint_baseline: bool, tuning: bool) -> None:
    """Arms of one comparison may differ only in method and depth: refuse anything else the spec
    lets differ, unless `allow_differences` names it. MiniJoint may change its pretraining when its
    own baseline (standard through the same joint model) is run. A tuning phase samples every key
    per arm: its arms are compared later, by `minimodel confirm`, each at its one chosen config."""
    allowed = _get(raw, "allow_differences", list, [])
    for method, overrides in (raw.get("methods") or {}).items() if isinstance(raw.get("methods"), dict) else ():
        for key in flatten(overrides or {}):
            joint_pretraining = arms.ARMS[method].joint and joint_baseline and key.startswith(("pretrain.", "model."))
            if key != "adapt.depth" and key not in allowed and not joint_pretraining:
                raise SpecError(
                    f"methods.{method}.{key}: methods of one comparison may differ only in method and "
                    "depth; set it in trial: for every method, or list it under allow_differences"
                )
    if search_alg != "grid" and not tuning:
        for key in search:
            if key not in (*TUNED, "adapt.depth") and key not in allowed:
                raise SpecError(
                    f"search.{key}: {search_alg} samples it per trial, so methods would be compared under "
                    "different values; pin it in trial:, use search_alg: grid, tune it per arm "
                    "(tune:, then minimodel confirm), or list it under allow_differences"
                )


def _tune(raw: dict, search_alg: str) -> dict:
    """The tuning phase's budget and choice rule, the same for every arm."""
    if search_alg == "grid":
        raise SpecError("tune: a tuning phase samples with Optuna; set search_alg: optuna-tpe or optuna-multi")
    if raw.get("num_samples") is not None:
        raise SpecError("num_samples: a tuning phase runs tune.trials per arm and language; remove num_samples")
    given = _get(raw, "tune", dict, {})
    _known(given, TUNE, "tune.")
    out = {k: _get(given, k, type(default), default, "tune.") for k, default in TUNE.items()}
    if out["trials"] < 1:
        raise SpecError(f"tune.trials: must be at least 1 (got {out['trials']})")
    if not 0 <= out["tolerance"] < 1:
        raise SpecError(f"tune.tolerance: an accuracy difference, at least 0 and below 1 (got {out['tolerance']})")
    return out


def _languages(raw: dict, base: dict) -> list[str]:
    languages = raw.get("languages")
    if not isinstance(languages, list) or not languages or not all(isinstance(x, str) for x in languages):
        raise SpecError(f"languages: must be a non-empty list of language codes (got {languages!r})")
    if len(set(languages)) != len(languages):
        raise SpecError("languages: listed twice: " + ", ".join(sorted({x for x in languages if languages.count(x) > 1})))
    if SOURCE_LANGUAGE in languages:
        raise SpecError(f"languages: '{SOURCE_LANGUAGE}' is the source language, not a target")
    for key in ("task", "target_corpus"):
        source = base["data"][key]
        _check_source(f"trial.data.{key}", source)
        try:
            known = data.languages(source)
        except data.DataError as e:
            raise SpecError(f"trial.data.{key}: {e}") from None
        missing = [x for x in languages if cipher.base_language(x) not in known]
        if missing:
            has = ", ".join(sorted(known)[:30]) + (", ..." if len(known) > 30 else "")
            raise SpecError(f"languages: {', '.join(missing)} not in {source} (has: {has})")
    _check_source("trial.data.source_corpus", base["data"]["source_corpus"])
    return languages


def _check_source(key: str, source: str) -> None:
    """A local path or `{lang}`/`{split}` template must match at least one file; an hf: source must be
    one that datasets can load (not a loading script)."""
    try:
        data.check_loadable(source)
    except data.DataError as e:
        raise SpecError(f"{key}: {e}") from None
    if source.startswith(("bundled:", "hf:")):
        return
    if not glob.glob(os.path.expanduser(re.sub(r"\{(lang|split)\}", "*", source))):
        raise SpecError(f"{key}: no file matches {source}")


def _check_data(spec: Spec) -> None:
    """Read what the sweep will read, as far as it is cheap: every split of a local or bundled task,
    and each corpus until it is known to support the vocabulary asked of it (see minimodel.experiment.checks)."""
    done = set()
    for method, base in spec.bases.items():
        d, m = base["data"], base["model"]
        corpora = [("target_corpus", x, "adapt.vocab_size", base["adapt"]["vocab_size"]) for x in spec.languages]
        if m["name"] == "scratch":
            corpora.append(("source_corpus", SOURCE_LANGUAGE, "model.vocab_size", m["vocab_size"]))
        for corpus, language, size_key, size in corpora:
            if (d[corpus], language, size, d["max_docs"]) in done:
                continue
            done.add((d[corpus], language, size, d["max_docs"]))
            try:
                checks.check_corpus(d[corpus], language, d["max_docs"], size)
            except data.DataError as e:
                key = _origin(spec, method, size_key) if isinstance(e, checks.VocabError) else f"trial.data.{corpus}"
                raise SpecError(f"{key}: {e}") from None
        if d["task"] not in done:
            done.add(d["task"])
            try:
                checks.check_task(d["task"], spec.languages)
            except data.DataError as e:
                raise SpecError(f"trial.data.task: {e}") from None


def _check_inits(spec: Spec) -> None:
    """Every library init the sweep can run (adapt.init, or its searched values) has what it needs for
    every language: its Python packages and, for WECHSEL, a bilingual dictionary."""
    dim = spec.search.get("adapt.init")
    for method, base in spec.bases.items():
        values = dim["values"] if dim and "adapt.init" not in spec.pinned[method] else [base["adapt"]["init"]]
        for init in values:
            for language in spec.languages:
                try:
                    inits.check(init, language, base["adapt"]["dictionary"])
                except inits.InitError as e:
                    key = "search.adapt.init" if init != base["adapt"]["init"] else _origin(spec, method, "adapt.init")
                    raise SpecError(f"{key}: {e}") from None


def _origin(spec: Spec, method: str, key: str, searched: dict | None = None) -> str:
    """The spec key a trial-config value came from: the search, the method's overrides, or trial:."""
    if searched and key in searched:
        return f"search.{key}"
    return f"methods.{method}.{key}" if key in spec.pinned[method] and key != "adapt.depth" else f"trial.{key}"


def _dim(key: str, dim: Any) -> dict:
    where = f"search.{key}"
    if key in ("adapt.method", "adapt.language"):
        raise SpecError(f"{where}: set methods: and languages: instead of searching them")
    if retired(key):
        raise SpecError(f"{where}: retired; {retired(key)}")
    *parents, leaf = key.split(".")
    node = DEFAULTS
    for i, part in enumerate(parents):
        _known({part: None}, {k for k, v in node.items() if isinstance(v, dict)}, "search." + "".join(f"{x}." for x in parents[:i]))
        node = node[part]
    _known({leaf: None}, {k for k, v in node.items() if not isinstance(v, dict)}, f"search.{''.join(f'{x}.' for x in parents)}")
    if not isinstance(dim, dict):
        raise SpecError(f"{where}: must be a mapping with type (one of {', '.join(DIM_TYPES)})")
    kind = dim.get("type")
    if kind not in DIM_TYPES:
        raise SpecError(f"{where}.type: must be one of {', '.join(DIM_TYPES)} (got {kind!r})")
    if kind == "choice":
        _known(dim, {"type", "values"}, f"{where}.")
        values = dim.get("values")
        if not isinstance(values, list) or not values:
            raise SpecError(f"{where}.values: must be a non-empty list")
        out = {"type": kind, "values": values}
    else:
        _known(dim, {"type", "low", "high"}, f"{where}.")
        num = int if kind == "int" else float
        low, high = (_get(dim, k, num, None, f"{where}.") for k in ("low", "high"))
        if low is None or high is None:
            raise SpecError(f"{where}: needs low and high")
        if low > high:
            raise SpecError(f"{where}: low {low} is greater than high {high}")
        if kind == "loguniform" and low <= 0:
            raise SpecError(f"{where}.low: loguniform needs low > 0 (got {low})")
        out = {"type": kind, "low": low, "high": high}
        if kind != "int" and not key.startswith("adapt."):
            raise SpecError(
                f"{where}: a shared-stage key must be searched as int or choice (each value is a stage computed once and cached)"
            )
    for value in out.get("values", [out.get("low"), out.get("high")]):
        try:
            set_dotted(copy.deepcopy(DEFAULTS), key, value)
        except ConfigError as e:
            raise SpecError(f"{where}: {e}") from None
    return out


def _asha(raw: dict) -> dict:
    given = _get(raw, "asha", dict, None)
    _known(given, ASHA, "asha.")
    out = {**ASHA, **given}
    if out["time_attr"] not in ("flops", "step"):
        raise SpecError(f"asha.time_attr: must be flops or step (got {out['time_attr']!r})")
    for key in ("grace_period", "max_t", "reduction_factor"):
        value = out[key]
        if not isinstance(value, (int, float)) or isinstance(value, bool) or value <= 0:
            raise SpecError(f"asha.{key}: must be a positive number (got {value!r})")
    if out["grace_period"] > out["max_t"]:
        raise SpecError(f"asha.grace_period: {out['grace_period']} is greater than max_t {out['max_t']}")
    if out["reduction_factor"] <= 1:
        raise SpecError(f"asha.reduction_factor: must be > 1 (got {out['reduction_factor']})")
    return out


def _check_every_config(spec: Spec) -> None:
    """Build the extreme trial configs of every method so a bad value fails now, not in trial 37:
    numbers in range, a model that exists, and a mini-model depth that leaves a layer above it."""
    for method, base in spec.bases.items():
        name = base["model"]["name"]
        arm = arms.ARMS[method]
        if (name == "scratch" or arm.joint) and base["pretrain"]["steps"] < 1:
            why = "a scratch model" if name == "scratch" else f"{arm.title} (its second head is trained in pretraining)"
            raise SpecError(f"methods.{method}.pretrain.steps: {why} needs pretraining steps > 0")
        try:
            config = checks.model_config(name)
        except ModelError as e:
            raise SpecError(f"{_origin(spec, method, 'model.name')}: {e}") from None
        p = base["pretrain"]
        if name != "scratch" and not p["head_steps"] and not p["steps"] and has_mlm_head(name) is False:
            raise SpecError(
                f"methods.{method}.pretrain.head_steps: {name} has no MLM head, so relearning would go "
                "through a random frozen one; restore it (pretrain.head_steps, pretrain.steps > 0)"
            )
        corners = [{}]
        for key, dim in spec.search.items():
            ends = dim["values"] if dim["type"] == "choice" else [dim["low"], dim["high"]]
            corners = [{**c, key: v} for c in corners for v in ends]
        for values in corners:
            try:
                cfg = spec.config(method, spec.languages[0], values)
            except ConfigError as e:
                searched = [k for k in values if f"'{k}'" in str(e)]
                raise SpecError(f"search.{searched[0]}: {e}" if searched else f"methods.{method}: {e}") from None
            _check_ranges(spec, method, cfg, values)
            layers = cfg["model"]["layers"] if name == "scratch" else (config or {}).get("num_hidden_layers")
            depth = cfg["adapt"]["depth"]
            if arm.has_depth and layers is not None and not 1 <= depth < layers:
                raise SpecError(
                    f"{_origin(spec, method, 'adapt.depth', values)}: depth {depth} is beyond "
                    f"{cfg['model']['name']}'s {layers} layers (max {layers - 1})"
                )
            positions = (config or {}).get("max_position_embeddings")
            usable = positions - (2 if (config or {}).get("model_type") != "bert" else 0) if positions else None
            if usable is not None and cfg["data"]["seq_len"] > usable:
                raise SpecError(
                    f"{_origin(spec, method, 'data.seq_len', values)}: {cfg['data']['seq_len']} is longer "
                    f"than {name} reads ({usable} tokens)"
                )


def _check_ranges(spec: Spec, method: str, cfg: dict, searched: dict) -> None:
    for key, (low, high, inclusive) in RANGES.items():
        value = get_dotted(cfg, key)
        if (value < low if inclusive else value <= low) or (high is not None and value > high):
            bounds = f"between {low} and {high}" if high is not None else f"{'at least' if inclusive else 'greater than'} {low}"
            raise SpecError(f"{_origin(spec, method, key, searched)}: must be {bounds} (got {value})")
    for prefix in ("adapt", "pretrain"):
        every, steps = cfg[prefix]["eval_every"], cfg[prefix]["steps"]
        if every > steps and (prefix == "adapt" or steps):
            raise SpecError(
                f"{_origin(spec, method, f'{prefix}.eval_every', searched)}: evaluating every {every} steps "
                f"of {steps} gives no curve; at most {prefix}.steps"
            )
    m = cfg["model"]
    if m["name"] == "scratch" and m["hidden"] % m["heads"]:
        raise SpecError(
            f"{_origin(spec, method, 'model.heads', searched)}: model.hidden {m['hidden']} is not a multiple of model.heads {m['heads']}"
        )
