"""Convolutionalized dense inference equals naive sliding-window classification (section 3.1)."""

import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from fcn_jax.models.patch import PatchClassifier, naive_sliding_window, window_grid


@pytest.mark.parametrize("height,width", [(32, 32), (47, 61), (64, 40)])
def test_dense_scores_equal_naive_windows_everywhere(height, width):
    model = PatchClassifier(5, patch_size=32, channels=8, hidden=16, rngs=nnx.Rngs(0))
    images = jnp.asarray(np.random.default_rng(height).integers(0, 256, (2, height, width, 3)),
                         jnp.uint8)
    dense = np.asarray(model.dense(images))
    naive = np.asarray(naive_sliding_window(model, images, batch_size=7))
    assert dense.shape == (2, *window_grid(height, width, 32, 4), 5) == naive.shape
    np.testing.assert_allclose(dense, naive, rtol=1e-4, atol=1e-4)
    assert np.abs(naive).max() > 1e-3  # not a comparison of zeros


def test_patch_too_small_is_a_clear_error():
    with pytest.raises(ValueError, match="patch_size=12"):
        PatchClassifier(3, patch_size=12, rngs=nnx.Rngs(0))
