"""A validated sweep spec: which trials it runs (arms x languages x search values x seeds) and the
trial config of each. minimodel.experiment.spec reads and checks the YAML and builds one; nothing here validates.
"""

from __future__ import annotations

import copy
import itertools
from dataclasses import dataclass
from typing import Any

from minimodel.experiment import arms
from minimodel.experiment.config import set_dotted, trial_config


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
    joint_baseline: bool  # add the arms that borrow a listed method's config (MiniJoint's baseline)
    conditions: list[str]  # dotted keys whose values make a comparison (init, and searched non-tuned keys)
    tuned: list[str]  # searched hyper-parameters, chosen on dev per arm
    description: str = ""
    tune: dict | None = None  # a tuning phase: {trials (per arm and language), tolerance (the choice rule's)}
    points: list[dict] | None = None  # explicit grid rows (a confirm phase's chosen configs x fresh seeds)

    @property
    def methods(self) -> list[str]:
        return list(self.bases)

    def searched(self, arm: str) -> list[str]:
        """The search keys that vary for an arm: not those its method pins (standard pins depth)."""
        return [k for k in self.search if k not in self.pinned[base_of(arm)]]

    def config(self, arm: str, language: str, values: dict[str, Any] | None = None) -> dict:
        """The trial config of one trial: the arm's base with language and searched values set.
        Values of keys the arm pins are ignored, so equal trials share one cache entry. An arm that
        borrows (MiniJoint's baseline) takes the base of the method it borrows: its source model and depth."""
        cfg = copy.deepcopy(self.bases[base_of(arm)])
        cfg["adapt"].update(method=arm, language=language)
        for key, value in (values or {}).items():
            if key not in self.pinned[base_of(arm)]:
                set_dotted(cfg, key, value)
        return trial_config(cfg)

    def stage_configs(self) -> list[dict]:
        """Trial configs that between them need every shared stage this sweep can use.

        Shared stages read no `adapt.*` key but the depth, and the spec only allows discrete search
        dimensions outside `adapt.*`, so the stage set is finite and known before any trial starts.
        """
        keys = [k for k in self.search if k == "adapt.depth" or not k.startswith("adapt.")]
        return [
            self.config(method, self.languages[0], dict(zip(keys, combo)))
            for method in self.methods
            for combo in itertools.product(*(dim_values(self.search[k]) for k in keys))
        ]

    def arms(self) -> list[str]:
        """Every arm the sweep runs: the methods, and (joint_baseline) the arms that borrow one of them."""
        added = [a.name for a in arms.ARMS.values() if a.borrows in self.bases and a.name not in self.bases]
        return self.methods + (added if self.joint_baseline else [])

    def variants(self, method: str) -> list[str]:
        """The added arms a search samples as a form of `method` (standard-through-joint of standard)."""
        return [a for a in self.arms() if arms.ARMS[a].variant_of == method and a not in self.bases]

    def grid(self) -> list[dict[str, Any]]:
        """Every combination of languages, arms, discrete search values and seeds (the `grid` algorithm),
        or the explicit rows a confirm phase gives."""
        if self.points is not None:
            return list(self.points)
        points = []
        for arm, language in itertools.product(self.arms(), self.languages):
            keys = self.searched(arm)
            for combo in itertools.product(*(dim_values(self.search[k]) for k in keys)):
                for seed in self.seeds:
                    points.append({"adapt.method": arm, "adapt.language": language, **dict(zip(keys, combo)), "adapt.seed": seed})
        return points


def base_of(arm: str) -> str:
    """The method whose base config an arm takes: its own, or the one it borrows."""
    return arms.ARMS[arm].borrows or arm


def dim_values(dim: dict) -> list:
    """All values of a discrete dimension."""
    if dim["type"] == "choice":
        return list(dim["values"])
    if dim["type"] == "int":
        return list(range(dim["low"], dim["high"] + 1))
    raise ValueError(f"{dim['type']} dimension is not discrete")


def summary(spec: Spec) -> str:
    """What a valid spec will run, for `minimodel validate`."""
    dims = [
        f"{k} {d['type']} " + (",".join(map(str, d["values"])) if d["type"] == "choice" else f"{d['low']}..{d['high']}")
        for k, d in spec.search.items()
    ]
    trials = len(spec.grid()) if spec.search_alg == "grid" else spec.num_samples
    names = sorted(spec.arms())
    tuning = (
        (
            f"tuning phase: {spec.tune['trials']} trials per arm and language, each arm its own Optuna study; "
            f"then `minimodel confirm` runs each arm's config with the best dev accuracy (the cheapest "
            f"within {spec.tune['tolerance']:g}) on fresh seeds"
        )
        if spec.tune
        else ""
    )
    models = sorted({b["model"]["name"] for b in spec.bases.values()})
    r = spec.resources
    return "\n".join(
        [
            f"sweep {spec.name}: {len(spec.languages)} languages ({', '.join(spec.languages)}) x "
            f"{len(spec.methods)} methods ({', '.join(spec.methods)}); model {', '.join(models)}",
            f"search ({spec.search_alg}, {trials} trials, {spec.max_concurrent} at a time): {'; '.join(dims) or 'none'}",
            f"arms: {', '.join(names)}; seeds {spec.seeds}; "
            + (
                "every searched key tuned on dev per arm and language"
                if spec.tune
                else f"compared within {', '.join(spec.conditions)}" + (f"; chosen on dev: {', '.join(spec.tuned)}" if spec.tuned else "")
            ),
            f"trial resources: {r['cpus']:g} CPU, {r['gpus']:g} GPU"
            + (f", {r['workers']} Train workers" if r["workers"] else ", in-process")
            + f"; shared stages: {spec.stages['workers']} Train workers"
            + (f"; ASHA on accuracy by {spec.asha['time_attr']}" + (" per arm and language" if spec.tune else "") if spec.asha else ""),
            f"storage {spec.storage}; tracking {spec.tracking_uri}",
            *([tuning] if tuning else []),
        ]
    )
