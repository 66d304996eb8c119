"""The skip ablation on the embedded dataset: the FCN paper's Table 2, Figure 4 and appendix.

    python -m experiments.skips --workdir workdirs/experiments

From the shared pretrained trunk, per seed: FCN-32s-fixed (only score_fr trained), FCN-32s,
then staged FCN-16s (initialised from that FCN-32s, new score layer zero) and FCN-8s (from that
FCN-16s), each for the same number of steps; and FCN-8s trained at once (pool4 x 0.01, pool3
x 1e-4) for the staged chain's three budgets. Also the coarse-prediction upper bound (ground
truth reduced to one label per f x f block and expanded back) and a Figure-4-style grid.
Writes ``skips/results.{json,md}`` and ``skips/figures/``.
"""

import os

import jax
import numpy as np

from experiments import common
from fcn_jax import data, metrics, viz
from fcn_jax.data import pipeline
from fcn_jax.models.vgg import TRUNK_STRIDE

COARSE_FACTORS = (64, 32, 16, 8, 4)
FIGURE_IMAGES = 4


def stages(steps: int) -> list[dict]:
    """The nets of the table: name, config overrides, source of initialisation."""
    return [
        {"net": "FCN-32s-fixed", "variant": "fcn32s", "init": "trunk", "steps": steps,
         "overrides": {"optim.train_only": ("score_fr",)}},
        {"net": "FCN-32s", "variant": "fcn32s", "init": "trunk", "steps": steps},
        {"net": "FCN-16s", "variant": "fcn16s", "init": "FCN-32s", "steps": steps},
        {"net": "FCN-8s", "variant": "fcn8s", "init": "FCN-16s", "steps": steps},
        {"net": "FCN-8s at-once", "variant": "fcn8s", "init": "trunk", "steps": 3 * steps,
         "overrides": {"model.skip_scales": (0.01, 1e-4)}}]


def run_dir(workdir: str, net: str, seed: int) -> str:
    return os.path.join(workdir, net.replace(" ", "_"), f"seed_{seed}")


def stage_config(stage: dict, seed: int, quick: bool, workdir: str):
    """The fine-tuning config of one net; staged nets start from the previous stage's run."""
    overrides = {"seed": seed, "model.variant": stage["variant"],
                 "train.num_steps": stage["steps"], "train.eval_every": stage["steps"],
                 "train.checkpoint_every": stage["steps"], **stage.get("overrides", {})}
    if stage["init"] != "trunk":
        overrides["model.init_from"] = run_dir(workdir, stage["init"], seed)
    return common.config("finetune", quick, **overrides)


def coarse_labels(labels: np.ndarray, factor: int, num_classes: int) -> np.ndarray:
    """Each f x f block of [N,H,W] labels replaced by its most frequent valid label (255 where
    the block has none): the best a prediction at stride f can do (paper, appendix)."""
    n, h, w = labels.shape
    ph, pw = -h % factor, -w % factor
    padded = np.pad(labels, ((0, 0), (0, ph), (0, pw)), constant_values=255)
    blocks = padded.reshape(n, (h + ph) // factor, factor, (w + pw) // factor, factor)
    counts = np.stack([(blocks == c).sum(axis=(2, 4)) for c in range(num_classes)], -1)
    block_labels = np.where(counts.sum(-1) > 0, counts.argmax(-1), 255)
    expanded = np.repeat(np.repeat(block_labels, factor, axis=1), factor, axis=2)
    return expanded[:, :h, :w].astype(labels.dtype)


def coarse_upper_bound(labels: np.ndarray, num_classes: int) -> dict[int, float]:
    """Mean IU (%) of the block-mode ground truth against the ground truth, per factor."""
    return {f: 100 * metrics.segmentation_metrics(np.asarray(metrics.confusion_matrix(
        labels, coarse_labels(labels, f, num_classes), num_classes)))["mean_iu"]
        for f in COARSE_FACTORS}


def figure4(path: str, nets: dict, dataset, split: str) -> None:
    """image | ground truth | FCN-32s | FCN-16s | FCN-8s for the first validation images."""
    source = dataset.split(split)
    examples = [pipeline.decode(source[i]) for i in range(min(FIGURE_IMAGES, len(source)))]
    batch = pipeline.pad_batch(examples, TRUNK_STRIDE, len(examples))
    columns = {}
    for net, (config, directory) in nets.items():
        trainer, params = common.restore(config, directory)
        pred = np.asarray(trainer.predict(params, batch["image"]))
        columns[net] = [p[:l.shape[0], :l.shape[1]] for p, (_, l) in zip(pred, examples)]
    viz.save_prediction_grid(path, [i for i, _ in examples], [l for _, l in examples], columns,
                             dataset.num_classes, dataset.class_names)


def main(argv=None):
    p = common.parser(__doc__.splitlines()[0], "workdirs/experiments")
    args = p.parse_args(argv)
    root, workdir = common.check_args(args, "skips")
    trunk = common.pretrained_trunk(root, args.quick)
    steps = common.config("finetune", args.quick).train.num_steps
    results = {s["net"]: [] for s in stages(steps)}
    for seed in range(args.seeds):
        for stage in stages(steps):
            cfg = stage_config(stage, seed, args.quick, workdir)
            init = trunk if stage["init"] == "trunk" else None
            results[stage["net"]].append(
                common.run(cfg, run_dir(workdir, stage["net"], seed), init))
    rows = []
    for stage in stages(steps):
        runs = results[stage["net"]]
        row = {"net": stage["net"], "steps": stage["steps"], "init": stage["init"]}
        row.update({k: common.mean_std([r["metrics"][k] for r in runs])
                    for k, _ in metrics.PAPER_METRICS})
        row["boundary_f"] = common.mean_std([r["boundary_f"] for r in runs])
        rows.append(row)
    cfg = common.config("finetune", args.quick)
    dataset = data.build(cfg)
    labels = common.load_split(dataset, cfg.data.eval_split)[1]
    bound = coarse_upper_bound(labels, dataset.num_classes)
    nets = {s["net"]: (stage_config(s, 0, args.quick, workdir), run_dir(workdir, s["net"], 0))
            for s in stages(steps) if s["net"] in ("FCN-32s", "FCN-16s", "FCN-8s")}
    figure4(os.path.join(workdir, "figures", "figure4.png"), nets, dataset, cfg.data.eval_split)

    table = common.markdown_table(
        ["net", "init", "steps", *(t for _, t in metrics.PAPER_METRICS), "boundary F"],
        [[r["net"], r["init"], r["steps"], *(common.pm(r[k]) for k, _ in metrics.PAPER_METRICS),
          common.pm(r["boundary_f"])] for r in rows])
    bound_table = common.markdown_table(
        ["factor", *COARSE_FACTORS], [["mean IU (%)", *(f"{bound[f]:.1f}" for f in bound)]])
    markdown = (f"Validation split of the embedded dataset, mean ± std over {args.seeds} seeds "
                f"(%).\n\n{table}\n\nUpper bound of prediction at stride f (ground truth "
                f"reduced to its most frequent label per f x f block):\n\n{bound_table}\n\n"
                "![Figure 4](figures/figure4.png)\n")
    common.write_results(workdir, {"seeds": args.seeds, "rows": rows,
                                   "coarse_upper_bound": bound,
                                   "device": jax.devices()[0].device_kind}, markdown)
    print(markdown)


if __name__ == "__main__":
    main()
