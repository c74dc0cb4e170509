"""What a tuning phase leaves in MLflow: per language the Pareto set of (dev accuracy, adaptation FLOPs)
over every trial, Optuna's hyper-parameter importance per arm, and each arm's chosen config.

The chosen config of an arm and language is picked by one rule for every arm: among its trials that
ran their own steps to the end (not stopped by ASHA, not failed), the cheapest in FLOPs whose final dev
accuracy is within `tune.tolerance` of the best. It is logged as params `chosen.ARM.LANGUAGE.KEY` on
the tuning run (what `minimodel confirm` reads) and as chosen.yaml, `methods:` blocks per language.
An arm none of whose finished trials ends above its step-0 dev accuracy is named: its chosen config
is the one that loses least, which a user must not read as a recipe that helps.
"""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import matplotlib.ticker  # noqa: E402
import optuna  # noqa: E402
import pandas as pd  # noqa: E402
import yaml  # noqa: E402
from mlflow.entities import Param  # noqa: E402

from minimodel.experiment import frontier  # noqa: E402
from minimodel.experiment.plan import Spec  # noqa: E402
from trainables import tracking  # noqa: E402
from trainables.arm_search import searched_keys  # noqa: E402
from trainables.tuner import format_values  # noqa: E402

RULE = (
    "chosen per arm and language, one rule for every arm: the cheapest trial (adaptation FLOPs) that ran its "
    "steps to the end with final dev accuracy within {tolerance:g} of that arm's best"
)


def typed(spec: Spec, key: str, text: str) -> object:
    """A searched value from its MLflow param string, typed as the search dimension gives it."""
    dim = spec.search[key]
    if dim["type"] == "choice":
        return next(v for v in dim["values"] if str(v) == text)
    return int(text) if dim["type"] == "int" else float(text)


def trials(sweep: tracking.SweepRun, spec: Spec) -> pd.DataFrame:
    """One row per trial of the tuning run: its arm, language, searched values, final dev accuracy and
    FLOPs, and its step-0 dev accuracy (what relearning has to beat)."""
    client = sweep.client()
    runs = client.search_runs(
        [sweep.experiment_id], f"tags.mlflow.parentRunId = '{sweep.run_id}' and tags.kind = 'trial'", max_results=10000
    )
    curves = tracking.metric_histories(client, [run.info.run_id for run in runs], ("accuracy",))["accuracy"]
    rows = []
    for run in runs:
        p, m = run.data.params, run.data.metrics
        group = (p["adapt.method"], p["adapt.language"])
        rows.append(
            {
                "language": group[1],
                "arm": group[0],
                "trial": run.data.tags.get("key", ""),
                "run_id": run.info.run_id,
                "link": run_link(sweep, run.info.run_id),
                "finished": run.info.status == "FINISHED",
                "accuracy": m.get("accuracy", float("nan")),
                "step0_accuracy": step0(curves.get(run.info.run_id, {})),
                "flops": m.get("flops", float("nan")),
                "values": {k: typed(spec, k, p[k]) for k in searched_keys(spec, group)},
            }
        )
    columns = ["language", "arm", "trial", "run_id", "link", "finished", "accuracy", "step0_accuracy", "flops", "values"]
    return pd.DataFrame(rows, columns=columns)


def step0(curve: dict[int, float]) -> float:
    """A trial's first dev evaluation (its curve's step 0), NaN if it logged none."""
    return curve[min(curve)] if curve else float("nan")


def run_link(sweep: tracking.SweepRun, run_id: str) -> str:
    """The trial's page in the MLflow UI (`minimodel ui`'s address for a local store)."""
    base = sweep.tracking_uri.rstrip("/") if sweep.tracking_uri.startswith(("http://", "https://")) else "http://127.0.0.1:5000"
    return f"{base}/#/experiments/{sweep.experiment_id}/runs/{run_id}"


def choose(table: pd.DataFrame, tolerance: float) -> pd.DataFrame:
    """Each (arm, language)'s chosen trial by RULE."""
    done = table[table["finished"] & table["accuracy"].notna()]
    picks = []
    for _, group in done.groupby(["arm", "language"], sort=True):
        good = group[group["accuracy"] >= group["accuracy"].max() - tolerance]
        picks.append(good.sort_values(["flops", "accuracy"], ascending=[True, False], kind="stable").iloc[0])
    return pd.DataFrame(picks, columns=table.columns)


def no_gain(table: pd.DataFrame) -> pd.DataFrame:
    """(arm, language) groups none of whose finished trials ended above its own step-0 dev accuracy:
    their chosen config is the one that loses least, and the budget did not make relearning help."""
    done = table[table["finished"] & table["accuracy"].notna()]
    gains = (done["accuracy"] - done["step0_accuracy"]).groupby([done["arm"], done["language"]]).max()
    best = done.groupby(["arm", "language"])[["accuracy", "step0_accuracy"]].max()
    return best[gains <= 0].reset_index()


def importance(spec: Spec, table: pd.DataFrame) -> pd.DataFrame:
    """optuna.importance (its default evaluator) of each searched key for dev accuracy, per arm and
    language, from a study rebuilt from the trials that finished (fewer than 2 trials, or no key
    that took two values: none)."""
    rows = []
    for (arm, language), group in table[table["finished"] & table["accuracy"].notna()].groupby(["arm", "language"], sort=True):
        study = optuna.create_study(direction="maximize")
        for _, row in group.iterrows():
            study.add_trial(
                optuna.trial.create_trial(
                    params=row["values"], distributions={k: distribution(spec.search[k]) for k in row["values"]}, value=row["accuracy"]
                )
            )
        if len(study.trials) < 2 or not any(len({t.params[k] for t in study.trials}) > 1 for k in study.trials[0].params):
            continue
        for key, share in optuna.importance.get_param_importances(study).items():
            rows.append({"arm": arm, "language": language, "key": key, "importance": share})
    return pd.DataFrame(rows, columns=["arm", "language", "key", "importance"])


