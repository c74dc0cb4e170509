"""The frontier for people: the summary as terminal text and markdown, the curves plot, the files.

frontier.py computes (which config, which target, what ratio); this module only shows it.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from minimodel.experiment import frontier
from minimodel.experiment.arms import STANDARD
from minimodel.text.data import DataError


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
    return _times(row["compute_to_match"], row["compute_to_match_lo"], row["compute_to_match_hi"], row["compute_to_match_censored"])


def _verdict(row: pd.Series, family: str) -> str:
    """A claim after Holm's correction: yes/no with the adjusted p-value; '-' where it is not tested."""
    if row["baseline"] == row["arm"] or np.isnan(row[f"{family}_p_holm"]):
        return ""
    p = row[f"{family}_p_holm"]
    return f"{'yes' if row[family] else 'no'} (p={p:.2g})" if not np.isnan(row[f"{family}_p"]) else "no (untested)"


def _difference(row: pd.Series, family: str) -> str:
    """Arm minus baseline in accuracy points with its 90% interval, and the equivalence verdict."""
    mean, lo, hi = (row[f"{family}_{k}"] for k in ("diff", "lo", "hi"))
    if np.isnan(mean):
        return ""
    interval = f" [{100 * lo:+.1f}, {100 * hi:+.1f}]" if np.isfinite(lo) else ""
    return f"{100 * mean:+.1f}{interval}: {_verdict(row, family)}"


def _span(values: pd.Series) -> str:
    values = values.dropna()
    lo, hi = (values.min(), values.max()) if len(values) else (frontier.NAN, frontier.NAN)
    return _acc(lo) if lo == hi or np.isnan(lo) else f"{lo:.3f}-{hi:.3f}"


def _shared_notes(rows: pd.DataFrame) -> list[str]:
    """The parts of a note that every row measured against one baseline carries (its rise, its seeds
    short of the target): said once, in the (language, condition)'s header."""
    shared: list[str] = []
    for _, same in rows.groupby("baseline", sort=False):
        parts = [set(filter(None, note.split("; "))) for note in same["note"]]
        if len(parts) >= 2:
            common = set.intersection(*parts)
            shared += [part for part in same["note"].iloc[0].split("; ") if part in common and part not in shared]
    return shared


def _header(rows: pd.DataFrame) -> str:
    """A (language, condition): ceiling, floor, the targets of its baselines, the dev-set size, and
    the notes that hold for all its rows."""
    language, condition = rows.iloc[0][frontier.GROUP]
    targets = rows.drop_duplicates("baseline")
    text = (
        f"{language} / {condition or '-'}: ceiling (English) {_span(rows['english_accuracy'])}, "
        f"floor (majority) {_span(rows['majority_accuracy'])}, target "
        + ", ".join(f"{_acc(t)} (vs {b})" for b, t in zip(targets["baseline"], targets["target"]))
    )
    items = rows["dev_items"].dropna()
    text += f", dev items {int(items.iloc[0])}" if len(items) else ""
    shared = _shared_notes(rows)
    return text + (f"; note: {'; '.join(shared)}" if shared else "")


_HEADS = [
    "arm",
    "config",
    "seeds",
    "dev items",
    "dev SE",
    "dev step0 -> final",
    "test at target",
    "FLOPs to target",
    "compute_to_match",
    "cheaper",
    "plateau vs baseline (pts)",
    "final test vs baseline (pts)",
    "vs standard",
    "note",
]


def _cells(row: pd.Series, shared: list[str]) -> list[str]:
    """One arm's line; '*' marks test accuracy taken at the final evaluation for unreached seeds."""
    done, _, total = row["reached"].partition("/")
    items, se = row["dev_items"], row["dev_standard_error"]
    return [
        row["arm"],
        row["config"],
        str(row["seeds"]),
        "-" if np.isnan(items) else str(int(items)),
        "-" if np.isnan(se) else f"{100 * se:.1f} pts",
        f"{_acc(row['step0_accuracy'])} -> " + _interval(row["final_accuracy"], row["final_accuracy_lo"], row["final_accuracy_hi"]),
        _interval(row["test_at_target"], row["test_at_target_lo"], row["test_at_target_hi"]) + ("*" if done != total else ""),
        _flops(row["flops_to_target"]),
        _match(row),
        _verdict(row, "cheaper"),
        _difference(row, "matches_dev"),
        _difference(row, "matches_test"),
        ""
        if row["baseline"] == STANDARD
        else _times(row["vs_standard"], row["vs_standard_lo"], row["vs_standard_hi"], row["vs_standard_censored"]),
        "; ".join(part for part in row["note"].split("; ") if part and part not in shared),
    ]


def _number(x: float) -> str:
    return "-" if np.isnan(x) else "inf" if np.isinf(x) else f"{x:.3g}"


