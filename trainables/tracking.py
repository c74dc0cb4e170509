"""MLflow: one experiment per sweep, a parent run per sweep, a child run per trial and per shared stage.

Everything goes through an MlflowClient with an explicit tracking URI and explicit parent run ids,
never the fluent API's global state or Ray's MLflowLoggerCallback (docs/STACK.md): trials run in
other processes, possibly on other machines, and must land under the right parent.
"""

from __future__ import annotations

import math
import os
import time
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
from mlflow.entities import Metric, Param
from mlflow.exceptions import MlflowException
from mlflow.store.tracking.rest_store import RestStore
from mlflow.tracking import MlflowClient
from mlflow.utils.rest_utils import http_request_safe

from minimodel.experiment.config import flatten
from minimodel.errors import UserError
from trainables import mlflow_view

POINT_METRICS = ("accuracy", "macro_f1", "test_accuracy", "test_macro_f1", "flops", "tokens", "wall_s", "train_step")
FINAL_METRICS = (
    "english_accuracy",
    "english_macro_f1",
    "english_exact_match",
    "majority_accuracy",
    "one_off_flops",
    "dev_items",
    "test_items",
    "overlap_tokens",
    "restarts",
    "recomputed_steps",
    "recomputed_flops",
    "init_s",
    "init_english_s",
)
RUN_CONSTANTS = ("english_accuracy", "majority_accuracy", "one_off_flops", "dev_items")
TRIAL_TAGS = ("language", "condition", "arm", "method", "depth", "baseline", "seed", "config")
# MLflow charts plot metrics against their step: a trial's curve is logged with step = cumulative
# adaptation GFLOPs, so the UI's x-axis is compute (the training step is the metric train_step).
STEP_UNIT = 1e9
# What MLflow's client reads to authenticate to a server: every trial and stage gets the driver's.
CREDENTIALS = ("MLFLOW_TRACKING_USERNAME", "MLFLOW_TRACKING_PASSWORD", "MLFLOW_TRACKING_TOKEN")
BULK_RUNS, BULK_POINTS = 100, 2500  # the MLflow server's limits for one get-history-bulk-interval request
HISTORY_REQUESTS = 4  # at a time: cluster.yaml's MLflow server runs 4 workers


class TrackingError(UserError):
    """The spec's tracking store cannot be used; one line that names the URI (a user error, like a
    missing data file, so the CLI reports it the same way)."""


@dataclass(frozen=True)
class SweepRun:
    """Where a sweep's runs go: passed to every trial and stage (it pickles; a client does not)."""

    tracking_uri: str
    experiment_id: str
    run_id: str

    def client(self) -> MlflowClient:
        return MlflowClient(tracking_uri=self.tracking_uri)


def check_reachable(uri: str, timeout: float = 5.0, setting: str = "tracking_uri") -> None:
    """Fail in seconds, not after MLflow's minutes of retries, when the tracking server or database is
    down or refuses us; the error names the setting the URI came from."""
    if uri.startswith(("http://", "https://")):
        try:
            with urllib.request.urlopen(uri.rstrip("/") + "/health", timeout=timeout) as response:
                response.read()
        except (urllib.error.URLError, OSError) as e:
            raise TrackingError(f"{setting}: cannot reach MLflow at {uri} ({getattr(e, 'reason', e)})") from None
        check_credentials(uri)
    elif uri.startswith("sqlite:///"):
        folder = Path(uri[len("sqlite:///") :]).parent
        if not folder.is_dir():
            raise TrackingError(f"{setting}: folder {folder} of {uri} does not exist")
    elif uri.startswith("postgresql"):
        check_database(uri, timeout, setting)


