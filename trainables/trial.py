"""The Tune function trainable: one language, one method, one depth, lr and step budget.

Small trials adapt in the trial's own process (no worker group to start). With resources.workers > 0
the adaptation runs as a TorchTrainer inside the trial, its reports forwarded to Tune by
TuneReportCallback: Ray 2.60 cannot take a TorchTrainer as a Tune trainable (STACK-NOTES).
Every evaluation point goes to Tune (for the searcher and ASHA) and to the trial's MLflow run.
"""
from __future__ import annotations

import uuid
from typing import Callable

import ray.train
import torch
from ray import tune
from ray.train.torch import TorchTrainer
from ray.tune.integration.ray_train import TuneReportCallback

from minimodel import arms, pipeline
from minimodel.plan import Spec
from trainables import tracking


def numbers(metrics: dict) -> dict[str, float]:
    """The scalar metrics of a point or a trial result (curves and nested stats left out)."""
    return {k: v for k, v in metrics.items() if isinstance(v, (int, float)) and not isinstance(v, bool)}


def reporter(sweep: tracking.SweepRun | None, run_id: str | None, emit: Callable[[dict], None],
             last_step: int, logged: set[int]) -> Callable[[dict], None]:
    """A pipeline `report` callback: every point to MLflow (its step added to `logged`), and to Ray all
    but the last one, which `finish` sends with the test metrics (ASHA stops a trial at max_t)."""
    def report(point: dict) -> None:
        if sweep:
            tracking.log_point(sweep, run_id, numbers(point))
            logged.add(point["step"])
        if point["step"] != last_step:
            emit(numbers(point))
    return report


def finish(sweep: tracking.SweepRun | None, run_id: str | None, final: dict, emit: Callable[[dict], None],
           logged: set[int]) -> None:
    """Close the trial's MLflow run, then give Ray the whole result. Points a resumed trial did not
    report again (they were before its checkpoint) are logged from its curve first."""
    if sweep:
        for point in final["curve"]:
            if point["step"] not in logged:
                tracking.log_point(sweep, run_id, numbers(point))
        tracking.log_metrics(sweep, run_id, {k: final[k] for k in tracking.FINAL_METRICS if k in final},
                             tracking.compute_step(final["flops"]))
        tracking.end_run(sweep, run_id)
    emit({**numbers(final), "step": final["curve"][-1]["step"], "final": 1})


def _adapt_worker(config: dict) -> None:
    """train_loop_per_worker of a large trial; every rank reports each point (a Train barrier)."""
    torch.set_num_threads(config["threads"])
    rank0 = ray.train.get_context().get_world_rank() == 0
    sweep = config["sweep"] if rank0 else None
    logged: set[int] = set()
    report = reporter(sweep, config["run_id"], ray.train.report, config["cfg"]["adapt"]["steps"], logged)
    final = pipeline.run_trial(config["cfg"], config["cache_dir"], report)
    finish(sweep, config["run_id"], final, ray.train.report, logged)


def adapt(config: dict, spec: Spec, cache_dir: str, storage_path: str, sweep: tracking.SweepRun | None = None) -> None:
    """Tune trainable. config holds the sampled values (adapt.method, adapt.language and the search
    keys), or a grid row of them under "point"."""
    values = dict(config.get("point", config))
    method, language = values.pop("adapt.method"), values.pop("adapt.language")
    cfg = spec.config(method, language, values)
    a, res = cfg["adapt"], spec.resources
    trial_id = tune.get_context().get_trial_id()
    run_id = None
    if sweep:
        tags = {"kind": "trial", "key": trial_id, "method": method, "language": language,
                "depth": str(a["depth"]) if method != "standard" else "full", "init": a["init"],
                "arm": arms.arm(cfg), "baseline": arms.baseline(cfg), "seed": str(a["seed"]),
                "condition": arms.describe(cfg, spec.conditions), "config": arms.describe(cfg, spec.tuned),
                "model": cfg["model"]["name"], "adapt_key": pipeline.stage_keys(cfg)["adapt"],
                "cached": str(pipeline.stage_done("adapt", cfg, cache_dir)).lower()}
        params = {"method": method, "language": language, "depth": a["depth"], "lr": a["lr"], "steps": a["steps"],
                  **tracking.flatten(cfg)}
        run_id = tracking.start_child(sweep, f"{tags['arm']} {language} seed {a['seed']} {trial_id}", tags, params)

    if res["workers"]:
        per_worker = {"CPU": res["cpus_per_worker"], **({"GPU": res["gpus_per_worker"]} if res["gpus_per_worker"] else {})}
        trainer = TorchTrainer(
            _adapt_worker,
            train_loop_config={"cfg": cfg, "cache_dir": cache_dir, "sweep": sweep, "run_id": run_id,
                               "threads": max(1, int(res["cpus_per_worker"]))},
            scaling_config=ray.train.ScalingConfig(num_workers=res["workers"], use_gpu=bool(res["gpus_per_worker"]),
                                                   resources_per_worker=per_worker),
            run_config=ray.train.RunConfig(name=f"{spec.name}-trial-{trial_id}-{uuid.uuid4().hex[:6]}",
                                           storage_path=storage_path, callbacks=[TuneReportCallback()]),
        )
        trainer.fit()
    else:
        torch.set_num_threads(max(1, int(res["cpus"])))
        logged: set[int] = set()
        final = pipeline.run_trial(cfg, cache_dir, reporter(sweep, run_id, tune.report, a["steps"], logged))
        finish(sweep, run_id, final, tune.report, logged)
