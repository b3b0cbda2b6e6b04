# Two entry points for a fresh machine (see README.md): `make demo` and `make test`.
VENV ?= .venv
PY := $(VENV)/bin/python
PYTHON ?= python3

.PHONY: demo test lint install install-dev chromium site

# onnxruntime-web, which runs the models in the visitor's browser, comes from the npm registry at
# the version package-lock.json pins (with its integrity hash); the app serves it from its own
# origin and `make site` copies it into the static site. Not vendored: its WASM file is 14 MB.
NPM ?= npm
node_modules/.installed: package.json package-lock.json
	@command -v $(NPM) >/dev/null || { echo "npm not found: apt-get install -y npm (or install Node.js)"; exit 1; }
	$(NPM) ci --no-audit --no-fund --ignore-scripts
	touch $@

# No pip cache: torch's CUDA wheels come to ~5 GB in the venv, and a cached copy of what pip
# downloads would take as much again on a machine whose disk is short.
export PIP_NO_CACHE_DIR := 1
$(VENV)/.installed: requirements.txt pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements.txt
	$(PY) -m pip install --quiet --no-deps -e .
	touch $@

$(VENV)/.installed-dev: $(VENV)/.installed requirements-dev.txt
	$(PY) -m pip install --quiet -r requirements-dev.txt
	touch $@

install: $(VENV)/.installed node_modules/.installed
install-dev: $(VENV)/.installed-dev node_modules/.installed

demo: $(VENV)/.installed node_modules/.installed
	@# exec: the app replaces the shell, so stopping make (SIGTERM) stops the app too
	HF_HUB_OFFLINE=1 PIX2PIX_REMOTE=skip exec $(PY) app.py

lint: $(VENV)/.installed-dev
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

# The browser tests drive Debian's chromium (never a downloaded browser).
chromium:
	@command -v chromium >/dev/null || { apt-get install -y -q chromium || \
		{ apt-get update -q && apt-get install -y -q chromium; }; }

test: $(VENV)/.installed-dev node_modules/.installed lint chromium
	$(VENV)/bin/pytest -q

# A static site (no server: the models run in the visitor's browser), e.g. for a free static Space.
SITE ?= out/site
SITE_MODELS ?= lineart2color sketch2product facades-patch70
site: $(VENV)/.installed node_modules/.installed
	$(PY) -m pix2pix.site $(SITE) $(foreach m,$(SITE_MODELS),--model $(m))
