"""`make mutation`'s script end to end on the smallest module: cosmic-ray mutates a copy of
the repository, runs the module's tests against each mutant and tallies the outcome."""

import json
import subprocess
import sys

import pytest

from tests.helpers import ROOT

pytest.importorskip("cosmic_ray")


@pytest.mark.slow
def test_every_mutant_of_the_cli_wrapper_is_killed_by_its_tests(tmp_path):
    """The documented command, `make mutation MODULES=...`, on the smallest target."""
    proc = subprocess.run(["make", "--no-print-directory", "mutation", "MODULES=fcn_jax/cli.py",
                           f"MUTATION_WORKDIR={tmp_path / 'work'}", f"PYTHON={sys.executable}"],
                          cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    scores = json.loads((tmp_path / "work" / "scores.json").read_text())["fcn_jax/cli.py"]
    assert scores["killed"] + scores["survived"] >= 5 and scores["pending"] == 0
    assert scores["survived"] == 0, scores["survivors"]
    assert f"fcn_jax/cli.py: {scores['killed']} of {scores['killed']} valid mutants killed" in (
        proc.stdout)
    with open(f"{ROOT}/fcn_jax/cli.py", encoding="utf-8") as original:  # mutants were undone
        assert (tmp_path / "work" / "repo" / "fcn_jax" / "cli.py").read_text() == original.read()
