"""The GPU/TPU report, the step-memory comparison and the float32 / bfloat16 timing run end to
end on CPU at a tiny size, so they do not rot before an accelerator is at hand."""

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from benchmarks import compute_dtype, device_report, refinement_cost, step_memory
from fcn_jax.models.caffe import CaffeFCN


def table_rows(text: str, first_cell: str) -> list[list[str]]:
    return [[c.strip() for c in line.strip("|").split("|")] for line in text.splitlines()
            if line.startswith(f"| {first_cell}")]


def test_the_device_report_prints_every_row_at_a_tiny_size(capsys):
    device_report.main(["--tiny", "--steps", "1", "--no-torch"])
    out = capsys.readouterr().out
    rows = table_rows(out, "float32") + table_rows(out, "bfloat16")
    assert [(r[0], r[1], r[2]) for r in rows] == [
        (dtype, "2", mode) for dtype in ("float32", "bfloat16") for mode in ("mesh", "pmap")]
    for row in rows:
        assert float(row[4]) > 0 and float(row[6]) > 0  # images/s, GFLOP per step
        assert row[7] == "-"  # no peak FLOP/s known for a CPU
        assert float(row[9]) > 0  # inference ms per image
    assert "allocator peak over the report: not reported by this backend" in out


def test_mfu_uses_the_peak_table_or_the_override():
    assert device_report.peak_tflops("NVIDIA H100 80GB HBM3", "bfloat16", 0) == 989.4
    assert device_report.peak_tflops("NVIDIA H100 PCIe", "float32", 0) == 378.0
    assert device_report.peak_tflops("TPU v5 lite", "bfloat16", 0) == 197.0
    assert device_report.peak_tflops("cpu", "float32", 0) is None
    assert device_report.peak_tflops("cpu", "float32", 2.5) == 2.5


def test_the_flops_of_a_convolution_are_xlas_count():
    x, k = jnp.zeros((1, 8, 8, 4)), jnp.zeros((3, 3, 4, 5))
    compiled = jax.jit(lambda a, b: jax.lax.conv_general_dilated(
        a, b, (1, 1), "VALID", dimension_numbers=("NHWC", "HWIO", "NHWC"))).lower(x, k).compile()
    assert device_report.step_flops(compiled) == 2 * 6 * 6 * 3 * 3 * 4 * 5  # 2 per multiply-add


def test_the_step_memory_table_has_both_kernel_sets_and_plain_flax(capsys):
    step_memory.main(["--tiny"])
    out = capsys.readouterr().out
    names = [row[0] for row in table_rows(out, "")[1:]]
    assert names == ["fcn_jax, fast_paths=auto (cpu-fast)", "fcn_jax, fast_paths=off (plain)",
                     "plain Flax (nnx.Conv, nnx.max_pool, nnx.ConvTranspose)"]


def test_the_compute_dtype_timing_prints_both_and_their_ratio(capsys):
    compute_dtype.main(["--variant", "fcn32s", "--width", "0.0625", "--size", "32", "--batch",
                        "2", "--rounds", "1", "--steps", "1"])
    lines = capsys.readouterr().out.splitlines()
    assert [line.split(":")[0] for line in lines[1:]] == ["float32", "bfloat16",
                                                        "bfloat16 / float32 time"]
    assert float(lines[-1].split(": ")[1]) > 0


def test_the_refinement_cost_prints_every_net_against_fcn32s(capsys):
    refinement_cost.main(["--width", "0.0625", "--size", "32", "--batch", "2", "--rounds", "1",
                          "--steps", "1"])
    rows = [line.split(" | ") for line in capsys.readouterr().out.splitlines()[3:]]
    assert [row[0].lstrip("| ") for row in rows] == list(refinement_cost.NETS)
    assert rows[0][2] == "1.00" and rows[0][4].rstrip(" |") == "1.00"
    assert all(float(row[1]) > 0 and float(row[3]) > 0 for row in rows)


def test_the_plain_path_gathers_no_patches():
    """With fast_paths=off nothing is concatenated (im2col and the column-grouped conv1_1
    concatenate shifted copies of their input); with the CPU kernels they are."""
    images = jnp.zeros((1, 40, 40, 3), jnp.uint8)

    def jaxpr(setting: str) -> str:
        net = CaffeFCN(3, variant="fcn8s", width=0.0625, fc_channels=16, fast_paths=setting,
                       rngs=nnx.Rngs(0))
        return str(jax.make_jaxpr(lambda x: net(x))(images))
    assert "concatenate" in jaxpr("auto")
    assert "concatenate" not in jaxpr("off")


def test_the_plain_flax_reference_is_the_caffe_fcn8s():
    """Same parameters, same logits: the memory comparison compares like with like."""
    ours = CaffeFCN(3, variant="fcn8s", width=0.0625, fast_paths="off", rngs=nnx.Rngs(0))
    plain = step_memory.PlainFlaxFCN8s(3, 0.0625, nnx.Rngs(1))
    rng = np.random.default_rng(0)
    names = [n for block in ours.trunk.blocks for n in block]
    layers = [(getattr(ours.trunk, n), plain.convs[i]) for i, n in enumerate(names)]
    layers += [(ours.trunk.fc6, plain.fc6), (ours.trunk.fc7, plain.fc7)]
    layers += [(getattr(ours, n), getattr(plain, n))
               for n in ("score_fr", "score_pool4", "score_pool3")]
    for a, b in layers:
        kernel = rng.normal(size=a.kernel.shape) * np.sqrt(2 / np.prod(a.kernel.shape[:-1]))
        a.kernel[...] = b.kernel[...] = jnp.asarray(kernel, jnp.float32)
        a.bias[...] = b.bias[...] = jnp.asarray(rng.normal(size=a.bias.shape) * 0.1, jnp.float32)
    images = jnp.asarray(rng.integers(0, 256, (1, 36, 44, 3)), jnp.uint8)
    want = ours(images)
    np.testing.assert_allclose(plain(images), want, rtol=1e-4,
                               atol=1e-4 * float(jnp.max(jnp.abs(want))))
