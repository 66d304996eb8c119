"""Every shell command shown in README.md and docs/*.md has a named test that runs it (with
tiny data and temporary workdirs), or a stated reason why none can (a cluster scheduler).

A command is known by what it runs: ``make TARGET``, ``python -m MODULE``, and for the sweep
runner also its ``--sweep NAME``. Adding a command to the docs without a test, or renaming a
test a command relies on, fails here.
"""

import ast
import glob
import os
import re
import subprocess
import sys

import pytest

from tests.helpers import ROOT

SWEEP_EMIT = "tests/test_sweeps.py::test_the_documented_study_commands_emit_their_trials"
QUICK_STUDY = "tests/test_quick_studies.py::test_the_quick_form_of_each_study_runs_and_reports"
STUDY_NAMES = ("sgd_lr", "convergence", "skips", "backbones", "backbone_lr", "pretraining", "upsampling",
               "loss_sampling", "balancing", "augmentation", "data_size", "precision",
               "learning_regime")
TESTED = {
    "make run": ["tests/test_classifier_pretraining.py::"
                 "test_pretrain_then_fine_tune_through_the_commands"],
    "make test": [],  # CI's own command: it runs this suite
    "make backbone-classifiers": ["tests/test_backbones.py::"
                                  "test_make_backbone_classifiers_commands_pretrain_each_backbone"],
    "python -m benchmarks.backbones": ["tests/test_backbones.py::"
                                       "test_the_backbone_benchmark_prints_table_1s_columns"],
    "make install": ["tests/test_packaging.py::test_make_install_adds_the_chosen_jax_build"],
    "python -m pip": ["tests/test_packaging.py::"
                      "test_the_wheel_holds_the_packages_scripts_and_pinned_dependencies"],
    ".venv/bin/fcn-predict": ["tests/test_packaging.py::"
                              "test_each_console_script_runs_outside_the_repository"],
    "make test-quick": ["tests/test_documented_commands.py::"
                        "test_the_quick_subset_is_the_suite_less_the_slow_tests"],
    "make studies": ["tests/test_sweeps.py::"
                     "test_a_study_report_draws_its_prediction_grid_and_coarse_upper_bound"],
    "make mutation": ["tests/test_mutation_command.py::"
                      "test_every_mutant_of_the_cli_wrapper_is_killed_by_its_tests",
                      "tests/test_mutation_command.py::"
                      "test_survivors_are_run_again_against_new_tests_and_the_rest_kept"],
    "python -m fcn_jax.main": ["tests/test_train.py::test_cli_trains_then_evaluates_a_checkpoint",
                               "tests/test_train.py::test_a_workdir_alone_evaluates_and_resumes_"
                               "with_its_own_config",
                               "tests/test_multiprocess.py::test_two_processes_with_two_"
                               "devices_each_equal_one_process_with_four",
                               "tests/test_voc_recipes.py::test_fcn16s_starts_from_the_fcn32s_"
                               "checkpoint_with_zero_new_score_layers"],
    "python -m fcn_jax.predict": ["tests/test_predict_command.py::"
                                  "test_predictions_of_a_folder_equal_the_trainers"],
    "python -m fcn_jax.data.browse": ["tests/test_folder_dataset.py::"
                                      "test_browse_train_and_predict_on_your_own_folder"],
    "python -m fcn_jax.export": ["tests/test_export_command.py::"
                                 "test_exported_module_and_weights_give_the_trained_nets_logits"],
    "python -m benchmarks.refinement_cost": ["tests/test_device_report.py::test_the_refinement_"
                                             "cost_prints_every_net_against_fcn32s"],
    "python -m benchmarks.device_report": ["tests/test_device_report.py::"
                                           "test_the_device_report_prints_every_row_at_a_tiny_size"],
    "python -m fcn_jax.pretrain": ["tests/test_classifier_pretraining.py::"
                                   "test_pretrain_then_fine_tune_through_the_commands"],
    "python -m fcn_jax.data.voc": ["tests/test_voc_dataset.py::"
                                   "test_the_documented_preparation_command_answers_help",
                                   "tests/test_voc_dataset.py::test_cli_prints_the_split_sizes"],
    "python -m fcn_jax.import_weights": ["tests/test_weights.py::"
                                         "test_import_weights_command_reports_and_resaves"],
    "python -m fcn_jax.evaluate": ["tests/test_evaluate_command.py::"
                                   "test_command_scores_a_checkpoint_into_the_table"],
    "python -m experiments.report": ["tests/test_sweeps.py::test_a_study_report_draws_its_"
                                     "prediction_grid_and_coarse_upper_bound"],
    "python -m benchmarks.sliding_window": ["tests/test_sliding_window_benchmark.py::"
                                            "test_the_documented_benchmark_prints_its_table"],
    "python -m experiments.sweep --sweep lr_decoder": [
        "tests/test_sweeps.py::test_ready_made_sweeps_load_and_unknown_names_list_the_available",
        "tests/test_sweeps.py::test_emit_commands_writes_one_line_per_unfinished_trial"],
    "python -m experiments.sweep --sweep variant_seed": [
        "tests/test_sweeps.py::test_ready_made_sweeps_load_and_unknown_names_list_the_available",
        "tests/test_sweeps.py::test_emit_commands_writes_one_line_per_unfinished_trial"],
    **{f"python -m experiments.sweep --sweep {name}": [f"{SWEEP_EMIT}[{name}]"]
       for name in STUDY_NAMES},
    "python -m experiments.sweep --sweep skips --quick": [f"{QUICK_STUDY}[skips]"],
    "make studies-quick": [f"{QUICK_STUDY}[{name}]" for name in STUDY_NAMES],
}
UNTESTABLE = {
    ".venv/bin/tensorboard": "the viewer of the optional tensorboard extra, not installed by "
                             "make test; test_train checks the run writes the tensorboard/ "
                             "event files it reads",
    "sbatch": "a SLURM array job; the commands it runs are experiments.sweep --emit-commands "
              "lines, tested by test_emit_commands_writes_one_line_per_unfinished_trial",
}
SHELL_WORDS = ("for ", "done", "do ", "then", "fi")


