"""What a process start costs with and without the venv's compiled bytecode (the Makefile's install).

Where PYTHONDONTWRITEBYTECODE is set, Python never writes .pyc files itself: a venv installed with
`pip install --no-compile` then compiles torch, transformers, Ray and MLflow from source in every
process, each Ray worker among them. The baseline runs the same command in the same venv with
PYTHONPYCACHEPREFIX pointing at an empty folder (Python then finds no bytecode and, forbidden to
write, compiles every time): exactly a --no-compile venv. Rounds alternate the two, so load on the
machine falls on both alike.

    .venv/bin/python bench/bytecode.py [--rounds 5] [--sweep]

`--sweep` also times a whole tiny `minimodel sweep` from an empty store (the synthetic task, 3 trials
of a scratch model: a local Ray, one Ray Train job for the shared stages, Tune trial actors), the kind
of process tree the tests start.
Prints one JSON line per command: median seconds of each setting and their ratio.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests/ holds the synthetic data

from tests.synthetic import write_language  # noqa: E402
from tests.test_faults import fault_spec  # noqa: E402

IMPORTS = "import torch, transformers, mlflow, ray.train.torch, ray.tune; from transformers import BertForMaskedLM; import minimodel.cli"


def tiny_sweep(root: Path) -> list[str]:
    """A `minimodel sweep` of 3 tiny trials (stages and trials computed each time from an empty store)."""
    write_language(root / "data")
    path = fault_spec(
        {"root": root / "data"}, root, search={"adapt.lr": {"type": "choice", "values": [2e-3, 5e-3, 1e-2]}}, max_concurrent=2
    )
    return [str(Path(sys.executable).parent / "minimodel"), "sweep", str(path)]


def seconds(command: list[str], env: dict[str, str]) -> float:
    start = time.perf_counter()
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=1800)
    if done.returncode:
        raise RuntimeError(done.stdout[-2000:] + done.stderr[-2000:])
    return time.perf_counter() - start


def compare(name: str, command: list[str], rounds: int, fresh: tuple[Path, ...] = ()) -> dict:
    """Median wall seconds of `command` with the venv's bytecode and without it, alternating; the
    `fresh` paths are removed before every run (a sweep's store: every run computes the same)."""
    base = {**os.environ, "PYTHONDONTWRITEBYTECODE": "1", "RAY_ADDRESS": "local", "TQDM_DISABLE": "1"}
    times: dict[str, list[float]] = {"compiled": [], "from_source": []}
    for _ in range(rounds):
        for setting in times:
            with tempfile.TemporaryDirectory(prefix="no-pycache-") as empty:
                for folder in fresh:
                    subprocess.run(["rm", "-rf", str(folder)], check=True)
                env = base if setting == "compiled" else {**base, "PYTHONPYCACHEPREFIX": empty}
                times[setting].append(seconds(command, env))
    compiled, source = (statistics.median(times[k]) for k in times)
    return {
        "command": name,
        "rounds": rounds,
        "compiled_s": round(compiled, 1),
        "from_source_s": round(source, 1),
        "ratio": round(source / compiled, 2),
        "all": {k: [round(x, 1) for x in v] for k, v in times.items()},
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--sweep", action="store_true")
    args = parser.parse_args()
    print(json.dumps(compare("imports", [sys.executable, "-c", IMPORTS], args.rounds)), flush=True)
    if args.sweep:
        with tempfile.TemporaryDirectory(prefix="bytecode-sweep-") as folder:
            root = Path(folder)
            command = tiny_sweep(root)
            print(json.dumps(compare("tiny sweep", command, args.rounds, (root / "runs", root / "mlflow.db"))))


if __name__ == "__main__":
    main()
