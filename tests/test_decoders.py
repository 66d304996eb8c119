"""Decoders chosen by config: shapes, parameters, and each against a numpy reference."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from fcn_jax.models import decoders
from fcn_jax.models.fcn import FCN, upsampling_parameter_count

NUM_CLASSES = 3


def tiny_fcn(variant: str, decoder: str) -> FCN:
    return FCN(NUM_CLASSES, variant=variant, width=0.0625, fc_channels=16, decoder=decoder,
               rngs=nnx.Rngs(0))


def random_map(shape, seed=0) -> np.ndarray:
    return np.random.default_rng(seed).normal(size=shape).astype(np.float32)


def numpy_tent_conv(x: np.ndarray) -> np.ndarray:
    """Per-channel 3x3 convolution with the tent [1/2, 1, 1/2] x [1/2, 1, 1/2], zero padding."""
    tent = np.array([0.5, 1.0, 0.5])
    padded = np.pad(x, ((0, 0), (1, 1), (1, 1), (0, 0)))
    out = np.zeros_like(x)
    for i in range(x.shape[1]):
        for j in range(x.shape[2]):
            for di in range(3):
                for dj in range(3):
                    out[:, i, j] += tent[di] * tent[dj] * padded[:, i + di, j + dj]
    return out


def numpy_switches(activation: np.ndarray) -> tuple[np.ndarray, int]:
    """Flat index (in the map padded to even size) of each 2x2 window's channel-mean peak."""
    mean = activation.mean(-1)
    n, h, w = mean.shape
    hp, wp = h + h % 2, w + w % 2
    index = np.zeros((n, hp // 2, wp // 2, 1), np.int64)
    for b, i, j in np.ndindex(n, hp // 2, wp // 2):
        cells = [(r, c) for r in (2 * i, 2 * i + 1) for c in (2 * j, 2 * j + 1)
                 if r < h and c < w]
        r, c = max(cells, key=lambda rc: (mean[b, rc[0], rc[1]], -rc[0], -rc[1]))
        index[b, i, j, 0] = r * wp + c
    return index, wp


@pytest.mark.parametrize("decoder", decoders.DECODERS)
@pytest.mark.parametrize("variant", ["fcn32s", "fcn8s"])
def test_every_decoder_gives_logits_of_the_input_size(decoder, variant):
    images = jnp.asarray(np.random.default_rng(0).integers(0, 256, (2, 69, 45, 3)), jnp.uint8)
    logits = tiny_fcn(variant, decoder)(images)
    assert logits.shape == (2, 69, 45, NUM_CLASSES)
    assert np.all(np.isfinite(np.asarray(logits)))


def test_parameter_counts_of_the_decoders():
    c = NUM_CLASSES
    want = {"bilinear": 0, "nearest": 0,
            "learned_bilinear": (4 * 4 + 4 * 4 + 16 * 16) * c * c,
            "learned_random": (4 * 4 + 4 * 4 + 16 * 16) * c * c,
            # one 3x3 conv (kernel and bias) per 2x stage: 1 + 1 + 3 stages
            "bed_of_nails": 5 * (9 * c * c + c), "max_unpool": 5 * (9 * c * c + c)}
    for decoder, count in want.items():
        assert upsampling_parameter_count(tiny_fcn("fcn8s", decoder)) == count, decoder


def test_learned_random_kernel_is_not_bilinear_and_learned_bilinear_starts_bilinear():
    random_layer = tiny_fcn("fcn32s", "learned_random").upscore
    bilinear_layer = tiny_fcn("fcn32s", "learned_bilinear").upscore
    fixed_layer = tiny_fcn("fcn32s", "bilinear").upscore
    np.testing.assert_array_equal(bilinear_layer.kernel[...], fixed_layer.kernel[...])
    assert isinstance(bilinear_layer.kernel, nnx.Param)
    assert not isinstance(fixed_layer.kernel, nnx.Param)
    assert not np.allclose(random_layer.kernel[...], fixed_layer.kernel[...])


def test_nearest_decoder_repeats_each_coarse_score_over_its_block():
    x = random_map((2, 3, 4, NUM_CLASSES))
    got = np.asarray(decoders.NearestUpsample(NUM_CLASSES, 8)(jnp.asarray(x), 20, 30))
    want = np.zeros((2, 20, 30, NUM_CLASSES), np.float32)
    for i, j in np.ndindex(20, 30):
        want[:, i, j] = x[:, i // 8, j // 8]
    np.testing.assert_array_equal(got, want)


def test_bed_of_nails_stage_starts_as_linear_interpolation():
    x = random_map((1, 4, 5, NUM_CLASSES), seed=1)
    layer = decoders.BedOfNailsUpsample(NUM_CLASSES, 2, stride=2, rngs=nnx.Rngs(0))
    got = np.asarray(layer(jnp.asarray(x), 8, 10))
    np.testing.assert_allclose(got[:, ::2, ::2], x, rtol=1e-6)
    np.testing.assert_allclose(got[:, 1:-1:2, ::2], (x[:, :-1] + x[:, 1:]) / 2, rtol=1e-5)
    np.testing.assert_allclose(got[:, ::2, 1:-1:2], (x[:, :, :-1] + x[:, :, 1:]) / 2,
                               rtol=1e-5)


def test_pooling_switches_match_loops_on_odd_sizes():
    activation = random_map((2, 7, 5, 6), seed=2)
    index, size = decoders.pooling_switches(jnp.asarray(activation))
    want, _ = numpy_switches(activation)
    np.testing.assert_array_equal(np.asarray(index), want)
    assert size == (7, 5)


def test_max_unpool_stages_place_scores_at_the_switches_then_convolve():
    """Two stages (factor 4) from stride 4, with switches of pool2 and pool1, vs numpy."""
    rng = np.random.default_rng(3)
    conv1 = rng.normal(size=(1, 11, 13, 5)).astype(np.float32)  # input of pool1
    conv2 = rng.normal(size=(1, 6, 7, 5)).astype(np.float32)    # input of pool2
    scores = rng.normal(size=(1, 3, 4, NUM_CLASSES)).astype(np.float32)
    layer = decoders.MaxUnpoolUpsample(NUM_CLASSES, 4, stride=4, rngs=nnx.Rngs(0))
    features = {"conv1": jnp.asarray(conv1), "conv2": jnp.asarray(conv2)}
    got = np.asarray(layer(jnp.asarray(scores), 11, 13, features))

    x = scores
    for activation in (conv2, conv1):
        index, padded_width = numpy_switches(activation)
        h, w = activation.shape[1:3]
        out = np.zeros((1, 2 * x.shape[1], padded_width, NUM_CLASSES), np.float32)
        for i, j in np.ndindex(*x.shape[1:3]):
            r, c = divmod(int(index[0, i, j, 0]), padded_width)
            out[0, r, c] = x[0, i, j]
        x = numpy_tent_conv(out[:, :h, :w])
    np.testing.assert_allclose(got, x, rtol=1e-5, atol=1e-6)


def test_max_unpool_without_switches_names_the_missing_pool():
    layer = decoders.MaxUnpoolUpsample(NUM_CLASSES, 2, stride=8, rngs=nnx.Rngs(0))
    with pytest.raises(ValueError, match="pool3"):
        layer(jnp.zeros((1, 2, 2, NUM_CLASSES)), 4, 4, {})


@pytest.mark.parametrize("decoder", ["learned_bilinear", "learned_random", "bed_of_nails",
                                     "max_unpool"])
@pytest.mark.slow
def test_learned_decoders_receive_gradients(decoder):
    model = tiny_fcn("fcn16s", decoder)
    # Non-zero score layers, so the upsampling layers see non-zero inputs.
    for layer in (model.score_fr, model.score_pool4):
        layer.kernel[...] = jnp.asarray(random_map(layer.kernel.shape, seed=4))
    graphdef, params, rest = nnx.split(model, nnx.Param, ...)
    images = jnp.asarray(np.random.default_rng(5).integers(0, 256, (1, 64, 64, 3)), jnp.uint8)

    def loss(p):
        return jnp.sum(nnx.merge(graphdef, p, rest)(images) ** 2)

    grads = nnx.to_flat_state(jax.grad(loss)(params))
    norms = {path: float(jnp.abs(g[...]).sum()) for path, g in grads if path[0] == "upscore16"}
    assert norms and all(v > 0 for v in norms.values()), norms


def test_unknown_decoder_lists_the_choices():
    with pytest.raises(ValueError, match="model.decoder='bicubic'.*max_unpool"):
        tiny_fcn("fcn8s", "bicubic")
