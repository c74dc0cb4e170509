"""One trial as stages, each cached on disk under the hash of the config sections it reads.

    source    load or pretrain the English model (head restore; MiniJoint's second head)   shared
    align     MiniPost: align a new top over frozen layers[:depth]                          shared
    finetune  English task fine-tune of the full model, word embeddings frozen              shared
              (a classifier, or a span head for extractive QA: tasks.py / qa.py)
    init      FOCUS or WECHSEL: the new vocabulary's rows from their libraries (inits.py),   per language
              one entry shared by every arm that relearns the same source embeddings
    adapt     the trial: relearn one language's embeddings through the full or mini-model,
              evaluating zero-shot on the way

Each stage is an entry of minimodel.experiment.cache: published whole with checksums, rebuilt if damaged, built by
one process at a time, so an interrupted sweep recomputes nothing that finished. Under
torch.distributed every rank trains and rank 0 writes.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from types import ModuleType
from typing import Any, Callable

import torch
from safetensors.torch import load_file, save_file
from torch import nn
from transformers import AutoModelForMaskedLM, AutoTokenizer, PreTrainedTokenizerBase

from minimodel.experiment import arms
from minimodel.text import data, qa, tasks
from minimodel.experiment import inits
from minimodel.experiment.cache import build, cached_tokenizer, token_blocks, valid
from minimodel.experiment.config import LIBRARY_INITS, SOURCE_LANGUAGE, config_hash, get_dotted
from minimodel.method.embeddings import init_embeddings, keep_rows, learned, only_embeddings_trainable, shared_bias, splice
from minimodel.method.joint import joint_loss
from minimodel.method.mlm import agreement, distill_loss, mlm_batches, mlm_eval, mlm_loss
from minimodel.method.models import build_mlm, device, empty_tokenizer, fingerprint, load_mlm, mini_model, mlm_head, new_head, trainable
from minimodel.method.post import minipost_model
from minimodel.method.train import distributed, train
from minimodel.text.vocab import canonical, shared_tokens, train_tokenizer

HELD_OUT_BLOCKS = 64  # blocks of source text kept out of training to measure MLM loss and accuracy
# What each shared stage reads from a trial config, in the order its cache key hashes them (after its
# upstream stage's key); its MLflow run logs the same values as params. joint_depth is the layer of
# MiniJoint's second head (0: none).
READS = {
    "source": ("model", "pretrain", "data.source_corpus", "data.seq_len", "data.max_docs", "seed", "joint_depth", "precision"),
    "align": ("align", "adapt.depth"),
    "finetune": ("finetune", "data.task", "data.seq_len"),
}


def needed_stages(cfg: dict) -> list[str]:
    """The shared stages a trial needs, in dependency order."""
    return list(arms.get(cfg).stages)


def joint_depth(cfg: dict) -> int:
    """The layer of the source model's second MLM head: MiniJoint's, and its standard baseline's."""
    return cfg["adapt"]["depth"] if arms.get(cfg).joint else 0


def stage_reads(name: str, cfg: dict) -> dict[str, Any]:
    """The values a shared stage reads (READS), by key."""
    return {key: joint_depth(cfg) if key == "joint_depth" else get_dotted(cfg, key) for key in READS[name]}


def stage_keys(cfg: dict) -> dict[str, str]:
    """Each stage's cache key: the hash of exactly what it depends on (including upstream keys)."""
    d, a = cfg["data"], cfg["adapt"]
    source_reads = stage_reads("source", cfg)
    if cfg["model"]["name"] != "scratch":
        source_reads["model"] = {"name": fingerprint(cfg["model"]["name"])}  # the model's files, not its name
    source = config_hash("source", *source_reads.values())
    align = config_hash("align", source, *stage_reads("align", cfg).values())
    finetune = config_hash("finetune", source, *stage_reads("finetune", cfg).values())
    vocab = config_hash("vocab", source, d["target_corpus"], a["language"], a["vocab_size"], d["max_docs"])
    # Every arm relearns the source model's word embeddings (MiniPost's and MiniJoint's mini-models
    # share them), so the init hangs on the source stage, not on the arm.
    init = config_hash("init", source, vocab, *inits.key_parts(cfg)) if a["init"] in LIBRARY_INITS else None
    through = {"source": source, "align": align}[arms.get(cfg).through[0]]
    adapt = config_hash("adapt", through, finetune, vocab, a, d, cfg["seed"], *([init] if init else []))
    return {"source": source, "align": align, "finetune": finetune, "vocab": vocab, "init": init, "adapt": adapt}


