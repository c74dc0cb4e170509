"""MLflow tracking against a real `mlflow server` over HTTP: runs, nesting, params, metrics, artifacts."""

from __future__ import annotations

import json
import time
import urllib.request

import pandas as pd
import pytest

from trainables import tracking
from tests.ports import free_port


def rest(uri: str, path: str) -> dict:
    """A raw REST call, to check what the server stored without going through our own reader."""
    with urllib.request.urlopen(f"{uri}/api/2.0/mlflow/{path}", timeout=10) as response:
        return json.loads(response.read())


def test_unreachable_server_is_one_clear_error():
    start = time.time()
    with pytest.raises(tracking.TrackingError, match=r"tracking_uri: cannot reach MLflow at http://127.0.0.1:\d+"):
        tracking.check_reachable(f"http://127.0.0.1:{free_port()}")
    assert time.time() - start < 5


@pytest.mark.slow
def test_sweep_trial_and_stage_runs(mlflow_server, tmp_path):
    uri = mlflow_server["uri"]
    sweep = tracking.start_sweep(uri, "test-sweep", str(tmp_path), {"search_alg": "grid"})
    cfg = {"adapt": {"method": "minipost", "language": "de", "depth": 2, "lr": 1e-3}, "seed": 0}
    trial = tracking.start_child(
        sweep,
        "minipost-de-2",
        {"kind": "trial", "key": "t1", "method": "minipost", "language": "de", "depth": "2"},
        {"method": "minipost", "lr": 1e-3, **tracking.flatten(cfg)},
    )
    for step, (acc, flops) in enumerate([(0.3, 0.0), (0.5, 1e12), (0.6, 2e12)]):
        tracking.log_point(
            sweep,
            trial,
            {
                "step": step * 10,
                "accuracy": acc,
                "macro_f1": acc - 0.1,
                "flops": flops,
                "tokens": step * 100,
                "wall_s": step * 1.5,
                "test_accuracy": acc - 0.05,
            },
        )
    tracking.log_metrics(sweep, trial, {"english_accuracy": 0.81, "bad": float("nan"), "text": "skipped"})
    tracking.end_run(sweep, trial)

    stage = tracking.start_child(sweep, "align-abc", {"kind": "stage", "stage": "align"}, {"align.steps": 300})
    tracking.log_stats(
        sweep,
        stage,
        {
            "flops": 5e12,
            "wall_s": 3.0,
            "mlm_loss": 4.2,
            "before": {"mlm_loss": 9.1},
            "curve": [{"step": 0, "mlm_loss": 9.0}, {"step": 100, "mlm_loss": 5.0}],
        },
    )

    # Nesting, tags and params as the server stored them.
    got = rest(uri, f"runs/get?run_id={trial}")["run"]
    tags = {t["key"]: t["value"] for t in got["data"]["tags"]}
    params = {p["key"]: p["value"] for p in got["data"]["params"]}
    assert tags["mlflow.parentRunId"] == sweep.run_id
    assert (tags["method"], tags["language"], tags["depth"]) == ("minipost", "de", "2")
    assert params["adapt.depth"] == "2" and params["lr"] == "0.001"
    assert got["info"]["status"] == "FINISHED"
    metrics = {m["key"]: m["value"] for m in got["data"]["metrics"]}
    assert metrics["english_accuracy"] == 0.81 and "bad" not in metrics
    # the MLflow step of a curve point is its compute in GFLOPs: the UI's charts plot accuracy against FLOPs
    history = rest(uri, f"metrics/get-history?run_id={trial}&metric_key=accuracy")["metrics"]
    assert [(m["step"], m["value"]) for m in history] == [(0, 0.3), (1000, 0.5), (2000, 0.6)]
    stage_metrics = {m["key"]: m["value"] for m in rest(uri, f"runs/get?run_id={stage}")["run"]["data"]["metrics"]}
    assert stage_metrics["flops"] == 5e12 and stage_metrics["before.mlm_loss"] == 9.1
    assert stage_metrics["curve.mlm_loss"] == 5.0

    # Read back as the frontier's table: trials only, one row per evaluation.
    points = tracking.read_points(sweep)
    assert len(points) == 3
    assert list(points["step"]) == [0, 10, 20]
    assert list(points["flops"]) == [0.0, 1e12, 2e12]
    assert list(points["test_accuracy"]) == pytest.approx([0.25, 0.45, 0.55])
    assert set(points["method"]) == {"minipost"} and set(points["language"]) == {"de"}

    # Runs left RUNNING are closed at the end of the sweep: FAILED (errored trials), KILLED and tagged
    # stopped=scheduler (ASHA stopped it) or stopped=interrupted (cut off: no seed of the frontier).
    crashed = tracking.start_child(sweep, "crashed", {"kind": "trial", "key": "t-err"}, {})
    early = tracking.start_child(sweep, "early", {"kind": "trial", "key": "t-early"}, {})
    cut = tracking.start_child(sweep, "cut", {"kind": "trial", "key": "t-cut"}, {})
    assert tracking.close_children(sweep, {"t-err"}, {"t-early"}) == 4
    assert rest(uri, f"runs/get?run_id={stage}")["run"]["info"]["status"] == "KILLED"
    assert rest(uri, f"runs/get?run_id={crashed}")["run"]["info"]["status"] == "FAILED"

    def stopped(run_id: str) -> str:
        return {t["key"]: t["value"] for t in rest(uri, f"runs/get?run_id={run_id}")["run"]["data"]["tags"]}["stopped"]

    assert (stopped(early), stopped(cut), stopped(stage)) == ("scheduler", "interrupted", "interrupted")
    # a resumed sweep that ends cleanly keeps the trials Tune had ended before the interruption: their
    # short curves were the scheduler's doing
    assert tracking.close_children(sweep, set(), {"t-early", "t-cut"}) == 0 and stopped(cut) == "scheduler"

    # Artifacts go through the server's artifact proxy.
    plot = tmp_path / "frontier.csv"
    plot.write_text("language,method\nde,minipost\n")
    tracking.log_artifacts(sweep, [plot])
    files = rest(uri, f"artifacts/list?run_id={sweep.run_id}")["files"]
    assert [f["path"] for f in files] == ["frontier.csv"]
    assert (mlflow_server["root"] / "artifacts").exists()


