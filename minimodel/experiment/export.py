"""A trial's adapted model as a standalone Hugging Face folder, and predictions with such a folder.

The folder holds the English fine-tuned task model (classifier or span head) with the trial
language's word embeddings spliced in, that language's tokenizer, a model card (README.md) and
trial.json (the trial config and its results); on request also the full masked LM with the same
embeddings (mlm/). It loads with AutoModelFor...from_pretrained and transformers.pipeline, with no
minimodel import: only standard architectures and safetensors are written.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from types import ModuleType

import torch
from transformers import AutoConfig, AutoModelForMaskedLM, AutoTokenizer

from minimodel.experiment import arms, pipeline
from minimodel.text import qa, tasks
from minimodel.text.data import DataError
from minimodel.method.embeddings import splice
from minimodel.method.models import ModelError

CLASSIFIER_USE = [
    "from transformers import pipeline",
    "",
    'classify = pipeline("text-classification", model="THIS_FOLDER")',
    'classify("some text")',
]
# transformers 5 has no question-answering pipeline: the best span of one window, by hand.
QA_USE = [
    "import torch",
    "from transformers import AutoModelForQuestionAnswering, AutoTokenizer",
    "",
    'tokenizer = AutoTokenizer.from_pretrained("THIS_FOLDER")',
    'model = AutoModelForQuestionAnswering.from_pretrained("THIS_FOLDER")',
    'enc = tokenizer(question, context, truncation="only_second", return_offsets_mapping=True, return_tensors="pt")',
    'offsets, context_tokens = enc.pop("offset_mapping")[0], torch.tensor([s == 1 for s in enc.sequence_ids()])',
    "out = model(**enc)",
    "start = out.start_logits[0].masked_fill(~context_tokens, -1e9).argmax()",
    "end = start + out.end_logits[0, start:start + 30].masked_fill(~context_tokens[start:start + 30], -1e9).argmax()",
    "answer = context[offsets[start][0]:offsets[end][1]]",
]


def export(cfg: dict, cache_dir: str | Path, out: str | Path, *, mlm: bool = False, run_id: str | None = None) -> Path:
    """Write the trial of `cfg` (finished, in the cache) as a standalone folder `out`; returns it.
    An existing export at `out` is replaced; any other existing folder is refused."""
    out, adapt = Path(out), pipeline.stage_dir("adapt", cfg, cache_dir)
    a = cfg["adapt"]
    if not (adapt / "stats.json").exists():
        raise ModelError(
            f"no finished trial {arms.arm(cfg)} {a['language']} seed {a['seed']} in {cache_dir} "
            f"(adapt key {pipeline.stage_keys(cfg)['adapt']}): run it first (minimodel trial or sweep)"
        )
    if out.exists() and not (out / "trial.json").exists():
        raise ModelError(f"{out}: exists and is not a minimodel export; choose another --out")
    stats = json.loads((adapt / "stats.json").read_text())
    tokenizer, weight, bias = pipeline.load_embeddings(adapt / "embeddings")
    tokenizer.model_max_length = cfg["data"]["seq_len"]  # what the model was trained on: pipelines truncate there
    finetuned = pipeline.stage_dir("finetune", cfg, cache_dir)
    task = pipeline.task_module(cfg)
    model = task.load(finetuned / task.FOLDER)
    splice(model, weight)
    tmp = out.with_name(out.name + ".partial")
    shutil.rmtree(tmp, ignore_errors=True)
    model.save_pretrained(tmp)
    tokenizer.save_pretrained(tmp)
    if mlm:
        body = AutoModelForMaskedLM.from_pretrained(pipeline.stage_dir("source", cfg, cache_dir) / "model")
        splice(body, weight, bias)
        body.save_pretrained(tmp / "mlm")
        tokenizer.save_pretrained(tmp / "mlm")
    results = {k: v for k, v in stats.items() if k != "curve"}
    (tmp / "trial.json").write_text(json.dumps({"config": cfg, "results": results, "mlflow_run_id": run_id}, indent=1))
    (tmp / "README.md").write_text(model_card(cfg, task, results, cache_dir, mlm, run_id))
    shutil.rmtree(out, ignore_errors=True)
    tmp.rename(out)
    return out


def pipeline_task(folder: str | Path) -> str:
    """The transformers pipeline task of an exported folder."""
    architecture = (AutoConfig.from_pretrained(folder).architectures or [""])[0]
    return "question-answering" if architecture.endswith("ForQuestionAnswering") else "text-classification"


def model_card(cfg: dict, task: ModuleType, results: dict, cache_dir: str | Path, mlm: bool, run_id: str | None) -> str:
    """README.md: what the model is, how it was made, what it scores, what it cost, on which data."""
    a, d, m = cfg["adapt"], cfg["data"], cfg["model"]
    kind = "question-answering" if task is qa else "text-classification"
    metric_names = {"accuracy": "F1" if task is qa else "accuracy", "macro_f1": "macro-F1", "exact_match": "exact match"}
    rows = [f"| {metric_names[k]} | {results[k]:.4f} | {results[f'test_{k}']:.4f} | {results[f'english_{k}']:.4f} |" for k in task.METRICS]
    finetune, source = (json.loads((pipeline.stage_dir(s, cfg, cache_dir) / "stats.json").read_text()) for s in ("finetune", "source"))
    depth = "the full model" if arms.get(cfg).full_model else f"k = {a['depth']} of the model's layers"
    lines = [
        "---",
        f"language: {a['language']}",
        "library_name: transformers",
        f"pipeline_tag: {kind}",
        f"tags: [minimodel, mini-model-adaptation, {a['method']}]",
        "---",
        "",
        f"# {m['name']} adapted to `{a['language']}` ({arms.arm(cfg)}), {kind}",
        "",
        f"Made with minimodel (mini-model adaptation, Marchisio et al. 2023): {arms.get(cfg).summary}. "
        f"Depth: {depth}. The task model was fine-tuned on English with its word embeddings frozen, then given "
        f"this language's tokenizer ({results['vocab_size']} tokens, init `{a['init']}`, "
        f"{results['overlap_tokens']} tokens shared with the source vocabulary) and embeddings: its scores "
        "below are zero-shot.",
        "",
        "## Zero-shot scores",
        "",
        f"| metric | dev ({results['dev_items']} items) | test ({results['test_items']} items) | English test |",
        "| --- | --- | --- | --- |",
        *rows,
        "",
        "## Compute",
        "",
        "| stage | FLOPs | tokens | seconds |",
        "| --- | --- | --- | --- |",
        f"| adaptation ({a['steps']} steps, lr {a['lr']:g}) | {results['flops']:.3g} | {results['tokens']} | {results['wall_s']:.0f} |",
        f"| one-off (MiniPost alignment or MiniJoint's second head) | {results['one_off_flops']:.3g} | | |",
        f"| English fine-tune (shared by every language) | {finetune['flops']:.3g} | {finetune['tokens']} | {finetune['wall_s']:.0f} |",
        f"| source model pretraining (shared) | {source['flops']:.3g} | {source['tokens']} | {source['wall_s']:.0f} |",
        "",
        "FLOPs are counted by torch on real training steps.",
        "",
        "## Data",
        "",
        f"- task: `{d['task']}` (English train/dev/test; `{a['language']}` dev/test), sequence length {d['seq_len']}",
        f"- source-language corpus: `{d['source_corpus']}`; target corpus: `{d['target_corpus']}` "
        f"(`{a['language']}`, at most {d['max_docs']} documents)",
        "",
        "## Use",
        "",
        "```python",
        *(QA_USE if task is qa else CLASSIFIER_USE),
        "```",
        "",
        "or `minimodel predict THIS_FOLDER` (JSONL in and out)."
        + (" `mlm/` holds the full masked LM with the same embeddings (`fill-mask`)." if mlm else ""),
        "",
        "## Provenance",
        "",
        f"- trial: adapt cache key `{pipeline.stage_keys(cfg)['adapt']}`, seed {a['seed']}; its whole config is in trial.json",
    ]
    if run_id:
        lines.append(f"- MLflow run: `{run_id}`")
    return "\n".join(lines) + "\n"


def predict(folder: str | Path, rows: list[dict], batch_size: int = 32) -> list[dict]:
    """Classify rows {"text"[, "text_pair"]} ({"label", "score"}) or answer rows {"question", "context"}
    ({"answer", "start", "end", "score"}) with an exported folder, on CPU or CUDA."""
    if not (Path(folder) / "config.json").is_file():
        raise ModelError(f"{folder}: not an exported model (no config.json there)")
    try:
        tokenizer = AutoTokenizer.from_pretrained(folder)
        kind = pipeline_task(folder)
    except (OSError, ValueError) as err:
        raise ModelError(f"{folder}: not an exported model ({str(err).splitlines()[0]})") from None
    dev = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    need = ("question", "context") if kind == "question-answering" else ("text",)
    for i, row in enumerate(rows, 1):
        if not all(isinstance(row.get(k), str) for k in need):
            raise DataError(f"input {i}: a {kind} model needs strings {', '.join(map(repr, need))}")
    if kind == "question-answering":
        model = qa.load(folder).to(dev)
        return qa.predict(model, qa.windows(tokenizer, rows, tokenizer.model_max_length), tokenizer, batch_size, "fp32")
    model = tasks.load(folder).to(dev).eval()
    pad, out = tasks.collate(tokenizer), []
    pairs = [r.get("text_pair") for r in rows]
    enc = tokenizer([r["text"] for r in rows], pairs if any(p is not None for p in pairs) else None, truncation=True)
    features = [{k: enc[k][i] for k in enc} for i in range(len(rows))]
    with torch.no_grad():
        for first in range(0, len(rows), batch_size):
            batch = {k: v.to(dev) for k, v in pad(features[first : first + batch_size]).items()}
            probs = model(**batch).logits.float().softmax(-1)
            for p in probs:
                out.append({"label": model.config.id2label[int(p.argmax())], "score": round(float(p.max()), 4)})
    return out
