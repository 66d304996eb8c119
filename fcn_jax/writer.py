"""Run logs: one strict JSON line per log step in ``metrics.jsonl`` (an undefined value, e.g.
boundary precision before any boundary is predicted, is ``null``) plus TensorBoard event files
(which leave undefined values out).

Accuracies, IU and boundary scores are computed as fractions and logged in percent, as
``results.json`` holds them; each record says so (``"units": "percent"``). ``read_metrics``
converts the records of logs written before (no ``units``: fractions) to percent.
"""

import json
import os
import sys

import numpy as np
from PIL import Image

from fcn_jax.workdir import strict_json


def import_summary_writer():
    """tensorboardX's ``SummaryWriter``, imported with torch kept out: tensorboardX tries
    ``import torch`` at import only to accept torch tensors, which this project never logs,
    and that import costs every process 1-2 s where torch is installed. Torch stays importable
    afterwards."""
    blocked = "torch" not in sys.modules
    if blocked:
        sys.modules["torch"] = None  # makes ``import torch`` raise ImportError
    try:
        from tensorboardX import SummaryWriter
    finally:
        if blocked:
            del sys.modules["torch"]
    return SummaryWriter


SummaryWriter = import_summary_writer()

UNITS = "percent"
LOG_NAME = "metrics.jsonl"
# Scalars computed as fractions in [0, 1] and logged as percent (a list: per class).
FRACTIONS = ("pixel_acc", "mean_acc", "mean_iu", "fw_iu", "per_class_iu", "boundary_f",
             "boundary_precision", "boundary_recall", "accuracy", "top1_accuracy")


def in_percent(scalars: dict) -> dict:
    """``scalars`` (JSON values) with every fraction of ``FRACTIONS`` times 100 (None and NaN
    stay)."""
    def scale(value):
        if isinstance(value, list):
            return [scale(v) for v in value]
        return None if value is None else 100.0 * value
    return {k: scale(v) if k in FRACTIONS else v for k, v in scalars.items()}


class MetricWriter:
    """Append scalars to ``<workdir>/metrics.jsonl`` and ``<workdir>/tensorboard``."""

    def __init__(self, workdir: str, enabled: bool = True):
        self.enabled = enabled
        self.path = os.path.join(workdir, LOG_NAME)
        self.tensorboard = SummaryWriter(os.path.join(workdir, "tensorboard")) if enabled else None

    def write(self, step: int, split: str, scalars: dict) -> None:
        """Log a dict of scalars (lists are written to JSON only) for ``split`` at ``step``;
        fractions are logged in percent."""
        if not self.enabled:
            return
        scalars = in_percent({k: to_json(v) for k, v in scalars.items()})
        record = {"step": int(step), "split": split, "units": UNITS, **scalars}
        with open(self.path, "a", encoding="utf-8") as f:
            f.write(strict_json(record) + "\n")
        for key, value in scalars.items():
            if value is not None and np.ndim(value) == 0 and np.isfinite(value):
                self.tensorboard.add_scalar(f"{split}/{key}", float(value), int(step))
        self.tensorboard.flush()

    def image(self, step: int, tag: str, path: str | None) -> None:
        """Log a PNG file (e.g. the overlays) to TensorBoard's images; None: nothing."""
        if not self.enabled or path is None:
            return
        with Image.open(path) as f:
            pixels = np.asarray(f.convert("RGB"))
        self.tensorboard.add_image(tag, pixels, int(step), dataformats="HWC")
        self.tensorboard.flush()

    def truncate(self, last_step: int) -> None:
        """Drop records after ``last_step`` (written by a run that died before its next
        checkpoint), so a resumed run logs each step once."""
        if not self.enabled or not os.path.exists(self.path):
            return
        with open(self.path, encoding="utf-8") as f:
            lines = f.readlines()
        kept = [line for line in lines if line.strip() and complete_record(line, last_step)]
        if len(kept) == len(lines):
            return
        tmp = self.path + ".tmp"
        with open(tmp, "w", encoding="utf-8") as f:
            f.writelines(kept)
        os.replace(tmp, self.path)

    def close(self) -> None:
        if self.tensorboard is not None:
            self.tensorboard.close()


def complete_record(line: str, last_step: int) -> bool:
    """Whether a metrics.jsonl line is a whole record at or before ``last_step``."""
    try:
        return json.loads(line)["step"] <= last_step
    except (json.JSONDecodeError, KeyError):
        return False  # a line cut short by a kill


def to_json(value):
    """numpy scalars and arrays -> plain Python for json.dumps."""
    return np.asarray(value).tolist()


def read_metrics(workdir: str) -> list[dict]:
    """All records of ``<workdir>/metrics.jsonl`` (empty list if none), in percent: records
    of older logs, which held fractions and no ``units``, are converted."""
    path = os.path.join(workdir, LOG_NAME)
    if not os.path.exists(path):
        return []
    with open(path, encoding="utf-8") as f:
        records = [json.loads(line) for line in f if line.strip()]
    return [r if r.get("units") == UNITS else {**in_percent(r), "units": UNITS}
            for r in records]
