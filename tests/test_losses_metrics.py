"""Loss and metrics against numpy references written from the definitions (REFERENCE.md)."""

import jax.numpy as jnp
import numpy as np
import pytest

from fcn_jax import losses, metrics
from tests.helpers import random_batch

NUM_CLASSES = 5


def numpy_pixel_ce(logits, labels, weights=None):
    """Softmax cross-entropy per pixel by loops over valid pixels; weighted mean and sum."""
    total, norm = 0.0, 0.0
    for z, y in zip(logits.reshape(-1, logits.shape[-1]), labels.reshape(-1)):
        if y == 255:
            continue
        z = z.astype(np.float64)
        log_p = z - z.max() - np.log(np.sum(np.exp(z - z.max())))
        w = 1.0 if weights is None else weights[y]
        total += -w * log_p[y]
        norm += w
    return total / norm, total


def numpy_score(gt, pred, n_cl):
    """The reference release's score.py, re-derived: fast_hist then the four metrics."""
    hist = np.zeros((n_cl, n_cl), np.int64)
    for a, b in zip(gt.reshape(-1), pred.reshape(-1)):
        if 0 <= a < n_cl:
            hist[a, b] += 1
    acc = np.diag(hist).sum() / hist.sum()
    with np.errstate(divide="ignore", invalid="ignore"):
        mean_acc = np.nanmean(np.diag(hist) / hist.sum(1))
        iu = np.diag(hist) / (hist.sum(1) + hist.sum(0) - np.diag(hist))
    freq = hist.sum(1) / hist.sum()
    fw = (freq[freq > 0] * iu[freq > 0]).sum()
    return hist, {"pixel_acc": acc, "mean_acc": mean_acc, "mean_iu": np.nanmean(iu),
                  "fw_iu": fw}


@pytest.fixture
def data():
    batch = random_batch(0, 2, 9, 7, NUM_CLASSES, ignore_fraction=0.25)
    logits = np.random.default_rng(1).normal(0, 3, (2, 9, 7, NUM_CLASSES)).astype(np.float32)
    assert (batch["label"] == 255).any()
    return logits, batch["label"]


def test_mean_and_summed_loss_match_numpy(data):
    logits, labels = data
    want_mean, want_sum = numpy_pixel_ce(logits, labels)
    got_mean = losses.pixel_cross_entropy(jnp.asarray(logits), jnp.asarray(labels))
    got_sum = losses.pixel_cross_entropy(jnp.asarray(logits), jnp.asarray(labels),
                                         normalize=False)
    np.testing.assert_allclose(got_mean, want_mean, rtol=1e-5)
    np.testing.assert_allclose(got_sum, want_sum, rtol=1e-5)


def test_class_weighted_loss_matches_numpy(data):
    logits, labels = data
    weights = np.array([0.5, 1.0, 2.0, 3.0, 0.25], np.float32)
    want, _ = numpy_pixel_ce(logits, labels, weights)
    got = losses.pixel_cross_entropy(jnp.asarray(logits), jnp.asarray(labels),
                                     class_weights=jnp.asarray(weights))
    np.testing.assert_allclose(got, want, rtol=1e-5)


def test_ignored_pixels_do_not_change_the_loss(data):
    logits, labels = data
    scrambled = logits.copy()
    scrambled[labels == 255] = 1e4  # huge logits on ignored pixels only
    a = losses.pixel_cross_entropy(jnp.asarray(logits), jnp.asarray(labels))
    b = losses.pixel_cross_entropy(jnp.asarray(scrambled), jnp.asarray(labels))
    np.testing.assert_allclose(a, b, rtol=1e-6)


def test_all_ignored_batch_has_zero_loss():
    labels = jnp.full((1, 4, 4), 255, jnp.uint8)
    assert float(losses.pixel_cross_entropy(jnp.ones((1, 4, 4, 3)), labels)) == 0.0


def test_confusion_matrix_and_metrics_match_reference(data):
    logits, labels = data
    pred = logits.argmax(-1)
    pred[0, 0, 0] = NUM_CLASSES - 1  # make sure every column can be non-empty
    want_hist, want = numpy_score(labels, pred, NUM_CLASSES)
    hist = np.asarray(metrics.confusion_matrix(jnp.asarray(labels), jnp.asarray(pred),
                                               NUM_CLASSES))
    np.testing.assert_array_equal(hist, want_hist)
    got = metrics.segmentation_metrics(hist)
    for key, value in want.items():
        np.testing.assert_allclose(got[key], value, rtol=1e-12)
    assert len(got["per_class_iu"]) == NUM_CLASSES


def test_absent_class_is_skipped_by_the_means():
    gt = np.array([[0, 0, 1, 1]])
    pred = np.array([[0, 1, 1, 1]])
    hist, want = numpy_score(gt, pred, 3)  # class 2 never appears: IU is NaN
    got = metrics.segmentation_metrics(hist)
    assert np.isnan(got["per_class_iu"][2])
    np.testing.assert_allclose(got["mean_iu"], (1 / 2 + 2 / 3) / 2)
    np.testing.assert_allclose(got["mean_iu"], want["mean_iu"])
    np.testing.assert_allclose(got["fw_iu"], want["fw_iu"])
