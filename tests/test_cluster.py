"""A two-node Ray cluster started the way a user starts one by hand, and a sweep submitted to it as a Ray job.

`ray start --head` and `ray start --address=...` run as our own subprocesses (--block: each takes its
node's processes down when terminated), with their own ports and temp folder, so the background Ray
instance on a shared machine is neither used nor touched. One CPU per node and two trials at a time:
the trials must spread over both nodes.
"""
from __future__ import annotations

import os
import socket
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest
import yaml
from mlflow.tracking import MlflowClient
from ray.job_submission import JobStatus, JobSubmissionClient

from tests.test_sweep import TINY

BIN = Path(sys.executable).parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def ray_start(*args: str, log: Path) -> subprocess.Popen:
    env = {**os.environ, "PATH": f"{BIN}:{os.environ['PATH']}", "RAY_AUTH_MODE": "disabled"}
    env.pop("RAY_ADDRESS", None)
    return subprocess.Popen([str(BIN / "ray"), "start", "--block", "--num-cpus=1", "--object-store-memory=80000000",
                             "--disable-usage-stats", *args],
                            stdout=log.open("w"), stderr=subprocess.STDOUT, env=env, start_new_session=True)


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    """(dashboard address, the two node processes) of a fresh two-node cluster; torn down afterwards."""
    root = tmp_path_factory.mktemp("cluster")
    # Ray's socket paths live under --temp-dir and must stay within AF_UNIX's 107 bytes: pytest's tmp
    # paths are too long for that (the dashboard's MetricsHead then fails to start), so a short one.
    short = Path(tempfile.mkdtemp(prefix="rc", dir="/tmp"))
    gcs, dashboard = free_port(), free_port()
    head = ray_start("--head", f"--port={gcs}", "--node-ip-address=127.0.0.1", "--include-dashboard=true",
                     "--dashboard-host=127.0.0.1", f"--dashboard-port={dashboard}",
                     f"--dashboard-agent-listen-port={free_port()}", f"--temp-dir={short}",
                     log=root / "head.log")
    nodes = [head]
    try:
        client = _wait_for_jobs_api(f"http://127.0.0.1:{dashboard}", head, root / "head.log")
        nodes.append(ray_start(f"--address=127.0.0.1:{gcs}", "--node-ip-address=127.0.0.1",
                               f"--dashboard-agent-listen-port={free_port()}", log=root / "worker.log"))
        _wait_for_nodes(client, 2)
        yield client, f"127.0.0.1:{gcs}"
    finally:
        for node in reversed(nodes):  # only the processes started here, never `ray stop`
            node.terminate()
        for node in nodes:
            try:
                node.wait(timeout=60)
            except subprocess.TimeoutExpired:
                os.killpg(node.pid, 9)
        shutil.rmtree(short, ignore_errors=True)


def _wait_for_jobs_api(url: str, head: subprocess.Popen, log: Path) -> JobSubmissionClient:
    deadline = time.time() + 120
    while time.time() < deadline:
        if head.poll() is not None:
            raise RuntimeError(f"ray start --head exited:\n{log.read_text()[-3000:]}")
        try:
            return JobSubmissionClient(url)
        except Exception:  # the dashboard is not up yet
            time.sleep(1)
    raise TimeoutError(f"no Jobs API at {url}:\n{log.read_text()[-3000:]}")


def _wait_for_nodes(client: JobSubmissionClient, n: int) -> None:
    import ray.util.state as state
    deadline = time.time() + 90
    while time.time() < deadline:
        alive = [x for x in state.list_nodes(address=client.get_address()) if x.state == "ALIVE"]
        if len(alive) >= n:
            return
        time.sleep(1)
    raise TimeoutError(f"only {len(alive)} of {n} Ray nodes came up")


