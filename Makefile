# The two commands: `make serve` runs the platform, `make test` runs every check CI runs.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: serve test lint typecheck pytest bench clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip

$(VENV)/.serve-deps: pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet -e .
	touch $@

$(VENV)/.test-deps: pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet -e '.[test]'
	@# The console's browser tests drive Debian's Chromium (Playwright's own download needs
	@# the internet); install it when it is missing and apt-get is there to do it.
	if [ ! -x /usr/bin/chromium ] && command -v apt-get >/dev/null; then \
		DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends chromium \
		|| { apt-get update && DEBIAN_FRONTEND=noninteractive \
			apt-get install -y --no-install-recommends chromium; }; \
	fi
	touch $@ $(VENV)/.serve-deps

serve: $(VENV)/.serve-deps
	$(BIN)/tokenmill serve

test: $(VENV)/.test-deps lint typecheck pytest

lint: $(VENV)/.test-deps
	$(BIN)/ruff check tokenmill tests bench
	$(BIN)/ruff format --check tokenmill tests bench

typecheck: $(VENV)/.test-deps
	$(BIN)/mypy tokenmill

pytest: $(VENV)/.test-deps
	$(BIN)/pytest -q

bench: $(VENV)/.test-deps
	$(BIN)/pip install --quiet -e '.[test,bench]'
	@# BFCL's questions and answers; its own dependencies are not needed to read them.
	$(BIN)/pip install --quiet --no-deps bfcl-eval
	$(BIN)/python bench/gateway.py
	$(BIN)/python bench/metering.py
	$(BIN)/python bench/engine.py
	$(BIN)/python bench/cpu_buffers.py
	$(BIN)/python bench/tools.py
	$(BIN)/python bench/fairness.py

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
