"""Ray glue: shared stages as Ray Train jobs, trials as Ray Tune trainables, runs in MLflow.

The method itself lives in `minimodel/` and imports none of Ray, Optuna or MLflow; this package only
schedules it and records what it reports.
"""
