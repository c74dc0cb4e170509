"""The Tune function trainable: one language, one method, one depth, lr and step budget.

Small trials adapt in the trial's own process (no worker group to start). With resources.workers > 0
the adaptation runs as a TorchTrainer inside the trial, its reports forwarded to Tune by
TuneReportCallback: Ray 2.60 cannot take a TorchTrainer as a Tune trainable (docs/STACK.md).
Every evaluation point goes to Tune (for the searcher and ASHA), to the trial's MLflow run and as one
line to the driver's terminal. The trial's MLflow run is tagged with the Ray node it ran on.
"""

from __future__ import annotations

import json
import os
import uuid
from dataclasses import dataclass, field
from typing import Callable

import ray.train
import torch
from ray import tune
from ray.train.torch import TorchTrainer
from ray.tune.integration.ray_train import TuneReportCallback

from minimodel.experiment import arms, cache, pipeline
from minimodel.experiment.config import flatten, short_values
from minimodel.experiment.plan import Spec
from trainables import logs, progress, tracking


VARIANT = "variant"  # Optuna's draw between a method and an arm added as a form of it (tuner.define_space)
MEMORY_ERRORS = ("out of memory", "not enough memory", "can't allocate memory", "cannot allocate memory")


class TrialOutOfMemory(RuntimeError):
    """A trial's batch did not fit in memory: the message names the setting to lower."""


def numbers(metrics: dict) -> dict[str, float]:
    """The scalar metrics of a point or a trial result (curves and nested stats left out)."""
    return {k: v for k, v in metrics.items() if isinstance(v, (int, float)) and not isinstance(v, bool)}


def trial_run(spec: Spec, config: dict, cache_dir: str, trial_id: str) -> tuple[dict, str, dict, dict]:
    """(trial config, MLflow run name, tags, params) of a Tune config: the sampled values
    (adapt.method, adapt.language and the search keys), or a grid row of them under "point"."""
    values = dict(config.get("point", config))
    values.pop(VARIANT, None)  # adapt.method holds the arm it drew
    method, language = values.pop("adapt.method"), values.pop("adapt.language")
    cfg = spec.config(method, language, values)
    a = cfg["adapt"]
    tags = {
        "kind": "trial",
        "key": trial_id,
        "method": method,
        "language": language,
        "depth": "full" if arms.get(cfg).full_model else str(a["depth"]),
        "init": a["init"],
        "arm": arms.arm(cfg),
        "baseline": arms.baseline(cfg),
        "seed": str(a["seed"]),
        "condition": short_values(cfg, spec.conditions),
        "config": short_values(cfg, spec.tuned),
        "model": cfg["model"]["name"],
        "adapt_key": pipeline.stage_keys(cfg)["adapt"],
        "cached": str(pipeline.stage_done("adapt", cfg, cache_dir)).lower(),
    }
    params = {"method": method, "language": language, "depth": a["depth"], "lr": a["lr"], "steps": a["steps"], **flatten(cfg)}
    return cfg, f"{tags['arm']} {language} seed {a['seed']} {trial_id}", tags, params


@dataclass
class Logbook:
    """A trial's MLflow run, written live while the tracking store answers. After a failed write
    nothing more is tried until the trial ends, when the whole run is written again from its result
    (kept in the cache either way): a tracking server going away costs no compute and loses nothing."""

    sweep: tracking.SweepRun | None
    name: str = ""
    tags: dict = field(default_factory=dict)
    params: dict = field(default_factory=dict)
    run_id: str | None = None
    broken: bool = False
    logged: set[int] = field(default_factory=set)

    def write(self, fn: Callable, *args) -> None:
        if not self.sweep or self.broken:
            return
        try:
            fn(*args)
        except Exception as e:  # MLflow's and requests' errors alike: the store did not take it
            self.broken = True
            print(
                f"MLflow at {self.sweep.tracking_uri} did not answer ({type(e).__name__}); the trial goes on, "
                "its results are kept in the cache and logged when it is back",
                flush=True,
            )

    def start(self) -> None:
        self.write(lambda: setattr(self, "run_id", tracking.start_child(self.sweep, self.name, self.tags, self.params)))


def reporter(book: Logbook, emit: Callable[[dict], None], last_step: int, label: str) -> Callable[[dict], None]:
    """A pipeline `report` callback: a progress line, every point to MLflow, and to Ray all but the
    last one, which `finish` sends with the test metrics (ASHA stops a trial at max_t)."""

    def report(point: dict) -> None:
        print(
            f"{label} step {point['step']}/{last_step}: dev accuracy {point.get('accuracy', float('nan')):.3f}, "
            f"{point.get('flops', 0):.3g} FLOPs",
            flush=True,
        )
        book.write(tracking.log_point, book.sweep, book.run_id, numbers(point), book.tags.get("language"))
        if not book.broken:
            book.logged.add(point["step"])
        if point["step"] != last_step:
            emit(numbers(point))

    return report


def finish(book: Logbook, final: dict, emit: Callable[[dict], None]) -> None:
    """Close the trial's MLflow run, then give Ray the whole result (with logged = 0 if MLflow did not
    take it: the driver logs it from the cache later). Points a resumed trial did not report again
    (they were before its checkpoint) are logged from its curve first."""
    if book.sweep and not book.broken:
        for point in final["curve"]:
            if point["step"] not in book.logged:
                book.write(tracking.log_point, book.sweep, book.run_id, numbers(point), book.tags.get("language"))
        book.write(
            tracking.log_metrics,
            book.sweep,
            book.run_id,
            {k: final[k] for k in tracking.FINAL_METRICS if k in final},
            tracking.compute_step(final["flops"]),
        )
        book.write(tracking.end_run, book.sweep, book.run_id)
    if book.sweep and book.broken:
        book.broken = False
        book.write(tracking.log_trial, book.sweep, book.name, book.tags, book.params, final)
    emit({**numbers(final), "step": final["curve"][-1]["step"], "final": 1, "logged": int(not book.broken)})


