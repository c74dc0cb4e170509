"""Sweep specs: the shipped ones validate, every kind of mistake is one line naming the key."""

from __future__ import annotations

import copy
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from minimodel.experiment import pipeline
from minimodel.experiment.spec import SpecError, apply_override, load_spec, validate

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def raw(toy_data) -> dict:
    """A small valid spec on the synthetic local files."""
    return {
        "name": "toy",
        "trial": {
            "model": {"name": "scratch", "hidden": 32, "layers": 4, "heads": 2, "ffn": 64, "vocab_size": 300},
            "pretrain": {"steps": 10},
            "data": {"source_corpus": toy_data["corpus"], "target_corpus": toy_data["corpus"], "task": toy_data["task"]},
            "adapt": {"init": "overlap", "vocab_size": 300},
        },
        "languages": ["xx"],
        "methods": ["standard", "minijoint", "minipost"],
        "search": {"adapt.depth": {"type": "int", "low": 1, "high": 3}, "adapt.lr": {"type": "loguniform", "low": 1e-4, "high": 1e-2}},
    }


@pytest.mark.parametrize("name", ["demo.yaml", "paper.yaml"])
def test_shipped_specs_validate(name):
    spec = load_spec(ROOT / "sweeps" / name)
    assert set(spec.methods) == {"standard", "minijoint", "minipost"}
    assert len(spec.languages) >= 3


def test_paper_spec_covers_xnli_and_pawsx():
    xnli = load_spec(ROOT / "sweeps" / "paper.yaml")
    # one source model for every method, which has not seen the target languages
    assert len(xnli.languages) == 14 and {b["model"]["name"] for b in xnli.bases.values()} == {"roberta-base"}
    pawsx = load_spec(
        ROOT / "sweeps" / "paper.yaml", ["name=paper-pawsx", "trial.data.task=hf:paws-x", "languages=[de, es, fr, ja, ko, zh]"]
    )
    assert pawsx.languages == ["de", "es", "fr", "ja", "ko", "zh"]


def test_defaults_and_configs(raw):
    spec = validate(raw)
    assert spec.storage == str(Path("minimodel-runs").resolve())
    assert spec.tracking_uri.startswith("sqlite:///") and spec.num_samples == 8 and spec.max_concurrent == 2
    cfg = spec.config("minipost", "xx", {"adapt.depth": 3, "adapt.lr": 2e-3})
    assert (cfg["adapt"]["method"], cfg["adapt"]["language"], cfg["adapt"]["depth"], cfg["adapt"]["lr"]) == ("minipost", "xx", 3, 2e-3)
    # standard adaptation has no depth: it keeps the base value so equal trials share one cache entry
    assert spec.config("standard", "xx", {"adapt.depth": 3})["adapt"]["depth"] == 2


def test_grid_and_stage_configs(raw):
    raw["search"] = {"adapt.depth": {"type": "int", "low": 1, "high": 3}, "adapt.init": {"type": "choice", "values": ["random", "overlap"]}}
    raw["search_alg"] = "grid"
    spec = validate(raw)
    # minijoint, minipost and MiniJoint's own baseline: 3 depths x 2 inits; standard: no depth, 2 inits
    assert len(spec.grid()) == 3 * 3 * 2 + 2
    assert spec.conditions == ["adapt.init"]
    assert all("adapt.depth" not in p for p in spec.grid() if p["adapt.method"] == "standard")
    depths = sorted(c["adapt"]["depth"] for c in spec.stage_configs() if c["adapt"]["method"] == "minipost")
    assert depths == [1, 2, 3]


def test_methods_mapping_overrides_per_method(raw):
    raw["trial"]["model"] = {"name": "bundled:minilm-l6"}
    raw["trial"]["pretrain"] = {"head_steps": 10, "steps": 0}
    raw["methods"] = {
        "standard": {},
        "minipost": None,
        "minijoint": {"model": {"name": "scratch", "layers": 5, "vocab_size": 300}, "pretrain": {"steps": 50}, "adapt": {"depth": 2}},
    }
    raw["search"]["adapt.depth"]["high"] = 4
    spec = validate(raw)
    assert spec.bases["standard"]["model"]["name"] == "bundled:minilm-l6"
    assert spec.bases["minijoint"]["model"]["layers"] == 5
    # a key a method sets is pinned for it: the search leaves MiniJoint's depth (and standard's) alone
    assert spec.config("minijoint", "xx", {"adapt.depth": 4})["adapt"]["depth"] == 2
    assert spec.config("minipost", "xx", {"adapt.depth": 4})["adapt"]["depth"] == 4
    assert spec.searched("minijoint") == spec.searched("standard") == ["adapt.lr"]
    # MiniJoint's baseline is standard through MiniJoint's own source model, at its depth
    joint = spec.config("standard-through-joint", "xx", {"adapt.depth": 4})
    assert joint["model"]["layers"] == 5 and joint["adapt"]["depth"] == 2 and joint["adapt"]["method"] == "standard-through-joint"
    minijoint = spec.config("minijoint", "xx")
    assert {k: pipeline.stage_keys(joint)[k] for k in ("source", "finetune")} == {
        k: pipeline.stage_keys(minijoint)[k] for k in ("source", "finetune")
    }
    raw["search_alg"], raw["search"]["adapt.lr"] = "grid", {"type": "choice", "values": [0.01]}
    assert len(validate(raw).grid()) == 1 + 4 + 1 + 1


