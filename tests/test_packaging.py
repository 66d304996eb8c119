"""Installable (pyproject.toml): the wheel holds the packages and the console scripts, which
run from outside the repository; ``make install JAX=...`` installs that jax build."""

import os
import shutil
import subprocess
import sys
import zipfile

import pytest

from tests.helpers import ROOT

PACKAGES = ("fcn_jax", "configs", "experiments", "benchmarks")
SCRIPTS = {"fcn-train": "fcn_jax.main:run", "fcn-evaluate": "fcn_jax.evaluate:run",
           "fcn-predict": "fcn_jax.predict:run", "fcn-export": "fcn_jax.export:run",
           "fcn-pretrain": "fcn_jax.pretrain:run"}


@pytest.fixture(scope="module")
def unpacked_wheel(tmp_path_factory):
    """The project built as a wheel from a copy of its sources (the checkout stays clean),
    unpacked."""
    source = tmp_path_factory.mktemp("source")
    for name in ("pyproject.toml", "README.md", "requirements.txt"):
        shutil.copy(os.path.join(ROOT, name), source)
    for package in PACKAGES:
        shutil.copytree(os.path.join(ROOT, package), source / package,
                        ignore=shutil.ignore_patterns("__pycache__"))
    wheels = tmp_path_factory.mktemp("wheels")
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation",
                    "-q", "-w", str(wheels), str(source)], check=True, capture_output=True)
    (wheel,) = wheels.iterdir()
    unpacked = tmp_path_factory.mktemp("unpacked")
    zipfile.ZipFile(wheel).extractall(unpacked)
    return unpacked


def test_the_wheel_holds_the_packages_scripts_and_pinned_dependencies(unpacked_wheel):
    assert all((unpacked_wheel / p / "__init__.py").exists() for p in PACKAGES)
    (info,) = unpacked_wheel.glob("*.dist-info")
    lines = (info / "entry_points.txt").read_text().splitlines()
    assert {k.strip(): v.strip() for k, _, v in (l.partition("=") for l in lines if "=" in l)} \
        == SCRIPTS
    metadata = (info / "METADATA").read_text()
    assert "Requires-Dist: jax[cpu]<0.11,>=0.9" in metadata
    assert 'Requires-Dist: torch==2.13.0; extra == "torch"' in metadata


@pytest.mark.parametrize("script", sorted(SCRIPTS))
def test_each_console_script_runs_outside_the_repository(unpacked_wheel, tmp_path, script):
    module, _, function = SCRIPTS[script].partition(":")
    code = (f"import sys; sys.argv = [{script!r}, '--help']; "
            f"from {module} import {function}; {function}()")
    env = dict(os.environ, PYTHONPATH=str(unpacked_wheel), JAX_PLATFORMS="cpu")
    proc = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode in (0, 1) and "Traceback" not in proc.stderr, proc.stderr[-2000:]
    assert "--workdir" in proc.stdout or "--source" in proc.stdout


@pytest.mark.parametrize("jax, line", [
    ("cuda12", 'pip install --quiet "jax[cuda12]>=0.9,<0.11"'),
    ("tpu", 'pip install --quiet "jax[tpu]>=0.9,<0.11"'),
    ("cpu", None),
])
def test_make_install_adds_the_chosen_jax_build(tmp_path, jax, line):
    recipe = subprocess.run(["make", "-n", "-B", "install", f"JAX={jax}",
                             f"VENV={tmp_path / 'venv'}"], cwd=ROOT, capture_output=True,
                            text=True, check=True).stdout
    assert "pip install --quiet -r requirements.txt" in recipe
    if line:
        assert line in recipe
    else:
        assert "jax[" not in recipe