def check_database(uri: str, timeout: float, setting: str) -> None:
    """Connect once to a PostgreSQL tracking database (password masked in the error)."""
    import sqlalchemy  # MLflow's own dependency, used only for database stores

    try:
        url = sqlalchemy.engine.make_url(uri)
        shown = url.render_as_string(hide_password=True)
        engine = sqlalchemy.create_engine(url, connect_args={"connect_timeout": max(1, int(timeout))})
    except ImportError as e:
        raise TrackingError(f"{setting}: {uri.split(':')[0]} needs its driver ({e.name}): pip install 'minimodel[postgres]'") from None
    except (sqlalchemy.exc.ArgumentError, ValueError) as e:
        raise TrackingError(f"{setting}: {uri.split('@')[-1]} is not a database URI ({e})") from None
    try:
        with engine.connect():
            pass
    except sqlalchemy.exc.SQLAlchemyError as e:
        reason = " ".join(str(getattr(e, "orig", e)).split())
        raise TrackingError(f"{setting}: cannot connect to the database {shown} ({reason})") from None
    finally:
        engine.dispose()


def check_credentials(uri: str) -> None:
    """One line naming the setting when a server with authentication (`mlflow server --app-name
    basic-auth`) refuses this process's credentials, before anything is computed."""
    try:
        MlflowClient(tracking_uri=uri).search_experiments(max_results=1)
    except MlflowException as e:
        status = e.get_http_status_code()
        if status not in (401, 403):
            raise
        missing = [k for k in CREDENTIALS[:2] if not os.environ.get(k)]
        if status == 403:
            why = (
                f"user {os.environ.get(CREDENTIALS[0])!r} may not read experiments: give it permission, "
                f"or set {CREDENTIALS[0]} to one that may"
            )
        elif missing and not os.environ.get(CREDENTIALS[2]):
            why = f"{' and '.join(missing)} not set"
        else:
            why = f"{CREDENTIALS[0]} / {CREDENTIALS[1]} (or {CREDENTIALS[2]}) refused"
        raise TrackingError(f"tracking_uri: MLflow at {uri} answered HTTP {status}: {why}") from None


def experiment(uri: str, name: str, artifact_root: str) -> str:
    """The sweep's experiment id, created if needed (restored if it was deleted)."""
    client = MlflowClient(tracking_uri=uri)
    found = client.get_experiment_by_name(name)
    if found is None:
        # A local store puts artifacts under ./mlruns of whatever folder a process runs in unless told;
        # a server chooses (and proxies) its own artifact store.
        location = None if uri.startswith(("http://", "https://")) else f"{artifact_root}/mlartifacts/{name}"
        # The experiment kind tells MLflow 3's UI this is model training, not a GenAI app.
        return client.create_experiment(name, artifact_location=location, tags={"mlflow.experimentKind": "custom_model_development"})
    if found.lifecycle_stage == "deleted":
        client.restore_experiment(found.experiment_id)
    return found.experiment_id


def start_sweep(uri: str, name: str, artifact_root: str, tags: dict[str, str], resume: bool = False) -> SweepRun:
    """The parent run of a sweep: the latest unfinished one (of the same phase, if tagged) when
    resuming, else a new one."""
    experiment_id = experiment(uri, name, artifact_root)
    client = MlflowClient(tracking_uri=uri)
    if resume:
        phase = f" and tags.phase = '{tags['phase']}'" if "phase" in tags else ""
        runs = client.search_runs(
            [experiment_id],
            f"tags.kind = 'sweep' and attributes.status != 'FINISHED'{phase}",
            order_by=["attributes.start_time DESC"],
            max_results=1,
        )
        if runs:
            return SweepRun(uri, experiment_id, runs[0].info.run_id)
    run = client.create_run(experiment_id, run_name=f"{name}-{time.strftime('%Y%m%d-%H%M%S')}", tags={"kind": "sweep", **tags})
    return SweepRun(uri, experiment_id, run.info.run_id)


