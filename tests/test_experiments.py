"""The experiment scripts' --quick modes end to end, and their analysis helpers."""

import json

import numpy as np
import pytest

from experiments import common, decoders, skips, sliding_window


def read(path):
    with open(path, encoding="utf-8") as f:
        return json.load(f)


@pytest.fixture
def tiny_tfds(tiny_data_dir, monkeypatch):
    monkeypatch.setenv("TFDS_DATA_DIR", tiny_data_dir)


def test_sliding_window_quick(tmp_path, tiny_tfds):
    sliding_window.main(["--quick", "--seeds", "1", "--workdir", str(tmp_path)])
    workdir = tmp_path / "sliding_window"
    results = read(workdir / "results.json")
    for row in results["inference"]:
        # Naive inference recomputes the overlapping windows: many times the dense FLOPs.
        assert row["naive_gflop"] > 5 * row["dense_gflop"]
        assert row["windows"] == ((row["size"] - 32) // 4 + 1) ** 2
    for method in sliding_window.METHODS:
        curve = results["training_curves"][method][0]
        assert len(curve) == 2 and curve[-1]["steps"] > 0
        assert results["final_mean_iu"][method]["mean"] == 100 * curve[-1]["mean_iu"]
    # A patch step carries one label per patch; a whole-image step one per valid pixel.
    patches, whole = (results["training_curves"][m][0][-1] for m in sliding_window.METHODS)
    assert patches["labelled_pixels"] <= patches["steps"] * 16
    assert whole["labelled_pixels"] > whole["steps"] * 16
    assert (workdir / "figures" / "accuracy_vs_time.png").stat().st_size > 0
    assert "| whole-image |" in (workdir / "results.md").read_text()


def test_decoders_then_skips_quick(tmp_path, tiny_tfds):
    root = tmp_path / "exp"
    decoders.main(["--quick", "--seeds", "1", "--workdir", str(root),
                   "--decoders", "bilinear", "max_unpool"])
    table = read(root / "decoders" / "results.json")["rows"]
    assert [r["decoder"] for r in table] == ["bilinear", "max_unpool"]
    for row in table:
        run = read(root / "decoders" / row["decoder"] / "seed_0" / "results.json")
        assert row["mean_iu"]["values"] == [run["metrics"]["mean_iu"]]
        assert row["boundary_f"]["values"] == [run["boundary_f"]]
    assert table[0]["params"] == 0 and table[1]["params"] == 5 * (9 * 7 * 7 + 7)

    skips.main(["--quick", "--seeds", "1", "--workdir", str(root)])
    results = read(root / "skips" / "results.json")
    assert [r["net"] for r in results["rows"]] == [s["net"] for s in skips.stages(4)]
    assert (root / "skips" / "figures" / "figure4.png").stat().st_size > 0
    # FCN-32s-fixed trained score_fr only: its trunk is still the pretrained trunk.
    trunk = common.pretrained_trunk(str(root), quick=True)
    fixed = skips.stage_config(skips.stages(4)[0], 0, True, str(root / "skips"))
    _, params = common.restore(fixed, skips.run_dir(str(root / "skips"), "FCN-32s-fixed", 0))
    after = common.flat_params(params)
    for name, value in trunk.items():
        np.testing.assert_array_equal(after[name], value, err_msg=name)
    assert np.any(after["score_fr.kernel"] != 0)


def test_coarse_labels_take_the_most_frequent_valid_label_per_block():
    labels = np.array([[[1, 1, 2, 255, 0],
                        [1, 2, 2, 255, 0],
                        [255, 255, 3, 3, 0]]], np.uint8)
    got = skips.coarse_labels(labels, 2, 4)
    want = np.array([[[1, 1, 2, 2, 0],
                      [1, 1, 2, 2, 0],
                      [255, 255, 3, 3, 0]]], np.uint8)
    np.testing.assert_array_equal(got, want)
    # Labels constant on aligned 8 x 8 blocks: exact at stride <= 8, lossy beyond.
    blocks = np.random.default_rng(0).integers(0, 4, (2, 8, 8))
    bound = skips.coarse_upper_bound(np.kron(blocks, np.ones((8, 8), np.int64)), 4)
    assert set(bound) == set(skips.COARSE_FACTORS)
    assert bound[4] == bound[8] == 100.0
    assert bound[64] < bound[32] < bound[16] < 100.0


def test_mean_std_and_tables():
    stat = common.mean_std([1.0, 2.0, 3.0])
    assert stat["mean"] == 2.0 and stat["std"] == 1.0
    assert common.pm(stat) == "2.0 ± 1.0"
    assert common.mean_std([5.0])["std"] == 0.0
    assert common.markdown_table(["a", 1], [[2, "x"]]) == "| a | 1 |\n|---|---|\n| 2 | x |"
