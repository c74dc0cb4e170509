"""What a user sees: `minimodel sweep`'s terminal output on a tiny sweep, then `minimodel ui` over its
store in a real headless Chromium (Debian's chromium; the flags are in docs/mlflow-ui.md).

The sweep runs as its own process, as a user starts it: its Ray runtime, Ray's log forwarding and the
driver's knobs (trainables/logs.py) are the subject, so it cannot share the test process's Ray.
"""

from __future__ import annotations

import html
import os
import re
import shutil
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
from mlflow.tracking import MlflowClient

from tests.ports import free_port
from tests.shell import user_env
from tests.test_sweep import spec_path  # noqa: F401  (spec_path: a module fixture)

pytestmark = pytest.mark.slow
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
# What docs/mlflow-ui.md says works as root in a container; a fresh profile per launch.
CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
NOISE = [
    "PreemptionWatcher",
    "Reporting training result",
    "TrainingReport(",
    "Requesting resources",
    "Started training worker group",
    "Attempting to start training worker group",
    "Configuration for experiment",
    "View detailed results here",
    "A new study created",
    "INFO mlflow",
    "Loading weights",
    "Writing model shards",
    "\x1b[",
    "%|",
]


@pytest.fixture(scope="module")
def finished(spec_path) -> tuple[Path, str]:  # noqa: F811
    """A tiny sweep run by `minimodel sweep` in its own process (its own local Ray, under the caller's
    RAY_TMPDIR: a pytest folder makes Ray's socket paths too long): (spec, its stdout and stderr)."""
    done = subprocess.run(
        [sys.executable, "-m", "minimodel.cli", "sweep", str(spec_path)], env=user_env(), capture_output=True, text=True, timeout=1500
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return spec_path, done.stdout + done.stderr


def test_sweep_prints_its_progress_not_rays_internals(finished):
    _, out = finished
    for noise in NOISE:
        assert noise not in out, f"{noise!r} in the sweep's output:\n{out}"
    for stage in ("source", "finetune", "align"):
        assert re.search(rf"^\(RayTrainWorker pid=\d+\) stage {stage} \w+: computing$", out, re.M), out
        assert re.search(rf"^\(RayTrainWorker pid=\d+\) stage {stage} \w+: done in \d+ s$", out, re.M), out
    evaluations = re.findall(r"^\(adapt pid=\d+\) trial (\w+) \w+ \w+ step (\d+)/60: dev accuracy", out, re.M)
    assert len({t for t, _ in evaluations}) == 4 and len(evaluations) == 4 * 4, out  # 4 trials x steps 0, 20, 40, 60
    assert len(re.findall(r"^trial (standard|minipost) +(xx|yy) .*: accuracy", out, re.M)) == 4, out
    assert "compute_to_match" in out and re.search(r"^MLflow: .*viewStateShareKey=", out, re.M), out


def dom(url: str, profile: Path) -> str:
    """The page's DOM after Chromium let it run for 90 s of virtual time (the React app, its requests, plotly)."""
    done = subprocess.run(
        [
            CHROMIUM,
            *CHROMIUM_FLAGS,
            f"--user-data-dir={profile}",
            "--window-size=1600,1000",
            "--virtual-time-budget=90000",
            "--dump-dom",
            url,
        ],
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout


def text(page: str) -> str:
    """What the page reads as, without its markup."""
    page = re.sub(r"<(script|style)\b.*?</\1>", " ", page, flags=re.S)
    return re.sub(r"\s+", " ", html.unescape(re.sub(r"<[^>]+>", " ", page)))


@pytest.mark.skipif(CHROMIUM is None, reason="needs Debian's chromium (apt-get install chromium) for a real browser")
def test_printed_url_opens_the_trials_and_a_chart_per_language(finished, tmp_path):
    spec, _ = finished
    port = free_port()
    ui = subprocess.Popen(
        [sys.executable, "-m", "minimodel.cli", "ui", str(spec), "--port", str(port)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    try:
        url = re.match(r"MLflow UI: (\S+)", ui.stdout.readline()).group(1)
        deadline = time.time() + 120
        while True:
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=5).read()
                break
            except OSError:
                assert time.time() < deadline and ui.poll() is None, "mlflow server did not start"
                time.sleep(1)
        page = dom(url, tmp_path / "profile")
        shown = text(page)
        client = MlflowClient(f"sqlite:///{spec.parent}/mlflow.db")
        experiment = client.get_experiment_by_name("toy").experiment_id
        sweep = client.search_runs([experiment], "tags.kind = 'sweep'", order_by=["attributes.start_time DESC"])[0]
        trials = client.search_runs([experiment], f"tags.kind = 'trial' and tags.mlflow.parentRunId = '{sweep.info.run_id}'")
        assert len(trials) == 4
        assert "Model training" in shown and "4 matching runs" in shown, shown  # the trials, not one folded sweep run
        for trial in trials:
            assert trial.data.tags["mlflow.runName"] in shown
        for language in ("xx", "yy"):
            assert f"dev_accuracy/{language}" in shown  # its chart's title
        assert page.count('class="main-svg"') >= 2  # plotly drew the charts
        # The sweep run's description: the frontier table and plot (served from its artifacts).
        note = sweep.data.tags["mlflow.note.content"]
        assert "compute_to_match" in note and f"get-artifact?path=frontier.png&run_uuid={sweep.info.run_id}" in note
        run_page = dom(f"http://127.0.0.1:{port}/#/experiments/{experiment}/runs/{sweep.info.run_id}", tmp_path / "profile2")
        assert re.search(r'<img [^>]*src="get-artifact\?path=frontier.png', run_page), "no frontier plot on the run page"
    finally:
        os.killpg(ui.pid, signal.SIGTERM)
        ui.wait(timeout=30)
