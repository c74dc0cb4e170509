"""A cluster of three hosts on one machine, authentication on, a sweep submitted as a Ray job, hosts lost.

Each host is a network namespace with its own address (tests/hosts.py); `ray start` runs in each with
that address as its node IP, the head (no CPUs: it runs the drivers, as cluster.yaml's head does) also
runs MLflow's server on its address. Ray requires its token (RAY_AUTH_MODE=token, the token in a
file, as cluster.yaml sets it up) and MLflow its basic-auth credentials; only the head's Ray has the
MLflow credentials in its environment, so a trial on a worker host logs only if the driver passed them
on. The storage and cache are one folder every host sees. Ports inside the namespaces are fixed
(each host has its own port space); nothing but the hosts' addresses is contacted.
"""

from __future__ import annotations

import base64
import json
import os
import secrets
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest
import yaml
from mlflow.entities import ViewType
from mlflow.tracking import MlflowClient
from ray.exceptions import AuthenticationError
from ray.job_submission import JobStatus, JobSubmissionClient

from tests import hosts as hostlib
from tests.test_sweep import TINY

pytestmark = pytest.mark.slow

BIN = Path(sys.executable).parent
GCS, DASHBOARD, MLFLOW = 6379, 8265, 5000
ADMIN = "admin"
DONE = {JobStatus.SUCCEEDED, JobStatus.FAILED, JobStatus.STOPPED}


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    """A dict describing a running three-host cluster (head, two workers); everything torn down after."""
    if why := hostlib.unavailable():
        pytest.skip(f"three-host cluster test: {why}")
    root = tmp_path_factory.mktemp("hosts")
    # Ray's socket paths live under --temp-dir and must stay within AF_UNIX's 107 bytes: a short one.
    short = Path(tempfile.mkdtemp(prefix="rc", dir=os.environ.get("RAY_TMPDIR", "/tmp")))
    token = root / "auth_token"
    token.write_text(secrets.token_hex(32))
    password = secrets.token_urlsafe(18)
    hosts = hostlib.create(3)
    head_ip = hosts.addresses[0]
    before = {k: os.environ.get(k) for k in ("MLFLOW_TRACKING_USERNAME", "MLFLOW_TRACKING_PASSWORD")}
    os.environ.update(MLFLOW_TRACKING_USERNAME=ADMIN, MLFLOW_TRACKING_PASSWORD=password)
    try:
        c = {
            "hosts": hosts,
            "root": root,
            "token": token,
            "password": password,
            "head": head_ip,
            "short": short,
            "mlflow": f"http://{head_ip}:{MLFLOW}",
            "dashboard": f"http://{head_ip}:{DASHBOARD}",
        }
        start_mlflow(c)
        start_head(c)
        for host in (1, 2):
            start_worker(c, host)
        wait_for_nodes(c, 3)
        yield c
    finally:
        hostlib.destroy(hosts)
        for key, value in before.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
        shutil.rmtree(short, ignore_errors=True)


def ray_env(c: dict, **extra: str) -> dict:
    """The environment of a process on a host: Ray's token required and read from the token file."""
    env = {**os.environ, "PATH": f"{BIN}:{os.environ['PATH']}", "RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN_PATH": str(c["token"])}
    for key in ("RAY_ADDRESS", "RAY_AUTH_TOKEN", "MLFLOW_TRACKING_USERNAME", "MLFLOW_TRACKING_PASSWORD"):
        env.pop(key, None)
    return {**env, **extra}


