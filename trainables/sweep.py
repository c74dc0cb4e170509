"""A whole sweep: check the tracking store, run the shared stages, the Tune trials, then the frontier.

`minimodel sweep` and `minimodel frontier` call these; nothing here is needed to run one trial.
"""
from __future__ import annotations

import time
from pathlib import Path

import ray
from ray import tune

from minimodel import frontier
from minimodel.plan import Spec
from trainables import stages, tracking, tuner


def _paths(spec: Spec) -> tuple[str, str]:
    """(cache folder or URI, Ray storage folder or URI) under the spec's storage."""
    return f"{spec.storage}/cache", f"{spec.storage}/ray"


def _out_dir(spec: Spec, sweep: tracking.SweepRun) -> Path:
    """Local folder for the frontier files (the cwd when storage is an object store URI)."""
    root = Path(spec.storage) if "://" not in spec.storage else Path.cwd() / "minimodel-frontier"
    return root / spec.name / sweep.run_id


def run(spec: Spec, resume: bool = False) -> int:
    """Run a sweep end to end; returns the exit code (1 if any trial failed)."""
    tracking.check_reachable(spec.tracking_uri)
    cache_dir, storage_path = _paths(spec)
    sweep = tracking.start_sweep(spec.tracking_uri, spec.name, spec.storage,
                                 {"storage": spec.storage, "search_alg": spec.search_alg}, resume)
    client = sweep.client()
    previous = client.get_run(sweep.run_id).data.tags.get("tune_path") if resume else None
    started = not ray.is_initialized()
    if started:
        # Progress bars and load reports from a dozen worker processes only bury the trial lines.
        ray.init(logging_level="WARNING",
                 runtime_env={"env_vars": {"TQDM_DISABLE": "1", "TRANSFORMERS_VERBOSITY": "error"}})
    t0 = time.time()
    try:
        records = stages.run_stages(spec.stage_configs(), cache_dir, spec.stages, storage_path, spec.name, sweep)
        computed = [r for r in records if not r["cached"]]
        print(f"shared stages: {len(records)} ({len(computed)} computed, {len(records) - len(computed)} cached) "
              f"in {time.time() - t0:.0f} s")
        for record in records:
            print(stages.summary_line(record))
        t1 = time.time()
        if previous and tune.Tuner.can_restore(previous):
            experiment = tuner.restore(previous, spec, cache_dir, storage_path, sweep)
        else:
            name = f"{spec.name}-{time.strftime('%Y%m%d-%H%M%S')}"
            client.set_tag(sweep.run_id, "tune_path", f"{storage_path}/{name}")
            experiment = tuner.build(spec, name, cache_dir, storage_path, sweep)
        results = experiment.fit()
        errors = [r.error for r in results if r.error]
        trials_s = time.time() - t1
        # Slot time not spent inside trial functions: actor start, scheduling, result handling, idle tail.
        busy = sum((r.metrics or {}).get("time_total_s", 0.0) for r in results)
        overhead = max(0.0, trials_s * min(spec.max_concurrent, len(results)) - busy) / max(len(results), 1)
        print(f"trials: {len(results)} ({len(errors)} failed) in {trials_s:.0f} s; "
              f"Ray overhead about {overhead:.1f} s per trial")
        if errors:
            print(f"first failure: {str(errors[0]).strip().splitlines()[-1]}")
        tracking.close_children(sweep, {Path(r.path).name for r in results if r.error})  # trial dir = trial id
        table = tracking.read_points(sweep)
        if not table.empty:
            summary, files = frontier.write(table, _out_dir(spec, sweep))
            tracking.log_artifacts(sweep, files)
            print(frontier.format_table(summary))
            print(f"frontier plot: {files[2]}")
        tracking.log_metrics(sweep, sweep.run_id, {"trials": len(results), "failed_trials": len(errors),
                                                   "wall_s": time.time() - t0, "trials_wall_s": trials_s,
                                                   "ray_overhead_s_per_trial": overhead})
        tracking.end_run(sweep, sweep.run_id, "FAILED" if errors else "FINISHED")
        print(f"MLflow: {tracking.ui_hint(sweep)}")
        return 1 if errors else 0
    except BaseException:
        tracking.end_run(sweep, sweep.run_id, "FAILED")
        raise
    finally:
        if started:
            ray.shutdown()


def show_frontier(tracking_uri: str, experiment: str, run_id: str | None = None, out_dir: str | None = None) -> int:
    """Read a sweep's trials back from MLflow, print the frontier table, write and log CSV and plot."""
    tracking.check_reachable(tracking_uri)
    sweep = tracking.latest_sweep(tracking_uri, experiment)
    if run_id:
        sweep = tracking.SweepRun(tracking_uri, sweep.experiment_id, run_id)
    table = tracking.read_points(sweep)
    if table.empty:
        raise tracking.TrackingError(f"sweep run {sweep.run_id} of {experiment!r} has no trial results")
    summary, files = frontier.write(table, out_dir or Path.cwd() / "frontier" / experiment / sweep.run_id)
    tracking.log_artifacts(sweep, files)
    print(frontier.format_table(summary))
    print(f"frontier plot: {files[2]}\nMLflow: {tracking.ui_hint(sweep)}")
    return 0
