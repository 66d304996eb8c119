"""Sliding-window patch classification vs the same net run fully convolutionally (paper, 3.1, 4.4).

    python -m experiments.sliding_window --workdir workdirs/experiments

1. Inference: wall time and XLA FLOPs of a patch classifier labelling every window as a
   separate crop vs running it, convolutionalized, once over the image, for growing sizes.
2. Training at an equal time budget ("patchwise training is loss sampling", section 4.4):
   FCN-32s from the shared pretrained trunk (experiments/common.py), trained either on
   randomly sampled patches, each labelled at its centre pixel only, or on whole 96x96 crops
   with the loss at every pixel. Both get the same wall-clock training time and are scored the
   same way, on whole validation images.
Writes ``sliding_window/results.{json,md}`` and ``sliding_window/figures/``.
"""

import functools
import os
import time

import jax
import matplotlib.pyplot as plt
import numpy as np
import optax
from flax import nnx

from benchmarks.sliding_window import speed_rows, speed_table
from experiments import common
from fcn_jax import data, losses, metrics, models, steps
from fcn_jax.data import pipeline
from fcn_jax.models.vgg import TRUNK_STRIDE

METHODS = ("patch-sampled", "whole-image")
INFERENCE_PATCH = 32  # the patch classifier's window for the inference comparison


def make_steps(model: nnx.Module, learning_rate: float):
    """A jitted (state, images, labels) -> state step and a jitted predictor (no dropout)."""
    graphdef, params, rest = nnx.split(model, nnx.Param, ...)
    tx = optax.adam(learning_rate)

    @jax.jit
    def step(state, images, labels):
        def loss(p):
            logits = nnx.merge(graphdef, p, rest)(images)
            return losses.pixel_cross_entropy(logits, labels)

        updates, opt_state = tx.update(jax.grad(loss)(state["params"]), state["opt"],
                                       state["params"])
        return {"params": optax.apply_updates(state["params"], updates), "opt": opt_state}

    predict = jax.jit(functools.partial(steps.predict, graphdef=graphdef, constants=rest))
    return {"params": params, "opt": tx.init(params)}, step, predict


def evaluate(predict, params, val: tuple[np.ndarray, np.ndarray], num_classes: int) -> float:
    """Mean IU of whole-image predictions on the validation images."""
    hist = np.zeros((num_classes, num_classes), np.int64)
    for k in range(0, len(val[0]), 50):
        examples = list(zip(val[0][k:k + 50], val[1][k:k + 50]))
        batch = pipeline.pad_batch(examples, TRUNK_STRIDE, len(examples))
        pred = predict(params, batch["image"])
        hist += np.asarray(metrics.confusion_matrix(batch["label"], pred, num_classes))
    return metrics.segmentation_metrics(hist)["mean_iu"]


