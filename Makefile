# Two commands for a new user: `make run` (the app, locally, on its embedded defaults) and `make test`.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: setup run test test-unit bench openapi clean

setup: $(STAMP) node_modules/.installed

$(STAMP): requirements.txt requirements-dev.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check -r requirements-dev.txt
	touch $(STAMP)

node_modules/.installed: package.json package-lock.json
	npm ci --silent --no-audit --no-fund
	touch node_modules/.installed

run: setup ## Azurite + Commerce emulator + local Functions host on http://localhost:7071
	$(PY) -m devhost

test: setup ## every test: unit, emulator, client, end-to-end through Azurite, infrastructure
	$(PY) -m pytest

test-unit: setup
	$(PY) -m pytest -m "not integration"

bench: setup
	$(PY) -m bench

openapi: setup
	$(PY) -m tools.openapi --write

clean:
	rm -rf $(VENV) node_modules .pytest_cache .hypothesis