def latest_sweep(uri: str, name: str) -> SweepRun:
    """The most recent parent run of an experiment (for `minimodel frontier`)."""
    client = MlflowClient(tracking_uri=uri)
    found = client.get_experiment_by_name(name)
    if found is None:
        raise TrackingError(f"no MLflow experiment named {name!r} at {uri}")
    runs = client.search_runs([found.experiment_id], "tags.kind = 'sweep'", order_by=["attributes.start_time DESC"], max_results=1)
    if not runs:
        raise TrackingError(f"experiment {name!r} at {uri} has no sweep runs")
    return SweepRun(uri, found.experiment_id, runs[0].info.run_id)


def start_child(sweep: SweepRun, name: str, tags: dict[str, str], params: dict[str, object]) -> str:
    """A nested run under the sweep's parent run; a run with the same `key` tag (a trial retried after
    its process died, or redone by a resumed sweep) is replaced so nothing is counted twice: ended
    (KILLED if it was still RUNNING: its process is gone), tagged `replaced_by` the new run, deleted."""
    client = sweep.client()
    old = (
        client.search_runs([sweep.experiment_id], f"tags.mlflow.parentRunId = '{sweep.run_id}' and tags.key = '{tags['key']}'")
        if "key" in tags
        else []
    )
    run = client.create_run(sweep.experiment_id, run_name=name, tags={"mlflow.parentRunId": sweep.run_id, **tags})
    client.log_batch(run.info.run_id, params=[Param(k, str(v)[:6000]) for k, v in params.items()])
    for replaced in old:
        if replaced.info.status == "RUNNING":
            client.set_terminated(replaced.info.run_id, "KILLED")
        client.set_tag(replaced.info.run_id, "replaced_by", run.info.run_id)
        client.delete_run(replaced.info.run_id)
    return run.info.run_id


def log_metrics(sweep: SweepRun, run_id: str, metrics: dict[str, object], step: int = 0) -> None:
    """Numeric, finite values only (MLflow rejects the rest); nested dicts become dotted names."""
    now = int(time.time() * 1000)
    batch = [
        Metric(k, float(v), now, step)
        for k, v in flatten(metrics).items()
        if isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)
    ]
    if batch:
        sweep.client().log_batch(run_id, metrics=batch)


def compute_step(flops: float) -> int:
    """The MLflow step of a point: its cumulative adaptation compute in GFLOPs."""
    return int(round(flops / STEP_UNIT))


def log_point(sweep: SweepRun, run_id: str, point: dict, language: str | None = None) -> None:
    """One evaluation point of a trial's curve, at step = its GFLOPs (the training step as train_step;
    with the trial's language, the accuracy also under that language's UI chart metric).
    Points closer than one GFLOP (toy models) get consecutive steps, so none overwrites another."""
    step = compute_step(point["flops"])
    if point["step"]:
        earlier = sweep.client().get_metric_history(run_id, "train_step")
        step = max([step, *(m.step + 1 for m in earlier if m.value < point["step"])])
    chart = {mlflow_view.language_metric(language): point["accuracy"]} if language and "accuracy" in point else {}
    log_metrics(sweep, run_id, {**{k: v for k, v in point.items() if k != "step"}, "train_step": point["step"], **chart}, step)


def log_trial(sweep: SweepRun, name: str, tags: dict[str, str], params: dict[str, object], final: dict) -> str:
    """A finished trial's whole run written from its result (curve and final metrics), replacing any
    partial run of it: how results kept while the tracking store was away reach it."""
    run_id = start_child(sweep, name, tags, params)
    for point in final["curve"]:
        log_point(sweep, run_id, point, tags.get("language"))
    log_metrics(sweep, run_id, {k: final[k] for k in FINAL_METRICS if k in final}, compute_step(final["flops"]))
    end_run(sweep, run_id)
    return run_id


def log_stats(sweep: SweepRun, run_id: str, stats: dict) -> None:
    """A stage's totals and metrics (nested parts as dotted names), then each curve point by step
    under `curve.` (a curve's flops at step 0 is not the stage's total flops)."""
    log_metrics(sweep, run_id, stats)
    parts = [("", stats), *((f"{k}.", v) for k, v in stats.items() if isinstance(v, dict))]
    for prefix, part in parts:
        for point in part.get("curve", []):
            values = {f"{prefix}curve.{k}": v for k, v in point.items() if k != "step"}
            log_metrics(sweep, run_id, values, point["step"])