def test_sweep_submitted_as_a_job_to_a_two_node_cluster(cluster, toy_data, tmp_path):
    client, gcs = cluster
    data = toy_data["root"]
    trial = {**TINY, "data": {**TINY["data"], "source_corpus": str(data / "corpus" / "{lang}.txt"),
                              "target_corpus": str(data / "corpus" / "{lang}.txt"),
                              "task": str(data / "task" / "{lang}" / "{split}.jsonl")},
             "adapt": {**TINY["adapt"], "steps": 1000, "eval_every": 500}}
    spec = {"name": "multi", "storage": str(tmp_path / "runs"), "tracking_uri": f"sqlite:///{tmp_path}/mlflow.db",
            "trial": trial, "languages": ["xx"], "methods": ["standard"],
            "search": {"adapt.lr": {"type": "choice", "values": [1e-3, 3e-3, 1e-2, 3e-2]}},
            "search_alg": "grid", "max_concurrent": 2, "resources": {"cpus": 1},
            "stages": {"workers": 1, "cpus_per_worker": 1}}
    path = tmp_path / "multi.yaml"
    path.write_text(yaml.safe_dump(spec))

    job = client.submit_job(entrypoint=f"minimodel sweep {path}",
                            runtime_env={"env_vars": {"TQDM_DISABLE": "1", "MLFLOW_DISABLE_TELEMETRY": "true"}})
    deadline = time.time() + 420
    while (status := client.get_job_status(job)) not in {JobStatus.SUCCEEDED, JobStatus.FAILED, JobStatus.STOPPED}:
        assert time.time() < deadline, client.get_job_logs(job)[-3000:]
        time.sleep(2)
    logs = client.get_job_logs(job)
    assert status == JobStatus.SUCCEEDED, logs[-3000:]
    # what a user following `ray job logs -f` sees: the stage and each trial's evaluation points, not
    # folded by Ray's log deduplication into "[repeated 2x across cluster]". (Workers' lines come twice
    # here: both nodes run on this one machine in one session folder, and each node's log monitor
    # forwards its files. One node prints each once: the single-node sweeps show it.)
    for line, times in (("stage source", 1), ("step 500/1000: dev accuracy", 4), ("trials: 4 (0 failed)", 1)):
        found = {text for text in logs.splitlines() if line in text}
        assert len(found) == times, (f"{line!r} is not {times}x in the job's logs:", found, logs[-3000:])
    cli = subprocess.run([str(BIN / "ray"), "job", "status", "--address", client.get_address(), job],
                         capture_output=True, text=True, timeout=60, env={**os.environ, "RAY_AUTH_MODE": "disabled"})
    assert "succeeded" in (cli.stdout + cli.stderr).lower()

    mlflow = MlflowClient(spec["tracking_uri"])
    experiment = mlflow.get_experiment_by_name("multi").experiment_id
    trials = mlflow.search_runs([experiment], "tags.kind = 'trial'")
    stages = mlflow.search_runs([experiment], "tags.kind = 'stage'")
    assert sorted(r.data.params["adapt.lr"] for r in trials) == ["0.001", "0.003", "0.01", "0.03"]
    assert all(r.info.status == "FINISHED" for r in trials)
    import ray.util.state as state
    nodes = {n.node_id for n in state.list_nodes(address=client.get_address())}
    # every trial's run names the Ray node it ran on, and the trials ran on both nodes. (Trials of a
    # few seconds all finished on the first node's actor, reused by Tune, while the second node was
    # still starting its worker process, 20-40 s on 2 loaded cores: hence four trials of about 15 s.)
    ran_on = [r.data.tags["node"] for r in trials]
    assert set(ran_on) <= nodes and len(set(ran_on)) == 2, ran_on
    assert sorted(r.data.tags["stage"] for r in stages) == ["finetune", "source"]
    cache = tmp_path / "runs" / "cache"
    entries = sorted(p.parent.parent.name for p in cache.glob("*/*/manifest.json"))
    assert [e for e in entries if e not in ("tokens", "vocab")] == ["adapt"] * 4 + ["finetune", "source"]
    assert not list(cache.glob("*/*.partial"))