def distribution(dim: dict) -> optuna.distributions.BaseDistribution:
    if dim["type"] == "choice":
        return optuna.distributions.CategoricalDistribution(dim["values"])
    if dim["type"] == "int":
        return optuna.distributions.IntDistribution(dim["low"], dim["high"])
    return optuna.distributions.FloatDistribution(dim["low"], dim["high"], log=dim["type"] == "loguniform")


def pareto_table(table: pd.DataFrame) -> pd.DataFrame:
    """Every trial with whether it is on its language's Pareto set (every arm's trials pooled)."""
    on = set()
    for _, group in table[table["accuracy"].notna()].groupby("language"):
        on |= set(frontier.pareto(group)["run_id"])
    out = table.assign(pareto=table["run_id"].isin(on))
    values = pd.DataFrame(list(out["values"]), index=out.index).convert_dtypes()  # standard has no depth: ints stay ints
    return pd.concat([out.drop(columns="values"), values], axis=1).sort_values(["language", "flops"], kind="stable")


def plot(table: pd.DataFrame, path: Path) -> Path:
    """Dev accuracy against adaptation FLOPs, one panel per language: every trial by arm, the Pareto
    set joined and labelled with its trial ids."""
    languages = sorted(table["language"].unique())
    fig, axes = plt.subplots(1, len(languages), figsize=(5 * len(languages), 4), squeeze=False)
    for ax, language in zip(axes[0], languages):
        rows = table[table["language"] == language]
        for arm, group in rows.groupby("arm"):
            ax.scatter(group["flops"], group["accuracy"], label=arm, alpha=0.7)
        front = rows[rows["pareto"]].sort_values("flops")
        ax.plot(front["flops"], front["accuracy"], "k--", linewidth=1, label="Pareto set")
        for _, row in front.iterrows():
            ax.annotate(row["trial"], (row["flops"], row["accuracy"]), fontsize=7, xytext=(3, 3), textcoords="offset points")
        ax.set_xscale("log")
        ax.xaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())  # minor labels of a narrow range overlap
        ax.set(title=language, xlabel="adaptation FLOPs", ylabel="final dev accuracy")
        ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def chosen_params(chosen: pd.DataFrame) -> dict[str, object]:
    """`chosen.ARM.LANGUAGE.KEY` -> value (and `.trial` -> its MLflow run id), as logged on the tuning run."""
    out = {}
    for _, row in chosen.iterrows():
        prefix = f"chosen.{row['arm']}.{row['language']}"
        out.update({f"{prefix}.{k}": v for k, v in row["values"].items()})
        out[f"{prefix}.trial"] = row["run_id"]
    return out


def spec_blocks(chosen: pd.DataFrame) -> dict:
    """{language: {arm: {section: {key: value}}}}: each language's chosen configs as `methods:` overrides."""
    out: dict = {}
    for _, row in chosen.iterrows():
        block = out.setdefault(row["language"], {}).setdefault(row["arm"], {})
        for key, value in row["values"].items():
            section, leaf = key.split(".", 1)
            block.setdefault(section, {})[leaf] = value
    return out


def report(sweep: tracking.SweepRun, spec: Spec, out_dir: Path) -> pd.DataFrame:
    """Write, log and print the tuning phase's results; returns the chosen trials."""
    table = trials(sweep, spec)
    if table.empty:
        return table
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    front = pareto_table(table)
    front.to_csv(out_dir / "pareto.csv", index=False)
    weights = importance(spec, table)
    weights.to_csv(out_dir / "importance.csv", index=False)
    chosen = choose(table, spec.tune["tolerance"])
    (out_dir / "chosen.yaml").write_text(yaml.safe_dump(spec_blocks(chosen), sort_keys=True))
    files = [out_dir / "pareto.csv", plot(front, out_dir / "pareto.png"), out_dir / "importance.csv", out_dir / "chosen.yaml"]
    tracking.log_artifacts(sweep, files, folder="tuning")
    client = sweep.client()
    client.log_batch(sweep.run_id, params=[Param(k, str(v)) for k, v in chosen_params(chosen).items()])
    tracking.log_metrics(sweep, sweep.run_id, {f"importance.{r.arm}.{r.language}.{r.key}": r.importance for r in weights.itertuples()})
    print(RULE.format(tolerance=spec.tune["tolerance"]) + ":")
    for _, row in chosen.iterrows():
        print(
            f"  {row['arm']:<14} {row['language']:<6} {format_values(row['values'])}: dev accuracy {row['accuracy']:.3f} at "
            f"{row['flops']:.3g} FLOPs, step 0 {row['step0_accuracy']:.3f} (trial {row['trial']})"
        )
    for row in no_gain(table).itertuples():
        print(
            f"  {row.arm:<14} {row.language:<6} no trial ended above its step-0 dev accuracy (best {row.accuracy:.3f}, "
            f"step 0 {row.step0_accuracy:.3f}): the chosen config is the one that loses least; relearning did not help at this budget"
        )
    for arm, language in sorted(set(map(tuple, table[["arm", "language"]].values)) - set(map(tuple, chosen[["arm", "language"]].values))):
        print(f"  {arm:<14} {language:<6} no trial ran to the end: nothing chosen")
    print(f"tuning: Pareto table {out_dir / 'pareto.csv'}, plot {out_dir / 'pareto.png'}; chosen configs {out_dir / 'chosen.yaml'}")
    return chosen
