# Two commands matter: `make lab` (start learning) and `make test` (check everything).
PYTHON ?= python3
VENV ?= .venv
BACKEND ?= moto
BIN := $(VENV)/bin
RUNTIME := $(VENV)/.runtime-installed
DEV := $(VENV)/.dev-installed
JUPYTER_SETTINGS := $(VENV)/share/jupyter/lab/settings
# A classroom on poor Wi-Fi: `make wheelhouse` once with the network, copy the folder to each laptop,
# and there `make lab WHEELS=wheelhouse` installs from it alone (pip --no-index).
WHEELHOUSE ?= wheelhouse
WHEELS ?=
PIP_SOURCE := $(if $(WHEELS),--no-index --find-links $(WHEELS),)

.PHONY: lab test test-env lint test-notebooks test-localstack learner-notebooks bench wheelhouse clean

$(RUNTIME): requirements.txt pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 10) else "Python 3.10 or newer is needed; found " + sys.version.split()[0])'
	$(PYTHON) -m venv $(VENV)
	$(if $(WHEELS),,$(BIN)/python -m pip install -q --upgrade pip)
	$(BIN)/pip install -q $(PIP_SOURCE) -r requirements.txt
	$(BIN)/pip install -q $(PIP_SOURCE) --no-deps -e .
	@if [ -f jupyter/overrides.json ]; then mkdir -p $(JUPYTER_SETTINGS) && cp jupyter/overrides.json $(JUPYTER_SETTINGS)/; fi
	@touch $@

$(DEV): $(RUNTIME) requirements-dev.txt
	$(BIN)/pip install -q -r requirements-dev.txt
	@touch $@

# One process owns the stack and JupyterLab, so both stop however JupyterLab ends (Ctrl-C twice).
lab: $(RUNTIME)
	$(BIN)/labapp lab --backend $(BACKEND)

lint: $(DEV)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

# What the tests need beyond the venv, checked before anything slow runs: Chromium, and LocalStack
# wherever a Python >= 3.13 is found, so that pytest's LocalStack tests run rather than skip.
test-env: $(RUNTIME)
	@tools/ensure_chromium.sh
	@if $(BIN)/labapp localstack python >/dev/null 2>&1; then \
	    echo "Installing LocalStack in its own virtualenv (once)..."; $(BIN)/labapp localstack install >/dev/null; \
	fi

# Every suite runs even when one fails, and the summary names the ones that failed.
test: test-env lint
	@failed=""; \
	$(BIN)/pytest || failed="$$failed pytest"; \
	$(MAKE) --no-print-directory test-notebooks || failed="$$failed notebooks"; \
	$(MAKE) --no-print-directory test-localstack || failed="$$failed localstack"; \
	if [ -n "$$failed" ]; then echo "make test: FAILED:$$failed" >&2; exit 1; fi; \
	echo "make test: every suite passed"

# The solution notebooks, outputs compared cell by cell (ids, times and ports masked). A private
# endpoint port and LAB_HOME keep them off a lab the learner may have running on 4566.
test-notebooks: $(DEV)
	LAB_HOME=$$(mktemp -d) LAB_ENDPOINT_URL=http://127.0.0.1:$$($(BIN)/python -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])') \
	    $(BIN)/pytest -p no:cacheprovider --nbval solutions --nbval-sanitize-with solutions/sanitize.cfg

learner-notebooks: $(RUNTIME)
	$(BIN)/python tools/make_learner_notebooks.py

# The core runtime and every solution notebook again, against LocalStack on the host (it needs a
# Python >= 3.13 of its own); the notebooks must print the same, backend details masked.
CORE_TESTS := tests/test_daemon.py tests/test_queues.py tests/test_post.py
# One shell: an `exit 0` in a recipe line of its own would end only that line, not the target.
test-localstack: $(DEV)
	@if ! $(BIN)/labapp localstack python >/dev/null; then \
	    if [ -n "$$CI" ]; then echo "CI must prove the LocalStack backend, but no Python >= 3.13 was found." >&2; exit 1; fi; \
	    echo "No Python >= 3.13 here, so the LocalStack backend was not tested (the moto suite was)."; \
	else \
	    set -ex; \
	    $(BIN)/labapp localstack install >/dev/null; \
	    $(BIN)/python tools/with_localstack.py -- $(BIN)/pytest -p no:cacheprovider $(CORE_TESTS); \
	    $(BIN)/python tools/with_localstack.py -- \
	        $(BIN)/pytest -p no:cacheprovider --nbval solutions --nbval-sanitize-with solutions/sanitize.cfg; \
	fi

# Benchmarks, not timed tests: the daemon vs a plain boto3 loop, the simulator, 10,000 messages of chaos.
bench: $(DEV)
	$(BIN)/labapp bench

# Every wheel the lab needs, the build tools for its own package included, in one folder.
wheelhouse: $(RUNTIME)
	$(BIN)/pip wheel -q --wheel-dir $(WHEELHOUSE) -r requirements.txt "setuptools>=68" wheel
	@echo "$(WHEELHOUSE)/ holds $$(ls $(WHEELHOUSE) | wc -l) wheels; on each laptop: make lab WHEELS=$(WHEELHOUSE)"

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache .mypy_cache
