"""Caffe-layout FCNs equal the reference release's nets given the same weights, and
fcn_jax's own layout equals the same numpy forward pass with its padding and alignment.

Two independent references: the release's forward pass in numpy (always runs) and as a torch
module in the style of wkentaro/pytorch-fcn (skipped without torch). Weights go in through
fcn_jax.models.pretrained in the reference layout, so the layer mapping is checked as well.
"""

import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from fcn_jax.inputs import RGB_MEAN, RGB_STD
from fcn_jax.models import caffe, pretrained
from fcn_jax.models.caffe import CaffeFCN
from fcn_jax.models.fcn import FCN
from tests import numpy_reference_fcn as ref

WIDTH, CHANNELS, FC, CLASSES = 0.0625, (4, 8, 16, 32, 32), 16, 3
BGR_MEAN = np.array([104.00699, 116.66877, 122.67892])  # the release's mean, BGR
# name -> (variant, skip scales, gain of score_pool4 / score_pool3 offsetting the scales)
NETS = {"fcn32s": ("fcn32s", (1.0, 1.0), (1.0, 1.0)),
        "fcn16s": ("fcn16s", (1.0, 1.0), (1.0, 1.0)),
        "fcn8s": ("fcn8s", (1.0, 1.0), (1.0, 1.0)),
        "fcn8s_atonce": ("fcn8s", (0.01, 1e-4), (100.0, 1e4))}


def caffe_fcn(variant: str, skip_scales=(1.0, 1.0), decoder="learned_bilinear") -> CaffeFCN:
    return CaffeFCN(CLASSES, variant=variant, width=WIDTH, fc_channels=FC,
                    skip_scales=skip_scales, decoder=decoder,
                    rngs=nnx.Rngs(0))


def images(seed: int, height: int = 21, width: int = 35) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (2, height, width, 3)).astype(np.uint8)


def caffe_data(rgb: np.ndarray) -> np.ndarray:
    """The release's input: BGR, mean subtracted, 0..255."""
    return rgb[..., ::-1].astype(np.float64) - BGR_MEAN


def assert_close(got, want):
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4 * np.abs(want).max())


@pytest.mark.parametrize("net", sorted(NETS))
def test_caffe_fcn_equals_numpy_reference(net):
    variant, scales, gain = NETS[net]
    sd = ref.random_state_dict(variant, 1, CHANNELS, FC, CLASSES, skip_gain=gain)
    model = caffe_fcn(variant, scales)
    pretrained.load_reference(model, sd)
    rgb = images(2)
    want = ref.forward(sd, caffe_data(rgb), variant, scales)
    assert want.shape == (2, 21, 35, CLASSES)
    assert_close(np.asarray(model(jnp.asarray(rgb))), want)


def test_the_comparison_detects_other_offsets_and_scales(monkeypatch):
    """The equality above is no accident: moving any crop or dropping a scale breaks it."""
    sd = ref.random_state_dict("fcn8s", 1, CHANNELS, FC, CLASSES)
    model = caffe_fcn("fcn8s")
    pretrained.load_reference(model, sd)
    rgb = images(2)
    want = ref.forward(sd, caffe_data(rgb), "fcn8s")
    assert_close(np.asarray(model(jnp.asarray(rgb))), want)
    for offsets, key, offset in ((caffe.OUTPUT_CROP_OFFSETS, "fcn8s", 30),
                                 (caffe.SKIP_CROP_OFFSETS, "score_pool4", 4),
                                 (caffe.SKIP_CROP_OFFSETS, "score_pool3", 10)):
        with monkeypatch.context() as patch:
            patch.setitem(offsets, key, offset)
            assert not np.allclose(np.asarray(model(jnp.asarray(rgb))), want, rtol=1e-2), key
    assert not np.allclose(ref.forward(sd, caffe_data(rgb), "fcn8s", (0.01, 1e-4)), want,
                           rtol=1e-2)


def test_released_fixed_bilinear_upsampling_loads_and_equals_reference():
    """The release's upsampling is fixed bilinear: it loads into the default (fixed) model."""
    sd = ref.random_state_dict("fcn16s", 3, CHANNELS, FC, CLASSES, bilinear=True)
    model = caffe_fcn("fcn16s", decoder="bilinear")
    pretrained.load_reference(model, sd)
    rgb = images(4, 40, 27)
    assert_close(np.asarray(model(jnp.asarray(rgb))), ref.forward(sd, caffe_data(rgb), "fcn16s"))


@pytest.mark.parametrize("height,width", [(1, 1), (97, 61), (64, 64)])
def test_caffe_fcn_output_has_the_input_size(height, width):
    for variant in ("fcn32s", "fcn16s", "fcn8s"):
        out = caffe_fcn(variant)(jnp.zeros((1, height, width, 3), jnp.uint8))
        assert out.shape == (1, height, width, CLASSES)


@pytest.mark.parametrize("net", sorted(NETS))
def test_caffe_fcn_equals_torch_reference(net):
    torch = pytest.importorskip("torch")
    from tests.torch_reference_fcn import ReferenceFCN

    variant, scales, gain = NETS[net]
    torch.manual_seed(0)
    reference = ReferenceFCN(variant, CHANNELS, FC, CLASSES, scales).eval()
    with torch.no_grad():  # torch's default init leaves the skips negligible; scale them up
        for name, g in zip(("score_pool4", "score_pool3"), gain):
            if hasattr(reference, name):
                getattr(reference, name).weight.mul_(g)
    sd = {k: v.numpy() for k, v in reference.state_dict().items()}
    model = caffe_fcn(variant, scales)
    pretrained.load_reference(model, sd)
    rgb = images(5, 30, 22)
    with torch.no_grad():
        data = torch.from_numpy(caffe_data(rgb).transpose(0, 3, 1, 2).astype(np.float32))
        want = reference(data).numpy().transpose(0, 2, 3, 1)
    assert_close(np.asarray(model(jnp.asarray(rgb))), want)


def test_caffe_layout_needs_a_transposed_convolution_decoder():
    with pytest.raises(ValueError, match="model.caffe=True needs a transposed-convolution"):
        caffe_fcn("fcn32s", decoder="nearest")


@pytest.mark.parametrize("variant", ["fcn32s", "fcn16s", "fcn8s"])
@pytest.mark.parametrize("height, width", [(64, 96), (70, 45)])
def test_fcn_equals_numpy_reference_with_live_skips(variant, height, width):
    """fcn_jax's own layout (model.caffe=False): "SAME" convolutions and centre-aligned
    upsampling, with random (non-zero) skip scores and random upsampling kernels, so every
    skip's alignment counts."""
    sd = ref.random_state_dict(variant, 3, CHANNELS, FC, CLASSES)
    model = FCN(CLASSES, variant=variant, width=WIDTH, fc_channels=FC,
                decoder="learned_bilinear", rngs=nnx.Rngs(0))
    pretrained.load_reference(model, sd, convention="torchvision")
    rgb = images(4, height, width)
    want = ref.forward(sd, (rgb - RGB_MEAN) / RGB_STD, variant, caffe=False)
    assert_close(np.asarray(model(jnp.asarray(rgb))), want)
