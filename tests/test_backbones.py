"""The backbones of the paper's Table 1 (VGG16, AlexNet, GoogLeNet): their architecture against
the paper's numbers, their classifiers' convolutionalization through the weight importer, and
the refusals of combinations a trunk cannot make."""

import json
import os
import re
import subprocess
import sys

import numpy as np
import pytest
from flax import nnx

from configs import default
from fcn_jax import config_checks, inputs
from fcn_jax.models import backbones, pretrained
from fcn_jax.models.classifier import Classifier, load_state_dict, state_dict
from fcn_jax.models.fcn import FCN
from fcn_jax.models.googlenet import AVERAGE_POOL
from fcn_jax.models.layers import receptive_field
from tests import test_classifier_pretraining as pretraining_tests
from tests.helpers import ROOT

WIDTH, FC = pretraining_tests.WIDTH, pretraining_tests.FC
# Table 1: parameters (millions) of FCN-AlexNet, FCN-VGG16, FCN-GoogLeNet (21 classes).
PAPER_PARAMETERS = {"alexnet": 57, "vgg16": 134, "googlenet": 6}
# Table 1's receptive fields: 355 (AlexNet), 404 (VGG16) and 907 (GoogLeNet, whose count
# includes the classifier's 7x7 average pool, which its FCN discards); max stride 32 for all.
PAPER_FIELDS = {"alexnet": 355, "vgg16": 404, "googlenet": 907}
IMAGENET_FC6 = {"alexnet": 6, "vgg16": 7, "googlenet": 7}


def paper_net(backbone: str) -> FCN:
    return nnx.eval_shape(lambda: FCN(21, variant="fcn32s", backbone=backbone,
                                      fc6_kernel=IMAGENET_FC6[backbone], rngs=nnx.Rngs(0)))


@pytest.mark.parametrize("backbone", sorted(backbones.BACKBONES))
def test_full_width_nets_have_the_papers_parameter_counts_and_receptive_fields(backbone):
    columns = backbones.table1_columns(paper_net(backbone))
    assert round(columns["parameters"] / 1e6) == PAPER_PARAMETERS[backbone]
    geometry = paper_net(backbone).trunk.geometry()
    if backbone == "googlenet":
        geometry += ((AVERAGE_POOL, 1),)
    assert receptive_field(geometry) == (PAPER_FIELDS[backbone], 32)
    assert columns["max_stride"] == 32


def test_receptive_field_of_a_chain_by_hand():
    # 3x3 conv: 3; 2x2 pool stride 2: 4, stride 2; 3x3 conv: 4 + 2 * 2 = 8.
    assert receptive_field(((3, 1), (2, 2), (3, 1))) == (8, 2)
    assert receptive_field(()) == (1, 1)


def random_classifier(backbone: str, seed: int = 0) -> Classifier:
    """A classifier with random non-zero biases (3x3 fc6, as the studies')."""
    return pretraining_tests.random_classifier(3, seed, backbone)


def convolutionalized(arrays: dict, backbone: str) -> FCN:
    model = FCN(5, variant="fcn32s", backbone=backbone, width=WIDTH, fc_channels=FC,
                fc6_kernel=3, rngs=nnx.Rngs(params=1))
    report = pretrained.load_reference(model, arrays)
    assert report["discarded"] == ["fc8.bias", "fc8.weight"]
    assert report["convention"] == "torchvision"
    return model


@pytest.mark.parametrize("backbone", sorted(backbones.BACKBONES))
def test_each_classifier_enters_its_fcn_through_the_importer_and_scores_as_the_classifier(
        backbone):
    """On the classifier's own 96x96 input, fc8 applied to what score_fr reads gives the
    classifier's logits: at the centre cell of fc7 (VGG16, AlexNet: fc6 sees exactly pool5),
    or averaged over inception5b (GoogLeNet, as its classifier pools)."""
    classifier = random_classifier(backbone)
    arrays = state_dict(classifier)
    fcn = convolutionalized(arrays, backbone)
    images = np.random.default_rng(1).integers(0, 256, (2, 96, 96, 3)).astype(np.uint8)
    normalised = (images.astype(np.float32) - inputs.RGB_MEAN) / inputs.RGB_STD
    head = np.asarray(fcn.trunk(normalised)[fcn.trunk.head_feature], np.float64)
    assert head.shape[1:3] == (3, 3)
    vector = head.mean(axis=(1, 2)) if backbone == "googlenet" else head[:, 1, 1]
    fc8_weight = arrays[next(k for k in arrays if k.endswith(".weight") and k.startswith(
        "classifier.6" if backbone != "googlenet" else "fc8"))]
    fc8_bias = arrays[next(k for k in arrays if k.endswith(".bias") and k.startswith(
        "classifier.6" if backbone != "googlenet" else "fc8"))]
    np.testing.assert_allclose(vector @ fc8_weight.T + fc8_bias, np.asarray(classifier(images)),
                               rtol=1e-4, atol=1e-4)


