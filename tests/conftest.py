"""Tests run on CPU with 4 fake devices; set before jax is imported anywhere."""

import os

os.environ["JAX_PLATFORMS"] = "cpu"
os.environ["XLA_FLAGS"] = (os.environ.get("XLA_FLAGS", "")
                           + " --xla_force_host_platform_device_count=4").strip()

import pytest  # noqa: E402  (after the environment is set)


@pytest.fixture(scope="session")
def tiny_data_dir(tmp_path_factory):
    """The embedded dataset's "tiny" config, prepared once per test session (worker)."""
    from fcn_jax.data import embedded

    path = tmp_path_factory.mktemp("tfds")
    embedded.prepare(path, "tiny")
    return str(path)