def stage_dir(name: str, cfg: dict, cache_dir: str | Path) -> Path:
    return Path(cache_dir) / name / stage_keys(cfg)[name]


def stage_done(name: str, cfg: dict, cache_dir: str | Path) -> bool:
    return valid(stage_dir(name, cfg, cache_dir))


def run_stage(name: str, cfg: dict, cache_dir: str | Path) -> dict:
    """Compute a shared stage unless it is cached; return its stats (compute and metrics)."""
    out = stage_dir(name, cfg, cache_dir)
    if not valid(out):
        for upstream in needed_stages(cfg)[: needed_stages(cfg).index(name)]:
            run_stage(upstream, cfg, cache_dir)
        _complete(out, lambda tmp: STAGES[name](cfg, Path(cache_dir), tmp))
    return json.loads((out / "stats.json").read_text())


def run_trial(cfg: dict, cache_dir: str | Path, report: Callable[[dict], None] | None = None) -> dict:
    """Shared stages (cached), then the adaptation (cached too: a finished trial replays its curve)."""
    for name in needed_stages(cfg):
        run_stage(name, cfg, cache_dir)
    out = stage_dir("adapt", cfg, cache_dir)
    if not _complete(out, lambda tmp: _adapt(cfg, Path(cache_dir), tmp, report)) and report:
        for point in json.loads((out / "stats.json").read_text())["curve"]:
            report(point)
    return json.loads((out / "stats.json").read_text())


def _complete(out: Path, compute: Callable[[Path], dict]) -> bool:
    """Build the cache entry `out` from compute(tmp) and its stats.json (its checkpoints dropped);
    False if it was already there."""

    def write(tmp: Path) -> None:
        stats = compute(tmp)
        if distributed()[0] == 0:
            (tmp / "stats.json").write_text(json.dumps(stats, indent=1))
            shutil.rmtree(tmp / "checkpoint", ignore_errors=True)

    return build(out, write)


def _source(cfg: dict, cache_dir: Path, out: Path) -> dict:
    m, p, d = cfg["model"], cfg["pretrain"], cfg["data"]
    rank, world = distributed()
    texts = data.read_corpus(d["source_corpus"], SOURCE_LANGUAGE, d["max_docs"])
    if m["name"] == "scratch":
        tokenizer = cached_tokenizer(
            cache_dir / "vocab" / config_hash("scratch", m["family"], m["vocab_size"], d["source_corpus"], d["max_docs"]),
            lambda: canonical(empty_tokenizer(m["family"]).train_new_from_iterator(texts, m["vocab_size"], show_progress=False)),
        )
        model = build_mlm(
            m["family"],
            tokenizer,
            hidden=m["hidden"],
            layers=m["layers"],
            heads=m["heads"],
            ffn=m["ffn"],
            max_len=d["seq_len"],
            seed=cfg["seed"],
        )
    else:
        torch.manual_seed(cfg["seed"])  # a missing head is initialised at random: make that reproducible
        model, tokenizer = load_mlm(m["name"])
    model.to(device())
    blocks = token_blocks(tokenizer, texts, d["seq_len"], cache_dir)
    held, blocks = _held_out(blocks, tokenizer, p["batch_size"])
    batches = mlm_batches(blocks, tokenizer, p["batch_size"], cfg["seed"], rank, world, device())
    stats = {"before": mlm_eval(model, held, cfg["precision"])}
    common = dict(lr=p["lr"], warmup=p["warmup"], eval_every=p["eval_every"], checkpoint_every=200, precision=cfg["precision"])
    if p["head_steps"]:
        trainable(model, False)
        trainable(mlm_head(model), True)
        model.get_input_embeddings().weight.requires_grad_(False)  # the decoder is tied to it
        head = train(
            model,
            lambda b: mlm_loss(model, b),
            batches,
            steps=p["head_steps"],
            desc="head restore",
            evaluate=lambda: mlm_eval(model, held, cfg["precision"]),
            checkpoint_dir=out / "checkpoint" / "head",
            **common,
        )
        stats["head"] = head
    trainable(model, True)
    depth = joint_depth(cfg)
    mini_head = new_head(model) if depth else None
    if p["steps"]:
        both = nn.ModuleList([model, mini_head] if depth else [model])
        loss = joint_loss(model, mini_head, depth, p["joint_weight"]) if depth else (lambda b: mlm_loss(model, b))
        stats["pretrain"] = train(
            both,
            loss,
            batches,
            steps=p["steps"],
            desc="pretrain",
            evaluate=lambda: mlm_eval(model, held, cfg["precision"]),
            checkpoint_dir=out / "checkpoint" / "body",
            **common,
        )
    stats["after"] = mlm_eval(model, held, cfg["precision"])
    stats.update(_compute_total(stats, "head", "pretrain"))
    stats.update(stats["after"])
    if rank == 0:
        _save(model, tokenizer, out / "model")
    if depth:
        mini = mini_model(model, depth, mini_head)
        stats["mini_after"] = mlm_eval(mini, held, cfg["precision"])
        if rank == 0:
            _save(mini, tokenizer, out / "mini")
    return stats


