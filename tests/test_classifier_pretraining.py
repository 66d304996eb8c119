"""The ImageNet stand-in: object images, the VGG16 classifier in torchvision's layout, and its
convolutionalization into an FCN through the weight importer (FCN paper, section 3.1)."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest
from flax import nnx

from fcn_jax import inputs
from fcn_jax.data import embedded, objects, objects_dataset
from fcn_jax.models import pretrained
from fcn_jax.models.classifier import Classifier, input_size, state_dict
from fcn_jax.models.fcn import FCN
from tests.helpers import ROOT, tiny_cli_overrides

WIDTH, FC = 0.0625, 24


def random_classifier(fc6_kernel: int, seed: int = 0, backbone: str = "vgg16") -> Classifier:
    """A classifier with random non-zero biases, so every bias takes part in the checks."""
    model = Classifier(objects.NUM_CLASSES, backbone=backbone, width=WIDTH, fc_channels=FC,
                       fc6_kernel=fc6_kernel, rngs=nnx.Rngs(params=seed))
    rng = np.random.default_rng(seed)
    for path, variable in nnx.to_flat_state(nnx.state(model, nnx.Param)):
        if path[-1] == "bias":
            variable[...] = rng.normal(0, 0.1, variable[...].shape).astype(np.float32)
    return model


def convolutionalized(arrays: dict, fc6_kernel: int) -> FCN:
    """An FCN-32s whose trunk is the classifier's, through the torchvision import path."""
    model = FCN(5, variant="fcn32s", width=WIDTH, fc_channels=FC, fc6_kernel=fc6_kernel,
                rngs=nnx.Rngs(params=1))
    report = pretrained.load_reference(model, arrays)
    assert report["layout"] == "torchvision" and report["discarded"] == ["fc8.bias",
                                                                          "fc8.weight"]
    return model


def numpy_fc_head(pool5: np.ndarray, arrays: dict, kernel: int) -> np.ndarray:
    """The classifier's Linear fc6 -> fc7 -> fc8 applied to every k x k window of a pool5
    map [H, W, C] zero-padded as a SAME convolution is: logits [H, W, classes]."""
    low = (kernel - 1) // 2
    padded = np.pad(pool5, ((low, kernel - 1 - low), (low, kernel - 1 - low), (0, 0)))
    height, width = pool5.shape[:2]
    out = np.zeros((height, width, arrays["classifier.6.weight"].shape[0]))
    for i in range(height):
        for j in range(width):
            window = padded[i:i + kernel, j:j + kernel].transpose(2, 0, 1).reshape(-1)
            x = np.maximum(arrays["classifier.0.weight"] @ window + arrays["classifier.0.bias"],
                           0)
            x = np.maximum(arrays["classifier.3.weight"] @ x + arrays["classifier.3.bias"], 0)
            out[i, j] = arrays["classifier.6.weight"] @ x + arrays["classifier.6.bias"]
    return out


def fc8_as_convolution(fc7: np.ndarray, arrays: dict) -> np.ndarray:
    """fc8 applied at every position of an fc7 map: the classifier's scores at stride 32."""
    return fc7 @ arrays["classifier.6.weight"].T + arrays["classifier.6.bias"]


def test_every_family_renders_a_visible_object_deterministically():
    seen = set()
    for seed in range(400):
        image, label = objects.render_object(seed, 64)
        assert image.shape == (64, 64, 3) and image.dtype == np.uint8
        seen.add(label)
    assert seen == set(range(objects.NUM_CLASSES)) and objects.NUM_CLASSES == 20
    again, label = objects.render_object(7, 64)
    assert np.array_equal(again, objects.render_object(7, 64)[0])
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[0:96, 0:96].astype(np.float32)
    for name, family in objects.FAMILIES.items():
        for radius in (10.0, 40.0):
            mask = family(rng, xx - 48, yy - 48, radius)
            assert 40 < mask.sum() < 0.9 * mask.size, (name, radius, mask.sum())


