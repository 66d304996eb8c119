"""Sliding-window patch classification vs the same net run fully convolutionally (paper, 3.1, 4.4).

    python -m experiments.sliding_window --workdir workdirs/experiments/sliding_window

1. Inference: wall time and XLA FLOPs of classifying every window as a separate crop vs running
   the convolutionalized classifier once over the image, for growing image sizes.
2. Training at an equal time budget: the same patch classifier trained on randomly sampled
   windows (one label per window: "patchwise training is loss sampling") vs on whole images
   (the dense net's loss over every window position at once). Both are scored the same way:
   the dense net's prediction at every window centre of the validation images, mean IU.
Writes results.json, results.md and figures/ (accuracy vs training time, time vs image size).
"""

import functools
import os
import time

import jax
import jax.numpy as jnp
import matplotlib.pyplot as plt
import ml_collections
import numpy as np
import optax
from flax import nnx

from benchmarks.sliding_window import speed_rows, speed_table
from configs import default
from experiments import common
from fcn_jax import data, losses, metrics
from fcn_jax.data import pipeline
from fcn_jax.models.patch import PatchClassifier, window_grid

PATCH = 32
METHODS = ("patch-sampled", "whole-image")


def load_split(config: ml_collections.ConfigDict, split: str) -> tuple[np.ndarray, np.ndarray]:
    """Every example of a split as stacked uint8 arrays (the embedded images share one size)."""
    source = data.build(config).split(split)
    examples = [pipeline.decode(source[i]) for i in range(len(source))]
    return np.stack([e[0] for e in examples]), np.stack([e[1] for e in examples])


def centre_labels(labels: np.ndarray, rows: int, cols: int, stride: int) -> np.ndarray:
    """The label at the centre pixel of every window of the dense output grid."""
    c = PATCH // 2
    return labels[:, c:c + stride * rows:stride, c:c + stride * cols:stride]


def make_steps(model: PatchClassifier, learning_rate: float):
    """Jitted (state, batch) -> state steps for both methods, sharing model and optimiser."""
    graphdef, params = nnx.split(model)
    tx = optax.adam(learning_rate)

    def update(state, loss_fn):
        grads = jax.grad(loss_fn)(state["params"])
        updates, opt_state = tx.update(grads, state["opt"], state["params"])
        return {"params": optax.apply_updates(state["params"], updates), "opt": opt_state}

    @jax.jit
    def patch_step(state, patches, labels):
        return update(state, lambda p: losses.pixel_cross_entropy(
            nnx.merge(graphdef, p)(patches), labels))

    @jax.jit
    def whole_step(state, images, labels):
        return update(state, lambda p: losses.pixel_cross_entropy(
            nnx.merge(graphdef, p).dense(images), labels))

    @jax.jit
    def dense_predict(params, images):
        return jnp.argmax(nnx.merge(graphdef, params).dense(images), -1)

    return {"params": params, "opt": tx.init(params)}, patch_step, whole_step, dense_predict


def evaluate(dense_predict, params, images, labels, num_classes: int, stride: int) -> float:
    """Mean IU of the dense prediction at every window centre of the validation images."""
    hist = np.zeros((num_classes, num_classes), np.int64)
    for k in range(0, len(images), 50):
        pred = np.asarray(dense_predict(params, images[k:k + 50]))
        truth = centre_labels(labels[k:k + 50], pred.shape[1], pred.shape[2], stride)
        hist += np.asarray(metrics.confusion_matrix(truth, pred, num_classes))
    return metrics.segmentation_metrics(hist)["mean_iu"]


