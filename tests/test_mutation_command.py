"""`make mutation`'s script end to end on the smallest module: cosmic-ray mutates a copy of
the repository, runs the module's tests against each mutant and tallies the outcome."""

import json
import os
import re
import sqlite3
import subprocess
import sys
import tomllib

import pytest

from tests.helpers import ROOT

pytest.importorskip("cosmic_ray")


def make_mutation(tmp_path, *flags: str) -> subprocess.CompletedProcess:
    return subprocess.run(["make", "--no-print-directory", "mutation", "MODULES=fcn_jax/cli.py",
                           f"MUTATION_WORKDIR={tmp_path / 'work'}", f"PYTHON={sys.executable}",
                           *flags], cwd=ROOT, capture_output=True, text=True, timeout=600)


@pytest.mark.slow
def test_every_mutant_of_the_cli_wrapper_is_killed_by_its_tests(tmp_path):
    """The documented command, `make mutation MODULES=...`, on the smallest target."""
    proc = make_mutation(tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    scores = json.loads((tmp_path / "work" / "scores.json").read_text())["fcn_jax/cli.py"]
    assert scores["killed"] + scores["survived"] >= 5 and scores["pending"] == 0
    assert scores["survived"] == 0, scores["survivors"]
    assert f"fcn_jax/cli.py: {scores['killed']} of {scores['killed']} valid mutants killed" in (
        proc.stdout)
    with open(f"{ROOT}/fcn_jax/cli.py", encoding="utf-8") as original:  # mutants were undone
        assert (tmp_path / "work" / "repo" / "fcn_jax" / "cli.py").read_text() == original.read()


@pytest.mark.slow
def test_survivors_are_run_again_against_new_tests_and_the_rest_kept(tmp_path):
    """A run whose test kills nothing, stopped before its last mutant; --survivors is refused
    until `MUTATION_FLAGS=--resume` has run that mutant (with the module's real tests: killed);
    then --survivors runs every survivor again against the real tests: all killed."""
    (tmp_path / "test_nothing.py").write_text("def test_nothing():\n    pass\n")
    weak = tmp_path / "weak.toml"
    weak.write_text(f'[targets]\n"fcn_jax/cli.py" = ["{tmp_path / "test_nothing.py"}"]\n')
    subprocess.run([sys.executable, "mutation/run.py", "--workdir", str(tmp_path / "work"),
                    "--targets", str(weak), "fcn_jax/cli.py"], cwd=ROOT, check=True,
                   capture_output=True, timeout=600)
    scores_file = tmp_path / "work" / "scores.json"
    before = json.loads(scores_file.read_text())["fcn_jax/cli.py"]
    assert before["killed"] == 0 and before["survived"] >= 5, before
    session = tmp_path / "work" / "fcn_jax.cli.py.sqlite"
    with sqlite3.connect(session) as db:  # as if the run had been stopped before its last one
        db.execute("DELETE FROM work_results WHERE job_id = (SELECT MAX(job_id) FROM "
                   "work_results)")
    proc = make_mutation(tmp_path, "MUTATION_FLAGS=--survivors")
    assert proc.returncode != 0
    assert (f"error: {session} has 1 untested mutants; finish that run with --resume first"
            in proc.stderr)
    proc = make_mutation(tmp_path, "MUTATION_FLAGS=--resume")
    assert proc.returncode == 0, proc.stderr[-3000:]
    resumed = json.loads(scores_file.read_text())["fcn_jax/cli.py"]
    assert (resumed["killed"], resumed["survived"]) == (1, before["survived"] - 1)
    proc = make_mutation(tmp_path, "MUTATION_FLAGS=--survivors")
    assert proc.returncode == 0, proc.stderr[-3000:]
    after = json.loads(scores_file.read_text())["fcn_jax/cli.py"]
    assert (after["killed"], after["survived"], after["pending"]) == (before["survived"], 0, 0)


def test_survivors_without_an_earlier_run_is_refused(tmp_path):
    proc = subprocess.run([sys.executable, "mutation/run.py", "--workdir", str(tmp_path),
                           "--survivors", "fcn_jax/cli.py"], cwd=ROOT, capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode == 1
    assert proc.stderr.strip().splitlines()[-1] == (
        f"error: --survivors needs {tmp_path}/fcn_jax.cli.py.sqlite from an earlier run of "
        "fcn_jax/cli.py; run it without the flag first")


def test_tests_that_do_not_pass_unmutated_are_refused_before_any_mutant(tmp_path):
    """A renamed test in the targets file would make pytest fail on every mutant, which
    cosmic-ray counts as killed: the run stops first, naming the module and its tests."""
    missing = "tests/test_cli.py::test_no_such_test"
    targets = tmp_path / "targets.toml"
    targets.write_text(f'[targets]\n"fcn_jax/cli.py" = ["{missing}"]\n')
    proc = subprocess.run([sys.executable, "mutation/run.py", "--workdir", str(tmp_path / "work"),
                           "--targets", str(targets), "fcn_jax/cli.py"], cwd=ROOT,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 1
    line = proc.stderr.strip().splitlines()[-1]
    assert line.startswith(f"error: the tests of fcn_jax/cli.py ({missing}) do not pass on the "
                           "unmutated module (pytest: ")
    assert line.endswith("fix them or their list in the targets file before scoring mutants")
    assert sorted(os.listdir(tmp_path / "work")) == ["fcn_jax.cli.py.toml", "repo"]


def test_every_test_the_targets_file_names_exists():
    """Each entry of mutation/targets.toml is a test file, or a test function in one."""
    with open(os.path.join(ROOT, "mutation", "targets.toml"), "rb") as f:
        table = tomllib.load(f)["targets"]
    for module, tests in table.items():
        assert os.path.isfile(os.path.join(ROOT, module)), module
        for test in tests:
            path, _, function = test.partition("::")
            with open(os.path.join(ROOT, path), encoding="utf-8") as f:
                source = f.read()
            assert not function or re.search(rf"^def {function}\(", source, re.M), test
