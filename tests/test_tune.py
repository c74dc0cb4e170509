"""Tune, then confirm: per-arm Optuna studies under one rule, the chosen configs rerun on fresh seeds.

The spec checks and the searcher run without a Ray runtime; the end-to-end test runs both phases on
a real local Ray, real Optuna and a real MLflow store, on the tiny scratch model of test_sweep.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import yaml
from mlflow.tracking import MlflowClient
from ray.tune.search import Searcher

from minimodel import cli
from minimodel.experiment.spec import SpecError, validate
from tests.shell import user_env
from tests.test_sweep import two_languages
from tests.test_ui import NOISE
from trainables import tuning
from trainables.arm_search import ArmSearch, groups

TRIALS = 2
SEARCH = {
    "adapt.lr": {"type": "loguniform", "low": 3e-3, "high": 3e-2},
    "adapt.steps": {"type": "int", "low": 20, "high": 30},
    "adapt.mask_rate": {"type": "float", "low": 0.15, "high": 0.4},
    "adapt.depth": {"type": "choice", "values": [1, 2]},  # last: the arms' first draws of the rest agree
}


@pytest.fixture(scope="module")
def raw(toy_data, tmp_path_factory) -> dict:
    """A tuning spec over two target languages (xx and its copy yy), standard and MiniPost."""
    root = tmp_path_factory.mktemp("tune")
    trial = two_languages(toy_data["root"], root)
    trial["adapt"] = {**trial["adapt"], "eval_every": 10}
    return {
        "name": "tune",
        "storage": str(root / "runs"),
        "tracking_uri": f"sqlite:///{root}/mlflow.db",
        "trial": trial,
        "languages": ["xx", "yy"],
        "methods": ["standard", "minipost"],
        "search": SEARCH,
        "search_alg": "optuna-multi",
        "tune": {"trials": TRIALS},
        "max_concurrent": 2,
        "asha": {"grace_period": 1.0e15, "max_t": 1.0e15},  # per-arm ASHA on FLOPs, here never stopping a trial
        "resources": {"cpus": 1},
        "stages": {"workers": 1, "cpus_per_worker": 2},
    }


def test_a_tuning_phase_may_search_steps_a_plain_optuna_sweep_may_not(raw):
    spec = validate(raw)
    assert spec.tune == {"trials": TRIALS, "tolerance": 0.01}
    assert spec.num_samples == TRIALS * 2 * 2  # per arm and language
    plain = {k: v for k, v in raw.items() if k != "tune"}
    with pytest.raises(SpecError, match=r"search.adapt.steps: optuna-multi samples it per trial.*tune:"):
        validate(plain)
    with pytest.raises(SpecError, match="tune: a tuning phase samples with Optuna"):
        validate({**raw, "search_alg": "grid"})
    with pytest.raises(SpecError, match="num_samples: a tuning phase runs tune.trials"):
        validate({**raw, "num_samples": 8})
    joint = {**raw, "methods": {"standard": {}, "minijoint": {"pretrain": {"steps": 20}}}}
    with pytest.raises(SpecError, match="methods.minijoint.adapt.depth"):
        validate(joint)


def test_each_arm_and_language_is_its_own_study_with_the_same_budget_and_space(raw, tmp_path):
    spec = validate(raw)
    searcher = ArmSearch(spec)
    suggested = []
    for i in range(TRIALS * len(groups(spec))):
        if i == 3:  # a resumed sweep's searcher: Tune saves it and restores it into a fresh one
            searcher.save(str(tmp_path / "searcher.pkl"))
            searcher = ArmSearch(spec)
            searcher.restore(str(tmp_path / "searcher.pkl"))
        config = searcher.suggest(f"t{i}")
        suggested.append(config)
        searcher.on_trial_complete(f"t{i}", {"accuracy": 0.5 + 0.01 * i, "flops": 1e9 * (i + 1)})
    assert searcher.suggest("one-more") == Searcher.FINISHED
    table = pd.DataFrame(suggested)
    counts = table.groupby(["adapt.method", "adapt.language"]).size()
    assert counts.to_dict() == {(m, lang): TRIALS for m in ("minipost", "standard") for lang in ("xx", "yy")}
    # trials go round the groups: every language is in the first pair that runs at once
    assert {c["adapt.language"] for c in suggested[:2]} == {"xx", "yy"}
    for config in suggested:
        expected = set(SEARCH) - ({"adapt.depth"} if config["adapt.method"] == "standard" else set())
        assert set(config) - {"adapt.method", "adapt.language"} == expected
        assert 20 <= config["adapt.steps"] <= 30 and 3e-3 <= config["adapt.lr"] <= 3e-2
    # one seeded sampler per study: each arm and language gets the same first draws
    first = {(c["adapt.method"], c["adapt.language"]): c for c in reversed(suggested)}
    assert len({(c["adapt.lr"], c["adapt.steps"]) for c in first.values()}) == 1


def tuning_table(rows: list[tuple]) -> pd.DataFrame:
    """A tuning run's trials table (tuning.trials) from (arm, trial, finished, accuracy, FLOPs) rows, all
    starting at dev accuracy 0.39 on language xx."""
    return pd.DataFrame(
        [
            {
                "language": "xx",
                "arm": arm,
                "trial": trial,
                "run_id": trial,
                "link": "",
                "finished": done,
                "accuracy": acc,
                "step0_accuracy": 0.39,
                "flops": flops,
                "values": {},
            }
            for arm, trial, done, acc, flops in rows
        ]
    )


def test_one_rule_chooses_every_arms_config():
    """The cheapest trial that ran to the end within the tolerance of its own arm's best, per arm and language."""
    table = tuning_table(
        [
            ("standard", "a", True, 0.400, 5e9),
            ("standard", "b", True, 0.395, 2e9),
            ("standard", "c", True, 0.380, 1e9),
            ("minipost", "d", True, 0.300, 3e9),
            ("minipost", "e", False, 0.500, 1e9),
            ("minipost", "f", True, 0.310, 4e9),
        ]
    )
    chosen = tuning.choose(table, tolerance=0.01)
    # standard: b is within a point of a and cheaper; minipost: e was stopped early, so d (within f's point) wins
    assert dict(zip(chosen["arm"], chosen["trial"])) == {"standard": "b", "minipost": "d"}
    best = tuning.choose(table, tolerance=0.0)
    assert dict(zip(best["arm"], best["trial"])) == {"standard": "a", "minipost": "f"}
    # minipost chose its best, yet no trial that ran to the end beat step 0 (e, stopped early, does not count)
    assert tuning.no_gain(table)[["arm", "language", "accuracy"]].to_dict("records") == [
        {"arm": "minipost", "language": "xx", "accuracy": 0.310}
    ]


