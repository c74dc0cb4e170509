"""Does a mini-model reach standard's accuracy with less adaptation compute, and by how much?

Input is the points table (evaluations.csv): one row per evaluation of a trial, with run_id,
language, condition, arm, method, depth, baseline, seed (adapt.seed), config, step, flops (cumulative
adaptation FLOPs), accuracy (dev), test_accuracy and the per-run constants english_accuracy
(ceiling), majority_accuracy (floor), one_off_flops and optionally dev_items; status and stopped,
where present, leave out trials cut short (cut_short). Arms are compared only within one
(language, condition), and always seed with seed: the arms of one seed value start from the same
embeddings and see the same data, so the seed is the unit that pairs them.

1. A curve is read through one smoothing: the moving average over SMOOTH_WINDOW consecutive
   evaluations, placed at its window's mean FLOPs. A seed's plateau is its best smoothed value; an
   arm reaches a target where its smoothed curve first does (linear between smoothed points). One
   evaluation that is a few items lucky neither sets the target nor reaches it.
2. Hyper-parameters are chosen on dev by one rule for every arm: the config whose seeds have the
   best mean plateau.
3. The target is the baseline arm's mean plateau minus `tolerance`, one target for the baseline and
   every arm measured against it.
4. Cheaper: per seed, the ratio of the baseline's FLOPs to the target over the arm's; compute_to_match
   is their geometric mean, with a 95% Student-t interval on the log ratios and the one-sided p-value
   of "the arm is not cheaper". Simulated null sweeps (tests/test_frontier.py, RESULTS.md section 19)
   chose this over the independent bootstrap (false claims 3-4x too often at 3 seeds) and over the
   exact sign-flip test (which cannot reach 5% with fewer than 6 seeds). No random draw anywhere.
   A baseline seed that never reaches the target needed more than its budget: when every seed of the
   arm reached it, it counts at its last evaluation's FLOPs and the ratio is a lower bound.
5. Matches: the arm's plateau minus the baseline's, per seed, and likewise the final test accuracy;
   two one-sided t-tests (TOST, 90% interval) that the mean difference lies within +-tolerance.
6. A ratio is read only when the baseline rises: per seed, the mean of its last SMOOTH_WINDOW
   evaluations minus its step-0 accuracy (the same items, so the pair is within one seed), one-sided
   t-test over seeds; with one seed, two binomial standard errors of one evaluation.
7. Holm's correction over the rows of one table, per family of claims (cheaper, matches on dev,
   matches on test); a claim is made when its Holm-adjusted p-value is under its level.
8. Total compute per (condition, arm) over the table's languages: one-off plus adaptation FLOPs to the
   target, against the baseline's, and the break-even from the savings measured on those languages;
   and the pooled compute ratio over them (stratified by language; only where every language reads one).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
import scipy.stats

from minimodel.experiment.arms import STANDARD

MATCH_TOLERANCE = 0.01  # one accuracy point below the baseline's plateau counts as matching it
RISE_STANDARD_ERRORS = 2.0  # one seed: a baseline must rise this many standard errors of one dev evaluation
REACH_SLACK = 1e-9  # an accuracy that equals the target up to float rounding has reached it
SMOOTH_WINDOW = 3
CHEAPER_LEVEL = 0.025  # one-sided: the low end of the 95% interval above 1
MATCH_LEVEL = 0.05  # each of TOST's one-sided tests: the 90% interval inside +-tolerance
RISE_LEVEL = 0.025
GROUP = ["language", "condition"]
FAMILIES = {"cheaper": CHEAPER_LEVEL, "matches_dev": MATCH_LEVEL, "matches_test": MATCH_LEVEL}
SUMMARY_COLUMNS = [
    "language",
    "condition",
    "arm",
    "method",
    "depth",
    "baseline",
    "config",
    "seeds",
    "pairs",
    "reached",
    "step0_accuracy",
    "final_accuracy",
    "final_accuracy_lo",
    "final_accuracy_hi",
    "best_accuracy",
    "plateau",
    "target",
    "flops_to_target",
    "compute_to_match",
    "compute_to_match_lo",
    "compute_to_match_hi",
    "compute_to_match_censored",
    "cheaper_p",
    "cheaper_p_holm",
    "cheaper",
    "matches_dev_diff",
    "matches_dev_lo",
    "matches_dev_hi",
    "matches_dev_p",
    "matches_dev_p_holm",
    "matches_dev",
    "matches_test_diff",
    "matches_test_lo",
    "matches_test_hi",
    "matches_test_p",
    "matches_test_p_holm",
    "matches_test",
    "comparisons",
    "baseline_rise",
    "baseline_rise_p",
    "vs_standard",
    "vs_standard_lo",
    "vs_standard_hi",
    "vs_standard_censored",
    "test_at_target",
    "test_at_target_lo",
    "test_at_target_hi",
    "final_test_accuracy",
    "shortfall",
    "english_accuracy",
    "majority_accuracy",
    "dev_items",
    "dev_standard_error",
    "one_off_flops",
    "languages",
    "total_flops",
    "baseline_total_flops",
    "total_ratio",
    "break_even_languages",
    "pooled_ratio",
    "pooled_lo",
    "pooled_hi",
    "pooled_censored",
    "note",
]
CURVE_COLUMNS = ["language", "condition", "arm", "config", "flops", "accuracy", "lo", "hi", "seeds"]
REFERENCE_INIT = "random"  # what every init's start is measured against: embeddings that know nothing
START_COLUMNS = [
    "language",
    "condition",
    "seeds",
    "step0_accuracy",
    "step0_lo",
    "step0_hi",
    "reference",
    "lift",
    "lift_lo",
    "lift_hi",
    "pairs",
]
EVALUATION_COLUMNS = [
    "run_id",
    "language",
    "condition",
    "arm",
    "method",
    "depth",
    "baseline",
    "seed",
    "config",
    "status",
    "stopped",
    "step",
    "flops",
    "accuracy",
    "test_accuracy",
    "dev_items",
    "english_accuracy",
    "majority_accuracy",
    "one_off_flops",
]
REQUIRED = ["run_id", "language", "arm", "baseline", "seed", "step", "flops", "accuracy"]
_OPTIONAL = ["test_accuracy", "english_accuracy", "majority_accuracy", "one_off_flops", "dev_items"]
NAN = float("nan")


@dataclass(frozen=True)
class Arm:
    """One arm's chosen config and the dev/test curves of its seeds (in step order)."""

    first: pd.Series  # an evaluation row: language, condition, arm, method, depth, baseline
    config: str
    curves: list[pd.DataFrame]
    plateaus: np.ndarray
    seeds: np.ndarray  # adapt.seed of each curve: what pairs it with another arm's