@pytest.mark.slow
def test_restarted_trial_replaces_its_run_and_resume_finds_the_parent(mlflow_server, tmp_path):
    uri = mlflow_server["uri"]
    sweep = tracking.start_sweep(uri, "resume-sweep", str(tmp_path), {})
    tags = {"kind": "trial", "key": "trial-1", "method": "standard", "language": "fr", "arm": "standard", "seed": "0"}
    first = tracking.start_child(sweep, "t", tags, {})
    tracking.log_point(sweep, first, {"step": 0, "accuracy": 0.1, "flops": 0.0})
    second = tracking.start_child(sweep, "t", tags, {})
    tracking.log_point(sweep, second, {"step": 0, "accuracy": 0.2, "flops": 0.0})
    # the same trial attempted under another Tune id (a sweep interrupted, then rerun) counts once too
    killed = tracking.start_child(sweep, "t", {**tags, "key": "trial-1-attempt-2"}, {})
    tracking.log_point(sweep, killed, {"step": 0, "accuracy": 0.3, "flops": 0.0})
    tracking.end_run(sweep, killed, "KILLED")
    tracking.end_run(sweep, second)
    points = tracking.read_points(sweep)
    assert list(points["run_id"]) == [second] and list(points["accuracy"]) == [0.2]

    again = tracking.start_sweep(uri, "resume-sweep", str(tmp_path), {}, resume=True)
    assert again == sweep
    assert tracking.latest_sweep(uri, "resume-sweep") == sweep
    tracking.end_run(sweep, sweep.run_id)
    assert tracking.start_sweep(uri, "resume-sweep", str(tmp_path), {}, resume=True).run_id != sweep.run_id


