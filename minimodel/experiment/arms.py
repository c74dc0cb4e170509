"""The arms of a controlled comparison, one entry each in ARMS: everything that differs between methods.

An arm is a way of relearning a language's embeddings, at a depth ("minipost k=2"). Its entry says
which shared stages it needs, which model it relearns through, what it pays once before any language,
which arm it is measured against and which trial keys mean nothing to it. Standard is the reference
of every arm that adapts the plain source model; MiniJoint changes the source model itself (continued
joint pretraining with a second MLM head at its depth), so its reference is standard adaptation
through that same jointly trained model, the arm "standard-through-joint", shown "standard (joint k=2)".
The rest of the code asks this table; adding a method is adding an entry.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

# stats(stage, cfg): the stats of that stage of cfg if it is in the cache, else None
StageStats = Callable[[str, dict], "dict | None"]


def nothing_once(cfg: dict, stats: StageStats) -> int:
    """Standard pays nothing before a language."""
    return 0


def alignment_flops(cfg: dict, stats: StageStats) -> int:
    """MiniPost pays its alignment once."""
    return stats("align", cfg)["flops"]


def second_head_flops(cfg: dict, stats: StageStats) -> int:
    """MiniJoint pays what its second head added to pretraining: the joint source model's FLOPs over the
    plain one's, where the plain one was built; else the whole joint pretraining."""
    joint = stats("source", cfg)["flops"]
    plain = stats("source", {**cfg, "adapt": {**cfg["adapt"], "method": STANDARD}})
    return joint - plain["flops"] if plain else joint


@dataclass(frozen=True)
class Arm:
    """One method of relearning embeddings, as the pipeline, the spec, the sweep and the reports see it."""

    name: str  # the value of adapt.method
    title: str  # the name in prose ("MiniJoint")
    summary: str  # how the embeddings are relearned, for a model card
    stages: tuple[str, ...]  # the shared stages it needs, in dependency order (pipeline.STAGES)
    through: tuple[str, str]  # (stage, folder of its cache entry) of the model it relearns through
    baseline: str  # the arm it is measured against
    label: str = "{name} k={depth}"  # how results show it
    one_off: Callable[[dict, StageStats], int] = nothing_once  # FLOPs it pays once, before any language
    pinned: frozenset[str] = frozenset()  # trial keys that mean nothing to it: a search leaves them alone
    joint: bool = False  # its source model carries a second MLM head at adapt.depth (trained in pretraining)
    # an arm a spec adds for another one: it takes that arm's config (source model, depth), and a
    # search samples it as a variant of `variant_of`
    borrows: str | None = None
    variant_of: str | None = None

    @property
    def has_depth(self) -> bool:
        """Whether adapt.depth matters to it (1 <= depth < the model's layers)."""
        return "adapt.depth" not in self.pinned

    @property
    def full_model(self) -> bool:
        """Whether it relearns through the whole source model (no mini-model)."""
        return self.through == ("source", "model")


STANDARD = "standard"
WHOLE_MODEL = "embeddings relearned by masked language modelling through the whole frozen model"
ARMS: dict[str, Arm] = {
    a.name: a
    for a in (
        Arm(
            STANDARD,
            "standard",
            WHOLE_MODEL,
            ("source", "finetune"),
            ("source", "model"),
            STANDARD,
            label=STANDARD,
            pinned=frozenset({"adapt.depth"}),
        ),
        Arm(
            "minijoint",
            "MiniJoint",
            "embeddings relearned through a mini-model (the first k layers and a second MLM "
            "head trained jointly with the model), then plugged into the full model",
            ("source", "finetune"),
            ("source", "mini"),
            "standard-through-joint",
            one_off=second_head_flops,
            joint=True,
        ),
        Arm(
            "minipost",
            "MiniPost",
            "embeddings relearned through a mini-model (the first k layers, frozen, with a new "
            "top aligned on English), then plugged into the full model",
            ("source", "align", "finetune"),
            ("align", "mini"),
            STANDARD,
            one_off=alignment_flops,
        ),
        Arm(
            "standard-through-joint",
            "standard through MiniJoint's model",
            WHOLE_MODEL,
            ("source", "finetune"),
            ("source", "model"),
            "standard-through-joint",
            label="standard (joint k={depth})",
            joint=True,
            borrows="minijoint",
            variant_of=STANDARD,
        ),
    )
}


def get(cfg: dict) -> Arm:
    """The arm of a trial config."""
    return ARMS[cfg["adapt"]["method"]]


def methods() -> list[str]:
    """The arms a spec lists under `methods:` (the others it adds itself, for the arm they borrow from)."""
    return [name for name, a in ARMS.items() if not a.borrows]


def arm(cfg: dict) -> str:
    """The label of a trial's arm: 'minipost k=2', 'standard', 'standard (joint k=2)'."""
    a = get(cfg)
    return a.label.format(name=a.name, depth=cfg["adapt"]["depth"])


def baseline(cfg: dict) -> str:
    """The label of the arm a trial is measured against."""
    return arm({**cfg, "adapt": {**cfg["adapt"], "method": get(cfg).baseline}})
