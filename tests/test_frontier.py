"""The frontier on hand-made curves whose answers are known: targets, interpolation, intervals, choices."""
from __future__ import annotations

import math
import warnings

import numpy as np
import pandas as pd
import pytest

from minimodel import frontier, frontier_report

PLATEAU = [(3e14, 0.80), (4e14, 0.80), (5e14, 0.80)]  # a flat tail: a smoothed best of exactly 0.80


def run(run_id: str, arm: str, points: list[tuple[float, float]], *, seed: int = 0, config: str = "",
        baseline: str = "standard", test: list[float] | None = None, one_off: float = 0.0,
        language: str = "de", condition: str = "init=overlap") -> list[dict]:
    """One trial's evaluation rows; test accuracy defaults to dev accuracy minus 0.05."""
    method = arm.split()[0]
    depth = "full" if method == "standard" else arm.split("=")[-1]
    tests = test or [a - 0.05 for _, a in points]
    return [{"run_id": run_id, "language": language, "condition": condition, "arm": arm, "method": method,
             "depth": depth, "baseline": baseline, "seed": seed, "config": config, "step": 10 * i,
             "flops": f, "accuracy": a, "test_accuracy": t, "english_accuracy": 0.9,
             "majority_accuracy": 0.25, "one_off_flops": one_off}
            for i, ((f, a), t) in enumerate(zip(points, tests))]


def rows(*runs: list[dict]) -> pd.DataFrame:
    return pd.DataFrame([r for one in runs for r in one])


def by_arm(table: pd.DataFrame) -> pd.DataFrame:
    return frontier.summary(table).set_index("arm")


STANDARD = [(0, 0.3), (1e12, 0.5), (2e12, 0.6), (3e12, 0.6), (4e12, 0.6)]  # plateau 0.6, target 0.59
FAST = [(0, 0.3), (1e11, 0.49), (2e11, 0.69), (3e11, 0.69), (4e11, 0.69)]  # crosses 0.59 at 1.5e11


def test_pareto_keeps_only_undominated_points():
    points = pd.DataFrame({"flops": [3, 1, 2, 2, 4, 0], "accuracy": [0.5, 0.4, 0.3, 0.45, 0.5, 0.1]})
    front = frontier.pareto(points)
    assert list(zip(front["flops"], front["accuracy"])) == [(0, 0.1), (1, 0.4), (2, 0.45), (3, 0.5)]


def test_frontiers_per_language_condition_and_arm():
    table = rows(run("s", "standard", STANDARD), run("p", "minipost k=1", FAST),
                 run("q", "minipost k=1", FAST, condition="init=random"))
    front = frontier.frontiers(table)
    assert sorted(set(zip(front["condition"], front["arm"]))) == [
        ("init=overlap", "minipost k=1"), ("init=overlap", "standard"), ("init=random", "minipost k=1")]
    std = front[front["arm"] == "standard"]
    assert list(std["flops"]) == [0, 1e12, 2e12]


def test_crossing_between_evaluations_is_interpolated():
    s = by_arm(rows(run("s", "standard", STANDARD), run("p", "minipost k=1", FAST)))
    assert s.loc["standard", "target"] == pytest.approx(0.59)
    assert s.loc["standard", "flops_to_target"] == pytest.approx(1.9e12)  # 0.5 -> 0.6 over 1e12..2e12
    assert s.loc["minipost k=1", "flops_to_target"] == pytest.approx(1.5e11)  # 0.49 -> 0.69 over 1e11..2e11
    assert s.loc["minipost k=1", "compute_to_match"] == pytest.approx(1.9e12 / 1.5e11)
    assert s.loc["standard", "compute_to_match"] == 1.0


def test_one_target_for_every_method():
    # standard's best (0.80) takes 1e14 FLOPs but it is within one point (0.795) at 1e12: the baseline
    # is charged for the shared target 0.79, so MiniPost at 1e13 is ten times dearer, not cheaper.
    standard = [(0, 0.3), (1e12, 0.795), (1e14, 0.80), *PLATEAU]
    minipost = [(0, 0.3), (1e13, 0.79), (2e13, 0.79)]
    s = by_arm(rows(run("s", "standard", standard), run("p", "minipost k=1", minipost)))
    assert s.loc["standard", "target"] == s.loc["minipost k=1", "target"] == pytest.approx(0.79)
    assert s.loc["standard", "flops_to_target"] <= 1e12
    assert s.loc["minipost k=1", "flops_to_target"] == pytest.approx(1e13)
    assert s.loc["minipost k=1", "compute_to_match"] < 0.1
    text = frontier_report.format_table(s.reset_index())
    assert "0.099x" in text and "10.00x" not in text


