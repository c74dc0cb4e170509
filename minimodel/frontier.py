"""Does a mini-model reach standard's accuracy with less adaptation compute, and by how much?

Input is the points table: one row per evaluation of a trial, with run_id, language, condition,
arm, method, depth, baseline, seed, config, step, flops (cumulative adaptation FLOPs), accuracy (dev),
test_accuracy and the per-run constants english_accuracy (ceiling), majority_accuracy (floor),
one_off_flops and optionally dev_items; status and stopped, where present, leave out trials cut short
(cut_short). Arms are compared only within one (language, condition):

1. hyper-parameters are chosen on dev by one rule for every arm: the config whose seeds have the
   best mean plateau (a seed's plateau: the best moving average over 3 consecutive evaluations);
2. the target is the baseline arm's mean plateau minus `tolerance`, one target for the baseline and
   every arm measured against it, so the baseline pays for reaching the target, not its exact best;
3. per seed, the FLOPs at which the dev curve first reaches the target, linear between evaluations;
4. compute_to_match = mean baseline FLOPs / mean arm FLOPs to the target (> 1: the arm is cheaper).
   A baseline seed that never reaches the target within its budget needed more than that budget:
   when every seed of the arm reached it, such seeds count at their last evaluation's FLOPs
   (right-censored), and the ratio and its interval's low end are lower bounds (`*_censored`).

Intervals are 95% over seeds: compute ratios by percentile bootstrap (seeds of the two arms resampled
independently, 2000 draws, numpy Generator seeded 0); accuracies by Student t. One seed gives none.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.stats
import pandas as pd

MATCH_TOLERANCE = 0.01  # one accuracy point below the baseline's plateau counts as matching it
RISE_STANDARD_ERRORS = 2.0  # a baseline must rise this many standard errors of one dev evaluation
REACH_SLACK = 1e-9  # an accuracy that equals the target up to float rounding has reached it
SMOOTH_WINDOW = 3
BOOTSTRAP_DRAWS = 2000
GROUP = ["language", "condition"]
SUMMARY_COLUMNS = [
    "language", "condition", "arm", "method", "depth", "baseline", "config", "seeds", "reached",
    "step0_accuracy", "final_accuracy", "final_accuracy_lo", "final_accuracy_hi", "best_accuracy",
    "plateau", "target", "flops_to_target", "compute_to_match", "compute_to_match_lo",
    "compute_to_match_hi", "compute_to_match_censored", "vs_standard", "vs_standard_lo", "vs_standard_hi",
    "vs_standard_censored", "test_at_target",
    "test_at_target_lo", "test_at_target_hi", "final_test_accuracy", "shortfall", "english_accuracy",
    "majority_accuracy", "dev_items", "one_off_flops", "break_even_languages", "note",
]
CURVE_COLUMNS = ["language", "condition", "arm", "config", "flops", "accuracy", "lo", "hi", "seeds"]
_OPTIONAL = ["test_accuracy", "english_accuracy", "majority_accuracy", "one_off_flops", "dev_items"]
NAN = float("nan")


@dataclass(frozen=True)
class Arm:
    """One arm's chosen config and the dev/test curves of its seeds (in step order)."""
    first: pd.Series  # an evaluation row: language, condition, arm, method, depth, baseline
    config: str
    curves: list[pd.DataFrame]
    plateaus: np.ndarray


def pareto(points: pd.DataFrame) -> pd.DataFrame:
    """The points no other point beats with fewer-or-equal FLOPs and higher accuracy, by FLOPs."""
    ordered = points.sort_values(["flops", "accuracy"], ascending=[True, False], kind="stable")
    better = ordered["accuracy"] > ordered["accuracy"].cummax().shift(fill_value=-np.inf)
    return ordered[better]


def frontiers(table: pd.DataFrame) -> pd.DataFrame:
    """The Pareto points of each (language, condition, arm), every trial and config pooled."""
    parts = [pareto(group) for _, group in table.groupby([*GROUP, "arm"], sort=True)]
    return pd.concat(parts, ignore_index=True) if parts else table.iloc[:0]


def _t_interval(values: list[float]) -> tuple[float, float, float]:
    """Mean and 95% Student-t interval; NaN bounds from one value: one seed shows no spread."""
    v = np.asarray(values, dtype=float)
    v = v[~np.isnan(v)]
    if not len(v):
        return NAN, NAN, NAN
    mean = float(v.mean())
    if len(v) < 2:
        return mean, NAN, NAN
    t = scipy.stats.t.ppf(0.975, len(v) - 1)
    half = float(t * v.std(ddof=1) / np.sqrt(len(v)))
    return mean, mean - half, mean + half


