"""One override parser for every command (fcn_jax/config_cli.py): the split, the typing of
values by their field, the one-line errors, the smoke config, and every command's --help."""

import json

import ml_collections
import pytest

from configs import default
from fcn_jax import config_cli, evaluate
from fcn_jax.checkpoint import ModelMismatch
from tests.helpers import run_module

COMMANDS = ("fcn_jax.main", "fcn_jax.evaluate", "fcn_jax.pretrain", "fcn_jax.import_weights",
            "fcn_jax.predict", "fcn_jax.export", "fcn_jax.data.browse", "experiments.sweep",
            "experiments.report", "benchmarks.input_pipeline", "benchmarks.sliding_window",
            "benchmarks.fcn_vs_torch")


def test_overrides_are_split_from_other_arguments_in_both_forms():
    rest, texts = config_cli.split_overrides(
        ["--workdir", "w", "--config.train.num_steps=7", "--config.optim.name", "sgd", "x"])
    assert rest == ["--workdir", "w", "x"]
    assert texts == {"train.num_steps": "7", "optim.name": "sgd"}
    with pytest.raises(ValueError, match="--config.seed needs a value"):
        config_cli.split_overrides(["--config.seed"])


@pytest.mark.parametrize("key, text, expected", [
    ("train.num_steps", "7", 7),
    ("optim.learning_rate", "3e-4", 3e-4),
    ("optim.learning_rate", "1", 1.0),             # an int becomes the float field's float
    ("model.init_from", "123", "123"),             # a text field keeps the text as it is
    ("model.init_from", "", ""),
    ("data.flip", "false", False),
    ("data.flip", "True", True),
    ("data.scale_range", "(0.5, 1.5)", (0.5, 1.5)),
    ("data.scale_range", "[0.5, 1.5]", (0.5, 1.5)),
    ("eval.scales", "1.0", (1.0,)),                # one value for a tuple field: a 1-tuple
    ("optim.train_only", "score_fr", ("score_fr",)),
])
def test_a_value_is_read_as_its_fields_type(key, text, expected):
    config = config_cli.resolve("configs/default.py", ["prog", f"--config.{key}={text}"])
    value = config_cli.field_value(config, key)
    assert value == expected and type(value) is type(expected)


@pytest.mark.parametrize("override, message", [
    ("--config.trian.num_steps=3", "no section 'trian' (did you mean 'train'?)"),
    ("--config.train.num_step=3", "unknown config key 'train.num_step' (did you mean "
                                  "'num_steps'?); train has ["),
    ("--config.train.num_steps=abc", "config key 'train.num_steps': cannot set 'abc'"),
    ("--config.data.flip=maybe", "config key 'data.flip': cannot set 'maybe'"),
])
def test_a_bad_override_is_a_value_error_naming_the_key(override, message):
    with pytest.raises(ValueError) as error:
        config_cli.resolve("configs/default.py", ["prog", override])
    assert message in str(error.value)


def test_the_resolved_config_is_locked_and_other_arguments_are_refused():
    config = config_cli.resolve("configs/default.py:fcn32s", ["prog"])
    assert config.model.variant == "fcn32s"
    with pytest.raises(AttributeError):
        config.train.new_field = 1
    with pytest.raises(Exception, match="unexpected arguments"):
        config_cli.resolve("configs/default.py", ["prog", "stray"])


def test_without_a_config_file_the_fallback_is_used_else_it_is_required():
    fallback = ml_collections.ConfigDict({"seed": 3})
    assert config_cli.resolve(None, ["prog", "--config.seed=4"], lambda: fallback).seed == 4
    with pytest.raises(ValueError, match="--config is required"):
        config_cli.resolve(None, ["prog"])
    with pytest.raises(FileNotFoundError, match="nope.py"):
        config_cli.resolve("nope.py", ["prog"])


def test_a_workdir_without_config_json_names_the_flag_and_the_fix(tmp_path):
    with pytest.raises(FileNotFoundError, match="--source .* holds no config.json.*--config"):
        config_cli.workdir_config(str(tmp_path), "--source")