def train_for(method: str, seed: int, budget: float, evals: int, train, val, num_classes: int,
              settings: dict) -> list[dict]:
    """Train one method for ``budget`` seconds of training; the eval curve (eval not timed)."""
    model = PatchClassifier(num_classes, patch_size=PATCH, rngs=nnx.Rngs(seed))
    stride = model.stride
    state, patch_step, whole_step, dense_predict = make_steps(model, settings["lr"])
    images, labels = train
    rows, cols = window_grid(images.shape[1], images.shape[2], PATCH, stride)
    rng = np.random.default_rng(seed)

    def patch_batch():
        n = settings["patches"]
        index = rng.integers(0, len(images), n)
        top = rng.integers(0, images.shape[1] - PATCH + 1, n)
        left = rng.integers(0, images.shape[2] - PATCH + 1, n)
        window = np.arange(PATCH)
        crops = images[index[:, None, None], top[:, None, None] + window[None, :, None],
                       left[:, None, None] + window[None, None, :]]
        return crops, labels[index, top + PATCH // 2, left + PATCH // 2]

    def whole_batch():
        index = rng.integers(0, len(images), settings["images"])
        return images[index], centre_labels(labels[index], rows, cols, stride)

    step, batch = ((patch_step, patch_batch) if method == "patch-sampled"
                   else (whole_step, whole_batch))
    jax.block_until_ready(step(state, *batch()))  # compile outside the clock
    curve, elapsed, steps, windows = [], 0.0, 0, 0
    for k in range(1, evals + 1):
        while elapsed < budget * k / evals:
            start = time.perf_counter()
            inputs, targets = batch()
            state = jax.block_until_ready(step(state, inputs, targets))
            elapsed += time.perf_counter() - start
            steps += 1
            windows += int(np.sum(np.asarray(targets) != losses.IGNORE_LABEL))
        curve.append({"seconds": elapsed, "steps": steps, "labelled_windows": windows,
                      "mean_iu": evaluate(dense_predict, state["params"], *val, num_classes,
                                          stride)})
    return curve


def curves_figure(path: str, runs: dict) -> None:
    """Validation mean IU against training seconds, mean ± std over seeds per method."""
    fig, ax = plt.subplots(figsize=(5, 3.5))
    for method, curves in runs.items():
        t = np.mean([[p["seconds"] for p in c] for c in curves], axis=0)
        miu = 100 * np.array([[p["mean_iu"] for p in c] for c in curves])
        ax.plot(t, miu.mean(0), marker="o", label=method)
        ax.fill_between(t, miu.mean(0) - miu.std(0), miu.mean(0) + miu.std(0), alpha=0.2)
    ax.set_xlabel("training time (s, compile and evaluation excluded)")
    ax.set_ylabel("validation mean IU (%)")
    ax.legend()
    common.save_figure(fig, path)


def speed_figure(path: str, rows: list[dict]) -> None:
    """Inference time of naive and dense sliding windows against image size."""
    fig, ax = plt.subplots(figsize=(5, 3.5))
    sizes = [r["size"] for r in rows]
    ax.plot(sizes, [r["naive_ms"] for r in rows], marker="o", label="every window as a crop")
    ax.plot(sizes, [r["dense_ms"] for r in rows], marker="o", label="convolutionalized")
    ax.set_xlabel("image side (pixels)")
    ax.set_ylabel("ms per image")
    ax.set_yscale("log")
    ax.legend()
    common.save_figure(fig, path)


def main(argv=None):
    p = common.parser(__doc__.splitlines()[0], "workdirs/experiments/sliding_window")
    p.add_argument("--budget", type=float, default=60.0, help="training seconds per run")
    args = p.parse_args(argv)
    workdir = common.check_args(args)
    config = default.get_config()
    settings = {"lr": 1e-3, "patches": 256, "images": 8, "evals": 6,
                "sizes": [64, 128, 256, 384]}
    if args.quick:
        config.data.builder_config = "tiny"
        settings.update(evals=2, sizes=[48, 64, 80])
        args.budget = min(args.budget, 2.0)
    train = load_split(config, config.data.train_split)
    val = load_split(config, config.data.eval_split)
    num_classes = data.build(config).num_classes
    speed = speed_rows(settings["sizes"], PATCH, num_classes)
    run = functools.partial(train_for, budget=args.budget, evals=settings["evals"], train=train,
                            val=val, num_classes=num_classes, settings=settings)
    runs = {m: [run(m, seed) for seed in range(args.seeds)] for m in METHODS}
    final = {m: common.mean_std([100 * c[-1]["mean_iu"] for c in curves])
             for m, curves in runs.items()}
    rate = {m: common.mean_std([c[-1]["labelled_windows"] / c[-1]["seconds"] for c in curves])
            for m, curves in runs.items()}
    results = {"patch_size": PATCH, "budget_seconds": args.budget, "seeds": args.seeds,
               "settings": settings, "inference": speed, "training_curves": runs,
               "final_mean_iu": final, "labelled_windows_per_second": rate,
               "device": jax.devices()[0].device_kind}
    training = common.markdown_table(
        ["training", "val mean IU (%)", "labelled windows / s"],
        [[m, common.pm(final[m]), f"{rate[m]['mean']:.0f}"] for m in METHODS])
    markdown = (f"### Inference: every window as a crop vs convolutionalized "
                f"({PATCH}x{PATCH} windows, stride 4)\n\n{speed_table(speed)}\n\n"
                f"### Training for {args.budget:.0f} s each (mean ± std over {args.seeds} "
                f"seeds)\n\n{training}\n\n![accuracy vs time](figures/accuracy_vs_time.png)\n")
    curves_figure(os.path.join(workdir, "figures", "accuracy_vs_time.png"), runs)
    speed_figure(os.path.join(workdir, "figures", "inference_time.png"), speed)
    common.write_results(workdir, results, markdown)
    print(markdown)


if __name__ == "__main__":
    main()
