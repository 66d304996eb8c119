PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
WORKDIR ?= workdirs/default
CONFIG ?= configs/default.py
# Prepared datasets live beside the runs, so a fresh clone never reuses stale files.
export TFDS_DATA_DIR ?= $(CURDIR)/workdirs/tensorflow_datasets

.PHONY: run test test-torch install install-test clean

$(VENV)/.installed: requirements.txt
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements.txt
	touch $@

$(VENV)/.installed-test: $(VENV)/.installed requirements-test.txt
	$(PY) -m pip install --quiet -r requirements-test.txt
	touch $@

install: $(VENV)/.installed

install-test: $(VENV)/.installed-test

## make run: install, then train and evaluate FCN-8s on the embedded dataset (CPU, minutes).
run: install
	$(PY) -m fcn_jax.main --config $(CONFIG) --workdir $(WORKDIR)

## make test: install, then run the test suite on CPU with fake devices.
test: install-test
	$(PY) -m pytest -q -n 2 tests

## make test-torch: also install the optional torch extra, so torch reference tests run too.
test-torch: install-test
	$(PY) -m pip install --quiet -r requirements-torch.txt
	$(PY) -m pytest -q -n 2 tests

clean:
	rm -rf $(VENV) workdirs
