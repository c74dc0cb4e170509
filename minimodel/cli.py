"""The `minimodel` command. Ray and MLflow are imported only by the commands that need them."""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
from pathlib import Path

os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
os.environ.setdefault("RAY_AUTH_MODE", "disabled")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
# Ray folds lines that differ only in numbers from several processes into one "[repeated Nx]" line:
# every trial's evaluation lines and every stage's start and end must reach `ray job logs` as they are.
os.environ.setdefault("RAY_DEDUP_LOGS_ALLOW_REGEX", r"step \d+/\d+: dev accuracy|^stage \S+ \S+: (computing|done)")

from minimodel.experiment.checks import check_resources, machine_resources  # noqa: E402
from minimodel.text.data import DataError  # noqa: E402
from minimodel.errors import UserError, one_line  # noqa: E402
from minimodel.experiment.spec import SpecError, load_spec  # noqa: E402

# Bad input of any kind: one line naming the culprit, exit 2, no traceback.
USER_ERRORS = (UserError, FileNotFoundError)


def cmd_trial(args: argparse.Namespace) -> None:
    """One trial in this process, without Ray: shared stages (cached), then the adaptation."""
    from minimodel.experiment.pipeline import run_trial

    spec = load_spec(args.spec, args.set)
    method = args.method or spec.methods[0]
    if method not in spec.arms():
        raise SpecError(f"--method {method}: the spec's arms are {', '.join(spec.arms())}")
    cfg = spec.config(method, args.language or spec.languages[0])
    cache = Path(spec.storage) / "cache"
    a = cfg["adapt"]
    print(f"trial: {a['method']} {a['language']} depth={a['depth']} init={a['init']} lr={a['lr']} steps={a['steps']}")
    headed = False

    def show(p: dict) -> None:
        nonlocal headed
        second = "macro_f1" if "macro_f1" in p else "exact_match"  # classification, or QA (accuracy is F1)
        if not headed:
            print(f"{'step':>6} {'accuracy':>9} {second:>11} {'GFLOPs':>10} {'tokens':>9} {'wall_s':>8}")
            headed = True
        print(
            f"{p['step']:>6} {p['accuracy']:>9.4f} {p[second]:>11.4f} {p['flops'] / 1e9:>10.1f} {p['tokens']:>9} {p['wall_s']:>8.1f}",
            flush=True,
        )

    result = run_trial(cfg, cache, show)
    summary = {
        k: result[k]
        for k in (
            "test_accuracy",
            "test_macro_f1",
            "test_exact_match",
            "english_accuracy",
            "english_macro_f1",
            "english_exact_match",
            "flops",
            "tokens",
            "wall_s",
            "overlap_tokens",
            "vocab_size",
        )
        if k in result
    }
    print(json.dumps(summary, indent=1))
    print(f"cache: {cache}")


def cmd_export(args: argparse.Namespace) -> None:
    """A trial's adapted model as a standalone Hugging Face folder, optionally registered in MLflow.

    The trial is the spec's (method, language) as `minimodel trial` runs it, or one from MLflow:
    `--trial ID` (a Tune trial id or MLflow run id), `--best` (best final dev accuracy for the language)."""
    from minimodel.experiment import arms, export

    spec = load_spec(args.spec, args.set)
    if args.language not in spec.languages:
        raise SpecError(f"--language {args.language}: the spec's languages are {', '.join(spec.languages)}")
    if args.method and args.method not in spec.arms():
        raise SpecError(f"--method {args.method}: the spec's arms are {', '.join(spec.arms())}")
    run_id = None
    if args.trial or args.best:
        from trainables import registry, tracking

        tracking.check_reachable(spec.tracking_uri)
        run = registry.trial_run(spec.tracking_uri, spec.name, args.trial, args.language, args.method)
        cfg, run_id = registry.run_config(run), run.info.run_id
    elif args.register:
        raise SpecError("--register: needs --trial ID or --best (the model is logged into that trial's MLflow run)")
    else:
        cfg = spec.config(args.method or spec.methods[0], args.language)
    name = re.sub(r"[^A-Za-z0-9_.-]+", "-", f"{spec.name}-{args.language}-{arms.arm(cfg)}").strip("-")
    folder = export.export(cfg, Path(spec.storage) / "cache", args.out or Path("exports") / name, mlm=args.mlm, run_id=run_id)
    print(f"exported {arms.arm(cfg)} {args.language} (seed {cfg['adapt']['seed']}) to {folder}")
    if args.register:
        a = cfg["adapt"]
        tags = {
            "language": a["language"],
            "arm": arms.arm(cfg),
            "method": a["method"],
            "seed": str(a["seed"]),
            "trial": run.data.tags.get("key", run_id),
        }
        version = registry.register(spec.tracking_uri, run_id, str(folder), args.register, export.pipeline_task(folder), tags)
        print(f"registered model {args.register!r} version {version}, logged in run {run_id}")