@dataclass(frozen=True)
class Ratio:
    """Baseline FLOPs over arm FLOPs to one target, over the seeds both ran (see module step 4)."""

    ratio: float = NAN  # geometric mean over seeds
    lo: float = NAN
    hi: float = NAN
    p: float = NAN  # one-sided: the arm is not cheaper
    pairs: int = 0
    censored: bool = False
    note: str = ""
    logs: tuple[float, ...] = ()  # the per-seed log ratios


@dataclass(frozen=True)
class Difference:
    """Mean paired difference (arm minus baseline) with its 90% interval and TOST p-value."""

    mean: float = NAN
    lo: float = NAN
    hi: float = NAN
    p: float = NAN


@dataclass(frozen=True)
class Rise:
    """A baseline's rise over its step-0 accuracy and whether it is more than noise."""

    mean: float
    p: float
    real: bool
    note: str


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


def smoothed(flops: np.ndarray, accuracy: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The curve as the plateau and the crossing read it: moving averages over SMOOTH_WINDOW
    evaluations, each at its window's mean FLOPs."""
    width = min(SMOOTH_WINDOW, len(accuracy))
    if not width:
        return np.array([]), np.array([])
    kernel = np.ones(width) / width
    return (
        np.convolve(np.asarray(flops, dtype=float), kernel, mode="valid"),
        np.convolve(np.asarray(accuracy, dtype=float), kernel, mode="valid"),
    )


def plateau(accuracy: np.ndarray) -> float:
    """Best smoothed dev accuracy: a plateau, not one lucky evaluation."""
    values = smoothed(np.zeros(len(accuracy)), accuracy)[1]
    return float(values.max()) if len(values) else NAN


def flops_to(flops: np.ndarray, accuracy: np.ndarray, target: float) -> float:
    """FLOPs at which the smoothed curve first reaches target, linear between smoothed points."""
    x, y = smoothed(flops, accuracy)
    hit = np.flatnonzero(y >= target - REACH_SLACK)
    if not len(hit):
        return NAN
    i = hit[0]
    if i == 0:
        return float(x[0])
    frac = min(1.0, (target - y[i - 1]) / (y[i] - y[i - 1]))
    return float(x[i - 1] + frac * (x[i] - x[i - 1]))


def agreeing_seeds_p(n: int, holds: bool) -> float:
    """One-sided p-value where every seed reads the same value, so a t statistic is undefined: the exact
    sign test, the chance that all n paired seeds fall on the claimed side when either side is equally
    likely (0.25 from 2 seeds, 1/64 from 6). Identical seeds are a collapsed classifier or a coarse
    evaluation grid, not certainty."""
    return 0.5**n if holds else 1.0


def paired_ratio(reference: np.ndarray, arm: np.ndarray) -> Ratio:
    """Geometric mean of reference / arm over paired seeds, its 95% t-interval on the log ratios and
    the one-sided p-value that the arm is not cheaper; NaN where some seed never reached the target."""
    reference, arm = np.asarray(reference, dtype=float), np.asarray(arm, dtype=float)
    if not len(reference) or np.isnan(reference).any() or np.isnan(arm).any():
        return Ratio(pairs=len(reference))
    if (reference <= 0).any() or (arm <= 0).any():  # a window of 0-FLOPs evaluations: no log ratio
        return Ratio(
            pairs=len(reference), note=f"{'baseline' if (reference <= 0).any() else 'arm'} at target before any adaptation compute"
        )
    logs = np.log(reference / arm)
    n, mean = len(logs), float(logs.mean())
    if n < 2:
        return Ratio(float(np.exp(mean)), pairs=n)
    se = float(logs.std(ddof=1) / np.sqrt(n))
    if se == 0:
        return Ratio(*[float(np.exp(mean))] * 3, p=agreeing_seeds_p(n, mean > 0), pairs=n, logs=tuple(logs))
    half = scipy.stats.t.ppf(0.975, n - 1) * se
    return Ratio(
        float(np.exp(mean)),
        float(np.exp(mean - half)),
        float(np.exp(mean + half)),
        float(scipy.stats.t.sf(mean / se, n - 1)),
        n,
        logs=tuple(logs),
    )


def pooled(strata: list[tuple[float, ...]]) -> Ratio:
    """One ratio over several languages: the geometric mean of their per-language geometric means,
    with a 95% t-interval stratified by language (each language's seed spread; Welch-Satterthwaite
    degrees of freedom), so a language with more seeds weighs no more than another."""
    if not strata or any(len(s) < 2 for s in strata):
        return Ratio()
    means = np.array([np.mean(s) for s in strata])
    parts = np.array([np.var(s, ddof=1) / len(s) for s in strata]) / len(strata) ** 2
    mean, se = float(means.mean()), float(np.sqrt(parts.sum()))
    if se == 0:
        pairs = sum(map(len, strata))
        return Ratio(*[float(np.exp(mean))] * 3, p=agreeing_seeds_p(pairs, mean > 0), pairs=pairs)
    df = parts.sum() ** 2 / sum(w**2 / (len(s) - 1) for w, s in zip(parts, strata))
    half = scipy.stats.t.ppf(0.975, df) * se
    return Ratio(
        float(np.exp(mean)),
        float(np.exp(mean - half)),
        float(np.exp(mean + half)),
        float(scipy.stats.t.sf(mean / se, df)),
        sum(map(len, strata)),
    )


def equivalence(differences: np.ndarray, margin: float) -> Difference:
    """Two one-sided t-tests that the mean paired difference lies within +-margin (90% interval)."""
    d = np.asarray(differences, dtype=float)
    d = d[~np.isnan(d)]
    if len(d) < 2:
        return Difference(float(d.mean())) if len(d) else Difference()
    mean, se = float(d.mean()), float(d.std(ddof=1) / np.sqrt(len(d)))
    if se == 0:
        return Difference(mean, mean, mean, agreeing_seeds_p(len(d), abs(mean) < margin))
    half = scipy.stats.t.ppf(1 - MATCH_LEVEL, len(d) - 1) * se
    p = max(scipy.stats.t.sf((mean + margin) / se, len(d) - 1), scipy.stats.t.cdf((mean - margin) / se, len(d) - 1))
    return Difference(mean, mean - half, mean + half, float(p))


def holm(p: np.ndarray) -> np.ndarray:
    """Holm's step-down adjusted p-values (NaN stays NaN and is not counted)."""
    p = np.asarray(p, dtype=float)
    adjusted = np.full(len(p), NAN)
    counted = np.flatnonzero(~np.isnan(p))
    order = counted[np.argsort(p[counted], kind="stable")]
    m = len(order)
    running = 0.0
    for rank, i in enumerate(order):
        running = max(running, min(1.0, (m - rank) * p[i]))
        adjusted[i] = running
    return adjusted


def _choose(points: pd.DataFrame) -> Arm:
    """The config with the best mean plateau over its seeds (ties: first config string) and its seeds.

    `points` are one arm's evaluations with a dev accuracy."""
    runs = {run_id: run.sort_values(["step", "flops"], kind="stable") for run_id, run in points.groupby("run_id", sort=True)}
    plateaus = {run_id: plateau(curve["accuracy"].to_numpy()) for run_id, curve in runs.items()}
    configs: dict[str, list] = {}
    for run_id, curve in runs.items():
        configs.setdefault(curve["config"].iloc[0], []).append(run_id)
    score = {config: np.mean([plateaus[r] for r in ids]) for config, ids in configs.items()}
    config = min(score, key=lambda c: (-score[c], c))
    ids = sorted(configs[config], key=lambda r: (int(runs[r]["seed"].iloc[0]), r))  # by seed value
    return Arm(
        runs[ids[0]].iloc[0],
        config,
        [runs[r] for r in ids],
        np.array([plateaus[r] for r in ids]),
        np.array([int(runs[r]["seed"].iloc[0]) for r in ids]),
    )


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
    for column in ("config", "condition", "stopped"):
        table[column] = table[column].fillna("").astype(str) if column in table else ""
    return table


def evaluations(table: pd.DataFrame) -> pd.DataFrame:
    """Every evaluation of every counted trial, in EVALUATION_COLUMNS: what evaluations.csv holds and
    all the frontier needs to be recomputed."""
    table = prepare(table)
    for column in ("status", "stopped"):
        if column not in table:
            table[column] = ""
    return table[EVALUATION_COLUMNS].sort_values(
        ["language", "condition", "arm", "seed", "run_id", "step"], kind="stable", ignore_index=True
    )


def _test_at(curve: pd.DataFrame, flops: float) -> float:
    """Test accuracy interpolated at those FLOPs; at the final evaluation if the target was never reached."""
    test, at = curve["test_accuracy"].to_numpy(dtype=float), curve["flops"].to_numpy(dtype=float)
    known = ~np.isnan(test)
    if not known.any():
        return NAN
    if np.isnan(flops):
        return float(test[known][-1])
    return float(np.interp(flops, at[known], test[known]))


def _flops_all(arm: Arm, target: float) -> np.ndarray:
    """Each seed's FLOPs to the target (NaN where never reached)."""
    return np.array([flops_to(c["flops"].to_numpy(dtype=float), c["accuracy"].to_numpy(), target) for c in arm.curves])


def _by_seed(arm: Arm, values: np.ndarray) -> dict[int, float]:
    """Per seed value its value (the mean where a seed ran more than once in the chosen config)."""
    return {int(s): float(np.mean(values[arm.seeds == s])) for s in np.unique(arm.seeds)}


def _pairs(reference: Arm, reference_values: np.ndarray, arm: Arm, arm_values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The two arms' values on the seeds both ran, matched by seed value."""
    ref, other = _by_seed(reference, reference_values), _by_seed(arm, arm_values)
    common = sorted(set(ref) & set(other))
    return np.array([ref[s] for s in common]), np.array([other[s] for s in common])


def _budgets(arm: Arm) -> np.ndarray:
    return np.array([float(curve["flops"].iloc[-1]) for curve in arm.curves])


def compare(reference: Arm, arm: Arm, target: float) -> Ratio:
    """The arm's paired compute ratio against `reference` at one target. Reference seeds that never
    reached it count at their budget when every paired seed of the arm reached it: a lower bound."""
    ref_flops, arm_flops = _flops_all(reference, target), _flops_all(arm, target)
    ref, other = _pairs(reference, ref_flops, arm, arm_flops)
    missed = np.isnan(ref)
    if not missed.any() or np.isnan(other).any():
        return paired_ratio(ref, other)
    budget, _ = _pairs(reference, _budgets(reference), arm, arm_flops)
    ratio = paired_ratio(np.where(missed, budget, ref), other)
    if not np.isfinite(ratio.ratio):
        return ratio
    return Ratio(ratio.ratio, ratio.lo, np.inf, ratio.p, ratio.pairs, True, ratio.note, ratio.logs)


def rise(arm: Arm, dev_items: float) -> Rise:
    """Whether a baseline's curve leaves its start: per seed the mean of its last SMOOTH_WINDOW
    evaluations minus its step-0 accuracy (no best-of-noisy-points bias; both on the same dev items,
    so each difference is paired within its seed). Two conditions: the seed-to-seed spread (one-sided
    Student t over seeds, from 2 seeds) and the dev items (at least RISE_STANDARD_ERRORS binomial
    standard errors of one evaluation: per-item correctness is not logged, so the items that flip
    cannot be paired; this bound stands in for that test). A target set by a curve that never left
    step 0 measures noise, not learning."""
    start = np.array([c["accuracy"].iloc[0] for c in arm.curves])
    gain = np.array([c["accuracy"].iloc[-SMOOTH_WINDOW:].mean() for c in arm.curves]) - start
    mean, p, why = float(gain.mean()), NAN, []
    if len(gain) >= 2:
        se = float(gain.std(ddof=1) / np.sqrt(len(gain)))
        # a gate, not a claim: seeds that gain alike leave the dev-items condition below to decide
        p = float(scipy.stats.t.sf(mean / se, len(gain) - 1)) if se > 0 else float(mean <= 0)
        if not p < RISE_LEVEL:
            why.append(f"one-sided p={p:.2g} over {len(gain)} seeds")
    noise = RISE_STANDARD_ERRORS * float(np.sqrt(start.mean() * (1 - start.mean()) / dev_items))
    if mean < noise:  # never when the dev-set size is unknown
        why.append(f"under {RISE_STANDARD_ERRORS:g} standard errors of a dev evaluation ({100 * noise:.1f})")
    note = (
        (
            f"{arm.first['arm']} rises {100 * mean:.1f} points (last {SMOOTH_WINDOW} evaluations over step 0), "
            + " and ".join(why)
            + ": no ratio to read"
        )
        if why
        else ""
    )
    return Rise(mean, p, not why, note)


def reading_order(item: tuple[tuple[str, str, str], Arm]) -> tuple:
    """Plain standard's comparisons first, each baseline before the arms measured against it."""
    (language, condition, name), arm = item
    baseline = arm.first["baseline"]
    return language, condition, baseline != STANDARD, baseline, name != baseline, name


def _final_test(arm: Arm) -> np.ndarray:
    return np.array([_test_at(c, NAN) for c in arm.curves])


def _row(arm: Arm, target: float, base: Arm | None, standard: Arm | None, standard_target: float, tolerance: float) -> dict:
    """One summary row: the arm's curves measured against its baseline's target (and plain standard's)."""
    first = arm.first
    chosen = pd.concat(arm.curves)
    per_run = chosen.groupby("run_id", sort=True)[["english_accuracy", "majority_accuracy", "one_off_flops", "dev_items"]].mean().mean()
    flops = _flops_all(arm, target)
    reached = int(np.isfinite(flops).sum())
    final, final_lo, final_hi = _t_interval([c["accuracy"].iloc[-1] for c in arm.curves])
    test, test_lo, test_hi = _t_interval([_test_at(c, f) for c, f in zip(arm.curves, flops)])
    ratio, notes = Ratio(), []
    dev, on_test = Difference(), Difference()
    base_rise = Rise(NAN, NAN, True, "")
    if base is None:
        notes.append(f"no {first['baseline']} runs")
    else:
        ratio = compare(base, arm, target)
        base_flops = _flops_all(base, target)
        if np.isnan(base_flops).any():
            notes.append(f"baseline reached target in {int(np.isfinite(base_flops).sum())}/{len(base_flops)} seeds")
        notes.append(ratio.note)
        if target <= per_run["majority_accuracy"]:  # a ratio of FLOPs to reach chance says nothing
            notes.append("target at or below the majority floor")
        base_rise = rise(base, per_run["dev_items"])
        if not base_rise.real:
            ratio = Ratio(pairs=ratio.pairs)
            notes.append(base_rise.note)
        if ratio.censored:
            notes.append("the ratio is a lower bound: the baseline's other seeds count at their budget")
        if base is not arm:
            dev = equivalence(np.subtract(*_pairs(arm, arm.plateaus, base, base.plateaus)), tolerance)
            on_test = equivalence(np.subtract(*_pairs(arm, _final_test(arm), base, _final_test(base))), tolerance)
    if first["baseline"] == STANDARD:
        vs = ratio
    elif standard is not None and rise(standard, per_run["dev_items"]).real:
        vs = compare(standard, arm, standard_target)
    else:
        vs = Ratio()
    items = per_run["dev_items"]
    return {
        "language": first["language"],
        "condition": first["condition"],
        "arm": first["arm"],
        "method": first["method"],
        "depth": first["depth"],
        "baseline": first["baseline"],
        "config": arm.config,
        "seeds": len(arm.curves),
        "pairs": ratio.pairs if base is not None else 0,
        "reached": f"{reached}/{len(flops)}" if np.isfinite(target) else "",
        "step0_accuracy": float(np.mean([c["accuracy"].iloc[0] for c in arm.curves])),
        "final_accuracy": final,
        "final_accuracy_lo": final_lo,
        "final_accuracy_hi": final_hi,
        "best_accuracy": float(np.mean([c["accuracy"].max() for c in arm.curves])),
        "plateau": float(arm.plateaus.mean()),
        "target": target,
        "flops_to_target": float(flops.mean()) if reached == len(flops) else NAN,
        "compute_to_match": ratio.ratio,
        "compute_to_match_lo": ratio.lo,
        "compute_to_match_hi": ratio.hi,
        "compute_to_match_censored": ratio.censored,
        "cheaper_p": NAN if base is arm else ratio.p,
        "matches_dev_diff": dev.mean,
        "matches_dev_lo": dev.lo,
        "matches_dev_hi": dev.hi,
        "matches_dev_p": dev.p,
        "matches_test_diff": on_test.mean,
        "matches_test_lo": on_test.lo,
        "matches_test_hi": on_test.hi,
        "matches_test_p": on_test.p,
        "baseline_rise": base_rise.mean,
        "baseline_rise_p": base_rise.p,
        "vs_standard": vs.ratio,
        "vs_standard_lo": vs.lo,
        "vs_standard_hi": vs.hi,
        "vs_standard_censored": vs.censored,
        "test_at_target": test,
        "test_at_target_lo": test_lo,
        "test_at_target_hi": test_hi,
        "final_test_accuracy": float(np.nanmean(_final_test(arm))) if chosen["test_accuracy"].notna().any() else NAN,
        "shortfall": target - float(np.mean([c["accuracy"].max() for c in arm.curves])) if reached < len(flops) else NAN,
        "english_accuracy": per_run["english_accuracy"],
        "majority_accuracy": per_run["majority_accuracy"],
        "dev_items": items,
        "dev_standard_error": float(np.sqrt(final * (1 - final) / items)) if items > 0 else NAN,
        "one_off_flops": per_run["one_off_flops"],
        "_saving": NAN
        if base is None or not base_rise.real or ratio.censored
        else float(np.mean(np.subtract(*_pairs(base, _flops_all(base, target), arm, flops)))),
        "_base_flops": NAN if base is None or not base_rise.real else float(np.mean(_flops_all(base, target))),
        "_compared": base is not None and base is not arm,
        "_logs": ratio.logs,
        "note": "; ".join(filter(None, notes)),
    }


def _claims(rows: pd.DataFrame) -> pd.DataFrame:
    """Holm-adjusted p-values and verdicts per family of claims, over the rows of one table. Every arm
    measured against a baseline is one comparison of each family, also where its test cannot be read
    (a seed never reached the target, a flat baseline, one seed): it counts with p = 1."""
    compared = rows["_compared"].to_numpy(dtype=bool)
    for family, level in FAMILIES.items():
        p = np.where(compared, rows[f"{family}_p"].fillna(1.0), NAN)
        rows[f"{family}_p_holm"] = holm(p)
        rows[family] = rows[f"{family}_p_holm"] < level
    rows["comparisons"] = int(compared.sum())
    return rows


def _totals(rows: pd.DataFrame) -> pd.DataFrame:
    """One-off plus adaptation FLOPs over the table's languages per (condition, arm), the baseline's
    over the same languages, and the break-even from the savings measured on them (NaN unless every
    language measured one)."""
    for _, group in rows.groupby(["condition", "arm"], sort=False):
        one_off = float(group["one_off_flops"].mean())
        arm_total = (0.0 if np.isnan(one_off) else one_off) + group["flops_to_target"].sum(min_count=len(group))
        base_total = group["_base_flops"].sum(min_count=len(group))
        saving = group["_saving"].mean() if group["_saving"].notna().all() else NAN
        if np.isnan(one_off) or (one_off and np.isnan(saving)):
            even = NAN
        else:
            even = 0.0 if not one_off else one_off / saving if saving > 0 else np.inf
        both = pooled([logs for logs in group["_logs"]])
        rows.loc[
            group.index,
            [
                "languages",
                "total_flops",
                "baseline_total_flops",
                "total_ratio",
                "break_even_languages",
                "pooled_ratio",
                "pooled_lo",
                "pooled_hi",
            ],
        ] = [
            len(group),
            arm_total,
            base_total,
            base_total / arm_total if arm_total else NAN,
            even,
            both.ratio,
            both.lo,
            np.inf if group["compute_to_match_censored"].any() else both.hi,
        ]
        rows.loc[group.index, "pooled_censored"] = bool(group["compute_to_match_censored"].any())
    return rows


def summary(table: pd.DataFrame, tolerance: float = MATCH_TOLERANCE) -> pd.DataFrame:
    """One row per (language, condition, arm): does it reach its baseline's target, for how much compute,
    does it match its baseline, and which claims hold after Holm's correction.

    Columns are SUMMARY_COLUMNS; accuracies (and shortfall) are fractions, FLOPs are adaptation FLOPs.
    compute_to_match and vs_standard are NaN unless every paired seed of the arm reached the target (and
    every seed of the baseline, or the ratio is a lower bound: `*_censored`); then `reached` says how
    many of the arm's seeds did, `shortfall` how far its mean best dev accuracy is below the target,
    and `note` any other reason (missing baseline, baseline within noise of its start).
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
        rows.append(_row(arm, targets.get(baseline, NAN), group.get(baseline), group.get(STANDARD), targets.get(STANDARD, NAN), tolerance))
    result = _totals(_claims(pd.DataFrame(rows)))
    return result[SUMMARY_COLUMNS]


def _reference(condition: str) -> str:
    """The condition with its init replaced by REFERENCE_INIT ('' when the condition names no init)."""
    parts = condition.split(", ")
    if not any(part.startswith("init=") for part in parts):
        return ""
    return ", ".join(f"init={REFERENCE_INIT}" if part.startswith("init=") else part for part in parts)


def starts(table: pd.DataFrame) -> pd.DataFrame:
    """Where each (language, condition) starts: step-0 dev accuracy per seed (the mean over its trials:
    every arm and config of one seed starts from the same rows), its mean with a 95% t interval over
    seeds, and its lift over the same condition under random init, paired by seed (the seed draws both
    inits' random rows), with a 95% t interval on the per-seed differences. What an init is worth
    before any relearning, read across conditions; the summary compares arms within one."""
    table = prepare(table).dropna(subset=["accuracy"])
    first = table.sort_values(["step", "flops"], kind="stable").groupby("run_id", sort=False).head(1)
    per_seed = first.groupby([*GROUP, "seed"], sort=True)["accuracy"].mean()
    rows = []
    for (language, condition), seeds in per_seed.groupby(level=[0, 1], sort=True):
        values = seeds.droplevel([0, 1])
        mean, lo, hi = _t_interval(values.to_list())
        reference = _reference(condition)
        lift = (NAN, NAN, NAN)
        pairs = 0
        if reference and reference != condition and (language, reference) in per_seed.index.droplevel(2):
            base = per_seed.loc[(language, reference)]
            common = sorted(set(values.index) & set(base.index))
            pairs = len(common)
            lift = _t_interval([values[s] - base[s] for s in common])
        rows.append([language, condition, len(values), mean, lo, hi, reference if pairs else "", *lift, pairs])
    return pd.DataFrame(rows, columns=START_COLUMNS)


def curves(table: pd.DataFrame) -> pd.DataFrame:
    """Per arm (chosen config): mean dev accuracy over seeds on the union of their FLOPs, with a 95% band.

    Each seed's curve is interpolated linearly; beyond a seed's last FLOPs only the seeds that got
    there count (the `seeds` column), so the mean never extrapolates a curve.
    """
    rows = []
    for (language, condition, name), arm in chosen_arms(prepare(table)).items():
        grid = np.unique(np.concatenate([c["flops"].to_numpy(dtype=float) for c in arm.curves]))
        values = np.array(
            [
                np.where((grid >= c["flops"].min()) & (grid <= c["flops"].max()), np.interp(grid, c["flops"], c["accuracy"]), NAN)
                for c in arm.curves
            ]
        )
        for x, column in zip(grid, values.T):
            mean, lo, hi = _t_interval(column)
            rows.append([language, condition, name, arm.config, x, mean, lo, hi, int(np.isfinite(column).sum())])
    return pd.DataFrame(rows, columns=CURVE_COLUMNS)
