"""``python -m fcn_jax.export``: the exported module gives the trained net's logits at any
size, and the exported weights read back through the importer into the same net."""

import json

import jax
import numpy as np
import pytest
from flax import nnx

from fcn_jax import export, models
from fcn_jax.models import pretrained
from fcn_jax.predict import trained_model
from tests.helpers import overridden_config, run_module, tiny_cli_overrides


def run_export(*args: str):
    return run_module("fcn_jax.export", *args)


def logits_of(model: nnx.Module, images: np.ndarray) -> np.ndarray:
    return np.asarray(model(images))


@pytest.mark.slow
def test_exported_module_and_weights_give_the_trained_nets_logits(trained_fcn8s, tmp_path):
    config, workdir = trained_fcn8s
    out = tmp_path / "exported"
    proc = run_export("--workdir", workdir, "--out", str(out))
    assert proc.returncode == 0, proc.stderr[-3000:]
    record = json.loads((out / "export.json").read_text())
    assert (record["step"], record["variant"], record["init_convention"]) == (
        3, "fcn8s", "torchvision")

    model, num_classes, step = trained_model(workdir, config)
    assert step == record["step"] and num_classes == record["num_classes"]
    module = jax.export.deserialize((out / "model.jax").read_bytes())
    rng = np.random.default_rng(0)
    for shape in [(2, 64, 96, 3), (1, 32, 160, 3)]:   # batch, height and width are symbolic
        images = rng.integers(0, 256, shape).astype(np.uint8)
        np.testing.assert_allclose(np.asarray(module.call(images)), logits_of(model, images),
                                   rtol=1e-5, atol=1e-5)

    checkpoint, _ = pretrained.read_checkpoint_params(workdir)
    for path in (out / "weights.npz", out / "weights.safetensors"):
        arrays = pretrained.read_arrays(str(path))
        # the reference layout by formula: OIHW, and the deconvolution's [in, out, kh, kw]
        np.testing.assert_array_equal(arrays["conv1_1.weight"],
                                      checkpoint["conv1_1.weight"].transpose(3, 2, 0, 1))
        np.testing.assert_array_equal(arrays["score_pool3.weight"],
                                      checkpoint["score_pool3.weight"].transpose(3, 2, 0, 1))
        fresh = models.build(config.model, num_classes, seed=1)
        report = pretrained.load_reference(fresh, arrays, convention=record["init_convention"])
        assert report["kept_init"] == []
        images = rng.integers(0, 256, (1, 64, 64, 3)).astype(np.uint8)
        np.testing.assert_array_equal(logits_of(fresh, images), logits_of(model, images))


@pytest.mark.slow
def test_an_existing_export_is_kept_unless_overwrite(trained_fcn8s, tmp_path):
    _, workdir = trained_fcn8s
    out = tmp_path / "exported"
    out.mkdir()
    (out / "model.jax").write_bytes(b"mine")
    proc = run_export("--workdir", workdir, "--out", str(out))
    assert proc.returncode == 2
    assert proc.stderr.strip() == (f"error: {out / 'model.jax'} exists; choose another --out "
                                   "or pass --overwrite")
    assert (out / "model.jax").read_bytes() == b"mine" and not (out / "weights.npz").exists()
    assert run_export("--workdir", workdir, "--out", str(out), "--overwrite").returncode == 0
    assert (out / "model.jax").read_bytes() != b"mine"


def test_a_caffe_layout_net_exports_for_any_image_size(tiny_data_dir):
    config = overridden_config("fcn32s", tiny_data_dir, tiny_cli_overrides(3))
    config.model.caffe = True
    model = models.build(config.model, 3, seed=0)
    module = jax.export.deserialize(export.serialize_forward(model, caffe=True))
    images = np.random.default_rng(1).integers(0, 256, (1, 58, 90, 3)).astype(np.uint8)
    np.testing.assert_allclose(np.asarray(module.call(images)), logits_of(model, images),
                               rtol=1e-5, atol=1e-5)
