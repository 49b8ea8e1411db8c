# Two commands matter: `make lab` (start learning) and `make test` (check everything).
PYTHON ?= python3
VENV ?= .venv
BACKEND ?= moto
BIN := $(VENV)/bin
RUNTIME := $(VENV)/.runtime-installed
DEV := $(VENV)/.dev-installed
JUPYTER_SETTINGS := $(VENV)/share/jupyter/lab/settings

.PHONY: lab test lint bench learner-notebooks clean

$(RUNTIME): requirements.txt pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 10) else "Python 3.10 or newer is needed; found " + sys.version.split()[0])'
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/pip install -q -r requirements.txt
	$(BIN)/pip install -q --no-deps -e .
	@if [ -f jupyter/overrides.json ]; then mkdir -p $(JUPYTER_SETTINGS) && cp jupyter/overrides.json $(JUPYTER_SETTINGS)/; fi
	@touch $@

$(DEV): $(RUNTIME) requirements-dev.txt
	$(BIN)/pip install -q -r requirements-dev.txt
	@touch $@

lab: $(RUNTIME)
	$(BIN)/labapp up --backend $(BACKEND)
	$(BIN)/jupyter lab --ServerApp.ip=127.0.0.1 --notebook-dir=notebooks; status=$$?; $(BIN)/labapp down; exit $$status

lint: $(DEV)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

test: lint
	$(BIN)/pytest

bench: $(DEV)
	$(BIN)/labapp bench

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache .mypy_cache
