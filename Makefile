# Two commands for a new machine: `make run` (the platform with the catalog's echo
# server deployed) and `make test`. Each creates .venv and installs what it needs.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-stamp
NODE_STAMP := node_modules/.installed-stamp
API_PORT ?= 7071
GATEWAY_PORT ?= 8080
DATA_DIR ?= .mcpaas

.PHONY: run test install bench clean

install: $(STAMP) $(NODE_STAMP)

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	touch $@

$(NODE_STAMP): package.json
	npm install --no-audit --no-fund --loglevel=error
	touch $@

run: install
	$(VENV)/bin/mcpaas up --port $(API_PORT) --gateway-port $(GATEWAY_PORT) --data-dir $(DATA_DIR) \
		--deploy catalog/echo/server.yaml

test: install
	$(PY) -m pytest

bench: install
	$(PY) bench/deploy_and_call.py

clean:
	rm -rf $(VENV) node_modules .mcpaas
