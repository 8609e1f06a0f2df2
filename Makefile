# The two commands of the README: `make up` and `make test`. Each bootstraps .venv by itself.
PYTHON ?= python3.11
VENV := .venv
STAMP := $(VENV)/.installed

.PHONY: up test lint venv clean node_modules
NODE_STAMP := node_modules/.package-lock.json

$(STAMP): pyproject.toml
	@command -v $(PYTHON) >/dev/null || { echo "error: $(PYTHON) not found; install Python 3.11 or run make PYTHON=/path/to/python3.11"; exit 1; }
	@test -d $(VENV) || $(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --upgrade pip
	$(VENV)/bin/pip install --quiet -e '.[test]'
	@touch $(STAMP)

venv: $(STAMP)

# Test tools from npm (Prism serves the vendors' OpenAPI specs for the channel contract tests), pinned by
# package-lock.json.
$(NODE_STAMP): package.json package-lock.json
	@command -v npm >/dev/null || { echo "error: npm not found; install Node.js 18+ (Debian: apt-get install nodejs npm)"; exit 1; }
	npm ci --no-audit --no-fund
	@touch $(NODE_STAMP)

node_modules: $(NODE_STAMP)

up: $(STAMP)
	$(VENV)/bin/omnireach up

test: $(STAMP) node_modules
	$(VENV)/bin/ruff check .
	$(VENV)/bin/python -m pytest -q

lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

clean:
	rm -rf $(VENV) node_modules var/*.db
