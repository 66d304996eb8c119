"""The decoder registry: the example decoder of docs/configs.md, taken from the page itself,
registers, passes the config checks, builds into every FCN variant and trains."""

import functools
import pathlib
import re

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from flax import nnx

from fcn_jax import config_checks, models, steps
from fcn_jax.models import decoders
from tests.helpers import tiny_config

DOC = pathlib.Path(__file__).resolve().parents[1] / "docs" / "configs.md"


@pytest.fixture
def pixel_shuffle():
    """The docs' example decoder, registered for one test."""
    section = DOC.read_text().split("## Adding a decoder", 1)[1]
    code = re.search(r"```python\n(.*?)```", section, re.S).group(1)
    namespace = {}
    exec(compile(code, str(DOC), "exec"), namespace)
    try:
        yield decoders.DECODERS["pixel_shuffle"]
    finally:
        decoders.DECODERS.pop("pixel_shuffle", None)


def test_the_docs_decoder_trains_as_every_upsampling_layer(pixel_shuffle):
    config = tiny_config("fcn8s")
    config.model.decoder = "pixel_shuffle"
    config_checks.validate(config)  # a registered name passes
    rng = np.random.default_rng(0)
    batch = {"image": jnp.asarray(rng.integers(0, 256, (2, 40, 36, 3)), jnp.uint8),
             "label": jnp.asarray(rng.integers(0, 3, (2, 40, 36)), jnp.uint8)}
    for variant in ("fcn32s", "fcn8s"):  # the final layer alone; and every upsampling layer
        config.model.variant = variant
        model = models.build(config.model, 3, 0)
        assert isinstance(model.upscore2 if variant != "fcn32s" else model.upscore,
                          pixel_shuffle)
        graphdef, params, constants = nnx.split(model, nnx.Param, ...)
        tx = optax.adam(1e-3)
        state = {"step": jnp.zeros((), jnp.int32), "params": params,
                 "opt_state": tx.init(params), "rng": jax.random.PRNGKey(0)}
        step = jax.jit(functools.partial(
            steps.train_step, graphdef=graphdef, constants=constants, tx=tx, num_classes=3,
            normalize_loss=True, class_weights=None, axis_name=None))
        losses = []
        for _ in range(5):
            state, out = step(state, batch)
            losses.append(float(out["loss"]))
        assert losses[-1] < losses[0], (variant, losses)  # it learns


def test_an_unregistered_decoder_is_a_config_error_listing_the_registered_ones():
    config = tiny_config("fcn8s")
    config.model.decoder = "pixel_shuffle"
    with pytest.raises(ValueError, match=r"model.decoder = 'pixel_shuffle': expected one of "
                                         r"\('bilinear', .*'max_unpool'\)"):
        config_checks.validate(config)


def test_a_name_is_registered_once():
    with pytest.raises(ValueError, match="'nearest' is already registered"):
        decoders.register("nearest")(type("Again", (), {}))