def documented_lines() -> list[tuple[str, str]]:
    """(page, command line) for each line of the bash blocks of README.md and docs/*.md,
    continuations joined, comments and variable assignments left out."""
    lines = []
    for page in ["README.md", *sorted(glob.glob("docs/*.md", root_dir=ROOT))]:
        with open(os.path.join(ROOT, page), encoding="utf-8") as f:
            blocks = re.findall(r"^[ \t]*```(?:bash|sh|shell)\n(.*?)^[ \t]*```", f.read(),
                                re.M | re.S)
        for block in blocks:
            for line in re.sub(r"\\\n\s*", " ", block).splitlines():
                line = line.split(" #")[0].strip()
                if (line and not line.startswith("#") and not re.match(r"^\w+=", line)
                        and not line.startswith(SHELL_WORDS)):
                    lines.append((page, line))
    return lines


def command_key(line: str) -> str:
    """What a command line runs: ``make TARGET``, ``python -m MODULE [--sweep NAME]``."""
    line = line.replace("$TRAIN", "python -m fcn_jax.main")
    words = line.split()
    if words[0] == "make":
        return f"make {words[1] if len(words) > 1 and '=' not in words[1] else ''}".strip()
    if "-m" in words:
        module = words[words.index("-m") + 1]
        key = f"python -m {module}"
        if module == "experiments.sweep" and "--sweep" in words:
            key += f" --sweep {words[words.index('--sweep') + 1]}"
            key += " --quick" if "--quick" in words else ""
        return key
    return words[0]


def test_every_documented_command_has_a_test_or_a_reason():
    lines = documented_lines()
    assert len(lines) > 30  # the extraction finds the docs' commands
    missing = sorted({f"{page}: {line}" for page, line in lines
                      if command_key(line) not in TESTED | UNTESTABLE})
    assert not missing, "documented commands with no test:\n" + "\n".join(missing)
    documented = {command_key(line) for _, line in lines}
    assert not (TESTED.keys() | UNTESTABLE.keys()) - documented, "stale entries"


@pytest.mark.parametrize("reference", sorted({r for refs in TESTED.values() for r in refs}))
def test_each_named_test_exists(reference):
    path, _, name = reference.partition("::")
    name, _, param = name.partition("[")
    with open(os.path.join(ROOT, path), encoding="utf-8") as f:
        source = f.read()
    functions = {node.name: node for node in ast.walk(ast.parse(source))
                 if isinstance(node, ast.FunctionDef)}
    assert name in functions, f"{path} has no {name}"
    if param:
        decorators = " ".join(ast.unparse(d) for d in functions[name].decorator_list)
        assert repr(param.rstrip("]")) in decorators, f"{name} is not run for {param}"


def test_command_keys():
    assert command_key("make studies STUDIES=\"a b\" PARALLEL=2") == "make studies"
    assert command_key("make run") == "make run"
    assert command_key(".venv/bin/python -m experiments.sweep --config c.py --sweep skips "
                       "--workdir w") == "python -m experiments.sweep --sweep skips"
    assert command_key(".venv/bin/python -m experiments.sweep --config c.py --sweep skips "
                       "--workdir w --quick") == "python -m experiments.sweep --sweep skips --quick"
    assert command_key("$TRAIN --config configs/voc.py:fcn32s") == "python -m fcn_jax.main"
    assert command_key("srun .venv/bin/python -m fcn_jax.main --config x") == (
        "python -m fcn_jax.main")


def test_the_quick_subset_is_the_suite_less_the_slow_tests():
    """``make test-quick`` deselects the tests marked slow, and only those."""
    recipe = subprocess.run(["make", "-n", "-o", "install-test", "test-quick"], cwd=ROOT,
                            capture_output=True, text=True, check=True).stdout
    assert '-m "not slow" tests' in recipe

    def collected(*args: str) -> set[str]:
        proc = subprocess.run([sys.executable, "-m", "pytest", "--collect-only", "-q",
                               "--strict-markers", *args, "tests"], cwd=ROOT,
                              capture_output=True, text=True)
        assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
        return {line for line in proc.stdout.splitlines() if "::" in line}

    everything, quick, slow = collected(), collected("-m", "not slow"), collected("-m", "slow")
    assert quick == everything - slow and slow and len(quick) > len(slow)
    assert any("test_pretrain_then_fine_tune_through_the_commands" in t for t in slow)
