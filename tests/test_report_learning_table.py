"""The report's learning table (experiments/report.py): validation mean IU at each
evaluation step per setting, against a hand computation."""

import numpy as np

from experiments.report import (evaluation_gains, gain_table, group_rows, learning_table,
                               markdown_table, seconds_per_step)


def trial(name: str, lr: float, seed: int, curve: dict) -> dict:
    """A finished trial whose logs (as ``writer.read_metrics`` gives them: percent) hold the
    evaluation mean IU of ``curve``."""
    logs = [{"step": s, "split": "train", "loss": 1.0} for s in curve]
    logs += [{"step": s, "split": "eval", "mean_iu": v} for s, v in curve.items()]
    metrics = {"pixel_acc": 50.0, "mean_acc": 40.0, "mean_iu": list(curve.values())[-1],
               "fw_iu": 30.0}
    return {"name": name, "overrides": {"optim.learning_rate": lr, "seed": seed},
            "parent": None, "logs": logs, "results": {"metrics": metrics, "boundary_f": 20.0}}


def test_each_settings_curve_is_the_mean_and_std_over_its_seeds():
    trials = [trial("a0", 0.1, 0, {10: 10.0, 20: 30.0}), trial("a1", 0.1, 1, {10: 20.0, 20: 50.0}),
              trial("b0", 0.01, 0, {10: 5.0, 20: None, 30: 15.0})]
    rows = group_rows(["optim.learning_rate", "seed"], trials)
    lines = learning_table(rows, trials).splitlines()
    assert lines[0] == "| setting | step 10 | step 20 | step 30 |"
    std10, std20 = np.std([10, 20], ddof=1), np.std([30, 50], ddof=1)
    assert lines[2] == f"| learning_rate=0.1 | 15.00 ± {std10:.2f} | 40.00 ± {std20:.2f} |  |"
    assert lines[3] == "| learning_rate=0.01 | 5.00 |  | 15.00 |"


def test_the_gain_between_evaluations_is_paired_by_seed_with_its_t_interval():
    """Gains against a hand computation (t quantile 0.975 with 2 degrees of freedom: 4.303);
    a setting with one seed has no interval and no row."""
    trials = [trial("a0", 0.1, 0, {10: 10.0, 20: 13.0, 30: 14.0}),
              trial("a1", 0.1, 1, {10: 12.0, 20: 14.0, 30: 14.5}),
              trial("a2", 0.1, 2, {10: 11.0, 20: 15.0, 30: 13.5}),
              trial("b0", 0.01, 0, {10: 5.0, 20: 9.0})]
    rows = group_rows(["optim.learning_rate", "seed"], trials)
    (found,) = evaluation_gains(rows, trials)
    assert found["label"] == "learning_rate=0.1" and sorted(found["gains"]) == [20, 30]
    for step, diffs in ((20, [3.0, 2.0, 4.0]), (30, [1.0, 0.5, -1.5])):
        mean, std = np.mean(diffs), np.std(diffs, ddof=1)
        gain = found["gains"][step]
        assert gain["seeds"] == 3 and np.isclose(gain["mean"], mean)
        assert np.isclose(gain["std"], std)
        assert np.isclose(gain["high"] - mean, 4.303 * std / np.sqrt(3), rtol=1e-3)
        assert np.isclose(mean - gain["low"], gain["high"] - mean)
    lines = gain_table([found]).splitlines()
    assert lines[0] == "| setting | to step 20 | to step 30 |"
    assert lines[2].startswith("| learning_rate=0.1 | +3.00 ± 1.00 [+0.52, +5.48] | +0.00 ± 1.32 ")
    assert evaluation_gains(rows[1:], trials) == []


def test_seconds_per_step_uses_every_timed_interval_and_skips_compilation_in_old_logs():
    timed_apart = [{"step": 1, "split": "train", "steps_per_sec": None, "first_step_seconds": 9.0},
                   {"step": 2, "split": "train", "steps_per_sec": 4.0}]
    assert seconds_per_step(timed_apart) == 0.25       # a resumed run's single interval counts
    old = [{"step": 1, "split": "train", "steps_per_sec": 0.1},    # compile included
           {"step": 2, "split": "train", "steps_per_sec": 2.0},
           {"step": 3, "split": "train", "steps_per_sec": 4.0}]
    assert seconds_per_step(old) == 1 / 3.0
    assert np.isnan(seconds_per_step([]))


def test_a_setting_that_trained_no_step_says_so_in_the_s_per_step_column():
    scored = trial("z0", 0.1, 0, {0: 12.0})
    scored["logs"] = [r for r in scored["logs"] if r["split"] == "eval"]  # num_steps=0
    timed = trial("t0", 0.01, 0, {10: 20.0})
    timed["logs"][0].update(steps_per_sec=4.0, first_step_seconds=9.0)
    rows = group_rows(["optim.learning_rate", "seed"], [scored, timed])
    cells = {line.split(" | ")[0]: line.split(" | ")[-1]
             for line in markdown_table(["optim.learning_rate", "seed"], rows).splitlines()[2:]}
    assert cells == {"| 0.01": "0.250 |", "| 0.1": "(no steps) |"}