def start_mlflow(c: dict) -> None:
    """MLflow with basic auth on the head's address; the admin password set before its first start."""
    ini = c["root"] / "basic_auth.ini"
    ini.write_text(
        f"[mlflow]\ndefault_permission = NO_PERMISSIONS\ndatabase_uri = sqlite:///{c['root']}/basic_auth.db\n"
        f"admin_username = {ADMIN}\nadmin_password = {c['password']}\n"
        "authorization_function = mlflow.server.auth:authenticate_request_basic_auth\n"
    )
    env = {
        **os.environ,
        "MLFLOW_AUTH_CONFIG_PATH": str(ini),
        "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false",
        "MLFLOW_FLASK_SERVER_SECRET_KEY": secrets.token_hex(16),
    }
    c["hosts"].popen(
        0,
        [
            str(BIN / "mlflow"),
            "server",
            "--app-name",
            "basic-auth",
            "--host",
            c["head"],
            "--port",
            str(MLFLOW),
            "--workers",
            "1",
            "--backend-store-uri",
            f"sqlite:///{c['root']}/mlflow.db",
            "--artifacts-destination",
            str(c["root"] / "mlartifacts"),
        ],
        env,
        (c["root"] / "mlflow.log").open("w"),
    )
    deadline = time.time() + 120
    while time.time() < deadline:
        try:
            urllib.request.urlopen(f"{c['mlflow']}/health", timeout=2).read()
            return
        except OSError:
            time.sleep(1)
    raise TimeoutError((c["root"] / "mlflow.log").read_text()[-3000:])


def ray_start(c: dict, host: int, *args: str, env: dict) -> None:
    """`ray start --block` on a host, started again if it gives up: on 2 loaded cores a raylet may take
    longer to register than the 30 s `ray start` waits."""
    log = c["root"] / f"ray-{host}.log"
    for _ in range(3):
        started = log.read_text().count("Ray runtime started") if log.exists() else 0
        process = c["hosts"].popen(
            host,
            [
                str(BIN / "ray"),
                "start",
                "--block",
                "--disable-usage-stats",
                "--object-store-memory=80000000",
                f"--node-ip-address={c['hosts'].addresses[host]}",
                *args,
            ],
            env,
            log.open("a"),
        )
        while process.poll() is None and log.read_text().count("Ray runtime started") == started:
            time.sleep(1)
        if process.poll() is None:
            return
    raise RuntimeError(f"ray start on host {host} failed 3 times:\n{log.read_text()[-3000:]}")


def start_head(c: dict) -> None:
    # The head's Ray holds the MLflow credentials, as cluster.yaml's head does; worker hosts do not.
    env = ray_env(c, MLFLOW_TRACKING_USERNAME=ADMIN, MLFLOW_TRACKING_PASSWORD=c["password"], TQDM_DISABLE="1")
    ray_start(
        c,
        0,
        "--head",
        f"--port={GCS}",
        "--num-cpus=0",
        "--include-dashboard=true",
        f"--dashboard-host={c['head']}",
        f"--dashboard-port={DASHBOARD}",
        f"--temp-dir={c['short']}",
        env=env,
    )
    deadline = time.time() + 120
    while time.time() < deadline:
        try:
            c["jobs"] = jobs_client(c)
            return
        except Exception:  # the dashboard is not up yet
            time.sleep(1)
    raise TimeoutError((c["root"] / "ray-0.log").read_text()[-3000:])


def start_worker(c: dict, host: int) -> None:
    ray_start(c, host, f"--address={c['head']}:{GCS}", "--num-cpus=1", env=ray_env(c))


def jobs_client(c: dict) -> JobSubmissionClient:
    return JobSubmissionClient(c["dashboard"], headers={"Authorization": f"Bearer {c['token'].read_text()}"})


def nodes(c: dict) -> dict[str, dict]:
    """Ray's nodes by node id, through `ray list nodes` with the token (as a user runs it)."""
    for attempt in range(5):  # the dashboard's state API times out now and then on 2 loaded cores
        out = subprocess.run(
            [str(BIN / "ray"), "list", "nodes", "--address", c["dashboard"], "--format", "json", "--detail", "--timeout", "60"],
            capture_output=True,
            text=True,
            timeout=120,
            env=ray_env(c),
        )
        if out.returncode == 0:
            break
        time.sleep(3)
    assert out.returncode == 0, out.stderr[-2000:]
    if not out.stdout.lstrip().startswith("["):  # "No resource in the cluster" while the head starts
        return {}
    return {n["node_id"]: n for n in json.loads(out.stdout)}


def wait_for_nodes(c: dict, n: int) -> None:
    deadline = time.time() + 180
    while time.time() < deadline:
        alive = [x for x in nodes(c).values() if x["state"] == "ALIVE"]
        if len(alive) >= n:
            return
        time.sleep(2)
    raise TimeoutError(f"only {len(alive)} of {n} Ray nodes came up")


