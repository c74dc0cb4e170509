"""Faults a long sweep meets, each with nothing lost: a damaged cache, two sweeps on one cache, ...

Real processes, real files: a second process is a real `multiprocessing` process, damage is real truncation.
"""

from __future__ import annotations

import json
import multiprocessing
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml
from mlflow.entities import ViewType
from mlflow.tracking import MlflowClient

from minimodel.experiment import cache, pipeline
from minimodel import cli
from minimodel.experiment.config import trial_config


def tiny_config(toy_data: dict) -> dict:
    return trial_config(
        {
            "model": {"name": "scratch", "family": "bert", "hidden": 32, "layers": 2, "heads": 2, "ffn": 64, "vocab_size": 300},
            "pretrain": {"steps": 10, "lr": 2e-3, "batch_size": 16},
            "data": {
                "source_corpus": toy_data["corpus"],
                "task": toy_data["task"],
                "target_corpus": toy_data["corpus"],
                "seq_len": 32,
                "max_docs": 300,
                "max_eval": 40,
            },
            "adapt": {"language": "xx", "method": "standard", "vocab_size": 300, "steps": 10, "eval_every": 5},
        }
    )


def test_damaged_stage_and_token_entries_are_rebuilt_not_loaded(toy_data, tmp_path):
    cfg = tiny_config(toy_data)
    first = pipeline.run_stage("source", cfg, tmp_path)
    entry = pipeline.stage_dir("source", cfg, tmp_path)
    weights = entry / "model" / "model.safetensors"
    (tokens,) = (tmp_path / "tokens").glob("*/blocks.safetensors")
    sizes = weights.stat().st_size, tokens.stat().st_size
    # a half-copied cache: both files cut in the middle (the stats say the stage is done)
    for path in (weights, tokens):
        with open(path, "r+b") as f:
            f.truncate(path.stat().st_size // 2)
    cache._verified.clear()  # a new process: nothing checked yet
    assert not pipeline.stage_done("source", cfg, tmp_path)
    again = pipeline.run_stage("source", cfg, tmp_path)
    assert (weights.stat().st_size, tokens.stat().st_size) == sizes
    assert pipeline.stage_done("source", cfg, tmp_path)
    assert again["mlm_accuracy"] == first["mlm_accuracy"]  # the same deterministic stage, recomputed
    # a flipped byte, same size: the checksum catches it
    with open(weights, "r+b") as f:
        f.seek(sizes[0] // 2)
        byte = f.read(1)
        f.seek(sizes[0] // 2)
        f.write(bytes([byte[0] ^ 0xFF]))
    cache._verified.clear()
    assert not cache.valid(entry)


def _build_slowly(entry: str, log: str) -> str:
    """A builder that takes a while and notes each time it really computes."""

    def compute(tmp: Path) -> None:
        with open(log, "a") as f:
            f.write(f"start {time.time()}\n")
        (tmp / "half").write_text("x" * 1000)
        time.sleep(1.5)
        (tmp / "value.json").write_text(json.dumps({"answer": 42}))

    cache.build(entry, compute)
    return (Path(entry) / "value.json").read_text()


@pytest.mark.slow
def test_two_sweeps_sharing_a_cache_build_an_entry_once(tmp_path):
    entry, log = tmp_path / "stage" / "abc", tmp_path / "computed.log"
    ctx = multiprocessing.get_context("fork")  # two processes, as two sweeps would be
    with ctx.Pool(2) as pool:
        results = pool.starmap(_build_slowly, [(str(entry), str(log))] * 2)
    assert results == ['{"answer": 42}'] * 2  # neither read a half-written entry
    assert len(log.read_text().splitlines()) == 1  # and only one computed it
    assert cache.valid(entry) and not cache.partial(entry).exists()


# ---- faults during a sweep: a tiny scratch model on the synthetic task, real Ray and MLflow ----


def fault_spec(toy_data: dict, root: Path, **over) -> Path:
    """A grid sweep of the synthetic task; each test its own storage and MLflow store under `root`."""
    from tests.test_sweep import TINY

    data = toy_data["root"]
    trial = {
        **TINY,
        "data": {
            **TINY["data"],
            "source_corpus": str(data / "corpus" / "{lang}.txt"),
            "target_corpus": str(data / "corpus" / "{lang}.txt"),
            "task": str(data / "task" / "{lang}" / "{split}.jsonl"),
        },
    }
    spec = {
        "name": "faults",
        "storage": str(root / "runs"),
        "tracking_uri": f"sqlite:///{root}/mlflow.db",
        "trial": trial,
        "languages": ["xx"],
        "methods": ["standard"],
        "search_alg": "grid",
        "max_concurrent": 1,
        "resources": {"cpus": 1},
        "stages": {"workers": 1, "cpus_per_worker": 1},
        **over,
    }
    path = root / "faults.yaml"
    path.write_text(yaml.safe_dump(spec))
    return path


def trial_runs(root: Path) -> list:
    client = MlflowClient(f"sqlite:///{root}/mlflow.db")
    experiment = client.get_experiment_by_name("faults").experiment_id
    return client.search_runs([experiment], "tags.kind = 'trial'")


def running_runs(root: Path) -> list[str]:
    """Names of the experiment's runs still RUNNING, deleted ones (replaced attempts) included."""
    client = MlflowClient(f"sqlite:///{root}/mlflow.db")
    experiment = client.get_experiment_by_name("faults").experiment_id
    return [r.info.run_name for r in client.search_runs([experiment], "", ViewType.ALL) if r.info.status == "RUNNING"]


def minimodel(*argv: str, **env: str) -> subprocess.Popen:
    """`minimodel ...` as a user runs it, with its own local Ray instance (RAY_ADDRESS=local: never another one)."""
    env = {**os.environ, "RAY_ADDRESS": "local", "TQDM_DISABLE": "1", **env}
    return subprocess.Popen(
        [sys.executable, "-m", "minimodel.cli", *map(str, argv)],
        env=env,
        start_new_session=True,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


@pytest.mark.parametrize("fault", ["not writable", "nearly full"])
def test_storage_that_cannot_take_a_sweep_is_one_line_at_start(toy_data, tmp_path, capsys, monkeypatch, fault):
    from trainables import sweep

    blocker = tmp_path / "a-file"
    blocker.write_text("")
    storage = blocker / "runs" if fault == "not writable" else tmp_path / "runs"  # even root cannot write below a file
    if fault == "nearly full":  # more free space required than this disk has
        monkeypatch.setattr(sweep, "MIN_FREE_BYTES", shutil.disk_usage(tmp_path).total + 1)
    path = fault_spec(toy_data, tmp_path, storage=str(storage))
    with pytest.raises(SystemExit) as done:
        cli.main(["sweep", str(path)])
    err = capsys.readouterr().err.strip().splitlines()
    expected = f"storage: cannot write to {storage}" if fault == "not writable" else f"free on {storage}"
    assert done.value.code == 2 and len(err) == 1 and expected in err[0], err
    assert not (tmp_path / "mlflow.db").exists() or not trial_runs(tmp_path)


def _kill_trial_after_first_checkpoint(storage: Path, killed: list) -> None:
    """SIGKILL the process of the running trial once it has checkpointed (a node lost, a machine's OOM killer)."""
    from ray.util.state import list_actors
    import ray

    deadline = time.time() + 300
    while time.time() < deadline and not list((storage / "cache" / "adapt").glob("*.partial/checkpoint/state.json")):
        time.sleep(0.05)
    actors = list_actors(
        address=ray.get_runtime_context().gcs_address, detail=True, filters=[("class_name", "=", "ImplicitFunc"), ("state", "=", "ALIVE")]
    )
    for actor in actors:
        os.kill(actor.pid, signal.SIGKILL)
        killed.append(actor.pid)


@pytest.mark.slow
def test_killed_trial_resumes_from_checkpoint_and_oom_names_the_setting(ray_session, toy_data, tmp_path, capsys):
    import threading

    path = fault_spec(toy_data, tmp_path, search={"adapt.batch_size": {"type": "choice", "values": [16, 2**40]}})
    if Path("/proc/sys/vm/overcommit_memory").read_text().strip() == "1":
        pytest.skip("memory overcommit always on: an 8 TiB request would be granted and fill the machine")
    spec = yaml.safe_load(path.read_text())
    spec["trial"]["adapt"].update(steps=300, eval_every=30)
    path.write_text(yaml.safe_dump(spec))
    killed: list[int] = []
    killer = threading.Thread(target=_kill_trial_after_first_checkpoint, args=(tmp_path / "runs", killed))
    killer.start()
    with pytest.raises(SystemExit) as done:
        cli.main(["sweep", str(path)])
    killer.join()
    out = capsys.readouterr().out
    assert done.value.code == 1 and killed  # the out-of-memory trial failed, the sweep went on
    assert "out of memory in trial standard xx at batch size 1099511627776 x 32 tokens: lower trial.adapt.batch_size" in out
    runs = {r.data.params["adapt.batch_size"]: r for r in trial_runs(tmp_path)}
    assert sorted(runs) == ["1099511627776", "16"] and runs["1099511627776"].info.status == "FAILED"
    kept = runs["16"]
    assert kept.info.status == "FINISHED" and kept.data.metrics["restarts"] == 1
    assert kept.data.metrics["recomputed_steps"] >= 0 and kept.data.metrics["recomputed_flops"] >= 0
    client = MlflowClient(f"sqlite:///{tmp_path}/mlflow.db")
    steps = client.get_metric_history(kept.info.run_id, "train_step")
    assert [m.value for m in steps] == list(range(0, 301, 30))  # every point once, across both attempts
    # the killed attempt's run was ended, points to the run that replaced it, and nothing is left RUNNING
    attempts = client.search_runs([kept.info.experiment_id], f"tags.key = '{kept.data.tags['key']}'", ViewType.ALL)
    replaced = [r for r in attempts if r.info.run_id != kept.info.run_id]
    assert replaced and all(r.info.status == "KILLED" and r.data.tags["replaced_by"] == kept.info.run_id for r in replaced), [
        (r.info.status, r.data.tags.get("replaced_by")) for r in replaced
    ]
    assert not running_runs(tmp_path)


@pytest.mark.slow
def test_killed_driver_then_resume_finishes_the_sweep_once(toy_data, tmp_path):
    from trainables import tracking

    path = fault_spec(toy_data, tmp_path, search={"adapt.lr": {"type": "choice", "values": [2e-3, 5e-3, 1e-2]}})
    driver = minimodel("sweep", path)
    try:
        deadline = time.time() + 400
        while not any(r.info.status == "FINISHED" for r in _trials_if_any(tmp_path)):
            assert driver.poll() is None and time.time() < deadline, driver.stdout.read() if driver.poll() is not None else ""
            time.sleep(0.5)
        os.kill(driver.pid, signal.SIGKILL)
        driver.wait()
        before = {r.info.run_id: r for r in trial_runs(tmp_path) if r.info.status == "FINISHED"}
        resumed = minimodel("sweep", path, "--resume")
        out, _ = resumed.communicate(timeout=400)
        assert resumed.returncode == 0, out[-3000:]
    finally:
        for group in (driver.pid, locals().get("resumed", driver).pid):
            try:
                os.killpg(group, signal.SIGKILL)  # whatever of our own Ray instances is left
            except ProcessLookupError:
                pass
    after = trial_runs(tmp_path)
    finished = [r for r in after if r.info.status == "FINISHED"]
    assert sorted(r.data.params["adapt.lr"] for r in finished) == ["0.002", "0.005", "0.01"]
    assert not running_runs(tmp_path)  # the interrupted attempts were ended, not left RUNNING
    assert all(before[k].info.end_time == r.info.end_time for r in finished for k in [r.info.run_id] if k in before)
    # a trial finished before the kill is kept, or (Tune had not saved its end yet) replayed from the cache, not trained again
    by_lr = {r.data.params["adapt.lr"]: r for r in finished}
    for old in before.values():
        new = by_lr[old.data.params["adapt.lr"]]
        assert new.info.run_id == old.info.run_id or new.data.tags["cached"] == "true"
    assert "shared stages: 2 (0 computed, 2 cached)" in out
    sweep = tracking.latest_sweep(f"sqlite:///{tmp_path}/mlflow.db", "faults")
    assert tracking.read_points(sweep)["run_id"].nunique() == 3  # the frontier counts each trial once


def _trials_if_any(root: Path) -> list:
    try:
        return trial_runs(root)
    except Exception:  # the store or experiment is not created yet
        return []


@pytest.mark.slow
def test_tracking_server_lost_mid_sweep_then_resume_logs_everything_once(toy_data, tmp_path):
    from tests.ports import free_port
    from tests.mlflow_server import start_server, stop_server

    port = free_port()
    uri = f"http://127.0.0.1:{port}"
    server = start_server(tmp_path, port)
    path = fault_spec(toy_data, tmp_path, tracking_uri=uri, search={"adapt.lr": {"type": "choice", "values": [2e-3, 5e-3, 1e-2]}})
    client = MlflowClient(uri)
    # MLflow's own knob: the driver gives up on the lost server after seconds, not its default 4 minutes of retries
    driver = minimodel("sweep", path, MLFLOW_HTTP_REQUEST_MAX_RETRIES="2")
    try:
        deadline = time.time() + 400
        while not _trials_at(client):  # the first trial has started logging: the server goes away
            assert driver.poll() is None and time.time() < deadline, driver.stdout.read() if driver.poll() is not None else ""
            time.sleep(0.5)
        stop_server(server)
        out, _ = driver.communicate(timeout=600)
        assert driver.returncode == 2, out[-3000:]
        assert out.strip().splitlines()[-1].endswith("run `minimodel sweep SPEC --resume` once it is back"), out[-3000:]
        server = start_server(tmp_path, port)
        resumed = minimodel("sweep", path, "--resume")
        out, _ = resumed.communicate(timeout=600)
        assert resumed.returncode == 0, out[-3000:]
        runs = _trials_at(client)
        steps = {r.data.params["adapt.lr"]: [m.value for m in client.get_metric_history(r.info.run_id, "train_step")] for r in runs}
    finally:
        stop_server(server)
        for proc in (driver, locals().get("resumed", driver)):
            try:
                os.killpg(proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
    assert "shared stages: 2 (0 computed, 2 cached)" in out
    assert sorted(r.data.params["adapt.lr"] for r in runs) == ["0.002", "0.005", "0.01"]  # each trial once
    assert all(r.info.status == "FINISHED" for r in runs)  # none left RUNNING from the outage
    assert all(s == list(range(0, 61, 20)) for s in steps.values()), steps  # every point of every curve, once


def _trials_at(client: MlflowClient) -> list:
    experiment = client.get_experiment_by_name("faults")
    return client.search_runs([experiment.experiment_id], "tags.kind = 'trial'") if experiment else []
