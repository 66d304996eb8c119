"""Inference modes: tiling, flip and multi-scale averaging against direct computation."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from fcn_jax import inference

W = jnp.asarray(np.random.default_rng(0).normal(size=(3, 4)), jnp.float32)


def pixelwise(images):
    """A net with a 1-pixel receptive field: any tile contains all the context it needs."""
    return images.astype(jnp.float32) @ W


def box3(images):
    """A net with a 3x3 receptive field (zero padding at the borders)."""
    x = pixelwise(images)
    kernel = jnp.ones((3, 3, 1, 1), jnp.float32) / 9
    planes = x.transpose(3, 0, 1, 2)[..., None].reshape(-1, *x.shape[1:3], 1)
    out = jax.lax.conv_general_dilated(planes, kernel, (1, 1), "SAME",
                                       dimension_numbers=("NHWC", "HWIO", "NHWC"))
    return out.reshape(x.shape[3], *x.shape[:3]).transpose(1, 2, 3, 0)


def images(shape=(2, 37, 29, 3), seed=1):
    return jnp.asarray(np.random.default_rng(seed).integers(0, 256, shape), jnp.uint8)


def test_tile_origins_cover_the_image():
    assert inference.tile_origins(37, 16, 8) == [0, 8, 16, 21]
    assert inference.tile_origins(10, 16, 8) == [0]
    with pytest.raises(ValueError, match="tile=8, stride=9"):
        inference.tile_origins(37, 8, 9)


@pytest.mark.parametrize("tile,stride", [(16, 8), (16, 5), (40, 40), (8, 1)])
def test_tiled_equals_whole_image_when_the_receptive_field_fits(tile, stride):
    x = images()
    np.testing.assert_allclose(inference.tiled_logits(pixelwise, x, tile=tile, stride=stride),
                               pixelwise(x), rtol=1e-5, atol=1e-3)


def test_tiled_3x3_net_is_exact_where_every_tile_sees_the_full_field():
    x = images()
    got = np.asarray(inference.tiled_logits(box3, x, tile=16, stride=8))
    want = np.asarray(box3(x))
    # Pixels whose 3x3 neighbourhood lies inside every tile covering them: away from tile seams.
    rows, cols = inference.tile_origins(37, 16, 8), inference.tile_origins(29, 16, 8)
    seams_r = {r + d for r in rows for d in (0, 15)} - {0, 36}
    seams_c = {c + d for c in cols for d in (0, 15)} - {0, 28}
    keep_r = [i for i in range(37) if not {i - 1, i, i + 1} & seams_r]
    keep_c = [j for j in range(29) if not {j - 1, j, j + 1} & seams_c]
    np.testing.assert_allclose(got[:, keep_r][:, :, keep_c], want[:, keep_r][:, :, keep_c],
                               rtol=1e-5, atol=1e-3)
    assert not np.allclose(got, want, atol=1e-3)  # near seams zero padding differs


def test_tiles_are_batched_not_looped():
    calls = []

    def counting(x):
        calls.append(x.shape[0])
        return pixelwise(x)

    inference.tiled_logits(counting, images(), tile=16, stride=8, max_tiles=64)
    assert calls == [2 * 4 * 3]  # 2 images x 4 row tiles x 3 column tiles in one call


def test_flip_tta_of_a_mirror_symmetric_input_is_mirror_symmetric():
    half = np.asarray(images((1, 20, 10, 3)))
    x = jnp.asarray(np.concatenate([half, half[:, :, ::-1]], axis=2))
    out = np.asarray(inference.flip_logits(box3, x))
    np.testing.assert_allclose(out, out[:, :, ::-1], rtol=1e-5, atol=1e-3)
    # box3 is mirror-equivariant, so flip averaging changes nothing.
    np.testing.assert_allclose(out, box3(x), rtol=1e-5, atol=1e-3)


def test_multiscale_at_scale_one_is_the_plain_prediction_and_averages_scales():
    x = images()
    np.testing.assert_allclose(inference.multiscale_logits(pixelwise, x, [1.0]), pixelwise(x),
                               rtol=1e-5, atol=1e-3)
    two = inference.multiscale_logits(pixelwise, x, [1.0, 0.5])
    half = inference.multiscale_logits(pixelwise, x, [0.5])
    np.testing.assert_allclose(two, 0.5 * (pixelwise(x) + half), rtol=1e-5, atol=1e-3)


def test_default_options_are_the_plain_prediction_and_compose():
    x = images()
    plain = inference.InferenceOptions()
    np.testing.assert_allclose(inference.predict_logits(box3, x, plain), box3(x), rtol=1e-6)
    both = inference.InferenceOptions(tile=16, stride=8, flip=True, scales=(1.0, 0.5))
    want = inference.multiscale_logits(
        lambda y: inference.flip_logits(
            lambda z: inference.tiled_logits(box3, z, tile=16, stride=8), y), x, (1.0, 0.5))
    np.testing.assert_allclose(inference.predict_logits(box3, x, both), want, rtol=1e-5,
                               atol=1e-4)


def test_options_from_config_validate():
    import ml_collections

    cfg = ml_collections.ConfigDict({"tile_size": 16, "tile_stride": 0, "flip": True,
                                     "scales": (1.0, 0.75)})
    opts = inference.InferenceOptions.from_config(cfg, (1, 2, 3))
    assert (opts.tile, opts.stride, opts.flip, opts.scales) == (16, 16, True, (1.0, 0.75))
    cfg.tile_stride = 20
    with pytest.raises(ValueError, match="tile=16, stride=20"):
        inference.InferenceOptions.from_config(cfg, (0, 0, 0))
    cfg.tile_stride, cfg.scales = 8, (0.0,)
    with pytest.raises(ValueError, match=r"eval.scales=\(0.0,\)"):
        inference.InferenceOptions.from_config(cfg, (0, 0, 0))