def tracking(c: dict) -> MlflowClient:
    """A client of the head's MLflow as admin (the fixture put the credentials in this process's environment)."""
    return MlflowClient(c["mlflow"])


def spec_file(c: dict, toy_data: dict, name: str, steps: int, rates: list[float]) -> Path:
    """A tiny standard-only sweep on the cluster's storage and MLflow, one trial per learning rate."""
    data = toy_data["root"]
    trial = {
        **TINY,
        "data": {
            **TINY["data"],
            "source_corpus": str(data / "corpus" / "{lang}.txt"),
            "target_corpus": str(data / "corpus" / "{lang}.txt"),
            "task": str(data / "task" / "{lang}" / "{split}.jsonl"),
        },
        "adapt": {**TINY["adapt"], "steps": steps, "eval_every": steps // 2},
    }
    spec = {
        "name": name,
        "storage": str(c["root"] / name),
        "tracking_uri": c["mlflow"],
        "trial": trial,
        "languages": ["xx"],
        "methods": ["standard"],
        "search": {"adapt.lr": {"type": "choice", "values": rates}},
        "search_alg": "grid",
        "max_concurrent": 2,
        "resources": {"cpus": 1},
        "stages": {"workers": 1, "cpus_per_worker": 1},
    }
    path = c["root"] / f"{name}.yaml"
    path.write_text(yaml.safe_dump(spec))
    return path


def minimodel(c: dict, *argv: str, **env: str) -> subprocess.CompletedProcess:
    """`minimodel ...` run on worker host 1, as a user logged in on a node runs it."""
    return c["hosts"].run(
        1, [str(BIN / "minimodel"), *argv], ray_env(c, TQDM_DISABLE="1", RAY_ADDRESS=f"{c['head']}:{GCS}", **env), timeout=180
    )


def test_ray_and_mlflow_refuse_requests_without_credentials(cluster):
    c = cluster
    with pytest.raises(Exception) as refused:  # no token: the Jobs API answers 401 (Ray's client raises)
        JobSubmissionClient(c["dashboard"]).submit_job(entrypoint="echo ran")
    assert "401" in str(refused.value) or "auth" in str(refused.value).lower(), refused.value
    with pytest.raises(AuthenticationError, match="Invalid authentication token"):
        JobSubmissionClient(c["dashboard"], headers={"Authorization": f"Bearer {secrets.token_hex(32)}"}).submit_job(entrypoint="echo ran")
    assert not c["jobs"].list_jobs()  # nothing was submitted
    url = f"{c['mlflow']}/api/2.0/mlflow/experiments/search?max_results=1"
    with pytest.raises(urllib.error.HTTPError) as anonymous:
        urllib.request.urlopen(url, timeout=10)
    assert anonymous.value.code == 401
    basic = base64.b64encode(f"{ADMIN}:{c['password']}".encode()).decode()
    with urllib.request.urlopen(urllib.request.Request(url, headers={"Authorization": f"Basic {basic}"}), timeout=10) as ok:
        assert ok.status == 200


def test_wrong_token_or_missing_password_is_one_line_before_any_compute(cluster, toy_data):
    c = cluster
    path = spec_file(c, toy_data, "refused", 20, [1e-3])
    no_password = minimodel(c, "sweep", str(path), MLFLOW_TRACKING_USERNAME=ADMIN)
    bad_token = minimodel(
        c, "sweep", str(path), RAY_AUTH_TOKEN=secrets.token_hex(32), MLFLOW_TRACKING_USERNAME=ADMIN, MLFLOW_TRACKING_PASSWORD=c["password"]
    )
    for done, setting in ((no_password, "MLFLOW_TRACKING_PASSWORD"), (bad_token, "RAY_AUTH_TOKEN")):
        err = done.stderr.strip().splitlines()
        assert done.returncode == 2 and len(err) == 1 and setting in err[0], (done.stdout[-2000:], done.stderr[-3000:])
    mlflow = tracking(c)
    found = mlflow.get_experiment_by_name("refused")
    assert found is None or not mlflow.search_runs([found.experiment_id])
    assert not (c["root"] / "refused" / "cache").exists()


def submit(c: dict, path: Path, *args: str) -> str:
    return c["jobs"].submit_job(
        entrypoint=" ".join(["minimodel", "sweep", str(path), *args]),
        runtime_env={"env_vars": {"TQDM_DISABLE": "1", "MLFLOW_DISABLE_TELEMETRY": "true"}},
    )


def wait_for(predicate, what: str, timeout: float, logs) -> None:
    deadline = time.time() + timeout
    while not predicate():
        assert time.time() < deadline, f"timed out waiting for {what}:\n{logs()[-3000:]}"
        time.sleep(1)


def test_sweep_spreads_over_worker_hosts_and_survives_losing_one(cluster, toy_data):
    c = cluster
    client, mlflow = c["jobs"], tracking(c)
    path = spec_file(c, toy_data, "spread", 1000, [1e-3, 3e-2])  # two trials at once: one per worker host
    job = submit(c, path)
    logs = lambda: client.get_job_logs(job)  # noqa: E731
    by_ip = {n["node_ip"]: node_id for node_id, n in nodes(c).items()}
    workers = {by_ip[c["hosts"].addresses[1]], by_ip[c["hosts"].addresses[2]]}

    def running_on() -> set[str]:
        found = mlflow.get_experiment_by_name("spread")
        if found is None:
            return set()
        runs = mlflow.search_runs([found.experiment_id], "tags.kind = 'trial' and attributes.status = 'RUNNING'")
        return {r.data.tags.get("node") for r in runs}

    wait_for(lambda: running_on() == workers, "a trial on each worker host", 360, logs)
    checkpoints = c["root"] / "spread" / "cache" / "adapt"
    wait_for(lambda: list(checkpoints.glob("*.partial/checkpoint/state.json")), "a trial checkpoint", 180, logs)
    assert c["hosts"].kill(2) > 0  # worker host 2 lost mid-trial: its raylet and workers
    wait_for(lambda: client.get_job_status(job) in DONE, "the sweep", 600, logs)
    assert client.get_job_status(job) == JobStatus.SUCCEEDED, logs()[-3000:]
    assert "trials: 2 (0 failed)" in logs()

    experiment = mlflow.get_experiment_by_name("spread").experiment_id
    finished = mlflow.search_runs([experiment], "tags.kind = 'trial' and attributes.status = 'FINISHED'")
    assert sorted(r.data.tags["key"] for r in finished) == sorted({r.data.tags["key"] for r in finished})  # once each
    assert sorted(r.data.params["adapt.lr"] for r in finished) == ["0.001", "0.03"]
    assert {r.data.tags["node"] for r in finished} <= workers
    # the same model and steps: every trial's FLOPs the same, the retried one's counted once
    assert len({r.data.metrics["flops"] for r in finished}) == 1, [r.data.metrics["flops"] for r in finished]
    assert sum(r.data.metrics.get("restarts", 0) for r in finished) >= 1


def restart_cluster(c: dict) -> None:
    """What a user does after losing the head: start it again at the same address (MLflow too, its
    store on the shared storage), then Ray on the workers again, as `ray up` does (`ray stop`, `ray
    start`; `ray stop` here would end every Ray process of this machine, so the hosts are cleared)."""
    for host in (1, 2):
        deadline = time.time() + 60
        while c["hosts"].alive(host) and time.time() < deadline:
            c["hosts"].kill(host)
            time.sleep(0.5)
    start_mlflow(c)
    start_head(c)
    for host in (1, 2):
        start_worker(c, host)
    wait_for_nodes(c, 3)


# Hosts made of network namespaces share one process table, where Ray's driver looks for its node's
# raylet: it would find all three and attach to the head's. A real host has its own raylet only; the
# node's address (ray.init's _node_ip_address) says which one is this host's here.
ON_HOST = (
    "import functools, sys, ray; ray.init = functools.partial(ray.init, _node_ip_address=sys.argv[1]); "
    "from minimodel.cli import main; main(sys.argv[2:])"
)


def on_host(c: dict, host: int, *argv: str) -> list[str]:
    """`minimodel ARGV...` as a driver on a host, attached to that host's raylet."""
    return [sys.executable, "-c", ON_HOST, c["hosts"].addresses[host], *argv]


def test_head_lost_mid_sweep_is_one_line_and_resume_on_a_restarted_head_finishes_it(cluster, toy_data):
    c = cluster
    mlflow = tracking(c)
    path = spec_file(c, toy_data, "headless", 1000, [1e-3, 1e-2, 3e-2])  # two at a time: the third runs when the head goes
    log = c["root"] / "headless-driver.log"
    # The driver on a worker host (a user logged in on a node): a driver on the head is lost with it.
    env = ray_env(
        c,
        TQDM_DISABLE="1",
        PYTHONUNBUFFERED="1",
        RAY_ADDRESS=f"{c['head']}:{GCS}",
        MLFLOW_TRACKING_USERNAME=ADMIN,
        MLFLOW_TRACKING_PASSWORD=c["password"],
    )
    driver = c["hosts"].popen(1, on_host(c, 1, "sweep", str(path)), env, log.open("w"))
    output = log.read_text

    def trials(status: str) -> list:
        found = mlflow.get_experiment_by_name("headless")
        return mlflow.search_runs([found.experiment_id], f"tags.kind = 'trial' and attributes.status = '{status}'") if found else []

    checkpoints = c["root"] / "headless" / "cache" / "adapt"
    wait_for(
        lambda: driver.poll() is None and trials("FINISHED") and list(checkpoints.glob("*.partial/checkpoint/state.json")),
        "a finished trial and another one's checkpoint",
        600,
        output,
    )
    before = {r.data.params["adapt.lr"]: r for r in trials("FINISHED")}
    assert c["hosts"].kill(0) > 0  # the head lost: its GCS, raylet, dashboard and the MLflow server
    lost = time.time()
    driver.wait(timeout=120)
    waited = time.time() - lost
    lines = output().strip().splitlines()
    assert driver.returncode == 2, output()[-3000:]
    assert lines[-1].startswith(f"minimodel: error: ray: the head at {c['head']}:{GCS} stopped answering during the sweep"), lines[-5:]
    assert lines[-1].endswith("run `minimodel sweep SPEC --resume`") and f"kept in {c['root'] / 'headless'}" in lines[-1]
    # The driver's own lines (Ray forwards its workers' under a "(name pid=...)" prefix): no traceback, not Ray's abort.
    own = [line for line in lines if not line.startswith("(")]
    assert not [line for line in own if "Traceback" in line or "rpc_client" in line], own[-20:]
    assert waited < 60, waited  # before Ray's own end of the driver (60 s without the GCS)

    restart_cluster(c)
    resumed = c["hosts"].run(1, on_host(c, 1, "sweep", str(path), "--resume"), env, timeout=900)
    assert resumed.returncode == 0, (resumed.stdout[-3000:], resumed.stderr[-3000:])
    assert "trials: 3 (0 failed)" in resumed.stdout, resumed.stdout[-3000:]
    assert "shared stages: 2 (0 computed, 2 cached)" in resumed.stdout, resumed.stdout[-3000:]

    experiment = mlflow.get_experiment_by_name("headless").experiment_id
    finished = trials("FINISHED")
    assert sorted(r.data.params["adapt.lr"] for r in finished) == ["0.001", "0.01", "0.03"]  # each once
    assert len({r.data.metrics["flops"] for r in finished}) == 1, [r.data.metrics["flops"] for r in finished]
    # a trial finished before the head was lost is kept, or replayed from the cache: never trained again
    by_lr = {r.data.params["adapt.lr"]: r for r in finished}
    for lr, old in before.items():
        assert by_lr[lr].info.run_id == old.info.run_id or by_lr[lr].data.tags["cached"] == "true"
    every = mlflow.search_runs([experiment], "attributes.status = 'RUNNING'", run_view_type=ViewType.ALL)
    assert not every, [(r.info.run_name, r.data.tags.get("kind")) for r in every]  # sweep run and attempts ended
