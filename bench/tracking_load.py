"""Many writers on one MLflow server: PostgreSQL behind it against SQLite (issue 21, item 1).

WRITERS processes (16: twice cluster.yaml's max_concurrent trials) each log trials the way a trial
does, through trainables.tracking (a child run with its params, then one log_point per evaluation:
a read of train_step's history and a batch of nine metrics, then the final metrics and the end),
for a bounded time, against `mlflow server --workers 4` (cluster.yaml's) on a sqlite file and on a
fresh PostgreSQL server (tests/postgres.py: Debian's binaries, 127.0.0.1). Each writer keeps what the
server acknowledged; afterwards every acknowledged point is read back and must be there exactly
once. A writer uses a trial's MLflow settings (one retry, 20 s timeout), so its errors are those a
trial would meet. Prints one JSON line per store: calls, errors, latency percentiles, points lost
or duplicated.

    .venv/bin/python bench/tracking_load.py [--seconds 60] [--writers 16] [--stores sqlite,postgresql]
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests/ holds the server helpers
os.environ.setdefault("MLFLOW_LOGGING_LEVEL", "WARNING")  # no "View run" line per ended run

from mlflow.tracking import MlflowClient  # noqa: E402

from tests import postgres  # noqa: E402
from tests.ports import free_port  # noqa: E402
from tests.mlflow_server import start_server, stop_server  # noqa: E402
from trainables import tracking  # noqa: E402

EVALUATIONS = 20  # paper.yaml's evaluations per trial
PARAMS = 40  # about a trial's flattened config
SERVER_WORKERS = 4  # cluster.yaml's


def percentiles(values: list[float]) -> dict[str, float]:
    ordered = sorted(values)
    if not ordered:
        return {}
    at = lambda q: ordered[min(len(ordered) - 1, int(q * len(ordered)))]  # noqa: E731
    return {"p50_ms": round(1000 * at(0.50), 1), "p95_ms": round(1000 * at(0.95), 1), "p99_ms": round(1000 * at(0.99), 1)}


def writer(index: int, sweep: tracking.SweepRun, until: float, out: multiprocessing.Queue) -> None:
    """Trials one after another until `until`; puts {run id: acknowledged steps}, latencies, errors."""
    os.environ["MLFLOW_HTTP_REQUEST_MAX_RETRIES"] = "1"  # what trainables/trial.py sets for a trial
    os.environ["MLFLOW_HTTP_REQUEST_TIMEOUT"] = "20"
    acked: dict[str, list[int]] = {}
    latency: dict[str, list[float]] = {"start": [], "point": [], "end": []}
    errors: Counter = Counter()
    trial = 0
    while time.time() < until:
        params = {f"adapt.knob{i}": f"{index}.{trial}.{i}" for i in range(PARAMS)}
        tags = {"kind": "trial", "key": f"w{index}t{trial}", "language": "xx", "seed": "0"}
        t = time.perf_counter()
        try:
            run_id = tracking.start_child(sweep, f"writer {index} trial {trial}", tags, params)
        except Exception as e:
            errors[f"start: {type(e).__name__}"] += 1
            continue
        latency["start"].append(time.perf_counter() - t)
        acked[run_id] = []
        for step in range(1, EVALUATIONS + 1):
            if time.time() >= until:
                break
            point = {
                "step": step * 10,
                "flops": step * 3e9,
                "accuracy": 0.5 + step / 100,
                "macro_f1": 0.4,
                "test_accuracy": 0.5,
                "test_macro_f1": 0.4,
                "tokens": step * 1e4,
                "wall_s": step * 0.5,
            }
            t = time.perf_counter()
            try:
                tracking.log_point(sweep, run_id, point, "xx")
                latency["point"].append(time.perf_counter() - t)
                acked[run_id].append(step * 10)
            except Exception as e:
                errors[f"point: {type(e).__name__}"] += 1
        t = time.perf_counter()
        try:
            tracking.end_run(sweep, run_id)
            latency["end"].append(time.perf_counter() - t)
        except Exception as e:
            errors[f"end: {type(e).__name__}"] += 1
        trial += 1
    out.put({"acked": acked, "latency": latency, "errors": dict(errors)})


def check(client: MlflowClient, acked: dict[str, list[int]]) -> dict[str, int]:
    """Every acknowledged point there exactly once (train_step by value, accuracy by step), params whole."""
    lost = duplicated = extra = params_missing = 0
    for run_id, steps in acked.items():
        run = client.get_run(run_id)
        params_missing += PARAMS - sum(k.startswith("adapt.knob") for k in run.data.params)
        seen = Counter(m.value for m in client.get_metric_history(run_id, "train_step"))
        counted = Counter(m.step for m in client.get_metric_history(run_id, "accuracy"))
        for step in steps:
            lost += seen[step] == 0
            duplicated += seen[step] > 1
        extra += sum(n for value, n in seen.items() if value not in steps)  # a write that errored yet landed
        duplicated += sum(n > 1 for n in counted.values())
    return {
        "runs": len(acked),
        "points_acknowledged": sum(map(len, acked.values())),
        "points_lost": lost,
        "points_duplicated": duplicated,
        "points_unacknowledged_but_stored": extra,
        "params_missing": params_missing,
    }


def load(store: str, backend: str, root: Path, seconds: float, writers: int) -> dict:
    port = free_port()
    server = start_server(root, port, store=backend, workers=SERVER_WORKERS)
    uri = f"http://127.0.0.1:{port}"
    try:
        client = MlflowClient(uri)
        experiment = client.create_experiment(f"load-{store}")
        parent = client.create_run(experiment, run_name="load", tags={"kind": "sweep"})
        sweep = tracking.SweepRun(uri, experiment, parent.info.run_id)
        spawn = multiprocessing.get_context("spawn")
        queue = spawn.Queue()
        started = time.time() + 10  # every writer imported and waiting before the clock starts
        until = started + seconds
        processes = [spawn.Process(target=writer, args=(i, sweep, until, queue)) for i in range(writers)]
        for p in processes:
            p.start()
        reports = [queue.get(timeout=seconds + 600) for _ in processes]
        for p in processes:
            p.join()
        acked = {run: steps for r in reports for run, steps in r["acked"].items()}
        latency = {kind: [x for r in reports for x in r["latency"][kind]] for kind in ("start", "point", "end")}
        errors = sum((Counter(r["errors"]) for r in reports), Counter())
        return {
            "store": store,
            "writers": writers,
            "seconds": seconds,
            "server_workers": SERVER_WORKERS,
            "points_per_s": round(len(latency["point"]) / seconds, 1),
            "errors": dict(errors),
            **{f"{kind}_{k}": v for kind in ("point", "start") for k, v in percentiles(latency[kind]).items()},
            **check(client, acked),
        }
    finally:
        stop_server(server)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=60)
    parser.add_argument("--writers", type=int, default=16)
    parser.add_argument("--stores", default="sqlite,postgresql")
    args = parser.parse_args()
    for store in args.stores.split(","):
        with tempfile.TemporaryDirectory(prefix=f"load-{store}-") as folder:
            root = Path(folder)
            if store == "sqlite":
                print(json.dumps(load(store, f"sqlite:///{root}/mlflow.db", root, args.seconds, args.writers)), flush=True)
            else:
                with postgres.server() as database:
                    print(json.dumps(load(store, database, root, args.seconds, args.writers)), flush=True)


if __name__ == "__main__":
    main()