def _smoothed_best(accuracy: np.ndarray) -> float:
    """Best moving average over SMOOTH_WINDOW evaluations: a plateau, not one lucky evaluation."""
    if not len(accuracy):
        return NAN
    width = min(SMOOTH_WINDOW, len(accuracy))
    return float((np.convolve(accuracy, np.ones(width), mode="valid") / width).max())


def _choose(points: pd.DataFrame) -> Arm:
    """The config with the best mean plateau over its seeds (ties: first config string) and its seeds.

    `points` are one arm's evaluations with a dev accuracy."""
    runs = {run_id: run.sort_values(["step", "flops"], kind="stable")
            for run_id, run in points.groupby("run_id", sort=True)}
    plateau = {run_id: _smoothed_best(curve["accuracy"].to_numpy()) for run_id, curve in runs.items()}
    configs: dict[str, list] = {}
    for run_id, curve in runs.items():
        configs.setdefault(curve["config"].iloc[0], []).append(run_id)
    score = {config: np.mean([plateau[r] for r in ids]) for config, ids in configs.items()}
    config = min(score, key=lambda c: (-score[c], c))
    ids = configs[config]
    return Arm(runs[ids[0]].iloc[0], config, [runs[r] for r in ids], np.array([plateau[r] for r in ids]))


def chosen_arms(table: pd.DataFrame) -> dict[tuple[str, str, str], Arm]:
    """Every (language, condition, arm) with at least one dev evaluation, its config chosen on dev."""
    evaluated = table.dropna(subset=["flops", "accuracy"])
    return {key: _choose(points) for key, points in evaluated.groupby([*GROUP, "arm"], sort=True)}


def cut_short(table: pd.DataFrame) -> pd.Series:
    """Rows of trials whose curve was cut short by something other than the search: failed, still
    running, or interrupted with the sweep (tag `stopped`). They are no seeds: a partial curve would
    count as a seed that never reached the target. Trials the scheduler stopped early (ASHA) count."""
    status = table["status"] if "status" in table else pd.Series("FINISHED", index=table.index)
    stopped = table["stopped"] if "stopped" in table else pd.Series("", index=table.index)
    return status.isin(["RUNNING", "FAILED"]) | (stopped == "interrupted")


def prepare(table: pd.DataFrame) -> pd.DataFrame:
    """The points of counted trials with optional columns filled in, so older tables still summarise."""
    table = table[~cut_short(table)].copy()
    for column in _OPTIONAL:
        if column not in table:
            table[column] = NAN
    table["config"] = table["config"].fillna("").astype(str) if "config" in table else ""
    return table


def _flops_to(curve: pd.DataFrame, target: float) -> float:
    """FLOPs at which the dev curve first reaches target, linear between the evaluations around it."""
    accuracy, flops = curve["accuracy"].to_numpy(), curve["flops"].to_numpy(dtype=float)
    hit = np.flatnonzero(accuracy >= target - REACH_SLACK)
    if not len(hit):
        return NAN
    i = hit[0]
    if i == 0:
        return float(flops[0])
    frac = min(1.0, (target - accuracy[i - 1]) / (accuracy[i] - accuracy[i - 1]))
    return float(flops[i - 1] + frac * (flops[i] - flops[i - 1]))


def _test_at(curve: pd.DataFrame, flops: float) -> float:
    """Test accuracy interpolated at those FLOPs; at the final evaluation if the target was never reached."""
    test = curve.dropna(subset=["test_accuracy"])
    if test.empty:
        return NAN
    if np.isnan(flops):
        return float(test["test_accuracy"].iloc[-1])
    return float(np.interp(flops, test["flops"], test["test_accuracy"]))


def _flops_all(arm: Arm, target: float) -> np.ndarray:
    """Each seed's FLOPs to the target (NaN where never reached)."""
    return np.array([_flops_to(curve, target) for curve in arm.curves])


def _ratio(reference: np.ndarray, arm: np.ndarray) -> tuple[float, float, float, str]:
    """mean(reference) / mean(arm) FLOPs with its bootstrap interval over seeds, or NaN and why."""
    if not len(reference) or np.isnan(reference).any() or np.isnan(arm).any():
        return NAN, NAN, NAN, ""
    if reference.mean() == 0:
        return NAN, NAN, NAN, "baseline at target before adaptation"
    if arm.mean() == 0:
        return np.inf, np.inf, np.inf, "at target before any adaptation compute"
    ratio = float(reference.mean() / arm.mean())
    if len(reference) < 2 or len(arm) < 2:
        return ratio, NAN, NAN, ""
    rng = np.random.default_rng(0)
    ref_means = reference[rng.integers(0, len(reference), (BOOTSTRAP_DRAWS, len(reference)))].mean(axis=1)
    arm_means = arm[rng.integers(0, len(arm), (BOOTSTRAP_DRAWS, len(arm)))].mean(axis=1)
    with np.errstate(divide="ignore", invalid="ignore"):  # a draw of only 0-FLOPs seeds is infinitely cheaper
        draws = ref_means / arm_means
    lo, hi = np.quantile(draws, [0.025, 0.975], method="inverted_cdf")  # no interpolation across inf
    return ratio, float(lo), float(hi), ""


