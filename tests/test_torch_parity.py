"""The benchmark's PyTorch FCN computes what the JAX FCN computes, given the same weights."""

import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from fcn_jax.models.fcn import FCN

torch = pytest.importorskip("torch")
from benchmarks.torch_fcn import TorchFCN  # noqa: E402  (needs torch)


def copy_weights(jax_model: FCN, torch_model) -> None:
    """HWIO kernels -> OIHW, in the order both models define their convolutions."""
    ours = [getattr(jax_model.trunk, n) for names in jax_model.trunk.blocks for n in names]
    ours += [jax_model.trunk.fc6, jax_model.trunk.fc7, jax_model.score_fr]
    ours += [getattr(jax_model, n) for n in ("score_pool4", "score_pool3") if hasattr(jax_model, n)]
    theirs = [m for m in torch_model.modules() if isinstance(m, torch.nn.Conv2d)]
    assert len(ours) == len(theirs)
    rng = np.random.default_rng(0)
    for conv_j, conv_t in zip(ours, theirs):
        kernel = np.asarray(conv_j.kernel[...])
        if not kernel.any():  # zero-initialised score layers: give them values to compare
            kernel = rng.normal(0, 0.05, kernel.shape).astype(np.float32)
            conv_j.kernel[...] = jnp.asarray(kernel)
        conv_t.weight.data = torch.from_numpy(kernel.transpose(3, 2, 0, 1).copy())
        conv_t.bias.data = torch.from_numpy(np.asarray(conv_j.bias[...]).copy())


@pytest.mark.parametrize("variant", ["fcn32s", "fcn16s", "fcn8s"])
def test_torch_fcn_equals_jax_fcn(variant):
    jax_model = FCN(4, variant=variant, width=0.0625, fc_channels=None, rngs=nnx.Rngs(0))
    torch_model = TorchFCN(4, variant, 0.0625).eval()
    copy_weights(jax_model, torch_model)
    images = np.random.default_rng(1).integers(0, 256, (2, 70, 45, 3)).astype(np.uint8)
    want = np.asarray(jax_model(jnp.asarray(images)))
    with torch.no_grad():
        got = torch_model(torch.from_numpy(images)).numpy().transpose(0, 2, 3, 1)
    np.testing.assert_allclose(got, want, rtol=1e-3, atol=1e-3)