def end_run(sweep: SweepRun, run_id: str, status: str = "FINISHED") -> None:
    sweep.client().set_terminated(run_id, status)


def log_artifacts(sweep: SweepRun, files: list[Path], run_id: str | None = None, folder: str | None = None) -> None:
    client = sweep.client()
    for path in files:
        client.log_artifact(run_id or sweep.run_id, str(path), folder)


def read_points(sweep: SweepRun) -> pd.DataFrame:
    """Every evaluation point of every trial of a sweep, one row each: the frontier's input."""
    client = sweep.client()
    runs, token = [], None
    while True:
        page = client.search_runs(
            [sweep.experiment_id], f"tags.mlflow.parentRunId = '{sweep.run_id}' and tags.kind = 'trial'", max_results=1000, page_token=token
        )
        runs.extend(page)
        token = page.token
        if not token:
            break
    rows = []
    chosen = _once_each(runs)
    histories = metric_histories(client, [run.info.run_id for run in chosen], POINT_METRICS)
    for run in chosen:
        curves = {m: histories[m].get(run.info.run_id, {}) for m in POINT_METRICS}
        constants = {m: run.data.metrics.get(m, float("nan")) for m in RUN_CONSTANTS}
        tags = {t: run.data.tags.get(t, "") for t in TRIAL_TAGS}
        for step in sorted(curves["accuracy"]):
            point = {m: curves[m].get(step, float("nan")) for m in POINT_METRICS}
            rows.append(
                {
                    "run_id": run.info.run_id,
                    **tags,
                    "status": run.info.status,
                    "stopped": run.data.tags.get("stopped", ""),
                    **point,
                    "step": int(point.pop("train_step")),
                    **constants,
                }
            )
    columns = ["run_id", *TRIAL_TAGS, "status", "stopped", "step", *POINT_METRICS[:-1], *RUN_CONSTANTS]
    table = pd.DataFrame(rows, columns=columns)
    table["seed"] = pd.to_numeric(table["seed"], errors="coerce").fillna(0).astype(int)
    return table


def metric_histories(client: MlflowClient, run_ids: list[str], keys: tuple[str, ...]) -> dict[str, dict[str, dict[int, float]]]:
    """{metric: {run id: {step: value}}} of many runs: the frontier of a thousand trials reads in seconds.
    On a database store, one query per BULK_RUNS runs for every metric at once (MLflow's own bulk read
    samples each run and metric with a query of its own: 20 s for 1,000 runs). On a server, its
    get-history-bulk-interval endpoint, BULK_RUNS runs of one metric per request, HISTORY_REQUESTS
    requests at a time; a run with BULK_POINTS points or more (which the endpoint samples) is read
    whole. A step logged twice keeps its later value, as MLflow's history orders them."""
    store = client._tracking_client.store  # the client has no bulk method; its store (or server) has
    chunks = [run_ids[start : start + BULK_RUNS] for start in range(0, len(run_ids), BULK_RUNS)]
    jobs = [(key, chunk) for key in keys for chunk in chunks]
    database = not isinstance(store, RestStore) and isinstance(store, _database_store())
    if isinstance(store, RestStore):

        def request(key: str, chunk: list[str]) -> list[tuple[str, str, int, float]]:
            response = http_request_safe(
                store.get_host_creds(),
                "/api/2.0/mlflow/metrics/get-history-bulk-interval",
                "GET",
                params={"run_ids": chunk, "metric_key": key, "max_results": BULK_POINTS},
            )
            return [  # JSON leaves out zeros
                (key, m["run_id"], int(m.get("step", 0)), float(m.get("value", 0.0))) for m in response.json().get("metrics", [])
            ]

        with ThreadPoolExecutor(HISTORY_REQUESTS) as pool:
            points = [point for answer in pool.map(lambda job: request(*job), jobs) for point in answer]
    elif database:
        from mlflow.store.tracking.dbmodels.models import SqlMetric

        points = []
        with store.ManagedSessionMaker() as session:
            for chunk in chunks:
                rows = (
                    session.query(SqlMetric.key, SqlMetric.run_uuid, SqlMetric.step, SqlMetric.value, SqlMetric.is_nan)
                    .filter(SqlMetric.run_uuid.in_(chunk), SqlMetric.key.in_(keys))
                    .order_by(SqlMetric.timestamp, SqlMetric.value)
                    .all()
                )
                points += [(key, run, int(step), float("nan") if is_nan else float(value)) for key, run, step, value, is_nan in rows]
    else:  # any other store: its own (sampling) bulk read
        points = [
            (key, m.run_id, m.step, m.value)
            for key, chunk in jobs
            for m in store.get_metric_history_bulk_interval(chunk, key, BULK_POINTS, None, None)
        ]
    out: dict[str, dict[str, dict[int, float]]] = {key: {} for key in keys}
    for key, run_id, step, value in points:
        out[key].setdefault(run_id, {})[step] = value
    if not database:  # the bulk reads sample long histories
        for key, curves in out.items():
            for run_id in [run for run, curve in curves.items() if len(curve) >= BULK_POINTS]:
                curves[run_id] = {m.step: m.value for m in client.get_metric_history(run_id, key)}
    return out