def test_dataset_splits_hold_the_rendered_images_and_their_labels(tmp_path):
    builder = objects_dataset.prepare(tmp_path, "tiny")
    images, labels = objects_dataset.load_split(builder, "train")
    assert images.shape == (64, 64, 64, 3) and labels.shape == (64,)
    _, index = embedded.parse_example_id(builder.as_data_source("train")[0]["id"])
    expected, label = objects.render_object(
        embedded.example_seed(objects_dataset.BASE_SEED, "train", index), 64)
    assert np.array_equal(images[0], expected) and labels[0] == label
    validation = objects_dataset.load_split(builder, "validation")[0]
    assert len(validation) == 32 and not any(np.array_equal(validation[0], x) for x in images)


def test_the_state_dict_is_torchvision_vgg16_and_computes_the_same_logits_in_torch():
    torch = pytest.importorskip("torch")
    model = random_classifier(3)
    arrays = state_dict(model)
    layers, in_ch = [], 3
    for _, depth, channels in pretrained.VGG16_BLOCKS:
        for _ in range(depth):
            out_ch = max(4, round(channels * WIDTH))
            layers += [torch.nn.Conv2d(in_ch, out_ch, 3, padding=1), torch.nn.ReLU()]
            in_ch = out_ch
        layers.append(torch.nn.MaxPool2d(2))
    features = torch.nn.Sequential(*layers)
    head = torch.nn.Sequential(torch.nn.Linear(in_ch * 9, FC), torch.nn.ReLU(),
                               torch.nn.Dropout(), torch.nn.Linear(FC, FC), torch.nn.ReLU(),
                               torch.nn.Dropout(), torch.nn.Linear(FC, objects.NUM_CLASSES))
    net = torch.nn.Module()
    net.features, net.classifier = features, head
    net.load_state_dict({k: torch.from_numpy(np.array(v)) for k, v in arrays.items()}, strict=True)
    net.eval()
    images = np.random.default_rng(0).integers(0, 256, (2, 96, 96, 3)).astype(np.uint8)
    mean = np.array([0.485, 0.456, 0.406]) * 255
    std = np.array([0.229, 0.224, 0.225]) * 255
    x = torch.from_numpy(((images - mean) / std).transpose(0, 3, 1, 2).astype(np.float32))
    with torch.no_grad():
        expected = net.classifier(torch.flatten(net.features(x), 1)).numpy()
    np.testing.assert_allclose(np.asarray(model(images)), expected, rtol=1e-4, atol=1e-4)


def test_convolutionalized_net_scores_the_classifiers_windows_at_stride_32():
    """On the classifier's own input size the FCN's centre cell is the classifier; on a larger
    image each stride-32 cell is the classifier's fc layers on its pool5 window (numpy)."""
    kernel = 3
    classifier = random_classifier(kernel)
    arrays = state_dict(classifier)
    fcn = convolutionalized(arrays, kernel)
    images = np.random.default_rng(1).integers(0, 256, (2, 96, 96, 3)).astype(np.uint8)
    normalised = (images.astype(np.float32) - inputs.RGB_MEAN) / inputs.RGB_STD
    fc7 = np.asarray(fcn.trunk(normalised)["fc7"])
    np.testing.assert_allclose(fc8_as_convolution(fc7[:, 1, 1], arrays),
                               np.asarray(classifier(images)), rtol=1e-4, atol=1e-4)

    large = np.random.default_rng(2).integers(0, 256, (1, 160, 224, 3)).astype(np.uint8)
    features = fcn.trunk((large.astype(np.float32) - inputs.RGB_MEAN)
                         / inputs.RGB_STD)
    pool5, fc7 = np.asarray(features["pool5"][0]), np.asarray(features["fc7"][0])
    assert pool5.shape[:2] == (5, 7)
    np.testing.assert_allclose(fc8_as_convolution(fc7, arrays),
                               numpy_fc_head(pool5.astype(np.float64), arrays, kernel),
                               rtol=1e-4, atol=1e-4)