def test_local_sqlite_store_puts_artifacts_under_storage(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    uri = f"sqlite:///{tmp_path}/mlflow.db"
    sweep = tracking.start_sweep(uri, "local", str(tmp_path / "runs"), {})
    f = tmp_path / "x.txt"
    f.write_text("x")
    tracking.log_artifacts(sweep, [f])
    assert (tmp_path / "runs" / "mlartifacts" / "local").is_dir()
    assert not (tmp_path / "mlruns").exists()
    with pytest.raises(tracking.TrackingError, match="does not exist"):
        tracking.check_reachable(f"sqlite:///{tmp_path}/missing/mlflow.db")


def test_a_frontier_table_too_long_for_a_description_keeps_whole_languages_and_links_the_rest(mlflow_server, tmp_path):
    from minimodel.experiment import frontier, frontier_report
    from mlflow.utils.validation import MAX_TAG_VAL_LENGTH
    from tests.test_frontier import FAST, STANDARD, rows, run
    from trainables import mlflow_view

    languages = [f"l{i:02d}" for i in range(24)]  # a cluster sweep's worth: some 20 languages
    table = rows(
        *[
            run(f"{arm}-{lang}", arm, curve, language=lang)
            for lang in languages
            for arm, curve in [("standard", STANDARD), ("minipost k=1", FAST)]
        ]
    )
    markdown = frontier_report.format_markdown(frontier.summary(table))
    assert len(markdown) > MAX_TAG_VAL_LENGTH
    sweep = tracking.start_sweep(mlflow_server["uri"], "long-description", str(tmp_path), {"search_alg": "grid"})
    mlflow_view.describe_sweep(sweep, markdown, tmp_path / "frontier.png", tmp_path / "frontier.md")
    note = sweep.client().get_run(sweep.run_id).data.tags[mlflow_view.NOTE_TAG]
    assert len(note) <= MAX_TAG_VAL_LENGTH and note.startswith("![frontier plot](get-artifact?path=frontier.png&")
    assert note.endswith(f"[the whole table](get-artifact?path=frontier.md&run_uuid={sweep.run_id}) (frontier.md in this run's artifacts).")
    shown = [lang for lang in languages if f"**{lang} / " in note]
    assert shown == languages[: len(shown)] and len(shown) >= 5  # the first languages, none cut off
    for block in note.split("\n\n**")[1:]:
        table_lines = block.split("\n\n")[1].splitlines()
        assert len(table_lines) == 4 and all(
            line.startswith("| ") and line.endswith(" |") for line in table_lines
        )  # header, rule, two arms
    short = frontier_report.format_markdown(frontier.summary(table[table["language"] == "l00"]))
    assert mlflow_view.description("![plot](p)", short, "rest") == f"![plot](p)\n\n{short}"  # what fits is shown whole


def test_the_frontier_reads_the_same_points_from_a_database_and_from_a_server(mlflow_server, tmp_path):
    """read_points queries a database store directly and a server through its bulk endpoint, in parallel."""

    def log(uri: str) -> pd.DataFrame:
        sweep = tracking.start_sweep(uri, "same-points", str(tmp_path / "runs"), {})
        for seed in range(3):
            tags = {"kind": "trial", "key": f"t{seed}", "method": "standard", "language": "de", "arm": "standard", "seed": str(seed)}
            run = tracking.start_child(sweep, f"t{seed}", tags, {})
            for step in range(4):
                point = {"step": 10 * step, "accuracy": 0.3 + 0.01 * step + seed / 100, "flops": 1e12 * step, "test_accuracy": 0.2}
                tracking.log_point(sweep, run, {**point, **({"macro_f1": 0.1} if step % 2 else {})})
            tracking.log_metrics(sweep, run, {"english_accuracy": 0.8, "dev_items": 460.0})
            tracking.end_run(sweep, run)
        return tracking.read_points(sweep).drop(columns="run_id").sort_values(["seed", "step"], ignore_index=True)

    local, served = log(f"sqlite:///{tmp_path}/mlflow.db"), log(mlflow_server["uri"])
    assert len(local) == 12 and list(local["step"][:4]) == [0, 10, 20, 30]
    assert local["macro_f1"].isna().sum() == 6 and (local["english_accuracy"] == 0.8).all()  # a point without it: NaN
    pd.testing.assert_frame_equal(local, served)
