"""Confusion matrix and the FCN paper's four metrics (section 5, reference ``score.py``).

The histogram ``hist[gt, pred]`` is accumulated over the whole split on device; pixels whose
label is outside [0, n_cl) (255 = ignore) are never counted. Metrics are computed from the
dataset-level histogram, not averaged per image.
"""

import jax
import jax.numpy as jnp
import numpy as np


def confusion_matrix(labels: jax.Array, predictions: jax.Array, num_classes: int) -> jax.Array:
    """int32 [n_cl, n_cl] histogram of (ground truth, prediction) over valid pixels."""
    labels = labels.astype(jnp.int32).reshape(-1)
    predictions = predictions.astype(jnp.int32).reshape(-1)
    valid = (labels >= 0) & (labels < num_classes)
    index = jnp.where(valid, labels * num_classes + predictions, 0)
    counts = jnp.zeros(num_classes * num_classes, jnp.int32).at[index].add(valid.astype(jnp.int32))
    return counts.reshape(num_classes, num_classes)


# The four metrics of the FCN paper's tables (section 5), as (key, column label).
PAPER_METRICS = (("pixel_acc", "pixel acc"), ("mean_acc", "mean acc"), ("mean_iu", "mean IU"),
                 ("fw_iu", "f.w. IU"))


def segmentation_metrics(hist: np.ndarray) -> dict:
    """Pixel accuracy, mean accuracy, mean IU, frequency-weighted IU and per-class IU.

    Classes absent from both ground truth and predictions give NaN IU and are skipped by the
    means (``nanmean``), exactly as the reference ``score.py``.
    """
    hist = np.asarray(hist, np.float64)
    diag = np.diag(hist)
    gt_total = hist.sum(axis=1)
    pred_total = hist.sum(axis=0)
    with np.errstate(divide="ignore", invalid="ignore"):
        class_acc = diag / gt_total
        iu = diag / (gt_total + pred_total - diag)
    freq = gt_total / max(gt_total.sum(), 1.0)
    present = gt_total > 0
    return {
        "pixel_acc": float(diag.sum() / max(gt_total.sum(), 1.0)),
        "mean_acc": float(np.nanmean(class_acc)) if np.any(present) else float("nan"),
        "mean_iu": float(np.nanmean(iu)) if np.any(~np.isnan(iu)) else float("nan"),
        "fw_iu": float(np.sum(freq[present] * iu[present])),
        "per_class_iu": [float(v) for v in iu],
    }


BOUNDARY_TOLERANCE = 2  # pixels (Chebyshev distance) a boundary may be off and still match


def label_boundaries(labels: jax.Array, valid: jax.Array) -> jax.Array:
    """bool [B,H,W]: valid pixels with a valid 4-neighbour of a different label."""
    def differs(a, b, va, vb):
        return (a != b) & va & vb

    across = differs(labels[:, :, :-1], labels[:, :, 1:], valid[:, :, :-1], valid[:, :, 1:])
    down = differs(labels[:, :-1], labels[:, 1:], valid[:, :-1], valid[:, 1:])
    edges = jnp.zeros(labels.shape, bool)
    edges = edges.at[:, :, :-1].max(across).at[:, :, 1:].max(across)
    return edges.at[:, :-1].max(down).at[:, 1:].max(down)


def dilate(mask: jax.Array, radius: int) -> jax.Array:
    """bool [B,H,W]: pixels within Chebyshev distance ``radius`` of a True pixel."""
    size = 2 * radius + 1
    return jax.lax.reduce_window(mask, False, jax.lax.bitwise_or, (1, size, size), (1, 1, 1),
                                 "SAME")


def boundary_counts(labels: jax.Array, predictions: jax.Array, num_classes: int,
                    tolerance: int = BOUNDARY_TOLERANCE) -> jax.Array:
    """int32 [4]: matched and total predicted boundary pixels, matched and total true ones.

    Class boundaries of the prediction and of the ground truth, both restricted to pixels with
    a valid label (255 and padding excluded). A boundary pixel matches when the other map has
    a boundary within ``tolerance`` pixels. Summed over a split, these give the boundary
    F-score (Csurka et al., BMVC 2013, class-agnostic): accuracy near object edges, which
    mean IU, dominated by object interiors, hardly sees.
    """
    labels = labels.astype(jnp.int32)
    valid = (labels >= 0) & (labels < num_classes)
    true_edges = label_boundaries(labels, valid)
    pred_edges = label_boundaries(predictions.astype(jnp.int32), valid)
    masks = (pred_edges & dilate(true_edges, tolerance), pred_edges,
             true_edges & dilate(pred_edges, tolerance), true_edges)
    return jnp.stack([jnp.sum(m, dtype=jnp.int32) for m in masks])


def boundary_f_score(counts) -> dict:
    """Boundary precision, recall and F-score from summed ``boundary_counts`` (NaN if empty)."""
    matched_pred, pred, matched_true, true = (float(c) for c in np.asarray(counts))
    precision = matched_pred / pred if pred else float("nan")
    recall = matched_true / true if true else float("nan")
    if np.isnan(precision) or np.isnan(recall):
        f_score = 0.0 if pred or true else float("nan")
    else:
        f_score = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return {"boundary_precision": precision, "boundary_recall": recall, "boundary_f": f_score}


def majority_baseline(hist: np.ndarray) -> dict:
    """Metrics of predicting the most frequent ground-truth class everywhere."""
    hist = np.asarray(hist)
    gt_total = hist.sum(axis=1)
    baseline = np.zeros_like(hist)
    baseline[:, int(np.argmax(gt_total))] = gt_total
    return segmentation_metrics(baseline)
