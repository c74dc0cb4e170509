"""Shared stages (source model, MiniPost alignment, English fine-tune) as one Ray Train job.

Every stage a sweep can need is known before the first trial (Spec.stage_configs), so the missing
ones run up front in a single TorchTrainer job over the spec's workers (DDP, gloo on CPU, NCCL on
GPU): the worker group's start-up is paid once per sweep, not once per stage, and trials then only
read the cache. Each stage still gets its own MLflow run with its compute.
"""

from __future__ import annotations

import uuid

import ray.train
import torch
from ray.train.torch import TorchTrainer

from minimodel.experiment import pipeline
from trainables import logs, progress, tracking


def stage_run(name: str, cfg: dict) -> tuple[dict[str, str], dict[str, object]]:
    """MLflow tags and params of a stage run: its params are what its cache key hashes (pipeline.READS),
    the source model's reads included for the stages built on it."""
    tags = {"model": cfg["model"]["name"]}
    if name == "align" or (name == "source" and pipeline.joint_depth(cfg)):
        tags["depth"] = str(cfg["adapt"]["depth"])
        tags["method"] = cfg["adapt"]["method"]
    read = {**pipeline.stage_reads("source", cfg), **pipeline.stage_reads(name, cfg)}
    return tags, tracking.flatten(read)


def summary_line(record: dict) -> str:
    """One line per stage with the numbers that say whether it is good enough to build on: held-out
    English masked accuracy (source), the mini-model's agreement with the full model (align), the
    English task accuracy (finetune)."""
    stats, name = record["stats"], record["name"]
    if name == "source":
        what = f"held-out English masked accuracy {stats['before']['mlm_accuracy']:.3f} -> {stats['mlm_accuracy']:.3f}"
        if "mini_after" in stats:
            what += f", second head {stats['mini_after']['mlm_accuracy']:.3f}"
    elif name == "align":
        what = (
            f"k={stats['depth']}: mini-model masked accuracy {stats['mlm_accuracy']:.3f} "
            f"(full model {stats['full']['mlm_accuracy']:.3f}), "
            f"agrees with the full model on {stats['agreement']:.1%} of predictions "
            f"(before alignment {stats['before']['agreement']:.1%})"
        )
    elif "exact_match" in stats:  # extractive QA, whose accuracy is token F1
        what = f"English test F1 {stats['accuracy']:.3f}, exact match {stats['exact_match']:.3f}"
    else:
        what = f"English test accuracy {stats['accuracy']:.3f}, macro-F1 {stats['macro_f1']:.3f}"
    return f"  {name:<8} {record['key']}  {what}  ({stats['flops']:.3g} FLOPs, {stats['wall_s']:.0f} s)"


def plan(configs: list[dict]) -> list[tuple[str, str, dict]]:
    """Unique (stage, cache key, config) triples in dependency order."""
    seen, out = set(), []
    for cfg in configs:
        keys = pipeline.stage_keys(cfg)
        for name in pipeline.needed_stages(cfg):
            if keys[name] not in seen:
                seen.add(keys[name])
                out.append((name, keys[name], cfg))
    return out


def _stage_worker(config: dict) -> None:
    """train_loop_per_worker: every rank trains its shard of each stage; rank 0 writes the cache."""
    torch.set_num_threads(config["threads"])
    progress.use_ray_bars()
    first = ray.train.get_context().get_world_rank() == 0
    for name, key, cfg in config["todo"]:
        if first:
            print(f"stage {name} {key}: computing", flush=True)
        stats = pipeline.run_stage(name, cfg, config["cache_dir"])
        if first:
            print(f"stage {name} {key}: done in {stats['wall_s']:.0f} s", flush=True)
        ray.train.report({"stage": name, "flops": stats["flops"], "wall_s": stats["wall_s"]})


def run_stages(
    configs: list[dict], cache_dir: str, scaling: dict, storage_path: str, job_name: str, sweep: tracking.SweepRun | None = None
) -> list[dict]:
    """Compute the missing shared stages as one TorchTrainer job; log every stage to MLflow.

    scaling is the spec's `stages:` section (workers, cpus_per_worker, gpus_per_worker). Returns
    one record per stage: name, key, cached (computed by an earlier sweep), its stats, and for the
    stages computed now the job's train_workers and DDP backend.
    """
    stages = plan(configs)
    todo = [s for s in stages if not pipeline.stage_done(s[0], s[2], cache_dir)]
    # TorchTrainer's default process group backend: NCCL with GPUs, gloo on CPUs.
    how = {"train_workers": scaling["workers"], "backend": "nccl" if scaling["gpus_per_worker"] else "gloo"}
    if todo:
        per_worker = {"CPU": scaling["cpus_per_worker"]}
        if scaling["gpus_per_worker"]:
            per_worker["GPU"] = scaling["gpus_per_worker"]
        trainer = TorchTrainer(
            _stage_worker,
            train_loop_config={"todo": todo, "cache_dir": cache_dir, "threads": max(1, int(scaling["cpus_per_worker"]))},
            scaling_config=ray.train.ScalingConfig(
                num_workers=scaling["workers"], use_gpu=bool(scaling["gpus_per_worker"]), resources_per_worker=per_worker
            ),
            # A Train run whose name was used before resumes that run: names must be unique.
            run_config=ray.train.RunConfig(
                name=f"{job_name}-stages-{uuid.uuid4().hex[:8]}",
                storage_path=storage_path,
                logging_config=ray.train.LoggingConfig(logs.train_level()),
            ),
        )
        trainer.fit()
    done = {key for _, key, _ in todo}
    records = []
    for name, key, cfg in stages:
        stats = pipeline.run_stage(name, cfg, cache_dir)  # cached by now: reads its stats
        record = {"name": name, "key": key, "cached": key not in done, "stats": stats, **(how if key in done else {})}
        records.append(record)
        if sweep:
            tags, params = stage_run(name, cfg)
            tags.update(
                kind="stage",
                stage=name,
                key=key,
                cached=str(record["cached"]).lower(),
                **{k: str(record[k]) for k in ("train_workers", "backend") if k in record},
            )
            run_id = tracking.start_child(sweep, f"{name}-{key}", tags, params)
            tracking.log_stats(sweep, run_id, stats)
            tracking.end_run(sweep, run_id)
    return records
