"""A whole sweep: check the tracking store, run the shared stages, the Tune trials, then the frontier.

`minimodel sweep` and `minimodel frontier` call these; nothing here is needed to run one trial.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd
import ray
import yaml
from mlflow.exceptions import MlflowException
from ray import tune
from ray.exceptions import AuthenticationError
from ray.job_config import JobConfig
from requests.exceptions import RequestException

from minimodel.experiment import checks, frontier, frontier_report, pipeline
from minimodel.experiment.plan import Spec
from minimodel.experiment.spec import SpecError
from trainables import head_watch, logs, mlflow_view, stages, tracking, trial, tuner, tuning

MIN_FREE_BYTES = 2**30  # below this a sweep would fail mid-way on its first model or checkpoint


def _paths(spec: Spec) -> tuple[str, str]:
    """(cache folder or URI, Ray storage folder or URI) under the spec's storage."""
    return f"{spec.storage}/cache", f"{spec.storage}/ray"


def _out_dir(spec: Spec, sweep: tracking.SweepRun) -> Path:
    """Local folder for the frontier files (the cwd when storage is an object store URI)."""
    root = Path(spec.storage) if "://" not in spec.storage else Path.cwd() / "minimodel-frontier"
    return root / spec.name / sweep.run_id


def check_storage(storage: str) -> None:
    """One line before anything starts when the storage folder cannot be written or is nearly full."""
    if "://" in storage:
        return  # an object store: Ray reports its own errors
    folder = Path(storage)
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=folder):
            pass
    except OSError as e:
        raise SpecError(f"storage: cannot write to {folder} ({e.strerror})") from None
    free = shutil.disk_usage(folder).free
    if free < MIN_FREE_BYTES:
        raise SpecError(
            f"storage: only {free / 2**20:.0f} MiB free on {folder}; a sweep writes models, checkpoints "
            f"and results there: free at least {MIN_FREE_BYTES / 2**30:.0f} GiB or choose another storage"
        )


def log_kept(results: tune.ResultGrid, spec: Spec, cache_dir: str, sweep: tracking.SweepRun) -> int:
    """Log the finished trials whose MLflow writes failed (the tracking server was away) from their
    results in the cache; returns how many."""
    kept = [r for r in results if not r.error and (r.metrics or {}).get("logged") == 0]
    for result in kept:
        cfg, name, tags, params = trial.trial_run(spec, result.config, cache_dir, Path(result.path).name)
        if pipeline.stage_done("adapt", cfg, cache_dir):  # never computes anything here
            tracking.log_trial(sweep, name, tags, params, pipeline.run_trial(cfg, cache_dir))
    return len(kept)


def run(spec: Spec, resume: bool = False, tags: dict[str, str] | None = None) -> int:
    """Run a sweep end to end; returns the exit code (1 if any trial failed). `tags` go on its parent
    run (a confirm phase's `phase` and `tuned_from`); a tuning phase is tagged phase=tune."""
    tracking.check_reachable(spec.tracking_uri)
    check_storage(spec.storage)
    try:
        return _run(spec, resume, {**({"phase": "tune"} if spec.tune else {}), **(tags or {})})
    except (MlflowException, RequestException) as e:
        raise tracking.TrackingError(
            f"tracking_uri: MLflow at {spec.tracking_uri} stopped answering during the sweep ({type(e).__name__}); "
            f"finished trials are kept in {spec.storage}: run `minimodel sweep SPEC --resume` once it is back"
        ) from None


def cluster_nodes() -> list[dict[str, float]] | None:
    """CPUs and GPUs of every node the connected Ray cluster has, and of every node type its autoscaler
    may add (the bootstrap config `ray up` leaves on the head); None when a node type does not say."""
    nodes = [n["Resources"] for n in ray.nodes() if n["Alive"]]
    bootstrap = Path("~/ray_bootstrap_config.yaml").expanduser()  # where Ray itself looks (Tune's cluster_info)
    if bootstrap.is_file():
        for node_type in (yaml.safe_load(bootstrap.read_text()).get("available_node_types") or {}).values():
            if node_type.get("max_workers", 0) > 0:
                if "CPU" not in (node_type.get("resources") or {}):
                    return None
                nodes.append(node_type["resources"])
    return nodes


