"""Phase 2 of tune-then-confirm: each arm's chosen config, on seeds the tuning never used, as a grid.

The configs are the `chosen.ARM.LANGUAGE.KEY` params of the tuning run (trainables/tuning.py), exactly
as logged; the seeds are the first N not used by any tuning trial. The confirm run is a plain sweep
over those points, compared by the frontier (test accuracy at the target reported), tagged with the
tuning run it took its configs from.
"""

from __future__ import annotations

import dataclasses

from mlflow.tracking import MlflowClient

from minimodel.experiment.plan import Spec
from minimodel.experiment.spec import SpecError
from trainables import sweep, tracking
from trainables.tuning import typed


def tuning_run(spec: Spec, run_id: str | None = None):
    """The tuning run to confirm: the given one (finished or not: a run with a failed trial still chose
    configs for the others), or the spec's latest finished tuning run."""
    client = MlflowClient(tracking_uri=spec.tracking_uri)
    found = client.get_experiment_by_name(spec.name)
    if found is None:
        raise tracking.TrackingError(
            f"no MLflow experiment named {spec.name!r} at {spec.tracking_uri}: run the tuning phase first (minimodel sweep SPEC)"
        )
    query = "tags.phase = 'tune' and " + (f"attributes.run_id = '{run_id}'" if run_id else "attributes.status = 'FINISHED'")
    runs = client.search_runs([found.experiment_id], query, order_by=["attributes.start_time DESC"], max_results=1)
    if not runs and run_id:
        raise tracking.TrackingError(f"--from {run_id}: not a tuning run of experiment {spec.name!r} at {spec.tracking_uri}")
    if not runs:
        raise tracking.TrackingError(
            f"experiment {spec.name!r} at {spec.tracking_uri} has no finished tuning run: "
            "run `minimodel sweep SPEC` to the end first, or name one with --from RUN_ID"
        )
    return runs[0]


def chosen(spec: Spec, params: dict[str, str]) -> dict[tuple[str, str], dict]:
    """(arm, language) -> the searched values chosen for it, typed, from the tuning run's params."""
    out: dict[tuple[str, str], dict] = {}
    for name, text in params.items():
        if name.startswith("chosen.") and not name.endswith(".trial"):
            _, arm, language, key = name.split(".", 3)
            out.setdefault((arm, language), {})[key] = typed(spec, key, text)
    return out


def used_seeds(spec: Spec, run_id: str) -> set[int]:
    client = MlflowClient(tracking_uri=spec.tracking_uri)
    runs = client.search_runs(
        [client.get_run(run_id).info.experiment_id], f"tags.mlflow.parentRunId = '{run_id}' and tags.kind = 'trial'", max_results=10000
    )
    return {int(r.data.tags["seed"]) for r in runs}


def fresh_seeds(used: set[int], count: int) -> list[int]:
    """The first `count` non-negative seeds that are not in `used`."""
    seeds, seed = [], 0
    while len(seeds) < count:
        if seed not in used:
            seeds.append(seed)
        seed += 1
    return seeds


def points(configs: dict[tuple[str, str], dict], seeds: list[int]) -> list[dict]:
    """Grid rows: every chosen config on every seed."""
    rows = []
    for (arm, language), values in sorted(configs.items()):
        for seed in seeds:
            rows.append({"adapt.method": arm, "adapt.language": language, **values, "adapt.seed": seed})
    return rows


def confirm_spec(spec: Spec, configs: dict[tuple[str, str], dict], seeds: list[int]) -> Spec:
    """The spec as a grid over the chosen configs. Each arm has one config per language, chosen on dev,
    so the frontier compares arms under the init alone; the searched keys describe the config."""
    return dataclasses.replace(
        spec,
        search_alg="grid",
        num_samples=0,
        asha=None,
        tune=None,
        seeds=seeds,
        points=points(configs, seeds),
        conditions=["adapt.init"],
        tuned=[k for k in spec.search if k != "adapt.depth"],
    )


def run(spec: Spec, seeds: int, from_run: str | None = None, resume: bool = False) -> int:
    """Confirm the latest (or the given) tuning run of the spec on `seeds` fresh seeds."""
    if not spec.tune:
        raise SpecError("confirm: the spec has no tune: section, so there is no tuning phase to confirm")
    if seeds < 1:
        raise SpecError(f"--seeds {seeds}: at least 1")
    tracking.check_reachable(spec.tracking_uri)
    source = tuning_run(spec, from_run)
    configs = chosen(spec, source.data.params)
    if not configs:
        raise tracking.TrackingError(f"tuning run {source.info.run_id} chose no config (no trial ran to the end)")
    fresh = fresh_seeds(used_seeds(spec, source.info.run_id), seeds)
    print(f"confirm: {len(configs)} chosen configs of tuning run {source.info.run_id} on fresh seeds {fresh}")
    return sweep.run(
        confirm_spec(spec, configs, fresh),
        resume,
        {"phase": "confirm", "tuned_from": source.info.run_id, "seeds": ",".join(map(str, fresh))},
    )
