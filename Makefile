PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
WORKDIR ?= workdirs/default
CONFIG ?= configs/default.py
# Prepared datasets live beside the runs, so a fresh clone never reuses stale files.
export TFDS_DATA_DIR ?= $(CURDIR)/workdirs/tensorflow_datasets

CLASSIFIER ?= workdirs/classifier
STUDIES_DIR ?= workdirs/studies
QUICK_STUDIES_DIR ?= workdirs/studies_quick
STUDY_DOCS ?= docs/experiments
STUDIES ?= sgd_lr convergence pretraining skips backbone_lr backbones upsampling loss_sampling balancing augmentation data_size precision learning_regime
BACKBONES ?= alexnet googlenet
PARALLEL ?= 1
MUTATION_WORKDIR ?= workdirs/mutation
JAX ?= cpu
JAX_RANGE := $(shell sed -n 's/^jax\[cpu\]\([^ ]*\).*/\1/p' requirements.txt)

.PHONY: run classifier backbone-classifiers test test-quick mutation studies studies-quick install install-test clean

$(VENV)/.installed: requirements.txt
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements.txt
	touch $@

# JAX=cuda12 (NVIDIA GPU) or JAX=tpu (Cloud TPU VM): that jax build on top, same version range.
$(VENV)/.jax-$(JAX): $(VENV)/.installed
	$(if $(filter-out cpu,$(JAX)),$(PY) -m pip install --quiet "jax[$(JAX)]$(JAX_RANGE)")
	touch $@

$(VENV)/.installed-test: $(VENV)/.installed requirements-test.txt requirements-torch.txt
	$(PY) -m pip install --quiet -r requirements-test.txt
	touch $@

install: $(VENV)/.installed $(VENV)/.jax-$(JAX)

install-test: $(VENV)/.installed-test

## make classifier: install, then pretrain the VGG16 classifier on the procedural objects (the
## ImageNet stand-in) into $(CLASSIFIER); reused as it is when it already finished there.
classifier: install
	$(PY) -m fcn_jax.pretrain --config configs/classifier.py --workdir $(CLASSIFIER)

## make backbone-classifiers: the AlexNet and GoogLeNet classifiers, trained as the VGG16 one is
## but for 8000 steps (configs/classifier.py, CLASSIFIER_STEPS), into workdirs/classifier_NAME
## (the backbones study starts from them); each reused when done.
backbone-classifiers: install
	for b in $(BACKBONES); do \
	    $(PY) -m fcn_jax.pretrain --config configs/classifier.py:$$b \
	        --workdir workdirs/classifier_$$b || exit 1; done

## make run: the classifier, then FCN-8s fine-tuned from it on the embedded dataset (CPU, minutes).
run: classifier
	$(PY) -m fcn_jax.main --config $(CONFIG) --workdir $(WORKDIR) \
	    --config.model.init_from=$(CLASSIFIER)/vgg16_classifier.npz

## make test: install, then run the test suite on CPU with fake devices.
test: install-test
	$(PY) -m pytest -q -n 2 --durations=25 tests

## make test-quick: the same without the end-to-end command runs marked slow (about half the time).
test-quick: install-test
	$(PY) -m pytest -q -n 2 -m "not slow" tests

## make mutation: mutation testing of the core modules against their tests (not in CI; see
## docs/testing.md). MODULES=fcn_jax/losses.py picks modules of mutation/targets.toml;
## MUTATION_FLAGS=--survivors reruns only the last run's survivors, --resume an interrupted run.
mutation: install-test
	$(PY) mutation/run.py --workdir $(MUTATION_WORKDIR) $(MUTATION_FLAGS) $(MODULES)

## make studies: the classifier (and the other backbones' for backbones and backbone_lr), then each
## study of configs/default.py (STUDIES=... picks some)
## run by experiments.sweep into $(STUDIES_DIR)/NAME, summarised by experiments.report, and
## the report copied to docs/experiments/study_NAME. Resumable: finished trials are skipped,
## and a trial another study already ran (the same config and classifier) is copied from it.
## Hours on a 2-core CPU (see docs/experiments.md, Studies); PARALLEL=2 runs two trials at once.
studies: classifier $(if $(filter backbones backbone_lr,$(STUDIES)),backbone-classifiers)
	for s in $(STUDIES); do \
	    $(PY) -m experiments.sweep --config $(CONFIG) --sweep $$s --workdir $(STUDIES_DIR)/$$s \
	        --parallel $(PARALLEL) --reuse-from $(STUDIES_DIR) && \
	    $(PY) -m experiments.report $(STUDIES_DIR)/$$s && \
	    mkdir -p $(STUDY_DOCS)/study_$$s && \
	    cp -r $(STUDIES_DIR)/$$s/report.md $(STUDIES_DIR)/$$s/report.json \
	        $(STUDIES_DIR)/$$s/figures $(STUDY_DOCS)/study_$$s/ || exit 1; done

## make studies-quick: each study's quick form (experiments.sweep --quick: the first two seeds,
## seconds-long trials on the smoke config from a seconds-long classifier) into
## $(QUICK_STUDIES_DIR)/NAME, reported there: every study end to end in minutes, to try the
## pipeline before its hours. The numbers are not results; nothing is copied to docs.
studies-quick: install
	for s in $(STUDIES); do \
	    $(PY) -m experiments.sweep --config $(CONFIG) --sweep $$s \
	        --workdir $(QUICK_STUDIES_DIR)/$$s --quick --parallel $(PARALLEL) \
	        --reuse-from $(QUICK_STUDIES_DIR) && \
	    $(PY) -m experiments.report $(QUICK_STUDIES_DIR)/$$s > /dev/null || exit 1; done

clean:
	rm -rf $(VENV) workdirs
