"""What a sweep's terminal shows: its own lines, not Ray's internals (docs/logs.md lists the knobs).

By default the driver prints one line when a shared stage starts and ends, one per evaluation, one
per finished trial and the frontier table; on a terminal each running stage and trial also gets one
live bar. Ray's INFO lines and its known-harmless error lines stay in the log files Ray writes for
every process anyway (<RAY_TMPDIR>/ray/session_latest/logs); `minimodel sweep --verbose` forwards
them all as before. Everything here sets knobs Ray, Train, Tune, transformers, Optuna and MLflow
offer, and must run before `ray` is imported: Ray reads its environment at import.
"""

from __future__ import annotations

import os
import sys

# Lines Ray forwards from its own processes that say nothing is wrong and that no log level turns
# off: a Train controller's C++ notice on every run, and each Train worker's "Reporting training
# result" (Ray 2.60 logs it through a logger named after its file, which Train's LoggingConfig does
# not reach). Ray's log deduplicator drops the lines matching RAY_DEDUP_LOGS_SKIP_REGEX on the
# driver; the workers' own log files keep them.
HARMLESS = (r"core_worker\.cc.*PreemptionWatcher", r"Reporting training result \d+: TrainingReport\(")
VERBOSE_ENV = "MINIMODEL_VERBOSE"


def quiet_driver(verbose: bool) -> None:
    """Set the driver process's environment (before `import ray`) for a quiet or a verbose sweep."""
    os.environ[VERBOSE_ENV] = "1" if verbose else "0"
    if verbose:
        return
    os.environ.setdefault("RAY_DEDUP_LOGS_SKIP_REGEX", "|".join(HARMLESS))
    os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")  # Tune's new output prints its config table at any verbosity
    os.environ.setdefault("MLFLOW_LOGGING_LEVEL", "WARNING")
    if not sys.stdout.isatty():  # a log file or `ray job logs`: no colour codes, no redrawn bars
        os.environ.setdefault("RAY_COLOR_PREFIX", "0")


def worker_env() -> dict[str, str]:
    """Environment every Ray worker of the sweep gets."""
    env = {
        "TRANSFORMERS_VERBOSITY": "error",
        # Ray Train re-sends a worker's print() through its logger as well as to stdout (every line twice).
        "RAY_TRAIN_ENABLE_PRINT_PATCH": "0",
        VERBOSE_ENV: os.environ.get(VERBOSE_ENV, "0"),
    }
    if not verbose():
        env["HF_HUB_DISABLE_PROGRESS_BARS"] = "1"  # transformers' loading and saving bars, forwarded line by line
        if not sys.stdout.isatty():
            env["TQDM_DISABLE"] = "1"
    return env


def verbose() -> bool:
    return os.environ.get(VERBOSE_ENV) == "1"


def train_level() -> str:
    """Ray Train's console log level (its system log files keep every level): "Reporting training
    result", worker-group start and the autoscaler's resource-request retries are INFO and WARNING."""
    return "INFO" if verbose() else "ERROR"


def quiet_optuna() -> None:
    """Optuna's INFO lines ("A new study created in memory") on the driver, unless --verbose."""
    if not verbose():
        import optuna

        optuna.logging.set_verbosity(optuna.logging.WARNING)
