"""A sweep's trials as models: find a trial's MLflow run, rebuild its config, register its export.

An export is logged (MLflow's transformers flavour) into the trial's own run and registered as a
version of a named model, so the registry's version page links back to the trial that produced it.
"""

from __future__ import annotations

import copy
import re
from pathlib import Path

from mlflow.entities import Run
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient

from minimodel.experiment import pipeline
from minimodel.experiment.config import DEFAULTS, flatten, set_dotted, trial_config
from trainables.tracking import TrackingError, latest_sweep


def trial_run(uri: str, experiment: str, trial: str | None, language: str, method: str | None = None) -> Run:
    """The run of trial `trial` (a Tune trial id or an MLflow run id) in an experiment, or, without
    one, the finished trial of the latest sweep with the best final dev accuracy for `language`
    (among `method`'s trials when given)."""
    client = MlflowClient(tracking_uri=uri)
    sweep = latest_sweep(uri, experiment)
    if trial:
        runs = client.search_runs(
            [sweep.experiment_id], f"tags.kind = 'trial' and tags.key = '{trial}'", order_by=["attributes.start_time DESC"], max_results=1
        )
        if not runs and re.fullmatch(r"[0-9a-f]{32}", trial):
            try:
                runs = [client.get_run(trial)]
            except MlflowException:
                runs = []
        if not runs:
            raise TrackingError(f"--trial {trial}: no trial run with that id in experiment {experiment!r} at {uri}")
        run = runs[0]
        if run.data.tags.get("language") != language:
            raise TrackingError(f"--trial {trial}: that trial adapted {run.data.tags.get('language')!r}, not {language!r}")
        return run
    query = (
        f"tags.mlflow.parentRunId = '{sweep.run_id}' and tags.kind = 'trial' and tags.language = '{language}' "
        "and attributes.status = 'FINISHED'" + (f" and tags.method = '{method}'" if method else "")
    )
    runs = client.search_runs([sweep.experiment_id], query, order_by=["metrics.accuracy DESC"], max_results=1)
    if not runs:
        which = f"{method} trial" if method else "trial"
        raise TrackingError(f"--best: no finished {which} for language {language!r} in the latest sweep of {experiment!r} at {uri}")
    return runs[0]


def run_config(run: Run) -> dict:
    """The trial config a run was logged with (its params are the flattened config, as strings),
    checked against the adapt cache key the run recorded."""
    cfg = copy.deepcopy(DEFAULTS)
    for dotted, default in flatten(DEFAULTS).items():
        if dotted in run.data.params:
            set_dotted(cfg, dotted, _typed(run.data.params[dotted], default))
    cfg = trial_config(cfg)
    recorded = run.data.tags.get("adapt_key")
    if recorded and pipeline.stage_keys(cfg)["adapt"] != recorded:
        raise TrackingError(
            f"run {run.info.run_id}: its params do not rebuild its trial (adapt key "
            f"{pipeline.stage_keys(cfg)['adapt']}, recorded {recorded}); logged by another version?"
        )
    return cfg


def _typed(text: str, default: object) -> object:
    if isinstance(default, bool):
        return text == "True"
    if isinstance(default, int):
        return int(text)
    return float(text) if isinstance(default, float) else text


def register(uri: str, run_id: str, folder: str, name: str, task: str, tags: dict[str, str]) -> str:
    """Log an exported folder into the trial's run and register it as a new version of model `name`;
    returns the version.

    A classifier is logged with MLflow's transformers flavour (a text-classification pipeline, which
    mlflow.transformers.load_model gives back). Transformers 5 has no question-answering pipeline,
    on which that flavour is built, so a QA folder is logged as the run's artifacts (model/) and
    registered from there: AutoModelForQuestionAnswering loads the downloaded folder."""
    client = MlflowClient(tracking_uri=uri)
    if task == "question-answering":
        client.log_artifacts(run_id, folder, "model")
        if not client.search_registered_models(f"name = '{name}'"):
            client.create_registered_model(name)
        source = f"{client.get_run(run_id).info.artifact_uri}/model"
        version = str(client.create_model_version(name, source, run_id=run_id).version)
    else:
        version = _log_pipeline(uri, run_id, folder, name, task)
    for key, value in tags.items():
        client.set_model_version_tag(name, version, key, value)
    return version


def _log_pipeline(uri: str, run_id: str, folder: str, name: str, task: str) -> str:
    import mlflow  # the fluent API is the one that logs flavours; it is pointed at `uri` explicitly
    import mlflow.transformers
    import torch
    import transformers
    from huggingface_hub import ModelCard

    mlflow.set_tracking_uri(uri)
    requirements = [f"transformers=={transformers.__version__}", f"torch=={torch.__version__.split('+')[0]}"]
    with mlflow.start_run(run_id=run_id):
        info = mlflow.transformers.log_model(
            transformers.pipeline(task, model=folder),
            name="model",
            registered_model_name=name,
            pip_requirements=requirements,
            model_card=ModelCard((Path(folder) / "README.md").read_text()),
        )
    return str(info.registered_model_version)