def run_cli(*argv: str) -> int:
    with pytest.raises(SystemExit) as done:
        cli.main(list(argv))
    return done.value.code


def test_confirm_needs_a_tuning_spec_and_a_finished_tuning_run(raw, tmp_path, capsys):
    for spec, message in [
        ({**raw, "tune": None, "search": {"adapt.lr": SEARCH["adapt.lr"]}}, "the spec has no tune: section"),
        ({**raw, "tracking_uri": f"sqlite:///{tmp_path}/empty.db"}, "no MLflow experiment named 'tune'"),
    ]:
        path = tmp_path / "spec.yaml"
        path.write_text(yaml.safe_dump(spec))
        assert run_cli("confirm", str(path)) == 2
        err = capsys.readouterr().err
        ours = [line for line in err.splitlines() if line.startswith("minimodel:")]  # MLflow may note creating the store
        assert len(ours) == 1 and ours[0].startswith("minimodel: error: ") and message in ours[0], err
        assert "Traceback" not in err


@pytest.mark.slow
def test_tune_then_confirm(ray_session, raw, tmp_path, capsys):
    path = tmp_path / "tune.yaml"
    path.write_text(yaml.safe_dump(raw))
    assert run_cli("sweep", str(path)) == 0
    out = capsys.readouterr().out
    assert "one rule for every arm" in out and "Pareto table" in out
    picks = re.findall(r"^  (?:standard|minipost) +(?:xx|yy) .*: dev accuracy [\d.]+ at .* FLOPs, step 0 [\d.]+ \(trial", out, re.M)
    assert len(picks) == 4, out  # each chosen config beside the step-0 accuracy it had to beat
    client = MlflowClient(raw["tracking_uri"])
    experiment = client.get_experiment_by_name("tune").experiment_id
    (tuned,) = client.search_runs([experiment], "tags.phase = 'tune'")
    trials = client.search_runs([experiment], f"tags.mlflow.parentRunId = '{tuned.info.run_id}'  and tags.kind = 'trial'")
    assert len(trials) == TRIALS * 4 and all(t.info.status == "FINISHED" for t in trials)

    # adapt.steps is a real dimension: each trial's LR schedule runs over its own steps, to 0 at its end
    for t in trials:
        steps, lr0 = int(t.data.params["adapt.steps"]), float(t.data.params["adapt.lr"])
        warm = int(float(t.data.params["adapt.warmup"]) * steps)
        lr = {m.step: m.value for m in client.get_metric_history(t.info.run_id, "lr")}
        at = {m.value: lr[m.step] for m in client.get_metric_history(t.info.run_id, "train_step")}  # by MLflow step
        assert max(at) == steps and at[steps] == 0
        assert at[10] == pytest.approx(lr0 * (steps - 10) / (steps - warm))
    assert len({t.data.params["adapt.steps"] for t in trials}) > 1

    # the Pareto table names every trial and links its run; importance and the chosen configs are on the run
    artifacts = {a.path for a in client.list_artifacts(tuned.info.run_id, "tuning")}
    assert artifacts == {"tuning/pareto.csv", "tuning/pareto.png", "tuning/importance.csv", "tuning/chosen.yaml"}
    pareto = pd.read_csv(client.download_artifacts(tuned.info.run_id, "tuning/pareto.csv", str(tmp_path)))
    assert set(pareto["run_id"]) == {t.info.run_id for t in trials}
    assert all(r in link for r, link in zip(pareto["run_id"], pareto["link"]))
    assert pareto.groupby("language")["pareto"].any().all()
    assert pareto["step0_accuracy"].between(0, 1).all()  # what each trial had to beat, beside what it reached
    assert any(k.startswith("importance.minipost.") for k in tuned.data.metrics)
    chosen = {k: v for k, v in tuned.data.params.items() if k.startswith("chosen.")}
    blocks = yaml.safe_load(Path(client.download_artifacts(tuned.info.run_id, "tuning/chosen.yaml", str(tmp_path))).read_text())
    assert blocks["xx"]["minipost"]["adapt"]["depth"] in (1, 2)
    picked = {t.info.run_id for t in trials} & set(chosen.values())
    assert len(picked) == 4  # one trial per arm and language

    # phase 2: exactly the chosen configs, on seeds no tuning trial used, linked to the tuning run; run as
    # a user runs it (its own process and local Ray), its terminal as quiet as the sweep's
    done = subprocess.run(
        [sys.executable, "-m", "minimodel.cli", "confirm", str(path), "--seeds", "1"],
        env=user_env(RAY_ADDRESS="local"),
        capture_output=True,
        text=True,
        timeout=900,
    )
    out = done.stdout + done.stderr
    assert done.returncode == 0, out[-3000:]
    assert "compute_to_match" in out and "fresh seeds [1]" in out
    for noise in NOISE:
        assert noise not in out, f"{noise!r} in confirm's output:\n{out}"
    (confirmed,) = client.search_runs([experiment], "tags.phase = 'confirm'")
    assert confirmed.data.tags["tuned_from"] == tuned.info.run_id
    reruns = client.search_runs([experiment], f"tags.mlflow.parentRunId = '{confirmed.info.run_id}' and tags.kind = 'trial'")
    assert len(reruns) == 4
    assert {r.data.tags["seed"] for r in reruns} == {"1"} and {t.data.tags["seed"] for t in trials} == {"0"}
    for r in reruns:
        arm, language = r.data.params["adapt.method"], r.data.params["adapt.language"]
        keys = set(SEARCH) - ({"adapt.depth"} if arm == "standard" else set())
        assert {k: r.data.params[k] for k in keys} == {k: chosen[f"chosen.{arm}.{language}.{k}"] for k in keys}