def test_the_alexnet_state_dict_has_torchvisions_module_indices_and_shapes():
    """torchvision's AlexNet: features.{0,3,6,8,10} convolutions, classifier.{1,4,6} Linear."""
    arrays = state_dict(random_classifier("alexnet"))
    layers = sorted({k.rpartition(".")[0] for k in arrays})
    assert layers == ["classifier.1", "classifier.4", "classifier.6", "features.0",
                      "features.10", "features.3", "features.6", "features.8"]
    assert arrays["features.0.weight"].shape == (4, 3, 11, 11)  # 64 x 0.0625, OIHW
    assert arrays["classifier.1.weight"].shape == (FC, 16 * 3 * 3)  # conv5: 256 x 0.0625


def test_full_width_alexnet_takes_torchvisions_shapes():
    """Every array torchvision's AlexNet (64, 192, 384, 256, 256 channels; 9216-wide fc6) has,
    in its shape, is what the full-width FCN-AlexNet's importer expects."""
    shapes = {"features.0": (64, 3, 11, 11), "features.3": (192, 64, 5, 5),
              "features.6": (384, 192, 3, 3), "features.8": (256, 384, 3, 3),
              "features.10": (256, 256, 3, 3), "classifier.1": (4096, 9216),
              "classifier.4": (4096, 4096), "classifier.6": (1000, 4096)}
    arrays = {}
    for layer, shape in shapes.items():
        arrays[f"{layer}.weight"] = np.zeros(shape, np.float32)
        arrays[f"{layer}.bias"] = np.zeros(shape[0], np.float32)
    renamed, layout = pretrained.to_reference_names(arrays, "alexnet")
    net = paper_net("alexnet")
    expected = {k: v for k, v in pretrained.model_variables(net.trunk).items()}
    assert layout == "torchvision" and not pretrained.mismatches(
        {k: v for k, v in renamed.items() if not k.startswith("fc8")}, expected)


def test_state_dict_round_trips_for_every_backbone():
    for backbone in backbones.BACKBONES:
        model = random_classifier(backbone, seed=3)
        again = random_classifier(backbone, seed=4)
        load_state_dict(again, state_dict(model))
        for key, value in state_dict(model).items():
            np.testing.assert_array_equal(state_dict(again)[key], value)


def test_weights_of_another_backbone_are_refused_naming_both():
    vgg = state_dict(random_classifier("vgg16"))
    model = FCN(5, variant="fcn32s", backbone="alexnet", width=WIDTH, fc_channels=FC,
                fc6_kernel=3, rngs=nnx.Rngs(0))
    with pytest.raises(pretrained.WeightsError, match="torchvision vgg16 weights but the model "
                                                      "has model.backbone='alexnet'"):
        pretrained.load_reference(model, vgg)
    googlenet = state_dict(random_classifier("googlenet"))
    with pytest.raises(pretrained.WeightsError, match="reference-name googlenet weights but the "
                                                      "model has model.backbone='alexnet'"):
        pretrained.load_reference(model, googlenet)
    fcn = pretrained.reference_arrays(FCN(5, variant="fcn32s", width=WIDTH, fc_channels=FC,
                                          fc6_kernel=3, rngs=nnx.Rngs(0)))
    with pytest.raises(pretrained.WeightsError, match="reference-name vgg16 weights"):
        pretrained.load_reference(model, fcn)


