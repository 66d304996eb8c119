"""The backend seam: which kernels run where, and that every kernel set computes the same.

``model.fast_paths=auto`` runs the CPU fast kernels on the CPU backend; ``off`` (and ``auto``
on GPU/TPU) the plain XLA formulation. Here: the choice, the CPU convolution's dispatch by
shape, the label kernels, and every net and decoder with one set against the other, in values
and gradients. The pooling and upsampling pairs against Flax / lax / numpy are in
test_pool_ops.py and test_upsample_ops.py.
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx
from jax import lax

from fcn_jax import backends, models
from fcn_jax.backends import cpu
from fcn_jax.backends.kernels import PLAIN_KERNELS
from fcn_jax.models.caffe import CaffeFCN
from fcn_jax.models.classifier import Classifier
from fcn_jax.models.decoders import DECODERS
from fcn_jax.models.fcn import FCN
from tests.helpers import tiny_config

FAST, PLAIN = cpu.FAST_KERNELS, PLAIN_KERNELS
NHWC = ("NHWC", "HWIO", "NHWC")


def normal(seed: int, shape) -> jax.Array:
    return jnp.asarray(np.random.default_rng(seed).normal(size=shape), jnp.float32)


def test_auto_is_the_cpu_set_on_cpu_only_and_off_is_plain_everywhere():
    assert backends.kernels("auto") is FAST  # the tests run on the CPU backend
    assert backends.kernels("auto", "cpu") is FAST
    for backend in ("gpu", "cuda", "rocm", "tpu"):
        assert backends.kernels("auto", backend) is PLAIN
    for backend in ("cpu", "gpu", "tpu"):
        assert backends.kernels("off", backend) is PLAIN
    assert backends.describe("auto") == "kernels: cpu-fast (model.fast_paths=auto, backend cpu)"
    assert backends.describe("off") == "kernels: plain (model.fast_paths=off, backend cpu)"


def test_an_unknown_setting_names_the_key_and_the_choices():
    with pytest.raises(ValueError, match=r"model.fast_paths='fast': expected one of \('auto', 'off'\)"):
        backends.kernels("fast")


def test_the_model_takes_its_kernels_from_the_seam(monkeypatch):
    config = tiny_config("fcn8s")
    assert models.build(config.model, 3, 0).kernels is FAST
    config.model.fast_paths = "off"
    assert models.build(config.model, 3, 0).kernels is PLAIN
    monkeypatch.setattr(jax, "default_backend", lambda: "gpu")
    config.model.fast_paths = "auto"
    model = models.build(config.model, 3, 0)
    assert model.kernels is PLAIN and model.trunk.conv1_1.conv_general_dilated is lax.conv_general_dilated


def test_compiler_options_only_on_cpu(monkeypatch):
    assert backends.compiler_options() == cpu.options()
    monkeypatch.setattr(jax, "default_backend", lambda: "tpu")
    assert backends.compiler_options() is None and backends.compiler_options(4) is None


def assert_same_values_and_grads(fast_fn, plain_fn, *args, rtol=1e-5, atol=1e-5):
    """fast_fn(*args) == plain_fn(*args), and their VJPs of one random cotangent too."""
    fast_out, fast_vjp = jax.vjp(fast_fn, *args)
    plain_out, plain_vjp = jax.vjp(plain_fn, *args)
    np.testing.assert_allclose(fast_out, plain_out, rtol=rtol, atol=atol)
    cotangent = normal(99, plain_out.shape)
    for got, want in zip(fast_vjp(cotangent), plain_vjp(cotangent)):
        np.testing.assert_allclose(got, want, rtol=rtol, atol=atol)


@pytest.mark.parametrize("kernel_shape, padding", [
    ((3, 3, 3, 8), "SAME"), ((3, 3, 3, 8), ((2, 1), (0, 3))),  # column-grouped
    ((1, 1, 6, 5), "VALID"), ((7, 7, 6, 5), "SAME"), ((5, 5, 6, 3), ((2, 1), (0, 3))),  # im2col
    ((3, 3, 6, 5), "SAME"), ((3, 3, 6, 5), "VALID"),  # lax's own
])
def test_the_cpu_convolution_equals_lax_for_every_shape_it_dispatches(kernel_shape, padding):
    x, kernel = normal(1, (2, 11, 9, kernel_shape[2])), normal(2, kernel_shape) * 0.3

    def conv(kernels):
        return lambda a, k: kernels.conv(a, k, (1, 1), padding, dimension_numbers=NHWC)
    assert_same_values_and_grads(conv(FAST), conv(PLAIN), x, kernel, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("kernels", [FAST, PLAIN], ids=["fast", "plain"])
def test_class_predictions_equal_argmax_with_ties_and_nans(kernels):
    rng = np.random.default_rng(0)
    logits = np.round(rng.normal(size=(2, 9, 7, 5)) * 2) / 2  # many ties
    logits[0, 0, 0] = 1.0  # all classes tie: class 0
    logits[0, 1, 1, 3] = np.nan  # a NaN wins, as in np.argmax
    logits[1, 2, 2, [1, 4]] = np.nan  # the first NaN wins
    want = np.argmax(logits, -1)
    logits = jnp.asarray(logits, jnp.float32)
    np.testing.assert_array_equal(kernels.class_predictions(logits), want)
    np.testing.assert_array_equal(jax.jit(kernels.class_predictions)(logits), want)


def randomized(model: nnx.Module, seed: int) -> nnx.Module:
    """Every parameter drawn He-normal (the score layers start at zero, which would hide the
    trunk's gradients); the fixed bilinear kernels are kept."""
    params = nnx.state(model, nnx.Param)
    leaves, treedef = jax.tree.flatten(params)
    keys = jax.random.split(jax.random.PRNGKey(seed), len(leaves))
    drawn = [jax.random.normal(k, p.shape) * np.sqrt(2.0 / max(1, np.prod(p.shape[:-1])))
             for k, p in zip(keys, leaves)]
    nnx.update(model, jax.tree.unflatten(treedef, drawn))
    return model


def net_pair(make):
    """The same net (same parameters) with the CPU kernels and with the plain ones."""
    fast, plain = (randomized(make(setting), 0) for setting in ("auto", "off"))
    assert fast.trunk.kernels is FAST and plain.trunk.kernels is PLAIN
    return fast, plain


def assert_nets_agree(fast, plain, images):
    keys = jax.random.split(jax.random.PRNGKey(1), images.shape[0])  # dropout on: training
    outputs = []
    for model in (fast, plain):
        graphdef, params, rest = nnx.split(model, nnx.Param, ...)

        def loss(p, graphdef=graphdef, rest=rest):
            out = nnx.merge(graphdef, p, rest)(images, dropout_keys=keys)
            return jnp.sum(out * normal(8, out.shape)), out
        (_, out), grads = jax.jit(jax.value_and_grad(loss, has_aux=True))(params)
        outputs.append((out, grads))
    (fast_out, fast_grads), (plain_out, plain_grads) = outputs
    scale = float(jnp.max(jnp.abs(plain_out)))
    assert scale > 0
    np.testing.assert_allclose(fast_out, plain_out, rtol=1e-4, atol=1e-5 * scale)
    for (path, got), (_, want) in zip(nnx.to_flat_state(fast_grads),
                                      nnx.to_flat_state(plain_grads)):
        want = np.asarray(want[...])
        assert np.abs(want).max() > 0, path  # every parameter gets a gradient
        np.testing.assert_allclose(got[...], want, rtol=1e-3,
                                   atol=1e-4 * np.abs(want).max(), err_msg=str(path))


IMAGES = jnp.asarray(np.random.default_rng(9).integers(0, 256, (2, 44, 36, 3)), jnp.uint8)
SMALL = {"width": 0.0625, "fc_channels": 16}


@pytest.mark.parametrize("variant", [pytest.param("fcn32s", marks=pytest.mark.slow),
                                     pytest.param("fcn16s", marks=pytest.mark.slow), "fcn8s"])
def test_every_net_is_the_same_with_fast_paths_on_and_off(variant):
    assert_nets_agree(*net_pair(lambda fast_paths: FCN(
        3, variant=variant, **SMALL, fast_paths=fast_paths, rngs=nnx.Rngs(0))), IMAGES)


def test_max_unpooling_through_the_net_is_the_same_with_fast_paths_on_and_off():
    """The decoder that reads the trunk's features (its switches)."""
    assert_nets_agree(*net_pair(lambda fast_paths: FCN(
        3, variant="fcn8s", decoder="max_unpool", **SMALL, fast_paths=fast_paths,
        rngs=nnx.Rngs(0))), IMAGES)


@pytest.mark.parametrize("decoder", list(DECODERS))
def test_every_decoder_layer_is_the_same_with_either_kernel_set(decoder):
    """Each upsampling layer (2x and 8x) alone, the same parameters, values and gradients."""
    scores = normal(11, (2, 5, 4, 3))
    for factor, stride in ((2, 32), (8, 8)):
        top = int(np.log2(stride))  # conv<top> is the input of the pooling to this stride
        features = {f"conv{level}": normal(level, (2, 5 * 2 ** (top - level + 1),
                                                   4 * 2 ** (top - level + 1), 6))
                    for level in range(1, top + 1)}
        layers = []
        for kernels in (FAST, PLAIN):
            layer = DECODERS[decoder](3, factor, stride=stride, kernels=kernels,
                                      dtype=jnp.float32, rngs=nnx.Rngs(0))
            layers.append(randomized(layer, 0) if nnx.state(layer, nnx.Param) else layer)
        size = (5 * factor - 1, 4 * factor - 2)

        def apply(layer):
            graphdef, params, rest = nnx.split(layer, nnx.Param, ...)
            return lambda p, x: nnx.merge(graphdef, p, rest)(x, *size, features), params
        (fast, fast_params), (plain, plain_params) = (apply(layer) for layer in layers)
        assert_same_values_and_grads(lambda x: fast(fast_params, x),
                                     lambda x: plain(plain_params, x), scores,
                                     rtol=1e-4, atol=1e-4)
        if jax.tree.leaves(fast_params):
            cotangent = normal(12, (2, *size, 3))
            grads = [jax.grad(lambda p, f=f: jnp.vdot(f(p, scores), cotangent))(p)
                     for f, p in ((fast, fast_params), (plain, plain_params))]
            for got, want in zip(*(jax.tree.leaves(g) for g in grads)):
                np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("skip_scales", [(0.01, 1e-4)], ids=["at-once"])  # skips scaled
def test_the_caffe_layout_is_the_same_with_fast_paths_on_and_off(skip_scales):
    assert_nets_agree(*net_pair(lambda fast_paths: CaffeFCN(
        3, variant="fcn8s", skip_scales=skip_scales, **SMALL, fast_paths=fast_paths,
        rngs=nnx.Rngs(0))), IMAGES[:, :20, :26])


def test_the_classifier_is_the_same_with_fast_paths_on_and_off():
    images = jnp.asarray(np.random.default_rng(10).integers(0, 256, (2, 64, 64, 3)), jnp.uint8)
    assert_nets_agree(*net_pair(lambda fast_paths: Classifier(
        5, **SMALL, fc6_kernel=2, fast_paths=fast_paths, rngs=nnx.Rngs(0))), images)
