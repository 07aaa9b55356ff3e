# Two entry points (see README Quickstart): `make repro` and `make test`. Both set up .venv first.
VENV ?= .venv
# Stages run `python ...` and tests run `dvc ...`: put the project's environment first on PATH.
export PATH := $(abspath $(VENV))/bin:$(PATH)

.PHONY: setup repro quick test test-fast bench plots mlflow-ui

$(VENV)/.installed: pyproject.toml
	python3 -m venv $(VENV)
	$(VENV)/bin/python -m pip install --quiet --upgrade pip
	$(VENV)/bin/python -m pip install --quiet -e '.[dev]'
	touch $@

setup: $(VENV)/.installed   ## create .venv with the project and its dependencies

repro: setup                 ## run the whole pipeline (downloads MNIST unless VAELAB_MNIST_MIRROR is set)
	dvc repro

quick: setup                 ## a first look: the post's study alone, one seed, a subset (a DVC experiment; report in quick/)
	PYTHONPATH=src python stages/quick.py

test: setup                  ## run the whole test suite, both tiers (uses ../shared/mnist, or VAELAB_MNIST_MIRROR)
	python -m pytest

test-fast: setup             ## the quick tier alone: every test not marked slow
	python -m pytest -m "not slow"

bench: setup                 ## speed against the machine's matmul peak (after `dvc repro download`); see benchmarks/
	PYTHONPATH=src:. python benchmarks/speed.py
	PYTHONPATH=src:. python benchmarks/importance.py
	PYTHONPATH=src:. python benchmarks/startup.py
	PYTHONPATH=src:. python benchmarks/study.py

plots: setup                 ## dvc plots show as a page that works offline (Vega from the npm registry once, checked)
	PYTHONPATH=src python stages/plots.py

# Without MLflow 3's GenAI job runner (vaelab does not use it), as the team server in the README: two processes, not 15.
mlflow-ui: setup             ## browse the runs at http://127.0.0.1:5000 (prints the runs table's URL)
	@PYTHONPATH=src python -c "from vaelab import tracking; print('vaelab runs table:', tracking.ui_url('http://127.0.0.1:5000', 'vaelab'))"
	MLFLOW_SERVER_ENABLE_JOB_EXECUTION=false mlflow ui --backend-store-uri sqlite:///mlflow.db --host 127.0.0.1 --port 5000 --workers 1
