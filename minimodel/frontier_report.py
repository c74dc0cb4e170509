"""The frontier for people: the summary as terminal text and markdown, the curves plot, the files.

frontier.py computes (which config, which target, what ratio); this module only shows it.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from minimodel import frontier


def _acc(x: float) -> str:
    return "-" if np.isnan(x) else f"{x:.3f}"


def _flops(x: float) -> str:
    return "-" if np.isnan(x) else "0" if x == 0 else f"{x:.3g}"


def _times(x: float, lo: float, hi: float, censored: bool = False) -> str:
    """A ratio with its interval; small ratios keep two significant digits instead of showing 0.00x;
    a lower bound (baseline seeds counted at their budget) reads >=x [lo, inf]."""
    def one(v: float) -> str:
        return "inf" if np.isinf(v) else f"{v:.2f}x" if v >= 0.1 else f"{v:.2g}x"
    if np.isnan(x):
        return "-"
    if censored:
        return ">=" + one(x) + (f" [{one(lo)[:-1]}, inf]" if np.isfinite(lo) else "")
    return one(x) + (f" [{one(lo)[:-1]}, {one(hi)[:-1]}]" if np.isfinite(lo) and np.isfinite(hi) else "")


def _interval(mean: float, lo: float, hi: float) -> str:
    return _acc(mean) + (f" [{lo:.3f}, {hi:.3f}]" if np.isfinite(lo) else "")


def _match(row: pd.Series) -> str:
    """compute_to_match as a ratio, or how the arm fell short of the target."""
    done, _, total = row["reached"].partition("/")
    if total and done != total:
        short = f", {100 * row['shortfall']:.1f} points short" if row["shortfall"] > 0 else ""
        return f"not reached in {int(total) - int(done)}/{total} seeds{short}"
    return _times(row["compute_to_match"], row["compute_to_match_lo"], row["compute_to_match_hi"],
                  row["compute_to_match_censored"])


def _span(values: pd.Series) -> str:
    values = values.dropna()
    lo, hi = (values.min(), values.max()) if len(values) else (frontier.NAN, frontier.NAN)
    return _acc(lo) if lo == hi or np.isnan(lo) else f"{lo:.3f}-{hi:.3f}"


def _header(rows: pd.DataFrame) -> str:
    """A (language, condition): ceiling, floor, the targets of its baselines, the dev-set size."""
    language, condition = rows.iloc[0][frontier.GROUP]
    targets = rows.drop_duplicates("baseline")
    text = (f"{language} / {condition or '-'}: ceiling (English) {_span(rows['english_accuracy'])}, "
            f"floor (majority) {_span(rows['majority_accuracy'])}, target "
            + ", ".join(f"{_acc(t)} (vs {b})" for b, t in zip(targets["baseline"], targets["target"])))
    items = rows["dev_items"].dropna()
    return text + (f", dev items {int(items.iloc[0])}" if len(items) else "")


_HEADS = ["arm", "config", "seeds", "dev step0 -> final", "test at target", "FLOPs to target",
          "compute_to_match", "vs standard", "one-off FLOPs", "break-even languages", "note"]


def _cells(row: pd.Series) -> list[str]:
    """One arm's line; '*' marks test accuracy taken at the final evaluation for unreached seeds."""
    done, _, total = row["reached"].partition("/")
    return [row["arm"], row["config"], str(row["seeds"]),
            f"{_acc(row['step0_accuracy'])} -> "
            + _interval(row["final_accuracy"], row["final_accuracy_lo"], row["final_accuracy_hi"]),
            _interval(row["test_at_target"], row["test_at_target_lo"], row["test_at_target_hi"])
            + ("*" if done != total else ""),
            _flops(row["flops_to_target"]), _match(row),
            "" if row["baseline"] == "standard" else
            _times(row["vs_standard"], row["vs_standard_lo"], row["vs_standard_hi"], row["vs_standard_censored"]),
            _flops(row["one_off_flops"]), "-" if np.isnan(row["break_even_languages"]) else
            "inf" if np.isinf(row["break_even_languages"]) else f"{row['break_even_languages']:.3g}",
            row["note"]]


def _blocks(summary: pd.DataFrame) -> tuple[list[tuple[str, list[list[str]]]], str]:
    """Per (language, condition) its header and lines of cells (columns empty in every line left out),
    and the footnote that says how to read them."""
    blocks, starred = [], False
    for _, rows in summary.groupby(frontier.GROUP, sort=False):
        lines = [_cells(row) for _, row in rows.iterrows()]
        keep = [i for i in range(len(_HEADS)) if i == 0 or any(line[i] for line in lines)]
        blocks.append((_header(rows), [[line[i] for i in keep] for line in [_HEADS, *lines]]))
        starred = starred or any(line[4].endswith("*") for line in lines)
    note = "Intervals: 95% over seeds (Student t for accuracies, percentile bootstrap for compute ratios)."
    star = "* some seeds never reached the target: their test accuracy is the final evaluation's. "
    return blocks, star * starred + note


