"""The tiny English source model the fast tests adapt from, shipped in tests/assets/toy-bert/.

Pretraining it takes minutes on 2 cores, and every pipeline test needs it, so the repository ships the
result; `python -m tests.toy_source` rebuilds it through the pipeline's own source stage, and the slow
test in tests/test_toy_source.py rebuilds it and checks it against the shipped record.
"""

from __future__ import annotations

import json
import shutil
import sys
import tempfile
from pathlib import Path

ASSET = Path(__file__).parent / "assets" / "toy-bert"
SCRATCH = {"name": "scratch", "family": "bert", "hidden": 64, "layers": 4, "heads": 4, "ffn": 128, "vocab_size": 400}
PRETRAIN = {"steps": 3000, "lr": 3e-3, "batch_size": 32}
DATA = {"seq_len": 32, "max_docs": 3000}


def source_config(corpus: str) -> dict:
    """The scratch pretraining the asset comes from: fp32, so that no CPU's bf16 emulation enters it
    (the same CPU rebuilds it exactly; tests/test_toy_source.py says how far another one moves it)."""
    from minimodel.experiment.config import trial_config

    return trial_config(
        {
            "precision": "fp32",
            "model": SCRATCH,
            "pretrain": PRETRAIN,
            "data": {**DATA, "source_corpus": corpus, "target_corpus": corpus},
            "adapt": {"method": "standard"},
        }
    )


def build(out: Path) -> dict:
    """Pretrain the toy source on the synthetic English corpus and write it (model, tokenizer,
    source.json with its held-out masked accuracy) to `out`."""
    from minimodel.experiment import pipeline
    from tests.synthetic import write_language

    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        write_language(root / "toy")
        cfg = source_config(str(root / "toy" / "corpus" / "{lang}.txt"))
        stats = pipeline.run_stage("source", cfg, root / "cache")
        shutil.rmtree(out, ignore_errors=True)
        shutil.copytree(pipeline.stage_dir("source", cfg, root / "cache") / "model", out)
    record = {
        "built_by": "python -m tests.toy_source",
        "model": SCRATCH,
        "pretrain": PRETRAIN,
        "data": DATA,
        "precision": "fp32",
        "mlm_accuracy": stats["mlm_accuracy"],
        "mlm_loss": stats["mlm_loss"],
        "before": stats["before"],
        "flops": stats["flops"],
    }
    (out / "source.json").write_text(json.dumps(record, indent=1) + "\n")
    return record


if __name__ == "__main__":
    import torch

    torch.set_num_threads(1)  # a tiny model: one thread is fastest
    print(json.dumps(build(Path(sys.argv[1]) if len(sys.argv) > 1 else ASSET), indent=1))
