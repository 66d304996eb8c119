"""Small shared builders for tests: a tiny config and random segmentation batches."""

import os
import subprocess
import sys

import numpy as np

from configs import default

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


DEVICE_COUNT_FLAG = "--xla_force_host_platform_device_count"


def environment_without_cpu_device_count(devices: int | None = None) -> dict:
    """This process's environment less what fixes JAX's CPU device count (the other XLA
    flags kept, so a command compiles as the tests do); with ``devices``, that count."""
    env = {k: v for k, v in os.environ.items() if k != "JAX_NUM_CPU_DEVICES"}
    flags = [f for f in env.pop("XLA_FLAGS", "").split() if not f.startswith(DEVICE_COUNT_FLAG)]
    flags += [f"{DEVICE_COUNT_FLAG}={devices}"] if devices else []
    return {**env, "XLA_FLAGS": " ".join(flags)} if flags else env


def run_module(module: str, *args: str, timeout: int = 300) -> subprocess.CompletedProcess:
    """``python -m module args`` from the repository root on the CPU; output captured."""
    return subprocess.run([sys.executable, "-m", module, *args], cwd=ROOT, capture_output=True,
                          text=True, timeout=timeout, env=dict(os.environ, JAX_PLATFORMS="cpu"))


def tiny_config(variant: str = "fcn8s"):
    """A CPU-tiny config: narrow VGG, small crops, few steps."""
    c = default.get_config(variant)
    c.model.width = 0.0625
    c.model.fc_channels = 32
    c.data.builder_config = "tiny"
    c.data.crop_size = 48
    c.data.num_threads = 1
    c.data.prefetch = 2
    c.train.batch_size = 8
    c.eval.batch_size = 8
    c.optim.warmup_steps = 0
    return c


def random_batch(seed: int, batch: int, height: int, width: int, num_classes: int,
                 ignore_fraction: float = 0.1) -> dict:
    """Random uint8 images and labels with some 255 (ignore) pixels."""
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, num_classes, (batch, height, width)).astype(np.uint8)
    labels[rng.random(labels.shape) < ignore_fraction] = 255
    images = rng.integers(0, 256, (batch, height, width, 3)).astype(np.uint8)
    return {"image": images, "label": labels}


def tiny_cli_overrides(num_steps: int) -> dict:
    """Command-line overrides for a seconds-long run of configs/default.py on the tiny data."""
    return {"data.builder_config": "tiny", "data.crop_size": 32, "data.num_threads": 1,
            "model.width": 0.0625, "model.fc_channels": 16, "optim.warmup_steps": 0,
            "train.batch_size": 4, "eval.batch_size": 4, "train.num_steps": num_steps,
            "train.log_every": 1, "train.eval_every": num_steps, "train.checkpoint_every": 2,
            "train.num_overlays": 0}


def overridden_config(variant: str, data_dir: str, overrides: dict):
    """configs/default.py:variant with the data dir and ``overrides`` applied in-process."""
    c = default.get_config(variant)
    c.data.data_dir = data_dir
    for key, value in overrides.items():
        section, field = key.split(".")
        c[section][field] = value
    return c


def cli_flags(variant: str, data_dir: str, workdir: str, overrides: dict) -> list[str]:
    """The fcn_jax.main flags that give ``overridden_config``."""
    return (["--config", f"configs/default.py:{variant}", "--workdir", workdir,
             f"--config.data.data_dir={data_dir}"]
            + [f"--config.{k}={v}" for k, v in overrides.items()])
