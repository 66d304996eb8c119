"""The per-function XLA options change speed only: the train step's update is the same."""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from flax import nnx

from fcn_jax import steps
from fcn_jax.backends import cpu as compiler
from fcn_jax.models.fcn import FCN


def test_options_apply_on_cpu():
    # The pinned jax knows both sets; a newer one may not.
    assert all(compiler.supported(o[compiler.YNN_OPTION])
               for o in (compiler.CPU_OPTIONS, compiler.SHARDED_CPU_OPTIONS))
    assert not compiler.supported("LIBRARY_FUSION_TYPE_NO_SUCH_THING")
    assert compiler.options() == compiler.options(1) == compiler.CPU_OPTIONS
    assert compiler.options(2) == compiler.SHARDED_CPU_OPTIONS


def test_options_fall_back_where_xla_does_not_know_a_value(monkeypatch):
    monkeypatch.setattr(compiler, "supported", lambda value: "CONVOLUTION" not in value)
    assert compiler.options(2) == compiler.CPU_OPTIONS
    monkeypatch.setattr(compiler, "supported", lambda value: False)
    assert compiler.options(1) is None and compiler.options(2) is None


@pytest.mark.parametrize("local_devices", [1, 2])
@pytest.mark.slow
def test_train_step_update_is_the_same_with_and_without_options(local_devices):
    model = FCN(3, variant="fcn8s", width=0.0625, fc_channels=16, rngs=nnx.Rngs(0))
    graphdef, params, constants = nnx.split(model, nnx.Param, ...)
    tx = optax.sgd(0.1, momentum=0.9)
    state = {"step": jnp.zeros((), jnp.int32), "params": params, "opt_state": tx.init(params),
             "rng": jax.random.PRNGKey(0)}
    rng = np.random.default_rng(0)
    batch = {"image": jnp.asarray(rng.integers(0, 256, (2, 40, 36, 3)), jnp.uint8),
             "label": jnp.asarray(rng.integers(0, 3, (2, 40, 36)), jnp.uint8)}
    body = functools.partial(steps.train_step, graphdef=graphdef, constants=constants, tx=tx,
                             num_classes=3, normalize_loss=True, class_weights=None,
                             axis_name=None)
    (new, out), (want, want_out) = (
        jax.jit(body, compiler_options=options)(state, batch)
        for options in (compiler.options(local_devices), None))
    np.testing.assert_allclose(out["loss"], want_out["loss"], rtol=1e-5)
    np.testing.assert_array_equal(out["confusion"], want_out["confusion"])
    for got, expected in zip(jax.tree.leaves(new["params"]), jax.tree.leaves(want["params"])):
        np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-6)
