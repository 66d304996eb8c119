"""Loss and metrics against numpy references written from the definitions (FCN paper:
the loss of sections 3 and 4.3, the metrics of section 5)."""

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


@pytest.mark.parametrize("out_of_range", [NUM_CLASSES, NUM_CLASSES + 1, 254])
def test_labels_outside_the_classes_are_ignored_like_255(data, out_of_range):
    """A label value in [num_classes, 255) is no class: it weighs nothing, as 255 does."""
    logits, labels = data
    marked = labels.copy()
    marked[0, 0, :3] = out_of_range
    ignored = labels.copy()
    ignored[0, 0, :3] = 255
    for normalize in (True, False):
        a = losses.pixel_cross_entropy(jnp.asarray(logits), jnp.asarray(marked),
                                       normalize=normalize)
        b = losses.pixel_cross_entropy(jnp.asarray(logits), jnp.asarray(ignored),
                                       normalize=normalize)
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


def test_confusion_matrix_skips_labels_outside_the_classes_of_any_sign():
    """Negative labels (int input) and labels in [n_cl, 255] count nowhere."""
    gt = np.array([[-1, -3, 0, 1, NUM_CLASSES, 254, 255, 2]], np.int32)
    pred = np.array([[4, 0, 0, 1, 0, 1, 2, 3]], np.int32)
    hist = np.asarray(metrics.confusion_matrix(jnp.asarray(gt), jnp.asarray(pred), NUM_CLASSES))
    want = np.zeros((NUM_CLASSES, NUM_CLASSES), np.int64)
    want[0, 0] = want[1, 1] = want[2, 3] = 1
    np.testing.assert_array_equal(hist, want)


def test_metrics_of_a_one_pixel_and_an_empty_histogram():
    """The denominators' floors of 1 matter only for an empty split: one pixel is exact."""
    one = np.zeros((3, 3), np.int64)
    one[1, 1] = 1
    got = metrics.segmentation_metrics(one)
    assert (got["pixel_acc"], got["mean_acc"], got["mean_iu"], got["fw_iu"]) == (1, 1, 1, 1)
    empty = metrics.segmentation_metrics(np.zeros((3, 3), np.int64))
    assert empty["pixel_acc"] == 0.0 and empty["fw_iu"] == 0.0
    assert np.isnan(empty["mean_acc"]) and np.isnan(empty["mean_iu"])


def test_majority_baseline_predicts_the_most_frequent_true_class():
    hist = np.array([[3, 1, 0], [2, 5, 1], [0, 0, 0]])  # class 1: 8 true pixels of 12
    got = metrics.majority_baseline(hist)
    assert got["pixel_acc"] == 8 / 12
    np.testing.assert_allclose(got["per_class_iu"][:2], [0.0, 8 / 12])
    assert np.isnan(got["per_class_iu"][2])
    np.testing.assert_allclose(got["mean_iu"], 4 / 12)
    np.testing.assert_allclose(got["fw_iu"], 8 / 12 * 8 / 12)


def test_absent_class_is_skipped_by_the_means():
    gt = np.array([[0, 0, 1, 1]])
    pred = np.array([[0, 1, 1, 1]])
    hist, want = numpy_score(gt, pred, 3)  # class 2 never appears: IU is NaN
    got = metrics.segmentation_metrics(hist)
    assert np.isnan(got["per_class_iu"][2])
    np.testing.assert_allclose(got["mean_iu"], (1 / 2 + 2 / 3) / 2)
    np.testing.assert_allclose(got["mean_iu"], want["mean_iu"])
    np.testing.assert_allclose(got["fw_iu"], want["fw_iu"])