def cmd_predict(args: argparse.Namespace) -> None:
    """Classify texts or answer questions with an exported folder; JSONL out (stdin JSONL without TEXTs)."""
    from minimodel.experiment.export import predict

    if args.texts:
        rows = [{"question": t, "context": args.context} if args.context is not None else {"text": t} for t in args.texts]
    else:
        rows = []
        for n, line in enumerate(sys.stdin, 1):
            if line.strip():
                try:
                    rows.append(json.loads(line))
                except json.JSONDecodeError as e:
                    raise DataError(f"stdin:{n}: not JSON ({e.msg})") from None
    for row, answer in zip(rows, predict(args.folder, rows)):
        print(json.dumps({**row, **answer}, ensure_ascii=False), flush=True)


def cmd_validate(args: argparse.Namespace) -> None:
    """Check a spec completely (keys, types, ranges, files, languages, depths) and say what it runs."""
    from minimodel.experiment.plan import summary

    spec = load_spec(args.spec, args.set)
    if not os.environ.get("RAY_ADDRESS"):  # bound for a cluster: `minimodel sweep` checks it once Ray is up
        check_resources(
            spec.resources,
            spec.stages,
            machine_resources(),
            "this machine",
            "; a spec for a Ray cluster is checked against it by minimodel sweep (validate skips this with RAY_ADDRESS set)",
        )
    print(summary(spec))
    print(f"{args.spec}: valid")


def cmd_sweep(args: argparse.Namespace) -> None:
    """The whole sweep on Ray: shared stages, Tune trials, MLflow runs, the frontier table."""
    spec = load_spec(args.spec, args.set)
    from trainables import logs

    logs.quiet_driver(args.verbose)  # before Ray is imported
    from trainables.sweep import run

    sys.exit(run(spec, resume=args.resume))


def cmd_confirm(args: argparse.Namespace) -> None:
    """Phase 2 of a tuning spec: each arm's chosen config on fresh seeds, compared by the frontier."""
    spec = load_spec(args.spec, args.set)
    from trainables import logs

    logs.quiet_driver(args.verbose)  # before Ray is imported
    from trainables.confirm import run

    sys.exit(run(spec, args.seeds, args.from_run, resume=args.resume))


def cmd_frontier(args: argparse.Namespace) -> None:
    """The frontier of a finished sweep, read back from MLflow, or recomputed from an evaluations.csv."""
    if not 0 <= args.tolerance < 1:
        raise SpecError(f"--tolerance {args.tolerance:g}: an accuracy difference, at least 0 and below 1 (0.01 is one point)")
    if args.points:
        from minimodel.experiment import frontier_report

        if args.spec or args.experiment or args.run_id:
            raise SpecError("frontier --points: reads everything from the files; give no SPEC, --experiment or --run-id")
        table = frontier_report.read_all_evaluations(args.points)
        folder = Path("frontier") / "points" / "+".join(Path(p).resolve().parent.name for p in args.points)
        folder /= frontier_report.tolerance_folder(args.tolerance) or ""
        frontier_report.report(table, args.out or folder, args.tolerance)
        return
    from trainables.sweep import show_frontier

    if args.spec:
        spec = load_spec(args.spec, args.set)
        uri, experiment = args.tracking_uri or spec.tracking_uri, args.experiment or spec.name
    elif args.experiment:
        uri, experiment = args.tracking_uri or f"sqlite:///{Path.cwd() / 'mlflow.db'}", args.experiment
    else:
        raise SpecError("frontier: give a SPEC, --experiment NAME or --points FILE")
    show_frontier(uri, experiment, args.run_id, args.out, args.tolerance)


