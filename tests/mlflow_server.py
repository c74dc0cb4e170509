"""A real `mlflow server` on 127.0.0.1 for the tests that talk to MLflow over HTTP."""

from __future__ import annotations

import os
import subprocess
import sys
import time

import pytest

from trainables import tracking


def start_server(root, port: int, store: str | None = None, workers: int = 1) -> subprocess.Popen:
    """A light MLflow server (1 worker, no job runner: 2 processes, ~420 MiB) on 127.0.0.1, storing
    under `root` (runs in sqlite there unless `store` names another backend store); returns once it answers."""
    env = {**os.environ, "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false", "MLFLOW_DISABLE_TELEMETRY": "true"}
    with open(root / "server.log", "a") as log:  # the server keeps its own descriptor
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "mlflow",
                "server",
                "--backend-store-uri",
                store or f"sqlite:///{root}/mlflow.db",
                "--artifacts-destination",
                str(root / "artifacts"),
                "--host",
                "127.0.0.1",
                "--port",
                str(port),
                "--workers",
                str(workers),
            ],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=log,
            start_new_session=True,
        )
    for _ in range(240):
        try:
            tracking.check_reachable(f"http://127.0.0.1:{port}", timeout=1)
            return proc
        except tracking.TrackingError:
            if proc.poll() is not None:
                pytest.fail((root / "server.log").read_text()[-2000:])
            time.sleep(0.5)
    stop_server(proc)
    pytest.fail("mlflow server did not start in 120 s")


def stop_server(proc: subprocess.Popen) -> None:
    """The server and its worker, as a machine losing it would."""
    os.killpg(proc.pid, 9)
    proc.wait(timeout=30)