def test_seeds_repeat_every_grid_point(raw):
    raw.update(search_alg="grid", seeds=[0, 1, 2], search={"adapt.depth": {"type": "choice", "values": [1, 2]}})
    spec = validate(raw)
    # standard, standard through the joint model (2 depths), minijoint and minipost (2 depths each): x 3 seeds
    assert len(spec.grid()) == (1 + 2 + 2 + 2) * 3
    assert sorted({p["adapt.seed"] for p in spec.grid()}) == [0, 1, 2]
    assert spec.config("minipost", "xx", {"adapt.seed": 2})["adapt"]["seed"] == 2


def test_controlled_comparison_refuses_what_methods_would_not_share(raw):
    check(
        raw,
        "methods.minipost.adapt.lr: methods of one comparison may differ only in method and depth",
        "methods={standard: {}, minipost: {adapt: {lr: 0.1}}}",
    )
    allowed = copy.deepcopy(raw)
    apply_override(allowed, "methods={standard: {}, minipost: {adapt: {lr: 0.1}}}")
    apply_override(allowed, "allow_differences=[adapt.lr]")
    assert validate(allowed).bases["minipost"]["adapt"]["lr"] == 0.1
    check(raw, "search.adapt.init: optuna-tpe samples it per trial", "search.adapt.init={type: choice, values: [random, overlap]}")
    check(raw, "seeds: repeating every point over seeds needs search_alg: grid", "seeds=[0, 1]")
    # on a grid every arm runs under every init: a condition each comparison holds fixed
    grid = copy.deepcopy(raw)
    for item in (
        "search_alg=grid",
        "search.adapt.lr={type: choice, values: [0.01]}",
        "search.adapt.init={type: choice, values: [random, overlap]}",
    ):
        apply_override(grid, item)
    spec = validate(grid)
    assert spec.conditions == ["adapt.init"] and spec.tuned == ["adapt.lr"]


def test_a_model_without_mlm_head_must_be_restored(raw):
    check(
        raw,
        "pretrain.head_steps: bundled:minilm-l6 has no MLM head",
        "trial.model.name=bundled:minilm-l6",
        "trial.pretrain.steps=0",
        "methods=[standard, minipost]",
    )


def test_cipher_control_is_a_language_of_every_source(raw):
    raw["languages"] = ["xx", "cipher-en"]
    assert validate(raw).languages == ["xx", "cipher-en"]


def test_set_overrides(raw, tmp_path):
    path = tmp_path / "s.yaml"
    path.write_text(yaml.safe_dump(raw))
    spec = load_spec(
        path,
        [
            "trial.adapt.steps=50",
            "trial.adapt.eval_every=25",
            "search.adapt.lr.low=1e-5",
            "languages=[xx]",
            "max_concurrent=1",
            "asha.grace_period=1e9",
            "asha.max_t=1e12",
        ],
    )
    assert spec.bases["minipost"]["adapt"]["steps"] == 50
    assert spec.search["adapt.lr"]["low"] == 1e-5 and isinstance(spec.search["adapt.lr"]["low"], float)
    assert spec.max_concurrent == 1
    assert spec.asha == {"time_attr": "flops", "grace_period": 1e9, "max_t": 1e12, "reduction_factor": 3.0}


def check(raw: dict, message: str, *overrides: str) -> None:
    raw = copy.deepcopy(raw)
    with pytest.raises(SpecError) as err:
        for item in overrides:
            apply_override(raw, item)
        validate(raw)
    text = str(err.value)
    assert "\n" not in text
    assert message in text, text