def _compare(reference: Arm, reference_flops: np.ndarray,
             arm_flops: np.ndarray) -> tuple[float, float, float, str, bool]:
    """The arm's compute ratio against `reference` (each side's FLOPs to one target): _ratio's answer,
    and whether it is a lower bound because reference seeds that never reached the target were counted
    at their budget (only when every seed of the arm reached it: otherwise neither side is bounded)."""
    missed = np.isnan(reference_flops)
    if not missed.any() or np.isnan(arm_flops).any():
        return *_ratio(reference_flops, arm_flops), False
    budgets = np.array([float(curve["flops"].iloc[-1]) for curve in reference.curves])
    ratio, lo, hi, note = _ratio(np.where(missed, budgets, reference_flops), arm_flops)
    if not np.isfinite(ratio):
        return ratio, lo, hi, note, False
    return ratio, lo, np.inf, note, True  # unbounded above: the missed seeds may need any amount more


def _break_even(one_off: float, saving: float) -> float:
    """Languages after which the one-off cost is paid back by the per-language saving."""
    if np.isnan(one_off):
        return NAN
    if one_off == 0:
        return 0.0
    if np.isnan(saving):
        return NAN
    return one_off / saving if saving > 0 else np.inf


def _flat(arm: Arm, dev_items: float) -> str:
    """Why no compute ratio against `arm` can be read, if its plateau is within noise of its start:
    a target set by a curve that never left step 0 measures the noise of the evaluation, not learning.
    Noise here is the binomial standard error of one evaluation on dev_items items."""
    start = float(np.mean([c["accuracy"].iloc[0] for c in arm.curves]))
    rise, se = float(arm.plateaus.mean()) - start, float(np.sqrt(start * (1 - start) / dev_items))
    if not rise < RISE_STANDARD_ERRORS * se:  # also when the dev-set size is unknown
        return ""
    return (f"{arm.first['arm']} rises {100 * rise:.1f} points, under {RISE_STANDARD_ERRORS:g} standard errors "
            f"of a dev evaluation ({100 * RISE_STANDARD_ERRORS * se:.1f}): no ratio to read")


def reading_order(item: tuple[tuple[str, str, str], Arm]) -> tuple:
    """Plain standard's comparisons first, each baseline before the arms measured against it."""
    (language, condition, name), arm = item
    baseline = arm.first["baseline"]
    return language, condition, baseline != "standard", baseline, name != baseline, name


