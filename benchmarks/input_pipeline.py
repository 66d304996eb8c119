"""Input-pipeline throughput on its own (images/s), for the config's training data.

    .venv/bin/python -m benchmarks.input_pipeline --config configs/default.py --batches 100

Reads ``config.data`` (preparing the dataset if needed), then times ``--batches`` augmented
batches from the Grain iterator after a short warm-up. Compare the figure with the train
step's images/s (metrics.jsonl's steps_per_sec x batch size) to see whether training is
input-bound.
"""

import time

from absl import flags

from fcn_jax import config_cli, data
from fcn_jax.data import pipeline

FLAGS = flags.FLAGS
flags.DEFINE_string("config", "configs/default.py", "Config file; override fields with "
                    "--config.KEY=VALUE.")
flags.DEFINE_integer("batches", 100, "Timed batches.")
flags.DEFINE_integer("warmup", 5, "Untimed batches first.")


def main(argv):
    config = config_cli.resolve(FLAGS.config, argv)
    dataset = data.build(config)
    train = pipeline.train_dataset(
        dataset.split(config.data.train_split), local_batch=config.train.batch_size,
        seed=config.seed, crop_size=config.data.crop_size,
        scale_range=tuple(config.data.scale_range), flip=config.data.flip)
    batches = pipeline.train_iterator(train, 0, num_threads=config.data.num_threads,
                                      prefetch=config.data.prefetch)
    for _ in range(FLAGS.warmup):
        next(batches)
    start = time.perf_counter()
    for _ in range(FLAGS.batches):
        next(batches)
    seconds = time.perf_counter() - start
    images = FLAGS.batches * config.train.batch_size
    print(f"{config.data.name}/{config.data.builder_config}, crop {config.data.crop_size}, "
          f"batch {config.train.batch_size}, {config.data.num_threads} threads: "
          f"{images / seconds:.0f} images/s ({FLAGS.batches / seconds:.1f} batches/s)")


if __name__ == "__main__":
    config_cli.run_absl(main, __name__)