def totals(summary: pd.DataFrame) -> list[str]:
    """Per (condition, arm) against a baseline: one-off plus adaptation FLOPs to the target over the
    table's languages, the baseline's, and the break-even from the savings measured on them; what
    cannot be measured says why instead of printing dashes."""
    lines = []
    arms = summary[summary["arm"] != summary["baseline"]].drop_duplicates(["condition", "arm"])
    for _, row in arms.iterrows():
        languages = ", ".join(summary.loc[(summary["condition"] == row["condition"]) & (summary["arm"] == row["arm"]), "language"])
        parts = [f"one-off {_flops(row['one_off_flops'])}"]
        if np.isfinite(row["total_flops"]) and np.isfinite(row["baseline_total_flops"]):
            parts[0] += (
                f" + adaptation = {_flops(row['total_flops'])} FLOPs against {row['baseline']}'s "
                f"{_flops(row['baseline_total_flops'])} (total {_number(row['total_ratio'])}x)"
            )
        else:
            parts.append("no total: it needs every seed of both arms at the target in every language")
        even = row["break_even_languages"]
        parts.append(f"break-even after {_number(even)} languages" if not np.isnan(even) else "no break-even: a language without a saving")
        if row["languages"] > 1:
            pooled = _times(row["pooled_ratio"], row["pooled_lo"], row["pooled_hi"], row["pooled_censored"])
            parts.append(
                f"compute_to_match pooled over them (stratified by language) {pooled}"
                if np.isfinite(row["pooled_ratio"])
                else "no pooled compute_to_match: a language without a ratio"
            )
        lines.append(f"{row['condition'] or '-'} / {row['arm']} over {int(row['languages'])} languages ({languages}): " + "; ".join(parts))
    return lines


START_HEADER = "Where each condition starts (step-0 dev accuracy, 95% t over seeds):"


def start_lines(starts: pd.DataFrame) -> list[str]:
    """Per (language, condition), where its curves start and how far above random init (under
    START_HEADER): only where a language ran under more than one condition (one has nothing to compare)."""
    compared = starts.groupby("language")["condition"].transform("nunique") > 1
    lines = []
    for _, row in starts[compared].iterrows():
        start = _interval(row["step0_accuracy"], row["step0_lo"], row["step0_hi"])
        line = f"{row['language']} / {row['condition'] or '-'}: step 0 {start} over {row['seeds']} seeds"
        if row["pairs"]:
            interval = f" [{100 * row['lift_lo']:+.1f}, {100 * row['lift_hi']:+.1f}]" if np.isfinite(row["lift_lo"]) else ""
            line += f"; {100 * row['lift']:+.1f}{interval} points over {row['reference']} ({row['pairs']} seeds paired)"
        lines.append(line)
    return lines


def _blocks(summary: pd.DataFrame) -> tuple[list[tuple[str, list[list[str]]]], list[str]]:
    """Per (language, condition) its header and lines of cells (columns empty in every line left out),
    and the lines under the table: total compute, then how to read it."""
    blocks, starred = [], False
    for _, rows in summary.groupby(frontier.GROUP, sort=False):
        shared = _shared_notes(rows)
        lines = [_cells(row, shared) for _, row in rows.iterrows()]
        keep = [i for i in range(len(_HEADS)) if i == 0 or any(line[i] for line in lines)]
        blocks.append((_header(rows), [[line[i] for i in keep] for line in [_HEADS, *lines]]))
        starred = starred or any(line[6].endswith("*") for line in lines)
    m = int(summary["comparisons"].iloc[0]) if len(summary) else 0
    note = (
        f"{m} comparisons against a baseline; each claim is Holm-corrected over them. cheaper: the paired "
        f"compute ratio's one-sided p < {frontier.CHEAPER_LEVEL:g} (95% t-interval on per-seed log ratios, "
        f"seeds paired by value). Plateau and final test vs baseline: arm minus baseline, 90% interval, matching "
        f"(TOST) when it lies within +-tolerance. Accuracy intervals: 95% Student t over seeds."
    )
    star = "* some seeds never reached the target: their test accuracy is the final evaluation's."
    return blocks, [*totals(summary), *([star] if starred else []), note]


def format_table(summary: pd.DataFrame) -> str:
    """The summary as aligned text for the terminal, one block per (language, condition)."""
    blocks, footer = _blocks(summary)
    text = []
    for header, lines in blocks:
        widths = [max(len(line[i]) for line in lines) for i in range(len(lines[0]))]
        body = ["  ".join(cell.ljust(w) for cell, w in zip(line, widths)).rstrip() for line in lines]
        text.append("\n".join([header, *body]))
    return "\n\n".join([*text, "\n".join(footer)])


def format_markdown(summary: pd.DataFrame) -> str:
    """The summary as markdown (RESULTS.md, the MLflow parent run): a header line and table per group."""
    blocks, footer = _blocks(summary)
    text = []
    for header, lines in blocks:
        lines.insert(1, ["---"] * len(lines[0]))
        table = "\n".join("| " + " | ".join(c.replace("|", "\\|") for c in line) + " |" for line in lines)
        text.append(f"**{header}**\n\n{table}")
    return "\n\n".join([*text, "\n\n".join(footer)]) + "\n"


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
    for ax in axes.flat[len(groups) :]:
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