def connect_ray(env_vars: dict[str, str]) -> None:
    """ray.init for a sweep: every trial and stage gets env_vars, and the MLflow credentials of the
    driver (nodes other than the head have none of their own). A token the cluster refuses is one
    line: what Ray's C++ core prints to stderr while connecting is held back, and shown only when the
    connection did not fail on the token."""
    credentials = {k: os.environ[k] for k in tracking.CREDENTIALS if os.environ.get(k)}
    # A job's own env_vars already reach every worker, and Ray refuses to merge a key set twice: its value wins.
    ours = {k: v for k, v in {**env_vars, **credentials}.items() if k not in _job_env_vars()}
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile() as said:
        os.dup2(said.fileno(), 2)
        try:
            ray.init(logging_level="INFO" if logs.verbose() else "WARNING", runtime_env={"env_vars": ours})
            refused = None
        except (ConnectionError, AuthenticationError) as e:
            refused = e
        finally:
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)
        said.seek(0)
        text = said.read().decode(errors="replace")
    if refused is not None and "InvalidAuthToken" in text + str(refused):
        raise SpecError(
            f"{auth_token_setting()}: the Ray cluster at {os.environ.get('RAY_ADDRESS')} refused this token; "
            "use the cluster's (`ray get-auth-token` on its head)"
        ) from None
    sys.stderr.write(text)
    if refused is not None:
        raise refused


def _job_env_vars() -> dict[str, str]:
    """The env_vars of the Ray job this driver runs as (`ray job submit --runtime-env-json`), if any."""
    injected = os.environ.get("RAY_JOB_CONFIG_JSON_ENV_VAR")
    if not injected:
        return {}
    return (JobConfig.from_json(json.loads(injected)).runtime_env or {}).get("env_vars", {})


def auth_token_setting() -> str:
    """Where Ray took its token from, in Ray's order (RAY_AUTH_TOKEN, RAY_AUTH_TOKEN_PATH, ~/.ray/auth_token)."""
    for setting in ("RAY_AUTH_TOKEN", "RAY_AUTH_TOKEN_PATH"):
        if os.environ.get(setting):
            return setting
    return "~/.ray/auth_token"


