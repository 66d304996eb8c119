"""Shift-and-stitch (section 3.2) against a naive loop, its grid against a native finer net's,
the FCN built with it, and the refusals of factors and layouts it cannot serve."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from fcn_jax import config_checks, evaluate, models, run
from fcn_jax.models.fcn import VARIANT_STRIDES
from fcn_jax.ops import shift_stitch as stitching
from tests.helpers import tiny_config


def coarse_net(stride: int, channels: int, classes: int, seed: int = 0):
    """A nonlinear stand-in for a stride-s net: window sums (s x s, stride s, SAME), tanh,
    a channel mix."""
    mix = jnp.asarray(np.random.default_rng(seed).normal(size=(channels, classes)), jnp.float32)

    def fn(x):
        summed = jax.lax.reduce_window(x, 0.0, jax.lax.add, (1, stride, stride, 1),
                                       (1, stride, stride, 1), "SAME")
        return jnp.tanh(summed / stride) @ mix
    return fn


def naive_shift_and_stitch(fn, x: np.ndarray, factor: int, stride: int, fill: float):
    """The definition, one shifted copy and one output cell at a time."""
    step = stride // factor
    offsets = [a * step - (stride - step) // 2 for a in range(factor)]
    n, height, width, _ = x.shape
    pad = max(abs(o) for o in offsets)
    padded = np.pad(x, ((0, 0), (pad, pad), (pad, pad), (0, 0)), constant_values=fill)
    out = None
    for a, dy in enumerate(offsets):
        for b, dx in enumerate(offsets):
            copy = padded[:, pad + dy:pad + dy + height, pad + dx:pad + dx + width]
            scores = np.asarray(fn(jnp.asarray(copy)))
            if out is None:
                h, w = scores.shape[1:3]
                out = np.zeros((n, h * factor, w * factor, scores.shape[3]), np.float32)
            for i in range(scores.shape[1]):
                for j in range(scores.shape[2]):
                    out[:, i * factor + a, j * factor + b] = scores[:, i, j]
    return out


@pytest.mark.parametrize("stride,factor,size", [(32, 2, (64, 96)), (32, 4, (70, 45)),
                                                (16, 8, (33, 32)), (8, 1, (16, 24))])
def test_shift_and_stitch_equals_the_naive_loop(stride, factor, size):
    x = np.random.default_rng(1).normal(size=(2, *size, 3)).astype(np.float32)
    fn = coarse_net(stride, 3, 4)
    got = stitching.shift_and_stitch(fn, jnp.asarray(x), factor, stride, fill=0.5)
    np.testing.assert_allclose(np.asarray(got), naive_shift_and_stitch(fn, x, factor, stride,
                                                                       0.5),
                               rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("stride,factor", [(32, 2), (32, 4), (32, 16), (8, 2)])
def test_stitched_cells_sit_where_a_native_finer_net_puts_them(stride, factor):
    """A stride-s window average, stitched f times, equals the same window averaged at stride
    s / f, windows centred like a native stride-(s / f) net's cells."""
    step = stride // factor
    x = np.random.default_rng(2).normal(size=(1, 4 * stride, 3 * stride, 2)).astype(np.float32)

    def window_mean(v, window_stride):  # window s x s starting at i * window_stride
        return jax.lax.reduce_window(v, 0.0, jax.lax.add, (1, stride, stride, 1),
                                     (1, window_stride, window_stride, 1), "VALID") / stride ** 2

    margin = (stride - step) // 2  # a native net's window starts this far before its cell
    padded = np.pad(x, ((0, 0), (margin, stride), (margin, stride), (0, 0)))
    native = np.asarray(window_mean(jnp.asarray(padded), step))
    got = np.asarray(stitching.shift_and_stitch(lambda v: window_mean(v, stride),
                                                jnp.asarray(x), factor, stride))
    # Each native cell's window starts at k * step - margin, the k-th stitched cell's window.
    np.testing.assert_allclose(got, native[:, :got.shape[1], :got.shape[2]], rtol=1e-5,
                               atol=1e-6)
    # The centre of stitched cell k is k * (s / f) + (s / f - 1) / 2, as a native net's.
    assert stitching.shifts(factor, stride)[0] == -margin


