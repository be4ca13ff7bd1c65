# Two commands do everything on a fresh machine:
#   make demo   - set up, generate a sample volume, open JupyterLab on the demo notebook
#   make test   - set up, lint, run the whole test suite (browser tests included)
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
PORT ?= 8888

.PHONY: setup test lint format demo bench clean

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e ".[all]" --group test  # every extra + the test tools (PEP 735)
	touch $@

setup: $(VENV)/.installed

lint: setup
	$(VENV)/bin/ruff check nilazyview tests benchmarks scripts fuzz
	$(VENV)/bin/ruff format --check nilazyview tests benchmarks scripts fuzz
	$(VENV)/bin/lint-imports --no-cache

format: setup
	$(VENV)/bin/ruff check --fix nilazyview tests benchmarks scripts fuzz
	$(VENV)/bin/ruff format nilazyview tests benchmarks scripts fuzz

test: setup
	bash scripts/install-chromium.sh
	$(MAKE) lint
	$(PY) -m pytest -q

demo: setup
	$(PY) scripts/make_sample.py notebooks/data
	$(VENV)/bin/jupyter lab notebooks/huge_volume.ipynb --port $(PORT) --ip 127.0.0.1 \
		$(if $(filter 0,$(shell id -u)),--allow-root)

bench: setup
	$(PY) benchmarks/bench_slices.py

clean:
	rm -rf $(VENV) .pytest_cache notebooks/data
