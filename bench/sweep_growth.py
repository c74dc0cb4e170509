"""How a sweep's costs grow with its size (issue 21, item 4): driver overhead per trial, MLflow
logging time per evaluation, and `minimodel frontier`'s read-and-summarise time.

Two stores: the local default (a sqlite file, read and written directly) and cluster.yaml's, an
`mlflow server --workers 4` over a fresh PostgreSQL server (tests/postgres.py).

- real N: `minimodel sweep` of N tiny trials (the synthetic task, a scratch model, 10 steps, two
  evaluations each; grid over N learning rates, 2 at a time, a local Ray), as its own process; the
  driver's own `ray_overhead_s_per_trial` (slot time not spent in trial functions) is read back from
  its sweep run, and `minimodel frontier` is timed on it.
- logged N: N trials written through the real MLflow client as a finished trial is
  (trainables.tracking.log_trial: the child run, its params and tags from trainables.trial.trial_run,
  each evaluation point by log_point, the final metrics), with the result of a real trial of the
  real sweep as every run's content; then `minimodel frontier` is timed on them. No training: this
  measures the store and the frontier at sizes a 2-core machine cannot train.

    .venv/bin/python bench/sweep_growth.py [--real 10,100] [--logged 10,100,1000] [--stores sqlite,postgresql]

Prints one JSON line per (store, kind, N).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests/ holds the data and server helpers
os.environ.setdefault("MLFLOW_LOGGING_LEVEL", "WARNING")  # no "View run" line per ended run

import yaml  # noqa: E402
from mlflow.tracking import MlflowClient  # noqa: E402

from minimodel.experiment import pipeline  # noqa: E402
from minimodel.experiment.spec import load_spec  # noqa: E402
from tests import postgres  # noqa: E402
from tests.ports import free_port  # noqa: E402
from tests.synthetic import write_language  # noqa: E402
from tests.test_sweep import TINY  # noqa: E402
from tests.mlflow_server import start_server, stop_server  # noqa: E402
from trainables import tracking, trial  # noqa: E402

BIN = Path(sys.executable).parent


def spec_file(root: Path, data: Path, name: str, uri: str, n: int) -> Path:
    """A grid of n tiny trials (n learning rates) of the synthetic task."""
    trial_config = {
        **TINY,
        "data": {
            **TINY["data"],
            "source_corpus": str(data / "corpus" / "{lang}.txt"),
            "target_corpus": str(data / "corpus" / "{lang}.txt"),
            "task": str(data / "task" / "{lang}" / "{split}.jsonl"),
        },
        "adapt": {**TINY["adapt"], "steps": 10, "eval_every": 5},
    }
    rates = [1e-3 * (1 + (n * n + i) / 1e6) for i in range(n)]  # no trial of another size's sweep (cached) among them
    spec = {
        "name": name,
        "storage": str(root / "runs"),
        "tracking_uri": uri,
        "trial": trial_config,
        "languages": ["xx"],
        "methods": ["standard"],
        "search": {"adapt.lr": {"type": "choice", "values": rates}},
        "search_alg": "grid",
        "max_concurrent": 2,
        "resources": {"cpus": 1},
        "stages": {"workers": 1, "cpus_per_worker": 1},
    }
    path = root / f"{name}.yaml"
    path.write_text(yaml.safe_dump(spec))
    return path


def timed_frontier(uri: str, name: str, out: Path) -> float:
    """Wall seconds of `minimodel frontier --experiment NAME` (read, summarise, write and log), its own process."""
    t = time.perf_counter()
    done = subprocess.run(
        [str(BIN / "minimodel"), "frontier", "--experiment", name, "--tracking-uri", uri, "--out", str(out)],
        capture_output=True,
        text=True,
        timeout=1800,
    )
    if done.returncode:
        raise RuntimeError(done.stderr[-2000:])
    return time.perf_counter() - t


def real(uri: str, root: Path, data: Path, n: int, store: str) -> tuple[dict, Path]:
    name = f"real{n}"
    path = spec_file(root, data, name, uri, n)
    t = time.perf_counter()
    done = subprocess.run(
        [str(BIN / "minimodel"), "sweep", str(path)],
        capture_output=True,
        text=True,
        timeout=7200,
        env={**os.environ, "RAY_ADDRESS": "local", "TQDM_DISABLE": "1"},
    )
    wall = time.perf_counter() - t
    if done.returncode:
        raise RuntimeError(done.stdout[-2000:] + done.stderr[-2000:])
    sweep = tracking.latest_sweep(uri, name)
    metrics = MlflowClient(uri).get_run(sweep.run_id).data.metrics
    return {
        "store": store,
        "kind": "real",
        "trials": n,
        "sweep_wall_s": round(wall, 1),
        "trials_wall_s": round(metrics["trials_wall_s"], 1),
        "ray_overhead_s_per_trial": round(metrics["ray_overhead_s_per_trial"], 2),
        "frontier_s": round(timed_frontier(uri, name, root / f"frontier-{name}"), 1),
    }, path


def logged(uri: str, root: Path, n: int, store: str, template: Path) -> dict:
    """n finished trials written as log_trial writes them, each with a real trial's result."""
    spec = load_spec(template)
    cache_dir = f"{spec.storage}/cache"
    point = spec.grid()[0]
    cfg, _, _, _ = trial.trial_run(spec, {"point": point}, cache_dir, "t0")
    final = pipeline.run_trial(cfg, cache_dir)  # from the cache: the real sweep computed it
    name = f"logged{n}"
    sweep = tracking.start_sweep(uri, name, str(root), {})
    per_point: list[float] = []
    log_point = tracking.log_point

    def timed_point(*args, **kwargs):
        t = time.perf_counter()
        log_point(*args, **kwargs)
        per_point.append(time.perf_counter() - t)

    tracking.log_point = timed_point  # log_trial's own calls, timed
    per_run: list[float] = []
    try:
        for i in range(n):
            values = {**point, "adapt.lr": 1e-3 * (1 + i / n)}
            _, run_name, tags, params = trial.trial_run(spec, {"point": values}, cache_dir, f"trial{i:05d}")
            t = time.perf_counter()
            tracking.log_trial(sweep, run_name, tags, params, final)
            per_run.append(time.perf_counter() - t)
    finally:
        tracking.log_point = log_point
    tracking.end_run(sweep, sweep.run_id)
    tenth = max(1, n // 10)
    ms = lambda xs: round(1000 * statistics.median(xs), 1)  # noqa: E731
    return {
        "store": store,
        "kind": "logged",
        "trials": n,
        "points_per_trial": len(final["curve"]),
        "log_point_ms_median": ms(per_point),
        "log_trial_ms_first_tenth": ms(per_run[:tenth]),
        "log_trial_ms_last_tenth": ms(per_run[-tenth:]),
        "frontier_s": round(timed_frontier(uri, name, root / f"frontier-{name}"), 1),
    }


def measure(store: str, uri: str, root: Path, data: Path, sizes_real: list[int], sizes_logged: list[int]) -> None:
    template = None
    for n in sizes_real:
        row, template = real(uri, root, data, n, store)
        print(json.dumps(row), flush=True)
    if sizes_logged and template is None:  # one real trial to take the result from
        _, template = real(uri, root, data, 1, store)
    for n in sizes_logged:
        print(json.dumps(logged(uri, root, n, store, template)), flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--real", default="10,100")
    parser.add_argument("--logged", default="10,100,1000")
    parser.add_argument("--stores", default="sqlite,postgresql")
    args = parser.parse_args()
    sizes = lambda s: [int(x) for x in s.split(",") if x]  # noqa: E731
    for store in args.stores.split(","):
        with tempfile.TemporaryDirectory(prefix=f"growth-{store}-") as folder:
            root = Path(folder)
            write_language(root / "data")
            if store == "sqlite":
                measure(store, f"sqlite:///{root}/mlflow.db", root, root / "data", sizes(args.real), sizes(args.logged))
                continue
            with postgres.server() as database:
                port = free_port()
                server = start_server(root, port, store=database, workers=4)
                try:
                    measure(store, f"http://127.0.0.1:{port}", root, root / "data", sizes(args.real), sizes(args.logged))
                finally:
                    stop_server(server)


if __name__ == "__main__":
    main()