def test_the_smoke_config_is_the_variant_on_tiny_data():
    smoke = default.get_config("fcn32s,smoke")
    assert (smoke.model.variant, smoke.data.builder_config, smoke.train.num_steps) == (
        "fcn32s", "tiny", 20)
    assert default.get_config("smoke").model.variant == "fcn8s"
    plain = default.get_config("fcn32s")
    changed = {f"{s}.{k}" for s in plain for k in plain[s] or ()
               if isinstance(plain[s], ml_collections.ConfigDict) and plain[s][k] != smoke[s][k]}
    assert "model.variant" not in changed and "optim.name" not in changed
    with pytest.raises(ValueError, match="optionally with ',smoke'"):
        default.get_config("fcn32s,fcn8s")


@pytest.mark.parametrize("module", ["fcn_jax.main", "fcn_jax.evaluate", "fcn_jax.pretrain"])
def test_a_typo_on_a_command_is_one_line_before_any_work(module, tmp_path):
    workdir = tmp_path / "run"
    args = {"fcn_jax.main": ["--config", "configs/default.py", "--workdir", str(workdir)],
            "fcn_jax.pretrain": ["--workdir", str(workdir)],
            "fcn_jax.evaluate": ["--config", "configs/default.py", "--source", str(tmp_path),
                                 "--name", "x", "--table", str(workdir)]}[module]
    proc = run_module(module, *args, "--config.optim.learning_rat=0.1")
    assert proc.returncode == 2, proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1, proc.stderr
    assert "unknown config key 'optim.learning_rat' (did you mean 'learning_rate'?)" in (
        proc.stderr)
    assert not workdir.exists()


@pytest.mark.parametrize("module", COMMANDS)
def test_every_command_has_help_without_optional_extras(module):
    """absl's --help exits with 1 (argparse's with 0); neither may be a crash."""
    proc = run_module(module, "--help")
    assert proc.returncode in (0, 1) and "Traceback" not in proc.stderr, proc.stderr[-2000:]
    assert "usage" in proc.stdout.lower() or "--helpfull" in proc.stdout


@pytest.mark.slow
def test_the_smoke_run_then_its_workdir_alone_is_scored_by_evaluate(tmp_path, tiny_data_dir):
    """configs/default.py:smoke trains through the command; fcn_jax.evaluate --source W needs
    no --config (W's config.json), and an override on top applies (mirror averaging)."""
    workdir, table = tmp_path / "smoke", tmp_path / "table"
    trained = run_module("fcn_jax.main", "--config", "configs/default.py:smoke", "--workdir",
                         str(workdir), f"--config.data.data_dir={tiny_data_dir}")
    assert trained.returncode == 0, trained.stderr[-2000:]
    assert '"step": 20' in trained.stdout
    scored = run_module("fcn_jax.evaluate", "--source", str(workdir), "--name", "smoke",
                        "--table", str(table), "--config.eval.flip=true")
    assert scored.returncode == 0, scored.stderr[-2000:]
    row = json.loads((table / "results.json").read_text())["rows"][0]
    assert row["step"] == 20 and row["net"] == "smoke"
    plain = json.loads(trained.stdout[trained.stdout.rindex('{\n  "split"'):])["metrics"]
    assert row["metrics"].keys() == plain.keys()


def test_a_checkpoint_of_another_net_names_the_differing_config_fields_first(trained_fcn8s):
    config, workdir = trained_fcn8s
    other = config.copy_and_resolve_references()
    other.model.variant = "fcn32s"
    with pytest.raises(ModelMismatch) as error:
        evaluate.evaluate_checkpoint(other, workdir)
    assert str(error.value).startswith(
        f"{workdir} was trained with another config (model.variant: 'fcn8s' in the workdir, "
        "'fcn32s' here): pass the same values, or --config left out to use its config.json. "
        "the step 3 checkpoint")
