# Two entry points for a fresh machine: `make demo` and `make test`.
PY ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
export HF_HUB_OFFLINE ?= 1
export TRANSFORMERS_OFFLINE ?= 1
export TOKENIZERS_PARALLELISM ?= false

.PHONY: setup services browser demo test bench serve clean

$(BIN)/workbench: pyproject.toml
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/pip install --upgrade --quiet pip
	# torch first, pinned: any other version would pull several GB of CUDA wheels.
	$(BIN)/pip install --quiet torch==2.13.0
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(BIN)/workbench

setup: $(BIN)/workbench

demo: setup
	$(BIN)/workbench demo

serve: setup
	$(BIN)/workbench serve

# Start the local PostgreSQL if it is installed but down; its tests skip with a reason if absent.
services:
	@if command -v pg_isready >/dev/null 2>&1 && ! pg_isready -q -h 127.0.0.1 -p 5432; then \
	  if command -v pg_ctlcluster >/dev/null 2>&1; then \
	    pg_ctlcluster --skip-systemctl-redirect $$(ls /etc/postgresql | head -n 1) main start || true; fi; \
	  for i in $$(seq 1 30); do pg_isready -q -h 127.0.0.1 -p 5432 && break; sleep 1; done; \
	fi; true

# Debian's Chromium for the browser tests (Playwright drives it; no browser download). Best effort:
# without it those tests skip with the reason.
browser:
	@if [ ! -x /usr/bin/chromium ] && command -v apt-get >/dev/null 2>&1 && [ "$$(id -u)" = 0 ]; then \
	  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver) \
	    >/dev/null 2>&1 || echo "could not install chromium: browser tests will be skipped"; \
	fi; true

test: setup services browser
	$(BIN)/python -m pytest -q tests

# transformer_adaptation.py is left out: it reads new_surface.py's --dump-decisions file and wants a GPU.
bench: setup
	$(BIN)/pip install --quiet -e '.[dev,bench]'
	for b in $(filter-out benchmarks/transformer_adaptation.py,$(wildcard benchmarks/*.py)); do $(BIN)/python $$b || exit 1; done

clean:
	rm -rf $(VENV) workbench-data
