"""A validated sweep spec: which trials it runs (arms x languages x search values x seeds) and the
trial config of each. minimodel.spec reads and checks the YAML and builds one; nothing here validates.
"""
from __future__ import annotations

import copy
import itertools
from dataclasses import dataclass
from typing import Any

from minimodel.config import set_dotted, trial_config


@dataclass(frozen=True)
class Spec:
    """A validated spec: every default filled in, every trial config it can produce known to be valid."""

    name: str
    storage: str
    tracking_uri: str
    bases: dict[str, dict]  # method -> full trial config (trial: block + that method's overrides)
    pinned: dict[str, set[str]]  # method -> dotted keys its overrides set: the search leaves them alone
    languages: list[str]
    search: dict[str, dict]  # dotted trial key -> {type, low, high} or {type: choice, values}
    search_alg: str
    num_samples: int
    max_concurrent: int
    resources: dict
    stages: dict
    asha: dict | None
    seeds: list[int]  # every grid point is run once per seed (adapt.seed)
    joint_baseline: bool  # add standard through MiniJoint's jointly trained model: MiniJoint's reference
    conditions: list[str]  # dotted keys whose values make a comparison (init, and searched non-tuned keys)
    tuned: list[str]  # searched hyper-parameters, chosen on dev per arm
    description: str = ""
    tune: dict | None = None  # a tuning phase: {trials (per arm and language), tolerance (the choice rule's)}
    points: list[dict] | None = None  # explicit grid rows (a confirm phase's chosen configs x fresh seeds)

    @property
    def methods(self) -> list[str]:
        return list(self.bases)

    def searched(self, method: str) -> list[str]:
        """The search keys that vary for a method: not those its overrides pin (standard pins depth)."""
        return [k for k in self.search if k not in self.pinned[method]]

    def config(self, method: str, language: str, values: dict[str, Any] | None = None) -> dict:
        """The trial config of one trial: the method's base with language and searched values set.
        Values of keys the method pins are ignored, so equal trials share one cache entry. Standard
        `adapt.through_joint` (MiniJoint's baseline) takes MiniJoint's base: its source model and depth."""
        values = dict(values or {})
        joint = method == "standard" and bool(values.pop("adapt.through_joint", False))
        base = "minijoint" if joint else method
        cfg = copy.deepcopy(self.bases[base])
        cfg["adapt"].update(method=method, language=language, through_joint=joint)
        for key, value in values.items():
            if key not in self.pinned[base]:
                set_dotted(cfg, key, value)
        return trial_config(cfg)

    def stage_configs(self) -> list[dict]:
        """Trial configs that between them need every shared stage this sweep can use.

        Shared stages read no `adapt.*` key but the depth, and the spec only allows discrete search
        dimensions outside `adapt.*`, so the stage set is finite and known before any trial starts.
        """
        keys = [k for k in self.search if k == "adapt.depth" or not k.startswith("adapt.")]
        return [self.config(method, self.languages[0], dict(zip(keys, combo)))
                for method in self.methods
                for combo in itertools.product(*(dim_values(self.search[k]) for k in keys))]

    def arms(self) -> list[tuple[str, dict[str, Any]]]:
        """(method, fixed values) of every kind of trial: the methods, and MiniJoint's baseline."""
        arms = [(method, {}) for method in self.methods]
        if self.joint_baseline:
            arms.append(("standard", {"adapt.through_joint": True}))
        return arms

    def grid(self) -> list[dict[str, Any]]:
        """Every combination of languages, arms, discrete search values and seeds (the `grid` algorithm),
        or the explicit rows a confirm phase gives."""
        if self.points is not None:
            return list(self.points)
        points = []
        for (method, fixed), language in itertools.product(self.arms(), self.languages):
            keys = self.searched("minijoint" if fixed else method)
            for combo in itertools.product(*(dim_values(self.search[k]) for k in keys)):
                for seed in self.seeds:
                    points.append({"adapt.method": method, "adapt.language": language, **fixed,
                                   **dict(zip(keys, combo)), "adapt.seed": seed})
        return points


def dim_values(dim: dict) -> list:
    """All values of a discrete dimension."""
    if dim["type"] == "choice":
        return list(dim["values"])
    if dim["type"] == "int":
        return list(range(dim["low"], dim["high"] + 1))
    raise ValueError(f"{dim['type']} dimension is not discrete")


def describe(spec: Spec) -> str:
    """What a valid spec will run, for `minimodel validate`."""
    dims = [f"{k} {d['type']} " + (",".join(map(str, d["values"])) if d["type"] == "choice" else f"{d['low']}..{d['high']}")
            for k, d in spec.search.items()]
    trials = len(spec.grid()) if spec.search_alg == "grid" else spec.num_samples
    tuning = (f"tuning phase: {spec.tune['trials']} trials per arm and language, each arm its own Optuna study; "
              f"then `minimodel confirm` runs each arm's config with the best dev accuracy (the cheapest "
              f"within {spec.tune['tolerance']:g}) on fresh seeds") if spec.tune else ""
    arms = sorted({a for m, fixed in spec.arms() for a in ([f"{m} (joint)"] if fixed else [m])})
    models = sorted({b["model"]["name"] for b in spec.bases.values()})
    r = spec.resources
    return "\n".join([
        f"sweep {spec.name}: {len(spec.languages)} languages ({', '.join(spec.languages)}) x "
        f"{len(spec.methods)} methods ({', '.join(spec.methods)}); model {', '.join(models)}",
        f"search ({spec.search_alg}, {trials} trials, {spec.max_concurrent} at a time): {'; '.join(dims) or 'none'}",
        f"arms: {', '.join(arms)}; seeds {spec.seeds}; "
        + ("every searched key tuned on dev per arm and language" if spec.tune else
           f"compared within {', '.join(spec.conditions)}" + (f"; chosen on dev: {', '.join(spec.tuned)}" if spec.tuned else "")),
        f"trial resources: {r['cpus']:g} CPU, {r['gpus']:g} GPU"
        + (f", {r['workers']} Train workers" if r["workers"] else ", in-process")
        + f"; shared stages: {spec.stages['workers']} Train workers"
        + (f"; ASHA on accuracy by {spec.asha['time_attr']}" + (" per arm and language" if spec.tune else "") if spec.asha else ""),
        f"storage {spec.storage}; tracking {spec.tracking_uri}",
        *([tuning] if tuning else []),
    ])
