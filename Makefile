# Two commands do all set-up on a fresh machine:
#   make run    -- the main job: python -m graph.run --arch scale_sim.yaml (ARGS="..." for more)
#   make test   -- lint, type-check and the test suite (integration tests only with SIMCODER_CI=1)
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
ARGS ?= --arch scale_sim.yaml
PYTEST_ARGS ?=
CONSTRAINTS ?= constraints.txt

.PHONY: setup run test lint selfcheck clean

$(VENV)/.installed: pyproject.toml $(CONSTRAINTS)
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade 'pip==26.3'
	$(PY) -m pip install --quiet $(if $(CONSTRAINTS),-c $(CONSTRAINTS),) -e '.[dev]'
	touch $@

setup: $(VENV)/.installed

run: setup
	$(PY) -m graph.run $(ARGS)

lint: setup
	$(VENV)/bin/ruff check .
	$(VENV)/bin/mypy

test: lint
	$(PY) -m pytest $(PYTEST_ARGS)

selfcheck: setup
	$(PY) -m graph.bench selfcheck --out bench-results/selfcheck.md

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
