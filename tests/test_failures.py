"""Bad input stops with one clear message and never loses a checkpoint or a result."""

import errno
import io
import os
import shutil
import subprocess
import sys

import numpy as np
import orbax.checkpoint as ocp
import pytest
from PIL import Image

from fcn_jax import data, train
from fcn_jax.checkpoint import CheckpointError, Checkpointer
from fcn_jax.data import pipeline
from fcn_jax.data.checked import CheckedSource, DataError
from fcn_jax.data.manual import require_manual_dir
from tests.helpers import tiny_config

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


class PngSource:
    """Records as a tfds data source holds them: PNG bytes, decoded when indexed."""

    def __init__(self, records):
        self.records = records

    def __len__(self):
        return len(self.records)

    def __getitem__(self, index):
        image, label = self.records[index]
        return {"image": np.asarray(Image.open(io.BytesIO(image))),
                "label": np.asarray(Image.open(io.BytesIO(label))), "id": f"train_{index}"}


def png(array):
    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, format="PNG")
    return buffer.getvalue()


def checked(records, num_classes=7):
    return CheckedSource(PngSource(records), dataset="fcn_shapes", split="train",
                         num_classes=num_classes, location="/data/fcn_shapes")


def good_record(height=16, width=12, label_value=3):
    image = np.full((height, width, 3), 100, np.uint8)
    label = np.full((height, width), label_value, np.uint8)
    label[0, 0] = 255  # the ignore label is always allowed
    return png(image), png(label)


def test_a_good_example_passes():
    example = checked([good_record()])[0]
    assert example["image"].shape == (16, 12, 3) and example["label"].shape == (16, 12)


def test_corrupt_image_bytes_name_the_example_and_the_fix():
    image, label = good_record()
    source = checked([good_record(), (image[:40] + b"garbage", label)])
    with pytest.raises(DataError, match=r"fcn_shapes/train example 1 in /data/fcn_shapes "
                                        r"cannot be read or decoded .*delete /data/fcn_shapes"):
        source[1]


def test_corrupt_bytes_surface_through_the_threaded_training_pipeline():
    image, label = good_record()
    source = checked([(b"not a png", label)] * 4)
    dataset = pipeline.train_dataset(source, local_batch=2, seed=0, crop_size=8,
                                     scale_range=(1.0, 1.0), flip=False)
    with pytest.raises(DataError,
                       match=r"fcn_shapes/train example \d in /data/fcn_shapes cannot be read"):
        next(pipeline.train_iterator(dataset, 0, num_threads=2, prefetch=2))


def test_label_outside_the_classes_names_the_values_and_the_id():
    with pytest.raises(DataError, match=r"example 0 \(id train_0\): label values \[9\] are "
                                        r"outside \[0, 7\) and not the ignore label 255"):
        checked([good_record(label_value=9)])[0]


def test_image_and_label_of_different_sizes():
    image, _ = good_record(16, 12)
    _, label = good_record(16, 10)
    with pytest.raises(DataError, match=r"example 0 \(id train_0\): image is 16x12 but its "
                                        r"label map is 16x10"):
        checked([(image, label)])[0]


def test_an_empty_split_is_a_clear_error():
    dataset = data.Dataset("fcn_shapes", ("a", "b"), {"train": checked([])})
    with pytest.raises(ValueError, match="split 'train' of dataset 'fcn_shapes' has no examples"):
        dataset.split("train")


def test_a_missing_manual_download_directory_says_what_to_put_where(tmp_path):
    missing = str(tmp_path / "voc")
    with pytest.raises(FileNotFoundError, match=rf"'voc' needs a manual download, but {missing} "
                                                r"does not exist. Download VOCtrainval"):
        require_manual_dir(missing, "voc", "Download VOCtrainval_11-May-2012.tar.")
    os.makedirs(missing)
    with pytest.raises(FileNotFoundError, match="is empty"):
        require_manual_dir(missing, "voc", "Download it.")
    (tmp_path / "voc" / "file").write_text("x")
    assert require_manual_dir(missing, "voc", "Download it.") == missing


def small_config(data_dir, num_steps, **train_fields):
    c = tiny_config("fcn32s")
    c.data.data_dir = data_dir
    c.data.crop_size = 32
    c.model.fc_channels = 16
    c.train.batch_size = c.eval.batch_size = 4
    c.train.num_steps = num_steps
    c.train.checkpoint_every = 2
    c.train.log_every = 1
    c.train.num_overlays = 0
    c.train.update(train_fields)
    return c


@pytest.fixture(scope="module")
def finished_run(tiny_data_dir, tmp_path_factory):
    """A workdir holding a finished 2-step run (checkpoint 2 and results.json)."""
    workdir = str(tmp_path_factory.mktemp("finished"))
    train.train_and_evaluate(small_config(tiny_data_dir, 2), workdir)
    return workdir