def _align(cfg: dict, cache_dir: Path, out: Path) -> dict:
    a, d = cfg["align"], cfg["data"]
    rank, world = distributed()
    source = stage_dir("source", cfg, cache_dir) / "model"
    full = AutoModelForMaskedLM.from_pretrained(source).to(device())
    tokenizer = AutoTokenizer.from_pretrained(source)
    mini = minipost_model(full, cfg["adapt"]["depth"], a["layers"], a["init"], cfg["seed"]).to(device())
    blocks = token_blocks(tokenizer, data.read_corpus(d["source_corpus"], SOURCE_LANGUAGE, d["max_docs"]), d["seq_len"], cache_dir)
    held, blocks = _held_out(blocks, tokenizer, a["batch_size"])
    # How well the mini-model stands in for the big one, before and after: a badly aligned mini-model
    # shows here, before any language is adapted through it.
    stats = {
        "depth": cfg["adapt"]["depth"],
        "full": mlm_eval(full, held, cfg["precision"]),
        "before": {**mlm_eval(mini, held, cfg["precision"]), "agreement": agreement(full, mini, held, cfg["precision"])},
    }
    objective = (lambda b: distill_loss(full, mini, b)) if a["objective"] == "distill" else (lambda b: mlm_loss(mini, b))
    stats.update(
        train(
            mini,
            objective,
            mlm_batches(blocks, tokenizer, a["batch_size"], cfg["seed"], rank, world, device()),
            steps=a["steps"],
            lr=a["lr"],
            warmup=a["warmup"],
            desc="align",
            checkpoint_dir=out / "checkpoint",
            checkpoint_every=200,
            precision=cfg["precision"],
        )
    )
    stats.update(mlm_eval(mini, held, cfg["precision"]), agreement=agreement(full, mini, held, cfg["precision"]))
    if rank == 0:
        _save(mini, tokenizer, out / "mini")
    return stats


