"""Classifier pretraining, the miniature of the paper's ImageNet classifiers (sections 3.1,
4.1; Table 1's backbones).

    python -m fcn_jax.pretrain --config configs/classifier.py --workdir workdirs/classifier

Trains ``models.classifier.Classifier`` (``model.backbone``: vgg16, alexnet or googlenet) on
the ``fcn_objects`` images (softmax cross-entropy, the optimiser of ``configs/classifier.py``,
random mirroring), reports top-1 accuracy on the validation split and writes, in the workdir:
``<backbone>_classifier.npz`` (a torchvision VGG16 / AlexNet state dict, GoogLeNet's in
reference names, which ``model.init_from`` convolutionalizes into an FCN of that backbone),
``results.json``, ``config.json`` and ``metrics.jsonl``. A workdir that already holds the results of the same config is
reused as it is (``make run`` relies on this); one trained with another config is refused.
The run takes minutes and keeps no checkpoints: a stopped run starts again.
"""

import functools
import json
import os
import time

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax
from absl import flags, logging
from flax import nnx

from fcn_jax import backends, config_checks, config_cli, data, optim, steps
from fcn_jax.data import objects, objects_dataset
from fcn_jax.models.classifier import Classifier, input_size, state_dict
from fcn_jax.parallel import DataParallel
from fcn_jax.workdir import WorkdirLock, ensure_writable, write_json
from fcn_jax.writer import MetricWriter



def weights_name(backbone: str) -> str:
    """The file a classifier of ``backbone`` is written to, in its workdir."""
    return f"{backbone}_classifier.npz"


def classifier_step(state: steps.TrainState, batch: dict, *, graphdef, constants, tx,
                    axis_name: str | None):
    """One step of mean softmax cross-entropy over the global batch; returns (state, metrics)."""
    images, labels = batch["image"], batch["label"]
    keys = steps.example_keys(state["rng"], state["step"], images.shape[0], axis_name)

    def loss_sum(params):
        logits = nnx.merge(graphdef, params, constants)(images, dropout_keys=keys)
        return optax.softmax_cross_entropy_with_integer_labels(logits, labels).sum(), logits

    (total, logits), grads = jax.value_and_grad(loss_sum, has_aux=True)(state["params"])
    correct = (jnp.argmax(logits, -1) == labels).sum()
    count = jnp.float32(labels.shape[0])
    total, grads, correct, count = steps.all_sum((total, grads, correct, count), axis_name)
    grads = jax.tree.map(lambda g: g / count, grads)
    updates, opt_state = tx.update(grads, state["opt_state"], state["params"])
    new_state = dict(state, step=state["step"] + 1, opt_state=opt_state,
                     params=jax.tree.map(jnp.add, state["params"], updates))
    return new_state, {"loss": total / count, "accuracy": correct / count}


def correct_count(params, batch: dict, *, graphdef, constants, axis_name: str | None):
    """Correct top-1 predictions in a batch, without dropout; padded examples carry label -1."""
    logits = nnx.merge(graphdef, params, constants)(batch["image"])
    return steps.all_sum((jnp.argmax(logits, -1) == batch["label"]).sum(), axis_name)


def epoch_batches(num_examples: int, batch_size: int, seed: int, epoch: int):
    """Index arrays of one epoch: a fresh permutation per (seed, epoch), full batches only."""
    order = np.random.default_rng([seed, epoch]).permutation(num_examples)
    for start in range(0, num_examples - batch_size + 1, batch_size):
        yield order[start:start + batch_size]


def train_batches(images: np.ndarray, labels: np.ndarray, config: ml_collections.ConfigDict):
    """Endless batches {image, label}, mirrored at random when ``data.flip``."""
    epoch = 0
    flips = np.random.default_rng([config.seed, 1 << 20])
    while True:
        for index in epoch_batches(len(images), config.train.batch_size, config.seed, epoch):
            batch = images[index]
            if config.data.flip:
                mirror = flips.random(len(index)) < 0.5
                batch = np.where(mirror[:, None, None, None], batch[:, :, ::-1], batch)
            yield {"image": batch, "label": labels[index]}
        epoch += 1


def top1(dp: DataParallel, evaluate, params, images: np.ndarray, labels: np.ndarray,
         batch_size: int) -> float:
    """Top-1 accuracy over a split, the last batch padded with label -1 (never correct)."""
    correct = 0
    for start in range(0, len(images), batch_size):
        image, label = images[start:start + batch_size], labels[start:start + batch_size]
        pad = batch_size - len(image)
        batch = {"image": np.concatenate([image, np.zeros((pad, *image.shape[1:]), np.uint8)]),
                 "label": np.concatenate([label, np.full(pad, -1, np.int32)])}
        correct += int(dp.get_replicated(evaluate(params, dp.put_batch(batch))))
    return correct / len(images)


def load_data(config: ml_collections.ConfigDict) -> dict:
    """The train and validation splits in memory; their image size must be the classifier's.
    Classifiers starting together on an unprepared data dir prepare it once (the others wait)."""
    directory, name = data.data_dir(config), config.data.builder_config
    with data.preparation_lock(directory, f"fcn_objects-{name}"):
        builder = objects_dataset.prepare(directory, name)
    splits = {split: objects_dataset.load_split(builder, split)
              for split in objects_dataset.SPLITS}
    size, expected = splits["train"][0].shape[1], input_size(config.model.fc6_kernel)
    if size != expected:
        raise ValueError(
            f"data.builder_config={config.data.builder_config!r} has {size}x{size} images but "
            f"model.fc6_kernel={config.model.fc6_kernel} needs {expected}x{expected}: set "
            f"model.fc6_kernel to the images' pool5 size ({size} / 32)")
    return splits


