"""Pareto frontiers and compute-to-match on hand-made curves whose answers are known."""
from __future__ import annotations

import math

import pandas as pd

from minimodel import frontier


def curve(run_id: str, method: str, points: list[tuple[float, float]], language: str = "de") -> list[dict]:
    return [{"run_id": run_id, "language": language, "method": method, "step": i, "flops": f, "accuracy": a}
            for i, (f, a) in enumerate(points)]


def table() -> pd.DataFrame:
    rows = (
        # standard: best 0.60, first reached at 10e12 (the second trial only gets there later)
        curve("s1", "standard", [(0, 0.30), (5e12, 0.50), (10e12, 0.60), (15e12, 0.58)])
        + curve("s2", "standard", [(0, 0.30), (8e12, 0.45), (20e12, 0.60)])
        # minipost: within one point (>= 0.59) at 2e12 -> 5x less compute
        + curve("p1", "minipost", [(0, 0.30), (1e12, 0.52), (2e12, 0.595), (3e12, 0.61)])
        # minijoint: never within one point
        + curve("j1", "minijoint", [(0, 0.30), (1e12, 0.40), (2e12, 0.55)])
        # another language without a standard run: no ratio
        + curve("f1", "minipost", [(0, 0.2), (1e12, 0.4)], language="fr")
    )
    return pd.DataFrame(rows)


def test_pareto_keeps_only_undominated_points():
    points = pd.DataFrame({"flops": [3, 1, 2, 2, 4, 0], "accuracy": [0.5, 0.4, 0.3, 0.45, 0.5, 0.1]})
    front = frontier.pareto(points)
    assert list(zip(front["flops"], front["accuracy"])) == [(0, 0.1), (1, 0.4), (2, 0.45), (3, 0.5)]


def test_frontiers_merge_every_trial_of_a_method():
    front = frontier.frontiers(table())
    std = front[(front["language"] == "de") & (front["method"] == "standard")]
    assert list(std["flops"]) == [0, 5e12, 10e12]
    assert list(std["run_id"]) == ["s1", "s1", "s1"]


def test_compute_to_match():
    s = frontier.summary(table()).set_index(["language", "method"])
    assert s.loc[("de", "standard"), "best_accuracy"] == 0.60
    assert s.loc[("de", "standard"), "flops_at_best"] == 10e12
    assert s.loc[("de", "standard"), "compute_to_match"] == 1.0
    assert s.loc[("de", "standard"), "trials"] == 2
    assert s.loc[("de", "minipost"), "flops_to_match"] == 2e12
    assert s.loc[("de", "minipost"), "compute_to_match"] == 5.0
    assert s.loc[("de", "minipost"), "flops_at_best"] == 3e12
    assert math.isnan(s.loc[("de", "minijoint"), "compute_to_match"])
    assert math.isnan(s.loc[("fr", "minipost"), "compute_to_match"])
    text = frontier.format_table(s.reset_index())
    assert "5.00x" in text and "minijoint" in text


def test_matching_at_zero_flops_is_infinite():
    rows = curve("s", "standard", [(0, 0.40), (1e12, 0.50)]) + curve("p", "minipost", [(0, 0.495), (1e11, 0.5)])
    s = frontier.summary(pd.DataFrame(rows)).set_index("method")
    assert s.loc["standard", "compute_to_match"] == 1.0
    assert math.isinf(s.loc["minipost", "compute_to_match"])
    assert "inf" in frontier.format_table(s.reset_index())


def test_write_files(tmp_path):
    summary, files = frontier.write(table(), tmp_path / "out")
    assert [f.name for f in files] == ["frontier.csv", "frontier_points.csv", "frontier.png"]
    assert files[2].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    back = pd.read_csv(files[0])
    assert list(back.columns) == frontier.SUMMARY_COLUMNS
    assert len(back) == len(summary) == 4
