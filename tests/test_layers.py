"""The core (minimodel.method, .text, .experiment) runs without Ray, MLflow or Optuna: arrows point one
way, sweeps -> CLI -> trainables -> core. Checked on the source and on what importing it loads."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

CORE = ("method", "text", "experiment")
GLUE = ("ray", "mlflow", "optuna")
ROOT = Path(__file__).resolve().parent.parent


def imported(path: Path) -> set[str]:
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names.update(a.name.split(".")[0] for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            names.add(node.module.split(".")[0])
    return names


def test_no_core_module_imports_ray_mlflow_or_optuna():
    files = [f for pkg in CORE for f in sorted((ROOT / "minimodel" / pkg).glob("*.py"))]
    assert len(files) > 20
    offenders = {str(f.relative_to(ROOT)): sorted(imported(f) & set(GLUE)) for f in files}
    assert {f: names for f, names in offenders.items() if names} == {}


def test_importing_the_whole_core_loads_none_of_them():
    modules = [f"minimodel.{pkg}.{f.stem}" for pkg in CORE for f in sorted((ROOT / "minimodel" / pkg).glob("*.py")) if f.stem != "__init__"]
    code = (
        f"import importlib, sys\nfor m in {modules!r}: importlib.import_module(m)\n"
        f"print(sorted(n for n in sys.modules if n.split('.')[0] in {GLUE!r}))"
    )
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