@dataclass
class FrontierFiles:
    """What one frontier wrote: its summary and start tables, and its files (the plot among them)."""

    summary: pd.DataFrame
    start_table: pd.DataFrame
    csv: Path
    markdown: Path
    plot: Path
    points: Path
    curves: Path
    evaluations: Path
    starts: Path

    @property
    def paths(self) -> list[Path]:
        return [self.csv, self.markdown, self.plot, self.points, self.curves, self.evaluations, self.starts]


def write(table: pd.DataFrame, out_dir: str | Path, tolerance: float = frontier.MATCH_TOLERANCE) -> FrontierFiles:
    """Summary (CSV and markdown), plot, Pareto points, mean curves, each condition's start and every
    counted evaluation (evaluations.csv: what `minimodel frontier --points` recomputes all of it from)
    into out_dir."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    result = frontier.summary(table, tolerance)
    files = FrontierFiles(
        result,
        frontier.starts(table),
        out / "frontier.csv",
        out / "frontier.md",
        out / "frontier.png",
        out / "frontier_points.csv",
        out / "frontier_curves.csv",
        out / "evaluations.csv",
        out / "starts.csv",
    )
    result.to_csv(files.csv, index=False)
    files.start_table.to_csv(files.starts, index=False)
    lines = start_lines(files.start_table)
    bullets = f"\n{START_HEADER}\n\n" + "".join(f"- {line}\n" for line in lines) if lines else ""
    files.markdown.write_text(format_markdown(result) + bullets)
    plot(table, files.plot, result)
    frontier.frontiers(table).to_csv(files.points, index=False)
    frontier.curves(table).to_csv(files.curves, index=False)
    frontier.evaluations(table).to_csv(files.evaluations, index=False)
    return files


def tolerance_folder(tolerance: float) -> str | None:
    """Where a frontier at another tolerance goes, beside the sweep's own files rather than over them."""
    return None if tolerance == frontier.MATCH_TOLERANCE else f"tolerance-{tolerance:g}"


def report(table: pd.DataFrame, out_dir: str | Path, tolerance: float = frontier.MATCH_TOLERANCE) -> FrontierFiles:
    """Write the frontier's files and print its table: what the sweep, `minimodel frontier` and
    `minimodel frontier --points` show."""
    files = write(table, out_dir, tolerance)
    if short := table.loc[frontier.cut_short(table), "run_id"].nunique():
        print(f"left out of the frontier: {short} trials cut short (failed, interrupted or still running)")
    print(format_table(files.summary))
    if lines := start_lines(files.start_table):
        print("\n" + "\n".join([START_HEADER, *lines]))
    print(f"frontier plot: {files.plot}")
    return files


_TEXT_COLUMNS = ["run_id", "language", "condition", "arm", "method", "depth", "baseline", "config", "status", "stopped"]


def read_evaluations(path: str | Path) -> pd.DataFrame:
    """An evaluations.csv (or any points table with the frontier's columns) read back as the sweep's
    table; one line naming the file and what is wrong with it otherwise."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"--points {path}: no such file")
    try:
        table = pd.read_csv(path, dtype={c: str for c in _TEXT_COLUMNS})
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as e:
        raise DataError(f"--points {path}: not a CSV table ({str(e).strip().splitlines()[-1]})") from None
    missing = [c for c in frontier.REQUIRED if c not in table]
    if missing:
        raise DataError(
            f"--points {path}: missing columns {', '.join(missing)} (evaluations.csv has {', '.join(frontier.EVALUATION_COLUMNS)})"
        )
    for column in [c for c in _TEXT_COLUMNS if c in table]:
        table[column] = table[column].fillna("")
    for column in [c for c in frontier.EVALUATION_COLUMNS if c not in _TEXT_COLUMNS and c in table]:
        values = pd.to_numeric(table[column], errors="coerce")
        bad = values.isna() & table[column].notna()
        if bad.any():
            line = int(np.flatnonzero(bad.to_numpy())[0]) + 2
            raise DataError(f"--points {path}:{line}: {column} {table[column][bad].iloc[0]!r} is not a number")
        table[column] = values
    table["seed"] = table["seed"].astype(int)
    return table


def read_all_evaluations(paths: list[str | Path]) -> pd.DataFrame:
    """Several sweeps' evaluations.csv files as one table, so a study run one language at a time is
    read (targets, pooled ratio, Holm over every comparison) as the one study it is; a trial found in
    two files is refused, since it would count twice."""
    tables = [read_evaluations(path) for path in paths]
    seen: dict[str, str | Path] = {}
    for path, table in zip(paths, tables):
        for run_id in table["run_id"].unique():
            if run_id in seen:
                raise DataError(f"--points {path}: trial {run_id} is also in {seen[run_id]}; give each sweep's file once")
            seen[run_id] = path
    return pd.concat(tables, ignore_index=True)
