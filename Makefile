# Two commands for a new machine: `make run` (the platform with the catalog's echo
# server deployed) and `make test`. Each creates .venv and installs what it needs.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-stamp
NODE_STAMP := node_modules/.installed-stamp
# scanners and validators live in their own venv: their pins must not move the app's
TOOLS_VENV := .venv-tools
TOOLS_STAMP := $(TOOLS_VENV)/.installed-stamp
API_PORT ?= 7071
GATEWAY_PORT ?= 8080
DATA_DIR ?= .mcpaas

.PHONY: run test lint install deps bench bench-gateway bench-sandbox bench-production bench-scale bench-scale-control bench-scale-gateway prod-local check-sandbox clean requirements

install: $(STAMP) $(NODE_STAMP) $(TOOLS_STAMP)

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	touch $@

$(TOOLS_STAMP): tools-requirements.txt
	$(PYTHON) -m venv $(TOOLS_VENV)
	$(TOOLS_VENV)/bin/python -m pip install --quiet --upgrade pip
	$(TOOLS_VENV)/bin/python -m pip install --quiet -r tools-requirements.txt
	touch $@

$(NODE_STAMP): package.json
	npm install --no-audit --no-fund --loglevel=error
	touch $@

# System programs, as `binary:Debian package`. `make test` runs them all: bwrap sandboxes
# every stdio child (docs/sandbox.md), redis-server backs the lock, limit and replica tests,
# shellcheck lints the azd hooks and runbooks. `make deps` installs the missing ones with
# apt-get when run as root, else prints the exact command and fails: a test never skips
# for want of one. `install` does not depend on it: the azd hooks run `make install` on
# machines (macOS) that need none of these.
TEST_DEPS := bwrap:bubblewrap redis-server:redis-server shellcheck:shellcheck
define ensure_deps
	@missing=$$(for dep in $(1); do command -v "$${dep%%:*}" >/dev/null || printf '%s ' "$${dep#*:}"; done); \
	if [ -z "$$missing" ]; then exit 0; fi; \
	if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
		echo "installing $$missing(apt-get)"; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing >/dev/null; \
	else \
		echo "missing system packages: $$missing"; \
		echo "install them first: sudo apt-get install -y $$missing(Debian/Ubuntu; see README.md)"; exit 1; \
	fi
endef

deps:
	$(call ensure_deps,$(TEST_DEPS))

# the gateway sandboxes stdio servers with bubblewrap (docs/sandbox.md); on a machine
# without it (macOS, Windows) run with MCPAAS_GATEWAY_SANDBOX=none and read that doc first
check-sandbox:
	@[ "$${MCPAAS_GATEWAY_SANDBOX:-bwrap}" = none ] || [ "$$(uname -s)" != Linux ] || $(MAKE) --no-print-directory \
		TEST_DEPS=bwrap:bubblewrap deps

run: install check-sandbox
	$(VENV)/bin/mcpaas up --port $(API_PORT) --gateway-port $(GATEWAY_PORT) --data-dir $(DATA_DIR) \
		--deploy catalog/echo/server.yaml

test: deps install lint
	$(PY) -m pytest

# ruff (style, pyflakes, bugbear) and mypy over the deployables; both read pyproject.toml
lint: install
	$(TOOLS_VENV)/bin/ruff check .
	$(TOOLS_VENV)/bin/mypy

# requirements.txt (what the Functions deployment installs) is rendered from pyproject.toml
requirements:
	$(PYTHON) infra/requirements.py > requirements.txt

bench: install
	$(PY) bench/deploy_and_call.py

# The gateway against its peers (issue 3): wrk drives the load; mcp-proxy pins mcp<2, so
# it gets a venv of its own.
PEERS_VENV := .venv-peers
bench-gateway: install
	@command -v wrk >/dev/null || { echo "bench-gateway needs wrk: apt-get install -y wrk"; exit 1; }
	test -x $(PEERS_VENV)/bin/mcp-proxy || { $(PYTHON) -m venv $(PEERS_VENV) && \
		$(PEERS_VENV)/bin/python -m pip install --quiet mcp-proxy==0.13.0; }
	$(PY) bench/gateway.py

# the control plane at scale (issue 15, docs/paging.md): list and audit pages, reconcile
# walk and create bursts at growing counts (about 10 minutes; loads 1M audit records)
bench-scale-control: install check-sandbox
	$(PY) bench/scale_control.py

# child start and tools/call p50 with and without the sandbox (issue 10)
bench-sandbox: install check-sandbox
	$(PY) bench/sandbox.py

# the production-shaped run (issue 11 item 7, docs/replicas.md): devhost, two gateway
# replicas behind a round-robin proxy, Cosmos emulator, Redis, Entra mode on a local issuer
prod-local: install check-sandbox
	@command -v redis-server >/dev/null || { echo "prod-local needs redis-server: apt-get install -y redis-server"; exit 1; }
	$(PY) -m tests.production_shaped --deploy catalog/echo/server.yaml

# the gateway at scale (issue 15, docs/scale.md): session setup at 10/100/1,000 new
# sessions, memory and descriptors per idle session, the server lookup at 10/100/1,000 servers
bench-scale-gateway: install check-sandbox
	@command -v wrk >/dev/null || { echo "bench-scale-gateway needs wrk: apt-get install -y wrk"; exit 1; }
	$(PY) bench/scale_gateway.py

# every scale curve of issue 15: the gateway's, then the control plane's
bench-scale: bench-scale-gateway bench-scale-control

# deploy time and tools/call p50, production-shaped vs embedded, and the cross-replica hop
bench-production: install check-sandbox
	$(PY) bench/production_shaped.py

clean:
	rm -rf $(VENV) $(TOOLS_VENV) $(PEERS_VENV) node_modules .mcpaas
