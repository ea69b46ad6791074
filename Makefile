# Two entry points: `make demo` (the main job) and `make test` (the suite). Both create .venv on first use.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-stamp

.PHONY: demo test lint bench clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --no-cache-dir --upgrade pip
	# torch/torchvision first: pip takes these exact builds from the local disk (see README). The venv takes about
	# 6 GB; --no-cache-dir keeps pip from storing a second copy of what it downloads.
	$(PY) -m pip install -q --no-cache-dir torch==2.14.1 torchvision==0.29.1
	$(PY) -m pip install -q --no-cache-dir -e '.[test]'
	touch $(STAMP)

demo: $(STAMP)
	$(PY) examples/demo.py

test: $(STAMP)
	$(PY) -m pytest -q -n 2 --durations=15 tests

lint: $(STAMP)
	$(VENV)/bin/ruff check timm_zerosnet hub tests examples benchmarks

bench: $(STAMP)
	$(PY) benchmarks/benchmark.py

# the venv, pytest's cache and the demo's own run; never runs/ itself, where the docs put real training runs
clean:
	rm -rf $(VENV) .pytest_cache runs/demo