def test_a_classifier_of_another_fc6_size_is_refused_naming_fc6():
    arrays = state_dict(random_classifier(2))
    model = FCN(5, variant="fcn32s", width=WIDTH, fc_channels=FC, fc6_kernel=3,
                rngs=nnx.Rngs(params=0))
    with pytest.raises(pretrained.WeightsError, match=r"wrong shape: fc6.weight"):
        pretrained.load_reference(model, arrays)


def test_the_classifier_refuses_images_of_another_size():
    with pytest.raises(ValueError, match="takes 96x96 images"):
        random_classifier(3)(np.zeros((1, 64, 64, 3), np.uint8))
    assert input_size(7) == 224


def run(module: str, *args: str, env: dict) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", module, *args], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=600)


@pytest.mark.slow
def test_pretrain_then_fine_tune_through_the_commands(tmp_path):
    """The pipeline as a user runs it: pretrain (reused when rerun, refused with another
    config), then fcn_jax.main initialised from the classifier's file."""
    env = dict(os.environ, TFDS_DATA_DIR=str(tmp_path / "tfds"))
    classifier_dir = tmp_path / "classifier"
    tiny = tiny_cli_overrides(2)
    trunk = [f"--config.model.{k}={tiny['model.' + k]}" for k in ("width", "fc_channels")]
    first = run("fcn_jax.pretrain", "--config", "configs/classifier.py:quick", "--workdir",
                str(classifier_dir), *trunk, env=env)
    assert first.returncode == 0, first.stderr[-2000:]
    results = json.loads((classifier_dir / "results.json").read_text())
    assert 0 <= results["top1_accuracy"] <= 100 and results["num_classes"] == 20
    weights_file = classifier_dir / "vgg16_classifier.npz"
    with np.load(weights_file) as archive:
        assert "classifier.0.weight" in archive and "features.0.weight" in archive
    modified = weights_file.stat().st_mtime_ns

    again = run("fcn_jax.pretrain", "--config", "configs/classifier.py:quick", "--workdir",
                str(classifier_dir), *trunk, env=env)
    assert again.returncode == 0 and "reusing it" in again.stdout
    assert weights_file.stat().st_mtime_ns == modified

    # Training is deterministic and the file holds only the weights: a second workdir's
    # classifier is the same file, so --reuse-from can match trials started from either.
    twin = run("fcn_jax.pretrain", "--config", "configs/classifier.py:quick", "--workdir",
               str(tmp_path / "twin"), *trunk, env=env)
    assert twin.returncode == 0, twin.stderr[-2000:]
    assert (tmp_path / "twin" / "vgg16_classifier.npz").read_bytes() == weights_file.read_bytes()

    other = run("fcn_jax.pretrain", "--config", "configs/classifier.py:quick", "--workdir",
                str(classifier_dir), *trunk, "--config.seed=1", env=env)
    assert other.returncode == 2 and other.stderr.count("\n") == 1
    assert "another config" in other.stderr and weights_file.stat().st_mtime_ns == modified

    overrides = dict(tiny, **{"model.fc6_kernel": 2,
                                                "model.init_from": str(weights_file)})
    fine_tune = run("fcn_jax.main", "--config", "configs/default.py", "--workdir",
                    str(tmp_path / "fcn"), *[f"--config.{k}={v}" for k, v in overrides.items()],
                    env=env)
    assert fine_tune.returncode == 0, fine_tune.stderr[-2000:]
    assert "initialised from" in fine_tune.stdout and "torchvision" in fine_tune.stdout


def test_pretrain_refuses_images_that_do_not_fit_fc6(tmp_path):
    env = dict(os.environ, TFDS_DATA_DIR=str(tmp_path / "tfds"))
    result = run("fcn_jax.pretrain", "--config", "configs/classifier.py:quick", "--workdir",
                 str(tmp_path / "w"), "--config.model.fc6_kernel=3", env=env)
    assert result.returncode == 2
    assert "model.fc6_kernel=3 needs 96x96" in result.stderr
    assert not (tmp_path / "w" / "config.json").exists()
