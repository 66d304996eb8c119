"""Labelling one's own images (fcn_jax/predict.py): a workdir alone gives the net, weights and
class names; the predictions equal the trainer's own on the same images."""

import json
import os

import numpy as np
import pytest
from PIL import Image

from configs import default
from fcn_jax import run
from fcn_jax.workdir import read_config
from tests.helpers import run_module


def predict(*args: str):
    return run_module("fcn_jax.predict", *args)


def test_predictions_of_a_folder_equal_the_trainers(trained_fcn8s, tmp_path):
    config, workdir = trained_fcn8s
    trainer, state = run.restore_latest(config, workdir)
    examples = trainer.first_eval_examples(2)
    photos = tmp_path / "photos"
    photos.mkdir()
    for i, (image, _) in enumerate(examples):
        Image.fromarray(image).save(photos / f"scene{i}.png")
    odd = np.random.default_rng(0).integers(0, 256, (50, 70, 3)).astype(np.uint8)
    Image.fromarray(odd).save(photos / "odd.jpg")
    out = tmp_path / "labelled"
    proc = predict("--workdir", workdir, "--input", str(photos), "--output", str(out), "--raw")
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "wrote 10 files" in proc.stdout
    expected = trainer.predict_examples(state["params"], examples)
    for i, want in enumerate(expected):
        got = np.asarray(Image.open(out / f"scene{i}_label.png"))
        np.testing.assert_array_equal(got, want)
        mask = np.asarray(Image.open(out / f"scene{i}_mask.png"))
        assert mask.shape == (*want.shape, 3)
    odd_label = np.asarray(Image.open(out / "odd_label.png"))
    assert odd_label.shape == (50, 70) and odd_label.max() < trainer.num_classes
    assert (out / "odd_overlay.png").exists() and (out / "legend.png").exists()
    with open(os.path.join(workdir, "classes.json"), encoding="utf-8") as f:
        assert json.load(f)["class_names"] == list(trainer.dataset.class_names)


def test_flip_option_changes_the_inference_as_eval_flip_does(trained_fcn8s, tmp_path):
    config, workdir = trained_fcn8s
    config = config.copy_and_resolve_references()
    config.eval.flip = True
    trainer, state = run.restore_latest(config, workdir)
    examples = trainer.first_eval_examples(1)
    Image.fromarray(examples[0][0]).save(tmp_path / "scene.png")
    proc = predict("--workdir", workdir, "--input", str(tmp_path / "*.png"),
                   "--output", str(tmp_path / "out"), "--raw", "--flip")
    assert proc.returncode == 0, proc.stderr[-3000:]
    np.testing.assert_array_equal(np.asarray(Image.open(tmp_path / "out" / "scene_label.png")),
                                  trainer.predict_examples(state["params"], examples)[0])


def test_bad_inputs_are_one_line_and_nothing_written_is_replaced(trained_fcn8s, tmp_path):
    _, workdir = trained_fcn8s
    (tmp_path / "broken.png").write_text("not an image")
    proc = predict("--workdir", workdir, "--input", str(tmp_path / "broken.png"),
                   "--output", str(tmp_path / "out"))
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines()[-1].startswith(
        f"error: {tmp_path / 'broken.png'}: not a readable image")

    Image.fromarray(np.zeros((40, 40, 3), np.uint8)).save(tmp_path / "black.png")
    out = tmp_path / "kept"
    out.mkdir()
    (out / "black_mask.png").write_bytes(b"mine")
    proc = predict("--workdir", workdir, "--input", str(tmp_path / "black.png"),
                   "--output", str(out))
    assert proc.returncode == 2
    assert proc.stderr.strip() == (f"error: {out / 'black_mask.png'} exists (1 of the outputs "
                                   "do); choose another --output or pass --overwrite")
    assert (out / "black_mask.png").read_bytes() == b"mine"

    proc = predict("--workdir", str(tmp_path), "--input", str(tmp_path / "black.png"),
                   "--output", str(tmp_path / "o"))
    assert proc.returncode == 2
    assert proc.stderr.strip() == (
        f"error: --workdir {tmp_path} holds no config.json (not a training workdir, or no run "
        "has started there): pass a workdir that python -m fcn_jax.main trained")
    proc = predict("--workdir", workdir, "--input", str(tmp_path / "nothing*.png"),
                   "--output", str(tmp_path / "o"))
    assert proc.returncode == 2 and "no such image file" in proc.stderr
    # a broken image anywhere stops the run before any output; inputs are never outputs
    clash = tmp_path / "clash"
    clash.mkdir()
    for name in ("c.png", "c_mask.png"):  # c.png's mask would replace the input c_mask.png
        Image.fromarray(np.zeros((40, 40, 3), np.uint8)).save(clash / name)
    proc = predict("--workdir", workdir, "--input", str(tmp_path / "black.png"),
                   str(tmp_path / "broken.png"), "--output", str(tmp_path / "fresh"))
    assert proc.returncode == 2 and not (tmp_path / "fresh").exists()
    proc = predict("--workdir", workdir, "--input", str(clash), "--output", str(clash),
                   "--overwrite")
    assert proc.returncode == 2
    assert proc.stderr.strip().endswith("is an input and would be an output; choose another "
                                        "--output")
    proc = predict("--workdir", workdir, "--input", str(tmp_path / "black.png"),
                   "--output", str(tmp_path / "o"), "--scales", "0")
    assert proc.returncode == 2 and "eval.scales" in proc.stderr


def test_a_saved_config_fills_fields_added_since_and_refuses_a_foreign_one(tmp_path):
    """A workdir written before a config field existed gets that field's default; a config
    with fields no FCN config has (a classifier's workdir) is refused, naming them."""
    saved = json.loads(default.get_config("fcn16s").to_json())
    del saved["data"]["train_examples"]
    saved["model"]["width"] = 0.25
    (tmp_path / "config.json").write_text(json.dumps(saved))
    config = read_config(str(tmp_path), default.get_config())
    assert config.data.train_examples == 0 and config.model.width == 0.25
    assert config.model.variant == "fcn16s" and config.model.skip_scales == (1.0, 1.0)
    saved["model"]["classes"] = 20
    (tmp_path / "config.json").write_text(json.dumps(saved))
    with pytest.raises(ValueError, match=r"has model\.classes, which an FCN config does not"):
        read_config(str(tmp_path), default.get_config())
