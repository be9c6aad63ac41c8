# Two commands for a new user: `make run` (the app, locally, on its embedded defaults) and `make test`.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
CHECKOV_VENV := .venv-checkov
CHECKOV_STAMP := $(CHECKOV_VENV)/.installed
# A second virtualenv on Python 3.13 (azure-functions 2.x) for `make test-unit-3.13`, as CI runs it.
PYTHON313 ?= python3.13
VENV313 := .venv-3.13
STAMP313 := $(VENV313)/.installed

.PHONY: setup run lint test test-unit test-unit-3.13 bench openapi clean

setup: $(STAMP) node_modules/.installed

$(CHECKOV_STAMP): requirements-checkov.txt
	test -x $(CHECKOV_VENV)/bin/python || $(PYTHON) -m venv $(CHECKOV_VENV)
	$(CHECKOV_VENV)/bin/python -m pip install --quiet --disable-pip-version-check -r requirements-checkov.txt
	touch $(CHECKOV_STAMP)

$(STAMP): requirements.txt requirements-dev.txt
	@$(PYTHON) -c 'import sys; sys.exit(0 if (3, 11) <= sys.version_info[:2] <= (3, 13) else "Python 3.11, 3.12 or 3.13 is needed (the versions the Functions runtime supports); set PYTHON=python3.13 or similar")'
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check -r requirements-dev.txt
	touch $(STAMP)

node_modules/.installed: package.json package-lock.json
	npm ci --silent --no-audit --no-fund
	touch node_modules/.installed

run: setup ## Azurite + Commerce emulator + local Functions host on http://localhost:7071
	$(PY) -m devhost

lint: setup ## ruff (lint and format) over the tree, mypy (strict on shared/); the import layers are a test
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .
	$(PY) -m mypy

test: lint $(CHECKOV_STAMP) ## lint, then every test: unit, emulator, client, end-to-end, infrastructure (with Checkov)
	CHECKOV=$(CHECKOV_VENV)/bin/checkov $(PY) -m pytest

test-unit: setup
	$(PY) -m pytest -m "not integration"

$(STAMP313): requirements.txt requirements-dev.txt
	@$(PYTHON313) -c 'import sys; sys.exit(0 if sys.version_info[:2] == (3, 13) else "PYTHON313 must be a Python 3.13 (with pyenv: PYTHON313=\"env PYENV_VERSION=3.13.0 python3.13\")")'
	test -x $(VENV313)/bin/python || $(PYTHON313) -m venv $(VENV313)
	$(VENV313)/bin/python -m pip install --quiet --disable-pip-version-check -r requirements-dev.txt
	touch $(STAMP313)

test-unit-3.13: $(STAMP313) ## the unit tests again on Python 3.13, where azure-functions 2.x is installed
	$(VENV313)/bin/python -m pytest -m "not integration"

bench: setup
	$(PY) -m bench

openapi: setup
	$(PY) -m tools.openapi --write

clean:
	rm -rf $(VENV) $(CHECKOV_VENV) $(VENV313) node_modules .pytest_cache .hypothesis .mypy_cache .ruff_cache .import_linter_cache
