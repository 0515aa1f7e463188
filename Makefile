# Set-up and test entry points. `make quickstart` and `make test` each start from a bare Python 3.11.
PYTHON ?= python3.11
VENV ?= .venv
PY := $(VENV)/bin/python
# CPU machines take the CPU build of torch from local disk; on a GPU machine set TORCH_SPEC=torch
TORCH_SPEC ?= torch==2.13.0
PYTEST_ARGS ?=

.PHONY: install quickstart test lint

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q "$(TORCH_SPEC)"
	$(PY) -m pip install -q -e ".[dev]"
	touch $@

install: $(VENV)/.installed

# The sweep lands in runs/quickstart (the spec's storage.path/name), the path it prints and the
# README's next commands take. --resume: a second `make quickstart` shows the finished sweep.
quickstart: install
	$(VENV)/bin/gan-hpc sweep run sweeps/quickstart.yaml --resume

test: install
	$(PY) -m pytest $(PYTEST_ARGS)

lint: install
	$(VENV)/bin/ruff check gan_hpc tests bench scripts
	$(VENV)/bin/mypy