def test_exactly_one_point_below_the_plateau_counts():
    # plateau 0.36 is 0.36000000000000004 in floats, so the target is a hair above 0.35
    standard = [(0, 0.2), (1e12, 0.35), (2e12, 0.36), (3e12, 0.36), (4e12, 0.36)]
    s = by_arm(rows(run("s", "standard", standard), run("p", "minipost k=1", [(0, 0.2), (1e11, 0.35), (2e11, 0.35)])))
    assert s.loc["minipost k=1", "target"] > 0.35
    assert s.loc["minipost k=1", "reached"] == "1/1"
    assert s.loc["minipost k=1", "compute_to_match"] == pytest.approx(10.0)


def test_baseline_at_target_before_adaptation():
    flat = [(0, 0.6), (1e12, 0.6), (2e12, 0.6)]
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        s = by_arm(rows(run("s", "standard", flat), run("p", "minipost k=1", [(0, 0.6), (1e11, 0.6)])))
        text = frontier_report.format_table(s.reset_index())
    assert s["compute_to_match"].isna().all()
    assert (s["note"] == "baseline at target before adaptation").all()
    assert "0.00x" not in text and "baseline at target before adaptation" in text


def test_arm_at_target_before_any_compute_is_infinite():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        s = by_arm(rows(run("s", "standard", STANDARD), run("p", "minipost k=1", [(0, 0.6), (1e11, 0.6)])))
        text = frontier_report.format_table(s.reset_index())
    assert math.isinf(s.loc["minipost k=1", "compute_to_match"])
    assert s.loc["minipost k=1", "note"] == "at target before any adaptation compute"
    assert "inf" in text


def test_never_reached():
    slow = [(0, 0.3), (1e12, 0.50), (2e12, 0.55)]  # best 0.55: 4 points short of 0.59
    table = rows(run("s1", "standard", STANDARD, seed=1), run("s2", "standard", STANDARD, seed=2),
                 run("p1", "minipost k=1", FAST, seed=1), run("p2", "minipost k=1", slow, seed=2),
                 run("j1", "minipost k=2", slow, seed=1), run("j2", "minipost k=2", slow, seed=2))
    s = by_arm(table)
    assert s.loc["minipost k=1", "reached"] == "1/2" and s.loc["minipost k=2", "reached"] == "0/2"
    assert s[["compute_to_match", "flops_to_target"]].loc[["minipost k=1", "minipost k=2"]].isna().all().all()
    assert s.loc["minipost k=2", "shortfall"] == pytest.approx(0.04)
    assert s.loc["minipost k=1", "shortfall"] == pytest.approx(0.59 - (0.69 + 0.55) / 2)
    assert math.isnan(s.loc["standard", "shortfall"])
    text = frontier_report.format_table(s.reset_index())
    assert "not reached in 2/2 seeds, 4.0 points short" in text
    assert "not reached in 1/2 seeds" in text


def test_a_baseline_seed_that_never_reaches_the_target_bounds_the_ratio_from_below():
    """German, fresh seeds: one standard seed ended under the target every MiniPost seed reached. It
    needed more than its budget, so counted at its budget the ratio can only be too low: a lower bound."""
    stuck = [(0, 0.3), (1e12, 0.5), (2e12, 0.52), (3e12, 0.52), (4e12, 0.52)]  # plateaus: 0.6, 0.52 -> target 0.55
    table = rows(run("s0", "standard", STANDARD, seed=0), run("s1", "standard", stuck, seed=1),
                 run("p0", "minipost k=1", FAST, seed=0), run("p1", "minipost k=1", FAST, seed=1),
                 run("q0", "minipost k=2", FAST, seed=0), run("q1", "minipost k=2", stuck, seed=1))
    s = by_arm(table)
    assert s.loc["standard", "target"] == pytest.approx(0.55)
    # standard: 1.5e12 and, never reached, at least its budget of 4e12; FAST crosses 0.55 at 1.3e11
    assert s.loc["minipost k=1", "compute_to_match"] == pytest.approx(2.75e12 / 1.3e11)
    assert s.loc["minipost k=1", "compute_to_match_lo"] == pytest.approx(1.5e12 / 1.3e11)
    assert s.loc["minipost k=1", "compute_to_match_censored"] and math.isinf(s.loc["minipost k=1", "compute_to_match_hi"])
    assert "1/2 seeds; the ratio is a lower bound: the baseline's other seeds count at their budget" in s.loc["minipost k=1", "note"]
    # an arm that misses in a seed too is bounded on neither side
    assert math.isnan(s.loc["minipost k=2", "compute_to_match"]) and not s.loc["minipost k=2", "compute_to_match_censored"]
    text = frontier_report.format_table(s.reset_index())
    assert ">=21.15x [11.54, inf]" in text and "not reached in 1/2 seeds" in text


