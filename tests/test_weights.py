"""Weight import (fcn_jax/models/pretrained.py): file formats, layouts, net surgery, error listings.

Fixture files are written from known weights (numpy arrays, or torch modules when torch is
installed) at a small width; imported models are compared with independent references.
"""

import os
import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from fcn_jax.models import pretrained
from fcn_jax.models.caffe import CaffeFCN
from fcn_jax.models.fcn import FCN
from fcn_jax.ops.upsample import bilinear_kernel
from tests import numpy_reference_fcn as ref

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
WIDTH, CHANNELS, FC, CLASSES = 0.0625, (4, 8, 16, 32, 32), 16, 3
IMAGENET_MEAN, IMAGENET_STD = np.array([0.485, 0.456, 0.406]), np.array([0.229, 0.224, 0.225])


def fcn(variant: str = "fcn8s", caffe: bool = False, **kwargs) -> FCN:
    model_class = CaffeFCN if caffe else FCN
    return model_class(CLASSES, variant=variant, width=WIDTH, fc_channels=FC,
                       rngs=nnx.Rngs(0), **kwargs)


def write(path, arrays: dict) -> str:
    """Write ``arrays`` as .npz or .safetensors, by the suffix of ``path``."""
    path = str(path)
    if path.endswith(".npz"):
        np.savez(path, **arrays)
    else:
        from safetensors.numpy import save_file
        save_file({k: np.ascontiguousarray(v) for k, v in arrays.items()}, path)
    return path


def torchvision_vgg16_arrays(seed: int) -> dict:
    """Random VGG16 weights in torchvision's layout: features.N (OIHW), classifier.N [out, in]."""
    sd = ref.random_state_dict("fcn32s", seed, CHANNELS, FC, CLASSES)
    rng = np.random.default_rng(seed + 1)
    arrays, index = {}, 0
    for block, depth in enumerate(ref.VGG16_DEPTHS, start=1):
        for i in range(1, depth + 1):
            for param in ("weight", "bias"):
                arrays[f"features.{index}.{param}"] = sd[f"conv{block}_{i}.{param}"]
            index += 2
        index += 1
    arrays["classifier.0.weight"] = sd["fc6.weight"].reshape(FC, -1)  # C, H, W flatten order
    arrays["classifier.3.weight"] = sd["fc7.weight"].reshape(FC, FC)
    arrays["classifier.0.bias"], arrays["classifier.3.bias"] = sd["fc6.bias"], sd["fc7.bias"]
    arrays["classifier.6.weight"] = rng.normal(size=(1000, FC)).astype(np.float32)
    arrays["classifier.6.bias"] = np.zeros(1000, np.float32)
    return arrays


def numpy_torchvision_fc7(arrays: dict, rgb: np.ndarray) -> np.ndarray:
    """torchvision VGG16 up to fc7 (ReLU) in numpy: RGB/255 normalised, flatten C, H, W."""
    x = (rgb / 255.0 - IMAGENET_MEAN) / IMAGENET_STD
    for key in sorted((k for k in arrays if k.startswith("features.") and k.endswith(".weight")),
                      key=lambda k: int(k.split(".")[1])):
        index = int(key.split(".")[1])
        x = np.maximum(ref.conv(x, arrays[key], arrays[f"features.{index}.bias"], 1), 0)
        if f"features.{index + 2}.weight" not in arrays:  # the block's last conv: pool
            x = ref.max_pool_ceil(x)
    flat = x.transpose(0, 3, 1, 2).reshape(x.shape[0], -1)
    fc6 = np.maximum(flat @ arrays["classifier.0.weight"].T + arrays["classifier.0.bias"], 0)
    return np.maximum(fc6 @ arrays["classifier.3.weight"].T + arrays["classifier.3.bias"], 0)


def trunk_fc7_centre(model: FCN, rgb: np.ndarray) -> np.ndarray:
    """fc7 of the model's trunk on a 224x224 image at the centre of its 7x7 map (the one
    position where the SAME-padded 7x7 fc6 sees the whole pool5 map, as the linear fc6)."""
    x = (jnp.asarray(rgb, jnp.float32) - IMAGENET_MEAN * 255) / (IMAGENET_STD * 255)
    return np.asarray(model.trunk(x)["fc7"][:, 3, 3])


