"""FCN models: output size, bilinear upsampling against numpy, skip fusion at zero init."""

import os
import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from fcn_jax import models
from fcn_jax.models.decoders import FixedBilinearUpsample
from fcn_jax.inputs import RGB_MEAN, RGB_STD
from fcn_jax.models.fcn import FCN
from fcn_jax.ops import upsample as up
from tests.helpers import ROOT, tiny_config

NUM_CLASSES = 3


def tiny_fcn(variant: str, seed: int = 0) -> FCN:
    return FCN(NUM_CLASSES, variant=variant, width=0.0625, fc_channels=16, rngs=nnx.Rngs(seed))


def numpy_bilinear_1d(x: np.ndarray, factor: int, axis: int) -> tuple[np.ndarray, np.ndarray]:
    """Half-pixel bilinear upsampling along ``axis`` and a mask of outputs not at the border."""
    n = x.shape[axis]
    src = (np.arange(n * factor) + 0.5) / factor - 0.5
    lo = np.floor(src).astype(int)
    w = src - lo
    inside = (lo >= 0) & (lo + 1 <= n - 1)
    lo_c, hi_c = np.clip(lo, 0, n - 1), np.clip(lo + 1, 0, n - 1)
    shape = [1] * x.ndim
    shape[axis] = -1
    out = (np.take(x, lo_c, axis=axis) * (1 - w).reshape(shape)
           + np.take(x, hi_c, axis=axis) * w.reshape(shape))
    return out, inside


def numpy_bilinear(x: np.ndarray, factor: int) -> tuple[np.ndarray, np.ndarray]:
    """Bilinear upsampling of NHWC ``x`` by ``factor`` and the interior mask [H*f, W*f]."""
    y, in_h = numpy_bilinear_1d(x, factor, 1)
    y, in_w = numpy_bilinear_1d(y, factor, 2)
    return y, in_h[:, None] & in_w[None, :]


@pytest.mark.parametrize("variant", ["fcn32s", "fcn16s", "fcn8s"])
@pytest.mark.parametrize("height,width", [(97, 61), (33, 35), (64, 64), (1, 7)])
def test_output_size_equals_input_size(variant, height, width):
    model = tiny_fcn(variant)
    images = jnp.zeros((2, height, width, 3), jnp.uint8)
    assert model(images).shape == (2, height, width, NUM_CLASSES)


def test_bilinear_kernel_is_per_class_and_separable():
    kernel = up.bilinear_kernel(4, 3)
    assert kernel.shape == (8, 8, 3, 3)
    assert np.all(kernel[:, :, 0, 1] == 0) and np.all(kernel[:, :, 2, 0] == 0)
    k1 = np.array([1, 3, 5, 7, 7, 5, 3, 1]) / 8.0
    np.testing.assert_allclose(kernel[:, :, 1, 1], np.outer(k1, k1), rtol=1e-6)


@pytest.mark.parametrize("factor", [2, 8, 16, 32])
def test_bilinear_transposed_conv_equals_interpolation_away_from_borders(factor):
    rng = np.random.default_rng(factor)
    x = rng.normal(size=(2, 5, 4, NUM_CLASSES)).astype(np.float32)
    layer = FixedBilinearUpsample(NUM_CLASSES, factor)
    got = np.asarray(layer(jnp.asarray(x), 5 * factor, 4 * factor))
    want, inside = numpy_bilinear(x, factor)
    assert inside.sum() > 0.3 * inside.size
    np.testing.assert_allclose(got[:, inside], want[:, inside], rtol=1e-5, atol=1e-5)
    # At the borders the transposed conv sees one input only and attenuates (as in Caffe).
    assert not np.allclose(got[:, ~inside], want[:, ~inside])


def test_fresh_skip_nets_output_exactly_what_fcn32s_does():
    images = jnp.asarray(np.random.default_rng(0).integers(0, 256, (2, 70, 50, 3)), jnp.uint8)
    out32 = np.asarray(tiny_fcn("fcn32s")(images))
    for variant in ("fcn16s", "fcn8s"):
        np.testing.assert_array_equal(np.asarray(tiny_fcn(variant)(images)), out32)


def coarse_scores(model: FCN, images) -> np.ndarray:
    """score_fr of ``model`` (stride 32), computed layer by layer."""
    x = (images.astype(jnp.float32) - RGB_MEAN) / RGB_STD
    return np.asarray(model.score_fr(model.trunk(x)["fc7"]))


def transplant(source: FCN, target: FCN) -> None:
    """Copy the trunk and score_fr of ``source`` into ``target`` (staged initialisation)."""
    nnx.update(target.trunk, nnx.state(source.trunk))
    nnx.update(target.score_fr, nnx.state(source.score_fr))