@pytest.mark.parametrize("override, message", [
    ({"model.backbone": "resnet"}, "model.backbone = 'resnet': expected one of"),
    ({"model.backbone": "alexnet", "model.variant": "fcn8s"},
     "model.backbone='alexnet' makes FCN-32s only"),
    ({"model.backbone": "googlenet", "model.variant": "fcn32s", "model.caffe": True},
     "exists for vgg16 only"),
    ({"model.backbone": "alexnet", "model.variant": "fcn32s", "model.decoder": "max_unpool"},
     "max-unpooling decoder reads VGG16's"),
])
def test_impossible_backbone_settings_are_named_before_anything_runs(override, message):
    config = default.get_config()
    for key, value in override.items():
        section, name = key.split(".")
        config[section][name] = value
    with pytest.raises(config_checks.ConfigError, match=message):
        config_checks.validate(config)


def test_backbone_classifiers_share_the_recipe_and_differ_only_in_steps():
    """Table 1's trunks are pretrained the same way (data, optimiser, schedule, batch, width);
    only the step count differs, each trunk's own; the quick forms all take the same few
    steps."""
    from configs import classifier

    def recipe(arg: str) -> dict:
        config = classifier.get_config(arg).to_dict()
        del config["model"]["backbone"]
        return config

    def without_steps(config: dict) -> dict:
        return {**config, "train": {k: v for k, v in config["train"].items()
                                    if k != "num_steps"}}

    full = {name: recipe(name) for name in backbones.BACKBONES}
    quick = {name: recipe(f"{name},quick") for name in backbones.BACKBONES}
    assert all(without_steps(full[name]) == without_steps(full["vgg16"]) for name in full)
    assert all(quick[name] == quick["vgg16"] for name in quick)
    assert {name: full[name]["train"]["num_steps"] for name in full} == \
        classifier.CLASSIFIER_STEPS
    assert classifier.get_config().train.num_steps == classifier.CLASSIFIER_STEPS["vgg16"]


@pytest.mark.slow
def test_make_backbone_classifiers_commands_pretrain_each_backbone(tmp_path):
    """The commands ``make backbone-classifiers`` runs (echoed, its install step assumed
    done), each in its quick form and into a temporary workdir: every backbone's classifier
    file, in its layout."""
    dry = subprocess.run(["make", "-s", "-o", "install", "backbone-classifiers",
                          "PY=echo python"], cwd=ROOT, capture_output=True, text=True,
                         timeout=60)
    assert dry.returncode == 0, dry.stderr
    commands = re.findall(r"python -m fcn_jax.pretrain --config configs/classifier.py:(\w+)\s+"
                          r"--workdir workdirs/classifier_(\w+)", dry.stdout)
    assert [b for b, _ in commands] == [w for _, w in commands] == ["alexnet", "googlenet"]
    env = dict(os.environ, TFDS_DATA_DIR=str(tmp_path / "tfds"))
    for backbone, _ in commands:
        workdir = tmp_path / backbone
        proc = subprocess.run([sys.executable, "-m", "fcn_jax.pretrain", "--config",
                               f"configs/classifier.py:{backbone},quick", "--workdir",
                               str(workdir)], cwd=ROOT, env=env, capture_output=True,
                              text=True, timeout=600)
        assert proc.returncode == 0, proc.stderr[-2000:]
        results = json.loads((workdir / "results.json").read_text())
        assert results["backbone"] == backbone
        with np.load(workdir / results["weights"]) as archive:
            names = set(archive)
        assert ("features.10.weight" in names) == (backbone == "alexnet")
        assert ("inception5b.branch1.weight" in names) == (backbone == "googlenet")


def test_the_backbone_benchmark_prints_table_1s_columns(capsys):
    from benchmarks import backbones as benchmark
    benchmark.main(["--width", "0.0625", "--size", "32", "--batch", "2", "--rounds", "1",
                    "--steps", "1"])
    rows = [line.split(" | ") for line in capsys.readouterr().out.splitlines()
            if line.startswith("| ") and not line.startswith("| backbone")]
    assert [row[0].lstrip("| ") for row in rows] == list(backbones.BACKBONES)
    assert {row[3] for row in rows} == {"32"}  # max stride
    assert rows[0][5] == "1.00"  # VGG16 against itself