def test_trials_cut_short_are_no_seeds_but_early_stopped_ones_are():
    partial = [(0, 0.3), (1e11, 0.4)]  # a curve cut off before it could reach the target
    def short(run_id: str, seed: int, status: str, stopped: str = "") -> pd.DataFrame:
        return rows(run(run_id, "minipost k=1", partial, seed=seed)).assign(status=status, stopped=stopped)
    table = pd.concat([rows(run("s1", "standard", STANDARD, seed=1), run("p1", "minipost k=1", FAST, seed=1)),
                       short("p2", 2, "KILLED", "interrupted"), short("p3", 3, "FAILED"), short("p4", 4, "RUNNING")])
    s = by_arm(table)
    assert s.loc["minipost k=1", "seeds"] == 1 and s.loc["minipost k=1", "reached"] == "1/1"
    assert frontier.cut_short(table).groupby(table["run_id"]).all().sum() == 3
    # the scheduler's early stop (ASHA) is part of the search: its seed counts
    s = by_arm(pd.concat([table, short("p5", 5, "KILLED", "scheduler")]))
    assert s.loc["minipost k=1", "seeds"] == 2 and s.loc["minipost k=1", "reached"] == "1/2"


def test_identical_seeds_give_zero_width_intervals():
    table = rows(*[run(f"s{i}", "standard", STANDARD, seed=i) for i in range(3)],
                 *[run(f"p{i}", "minipost k=1", FAST, seed=i) for i in range(3)])
    s = by_arm(table).loc["minipost k=1"]
    assert s["seeds"] == 3
    assert s["compute_to_match_lo"] == s["compute_to_match_hi"] == pytest.approx(s["compute_to_match"])
    assert s["final_accuracy_lo"] == s["final_accuracy_hi"] == pytest.approx(s["final_accuracy"])
    assert "[12.67, 12.67]" in frontier_report.format_table(by_arm(table).reset_index())


def test_differing_seeds_give_intervals_around_the_mean_deterministically():
    def shifted(points, dx, da):
        return [(f * dx, a + da) for f, a in points]
    table = rows(*[run(f"s{i}", "standard", shifted(STANDARD, 1 + i / 4, i / 100), seed=i) for i in range(3)],
                 *[run(f"p{i}", "minipost k=1", shifted(FAST, 1 + i / 2, -i / 100), seed=i,
                       test=[a - 0.05 - i / 50 for _, a in FAST]) for i in range(3)])
    first, second = frontier.summary(table), frontier.summary(table)
    pd.testing.assert_frame_equal(first, second)
    s = first.set_index("arm").loc["minipost k=1"]
    for name in ("compute_to_match", "final_accuracy", "test_at_target"):
        assert s[f"{name}_lo"] < s[name] < s[f"{name}_hi"], name


def test_hyper_parameters_are_chosen_on_dev_for_every_arm():
    spike = [(0, 0.3), (1e12, 0.40), (2e12, 0.95), (3e12, 0.40), (4e12, 0.40)]  # best 0.95, smoothed 0.58
    steady = [(0, 0.3), (1e12, 0.60), (2e12, 0.70), (3e12, 0.70), (4e12, 0.70)]  # best 0.70, smoothed 0.70
    table = rows(run("s1", "standard", spike, config="lr=0.1"), run("s2", "standard", spike, config="lr=0.1", seed=1),
                 run("s3", "standard", steady, config="lr=0.01"),
                 run("p1", "minipost k=1", spike, config="lr=0.1"), run("p2", "minipost k=1", steady, config="lr=0.01"),
                 run("t1", "minipost k=2", steady, config="lr=b"), run("t2", "minipost k=2", steady, config="lr=a"))
    s = by_arm(table)
    assert s.loc["standard", "config"] == s.loc["minipost k=1", "config"] == "lr=0.01"
    assert s.loc["standard", "seeds"] == 1  # only the chosen config's seeds
    assert s.loc["standard", "target"] == pytest.approx(0.69)
    assert s.loc["minipost k=2", "config"] == "lr=a"  # a tie goes to the first config string