def cmd_ui(args: argparse.Namespace) -> None:
    """The MLflow UI and tracking server for a spec's tracking store or --tracking-uri (a file, sqlite
    or PostgreSQL store): `mlflow server` without its job runner, the store checked first."""
    if args.spec:
        spec = load_spec(args.spec, args.set)
        uri, name = args.tracking_uri or spec.tracking_uri, spec.name
    elif args.tracking_uri:
        uri, name = args.tracking_uri, None
    else:
        raise SpecError("ui: give a SPEC or --tracking-uri URI")
    address = f"http://{args.host}:{args.port}"
    if uri.startswith(("http://", "https://")):
        print(f"the tracking server is already a UI: {uri}")
        return
    from trainables import mlflow_view, tracking

    tracking.check_reachable(uri, setting="--tracking-uri" if args.tracking_uri else "tracking_uri")
    try:  # the latest sweep's trials and charts (MLflow 3 otherwise opens on its GenAI overview)
        where = mlflow_view.url(address, tracking.latest_sweep(uri, name)) if name else address
    except tracking.TrackingError:  # no sweep yet
        where = address
    os.environ["MLFLOW_SERVER_ENABLE_JOB_EXECUTION"] = "false"
    command = [
        sys.executable,
        "-m",
        "mlflow",
        "server",
        "--backend-store-uri",
        uri,
        "--host",
        args.host,
        "--port",
        str(args.port),
        "--workers",
        str(args.workers),
        *(["--artifacts-destination", args.artifacts_destination] if args.artifacts_destination else []),
        *(["--app-name", args.app_name] if args.app_name else []),
    ]
    print(f"MLflow UI: {where} (Ctrl-C to stop)", flush=True)
    os.execvp(command[0], command)


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="minimodel", description=__doc__)
    sub = p.add_subparsers(dest="command", required=True)
    trial = sub.add_parser("trial", help="run one adaptation trial locally, without Ray")
    trial.add_argument("spec", help="sweep YAML; its trial: block and first method/language are used")
    trial.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="override a spec key")
    trial.add_argument("--method", help="one of the spec's arms (default: its first method)")
    trial.add_argument("--language", help="target language (default: the spec's first)")
    trial.set_defaults(run=cmd_trial)

    overrides = dict(
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a spec key, e.g. trial.adapt.steps=50 or search.adapt.depth.high=3 (YAML-typed)",
    )
    verbose = dict(action="store_true", help="also print Ray's own INFO lines and known-harmless notices (kept in Ray's log files anyway)")
    validate = sub.add_parser("validate", help="check a sweep spec and say what it would run")
    validate.add_argument("spec", help="sweep YAML")
    validate.add_argument("--set", **overrides)
    validate.set_defaults(run=cmd_validate)

    sweep = sub.add_parser("sweep", help="run a sweep on Ray (local or cluster) and print its frontier")
    sweep.add_argument("spec", help="sweep YAML")
    sweep.add_argument("--set", **overrides)
    sweep.add_argument("--resume", action="store_true", help="continue the latest unfinished run of this sweep")
    sweep.add_argument("--verbose", **verbose)
    sweep.set_defaults(run=cmd_sweep)

    confirm = sub.add_parser("confirm", help="run a tuning sweep's chosen config per arm on fresh seeds, print the frontier")
    confirm.add_argument("spec", help="the tuning sweep's YAML (with a tune: section)")
    confirm.add_argument("--set", **overrides)
    confirm.add_argument("--seeds", type=int, default=3, help="how many fresh seeds (never used in tuning) per config")
    confirm.add_argument("--from", dest="from_run", metavar="RUN_ID", help="the tuning run (default: the latest finished)")
    confirm.add_argument("--resume", action="store_true", help="continue the latest unfinished confirm run")
    confirm.add_argument("--verbose", **verbose)
    confirm.set_defaults(run=cmd_confirm)

    front = sub.add_parser("frontier", help="accuracy-vs-FLOPs frontier and compute-to-match of a sweep, from MLflow")
    front.add_argument("spec", nargs="?", help="sweep YAML (gives the experiment name and tracking URI)")
    front.add_argument("--set", **overrides)
    front.add_argument("--experiment", help="MLflow experiment (default: the spec's name)")
    front.add_argument("--tracking-uri", help="default: the spec's, else sqlite:///./mlflow.db")
    front.add_argument("--run-id", help="parent run of the sweep (default: the latest)")
    front.add_argument(
        "--points",
        metavar="FILE",
        nargs="+",
        help="recompute the frontier from evaluations.csv files (written beside every frontier), without MLflow; "
        "several are read as one study",
    )
    front.add_argument("--out", help="folder for frontier.csv, frontier.md, frontier.png, evaluations.csv")
    front.add_argument(
        "--tolerance",
        type=float,
        default=0.01,
        help="the target is the baseline's plateau minus this accuracy (default 0.01: one point); "
        "a larger one asks what reaching a lower accuracy costs",
    )
    front.set_defaults(run=cmd_frontier)

    exp = sub.add_parser("export", help="write a trial's adapted model as a standalone Hugging Face folder")
    exp.add_argument("spec", help="sweep YAML (its storage holds the trial's cache)")
    exp.add_argument("--set", **overrides)
    exp.add_argument("--language", required=True, help="the target language whose model to export")
    exp.add_argument("--method", help="one of the spec's arms (default: its first method; with --best: any)")
    which = exp.add_mutually_exclusive_group()
    which.add_argument("--trial", help="a trial of the spec's MLflow experiment: Tune trial id or MLflow run id")
    which.add_argument("--best", action="store_true", help="the latest sweep's trial with the best final dev accuracy")
    exp.add_argument("--out", help="folder to write (default: exports/SPECNAME-LANGUAGE-ARM)")
    exp.add_argument("--mlm", action="store_true", help="also write the full masked LM with the new embeddings (mlm/)")
    exp.add_argument("--register", metavar="NAME", help="log the export into the trial's MLflow run and register it as NAME")
    exp.set_defaults(run=cmd_export)

    pred = sub.add_parser("predict", help="classify or answer with an exported model (JSONL out)")
    pred.add_argument("folder", help="a folder written by `minimodel export`")
    pred.add_argument(
        "texts",
        nargs="*",
        metavar="TEXT",
        help="texts to classify, or questions with --context; none: JSONL rows on stdin "
        '({"text"[, "text_pair"]} or {"question", "context"})',
    )
    pred.add_argument("--context", help="the context the TEXT questions are about (QA models)")
    pred.set_defaults(run=cmd_predict)

    ui = sub.add_parser("ui", help="serve the MLflow UI (and tracking server) for a spec's tracking store")
    ui.add_argument("spec", nargs="?", help="sweep YAML (gives the tracking URI and the experiment to open)")
    ui.add_argument("--set", **overrides)
    ui.add_argument("--tracking-uri", help="the store to serve, e.g. postgresql://USER@HOST/DB (default: the spec's)")
    ui.add_argument("--artifacts-destination", help="where the server keeps artifacts (default: MLflow's, ./mlartifacts)")
    ui.add_argument("--workers", type=int, default=1, help="server processes (default 1)")
    ui.add_argument("--app-name", help="an MLflow server app, e.g. basic-auth (users and passwords; cluster.yaml)")
    ui.add_argument("--host", default="127.0.0.1")
    ui.add_argument("--port", type=int, default=5000)
    ui.set_defaults(run=cmd_ui)
    return p


def main(argv: list[str] | None = None) -> None:
    args = parser().parse_args(argv)
    try:
        args.run(args)
    except USER_ERRORS as err:
        print(one_line(str(err)), file=sys.stderr)
        sys.exit(2)
    except KeyboardInterrupt:
        print("minimodel: interrupted; finished stages stay cached", file=sys.stderr)
        sys.exit(130)


if __name__ == "__main__":
    main()