def snapshot(workdir):
    """Every file under workdir/checkpoints and results.json, with its bytes."""
    files = {}
    for root, _, names in os.walk(workdir):
        for name in names:
            path = os.path.join(root, name)
            if "checkpoints" in path or name == "results.json":
                with open(path, "rb") as f:
                    files[os.path.relpath(path, workdir)] = f.read()
    return files


def test_a_checkpoint_of_another_model_is_refused_untouched(finished_run, tiny_data_dir,
                                                            tmp_path):
    workdir = shutil.copytree(finished_run, str(tmp_path / "run"))
    before = snapshot(workdir)
    config = small_config(tiny_data_dir, 4)
    config.model.fc_channels = 24
    expected = (rf"step 2 checkpoint in {workdir}/checkpoints does not fit this model "
                r".*params/trunk/fc6/kernel/value: checkpoint \(3, 3, 32, 16\) vs model "
                r"\(3, 3, 32, 24\).*use that config")
    with pytest.raises(CheckpointError, match=expected):
        train.train_and_evaluate(config, workdir)
    assert snapshot(workdir) == before


@pytest.mark.slow
def test_a_full_disk_during_a_save_keeps_the_last_checkpoint_and_results(
        finished_run, tiny_data_dir, tmp_path, monkeypatch):
    workdir = shutil.copytree(finished_run, str(tmp_path / "run"))
    before = snapshot(workdir)

    def disk_full(self, step, *args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device", os.path.join(workdir, "x"))

    monkeypatch.setattr(ocp.CheckpointManager, "save", disk_full)
    with pytest.raises(CheckpointError, match=r"saving the step 4 checkpoint to .* failed: "
                                              r".*No space left on device.*The last complete "
                                              r"checkpoint \(step 2\) is intact; free disk space"):
        train.train_and_evaluate(small_config(tiny_data_dir, 4), workdir)
    monkeypatch.undo()
    assert snapshot(workdir) == before
    assert Checkpointer(workdir).latest_step() == 2


@pytest.mark.slow
def test_a_diverging_loss_stops_and_keeps_only_confirmed_checkpoints(tiny_data_dir, tmp_path):
    config = small_config(tiny_data_dir, 8, checkpoint_every=1)
    config.optim.learning_rate = 1e12
    with pytest.raises(FloatingPointError, match=r"training loss is not finite at step (\d+); "
                                                 r"stopped without saving") as error:
        train.train_and_evaluate(config, str(tmp_path))
    bad_step = int(error.value.args[0].split("at step ")[1].split(";")[0])
    # The state after step bad - 1 gave the non-finite loss of step bad: not saved.
    good = bad_step - 2 if bad_step > 2 else None
    assert Checkpointer(str(tmp_path)).latest_step() == good
    if good is None:
        assert "No good checkpoint was written" in str(error.value)
    else:
        assert f"last good checkpoint is step {good}" in str(error.value)
    assert not os.path.exists(tmp_path / "results.json")


def test_the_divergence_guard_never_saves_the_state_that_diverged(tiny_data_dir, tmp_path):
    """The issue's case: the loss is finite at step 1, the update makes the parameters huge,
    the loss of step 2 is not finite; following the advice resumes from a good state."""
    config = small_config(tiny_data_dir, 8, checkpoint_every=1)
    config.optim.learning_rate = 1e10
    with pytest.raises(FloatingPointError, match=r"not finite at step 2; stopped without "
                                                 r"saving. No good checkpoint was written"):
        train.train_and_evaluate(config, str(tmp_path))
    assert Checkpointer(str(tmp_path)).latest_step() is None
    config.optim.learning_rate = 1e-3
    result = train.train_and_evaluate(config, str(tmp_path))
    assert result["step"] == 8


def test_a_workdir_that_is_not_writable_fails_before_training(tiny_data_dir, tmp_path):
    blocker = tmp_path / "a_file"
    blocker.write_text("not a directory")
    with pytest.raises(PermissionError, match=rf"workdir {blocker}/run is not a writable "
                                              r"directory .*pass a --workdir you can write to"):
        train.train_and_evaluate(small_config(tiny_data_dir, 2), str(blocker / "run"))
    assert blocker.read_text() == "not a directory"


def test_cli_rejects_a_config_value_of_the_wrong_type(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "fcn_jax.main", "--config", "configs/default.py",
                           "--workdir", str(tmp_path), "--config.train.num_steps=many"],
                          cwd=ROOT, capture_output=True, text=True, timeout=300,
                          env=dict(os.environ, JAX_PLATFORMS="cpu"))
    assert proc.returncode == 2
    assert proc.stderr.startswith("error: config key 'train.num_steps': cannot set 'many'")
    assert not os.listdir(tmp_path)
