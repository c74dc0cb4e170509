"""Seconds one library init (FOCUS, WECHSEL) costs per language on the bundled corpora, from an empty cache.

Runs the init stage as a trial does (pipeline._new_rows): fastText vectors on the language's corpus
(and, for WECHSEL, on English: paid once for every language), the FreeDict dictionary, the library's
call. The source is the bundled MiniLM-L6 and the target vocabulary adapt.vocab_size tokens trained on
the corpus; trial-config defaults otherwise (fasttext dim 100, 10 epochs). One run per line: the
numbers are wall seconds on whatever machine runs it, with the threads torch is given.

    .venv/bin/python bench/init_cost.py --languages de ru --inits focus wechsel [--threads 2]
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

import torch

from minimodel.text import data
from minimodel.experiment import pipeline
from minimodel.experiment.config import trial_config
from minimodel.method.models import load_mlm
from minimodel.text.vocab import train_tokenizer


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--languages", nargs="+", default=["de"])
    parser.add_argument("--inits", nargs="+", default=["focus", "wechsel"])
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    model, source = load_mlm("bundled:minilm-l6")
    with tempfile.TemporaryDirectory() as cache:
        for language in args.languages:
            for init in args.inits:
                cfg = trial_config({"adapt": {"language": language, "init": init}})
                texts = data.read_corpus(cfg["data"]["target_corpus"], language, cfg["data"]["max_docs"])
                target = train_tokenizer(source, texts, cfg["adapt"]["vocab_size"])
                _, _, copied, cost = pipeline._new_rows(cfg, Path(cache), model, source, target, texts)
                stats = json.loads((pipeline.stage_dir("init", cfg, cache) / "stats.json").read_text())
                print(json.dumps({"language": language, "init": init, "threads": args.threads, **stats}), flush=True)


if __name__ == "__main__":
    main()