def test_the_fcn_stitches_its_fused_scores_then_upsamples_by_the_finer_stride():
    config = tiny_config("fcn16s")
    config.model.shift_stitch = 4
    model = models.build(config.model, 3, 0)
    params = nnx.state(model, nnx.Param)  # live score layers, so every path reaches the output
    rng = np.random.default_rng(3)
    nnx.update(model, jax.tree.map(lambda v: v + 0.1 * rng.normal(size=v.shape), params))
    plain = models.build(tiny_config("fcn16s").model, 3, 0)
    nnx.update(plain, nnx.state(model, nnx.Param))
    images = jnp.asarray(rng.integers(0, 256, (2, 48, 40, 3)), jnp.uint8)
    logits = model(images)
    assert logits.shape == (2, 48, 40, 3)
    stitched = naive_shift_and_stitch(lambda v: plain.scores(v, None)[0],
                                      np.asarray(plain.model_input(images)), 4, 16, 0.0)
    expected = model.upscore16(jnp.asarray(stitched), 48, 40)  # fixed bilinear, 16 / 4 = 4x
    assert model.upscore16.factor == 4
    np.testing.assert_allclose(np.asarray(logits), np.asarray(expected), rtol=1e-4, atol=1e-4)


def test_gradients_reach_the_trunk_through_every_shifted_copy():
    config = tiny_config("fcn32s")
    config.model.shift_stitch = 2
    model = models.build(config.model, 3, 0)
    graphdef, params, rest = nnx.split(model, nnx.Param, ...)
    images = jnp.asarray(np.random.default_rng(4).integers(0, 256, (1, 64, 64, 3)), jnp.uint8)

    def loss(p):
        logits = nnx.merge(graphdef, p, rest)(images, dropout_keys=jax.random.split(
            jax.random.PRNGKey(0), 1))
        return jnp.mean(jax.nn.log_softmax(logits)[..., 0])

    grads = nnx.to_flat_state(jax.grad(loss)(params))
    score = dict(grads)[("score_fr", "kernel")][...]
    assert np.all(np.isfinite(score)) and np.abs(score).sum() > 0


@pytest.mark.parametrize("variant,factor,ok", [
    ("fcn32s", 16, True), ("fcn32s", 32, False), ("fcn32s", 3, False), ("fcn8s", 4, True),
    ("fcn8s", 8, False), ("fcn16s", 0, False), ("fcn16s", True, False)])
def test_config_check_names_the_factor_and_the_allowed_ones(variant, factor, ok):
    config = tiny_config(variant)
    config.model.shift_stitch = factor
    found = config_checks.problems(config)
    if ok:
        assert not found
    else:
        assert len(found) == 1 and found[0].startswith(
            f"config.model.shift_stitch = {factor!r}: expected one of "
            f"{stitching.allowed_factors(VARIANT_STRIDES[variant])}")


def test_layouts_and_decoders_it_cannot_serve_are_refused():
    config = tiny_config("fcn32s")
    config.model.update(shift_stitch=2, caffe=True)
    assert "expected 1 with model.caffe=True" in config_checks.problems(config)[0]
    with pytest.raises(ValueError, match="expected 1 with model.caffe=True"):
        models.build(config.model, 3, 0)
    config.model.update(caffe=False, decoder="max_unpool")
    with pytest.raises(ValueError, match="pooling switches"):
        models.build(config.model, 3, 0)
    with pytest.raises(ValueError, match=r"one of \[1, 2, 4\]"):
        stitching.check_factor(8, 8)
    assert stitching.shifts(4, 32) == [-12, -4, 4, 12]  # centred on zero


def test_a_trained_net_is_stitched_at_inference_from_its_own_checkpoint(trained_fcn8s):
    """Shift-and-stitch as the paper introduces it (3.2): a net trained without it scored with
    it (``fcn_jax.evaluate --source W --config.model.shift_stitch=2``): the checkpoint's
    trained parameters are restored unchanged into the stitched net."""
    config, workdir = trained_fcn8s
    stitched_config = config.copy_and_resolve_references()
    stitched_config.model.shift_stitch = 2
    _, plain = run.restore_latest(config, workdir)
    stitched_run, stitched = run.restore_latest(stitched_config, workdir)
    jax.tree.map(np.testing.assert_array_equal, plain["params"], stitched["params"])
    net = nnx.merge(stitched_run.graphdef, stitched["params"], stitched_run.constants)
    assert (net.shift_stitch, net.upscore8.factor) == (2, 4)
    result = evaluate.score_source(stitched_config, workdir)
    assert result["step"] == int(plain["step"]) and 0 <= result["metrics"]["mean_iu"] <= 100