def _run(spec: Spec, resume: bool, tags: dict[str, str]) -> int:
    cache_dir, storage_path = _paths(spec)
    started = not ray.is_initialized()
    if started:
        # RAY_ADDRESS (set by `ray job submit`, or by hand) joins a running cluster; else a local one starts.
        # Training bars reach the driver through Ray's tqdm (trainables/progress.py); what else does, trainables/logs.py.
        connect_ray(logs.worker_env())
        gcs = ray.get_runtime_context().gcs_address
        watching = head_watch.watch(
            gcs,
            f"ray: the head at {gcs} stopped answering during the sweep ({head_watch.grace_s():.0f} s "
            f"without its GCS); finished trials are kept in {spec.storage}: start the head "
            "again at the same address (then the workers), and run `minimodel sweep SPEC --resume`",
        )
    try:  # what the cluster offers, checked before any MLflow run or Train job exists
        checks.check_resources(spec.resources, spec.stages, cluster_nodes(), "the Ray cluster")
        sweep = tracking.start_sweep(
            spec.tracking_uri, spec.name, spec.storage, {"storage": spec.storage, "search_alg": spec.search_alg, **tags}, resume
        )
        mlflow_view.save_view(sweep, f"{spec.name}: trials by language", spec.languages)
        client = sweep.client()
        previous = client.get_run(sweep.run_id).data.tags.get("tune_path") if resume else None
    except BaseException:
        if started:
            watching.set()
            ray.shutdown()
        raise
    t0 = time.time()
    try:
        records = stages.run_stages(spec.stage_configs(), cache_dir, spec.stages, storage_path, spec.name, sweep)
        computed = [r for r in records if not r["cached"]]
        print(
            f"shared stages: {len(records)} ({len(computed)} computed, {len(records) - len(computed)} cached) in {time.time() - t0:.0f} s"
        )
        for record in records:
            print(stages.summary_line(record))
        t1 = time.time()
        logs.quiet_optuna()
        if previous and tune.Tuner.can_restore(previous):
            experiment = tuner.restore(previous, spec, cache_dir, storage_path, sweep)
        else:
            name = f"{spec.name}-{time.strftime('%Y%m%d-%H%M%S')}"
            client.set_tag(sweep.run_id, "tune_path", f"{storage_path}/{name}")
            experiment = tuner.build(spec, name, cache_dir, storage_path, sweep)
        results = experiment.fit()
        if kept := log_kept(results, spec, cache_dir, sweep):
            print(f"logged {kept} trials whose results were kept while MLflow was away")
        errors = [r.error for r in results if r.error]
        trials_s = time.time() - t1
        # Slot time not spent inside trial functions: actor start, scheduling, result handling, idle tail.
        busy = sum((r.metrics or {}).get("time_total_s", 0.0) for r in results)
        overhead = max(0.0, trials_s * min(spec.max_concurrent, len(results)) - busy) / max(len(results), 1)
        print(f"trials: {len(results)} ({len(errors)} failed) in {trials_s:.0f} s; Ray overhead about {overhead:.1f} s per trial")
        if errors:
            print(f"first failure: {str(errors[0]).strip().splitlines()[-1]}")
        # A trial left short by a fit that ended cleanly was stopped by the scheduler; by an interrupted one, cut off.
        clean = results.num_terminated + results.num_errors == len(results)
        failed = {Path(r.path).name for r in results if r.error}  # trial dir = trial id
        stopped = {Path(r.path).name for r in results if not r.error} if clean else set()
        tracking.close_children(sweep, failed, stopped)
        if spec.tune:  # its arms are compared by `minimodel confirm`, each at its chosen config
            tuning.report(sweep, spec, _out_dir(spec, sweep) / "tuning")
        elif not (table := tracking.read_points(sweep)).empty:
            report_frontier(sweep, table, _out_dir(spec, sweep))
        tracking.log_metrics(
            sweep,
            sweep.run_id,
            {
                "trials": len(results),
                "failed_trials": len(errors),
                "wall_s": time.time() - t0,
                "trials_wall_s": trials_s,
                "ray_overhead_s_per_trial": overhead,
            },
        )
        tracking.end_run(sweep, sweep.run_id, "FAILED" if errors else "FINISHED")
        print(f"MLflow: {tracking.ui_hint(sweep)}")
        return 1 if errors else 0
    except (MlflowException, RequestException):
        raise  # the store is what failed: asking it again would only wait out its retries once more
    except BaseException:
        with contextlib.suppress(Exception):
            tracking.close_children(sweep)  # every trial still running was cut off
            tracking.end_run(sweep, sweep.run_id, "FAILED")
        raise
    finally:
        if started:
            watching.set()
            ray.shutdown()


def show_frontier(
    tracking_uri: str, experiment: str, run_id: str | None = None, out_dir: str | None = None, tolerance: float = frontier.MATCH_TOLERANCE
) -> int:
    """Read a sweep's trials back from MLflow, print the frontier table, write and log CSV and plot."""
    tracking.check_reachable(tracking_uri)
    sweep = tracking.latest_sweep(tracking_uri, experiment)
    if run_id:
        sweep = tracking.SweepRun(tracking_uri, sweep.experiment_id, run_id)
    table = tracking.read_points(sweep)
    if table.empty:
        raise tracking.TrackingError(f"sweep run {sweep.run_id} of {experiment!r} has no trial results")
    folder = Path.cwd() / "frontier" / experiment / sweep.run_id / (frontier_report.tolerance_folder(tolerance) or "")
    report_frontier(sweep, table, out_dir or folder, tolerance)
    print(f"MLflow: {tracking.ui_hint(sweep)}")
    return 0


def report_frontier(
    sweep: tracking.SweepRun, table: pd.DataFrame, out_dir: str | Path, tolerance: float = frontier.MATCH_TOLERANCE
) -> None:
    """Write the frontier's files (evaluations.csv among them), log them to the sweep's run and print its table."""
    files = frontier_report.report(table, out_dir, tolerance)
    folder = frontier_report.tolerance_folder(tolerance)
    tracking.log_artifacts(sweep, files.paths, folder=folder)
    if folder is None:  # the sweep's own tolerance
        mlflow_view.describe_sweep(sweep, frontier_report.format_markdown(files.summary), files.plot, files.markdown)
