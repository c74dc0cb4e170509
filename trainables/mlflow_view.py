"""The MLflow UI page a sweep's printed URL opens: its trials, one dev-accuracy-versus-GFLOPs chart per
language, and the frontier table and plot as the sweep run's description.

MLflow 3.17's runs page keeps named "saved views" (Runs tab, Views) as experiment tags
`mlflow.sharedViewState.<key>` whose value is {name, createdAt, updatedAt, state}, state being the
page's search and chart settings as a JSON string; `?viewStateShareKey=<key>` opens one. A line chart
shows every run that has its metric, so each trial also logs its dev accuracy under a per-language
name (language_metric) and each language's chart shows that language's trials only. docs/mlflow-ui.md
says what the UI reads and how it was checked.
"""

from __future__ import annotations

import json
import re
import time
from pathlib import Path
from typing import TYPE_CHECKING

from mlflow.utils.validation import MAX_EXPERIMENT_TAG_VAL_LENGTH, MAX_TAG_VAL_LENGTH

if TYPE_CHECKING:  # tracking logs language_metric: no import cycle at run time
    from trainables.tracking import SweepRun

VIEW_TAG = "mlflow.sharedViewState."
NOTE_TAG = "mlflow.note.content"  # a run's description on its page


def language_metric(language: str) -> str:
    """The trial metric a language's chart plots (the trial's dev accuracy)."""
    return f"dev_accuracy/{language}"


def _chart(language: str, section: str) -> dict:
    """A line chart card of MLflow's runs page: the language's curves against the MLflow step (GFLOPs)."""
    metric = language_metric(language)
    return {
        "uuid": f"frontier-{language}",
        "type": "LINE",
        "runsCountToCompare": 1000,
        "metricSectionId": section,
        "deleted": False,
        "isGenerated": False,
        "displayName": f"{language}: dev accuracy vs adaptation GFLOPs",
        "metricKey": metric,
        "selectedMetricKeys": [metric],
        "lineSmoothness": 0,
        "xAxisScaleType": "linear",
        "scaleType": "linear",
        "range": {},
        "xAxisKey": "step",
        "selectedXAxisMetricKey": "",
        "displayPoints": True,
        "yAxisKey": "METRIC",
        "yAxisExpressions": [],
        "ignoreOutliers": False,
        "useGlobalXaxisKey": False,
        "useGlobalLineSmoothing": False,
    }


def view_state(sweep: SweepRun, languages: list[str]) -> dict:
    """The runs page's state: this sweep's trials only, all shown, and the charts in one section."""
    section = "frontier"
    return {
        "searchFilter": f"tags.kind = 'trial' and tags.mlflow.parentRunId = '{sweep.run_id}'",
        # any order but start time: the page then lists the trials themselves, not folded under the sweep run
        "orderByKey": "tags.`language`",
        "orderByAsc": True,
        "startTime": "ALL",
        "lifecycleFilter": "Active",
        "datasetsFilter": [],
        "modelVersionFilter": "All Runs",
        "runsHiddenMode": "SHOW_ALL",
        "hideEmptyCharts": True,
        "isAccordionReordered": True,
        "compareRunSections": [
            {
                "uuid": section,
                "name": "Dev accuracy vs adaptation GFLOPs (MLflow step)",
                "display": True,
                "isReordered": True,
                "deleted": False,
                "isGenerated": False,
            }
        ],
        "compareRunCharts": [_chart(language, section) for language in languages],
    }


def save_view(sweep: SweepRun, name: str, languages: list[str]) -> str:
    """Save the sweep's view in its experiment (replacing an earlier one of the same sweep); its key.
    A chart costs about 600 characters of the tag's 20000: past some 30 languages the first that fit
    get one (the others' trials are still listed, and their metric can be charted by hand)."""
    now = int(time.time() * 1000)
    for count in range(len(languages), -1, -1):
        state = json.dumps(view_state(sweep, languages[:count]))
        value = json.dumps({"name": name, "createdAt": now, "updatedAt": now, "state": state})
        if len(value) <= MAX_EXPERIMENT_TAG_VAL_LENGTH:
            break
    sweep.client().set_experiment_tag(sweep.experiment_id, VIEW_TAG + sweep.run_id, value)
    return sweep.run_id


def url(base: str, sweep: SweepRun) -> str:
    """The runs page of the sweep's experiment in the chart view of its saved view, in MLflow's
    model-training mode (the UI otherwise opens experiments in its GenAI mode)."""
    return (
        f"{base.rstrip('/')}/#/experiments/{sweep.experiment_id}/runs?viewStateShareKey={sweep.run_id}"
        "&compareRunsMode=CHART&workflowType=machine_learning"
    )


def description(image: str, markdown: str, rest: str, limit: int = MAX_TAG_VAL_LENGTH) -> str:
    """The plot, then the table's leading blocks (a language's header with its whole table) that fit
    in MLflow's tag limit, then `rest` (where the full table is) if any were left out: MLflow itself
    would cut the text at the limit, mid-row."""
    blocks = re.split(r"\n\n(?=\*\*)", markdown)
    for count in range(len(blocks), -1, -1):
        text = "\n\n".join([image, *blocks[:count], *([rest] if count < len(blocks) else [])])
        if len(text) <= limit:
            return text
    return image


def describe_sweep(sweep: SweepRun, markdown: str, plot: Path, table: Path) -> None:
    """The sweep run's description: the frontier plot (served from its artifacts), then the table."""
    link = f"get-artifact?path={{}}&run_uuid={sweep.run_id}"
    image = f"![frontier plot]({link.format(plot.name)})"
    whole = f"[the whole table]({link.format(table.name)}) ({table.name} in this run's artifacts)"
    rest = f"The other languages' tables do not fit in a description: {whole}."
    sweep.client().set_tag(sweep.run_id, NOTE_TAG, description(image, markdown, rest))
