"""Spec -> Ray Tune Tuner: search algorithm, ASHA, concurrency and resources.

Languages and methods are searched dimensions like any other (Optuna), seeded so that every
language x method pair gets a trial first, or the rows of an explicit grid. A trial's values are a
flat dict of dotted trial-config keys, e.g. {"adapt.method": "minipost", "adapt.depth": 2} (under
"point" for the grid).
"""

from __future__ import annotations

import functools
import itertools

import optuna
from ray import tune
from ray.tune.search import BasicVariantGenerator
from ray.tune.search.optuna import OptunaSearch

from minimodel.experiment.plan import Spec
from trainables import arm_search
from trainables.trial import VARIANT, adapt
from trainables.tracking import SweepRun

MAX_FAILURES = 2  # retries of a failed trial


def define_space(ot_trial: optuna.Trial, spec: Spec) -> dict[str, str] | None:
    """Optuna define-by-run space: a method's pinned keys (standard's depth) are not sampled for it.
    An arm the spec adds as a form of a method (MiniJoint's baseline, of standard) is drawn after it."""
    method = ot_trial.suggest_categorical("adapt.method", spec.methods)
    ot_trial.suggest_categorical("adapt.language", spec.languages)
    variants = spec.variants(method)
    arm = ot_trial.suggest_categorical(VARIANT, [method, *variants]) if variants else method
    arm_search.suggest_values(ot_trial, spec, spec.searched(arm))
    return {"adapt.method": arm} if arm != method else None  # the trial's config names its arm


def search_alg(spec: Spec):
    """OptunaSearch (TPE, or multi-objective TPE over accuracy and FLOPs), a tuning phase's study per
    arm and language, or the explicit grid."""
    if spec.search_alg == "grid":
        return BasicVariantGenerator(max_concurrent=spec.max_concurrent)  # over param_space's grid_search
    if spec.tune:
        return arm_search.ArmSearch(spec)
    # Pairs in language-minor order: consecutive (so concurrent) trials are different languages.
    pairs = [{"adapt.method": m, "adapt.language": lang} for m, lang in itertools.product(spec.methods, spec.languages)]
    seed = spec.bases[spec.methods[0]]["seed"]
    metric, mode = arm_search.objective(spec)
    return OptunaSearch(
        functools.partial(define_space, spec=spec),  # a partial pickles (Tune saves searcher state); a closure does not
        metric=metric,
        mode=mode,
        points_to_evaluate=pairs,
        sampler=optuna.samplers.TPESampler(seed=seed),
    )


def format_values(values: dict) -> str:
    """'lr=0.001 depth=2': searched values with short names, for one line of a terminal."""
    return " ".join(
        f"{k.removeprefix('adapt.')}={v:.3g}" if isinstance(v, float) else f"{k.removeprefix('adapt.')}={v}" for k, v in values.items()
    )


class Progress(tune.Callback):
    """One line per finished trial, instead of Tune's per-trial tables."""

    def on_trial_complete(self, iteration: int, trials: list, trial, **info) -> None:
        config, result = trial.config.get("point", trial.config), trial.last_result
        values = format_values({k: v for k, v in config.items() if k not in ("adapt.method", "adapt.language", VARIANT)})
        print(
            f"trial {config['adapt.method']:<9} {config['adapt.language']:<5} {values}: accuracy "
            f"{result.get('accuracy', float('nan')):.3f} at {result.get('flops', 0):.3g} FLOPs, "
            f"{result.get('time_total_s', 0):.1f} s",
            flush=True,
        )

    def on_trial_error(self, iteration: int, trials: list, trial, **info) -> None:
        config = trial.config.get("point", trial.config)
        print(
            f"trial {trial.trial_id} {config.get('adapt.method')} {config.get('adapt.language')} failed (see {trial.local_path})",
            flush=True,
        )


def trainable(spec: Spec, cache_dir: str, storage_path: str, sweep: SweepRun | None):
    """The trial function with its fixed arguments and the spec's per-trial resources."""
    fn = tune.with_parameters(adapt, spec=spec, cache_dir=cache_dir, storage_path=storage_path, sweep=sweep)
    return tune.with_resources(fn, {"cpu": spec.resources["cpus"], "gpu": spec.resources["gpus"]})


def build(spec: Spec, name: str, cache_dir: str, storage_path: str, sweep: SweepRun | None = None) -> tune.Tuner:
    """A fresh Tuner for the spec (run it with .fit())."""
    scheduler = None
    if spec.asha and spec.tune:
        scheduler = arm_search.ArmASHA(spec.asha)
    elif spec.asha:
        scheduler = arm_search.asha_scheduler(spec.asha)
    grid = spec.search_alg == "grid"
    return tune.Tuner(
        trainable(spec, cache_dir, storage_path, sweep),
        tune_config=tune.TuneConfig(
            search_alg=search_alg(spec),
            scheduler=scheduler,
            num_samples=1 if grid else spec.num_samples,
            max_concurrent_trials=None if grid else spec.max_concurrent,  # the grid generator limits itself
            # One process per concurrent trial, kept between trials: torch is imported once, not per trial.
            reuse_actors=not spec.resources["workers"],
            trial_dirname_creator=lambda t: t.trial_id,
        ),
        # A trial whose process dies (a node lost, a kill) is retried; it resumes from its checkpoint in the cache.
        run_config=tune.RunConfig(
            name=name,
            storage_path=storage_path,
            verbose=0,
            callbacks=[Progress()],
            failure_config=tune.FailureConfig(max_failures=MAX_FAILURES),
        ),
        # The grid's rows are whole points (standard has no depth), so the grid runs over points, not keys.
        param_space={"point": tune.grid_search(spec.grid())} if grid else None,
    )


def restore(path: str, spec: Spec, cache_dir: str, storage_path: str, sweep: SweepRun | None = None) -> tune.Tuner:
    """The Tuner of an interrupted sweep: finished trials are kept, unfinished and errored ones rerun."""
    return tune.Tuner.restore(path, trainable=trainable(spec, cache_dir, storage_path, sweep), resume_errored=True)