def _row(arm: Arm, target: float, base: Arm | None, standard: Arm | None, standard_target: float) -> dict:
    """One summary row: the arm's curves measured against its baseline's target (and plain standard's)."""
    first = arm.first
    chosen = pd.concat(arm.curves)
    per_run = chosen.groupby("run_id", sort=True)[["english_accuracy", "majority_accuracy", "one_off_flops",
                                                   "dev_items"]].mean().mean()
    flops = _flops_all(arm, target)
    base_flops = _flops_all(base, target) if base else np.array([])
    reached = int(np.isfinite(flops).sum())
    best = float(np.mean([c["accuracy"].max() for c in arm.curves]))
    final, final_lo, final_hi = _t_interval([c["accuracy"].iloc[-1] for c in arm.curves])
    test, test_lo, test_hi = _t_interval([_test_at(c, f) for c, f in zip(arm.curves, flops)])
    ratio, lo, hi, note, censored = _compare(base, base_flops, flops) if base else (NAN, NAN, NAN, "", False)
    if base is None:
        note = f"no {first['baseline']} runs"
    elif np.isnan(base_flops).any():
        note = f"baseline reached target in {int(np.isfinite(base_flops).sum())}/{len(base_flops)} seeds"
    if target <= per_run["majority_accuracy"]:  # a ratio of FLOPs to reach chance says nothing
        note = "; ".join(filter(None, [note, "target at or below the majority floor"]))
    flat = _flat(base, per_run["dev_items"]) if base is not None else ""
    if flat:
        ratio, lo, hi, note, censored = NAN, NAN, NAN, "; ".join(filter(None, [note, flat])), False
    if censored:
        note += "; the ratio is a lower bound: the baseline's other seeds count at their budget"
    if first["baseline"] == "standard":
        vs = (ratio, lo, hi, note, censored)
    elif standard is not None and not _flat(standard, per_run["dev_items"]):
        vs = _compare(standard, _flops_all(standard, standard_target), _flops_all(arm, standard_target))
    else:
        vs = (NAN, NAN, NAN, "", False)
    saving = base_flops.mean() - flops.mean() if len(base_flops) and not flat else NAN  # NaN unless every seed reached
    return {
        "language": first["language"], "condition": first["condition"], "arm": first["arm"],
        "method": first["method"], "depth": first["depth"], "baseline": first["baseline"],
        "config": arm.config, "seeds": len(arm.curves),
        "reached": f"{reached}/{len(flops)}" if np.isfinite(target) else "",
        "step0_accuracy": float(np.mean([c["accuracy"].iloc[0] for c in arm.curves])),
        "final_accuracy": final, "final_accuracy_lo": final_lo, "final_accuracy_hi": final_hi,
        "best_accuracy": best, "plateau": float(arm.plateaus.mean()), "target": target,
        "flops_to_target": float(flops.mean()) if reached == len(flops) else NAN,
        "compute_to_match": ratio, "compute_to_match_lo": lo, "compute_to_match_hi": hi,
        "compute_to_match_censored": censored,
        "vs_standard": vs[0], "vs_standard_lo": vs[1], "vs_standard_hi": vs[2], "vs_standard_censored": vs[4],
        "test_at_target": test, "test_at_target_lo": test_lo, "test_at_target_hi": test_hi,
        "final_test_accuracy": float(np.nanmean([_test_at(c, NAN) for c in arm.curves]))
        if chosen["test_accuracy"].notna().any() else NAN,
        "shortfall": target - best if reached < len(flops) else NAN,
        "english_accuracy": per_run["english_accuracy"], "majority_accuracy": per_run["majority_accuracy"],
        "dev_items": per_run["dev_items"], "one_off_flops": per_run["one_off_flops"],
        "break_even_languages": _break_even(per_run["one_off_flops"], saving),
        "note": note,
    }


def summary(table: pd.DataFrame, tolerance: float = MATCH_TOLERANCE) -> pd.DataFrame:
    """One row per (language, condition, arm): does it reach its baseline's target, for how much compute.

    Columns are SUMMARY_COLUMNS; accuracies (and shortfall) are fractions, FLOPs are adaptation FLOPs.
    compute_to_match and vs_standard are NaN unless every seed of the arm reached the target (and
    every seed of the baseline, or the ratio is a lower bound: `*_censored`); then `reached` says how
    many of the arm's seeds did, `shortfall` how far its mean best dev accuracy is below the target,
    and `note` any other reason (missing baseline, baseline at target at 0 FLOPs).
    """
    if table.empty:
        return pd.DataFrame(columns=SUMMARY_COLUMNS)
    table = prepare(table)
    arms = chosen_arms(table)
    rows = []
    for (language, condition, name), arm in sorted(arms.items(), key=reading_order):
        group = {a: other for (lang, cond, a), other in arms.items() if (lang, cond) == (language, condition)}
        targets = {a: float(other.plateaus.mean()) - tolerance for a, other in group.items()}
        baseline = arm.first["baseline"]
        rows.append(_row(arm, targets.get(baseline, NAN), group.get(baseline), group.get("standard"),
                         targets.get("standard", NAN)))
    return pd.DataFrame(rows, columns=SUMMARY_COLUMNS)


def curves(table: pd.DataFrame) -> pd.DataFrame:
    """Per arm (chosen config): mean dev accuracy over seeds on the union of their FLOPs, with a 95% band.

    Each seed's curve is interpolated linearly; beyond a seed's last FLOPs only the seeds that got
    there count (the `seeds` column), so the mean never extrapolates a curve.
    """
    rows = []
    for (language, condition, name), arm in chosen_arms(prepare(table)).items():
        grid = np.unique(np.concatenate([c["flops"].to_numpy(dtype=float) for c in arm.curves]))
        values = np.array([np.where((grid >= c["flops"].min()) & (grid <= c["flops"].max()),
                                    np.interp(grid, c["flops"], c["accuracy"]), NAN) for c in arm.curves])
        for x, column in zip(grid, values.T):
            mean, lo, hi = _t_interval(column)
            rows.append([language, condition, name, arm.config, x, mean, lo, hi, int(np.isfinite(column).sum())])
    return pd.DataFrame(rows, columns=CURVE_COLUMNS)
