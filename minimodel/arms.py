"""Which arm of a controlled comparison a trial belongs to, and which arm it is measured against.

An arm is a method at a depth ("minipost k=2"). Standard is the reference of every arm that adapts
the plain source model; MiniJoint changes the source model itself (continued joint pretraining), so
its reference is standard adaptation through that same jointly trained model, "standard (joint k=2)".
"""
from __future__ import annotations

STANDARD = "standard"


def arm(cfg: dict) -> str:
    a = cfg["adapt"]
    if a["method"] == STANDARD:
        return f"{STANDARD} (joint k={a['depth']})" if a["through_joint"] else STANDARD
    return f"{a['method']} k={a['depth']}"


def baseline(cfg: dict) -> str:
    a = cfg["adapt"]
    return f"{STANDARD} (joint k={a['depth']})" if a["method"] == "minijoint" or a["through_joint"] else STANDARD


def describe(cfg: dict, keys: list[str]) -> str:
    """'init=overlap, lr=0.001': the values of dotted keys in a trial config, short names."""
    values = []
    for key in keys:
        node = cfg
        for part in key.split("."):
            node = node[part]
        values.append(f"{key.removeprefix('adapt.')}={node:g}" if isinstance(node, float) else f"{key.removeprefix('adapt.')}={node}")
    return ", ".join(values)