def format_table(summary: pd.DataFrame) -> str:
    """The summary as aligned text for the terminal, one block per (language, condition)."""
    blocks, footnote = _blocks(summary)
    text = []
    for header, lines in blocks:
        widths = [max(len(line[i]) for line in lines) for i in range(len(lines[0]))]
        body = ["  ".join(cell.ljust(w) for cell, w in zip(line, widths)).rstrip() for line in lines]
        text.append("\n".join([header, *body]))
    return "\n\n".join([*text, footnote])


def format_markdown(summary: pd.DataFrame) -> str:
    """The summary as markdown (RESULTS.md, the MLflow parent run): a header line and table per group."""
    blocks, footnote = _blocks(summary)
    text = []
    for header, lines in blocks:
        lines.insert(1, ["---"] * len(lines[0]))
        table = "\n".join("| " + " | ".join(c.replace("|", "\\|") for c in line) + " |" for line in lines)
        text.append(f"**{header}**\n\n{table}")
    return "\n\n".join([*text, footnote]) + "\n"


def plot(table: pd.DataFrame, path: str | Path, precomputed: pd.DataFrame | None = None) -> Path:
    """One panel per (language, condition): each arm's mean dev curve with its band over seeds, faint
    seeds, the targets dashed, the English ceiling and majority floor dotted."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    table = frontier.prepare(table)
    result = frontier.summary(table) if precomputed is None else precomputed
    arms, mean = frontier.chosen_arms(table), frontier.curves(table)
    groups = sorted({key[:2] for key in arms})
    cols = min(len(groups), 3) or 1
    rows = -(-len(groups) // cols) or 1
    fig, axes = plt.subplots(rows, cols, figsize=(5.0 * cols, 3.8 * rows), squeeze=False, sharey=True)
    palette = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    names = dict.fromkeys(key[2] for key, _ in sorted(arms.items(), key=frontier.reading_order))
    colors = {a: palette[i % len(palette)] for i, a in enumerate(names)}
    positive = table.loc[table["flops"] > 0, "flops"]
    for ax, (language, condition) in zip(axes.flat, groups):
        for (lang, cond, name), arm in sorted(arms.items(), key=frontier.reading_order):
            if (lang, cond) != (language, condition):
                continue
            for c in arm.curves:
                ax.plot(c["flops"], c["accuracy"], color=colors[name], alpha=0.2, lw=0.8)
            line = mean[(mean["language"] == lang) & (mean["condition"] == cond) & (mean["arm"] == name)]
            ax.plot(line["flops"], line["accuracy"], color=colors[name], lw=1.8, label=name)
            ax.fill_between(line["flops"], line["lo"], line["hi"], color=colors[name], alpha=0.2, lw=0)
        rows_here = result[(result["language"] == language) & (result["condition"] == condition)]
        for baseline, target in rows_here.drop_duplicates("baseline")[["baseline", "target"]].itertuples(index=False):
            ax.axhline(target, color=colors.get(baseline, "grey"), ls="--", lw=1, label=f"target vs {baseline}")
        for column, label in (("english_accuracy", "English"), ("majority_accuracy", "majority")):
            for value in rows_here[column].dropna().unique():
                ax.axhline(value, color="black", ls=":", lw=1)
                ax.annotate(label, (0, value), xycoords=("axes fraction", "data"), fontsize=7, va="bottom")
        # symlog keeps the 0-FLOPs evaluation (the initial embeddings) on a log-like axis
        ax.set_xscale("symlog", linthresh=float(positive.min()) if len(positive) else 1.0)
        ax.set_xlim(left=0)
        ax.set_title(f"{language} / {condition}" if condition else str(language), fontsize=10)
        ax.set_xlabel("adaptation FLOPs")
        ax.grid(alpha=0.3)
    for ax in axes.flat[len(groups):]:
        ax.set_visible(False)
    for ax in axes[:, 0]:
        ax.set_ylabel("zero-shot dev accuracy")
    legend = {label: handle for ax in axes.flat for handle, label in zip(*ax.get_legend_handles_labels())}
    fig.legend(legend.values(), legend.keys(), loc="lower center", ncol=min(len(legend), 4), fontsize=8)
    fig.tight_layout(rect=(0, 0.04 + 0.03 * -(-len(legend) // 4) / rows, 1, 1))
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def write(table: pd.DataFrame, out_dir: str | Path,
          tolerance: float = frontier.MATCH_TOLERANCE) -> tuple[pd.DataFrame, list[Path]]:
    """Summary (CSV and markdown), plot, Pareto points and mean curves into out_dir; files[2] is the plot."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    result = frontier.summary(table, tolerance)
    files = [out / "frontier.csv", out / "frontier.md", out / "frontier.png", out / "frontier_points.csv",
             out / "frontier_curves.csv"]
    result.to_csv(files[0], index=False)
    files[1].write_text(format_markdown(result))
    plot(table, files[2], result)
    frontier.frontiers(table).to_csv(files[3], index=False)
    frontier.curves(table).to_csv(files[4], index=False)
    return result, files