def numpy_boundary_counts(labels, pred, num_classes, tolerance):
    """Boundary pixels and matches by loops over pixels and their neighbourhoods."""
    n, h, w = labels.shape
    valid = (labels >= 0) & (labels < num_classes)

    def edges(m):
        out = np.zeros(m.shape, bool)
        for b, i, j in np.ndindex(n, h, w):
            for di, dj in ((0, 1), (1, 0), (0, -1), (-1, 0)):
                r, c = i + di, j + dj
                if (0 <= r < h and 0 <= c < w and valid[b, i, j] and valid[b, r, c]
                        and m[b, i, j] != m[b, r, c]):
                    out[b, i, j] = True
        return out

    def matched(a, b):
        count = 0
        for k, i, j in zip(*np.nonzero(a)):
            window = b[k, max(i - tolerance, 0):i + tolerance + 1,
                       max(j - tolerance, 0):j + tolerance + 1]
            count += bool(window.any())
        return count

    true_edges, pred_edges = edges(labels), edges(pred)
    return [matched(pred_edges, true_edges), pred_edges.sum(),
            matched(true_edges, pred_edges), true_edges.sum()]


def test_boundary_counts_match_loops():
    """Ignored pixels (255, -1 and a label equal to the class count) next to each other and to
    valid ones, with predictions that change inside them: no boundary is counted there."""
    rng = np.random.default_rng(7)
    labels = np.zeros((2, 24, 20), np.int64)
    labels[:, 5:15, 4:12] = 1
    labels[1, 10:20, 8:18] = 2
    labels[0, :3] = 255
    labels[0, 3:5, :6] = 4
    labels[1, 6:12, 0] = 255  # rows whose first pixel is ignored and the rest hold edges
    labels[1, 20:23, 2:6] = -1
    pred = labels.copy()
    pred[labels >= 4] = rng.integers(0, 4, (labels >= 4).sum())
    pred[:, 6:16, 5:13] = np.where(rng.random((2, 10, 8)) < 0.8, 1, 3)
    for tolerance in (0, 1, 2, 3):
        got = metrics.boundary_counts(jnp.asarray(labels), jnp.asarray(pred), 4, tolerance)
        want = numpy_boundary_counts(labels, pred, 4, tolerance)
        np.testing.assert_array_equal(np.asarray(got), want)
    default = metrics.boundary_counts(jnp.asarray(labels), jnp.asarray(pred), 4)
    np.testing.assert_array_equal(np.asarray(default), numpy_boundary_counts(labels, pred, 4, 2))


def test_boundary_f_score_of_a_perfect_a_shifted_and_an_empty_prediction():
    labels = np.zeros((1, 16, 16), np.int64)
    labels[:, 4:12, 4:12] = 1
    perfect = metrics.boundary_f_score(
        metrics.boundary_counts(jnp.asarray(labels), jnp.asarray(labels), 2))
    assert perfect["boundary_f"] == 1.0
    shifted = np.roll(labels, 3, axis=2)  # 3 px off: beyond the 2 px tolerance on one side
    score = metrics.boundary_f_score(
        metrics.boundary_counts(jnp.asarray(labels), jnp.asarray(shifted), 2))
    assert 0.0 < score["boundary_f"] < 1.0
    blank = metrics.boundary_f_score(
        metrics.boundary_counts(jnp.asarray(labels), jnp.zeros_like(jnp.asarray(labels)), 2))
    assert blank["boundary_f"] == 0.0 and blank["boundary_recall"] == 0.0


@pytest.mark.parametrize("counts, want", [
    ((3, 4, 2, 5), (3 / 4, 2 / 5, 2 * (3 / 4) * (2 / 5) / (3 / 4 + 2 / 5))),
    ((1, 4, 3, 5), (1 / 4, 3 / 5, 2 * (1 / 4) * (3 / 5) / (1 / 4 + 3 / 5))),
    ((3, 4, 0, 5), (3 / 4, 0.0, 0.0)),
    ((0, 4, 0, 5), (0.0, 0.0, 0.0)),  # boundaries on both sides, none within tolerance
    ((0, 4, 0, 0), (0.0, np.nan, 0.0)),  # no true boundary
    ((0, 0, 0, 5), (np.nan, 0.0, 0.0)),  # nothing predicted
    ((0, 0, 0, 0), (np.nan, np.nan, np.nan)),  # no boundary anywhere
])
def test_boundary_f_score_is_the_harmonic_mean_of_precision_and_recall(counts, want):
    got = metrics.boundary_f_score(np.array(counts))
    np.testing.assert_allclose(
        [got["boundary_precision"], got["boundary_recall"], got["boundary_f"]], want,
        rtol=1e-12)
