"""model.compute_dtype=bfloat16: bfloat16 activations and convolutions from float32
parameters; float32 logits, loss, gradients and optimiser state."""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from flax import nnx

from fcn_jax import config_checks, models, steps
from fcn_jax.models.fcn import FCN
from tests.helpers import tiny_config

IMAGES = jnp.asarray(np.random.default_rng(0).integers(0, 256, (2, 40, 36, 3)), jnp.uint8)
LABELS = jnp.asarray(np.random.default_rng(1).integers(0, 3, (2, 40, 36)), jnp.uint8)


def model(dtype: str, fast_paths: str = "auto", decoder: str = "bilinear") -> FCN:
    net = FCN(3, variant="fcn8s", width=0.0625, fc_channels=16, decoder=decoder,
              compute_dtype=dtype, fast_paths=fast_paths, rngs=nnx.Rngs(0))
    for layer in (net.score_fr, net.score_pool4, net.score_pool3):  # zero at init: no signal
        layer.kernel[...] = jax.random.normal(jax.random.PRNGKey(2), layer.kernel.shape) * 0.3
    return net


@pytest.mark.parametrize("fast_paths", ["auto", "off"])
def test_activations_are_bfloat16_and_the_logits_float32(fast_paths):
    net = model("bfloat16", fast_paths)
    x = jnp.zeros((1, 40, 36, 3), jnp.bfloat16)
    features = net.trunk(x)
    assert {str(f.dtype) for f in features.values()} == {"bfloat16"}
    assert net(IMAGES).dtype == jnp.float32
    params = nnx.state(net, nnx.Param)
    assert {str(p.dtype) for p in jax.tree.leaves(params)} == {"float32"}


@pytest.mark.parametrize("fast_paths", ["auto", "off"])
def test_bfloat16_logits_are_float32_logits_to_bfloat16_precision(fast_paths):
    full, half = model("float32", fast_paths)(IMAGES), model("bfloat16", fast_paths)(IMAGES)
    scale = float(jnp.max(jnp.abs(full)))
    assert scale > 0
    # bfloat16 keeps 8 significant bits (relative spacing 2**-8); ~18 layers of rounding
    np.testing.assert_allclose(half, full, atol=0.05 * scale)
    assert float(jnp.mean(jnp.abs(half - full))) < 0.01 * scale


@pytest.mark.parametrize("decoder", ["bilinear", "max_unpool"])  # fixed; learned, with switches
def test_a_bfloat16_train_step_keeps_float32_state_and_finite_gradients(decoder):
    net = model("bfloat16", decoder=decoder)
    graphdef, params, constants = nnx.split(net, nnx.Param, ...)
    tx = optax.sgd(0.01, momentum=0.9)
    state = {"step": jnp.zeros((), jnp.int32), "params": params, "opt_state": tx.init(params),
             "rng": jax.random.PRNGKey(0)}
    step = jax.jit(functools.partial(steps.train_step, graphdef=graphdef, constants=constants,
                                     tx=tx, num_classes=3, normalize_loss=True,
                                     class_weights=None, axis_name=None))
    new, out = step(state, {"image": IMAGES, "label": LABELS})
    assert out["loss"].dtype == jnp.float32 and np.isfinite(float(out["loss"]))
    assert int(out["confusion"].sum()) == LABELS.size
    for old, updated, trace in zip(jax.tree.leaves(params), jax.tree.leaves(new["params"]),
                                   jax.tree.leaves(new["opt_state"])):
        assert updated.dtype == trace.dtype == jnp.float32
        assert np.all(np.isfinite(updated))
    moved = [not np.array_equal(o, u) for o, u in zip(jax.tree.leaves(params),
                                                      jax.tree.leaves(new["params"]))]
    assert all(moved)  # every parameter got a gradient


def test_the_config_key_is_checked_and_reaches_the_model():
    config = tiny_config("fcn8s")
    config.model.compute_dtype = "bfloat16"
    assert models.build(config.model, 3, 0).trunk.dtype == jnp.bfloat16
    config.model.compute_dtype = "float16"
    with pytest.raises(ValueError, match="model.compute_dtype"):
        config_checks.validate(config)