def test_fc6_surgery_equals_the_linear_layer_on_the_flattened_map():
    rng = np.random.default_rng(0)
    linear = rng.normal(size=(6, 5 * 7 * 7)).astype(np.float32)
    pool5 = rng.normal(size=(2, 5, 7, 7)).astype(np.float32)  # N, C, H, W
    want = pool5.reshape(2, -1) @ linear.T  # torch.flatten(pool5, 1) then Linear
    kernel = pretrained.to_model_layout("fc6.weight", linear, (7, 7, 5, 6))
    got = jax.lax.conv_general_dilated(jnp.asarray(pool5.transpose(0, 2, 3, 1)), kernel, (1, 1),
                                       "VALID", dimension_numbers=("NHWC", "HWIO", "NHWC"))
    np.testing.assert_allclose(np.asarray(got)[:, 0, 0], want, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("suffix", [".npz", ".safetensors"])
def test_torchvision_vgg16_file_equals_numpy_vgg16(tmp_path, suffix):
    arrays = torchvision_vgg16_arrays(0)
    path = write(tmp_path / f"vgg16{suffix}", arrays)
    model = fcn("fcn8s")
    report = pretrained.initialise(model, path)
    assert report["layout"] == "torchvision" and report["convention"] == "torchvision"
    assert report["discarded"] == ["fc8.bias", "fc8.weight"]
    assert "score_pool3.weight" in report["kept_init"] and "upscore8.weight" in report["kept_init"]
    rgb = np.random.default_rng(1).integers(0, 256, (2, 224, 224, 3)).astype(np.float32)
    want = numpy_torchvision_fc7(arrays, rgb)
    np.testing.assert_allclose(trunk_fc7_centre(model, rgb), want, rtol=1e-4,
                               atol=1e-4 * np.abs(want).max())
    # The heads keep their initialisation: zero scores, bilinear upsampling.
    assert not np.asarray(model.score_pool3.kernel[...]).any()
    np.testing.assert_array_equal(model.upscore8.kernel[...], bilinear_kernel(8, CLASSES))


@pytest.mark.parametrize("suffix", [".npz", ".safetensors"])
def test_released_fcn_file_equals_numpy_reference(tmp_path, suffix):
    sd = ref.random_state_dict("fcn8s", 2, CHANNELS, FC, CLASSES, bilinear=True)
    model = fcn("fcn8s", caffe=True)
    report = pretrained.initialise(model, write(tmp_path / f"fcn8s{suffix}", sd))
    assert report["convention"] == "caffe" and report["kept_init"] == []
    rgb = np.random.default_rng(3).integers(0, 256, (1, 26, 19, 3)).astype(np.uint8)
    data = rgb[..., ::-1].astype(np.float64) - np.array([104.00699, 116.66877, 122.67892])
    want = ref.forward(sd, data, "fcn8s")
    np.testing.assert_allclose(np.asarray(model(jnp.asarray(rgb))), want, rtol=1e-4,
                               atol=1e-4 * np.abs(want).max())


def test_every_mismatch_is_listed():
    sd = ref.random_state_dict("fcn8s", 0, CHANNELS, FC, CLASSES, bilinear=True)
    del sd["score_pool3.weight"], sd["conv2_1.bias"]
    sd["score_pool5.weight"] = np.zeros((3, 32, 1, 1), np.float32)
    sd["fc7.weight"] = np.zeros((FC, FC + 1, 1, 1), np.float32)
    with pytest.raises(pretrained.WeightsError) as error:
        pretrained.load_reference(fcn("fcn8s", caffe=True), sd, source="released.npz")
    message = str(error.value)
    assert "released.npz does not fit the model (4 problems)" in message
    assert "missing: score_pool3.weight (model shape (3, 16, 1, 1))" in message
    assert "missing: conv2_1.bias (model shape (8,))" in message
    assert "unexpected: score_pool5.weight (3, 32, 1, 1)" in message
    assert ("wrong shape: fc7.weight file (16, 17, 1, 1) vs model (16, 16, 1, 1) or (16, 16)"
            in message)


def test_fixed_upsampling_differing_from_the_file_is_an_error():
    sd = ref.random_state_dict("fcn32s", 0, CHANNELS, FC, CLASSES, bilinear=False)
    with pytest.raises(pretrained.WeightsError, match="fixed in this model but different in the "
                                                   "file: upscore.weight"):
        pretrained.load_reference(fcn("fcn32s", caffe=True), sd)


def test_input_convention_must_match_the_model():
    vgg = torchvision_vgg16_arrays(0)
    with pytest.raises(pretrained.WeightsError, match="torchvision input convention.*model.caffe="
                                                   "True"):
        pretrained.load_reference(fcn("fcn32s", caffe=True), vgg)
    caffe_sd = ref.random_state_dict("fcn32s", 0, CHANNELS, FC, CLASSES, bilinear=True)
    with pytest.raises(pretrained.WeightsError, match="caffe input convention"):
        pretrained.load_reference(fcn("fcn32s"), caffe_sd)
    # Caffe weights in torchvision names (e.g. pytorch-fcn's vgg16_from_caffe.pth): declared.
    report = pretrained.load_reference(fcn("fcn32s", caffe=True), vgg, convention="caffe")
    assert report["layout"] == "torchvision" and report["convention"] == "caffe"


def test_unknown_file_type_and_missing_file_are_errors(tmp_path):
    with pytest.raises(pretrained.WeightsError, match="no such file"):
        pretrained.initialise(fcn(), str(tmp_path / "absent.npz"))
    path = tmp_path / "pretrained.h5"
    path.write_bytes(b"")
    with pytest.raises(pretrained.WeightsError, match="expected a .npz, .safetensors, .pth"):
        pretrained.initialise(fcn(), str(path))


def test_torchvision_vgg16_pth_equals_torch(tmp_path):
    torch = pytest.importorskip("torch")
    from tests.torch_reference_fcn import TorchvisionVGG16

    torch.manual_seed(0)
    vgg = TorchvisionVGG16(CHANNELS, FC).eval()
    torch.save(vgg.state_dict(), tmp_path / "vgg16.pth")
    model = fcn("fcn32s")
    pretrained.initialise(model, str(tmp_path / "vgg16.pth"))
    rgb = np.random.default_rng(1).integers(0, 256, (2, 224, 224, 3)).astype(np.float32)
    x = (rgb / 255.0 - IMAGENET_MEAN) / IMAGENET_STD
    with torch.no_grad():
        want = vgg.fc7(torch.from_numpy(x.transpose(0, 3, 1, 2).astype(np.float32))).numpy()
    np.testing.assert_allclose(trunk_fc7_centre(model, rgb), want, rtol=1e-4,
                               atol=1e-4 * np.abs(want).max())


@pytest.mark.parametrize("variant", ["fcn32s", "fcn16s", "fcn8s"])
def test_released_fcn_pth_equals_torch_reference(tmp_path, variant):
    torch = pytest.importorskip("torch")
    from tests.torch_reference_fcn import ReferenceFCN

    torch.manual_seed(1)
    reference = ReferenceFCN(variant, CHANNELS, FC, CLASSES).eval()
    torch.save(reference.state_dict(), tmp_path / f"{variant}.pth")
    model = fcn(variant, caffe=True, decoder="learned_bilinear")  # torch's random upsampling
    pretrained.initialise(model, str(tmp_path / f"{variant}.pth"))
    rgb = np.random.default_rng(2).integers(0, 256, (2, 33, 20, 3)).astype(np.uint8)
    data = rgb[..., ::-1].astype(np.float32) - np.array([104.00699, 116.66877, 122.67892],
                                                       np.float32)
    with torch.no_grad():
        want = reference(torch.from_numpy(data.transpose(0, 3, 1, 2).copy())).numpy()
    want = want.transpose(0, 2, 3, 1)
    np.testing.assert_allclose(np.asarray(model(jnp.asarray(rgb))), want, rtol=1e-4,
                               atol=1e-4 * np.abs(want).max())


def test_import_weights_command_reports_and_resaves(tmp_path):
    sd = ref.random_state_dict("fcn16s", 0, CHANNELS, FC, 21, bilinear=True)
    path = write(tmp_path / "fcn16s.safetensors", sd)
    command = [sys.executable, "-m", "fcn_jax.import_weights",
               "--config", "configs/voc.py:fcn16s,heavy", f"--config.model.width={WIDTH}",
               f"--config.model.fc_channels={FC}", "--weights", path,
               "--npz", str(tmp_path / "out.npz")]
    proc = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "layout: reference\nconvention: caffe\n" in proc.stdout
    assert "kept_init: -" in proc.stdout
    with np.load(tmp_path / "out.npz") as saved:
        assert saved.keys() == sd.keys()
        for key in sd:
            np.testing.assert_array_equal(saved[key], sd[key])
    del sd["score_pool4.bias"]
    proc = subprocess.run(command[:-2] + ["--weights", write(tmp_path / "bad.npz", sd)],
                          cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert proc.returncode != 0 and "missing: score_pool4.bias" in proc.stderr


def lowerings_during(action) -> int:
    """How many programs JAX lowers (to compile or to look up in a cache) while ``action``
    runs."""
    events = []

    def listen(event, _seconds, **_kwargs):
        if event == "/jax/core/compile/jaxpr_to_mlir_module_duration":
            events.append(event)

    jax.monitoring.register_event_duration_secs_listener(listen)
    try:
        action()
    finally:
        jax.monitoring.unregister_event_duration_listener(listen)
    return len(events)


def test_loading_weights_compiles_nothing_and_casts_to_the_variables_dtype(tmp_path):
    """Each array is placed as it is (float64 in the file, float32 in the model), not written
    in place by a program compiled per shape, which cost every run about a second."""
    sd = ref.random_state_dict("fcn8s", 2, CHANNELS, FC, CLASSES, bilinear=True)
    path = write(tmp_path / "fcn8s.npz", {k: v.astype(np.float64) for k, v in sd.items()})
    model = fcn("fcn8s", caffe=True)
    assert lowerings_during(lambda: pretrained.initialise(model, path)) == 0
    variables = pretrained.model_variables(model)
    for name, value in pretrained.reference_arrays(model).items():
        assert variables[name].get_value().dtype == np.float32
        np.testing.assert_array_equal(value, sd[name].astype(np.float32))
