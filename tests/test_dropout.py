"""Dropout as the paper's VGG16 uses it after fc6 and fc7 (FCN paper, section 4.3: "dropout
was included where used in the original classifier nets"): inverted dropout, each unit kept
with probability 1 - p and scaled by 1 / (1 - p) in training, exactly off at evaluation."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from fcn_jax import models
from fcn_jax.models.layers import dropout
from tests.helpers import tiny_config

UNITS = 200_000


@pytest.mark.parametrize("rate", [0.25, 0.5, 0.75])
def test_keep_rate_and_scaling(rate):
    x = jnp.full((2, UNITS // 2), 3.0)
    keys = jax.random.split(jax.random.key(7), 2)
    out = np.asarray(dropout(x, rate, keys))
    kept = out != 0
    # Binomial(UNITS, 1 - rate): the kept fraction lies within 5 standard deviations.
    std = np.sqrt(rate * (1 - rate) / UNITS)
    assert abs(kept.mean() - (1 - rate)) < 5 * std
    np.testing.assert_allclose(out[kept], 3.0 / (1 - rate), rtol=1e-6)
    assert out.mean() == pytest.approx(3.0, abs=3.0 / (1 - rate) * 5 * std)  # unbiased
    # Each example draws its own mask.
    assert (kept[0] != kept[1]).any()


def test_no_keys_or_rate_zero_is_the_identity():
    x = jnp.arange(12.0).reshape(2, 6)
    np.testing.assert_array_equal(dropout(x, 0.5, None), x)
    np.testing.assert_array_equal(dropout(x, 0.0, jax.random.split(jax.random.key(0), 2)), x)


def test_evaluation_runs_without_dropout_and_training_with_it():
    config = tiny_config("fcn32s")
    config.model.dropout_rate = 0.5
    model = models.build(config.model, 4, seed=0)
    model.score_fr.kernel[...] = jnp.ones_like(model.score_fr.kernel[...])
    no_dropout = tiny_config("fcn32s")
    no_dropout.model.dropout_rate = 0.0
    same = models.build(no_dropout.model, 4, seed=0)
    same.score_fr.kernel[...] = jnp.ones_like(same.score_fr.kernel[...])
    images = jnp.asarray(np.random.default_rng(0).integers(0, 256, (2, 64, 64, 3)), jnp.uint8)
    np.testing.assert_array_equal(model(images), same(images))  # evaluation: exactly off
    keys = jax.random.split(jax.random.key(1), 2)
    assert not np.allclose(model(images, dropout_keys=keys), same(images))