def _database_store() -> type:
    """MLflow's SQL store class, imported only where a database is read (3 s of imports a server's
    client does not need)."""
    from mlflow.store.tracking.sqlalchemy_store import SqlAlchemyStore

    return SqlAlchemyStore


def _once_each(runs: list) -> list:
    """One run per trial: a trial attempted twice (an interrupted sweep, resumed) counts once, its
    finished attempt first, else its latest."""
    best: dict[tuple, object] = {}
    for run in sorted(runs, key=lambda r: (r.info.status == "FINISHED", r.info.start_time)):
        key = tuple(run.data.tags.get(t, "") for t in TRIAL_TAGS)
        best[key] = run
    return list(best.values())


def ui_hint(sweep: SweepRun) -> str:
    """Where to look at the sweep in the MLflow UI: its saved view (trainables/mlflow_view.py)."""
    if sweep.tracking_uri.startswith(("http://", "https://")):
        return mlflow_view.url(sweep.tracking_uri, sweep)
    return f"`minimodel ui SPEC`, then {mlflow_view.url('http://127.0.0.1:5000', sweep)}"


def close_children(sweep: SweepRun, failed_keys: set[str] = frozenset(), scheduled_keys: set[str] = frozenset()) -> int:
    """End the sweep's child runs left unfinished and tag why each stopped short (`stopped`).

    FAILED for failed_keys. KILLED otherwise, with stopped=scheduler for scheduled_keys (trials of a
    Tune run that ended cleanly: the scheduler stopped them early, in this run or before a resume)
    and stopped=interrupted for the rest (cut off with the sweep: the frontier leaves them out).
    Returns how many runs were still RUNNING."""
    client = sweep.client()
    runs = client.search_runs(
        [sweep.experiment_id], f"tags.mlflow.parentRunId = '{sweep.run_id}' and attributes.status != 'FINISHED'", max_results=10000
    )
    runs = [run for run in runs if run.info.status in ("RUNNING", "KILLED")]
    for run in runs:
        key = run.data.tags.get("key")
        if key in failed_keys:
            client.set_terminated(run.info.run_id, "FAILED")
            continue
        stopped = "scheduler" if key in scheduled_keys else "interrupted"
        if run.data.tags.get("stopped") != stopped:
            client.set_tag(run.info.run_id, "stopped", stopped)
        if run.info.status == "RUNNING":
            client.set_terminated(run.info.run_id, "KILLED")
    return sum(run.info.status == "RUNNING" for run in runs)