def test_minijoint_against_its_own_baseline_and_plain_standard():
    joint = "standard (joint k=2)"
    standard = [(0, 0.3), (1e12, 0.59), (2e12, 0.6), (3e12, 0.6), (4e12, 0.6)]  # target 0.59 at 1e12
    joint_standard = [(0, 0.3), (2e12, 0.59), (4e12, 0.69), (5e12, 0.7), (6e12, 0.7), (7e12, 0.7)]  # 0.69 at 4e12
    minijoint = [(0, 0.3), (5e11, 0.59), (1e12, 0.69), (2e12, 0.7), (3e12, 0.7), (4e12, 0.7)]
    table = rows(run("s", "standard", standard), run("j", joint, joint_standard, baseline=joint),
                 run("m", "minijoint k=2", minijoint, baseline=joint, one_off=6e12))
    s = by_arm(table)
    assert s.loc["minijoint k=2", "target"] == pytest.approx(0.69)
    assert s.loc["minijoint k=2", "compute_to_match"] == pytest.approx(4.0)  # 4e12 / 1e12
    assert s.loc["minijoint k=2", "vs_standard"] == pytest.approx(2.0)  # 1e12 / 5e11 at standard's 0.59
    assert s.loc[joint, "compute_to_match"] == 1.0
    assert s.loc[joint, "vs_standard"] == pytest.approx(0.5)  # 1e12 / 2e12
    assert s.loc["minijoint k=2", "break_even_languages"] == pytest.approx(2.0)  # 6e12 / (4e12 - 1e12)
    assert "2.00x" in frontier_report.format_table(s.reset_index())


def test_break_even_languages():
    slower = [(0, 0.3), (1e12, 0.3), (2e12, 0.3), (3e12, 0.6), (4e12, 0.6)]  # 0.59 at 2.97e12
    table = rows(run("s", "standard", STANDARD), run("p", "minipost k=1", FAST, one_off=3.5e12),
                 run("q", "minipost k=2", slower, one_off=1e12), run("r", "minipost k=3", FAST))
    s = by_arm(table)
    assert s.loc["minipost k=1", "break_even_languages"] == pytest.approx(3.5e12 / (1.9e12 - 1.5e11))
    assert math.isinf(s.loc["minipost k=2", "break_even_languages"])  # no saving to pay it back
    assert s.loc["minipost k=3", "break_even_languages"] == 0.0
    assert s.loc["standard", "break_even_languages"] == 0.0


def test_test_accuracy_at_the_chosen_point_is_interpolated():
    table = rows(run("s", "standard", STANDARD),
                 run("p", "minipost k=1", FAST, test=[0.2, 0.4, 0.6, 0.7, 0.65]),  # 1.5e11: between 0.4 and 0.6
                 run("q", "minipost k=2", [(0, 0.3), (1e12, 0.4)], test=[0.25, 0.35]))
    s = by_arm(table)
    assert s.loc["minipost k=1", "test_at_target"] == pytest.approx(0.5)
    assert s.loc["minipost k=1", "final_test_accuracy"] == pytest.approx(0.65)
    assert s.loc["minipost k=2", "test_at_target"] == pytest.approx(0.35)  # never reached: the final one
    assert "0.350*" in frontier_report.format_table(s.reset_index())


def test_curves_average_only_the_seeds_that_got_there():
    table = rows(run("s1", "standard", [(0, 0.2), (1.0, 0.4), (2.0, 0.6)], seed=1),
                 run("s2", "standard", [(0, 0.4), (1.5, 0.5), (3.0, 0.8)], seed=2))
    c = frontier.curves(table).set_index("flops")
    assert list(c.index) == [0, 1.0, 1.5, 2.0, 3.0]
    assert c.loc[1.0, "accuracy"] == pytest.approx((0.4 + (0.4 + 0.1 / 1.5)) / 2)
    assert c.loc[3.0, "seeds"] == 1 and c.loc[3.0, "accuracy"] == pytest.approx(0.8)
    assert math.isnan(c.loc[3.0, "lo"]) and c.loc[0, "lo"] < c.loc[0, "accuracy"] < c.loc[0, "hi"]


