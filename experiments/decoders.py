"""Upsampling by unpooling vs learned transposed convolution (FCN paper, section 3.3).

    python -m experiments.decoders --workdir workdirs/experiments

FCN-32s, where the decoder does all of the upsampling, fine-tuned from the shared pretrained
trunk with each decoder of ``model.decoder`` (fixed bilinear, learned bilinear, learned random,
nearest, bed of nails, max-unpooling with switches), same data, steps and seeds. One table:
mean IU and boundary F-score (mean ± std over seeds), the decoder's parameters, and train and
inference speed. Writes ``decoders/results.{json,md}`` and ``decoders/figures/``.
"""

import os

import jax
import jax.numpy as jnp
import matplotlib.pyplot as plt
import numpy as np
from flax import nnx

from benchmarks.sliding_window import seconds
from experiments import common
from fcn_jax import data, models, steps
from fcn_jax.data import pipeline
from fcn_jax.data.shapes import NUM_CLASSES
from fcn_jax.models.decoders import DECODERS
from fcn_jax.models.fcn import upsampling_parameter_count
from fcn_jax.writer import read_metrics

def inference_images_per_second(config, size: tuple[int, int], batch: int = 16) -> float:
    """Whole-image prediction throughput of a fresh model (best of 5 timed calls)."""
    graphdef, params, rest = nnx.split(models.build(config, NUM_CLASSES, 0), nnx.Param, ...)
    images = jnp.zeros((batch, *size, 3), jnp.uint8)
    return batch / seconds(lambda p, x: steps.predict(p, x, graphdef=graphdef, constants=rest),
                           params, images, repeats=5)


def eval_image_size(config) -> tuple[int, int]:
    """Height and width of the eval split's images (the embedded images share one size)."""
    image = pipeline.decode(data.build(config).split(config.data.eval_split)[0])[0]
    return image.shape[:2]


def train_images_per_second(workdir: str, batch: int) -> float:
    """Median logged training speed of a run, the first (compiling) interval excluded."""
    speeds = [r["steps_per_sec"] for r in read_metrics(workdir) if r.get("split") == "train"]
    return float(np.median(speeds[1:] or speeds)) * batch


def bar_figure(path: str, rows: list[dict]) -> None:
    """Mean IU and boundary F of each decoder with their seed spread."""
    fig, ax = plt.subplots(figsize=(7, 3.5))
    x = np.arange(len(rows))
    for offset, key, label in ((-0.2, "mean_iu", "mean IU"), (0.2, "boundary_f", "boundary F")):
        ax.bar(x + offset, [r[key]["mean"] for r in rows], 0.4,
               yerr=[r[key]["std"] for r in rows], label=label, capsize=3)
    ax.set_xticks(x, [r["decoder"] for r in rows], rotation=20)
    ax.set_ylabel("%")
    ax.legend()
    common.save_figure(fig, path)


def main(argv=None):
    p = common.parser(__doc__.splitlines()[0], "workdirs/experiments")
    p.add_argument("--decoders", nargs="+", choices=DECODERS, default=list(DECODERS),
                   help="the decoders to compare (default: all)")
    args = p.parse_args(argv)
    root, workdir = common.check_args(args, "decoders")
    trunk = common.pretrained_trunk(root, args.quick)
    image_size = eval_image_size(common.config("finetune", args.quick))
    rows = []
    for decoder in args.decoders:
        runs = []
        for seed in range(args.seeds):
            cfg = common.config("finetune", args.quick, seed=seed, **{"model.decoder": decoder})
            run_dir = os.path.join(workdir, decoder, f"seed_{seed}")
            runs.append((common.run(cfg, run_dir, trunk), run_dir))
        rows.append({
            "decoder": decoder,
            "mean_iu": common.mean_std([r["metrics"]["mean_iu"] for r, _ in runs]),
            "boundary_f": common.mean_std([r["boundary_f"] for r, _ in runs]),
            "pixel_acc": common.mean_std([r["metrics"]["pixel_acc"] for r, _ in runs]),
            "params": upsampling_parameter_count(models.build(cfg, NUM_CLASSES, 0)),
            "train_img_s": np.mean([train_images_per_second(d, cfg.train.batch_size)
                                    for _, d in runs]),
            "infer_img_s": inference_images_per_second(cfg, image_size)})
    table = common.markdown_table(
        ["decoder", "mean IU (%)", "boundary F (%)", "pixel acc (%)", "decoder params",
         "train img/s", "inference img/s"],
        [[r["decoder"], common.pm(r["mean_iu"]), common.pm(r["boundary_f"]),
          common.pm(r["pixel_acc"]), f"{r['params']:,}", f"{r['train_img_s']:.0f}",
          f"{r['infer_img_s']:.0f}"] for r in rows])
    cfg = common.config("finetune", args.quick)
    markdown = (f"FCN-32s, {cfg.train.num_steps} fine-tuning steps from the shared pretrained "
                f"trunk, mean ± std over {args.seeds} seeds; boundary F: class boundaries within "
                f"2 px.\n\n{table}\n\n![decoders](figures/decoders.png)\n")
    bar_figure(os.path.join(workdir, "figures", "decoders.png"), rows)
    common.write_results(workdir, {"seeds": args.seeds, "steps": cfg.train.num_steps,
                                   "rows": rows, "device": jax.devices()[0].device_kind},
                         markdown)
    print(markdown)


if __name__ == "__main__":
    main()
