PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
WORKDIR ?= workdirs/default
CONFIG ?= configs/default.py
# Prepared datasets live beside the runs, so a fresh clone never reuses stale files.
export TFDS_DATA_DIR ?= $(CURDIR)/workdirs/tensorflow_datasets

CLASSIFIER ?= workdirs/classifier
EXPERIMENTS ?= workdirs/experiments
MUTATION_WORKDIR ?= workdirs/mutation

.PHONY: run classifier test mutation experiments experiments-quick install install-test clean

$(VENV)/.installed: requirements.txt
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements.txt
	touch $@

$(VENV)/.installed-test: $(VENV)/.installed requirements-test.txt requirements-torch.txt
	$(PY) -m pip install --quiet -r requirements-test.txt
	touch $@

install: $(VENV)/.installed

install-test: $(VENV)/.installed-test

## make classifier: install, then pretrain the VGG16 classifier on the procedural objects (the
## ImageNet stand-in) into $(CLASSIFIER); reused as it is when it already finished there.
classifier: install
	$(PY) -m fcn_jax.pretrain --config configs/classifier.py --workdir $(CLASSIFIER)

## make run: the classifier, then FCN-8s fine-tuned from it on the embedded dataset (CPU, minutes).
run: classifier
	$(PY) -m fcn_jax.main --config $(CONFIG) --workdir $(WORKDIR) \
	    --config.model.init_from=$(CLASSIFIER)/vgg16_classifier.npz

## make test: install, then run the test suite on CPU with fake devices.
test: install-test
	$(PY) -m pytest -q -n 2 tests

## make mutation: mutation testing of the core modules against their tests (not in CI; see
## docs/testing.md). MODULES=fcn_jax/losses.py picks modules of mutation/targets.toml.
mutation: install-test
	$(PY) mutation/run.py --workdir $(MUTATION_WORKDIR) $(MODULES)

## make experiments: install, then the full experiment set (pretraining, sliding window,
## decoders, skip ablation) into $(EXPERIMENTS), and copy the results the README shows into
## docs/experiments; about an hour on a 2-core CPU.
experiments: install
	$(PY) -m experiments.sliding_window --workdir $(EXPERIMENTS)
	$(PY) -m experiments.decoders --workdir $(EXPERIMENTS)
	$(PY) -m experiments.skips --workdir $(EXPERIMENTS)
	for e in sliding_window decoders skips; do mkdir -p docs/experiments/$$e && \
	    cp -r $(EXPERIMENTS)/$$e/results.md $(EXPERIMENTS)/$$e/results.json \
	    $(EXPERIMENTS)/$$e/figures docs/experiments/$$e/; done

## make experiments-quick: the same scripts in their seconds-long --quick mode.
experiments-quick: install
	$(PY) -m experiments.sliding_window --quick --workdir $(EXPERIMENTS)-quick
	$(PY) -m experiments.decoders --quick --workdir $(EXPERIMENTS)-quick
	$(PY) -m experiments.skips --quick --workdir $(EXPERIMENTS)-quick

clean:
	rm -rf $(VENV) workdirs
