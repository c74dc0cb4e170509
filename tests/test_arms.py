"""Adding an arm is one entry in minimodel.experiment.arms.ARMS: the spec, the grid and the pipeline take it from there."""

from __future__ import annotations

import pytest

from minimodel.experiment import arms, pipeline
from minimodel.experiment.spec import SpecError, validate

# A real question in one entry: is MiniJoint worth its joint pretraining against plain standard
# adaptation (not against standard through the same joint model, its usual baseline)?
JOINT_ALONE = arms.Arm(
    "minijoint-alone",
    "MiniJoint against plain standard",
    "embeddings relearned through MiniJoint's mini-model",
    ("source", "finetune"),
    ("source", "mini"),
    arms.STANDARD,
    one_off=arms.second_head_flops,
    joint=True,
)


def tiny_spec(toy_data: dict, tmp_path, methods: list[str]) -> dict:
    corpus = toy_data["corpus"]
    return {
        "name": "one-entry",
        "storage": str(tmp_path / "runs"),
        "tracking_uri": f"sqlite:///{tmp_path / 'mlflow.db'}",
        "languages": ["xx"],
        "methods": methods,
        "search_alg": "grid",
        "search": {"adapt.depth": {"type": "int", "low": 1, "high": 2}},
        "trial": {
            "model": {"name": "scratch", "hidden": 32, "layers": 3, "heads": 2, "ffn": 64, "vocab_size": 300},
            "pretrain": {"steps": 20, "lr": 3e-3, "batch_size": 16},
            "data": {
                "source_corpus": corpus,
                "task": toy_data["task"],
                "target_corpus": corpus,
                "seq_len": 32,
                "max_docs": 400,
                "max_eval": 40,
            },
            "finetune": {"steps": 10, "batch_size": 16},
            "adapt": {"vocab_size": 300, "steps": 10, "eval_every": 5, "batch_size": 16},
        },
    }


def test_a_new_arm_is_one_table_entry(toy_data, tmp_path, monkeypatch):
    raw = tiny_spec(toy_data, tmp_path, ["standard", "minijoint-alone"])
    with pytest.raises(SpecError, match="methods: unknown method 'minijoint-alone'"):
        validate(raw)

    monkeypatch.setitem(arms.ARMS, JOINT_ALONE.name, JOINT_ALONE)  # the whole addition
    spec = validate(raw)
    assert spec.arms() == ["standard", "minijoint-alone"]  # no joint baseline: nothing borrows from it
    assert [p["adapt.depth"] for p in spec.grid() if p["adapt.method"] == "minijoint-alone"] == [1, 2]
    cfg = spec.config("minijoint-alone", "xx", {"adapt.depth": 1})
    assert (arms.arm(cfg), arms.baseline(cfg)) == ("minijoint-alone k=1", "standard")
    assert pipeline.needed_stages(cfg) == ["source", "finetune"] and pipeline.joint_depth(cfg) == 1

    cache = tmp_path / "cache"
    points = []
    result = pipeline.run_trial(cfg, cache, points.append)
    assert [p["step"] for p in points] == [0, 5, 10]
    source = pipeline.stage_dir("source", cfg, cache)
    assert (source / "mini").is_dir()  # relearned through the joint model's second head
    # no plain source model was built, so its one-off cost is the whole joint pretraining
    assert result["one_off_flops"] == pipeline.run_stage("source", cfg, cache)["flops"] > 0
    # it shares MiniJoint's source model at the same depth, and only that
    minijoint = {**cfg, "adapt": {**cfg["adapt"], "method": "minijoint"}}
    assert pipeline.stage_keys(minijoint)["source"] == pipeline.stage_keys(cfg)["source"]
    assert pipeline.stage_keys(minijoint)["adapt"] != pipeline.stage_keys(cfg)["adapt"]

    monkeypatch.delitem(arms.ARMS, JOINT_ALONE.name)
    with pytest.raises(SpecError, match="methods: unknown method 'minijoint-alone'"):
        validate(raw)
