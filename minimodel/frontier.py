"""Accuracy versus adaptation compute: Pareto frontiers per language and method, and compute-to-match.

Input is a table of evaluation points, one row per (trial, evaluation): columns language, method,
flops (cumulative adaptation FLOPs at that point), accuracy, plus anything else (run_id, step, depth).
Every point of every curve counts: a trial stopped early at 2e12 FLOPs is a real way to spend 2e12.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

MATCH_TOLERANCE = 0.01  # "within one point" of standard's best accuracy
SUMMARY_COLUMNS = ["language", "method", "trials", "best_accuracy", "flops_at_best", "flops_to_match",
                   "compute_to_match"]


def pareto(points: pd.DataFrame) -> pd.DataFrame:
    """The points no other point beats with fewer-or-equal FLOPs and higher accuracy, by FLOPs."""
    ordered = points.sort_values(["flops", "accuracy"], ascending=[True, False], kind="stable")
    better = ordered["accuracy"] > ordered["accuracy"].cummax().shift(fill_value=-np.inf)
    return ordered[better]


def frontiers(table: pd.DataFrame) -> pd.DataFrame:
    """The Pareto points of each (language, method)."""
    parts = [pareto(group) for _, group in table.groupby(["language", "method"], sort=True)]
    return pd.concat(parts, ignore_index=True) if parts else table.iloc[:0]


def _first_flops(points: pd.DataFrame, accuracy: float) -> float:
    """Fewest FLOPs at which any trial reached `accuracy` (NaN if none did)."""
    reached = points.loc[points["accuracy"] >= accuracy, "flops"]
    return float(reached.min()) if len(reached) else float("nan")


def summary(table: pd.DataFrame) -> pd.DataFrame:
    """Per language and method: best accuracy, the FLOPs to reach it, and the compute-to-match ratio.

    compute_to_match = FLOPs standard needs to reach its best accuracy / FLOPs this method needs to
    get within one point of that; > 1 means the method matches standard for less compute. NaN where
    there is no standard run for the language or the method never gets within one point.
    """
    rows = []
    for language, lang_points in table.groupby("language", sort=True):
        standard = lang_points[lang_points["method"] == "standard"]
        target = standard["accuracy"].max() if len(standard) else float("nan")
        standard_flops = _first_flops(standard, target) if len(standard) else float("nan")
        for method, points in lang_points.groupby("method", sort=True):
            best = float(points["accuracy"].max())
            # standard is the reference: its own row compares its best with itself (1x)
            if method == "standard":
                to_match = standard_flops
            else:
                to_match = _first_flops(points, target - MATCH_TOLERANCE) if len(standard) else float("nan")
            with np.errstate(divide="ignore", invalid="ignore"):
                ratio = np.float64(standard_flops) / np.float64(to_match)
            rows.append({
                "language": language, "method": method,
                "trials": int(points["run_id"].nunique()) if "run_id" in points else len(points),
                "best_accuracy": best, "flops_at_best": _first_flops(points, best),
                "flops_to_match": to_match, "compute_to_match": float(ratio),
            })
    return pd.DataFrame(rows, columns=SUMMARY_COLUMNS)


def format_table(table: pd.DataFrame) -> str:
    """The summary as aligned text for the terminal."""
    shown = table.copy()
    shown["best_accuracy"] = shown["best_accuracy"].map(lambda x: f"{x:.3f}")
    for col in ("flops_at_best", "flops_to_match"):
        shown[col] = shown[col].map(lambda x: "-" if np.isnan(x) else f"{x:.3g}")
    # inf: the method was within one point before spending any adaptation compute
    shown["compute_to_match"] = shown["compute_to_match"].map(
        lambda x: "-" if np.isnan(x) else "inf" if np.isinf(x) else f"{x:.2f}x")
    return shown.to_string(index=False)


def plot(table: pd.DataFrame, path: str | Path) -> Path:
    """One panel per language: every evaluation point faint, each method's frontier as a step line."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    languages = sorted(table["language"].unique())
    cols = min(len(languages), 4) or 1
    rows = -(-len(languages) // cols) or 1
    fig, axes = plt.subplots(rows, cols, figsize=(4.2 * cols, 3.4 * rows), squeeze=False, sharey=True)
    front = frontiers(table)
    colors = dict(zip(sorted(table["method"].unique()), plt.rcParams["axes.prop_cycle"].by_key()["color"]))
    positive = table.loc[table["flops"] > 0, "flops"]
    for ax, language in zip(axes.flat, languages):
        for method, color in colors.items():
            points = table[(table["language"] == language) & (table["method"] == method)]
            line = front[(front["language"] == language) & (front["method"] == method)]
            if points.empty:
                continue
            ax.scatter(points["flops"], points["accuracy"], s=8, alpha=0.25, color=color)
            # the frontier holds its last accuracy up to the most compute the method spent
            xs = [*line["flops"], points["flops"].max()]
            ys = [*line["accuracy"], line["accuracy"].iloc[-1]]
            ax.step(xs, ys, where="post", color=color, label=method)
            ax.plot(line["flops"], line["accuracy"], "o", color=color, ms=3)
        # symlog keeps the 0-FLOPs point (the initial embeddings) on a log-like axis
        ax.set_xscale("symlog", linthresh=float(positive.min()) if len(positive) else 1.0)
        ax.set_title(language)
        ax.set_xlabel("adaptation FLOPs")
        ax.grid(alpha=0.3)
    for ax in axes.flat[len(languages):]:
        ax.set_visible(False)
    axes[0][0].set_ylabel("zero-shot dev accuracy")
    axes[0][0].legend(fontsize=8)
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def write(table: pd.DataFrame, out_dir: str | Path) -> tuple[pd.DataFrame, list[Path]]:
    """Summary table, frontier points and plot into out_dir; returns the summary and the files."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    result = summary(table)
    files = [out / "frontier.csv", out / "frontier_points.csv", out / "frontier.png"]
    result.to_csv(files[0], index=False)
    frontiers(table).to_csv(files[1], index=False)
    plot(table, files[2])
    return result, files
