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