def samplers(train: tuple[np.ndarray, np.ndarray], settings: dict, rng: np.random.Generator):
    """Batch makers: random patches labelled at their centre only (every other pixel set to
    ignore), and random whole crops labelled everywhere."""
    images, labels = train

    def crops(count: int, size: int):
        index = rng.integers(0, len(images), count)
        top = rng.integers(0, images.shape[1] - size + 1, count)
        left = rng.integers(0, images.shape[2] - size + 1, count)
        window = np.arange(size)
        rows = top[:, None, None] + window[None, :, None]
        cols = left[:, None, None] + window[None, None, :]
        return images[index[:, None, None], rows, cols], labels[index[:, None, None], rows, cols]

    def patches():
        size = settings["patch"]
        x, y = crops(settings["patches"], size)
        centre_only = np.full_like(y, losses.IGNORE_LABEL)
        centre_only[:, size // 2, size // 2] = y[:, size // 2, size // 2]
        return x, centre_only

    def whole():
        return crops(settings["images"], settings["crop"])

    return {"patch-sampled": patches, "whole-image": whole}


def train_for(method: str, seed: int, *, budget: float, trunk: dict, train, val,
              num_classes: int, settings: dict, quick: bool) -> list[dict]:
    """Train one method for ``budget`` seconds of training; the eval curve (eval not timed)."""
    config = common.config("finetune", quick, seed=seed)
    model = models.build(config, num_classes, seed)
    common.load_params(model, trunk)
    state, step, predict = make_steps(model, settings["lr"])
    batch = samplers(train, settings, np.random.default_rng(seed))[method]
    jax.block_until_ready(step(state, *batch()))  # compile outside the clock
    curve, elapsed, count, labelled = [], 0.0, 0, 0
    for k in range(1, settings["evals"] + 1):
        while elapsed < budget * k / settings["evals"]:
            start = time.perf_counter()
            images, labels = batch()
            state = jax.block_until_ready(step(state, images, labels))
            elapsed += time.perf_counter() - start
            count += 1
            labelled += int(np.sum(labels != losses.IGNORE_LABEL))
        curve.append({"seconds": elapsed, "steps": count, "labelled_pixels": labelled,
                      "mean_iu": evaluate(predict, state["params"], val, num_classes)})
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
    p = common.parser(__doc__.splitlines()[0], "workdirs/experiments")
    p.add_argument("--budget", type=float, default=60.0, help="training seconds per run")
    args = p.parse_args(argv)
    root, workdir = common.check_args(args, "sliding_window")
    settings = {"lr": 1e-3, "patch": 32, "patches": 144, "images": 16, "crop": 96, "evals": 6,
                "sizes": [64, 128, 256, 384]}
    if args.quick:
        settings.update(patches=16, images=2, crop=32, evals=2, sizes=[48, 64, 80])
        args.budget = min(args.budget, 2.0)
    trunk = common.pretrained_trunk(root, args.quick)
    dataset = data.build(common.config("finetune", args.quick))
    train = common.load_split(dataset, "train")
    val = common.load_split(dataset, "validation")
    speed = speed_rows(settings["sizes"], INFERENCE_PATCH, dataset.num_classes)
    run = functools.partial(train_for, budget=args.budget, trunk=trunk, train=train, val=val,
                            num_classes=dataset.num_classes, settings=settings, quick=args.quick)
    runs = {m: [run(m, seed) for seed in range(args.seeds)] for m in METHODS}
    final = {m: common.mean_std([100 * c[-1]["mean_iu"] for c in curves])
             for m, curves in runs.items()}
    rate = {m: common.mean_std([c[-1]["labelled_pixels"] / c[-1]["seconds"] for c in curves])
            for m, curves in runs.items()}
    results = {"budget_seconds": args.budget, "seeds": args.seeds, "settings": settings,
               "inference": speed, "training_curves": runs, "final_mean_iu": final,
               "labelled_pixels_per_second": rate, "device": jax.devices()[0].device_kind}
    training = common.markdown_table(
        ["training", "val mean IU (%)", "labelled pixels / s"],
        [[m, common.pm(final[m]), f"{rate[m]['mean']:.0f}"] for m in METHODS])
    markdown = (f"#### Inference: every window as a crop vs convolutionalized "
                f"({INFERENCE_PATCH}x{INFERENCE_PATCH} windows, stride {speed[0]['stride']})\n\n"
                f"{speed_table(speed)}\n\n"
                f"#### FCN-32s trained for {args.budget:.0f} s on {settings['patches']} "
                f"{settings['patch']}x{settings['patch']} patches (centre label) or "
                f"{settings['images']} {settings['crop']}x{settings['crop']} crops (every "
                f"label) per step; mean ± std over {args.seeds} seeds\n\n{training}\n\n"
                f"![accuracy vs time](figures/accuracy_vs_time.png)\n")
    curves_figure(os.path.join(workdir, "figures", "accuracy_vs_time.png"), runs)
    speed_figure(os.path.join(workdir, "figures", "inference_time.png"), speed)
    common.write_results(workdir, results, markdown)
    print(markdown)


if __name__ == "__main__":
    main()