def pretrain(config: ml_collections.ConfigDict, workdir: str) -> dict:
    """Train the classifier in ``workdir`` (or reuse its finished run); returns results."""
    config_checks.validate(config)
    if config.data.builder_config not in objects_dataset.FcnObjects.builder_configs:
        raise ValueError(f"data.builder_config={config.data.builder_config!r}: fcn_objects has "
                         f"{sorted(objects_dataset.FcnObjects.builder_configs)}")
    ensure_writable(workdir)
    with WorkdirLock(workdir):
        finished = finished_results(config, workdir)
        if finished is not None:
            print(f"{workdir} already holds this classifier (top-1 "
                  f"{finished['top1_accuracy']:.2f}%); reusing it")
            return finished
        return train_classifier(config, workdir)


def finished_results(config: ml_collections.ConfigDict, workdir: str) -> dict | None:
    """The results of a finished run of ``config`` in workdir; an error if another config's."""
    config_path = os.path.join(workdir, "config.json")
    results_path = os.path.join(workdir, "results.json")
    if not os.path.exists(config_path):
        return None
    with open(config_path, encoding="utf-8") as f:
        old = json.load(f)
    old.get("model", {}).setdefault("backbone", "vgg16")  # written before model.backbone
    if old != json.loads(config.to_json()):
        raise ValueError(f"{workdir} holds a classifier trained with another config "
                         f"({config_path}); pass another --workdir or remove that one")
    if not os.path.exists(results_path) or not os.path.exists(
            os.path.join(workdir, weights_name(config.model.backbone))):
        return None
    with open(results_path, encoding="utf-8") as f:
        return json.load(f)


def train_classifier(config: ml_collections.ConfigDict, workdir: str) -> dict:
    """The training run itself; writes the weights last, then results.json."""
    splits = load_data(config)
    m = config.model
    model = Classifier(objects.NUM_CLASSES, backbone=m.backbone, width=m.width,
                       fc_channels=m.fc_channels or None, dropout_rate=m.dropout_rate,
                       fc6_kernel=m.fc6_kernel, fast_paths=m.fast_paths,
                       rngs=nnx.Rngs(params=config.seed))
    graphdef, params, constants = nnx.split(model, nnx.Param, ...)
    tx = optim.build(config.optim, config.train.num_steps)
    dp = DataParallel(config.parallel.mode, config.parallel.num_devices)
    dp.check_batch_size(config.train.batch_size)
    dp.check_batch_size(config.eval.batch_size, "eval.batch_size")
    state = dp.put_replicated({"step": np.zeros((), np.int32), "params": params,
                               "opt_state": optim.initial_state(tx, params),
                               "rng": jax.random.PRNGKey(config.seed)})
    pieces = {"graphdef": graphdef, "constants": constants}
    step = dp.wrap(functools.partial(classifier_step, tx=tx, **pieces), num_args=2, donate=(0,))
    evaluate = dp.wrap(functools.partial(correct_count, **pieces), num_args=2)
    write_json(os.path.join(workdir, "config.json"), json.loads(config.to_json()))
    writer = MetricWriter(workdir)
    batches = train_batches(*splits["train"], config)
    start = time.perf_counter()
    for number in range(1, config.train.num_steps + 1):
        state, scalars = step(state, dp.put_batch(next(batches)))
        if number % config.train.log_every == 0 or number == config.train.num_steps:
            scalars = {k: float(v) for k, v in dp.get_replicated(scalars).items()}
            if not np.isfinite(scalars["loss"]):
                raise FloatingPointError(f"the classifier's loss is {scalars['loss']} at step "
                                         f"{number}; lower optim.learning_rate")
            writer.write(number, "train", scalars)
            print(f"step {number}/{config.train.num_steps}: loss {scalars['loss']:.3f}, "
                  f"batch accuracy {100 * scalars['accuracy']:.1f}%", flush=True)
    seconds = time.perf_counter() - start
    params = state["params"]
    accuracy = top1(dp, evaluate, params, *splits["validation"], config.eval.batch_size)
    writer.write(config.train.num_steps, "validation", {"top1_accuracy": accuracy})
    nnx.update(model, dp.get_replicated(params))
    arrays = state_dict(model)
    name = weights_name(m.backbone)
    tmp = os.path.join(workdir, name + ".tmp.npz")
    np.savez(tmp, **arrays)
    os.replace(tmp, os.path.join(workdir, name))
    results = {"top1_accuracy": round(100 * accuracy, 2), "num_classes": objects.NUM_CLASSES,
               "class_names": list(objects.CLASS_NAMES), "steps": config.train.num_steps,
               "chance_accuracy": round(100 / objects.NUM_CLASSES, 2),
               "train_seconds": round(seconds, 1), "weights": name,
               "backbone": m.backbone}
    write_json(os.path.join(workdir, "results.json"), results)
    print(f"top-1 accuracy {results['top1_accuracy']:.2f}% on {len(splits['validation'][1])} "
          f"validation images (chance {results['chance_accuracy']}%); weights: "
          f"{os.path.join(workdir, name)}")
    return results


FLAGS = flags.FLAGS
flags.DEFINE_string("config", "configs/classifier.py", "Classifier config file; override fields "
                    "with --config.KEY=VALUE.")
flags.DEFINE_string("workdir", None, "Directory for the weights, logs and results.")
flags.mark_flags_as_required(["workdir"])


def main(argv):
    logging.set_verbosity(logging.WARNING)
    config = config_cli.resolve(FLAGS.config, argv)
    backends.start_devices(config.parallel.cpu_devices)
    pretrain(config, FLAGS.workdir)


def run() -> None:
    """The ``fcn-pretrain`` console script (pyproject.toml)."""
    config_cli.run_absl(main, __name__)


if __name__ == "__main__":
    run()
