# Two commands do all set-up on a fresh machine:
#   make run    -- the main job: python -m graph.run --arch scale_sim.yaml (ARGS="..." for more)
#   make test   -- lint, type-check and the test suite (integration tests only with SIMCODER_CI=1)
#   make local-model      -- install (first run: ~1.1 GB download and a ~15 min build) and start a local
#                            llama-server with Qwen2.5-Coder-1.5B; its last line is OPENAI_BASE_URL=... OPENAI_MODEL=...
#                            (LOCAL_MODEL_ARGS="--context-tokens N"; cache: $SIMCODER_CACHE/local-model)
#   make local-model-stop -- stop that server
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
ARGS ?= --arch scale_sim.yaml
LOCAL_MODEL_ARGS ?=
PYTEST_ARGS ?=
CONSTRAINTS ?= constraints.txt

.PHONY: setup run test lint selfcheck clean local-model local-model-stop

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

local-model: setup
	$(PY) tools/local_model.py install
	$(PY) tools/local_model.py start $(LOCAL_MODEL_ARGS)

local-model-stop:
	$(if $(wildcard $(PY)),$(PY),$(PYTHON)) tools/local_model.py stop

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
