"""A tuning phase's search: one Optuna study and one ASHA per arm and language, the same for every arm.

Arms must not compete for one study's trials (a sampler drawn to the easiest arm would give it the
most trials) nor for one scheduler's rungs (ASHA would stop a hard language's trials because another
language scores higher). So each (arm, language) group gets its own OptunaSearch over the same space
(less the keys the arm pins: standard has no depth), the same sampler seed, `tune.trials` trials, and
its own ASHAScheduler; trials are handed out round-robin over the groups, so every language runs at
once. A trial's config is the group's fixed values (adapt.method, the arm, and adapt.language) plus
the values its study sampled.
"""

from __future__ import annotations

import functools
import pickle

import optuna
from ray.tune.schedulers import ASHAScheduler, FIFOScheduler
from ray.tune.search import Searcher
from ray.tune.search.optuna import OptunaSearch

from minimodel.experiment.plan import Spec

Group = tuple[str, str]  # (arm, language)


def suggest_values(ot_trial: optuna.Trial, spec: Spec, keys: list[str]) -> None:
    """Optuna define-by-run: one suggestion per search key."""
    for key in keys:
        dim = spec.search[key]
        if dim["type"] == "choice":
            ot_trial.suggest_categorical(key, dim["values"])
        elif dim["type"] == "int":
            ot_trial.suggest_int(key, dim["low"], dim["high"])
        else:
            ot_trial.suggest_float(key, dim["low"], dim["high"], log=dim["type"] == "loguniform")


def group_of(config: dict) -> Group:
    return config["adapt.method"], config["adapt.language"]


def groups(spec: Spec) -> list[Group]:
    """Every (arm, language) group, language-minor: consecutive trials adapt different languages."""
    return [(arm, language) for arm in spec.arms() for language in spec.languages]


def searched_keys(spec: Spec, group: Group) -> list[str]:
    return spec.searched(group[0])


def objective(spec: Spec) -> tuple[str | list[str], str | list[str]]:
    """(metric, mode) of every study: dev accuracy, or dev accuracy and adaptation FLOPs."""
    if spec.search_alg == "optuna-multi":
        return ["accuracy", "flops"], ["max", "min"]
    return "accuracy", "max"


class ArmSearch(Searcher):
    """Round-robin over one OptunaSearch per (arm, language), `spec.tune['trials']` trials each."""

    def __init__(self, spec: Spec) -> None:
        metric, mode = objective(spec)
        super().__init__(metric=metric if isinstance(metric, str) else None, mode=mode if isinstance(mode, str) else None)
        seed = spec.bases[spec.methods[0]]["seed"]
        trials = spec.tune["trials"]
        self.budget = trials
        self.order = groups(spec)
        self.studies = {
            group: OptunaSearch(
                functools.partial(suggest_values, spec=spec, keys=searched_keys(spec, group)),
                metric=metric,
                mode=mode,
                # the same seed and warm-up for every arm: each gets the same first draws of its space
                sampler=optuna.samplers.TPESampler(seed=seed, n_startup_trials=max(2, trials // 3)),
            )
            for group in self.order
        }
        self.given = {group: 0 for group in self.order}
        self.owner: dict[str, Group] = {}

    def set_search_properties(self, metric, mode, config, **spec) -> bool:
        return True  # every study has its metric and space already

    def suggest(self, trial_id: str) -> dict | None:
        open_groups = [g for g in self.order if self.given[g] < self.budget]
        if not open_groups:
            return Searcher.FINISHED
        group = min(open_groups, key=lambda g: self.given[g])  # min() keeps the first of equals: round-robin
        values = self.studies[group].suggest(trial_id)
        if values is None or values == Searcher.FINISHED:
            return values
        self.given[group] += 1
        self.owner[trial_id] = group
        arm, language = group
        return {"adapt.method": arm, "adapt.language": language, **values}

    def on_trial_result(self, trial_id: str, result: dict) -> None:
        if trial_id in self.owner:
            self.studies[self.owner[trial_id]].on_trial_result(trial_id, result)

    def on_trial_complete(self, trial_id: str, result: dict | None = None, error: bool = False) -> None:
        if trial_id in self.owner:
            self.studies[self.owner.pop(trial_id)].on_trial_complete(trial_id, result, error)

    def save(self, checkpoint_path: str) -> None:
        with open(checkpoint_path, "wb") as f:
            pickle.dump(self.__dict__, f)

    def restore(self, checkpoint_path: str) -> None:
        with open(checkpoint_path, "rb") as f:
            self.__dict__.update(pickle.load(f))


def asha_scheduler(asha: dict) -> ASHAScheduler:
    """ASHA on the spec's time attribute (adaptation FLOPs), keeping the trials of best dev accuracy."""
    return ASHAScheduler(
        time_attr=asha["time_attr"],
        metric="accuracy",
        mode="max",
        max_t=asha["max_t"],
        grace_period=asha["grace_period"],
        reduction_factor=asha["reduction_factor"],
    )


class ArmASHA(FIFOScheduler):
    """One ASHAScheduler per (arm, language): a trial competes at each rung with its own group only."""

    def __init__(self, asha: dict) -> None:
        super().__init__()
        self.asha = asha
        self.schedulers: dict[Group, ASHAScheduler] = {}

    def _of(self, trial) -> ASHAScheduler:
        group = group_of(trial.config)
        if group not in self.schedulers:
            self.schedulers[group] = asha_scheduler(self.asha)
        return self.schedulers[group]

    def set_search_properties(self, metric, mode, **spec) -> bool:
        return True  # each group's ASHA has its metric already

    def on_trial_add(self, tune_controller, trial) -> None:
        self._of(trial).on_trial_add(tune_controller, trial)

    def on_trial_result(self, tune_controller, trial, result: dict) -> str:
        return self._of(trial).on_trial_result(tune_controller, trial, result)

    def on_trial_complete(self, tune_controller, trial, result: dict) -> None:
        self._of(trial).on_trial_complete(tune_controller, trial, result)

    def on_trial_remove(self, tune_controller, trial) -> None:
        self._of(trial).on_trial_remove(tune_controller, trial)

    def on_trial_error(self, tune_controller, trial) -> None:
        self._of(trial).on_trial_error(tune_controller, trial)

    def debug_string(self) -> str:
        return "\n".join(f"{arm} {lang}: {s.debug_string()}" for (arm, lang), s in self.schedulers.items())