def sweep_table() -> pd.DataFrame:
    """Two languages, two conditions, three seeds of standard, MiniPost and MiniJoint with its baseline."""
    rng = np.random.default_rng(1)
    runs = []
    for language in ("de", "ja"):
        for condition in ("init=overlap", "init=random"):
            for arm, baseline, speed, one_off in (("standard", "standard", 1.0, 0.0),
                                                  ("minipost k=1", "standard", 4.0, 2e12),
                                                  ("standard (joint k=2)", "standard (joint k=2)", 1.0, 0.0),
                                                  ("minijoint k=2", "standard (joint k=2)", 3.0, 3e12)):
                for seed in range(3):
                    flops = np.linspace(0, 1e13 / speed, 8)
                    acc = 0.3 + 0.4 * (1 - np.exp(-3 * np.arange(8) / 7)) + rng.normal(0, 0.01, 8)
                    runs.append(run(f"{language}-{condition}-{arm}-{seed}", arm, list(zip(flops, acc)), seed=seed,
                                    baseline=baseline, one_off=one_off, language=language, condition=condition))
    table = rows(*runs)
    table["dev_items"] = 400
    return table


def test_write_and_plot(tmp_path):
    table = sweep_table()
    result, files = frontier_report.write(table, tmp_path / "out")
    assert [f.name for f in files] == ["frontier.csv", "frontier.md", "frontier.png", "frontier_points.csv",
                                       "frontier_curves.csv"]
    assert files[2].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    back = pd.read_csv(files[0])
    assert list(back.columns) == frontier.SUMMARY_COLUMNS and len(back) == len(result) == 16
    assert list(pd.read_csv(files[4]).columns) == frontier.CURVE_COLUMNS
    markdown = files[1].read_text()
    assert markdown.count("| arm |") == 4 and "dev items 400" in markdown
    text = frontier_report.format_table(result)
    assert "ja / init=random: ceiling (English) 0.900, floor (majority) 0.250" in text
    assert "compute_to_match" in text
    assert frontier_report.plot(table, tmp_path / "again.png").stat().st_size > 0


def test_a_target_below_the_majority_floor_is_flagged():
    rows = [{"run_id": f"{arm}-{seed}", "language": "xx", "condition": "init=overlap", "arm": arm, "method": arm,
             "depth": "full", "baseline": "standard", "seed": seed, "config": "", "step": step, "flops": flops,
             "accuracy": acc, "test_accuracy": acc, "english_accuracy": 0.8, "majority_accuracy": 0.25,
             "one_off_flops": 0.0}
            for arm in ("standard", "minipost") for seed in (0, 1)
            for step, flops, acc in ((0, 0.0, 0.10), (10, 1e12, 0.12), (20, 2e12, 0.13))]
    table = frontier.summary(pd.DataFrame(rows))
    assert table["note"].str.contains("target at or below the majority floor").all()


def test_a_baseline_that_stays_within_noise_of_its_start_gives_no_ratio():
    """fr in the study: standard 0.314 -> plateau 0.325 on 400 dev items; a 1.27x read off that is noise."""
    def flat(run_id, arm, seed, rise):
        return [dict(r, dev_items=400) for r in run(run_id, arm, [(0, 0.314), (1e12, 0.314 + rise), (2e12, 0.314 + rise),
                                                                   (3e12, 0.314 + rise)], seed=seed)]
    noisy = by_arm(rows(*(flat(f"s{i}", "standard", i, 0.011) for i in range(3)),
                        *(flat(f"m{i}", "minipost k=2", i, 0.011) for i in range(3)))
                   .assign(one_off_flops=lambda t: np.where(t["arm"] == "standard", 0.0, 1e12)))
    assert np.isnan(noisy.loc["minipost k=2", "compute_to_match"]) and np.isnan(noisy.loc["minipost k=2", "break_even_languages"])
    assert "standard rises 1.1 points, under 2 standard errors of a dev evaluation (4.6)" in noisy.loc["minipost k=2", "note"]
    clear = by_arm(rows(*(flat(f"s{i}", "standard", i, 0.06) for i in range(3)),
                        *(flat(f"m{i}", "minipost k=2", i, 0.06) for i in range(3))))
    assert clear.loc["minipost k=2", "compute_to_match"] == pytest.approx(1.0) and not clear.loc["minipost k=2", "note"]