@pytest.mark.parametrize(
    "overrides, message",
    [
        (["colour=red"], "colour: unknown key"),
        (["trial.adapt.setps=3"], "trial.adapt.setps: unknown key; did you mean trial.adapt.steps?"),
        (["trial.adapt.steps=many"], "'trial.adapt.steps' must be int"),
        (["num_samples=lots"], "num_samples: must be int"),
        (["num_samples=2"], "num_samples: 2 is fewer than the 3 language x method pairs"),
        (["search.adapt.lr.low=0.1"], "search.adapt.lr: low 0.1 is greater than high 0.01"),
        (["search.adapt.lr.low=0"], "search.adapt.lr.low: loguniform needs low > 0"),
        (["search.adapt.lr.type=gaussian"], "search.adapt.lr.type: must be one of"),
        (["search.adapt.depth.high=4"], "search.adapt.depth: 'adapt.depth' must be between 1 and the model's layers - 1, got 4"),
        (
            ["trial.model.name=bundled:minilm-l6", "search.adapt.depth.high=6"],
            "search.adapt.depth: depth 6 is beyond bundled:minilm-l6's 6 layers (max 5)",
        ),
        (
            [
                "search_alg=grid",
                "search.adapt.lr={type: choice, values: [0.01]}",
                "search.adapt.init={type: choice, values: [random, clever]}",
            ],
            "search.adapt.init: 'adapt.init' must be one of random, overlap, focus, wechsel",
        ),
        (["search.adapt.wings={type: int, low: 1, high: 2}"], "search.adapt.wings: unknown key (known: batch_size,"),
        (
            ["search.align.lr={type: float, low: 0.001, high: 0.01}"],
            "search.align.lr: a shared-stage key must be searched as int or choice",
        ),
        (["search.adapt.language={type: choice, values: [xx]}"], "set methods: and languages: instead"),
        (["languages=[xx, zz]"], "languages: zz not in"),
        (["languages=[en]"], "'en' is the source language"),
        (["languages=[]"], "languages: must be a non-empty list"),
        (["methods=[standard, magic]"], "methods: unknown method 'magic'"),
        (["trial.data.task=/nowhere/{lang}/{split}.jsonl"], "trial.data.task: no file matches /nowhere/{lang}/{split}.jsonl"),
        (["trial.model.name=./no-such-model"], "model.name: ./no-such-model is not a model folder"),
        (["trial.pretrain.steps=0"], "pretrain.steps: a scratch model needs pretraining steps > 0"),
        (["search_alg=random"], "search_alg: must be one of optuna-tpe, optuna-multi, grid"),
        (["search_alg=grid"], "search.adapt.lr: grid needs type int or choice"),
        (["resources.cpus=0"], "resources.cpus: must be > 0"),
        (["resources.tpus=1"], "resources.tpus: unknown key"),
        (["stages.workers=0"], "stages.workers: must be at least 1"),
        (["asha.grace_period=10"], "asha.max_t: must be a positive number"),
        (["asha.grace_period=10", "asha.max_t=5"], "asha.grace_period: 10 is greater than max_t 5"),
        (["name=my sweep"], "name: must be letters"),
    ],
)
def test_validation_errors_name_the_key(raw, overrides, message):
    check(raw, message, *overrides)


def test_bad_files_and_overrides(raw, tmp_path):
    with pytest.raises(SpecError, match="no such spec file"):
        load_spec(tmp_path / "missing.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: x\nlanguages: [de\n")
    with pytest.raises(SpecError, match=r"bad.yaml: not valid YAML at line 3"):
        load_spec(bad)
    with pytest.raises(SpecError, match="expected key.path=value"):
        apply_override(raw, "trial.adapt.steps")
    with pytest.raises(SpecError, match="'name' is not a mapping"):
        apply_override(raw, "name.first=x")


def test_cli_validate_reports_one_line_and_exit_code(raw, tmp_path):
    path = tmp_path / "s.yaml"
    path.write_text(yaml.safe_dump(raw))
    cmd = [sys.executable, "-m", "minimodel.cli", "validate", str(path)]
    ok = subprocess.run(cmd, capture_output=True, text=True, cwd=tmp_path)
    assert ok.returncode == 0 and "valid" in ok.stdout
    bad = subprocess.run(cmd + ["--set", "search.adapt.depth.low=0"], capture_output=True, text=True, cwd=tmp_path)
    assert bad.returncode == 2
    assert bad.stderr.strip().splitlines() == [
        "minimodel: error: search.adapt.depth: 'adapt.depth' must be between 1 and the model's layers - 1, got 0"
    ]


def test_cluster_yaml_passes_ray_up_validation():
    """cluster.yaml is checked the way `ray up` checks it (prepare_config fills defaults first)."""
    from ray.autoscaler._private.util import prepare_config, validate_config

    config = prepare_config(yaml.safe_load((ROOT / "cluster.yaml").read_text()))
    validate_config(config)
    assert config["available_node_types"]["gpu"]["max_workers"] == 8