def test_zero_skip_scores_leave_the_coarse_prediction_unchanged():
    """With score_pool4 / score_pool3 zero, 16s and 8s only upsample FCN-32s's coarse scores."""
    rng = np.random.default_rng(1)
    fcn32 = tiny_fcn("fcn32s")
    fcn32.score_fr.kernel[...] = jnp.asarray(rng.normal(size=fcn32.score_fr.kernel.shape),
                                             jnp.float32)
    images = jnp.asarray(rng.integers(0, 256, (1, 128, 96, 3)), jnp.uint8)
    score = coarse_scores(fcn32, images)
    assert np.abs(score).max() > 0
    want32, _ = numpy_bilinear(score, 32)
    got32 = np.asarray(fcn32(images))
    fcn16, fcn8 = tiny_fcn("fcn16s", seed=5), tiny_fcn("fcn8s", seed=6)
    transplant(fcn32, fcn16)
    transplant(fcn32, fcn8)
    want16, _ = numpy_bilinear(numpy_bilinear(score, 2)[0], 16)
    want8, _ = numpy_bilinear(numpy_bilinear(numpy_bilinear(score, 2)[0], 2)[0], 8)
    for got, want in ((got32, want32), (np.asarray(fcn16(images)), want16),
                      (np.asarray(fcn8(images)), want8)):
        centre = (slice(None), slice(48, 80), slice(40, 56))
        np.testing.assert_allclose(got[centre], want[centre], rtol=1e-4, atol=1e-4)
    # The skip path is live: a non-zero score_pool4 changes the output.
    fcn16.score_pool4.bias[...] = jnp.ones(NUM_CLASSES)
    assert not np.allclose(np.asarray(fcn16(images)), want16, atol=1e-3)


def test_dropout_masks_depend_on_keys_only():
    model = tiny_fcn("fcn32s")
    model.score_fr.kernel[...] = jnp.ones_like(model.score_fr.kernel[...])
    images = jnp.full((2, 64, 64, 3), 128, jnp.uint8)
    keys = jax.random.split(jax.random.key(0), 2)
    a, b = model(images, dropout_keys=keys), model(images, dropout_keys=keys)
    np.testing.assert_array_equal(a, b)
    assert not np.allclose(a, model(images))
    # Per-example keys: the first example's output does not depend on the batch around it.
    np.testing.assert_allclose(model(images[:1], dropout_keys=keys[:1]), a[:1], rtol=1e-6)


def test_unknown_variant_is_an_error():
    with pytest.raises(ValueError, match="model.variant='fcn4s'"):
        tiny_fcn("fcn4s")


@pytest.mark.parametrize("factor", [2, 8])
def test_transposed_conv_matches_torch(factor):
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(factor)
    x = rng.normal(size=(2, 5, 4, 3)).astype(np.float32)
    kernel = rng.normal(size=(2 * factor, 2 * factor, 3, 3)).astype(np.float32)  # HWIO
    got = np.asarray(up.transposed_conv(jnp.asarray(x), jnp.asarray(kernel), factor))
    # lax.conv_transpose does not flip the kernel; torch's (the true adjoint of conv) does.
    weight = torch.from_numpy(kernel[::-1, ::-1].transpose(2, 3, 0, 1).copy())
    want = torch.nn.functional.conv_transpose2d(
        torch.from_numpy(x.transpose(0, 3, 1, 2).copy()), weight, stride=factor)
    np.testing.assert_allclose(got, want.numpy().transpose(0, 2, 3, 1), rtol=1e-4, atol=1e-4)


def test_build_initialises_as_running_the_constructor_op_by_op():
    """models.build compiles the initialisation as one program: the same values as eager
    construction, fixed kernels included."""
    m = tiny_config("fcn16s").model
    built = models.build(m, 5, 3)
    eager = FCN(5, variant=m.variant, width=m.width, fc_channels=m.fc_channels or None,
                dropout_rate=m.dropout_rate, decoder=m.decoder,
                skip_scales=tuple(m.skip_scales), fc6_kernel=m.fc6_kernel,
                fast_paths=m.fast_paths, compute_dtype=m.compute_dtype,
                shift_stitch=m.shift_stitch, rngs=nnx.Rngs(params=3))
    jax.tree.map(np.testing.assert_array_equal, nnx.state(built), nnx.state(eager))


def test_runs_that_differ_only_in_seed_share_the_compiled_initialisation(tmp_path):
    """The seed is an argument of build's program, not a constant in it: a second process
    building with another seed finds every program in the persistent compilation cache the
    first one filled (a 5-seed study compiles each net once)."""
    script = ("import sys; from fcn_jax import models; from tests.helpers import ROOT, tiny_config; "
              "models.build(tiny_config('fcn8s').model, 5, int(sys.argv[1]))")
    env = dict(os.environ, JAX_COMPILATION_CACHE_DIR=str(tmp_path),
               JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS="0")
    entries = []
    for seed in ("0", "1"):
        subprocess.run([sys.executable, "-c", script, seed], cwd=ROOT, env=env, check=True)
        entries.append(sorted(p.name for p in tmp_path.iterdir()))
    assert entries[0] and entries[1] == entries[0]
