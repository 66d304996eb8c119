"""Tests run on CPU with 4 fake devices and a shared compilation cache; set before jax is
imported anywhere."""

import os

os.environ["JAX_PLATFORMS"] = "cpu"
# The tests' nets are tiny: compiling them costs more than running them, so XLA's backend
# optimisation is turned off (a cold smoke training run: 15.6 s -> 9.0 s); the results are the
# same programs' within float rounding, which every numerical check's tolerance allows.
os.environ["XLA_FLAGS"] = (os.environ.get("XLA_FLAGS", "")
                           + " --xla_force_host_platform_device_count=4"
                           + " --xla_backend_optimization_level=0").strip()

# One persistent XLA compilation cache for the suite and every command it starts: the same tiny
# nets are compiled in many processes. An entry is keyed by the program, the compile options,
# the devices and the jax version, so a hit is the executable a compilation would give. A
# size limit turns on the cache's file lock, which the two pytest workers need.
os.environ.setdefault("JAX_COMPILATION_CACHE_DIR", os.path.join(
    os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "workdirs", "jax_cache_tests"))
os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS", "0.2")
os.environ.setdefault("JAX_COMPILATION_CACHE_MAX_SIZE", str(4 << 30))

import pytest  # noqa: E402  (after the environment is set)


@pytest.fixture(scope="session")
def tiny_data_dir(tmp_path_factory):
    """The embedded dataset's "tiny" config, prepared once per test session (worker)."""
    from fcn_jax.data import embedded

    path = tmp_path_factory.mktemp("tfds")
    embedded.prepare(path, "tiny")
    return str(path)


@pytest.fixture(scope="session")
def trained_fcn8s(tiny_data_dir, tmp_path_factory):
    """(config, workdir) of a tiny FCN-8s trained for 3 steps: the workdir the commands that
    read one (predict, export) are tested on."""
    from fcn_jax import train
    from tests.helpers import overridden_config, tiny_cli_overrides

    workdir = str(tmp_path_factory.mktemp("trained_fcn8s"))
    config = overridden_config("fcn8s", tiny_data_dir, tiny_cli_overrides(3))
    train.train_and_evaluate(config, workdir)
    return config, workdir