def run_counted(cfg: dict, cache_dir: str, report: Callable[[dict], None]) -> dict:
    """pipeline.run_trial, with the steps a killed earlier attempt had computed past its last
    checkpoint counted (restarts, recomputed_steps, recomputed_flops; `flops` counts every step once)
    and an out-of-memory error turned into one naming the setting to lower."""
    folder = cache.partial(pipeline.stage_dir("adapt", cfg, cache_dir)) / "checkpoint"
    counts_file = folder / "recomputed.json"
    counts = json.loads(counts_file.read_text()) if counts_file.exists() else {"restarts": 0, "recomputed_steps": 0}
    loop, step = progress.reached(folder / "reached.json")
    if loop.startswith("adapt") and step:
        state = folder / "state.json"
        resumed_at = json.loads(state.read_text())["step"] if state.exists() else 0
        counts = {"restarts": counts["restarts"] + 1, "recomputed_steps": counts["recomputed_steps"] + max(0, step - resumed_at)}
        folder.mkdir(parents=True, exist_ok=True)
        counts_file.write_text(json.dumps(counts))
    progress.use_ray_bars(folder / "reached.json")
    try:
        final = pipeline.run_trial(cfg, cache_dir, report)
    except (torch.OutOfMemoryError, MemoryError, RuntimeError) as e:
        if isinstance(e, RuntimeError) and not any(m in str(e).lower() for m in MEMORY_ERRORS):
            raise
        a = cfg["adapt"]
        raise TrialOutOfMemory(
            f"out of memory in trial {a['method']} {a['language']} at batch size {a['batch_size']} x "
            f"{cfg['data']['seq_len']} tokens: lower trial.adapt.batch_size "
            f"(or data.seq_len, or give trials more memory)"
        ) from None
    per_step = final["flops"] / max(final["steps"], 1)
    return {**final, **counts, "recomputed_flops": counts["recomputed_steps"] * per_step}


def _adapt_worker(config: dict) -> None:
    """train_loop_per_worker of a large trial; every rank reports each point (a Train barrier)."""
    torch.set_num_threads(config["threads"])
    book = config["book"] if ray.train.get_context().get_world_rank() == 0 else Logbook(None)
    report = reporter(book, ray.train.report, config["cfg"]["adapt"]["steps"], config["label"])
    final = run_counted(config["cfg"], config["cache_dir"], report)
    finish(book, final, ray.train.report)


def adapt(config: dict, spec: Spec, cache_dir: str, storage_path: str, sweep: tracking.SweepRun | None = None) -> None:
    """Tune trainable. config holds the sampled values (adapt.method, adapt.language and the search
    keys), or a grid row of them under "point"."""
    # A tracking server that went away must cost a trial seconds, not MLflow's minutes of retries.
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "1")
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_TIMEOUT", "20")
    trial_id = tune.get_context().get_trial_id()
    cfg, name, tags, params = trial_run(spec, config, cache_dir, trial_id)
    tags["node"] = ray.get_runtime_context().get_node_id()
    book = Logbook(sweep, name, tags, params)
    if (cache.partial(pipeline.stage_dir("adapt", cfg, cache_dir)) / "checkpoint" / "state.json").exists():
        book.broken = True  # a retry: its run is written whole at the end, points in order (MLflow steps grow)
    book.start()
    try:
        _adapt_in_trial(spec, cfg, cache_dir, storage_path, trial_id, book)
    except BaseException:
        # An attempt that raises ends its run now; one whose process dies is ended by its retry
        # (tracking.start_child) or at the end of the sweep (tracking.close_children).
        if book.run_id:
            book.write(tracking.end_run, book.sweep, book.run_id, "FAILED")
        raise


def _adapt_in_trial(spec: Spec, cfg: dict, cache_dir: str, storage_path: str, trial_id: str, book: Logbook) -> None:
    """The adaptation of one trial attempt: in the trial's process, or as a TorchTrainer inside it."""
    a, res = cfg["adapt"], spec.resources
    label = f"trial {trial_id} {a['method']} {a['language']}"

    if res["workers"]:
        per_worker = {"CPU": res["cpus_per_worker"], **({"GPU": res["gpus_per_worker"]} if res["gpus_per_worker"] else {})}
        trainer = TorchTrainer(
            _adapt_worker,
            train_loop_config={
                "cfg": cfg,
                "cache_dir": cache_dir,
                "book": book,
                "label": label,
                "threads": max(1, int(res["cpus_per_worker"])),
            },
            scaling_config=ray.train.ScalingConfig(
                num_workers=res["workers"], use_gpu=bool(res["gpus_per_worker"]), resources_per_worker=per_worker
            ),
            run_config=ray.train.RunConfig(
                name=f"{spec.name}-trial-{trial_id}-{uuid.uuid4().hex[:6]}",
                storage_path=storage_path,
                callbacks=[TuneReportCallback()],
                logging_config=ray.train.LoggingConfig(logs.train_level()),
            ),
        )
        trainer.fit()
    else:
        torch.set_num_threads(max(1, int(res["cpus"])))
        final = run_counted(cfg, cache_dir, reporter(book, tune.report, a["steps"], label))
        finish(book, final, tune.report)
