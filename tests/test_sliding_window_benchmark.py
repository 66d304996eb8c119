"""docs/experiments.md's sliding-window benchmark: both nets run end to end, and the VGG16 one
is the classifier file's weights, its dense form equal to the classifier where a window fits."""

import re
import subprocess
import sys

import numpy as np
import pytest
from flax import nnx

from benchmarks import sliding_window
from fcn_jax.data import objects
from fcn_jax.models.classifier import Classifier, load_state_dict, state_dict
from tests.helpers import ROOT


def run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "benchmarks.sliding_window", *args], cwd=ROOT,
                          capture_output=True, text=True, timeout=600)


def random_classifier_file(tmp_path) -> tuple[str, dict]:
    """configs/classifier.py's shape with random weights and biases, as the file it writes."""
    model = Classifier(objects.NUM_CLASSES, width=0.125, fc6_kernel=3,
                            rngs=nnx.Rngs(params=0))
    rng = np.random.default_rng(0)
    for _, variable in nnx.to_flat_state(nnx.state(model, nnx.Param)):
        variable[...] = rng.normal(0, 0.05, variable[...].shape).astype(np.float32)
    arrays = state_dict(model)
    path = str(tmp_path / "vgg16_classifier.npz")
    np.savez(path, **arrays)
    return path, arrays


def test_load_state_dict_inverts_state_dict_and_names_a_wrong_shape(tmp_path):
    _, arrays = random_classifier_file(tmp_path)
    model = Classifier(objects.NUM_CLASSES, width=0.125, fc6_kernel=3,
                            rngs=nnx.Rngs(params=5))
    load_state_dict(model, arrays)
    again = state_dict(model)
    assert again.keys() == arrays.keys()
    for key in arrays:
        np.testing.assert_array_equal(again[key], arrays[key])
    narrow = Classifier(objects.NUM_CLASSES, width=0.0625, fc6_kernel=3,
                             rngs=nnx.Rngs(params=0))
    with pytest.raises(ValueError, match=r"classifier\.6\.weight has shape \(20, 512\); "
                                         r"this classifier needs \(20, 256\)"):
        load_state_dict(narrow, arrays)


def test_the_vgg16_benchmark_net_is_the_file_and_dense_equals_its_window(tmp_path):
    path, arrays = random_classifier_file(tmp_path)
    net = sliding_window.vgg_net(path)
    image = np.random.default_rng(1).integers(0, 256, (1, 96, 96, 3)).astype(np.uint8)
    scores = np.asarray(net.classify(net.state, image))[0]
    np.testing.assert_allclose(np.asarray(net.dense(net.state, image))[0, 1, 1], scores,
                               rtol=1e-4, atol=1e-4)
    assert np.ptp(scores) > 0.1  # the file's weights, not zeros
    fresh = sliding_window.vgg_net()
    assert not np.allclose(np.asarray(fresh.classify(fresh.state, image))[0], scores)


@pytest.mark.parametrize("args, title, rows", [
    (["--sizes", "40", "48"], "patch classifier, 32x32 windows at stride 4", ("40x40", "48x48")),
    (["--net", "vgg16", "--sizes", "128"], "VGG16 classifier (width 0.125), 96x96 windows at "
                                           "stride 32", ("128x128",)),
])
def test_the_documented_benchmark_prints_its_table(args, title, rows):
    proc = run(*args)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.startswith(title)
    for size in rows:
        assert re.search(rf"^\| {size} \| \d+ \| [\d.]+ \| [\d.]+ \| [\d.]+x \|", proc.stdout,
                         re.M), proc.stdout


def test_a_size_below_the_window_is_one_line():
    proc = run("--net", "vgg16", "--sizes", "64")
    assert proc.returncode == 1
    assert proc.stderr.strip() == "error: --sizes 64: smaller than the 96x96 window"
