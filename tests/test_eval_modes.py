"""Evaluation modes through the trainer (FCN paper, section 5: dataset-level metrics): the
confusion matrix Trainer.evaluate accumulates with eval.flip / eval.scales / eval.tile_size
equals one computed here from the model's logits on the same padded batches."""

import numpy as np
import pytest
from flax import nnx

from fcn_jax import run
from fcn_jax.data import augment, pipeline
from fcn_jax.inference import InferenceOptions, predict_logits
from fcn_jax.models.vgg import TRUNK_STRIDE
from tests.helpers import tiny_config


def trainer_with_live_scores(tiny_data_dir, **eval_fields):
    config = tiny_config("fcn32s")
    config.data.data_dir = tiny_data_dir
    config.eval.update(eval_fields)
    trainer = run.Run(config, "")
    params = trainer.state["params"]
    rng = np.random.default_rng(3)
    for name in ("kernel", "bias"):  # zero score layers would predict class 0 everywhere
        leaf = params["score_fr"][name]
        leaf[...] = rng.normal(0, 1.0, leaf[...].shape).astype(np.float32)
    return trainer, params


def confusion(labels, predictions, num_classes):
    valid = labels != 255
    return np.bincount(num_classes * labels[valid].astype(int) + predictions[valid],
                       minlength=num_classes ** 2).reshape(num_classes, num_classes)


def expected_confusion(trainer, params, logits_of):
    model = nnx.merge(trainer.graphdef, params, trainer.constants)
    total = 0
    for batch in pipeline.eval_batches(trainer.dataset.split("validation"), local_batch=8,
                                       stride=TRUNK_STRIDE):
        logits = np.asarray(logits_of(model, batch["image"]))
        total = total + confusion(batch["label"], logits.argmax(-1), trainer.num_classes)
    return total


def evaluated(trainer, params):
    result = trainer.evaluate(trainer.parallel.put_replicated(params), "validation")
    return np.asarray(result["confusion"])


def test_flip_evaluation_equals_the_hand_computed_mirror_average(tiny_data_dir):
    trainer, params = trainer_with_live_scores(tiny_data_dir, flip=True)

    def mirror_average(model, images):
        return 0.5 * (model(images) + model(images[:, :, ::-1])[:, :, ::-1])

    want = expected_confusion(trainer, params, mirror_average)
    np.testing.assert_array_equal(evaluated(trainer, params), want)
    plain = expected_confusion(trainer, params, lambda model, images: model(images))
    assert (want != plain).any()  # the mode changes the result: not a vacuous check


@pytest.mark.parametrize("fields", [{"scales": (0.75, 1.0)},
                                    {"tile_size": 32, "tile_stride": 16}])
def test_scales_and_tiles_through_the_trainer_equal_the_inference_module(tiny_data_dir,
                                                                         fields):
    trainer, params = trainer_with_live_scores(tiny_data_dir, **fields)
    options = InferenceOptions.from_config(trainer.config.eval, augment.PAD_RGB)
    want = expected_confusion(trainer, params,
                              lambda model, images: predict_logits(model, images, options))
    np.testing.assert_array_equal(evaluated(trainer, params), want)
    source = trainer.dataset.split("validation")
    labelled = sum(int((pipeline.decode(source[i])[1] != 255).sum()) for i in range(len(source)))
    assert want.sum() == labelled  # every labelled pixel counted once, padding none
