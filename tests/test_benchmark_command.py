"""The JAX-vs-PyTorch benchmark runs end to end on a tiny net, on one and on two devices."""

import re
import subprocess
import sys

import pytest

from tests.helpers import ROOT, environment_without_cpu_device_count


def test_help_needs_no_torch():
    proc = subprocess.run([sys.executable, "-m", "benchmarks.fcn_vs_torch", "--help"], cwd=ROOT,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert "--cpu-devices" in proc.stdout


@pytest.mark.parametrize("cpu_devices", [1, 2])
@pytest.mark.slow
def test_the_benchmark_prints_every_phase_with_a_ratio(cpu_devices):
    pytest.importorskip("torch")
    proc = subprocess.run(
        [sys.executable, "-m", "benchmarks.fcn_vs_torch", "--width", "0.0625", "--size", "32",
         "--batch", "2", "--rounds", "1", "--steps", "1", "--cpu-devices", str(cpu_devices)],
        cwd=ROOT, capture_output=True, text=True, timeout=300,
        env=environment_without_cpu_device_count())
    assert proc.returncode == 0, proc.stderr
    assert f"({cpu_devices} CPU device(s)" in proc.stdout
    for phase in ("train", "infer", "predict"):
        assert re.search(rf"^\| {phase} \| [\d.]+ \| [\d.]+ \| [\d.]+ \| \d+ / \d+ \|$",
                         proc.stdout, re.M), proc.stdout