def _finetune(cfg: dict, cache_dir: Path, out: Path) -> dict:
    f, d = cfg["finetune"], cfg["data"]
    rank, world = distributed()
    source = stage_dir("source", cfg, cache_dir) / "model"
    tokenizer = AutoTokenizer.from_pretrained(source)
    train_items = data.read_task(d["task"], SOURCE_LANGUAGE, "train")
    task = task_module(cfg)
    torch.manual_seed(cfg["seed"])  # the new task head: the same init whether or not other stages ran here
    model = task.new_model(source, train_items).to(device())
    dev, test = (
        task.eval_set(tokenizer, model, d["task"], SOURCE_LANGUAGE, s, n, d["seq_len"]) for s, n in (("dev", d["max_eval"]), ("test", 0))
    )
    batches = tasks.task_batches(
        task.train_set(tokenizer, model, train_items, d["seq_len"]), tokenizer, f["batch_size"], cfg["seed"], rank, world
    )
    stats = train(
        model,
        lambda batch: model(**batch).loss,
        batches,
        steps=f["steps"],
        lr=f["lr"],
        warmup=f["warmup"],
        evaluate=lambda: task.evaluate(model, dev, tokenizer, precision=cfg["precision"]),
        eval_every=max(f["steps"] // 5, 1),
        desc="finetune",
        checkpoint_dir=out / "checkpoint",
        checkpoint_every=200,
        precision=cfg["precision"],
    )
    stats.update(task.evaluate(model, test, tokenizer, precision=cfg["precision"]))
    if rank == 0:
        _save(model, tokenizer, out / task.FOLDER)
    return stats


def _adapt(cfg: dict, cache_dir: Path, out: Path, report: Callable[[dict], None] | None) -> dict:
    a, d = cfg["adapt"], cfg["data"]
    lang = a["language"]
    rank, world = distributed()
    source = stage_dir("source", cfg, cache_dir)
    stage, folder = arms.get(cfg).through
    through = stage_dir(stage, cfg, cache_dir) / folder
    seed = a["seed"]
    texts = data.read_corpus(d["target_corpus"], lang, d["max_docs"])
    source_tokenizer = AutoTokenizer.from_pretrained(source / "model")
    tokenizer = target_tokenizer(cfg, cache_dir, source_tokenizer, texts)
    body = AutoModelForMaskedLM.from_pretrained(through)
    weight, bias, shared, init_cost = _new_rows(cfg, cache_dir, body, source_tokenizer, tokenizer, texts)
    splice(body, weight, bias)
    only_embeddings_trainable(body)
    if shared and not a["train_shared"]:
        keep_rows(body, list(shared))
    body.to(device())

    finetuned = stage_dir("finetune", cfg, cache_dir)
    task = task_module(cfg)
    model = task.load(finetuned / task.FOLDER)
    splice(model, weight)
    model.to(device())
    dev, test = (
        task.eval_set(tokenizer, model, d["task"], lang, s, n, d["seq_len"]) for s, n in (("dev", d["max_eval"]), ("test", d["max_test"]))
    )

    def zero_shot() -> dict:
        """Dev accuracy (what choices are made on) and test accuracy (what is reported) at this point."""
        with torch.no_grad():
            model.get_input_embeddings().weight.copy_(body.get_input_embeddings().weight)
        on_test = task.evaluate(model, test, tokenizer, precision=cfg["precision"])
        return {**task.evaluate(model, dev, tokenizer, precision=cfg["precision"]), **{f"test_{k}": v for k, v in on_test.items()}}

    blocks = token_blocks(tokenizer, texts, d["seq_len"], cache_dir)
    batches = mlm_batches(blocks, tokenizer, a["batch_size"], seed, rank, world, device(), a["mask_rate"])
    stats = train(
        body,
        lambda b: mlm_loss(body, b),
        batches,
        steps=a["steps"],
        lr=a["lr"],
        warmup=a["warmup"],
        evaluate=zero_shot,
        eval_every=a["eval_every"],
        on_eval=report,
        checkpoint_dir=out / "checkpoint",
        checkpoint_every=a["eval_every"],
        desc=f"adapt {lang} {a['method']}",
        precision=cfg["precision"],
    )
    weight, bias = learned(body)
    if rank == 0:
        tokenizer.save_pretrained(out / "embeddings")
        save_file({"weight": weight.cpu().contiguous(), "bias": bias.cpu().contiguous()}, out / "embeddings" / "embeddings.safetensors")
    final = stats["curve"][-1]
    english = json.loads((finetuned / "stats.json").read_text())
    return {
        **stats,
        **{k: final[k] for m in task.METRICS for k in (m, f"test_{m}")},
        **{f"english_{m}": english[m] for m in task.METRICS},
        **task.floor(test),
        "dev_items": len(dev),
        "test_items": len(test),
        "one_off_flops": one_off_flops(cfg, cache_dir),
        **init_cost,
        "overlap_tokens": len(shared or {}),
        "vocab_size": len(tokenizer),
    }


def _new_rows(
    cfg: dict,
    cache_dir: Path,
    body: nn.Module,
    source_tokenizer: PreTrainedTokenizerBase,
    tokenizer: PreTrainedTokenizerBase,
    texts: list[str],
) -> tuple[torch.Tensor, torch.Tensor, dict, dict]:
    """The new vocabulary's (word embeddings, output bias), the rows that hold source vectors (target id
    -> source id), and the init's cost in seconds: random or overlap here, FOCUS or WECHSEL from the
    cached init stage (its cost is what computing it took, whichever trial did)."""
    a = cfg["adapt"]
    if a["init"] not in LIBRARY_INITS:
        shared = shared_tokens(source_tokenizer, tokenizer) if a["init"] == "overlap" else None
        return (*init_embeddings(body, len(tokenizer), shared, a["seed"], a["init_scale"]), shared, {"init_s": 0.0, "init_english_s": 0.0})
    entry = stage_dir("init", cfg, cache_dir)
    source_rows = body.get_input_embeddings().weight.detach()
    _complete(entry, lambda tmp: inits.compute(cfg, cache_dir, tmp, source_rows, source_tokenizer, tokenizer, texts))
    weight, shared, stats = inits.load(entry)
    return weight, shared_bias(body, len(tokenizer), shared), shared, {k: stats[k] for k in ("init_s", "init_english_s")}


def task_module(cfg: dict) -> ModuleType:
    """qa (extractive QA) or tasks (classification), modules with the same functions: what the task's
    English training rows are. The fine-tune, the adaptation and the export all ask here."""
    return qa if data.is_qa(data.read_task(cfg["data"]["task"], SOURCE_LANGUAGE, "train")) else tasks


def one_off_flops(cfg: dict, cache_dir: str | Path) -> int:
    """What the trial's arm pays once, before any language (minimodel.experiment.arms: MiniPost's alignment,
    MiniJoint's second head)."""
    return arms.get(cfg).one_off(cfg, lambda name, c: run_stage(name, c, cache_dir) if stage_done(name, c, cache_dir) else None)


STAGES = {"source": _source, "align": _align, "finetune": _finetune}


def load_embeddings(folder: str | Path) -> tuple[PreTrainedTokenizerBase, torch.Tensor, torch.Tensor]:
    """A language's learned (tokenizer, word embeddings, output bias), as saved by the adapt stage."""
    tensors = load_file(Path(folder) / "embeddings.safetensors")
    return AutoTokenizer.from_pretrained(folder), tensors["weight"], tensors["bias"]


def target_tokenizer(cfg: dict, cache_dir: Path, source_tokenizer: PreTrainedTokenizerBase, texts: list[str]) -> PreTrainedTokenizerBase:
    """The new language's tokenizer, trained once per vocab key: the one every arm and init of it shares."""
    vocab = cache_dir / "vocab" / stage_keys(cfg)["vocab"]
    return cached_tokenizer(vocab, lambda: train_tokenizer(source_tokenizer, texts, cfg["adapt"]["vocab_size"]))


def _held_out(blocks: torch.Tensor, tokenizer: PreTrainedTokenizerBase, batch_size: int) -> tuple[list[dict], torch.Tensor]:
    """A fixed set of masked held-out batches, and the blocks left for training."""
    n = min(HELD_OUT_BLOCKS, len(blocks) // 10)
    if n == 0:
        raise ValueError(f"corpus too small: {len(blocks)} blocks, need at least 10")
    held = mlm_batches(blocks[:n], tokenizer, batch_size, seed=12345)
    return [held(i) for i in range(max(1, n // batch_size))], blocks[n:]


def _compute_total(stats: dict, *parts: str) -> dict:
    done = [stats[p] for p in parts if p in stats]
    return {k: sum(s[k] for s in done) for k in ("flops", "tokens", "wall_s")}


def _save(model, tokenizer: PreTrainedTokenizerBase, folder: Path) -> None:
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
