"""Sweeps: axis helpers, overrides, the resumable runner and the report."""

import hashlib
import json
import os
import re
import subprocess
import sys

import numpy as np
import pytest
from scipy import stats

from configs import default
from experiments import report, reuse, study_figures, sweep
from fcn_jax import data, models, sweeps
from fcn_jax.data import pipeline
from fcn_jax.models import pretrained
from fcn_jax.writer import read_metrics
from tests.helpers import run_module

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# A config file with CPU-tiny trials (a few seconds each) and two sweeps; the "broken" one has
# a trial whose batch does not divide over the 4 fake devices, so it crashes at start-up.
TINY_CONFIG = """
from configs import default
from experiments import report, sweep
from fcn_jax import sweeps


def get_config():
    c = default.get_config("fcn32s")
    c.data.data_dir = {data_dir!r}
    c.data.builder_config = "tiny"
    c.data.crop_size = 32
    c.data.num_threads = 1
    c.data.prefetch = 2
    c.model.width = 0.0625
    c.model.fc_channels = 16
    c.train.batch_size = 4
    c.eval.batch_size = 4
    c.train.num_steps = 2
    c.train.log_every = 1
    c.train.eval_every = 1
    c.train.num_overlays = 0
    return c


SHORTER = {{"optim.schedule": "constant", "train.num_steps": 2}}
SWEEPS = {{
    "grid": lambda: (sweeps.product(sweeps.sweep("optim.learning_rate", [1e-3]),
                                    sweeps.sweep("seed", [0, 1]))
                     + [{{"optim.learning_rate": 3e-3, "seed": 0}}]),
    "broken": lambda: [{{"seed": 0}}, {{"seed": 1, "train.batch_size": 3}}],
    "missing": lambda: [{{"seed": 0, "model.init_from": "workdirs/no/vgg16_classifier.npz"}}],
    # two FCN-32s -> FCN-16s chains; the second's parent crashes at start-up
    "staged": lambda: (sweeps.stages({{"seed": 0}}, {{"model.variant": "fcn16s", "seed": 0}})
                       + sweeps.stages({{"seed": 1, "train.batch_size": 3}},
                                       {{"model.variant": "fcn16s", "seed": 1}})),
    "figure": lambda: sweeps.stages({{"seed": 0}}, {{"model.variant": "fcn16s", "seed": 0}}),
    # a one-trial sweep, and one that holds that trial and another
    "shared": lambda: [{{"seed": 0, "optim.learning_rate": 1e-3}}],
    "overlap": lambda: sweeps.product(sweeps.sweep("seed", [1, 0]),
                                      [{{"optim.learning_rate": 1e-3}}]),
    # a 2-step run trained on to 4, beside the 4-step run (logged every 2 steps, which changes
    # none of its numbers)
    "short": lambda: [SHORTER],
    "longer": lambda: ([SHORTER] + sweeps.lengthened(SHORTER, 4)
                       + [{{**SHORTER, "train.num_steps": 4, "train.log_every": 2}}]),
}}
STUDIES = {{"figure": {{"reference": {{"model.variant": None}},
                       "prediction_grid": {{"32s": {{"model.variant": None}},
                                           "16s": {{"model.variant": "fcn16s"}}}},
                       "coarse_upper_bound": [32, 8, 4]}}}}
"""


def test_axis_helpers_build_products_and_zips():
    lr = sweeps.sweep("optim.learning_rate", [1e-3, 1e-2])
    assert lr == [{"optim.learning_rate": 1e-3}, {"optim.learning_rate": 1e-2}]
    grid = sweeps.product(lr, sweeps.sweep("seed", [0, 1, 2]))
    assert len(grid) == 6
    assert grid[1] == {"optim.learning_rate": 1e-3, "seed": 1}
    paired = sweeps.zip_(lr, sweeps.sweep("train.num_steps", [10, 20]))
    assert paired == [{"optim.learning_rate": 1e-3, "train.num_steps": 10},
                      {"optim.learning_rate": 1e-2, "train.num_steps": 20}]
    with pytest.raises(ValueError, match="different lengths"):
        sweeps.zip_(lr, sweeps.sweep("seed", [0, 1, 2]))
    with pytest.raises(ValueError, match="'seed' is set by two axes"):
        sweeps.product(sweeps.sweep("seed", [0]), sweeps.sweep("seed", [1]))
    with pytest.raises(ValueError, match="no values"):
        sweeps.sweep("seed", [])


def test_overrides_are_applied_and_bad_ones_name_the_key():
    config = default.get_config()
    sweeps.apply_overrides(config, {"optim.learning_rate": 1e-2, "model.variant": "fcn16s",
                                    "model.skip_scales": (0.01, 1e-4), "seed": 3})
    assert (config.optim.learning_rate, config.model.variant, config.seed) == (1e-2, "fcn16s", 3)
    assert tuple(config.model.skip_scales) == (0.01, 1e-4)
    with pytest.raises(ValueError, match="'model.widht'.*'width'"):
        sweeps.apply_overrides(config, {"model.widht": 0.5})
    with pytest.raises(ValueError, match="'modle.width': no section 'modle'"):
        sweeps.apply_overrides(config, {"modle.width": 0.5})
    with pytest.raises(ValueError, match="'optim.learning_rate': cannot set 'fast'"):
        sweeps.apply_overrides(config, {"optim.learning_rate": "fast"})


def test_trial_names_are_short_safe_and_unique():
    trials = sweeps.product(sweeps.sweep("optim.learning_rate", [1e-3]),
                            sweeps.sweep("model.decoder", ["bilinear", "nearest"]))
    names = [name for name, _ in sweeps.name_trials(trials)]
    assert names == ["decoder=bilinear", "decoder=nearest"]
    name = sweeps.trial_name({"model.skip_scales": (0.01, 1e-4), "data.name": "a/b"},
                             ["model.skip_scales", "data.name"])
    assert re.fullmatch(r"[A-Za-z0-9._=,+-]+", name), name
    assert sweeps.trial_name({"a.x": 1, "b.x": 2}, ["a.x", "b.x"]) == "a.x=1,b.x=2"
    long = sweeps.trial_name({"data.name": "z" * 300}, ["data.name"])
    assert len(long) == sweeps.MAX_NAME_LENGTH
    assert long != sweeps.trial_name({"data.name": "z" * 299}, ["data.name"])


def test_ready_made_sweeps_load_and_unknown_names_list_the_available():
    _, trials, _ = sweeps.load_sweep("configs/default.py", "lr_decoder")
    assert {"optim.learning_rate", "model.decoder"} == set(sweeps.swept_keys(trials))
    base, trials, _ = sweeps.load_sweep("configs/default.py:fcn32s", "variant_seed")
    assert base.model.variant == "fcn32s"
    assert {t["model.variant"] for t in trials} == set(default.VARIANTS)
    assert len({t["seed"] for t in trials}) > 1
    with pytest.raises(ValueError,
                       match=r"no sweep 'lr'; available: \['augmentation', 'backbone_lr', "):
        sweeps.load_sweep("configs/default.py", "lr")


@pytest.fixture
def tiny_config_file(tiny_data_dir, tmp_path):
    path = tmp_path / "tiny_sweep.py"
    path.write_text(TINY_CONFIG.format(data_dir=tiny_data_dir))
    return str(path)


def snapshot(trial_dir):
    """What a rerun of a finished trial would change."""
    return (os.path.getmtime(trial_dir / "results.json"),
            (trial_dir / "metrics.jsonl").read_text())


@pytest.mark.slow
def test_sweep_runs_resumes_and_reports(tiny_config_file, tmp_path):
    sweep_dir = tmp_path / "sweep"
    args = ["--config", tiny_config_file, "--sweep", "grid", "--workdir", str(sweep_dir),
            "--parallel", "2", "--config.optim.warmup_steps=0"]
    proc = run_module("experiments.sweep", *args)
    assert proc.returncode == 0, proc.stdout + proc.stderr[-3000:]
    assert "[sweep] 3/3 done, 0 running, 0 failed" in proc.stderr
    names = sorted(os.listdir(sweep_dir))
    trials = ["learning_rate=0.001,seed=0", "learning_rate=0.001,seed=1",
              "learning_rate=0.003,seed=0"]
    assert names == sorted(trials + ["sweep.json", "sweep_status.json"])
    config = json.loads((sweep_dir / trials[1] / "config.json").read_text())
    assert (config["seed"], config["optim"]["learning_rate"]) == (1, 1e-3)
    assert config["optim"]["warmup_steps"] == 0

    # "Kill" one trial after its last checkpoint but before results.json: the rerun must
    # finish only that one and leave the other two untouched.
    (sweep_dir / trials[2] / "results.json").unlink()
    before = {t: snapshot(sweep_dir / t) for t in trials[:2]}
    proc = run_module("experiments.sweep", *args)
    assert proc.returncode == 0, proc.stdout + proc.stderr[-3000:]
    assert {t: snapshot(sweep_dir / t) for t in trials[:2]} == before
    assert (sweep_dir / trials[2] / "results.json").exists()
    assert "resumed from" in (sweep_dir / trials[2] / "log.txt").read_text()
    status = json.loads((sweep_dir / "sweep_status.json").read_text())
    assert status == {trials[0]: "skipped (finished before)",
                      trials[1]: "skipped (finished before)", trials[2]: "finished"}
    code = checkout_version()
    launches = {t: [json.loads(line) for line in
                    (sweep_dir / t / "launches.jsonl").read_text().splitlines()] for t in trials}
    assert [len(launches[t]) for t in trials] == [1, 1, 2]  # the resumed trial twice
    assert {(launch["code"], launch["parallel"]) for t in trials for launch in launches[t]} == {
        (code, 2)}

    proc = run_module("experiments.report", str(sweep_dir))
    assert proc.returncode == 0, proc.stderr[-3000:]
    results = {t: json.loads((sweep_dir / t / "results.json").read_text())["metrics"]
               for t in trials}
    rows = {line.split("|")[1].strip(): [c.strip() for c in line.split("|")[2:-1]]
            for line in (sweep_dir / "report.md").read_text().splitlines()
            if re.match(r"\| 0\.00", line)}
    mean_iu = [results[t]["mean_iu"] for t in trials[:2]]
    mean = sum(mean_iu) / 2
    std = abs(mean_iu[0] - mean_iu[1]) / 2 ** 0.5
    assert rows["0.001"][:1] == ["2"]
    assert rows["0.001"][3] == f"{mean:.2f} ± {std:.2f}"
    assert rows["0.003"][:5] == ["1"] + [f"{results[trials[2]][m]:.2f}"
                                         for m in ("pixel_acc", "mean_acc", "mean_iu", "fw_iu")]
    boundary_f = json.loads((sweep_dir / trials[2] / "results.json").read_text())["boundary_f"]
    assert rows["0.003"][5] == f"{boundary_f:.2f}"
    assert float(rows["0.003"][6]) > 0  # s/step
    assert sorted(os.listdir(sweep_dir / "figures")) == [
        "confusion_best.png", "learning_curves.png", "mean_iu_vs_optim.learning_rate.png"]
    assert (f"Code (`git describe` at each trial's launch): `{code}` (3 trials); up to 2 "
            "trials at a time.") in (sweep_dir / "report.md").read_text()
    assert json.loads((sweep_dir / "report.json").read_text())["code_versions"] == {code: 3}


def checkout_version() -> str:
    """This checkout's commit, abbreviated to 12 digits, "-dirty" with uncommitted changes to
    tracked files ("unknown" outside a git checkout), computed apart from the sweep runner."""
    head = subprocess.run(["git", "rev-parse", "--short=12", "HEAD"], cwd=ROOT,
                          capture_output=True, text=True)
    if head.returncode != 0:
        return "unknown"
    dirty = subprocess.run(["git", "diff", "--quiet", "HEAD"], cwd=ROOT).returncode != 0
    return head.stdout.strip() + "-dirty" * dirty


@pytest.mark.slow
def test_a_failing_trial_is_reported_and_the_others_finish(tiny_config_file, tmp_path):
    sweep_dir = tmp_path / "sweep"
    proc = run_module("experiments.sweep", "--config", tiny_config_file, "--sweep", "broken",
                      "--workdir", str(sweep_dir))
    assert proc.returncode == 1
    assert "1 of 2 trials failed" in proc.stderr
    assert "seed=1,batch_size=3: failed (exit code 2)" in proc.stdout
    assert (sweep_dir / "seed=0" / "results.json").exists()
    assert "batch" in (sweep_dir / "seed=1,batch_size=3" / "log.txt").read_text()
    proc = run_module("experiments.report", str(sweep_dir))
    assert "Not finished: `seed=1,batch_size=3` (failed)" in proc.stdout


def test_emit_commands_writes_one_line_per_unfinished_trial(tiny_config_file, tmp_path):
    commands = tmp_path / "commands.txt"
    proc = run_module("experiments.sweep", "--config", tiny_config_file, "--sweep", "grid",
                      "--workdir", str(tmp_path / "sweep"), "--emit-commands", str(commands))
    assert proc.returncode == 0, proc.stderr[-3000:]
    lines = commands.read_text().splitlines()
    assert len(lines) == 3
    assert "fcn_jax.main" in lines[0] and "--config.seed=0" in lines[0]
    assert "learning_rate=0.003,seed=0/log.txt" in lines[2]


def test_an_unknown_override_fails_before_any_trial(tiny_config_file, tmp_path):
    proc = run_module("experiments.sweep", "--config", tiny_config_file, "--sweep", "grid",
                      "--workdir", str(tmp_path / "sweep"), "--config.model.widht=1")
    assert proc.returncode == 2
    assert "unknown config key 'model.widht'" in proc.stderr
    assert not (tmp_path / "sweep").exists()


@pytest.mark.slow
def test_a_staged_trial_starts_from_its_parents_workdir_after_it(tiny_config_file, tmp_path):
    sweep_dir = tmp_path / "sweep"
    args = ["--config", tiny_config_file, "--sweep", "staged", "--workdir", str(sweep_dir)]
    commands = tmp_path / "commands.txt"
    proc = run_module("experiments.sweep", *args, "--emit-commands", str(commands))
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "wrote 2 commands" in proc.stdout and "2 staged trials wait" in proc.stdout
    assert all("fcn16s" not in line for line in commands.read_text().splitlines())

    proc = run_module("experiments.sweep", *args, "--parallel", "2")
    assert proc.returncode == 1
    assert "1 of 4 trials failed, 1 not started after their parent" in proc.stderr
    parent, child = sweep_dir / "seed=0", sweep_dir / "seed=0,variant=fcn16s"
    status = json.loads((sweep_dir / "sweep_status.json").read_text())
    assert status[child.name] == "finished"
    assert status["seed=1,variant=fcn16s"] == (
        "not started (its parent seed=1,batch_size=3 did not finish)")
    assert not (sweep_dir / "seed=1,variant=fcn16s" / "log.txt").exists()
    config = json.loads((child / "config.json").read_text())
    assert config["model"]["init_from"] == str(parent)
    assert config["model"]["variant"] == "fcn16s"
    # the child began after its parent wrote its results, and its log says what it loaded
    assert os.path.getmtime(parent / "results.json") <= os.path.getmtime(child / "config.json")
    assert str(parent) in (child / "log.txt").read_text()
    manifest = json.loads((sweep_dir / "sweep.json").read_text())
    assert {t["name"]: t["parent"] for t in manifest["trials"]}[child.name] == parent.name

    # once the finished chain is done, an emit lists only the failed parent (its child waits)
    proc = run_module("experiments.sweep", *args, "--emit-commands", str(commands))
    assert "wrote 1 commands" in proc.stdout and "1 staged trials wait" in proc.stdout

    # a child left unfinished after its parent finished in an earlier run resumes on a rerun
    (child / "results.json").unlink()
    proc = run_module("experiments.sweep", *args)
    status = json.loads((sweep_dir / "sweep_status.json").read_text())
    assert status[parent.name] == "skipped (finished before)"
    assert status[child.name] == "finished"
    assert "resumed from" in (child / "log.txt").read_text()


@pytest.mark.slow
def test_a_longer_run_continues_the_shorter_ones_workdir_and_equals_the_direct_run(
        tiny_config_file, tmp_path):
    short_sweep = tmp_path / "short"
    proc = run_module("experiments.sweep", "--config", tiny_config_file, "--sweep", "short",
                      "--workdir", str(short_sweep))
    assert proc.returncode == 0, proc.stderr[-3000:]
    sweep_dir = tmp_path / "sweep"  # the shorter run copied from there, the longer trained
    args = ["--config", tiny_config_file, "--sweep", "longer", "--workdir", str(sweep_dir),
            "--reuse-from", str(short_sweep)]
    proc = run_module("experiments.sweep", *args, "--parallel", "2")
    assert proc.returncode == 0, proc.stderr[-3000:]
    shorter, longer = sweep_dir / "num_steps=2", sweep_dir / "num_steps=4"
    status = json.loads((sweep_dir / "sweep_status.json").read_text())
    copied = short_sweep / "schedule=constant,num_steps=2"
    assert status == {shorter.name: f"reused (copied from {copied})",
                      longer.name: "finished", "num_steps=4,log_every=2": "finished"}
    direct = sweep_dir / "num_steps=4,log_every=2"
    config = json.loads((longer / "config.json").read_text())
    assert config["train"]["continue_from"] == str(shorter)
    assert f"continuing {shorter} from its step 2" in (longer / "log.txt").read_text()
    assert os.path.getmtime(shorter / "results.json") <= os.path.getmtime(longer / "config.json")
    results = [json.loads((d / "results.json").read_text()) for d in (longer, direct)]
    assert results[0]["metrics"] == results[1]["metrics"]
    assert [r["step"] for r in read_metrics(str(longer)) if r["split"] == "eval"] == [1, 2, 3, 4]
    # another sweep of these runs copies all three, the longer run too (it is the straight run)
    args = ["--config", tiny_config_file, "--sweep", "longer", "--workdir",
            str(tmp_path / "again"), "--reuse-from", str(sweep_dir)]
    proc = run_module("experiments.sweep", *args)
    assert "3 trials copied" in proc.stdout, proc.stderr[-3000:]
    status = json.loads((tmp_path / "again" / "sweep_status.json").read_text())
    assert status["num_steps=4"] == f"reused (copied from {longer})"


@pytest.mark.slow
def test_a_trial_another_sweep_finished_is_copied_not_trained(tiny_config_file, tmp_path):
    studies = tmp_path / "studies"
    first = ["--config", tiny_config_file, "--sweep", "shared", "--workdir",
             str(studies / "shared")]
    assert run_module("experiments.sweep", *first).returncode == 0
    source = studies / "shared" / "seed=0,learning_rate=0.001"
    args = ["--config", tiny_config_file, "--sweep", "overlap", "--workdir",
            str(studies / "overlap"), "--reuse-from", str(studies)]
    proc = run_module("experiments.sweep", *args)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "1 trials copied from finished trials of other sweeps" in proc.stdout
    status = json.loads((studies / "overlap" / "sweep_status.json").read_text())
    assert status == {"seed=1": "finished", "seed=0": f"reused (copied from {source})"}
    copied = studies / "overlap" / "seed=0"
    for name in ("results.json", "metrics.jsonl", "launches.jsonl", "config.json"):
        assert (copied / name).read_bytes() == (source / name).read_bytes(), name
    assert json.loads((copied / "trial.json").read_text())["workdir"] == str(copied)
    launches = [json.loads(line) for line in (copied / "launches.jsonl").read_text().splitlines()]
    assert [launch["init_sha256"] for launch in launches] == [None]  # no start file
    assert run_module("experiments.report", str(studies / "overlap")).returncode == 0
    assert ("up to 1 trials at a time; 1 of them copied from another sweep's runs."
            in (studies / "overlap" / "report.md").read_text())
    # the copy is a finished trial: a rerun skips it, and its source is left as it was
    proc = run_module("experiments.sweep", *args)
    status = json.loads((studies / "overlap" / "sweep_status.json").read_text())
    assert set(status.values()) == {"skipped (finished before)"}


@pytest.mark.parametrize("first, second, shared, second_trials", [
    ("skips", "convergence", 2 * 5, 4 * 5),  # FCN-32s at 1000 and 2000 steps
    ("balancing", "augmentation", 5, 10),    # FCN-8s, the default augmentation, unweighted
    ("balancing", "data_size", 5, 10),       # ... on all the training scenes
    ("upsampling", "precision", 5, 10),      # FCN-8s, fixed bilinear, float32
    ("sgd_lr", "learning_regime", 1, 10)])   # FCN-32s, SGD at 0.01, batch 16, seed 0
def test_studies_share_their_common_runs(first, second, shared, second_trials, tmp_path):
    """docs/experiments.md, Trials other sweeps already ran: the runs two studies have in
    common are the same resolved configs once the paths they start from are left out, from
    one file, so ``--reuse-from`` trains them once."""
    resolved = {}
    for name in (first, second):
        args = sweep.parse_args(["--config", "configs/default.py", "--sweep", name,
                                 "--workdir", str(tmp_path / name)])
        records = sweep.prepare(args)
        resolved[name] = [json.dumps(reuse.without_start(args.resolved[r["name"]]),
                                     sort_keys=True)
                          for r in records if not sweep.is_staged(r)]
        digests = {sweep.start_digest(r) for r in records if not sweep.is_staged(r)}
        assert len(digests) == 1 and None not in digests  # the classifier, made or not
    assert len(set(resolved[first]) & set(resolved[second])) == shared
    assert len(resolved[second]) == second_trials


def test_a_copied_trial_needs_the_same_resolved_config_and_start_file(tmp_path):
    config = {"seed": 0, "model": {"init_from": "a.npz", "width": 0.125},
              "train": {"continue_from": ""}}
    finished = [("w1", reuse.without_start({**config, "seed": 1}), {"abc"}),
                ("w2", reuse.without_start({**config, "model": {"init_from": "b.npz",
                                                                "width": 0.125},
                                            "train": {"continue_from": "shorter"}}), {"abc"})]
    assert reuse.match(config, "abc", finished) == "w2"  # the same start by other paths
    assert reuse.match(config, "abd", finished) is None  # other contents
    assert reuse.match({**config, "seed": 2}, "abc", finished) is None
    assert reuse.match(config, "abc", [("w3", finished[1][1], {"abc", "abd"})]) is None
    weights = tmp_path / "w.npz"
    weights.write_bytes(b"weights")
    assert reuse.file_digest(str(weights)) == hashlib.sha256(b"weights").hexdigest()
    assert reuse.file_digest("") is None
    with pytest.raises(FileNotFoundError, match="no-such-dir: no such directory"):
        reuse.sweep_dirs(str(tmp_path / "no-such-dir"))
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "sweep.json").write_text("{}")
    with pytest.raises(ValueError, match=r"other/sweep.json is not a sweep's manifest"):
        reuse.finished_trials([str(tmp_path)], str(tmp_path / "own"))


def test_a_longer_run_changes_only_the_step_count_of_the_run_it_continues():
    shorter = {"seed": 0, "train.num_steps": 2}
    named = sweeps.name_trials([shorter, *sweeps.lengthened(shorter, 4, 6)])
    assert sweeps.parent_names(named) == {"num_steps=4": "num_steps=2",
                                          "num_steps=6": "num_steps=4"}
    assert sweeps.parent_links(named)["num_steps=6"] == {sweeps.CONTINUE_KEY: "num_steps=4"}
    other = {**shorter, "train.num_steps": 4, "seed": 1, sweeps.CONTINUES: shorter}
    fewer = {**shorter, "train.num_steps": 1, sweeps.CONTINUES: shorter}
    for bad in (other, fewer):
        with pytest.raises(ValueError, match="must differ from that trial only in a larger "
                                             "train.num_steps"):
            sweeps.parent_links(sweeps.name_trials([shorter, bad]))


def test_stage_links_name_a_trial_of_the_sweep():
    chain = sweeps.stages({"seed": 0}, {"model.variant": "fcn16s"}, {"model.variant": "fcn8s"})
    assert chain[2][sweeps.PARENT] == {"model.variant": "fcn16s"}
    named = sweeps.name_trials(chain)
    assert sweeps.parent_names(named) == {"variant=fcn16s": "seed=0",
                                          "variant=fcn8s": "variant=fcn16s"}
    orphan = [{"seed": 0}, {"seed": 1, sweeps.PARENT: {"seed": 2}}]
    with pytest.raises(ValueError, match=r"its parent \{'seed': 2\} is not a trial"):
        sweeps.parent_names(sweeps.name_trials(orphan))
    both = [{"seed": 0}, {"seed": 1, sweeps.PARENT: {"seed": 0}, sweeps.INIT_KEY: "x.npz"}]
    with pytest.raises(ValueError, match="sets both @parent and model.init_from"):
        sweeps.parent_names(sweeps.name_trials(both))
    cycle = [{"seed": 0, sweeps.PARENT: {"seed": 1}}, {"seed": 1, sweeps.PARENT: {"seed": 0}}]
    with pytest.raises(ValueError, match="is a cycle"):
        sweeps.parent_names(sweeps.name_trials(cycle))


def steps_in_all(named: dict, links: dict, name: str) -> int:
    """A trial's steps from the classifier: its own, and its parent's in all (a longer run's
    own count already holds the steps of the run it continues)."""
    parent = links.get(name, {}).get(sweeps.INIT_KEY)
    return named[name]["train.num_steps"] + (steps_in_all(named, links, parent) if parent else 0)


def test_the_paper_studies_load_with_their_chains_and_arms():
    _, trials, study = sweeps.load_sweep("configs/default.py", "skips")
    assert len(trials) == 10 * 5
    named = dict(sweeps.name_trials(trials))
    links = sweeps.parent_links(list(named.items()))
    for child, linked in links.items():
        for key, parent in linked.items():
            assert named[parent]["seed"] == named[child]["seed"]
            if key == sweeps.CONTINUE_KEY:  # the same run, trained further
                assert named[parent]["train.num_steps"] < named[child]["train.num_steps"]
                assert ({**sweeps.config_overrides(named[parent]), "train.num_steps": 0}
                        == {**sweeps.config_overrides(named[child]), "train.num_steps": 0})
                continue
            variants = (named[parent]["model.variant"], named[child]["model.variant"],
                        named[child].get("model.shift_stitch"))
            assert variants in {("fcn32s", "fcn16s", None), ("fcn16s", "fcn8s", None),
                                ("fcn32s", "fcn32s", 2)}
            assert "optim.train_only" not in named[parent]
            assert "model.shift_stitch" not in named[parent]
    assert sorted(len(linked) for linked in links.values()) == [1] * 6 * 5 + [2] * 5
    stitched_only = [t for t in trials if t.get("train.num_steps") == 0]
    assert len(stitched_only) == 5 and all(t["model.shift_stitch"] == 2 for t in stitched_only)
    arms = [study["reference"]] + [c["arm"] for c in study["claims"]]
    arms += [c["versus"] for c in study["claims"] if "versus" in c]
    for arm in arms:
        assert sum(sweeps.matches(t, arm) for t in trials) == 5, arm
    for claim in study["claims"]:  # every pair trained as long in all, stitching aside
        arm, versus = claim["arm"], claim.get("versus", study["reference"])
        steps = [{steps_in_all(named, links, name) for name, t in named.items()
                  if sweeps.matches(t, a)} for a in (arm, versus)]
        if arm.get("train.num_steps") != 0:  # stitched at inference: its parent's steps
            assert len(steps[0]) == 1 and steps[0] == steps[1], (claim["paper"], steps)
    for name in ("pretraining", "upsampling"):
        _, trials, study = sweeps.load_sweep("configs/default.py", name)
        assert [sum(sweeps.matches(t, c["arm"]) for t in trials)
                for c in study["claims"]] == [5], name


STUDY_CONFIG = """
from configs import default
from experiments import report, sweep
from fcn_jax import sweeps

get_config = default.get_config
SWEEPS = {{"s": lambda: sweeps.product(sweeps.sweep("model.variant", ["fcn32s", "fcn8s"]),
                                       sweeps.sweep("seed", [0, 1]))}}
STUDIES = {{"s": {study}}}
"""


@pytest.mark.parametrize("study, error", [
    ('{"reference": {"model.variant": "fcn16s"}}',
     r"the reference arm \{'model.variant': 'fcn16s'\} matches 0 settings of the sweep, not one$"),
    ('{"reference": {}}',
     r"the reference arm \{\} matches 2 settings of the sweep, not one: name more of their"),
    ('{"reference": {"model.width": 0.125}}',
     r"names keys the sweep does not vary \(\['model.width'\]\); the swept ones: "
     r"\['model.variant'\]"),
    ('{"reference": {"model.variant": "fcn8s"}, "claims": [{"arm": {"model.variant": "fcn32s"}, '
     '"expect": "better", "paper": "p"}]}',
     r"claim 'p' expects 'better'; expected one of \('higher', 'lower', 'same'\)"),
    ('{"reference": {"model.variant": "fcn8s"}, "claims": [{"arm": {"model.variant": "fcn32s"}, '
     '"expect": "same", "paper": "p", "vs": {}}]}',
     r"claim 'p' has fields \['arm', 'expect', 'paper', 'vs'\]; expected arm, expect, paper"),
    ('{"reference": {"model.variant": "fcn8s"}, "claims": [{"arm": {"model.variant": "fcn32s"}, '
     '"paper": "p"}]}', r"claim 'p' has fields \['arm', 'paper'\]"),
    ('{"referense": {}}', r"study fields \['referense'\]; expected 'reference'"),
    ('{"reference": {"model.variant": "fcn8s"}, "prediction_grid": {"16s": '
     '{"model.variant": "fcn16s"}}}',
     r"the prediction_grid '16s' arm \{'model.variant': 'fcn16s'\} matches 0 settings"),
    ('{"reference": {"model.variant": "fcn8s"}, "prediction_grid": [{"model.variant": "fcn8s"}]}',
     r"prediction_grid \[\{'model.variant': 'fcn8s'\}\]; expected \{column title: arm\}"),
    ('{"reference": {"model.variant": "fcn8s"}, "coarse_upper_bound": [32, 0]}',
     r"coarse_upper_bound \[32, 0\]; expected strides \(ints >= 1\)"),
    ('{"reference": {"model.variant": "fcn8s"}, "value_names": {"seed": [[0, "first"]]}}',
     r"value_names names 'seed', which the sweep does not vary; the swept keys: "
     r"\['model.variant'\]$"),
    ('{"reference": {"model.variant": "fcn8s"}, "value_names": {"model.variant": {"fcn8s": "8"}}}',
     r"value_names\['model.variant'\] \{'fcn8s': '8'\}; expected \[\[value, name\], ...\]"),
    ('{"reference": {"model.variant": "fcn8s"}, "value_names": {"model.variant": '
     '[["fcn16s", "16"]]}}',
     r"expected distinct names of values the sweep has: \['fcn32s', 'fcn8s'\]$"),
    ('{"reference": {"model.variant": "fcn8s"}, "value_names": {"model.variant": '
     '[["fcn8s", "x"], ["fcn32s", "x"]]}}', r"expected distinct names of values the sweep"),
])
def test_a_bad_study_is_one_line_before_any_trial(study, error, tmp_path):
    path = tmp_path / "study.py"
    path.write_text(STUDY_CONFIG.format(study=study))
    proc = run_module("experiments.sweep", "--config", str(path), "--sweep", "s",
                      "--workdir", str(tmp_path / "sweep"))
    assert proc.returncode == 2
    assert re.search(error, proc.stderr), proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "sweep").exists()


def fake_study_dir(path, values: dict, study: dict):
    """A sweep directory of finished trials with the given mean IU per (variant, seed)."""
    trials = []
    for (variant, seed), mean_iu in values.items():
        name = f"variant={variant},seed={seed}"
        trials.append({"name": name, "overrides": {"model.variant": variant, "seed": seed},
                       "parent": None})
        os.makedirs(path / name)
        metrics = {"pixel_acc": 90.0, "mean_acc": 70.0, "mean_iu": mean_iu, "fw_iu": 80.0}
        (path / name / "results.json").write_text(json.dumps(
            {"split": "validation", "metrics": metrics, "boundary_f": 50.0,
             "confusion": [[5, 1], [2, 7]]}))
    (path / "sweep.json").write_text(json.dumps(
        {"config": "c.py", "sweep": "s", "common_overrides": {}, "study": study,
         "swept_keys": ["model.variant", "seed"], "trials": trials}))


def test_the_study_report_gives_paired_intervals_and_claim_verdicts(tmp_path):
    rng = np.random.default_rng(0)
    base = rng.uniform(20, 40, 5)
    arms = {"fcn32s": base, "fcn16s": base + 3 + rng.normal(0, 0.5, 5),
            "fcn8s": np.array([0.1, -0.1, 0.2, -0.2, 0.0]), "atonce": base - rng.uniform(1, 2, 5)}
    arms["fcn8s"] = arms["fcn16s"] + arms["fcn8s"]
    # pairing is by seed: one arm listed in reverse, the reference with a seed no other arm has
    values = {(v, s): float(x[s]) for v, x in arms.items()
              for s in (range(4, -1, -1) if v == "fcn16s" else range(5))}
    values[("fcn32s", 7)] = 99.0
    study = {"reference": {"model.variant": "fcn32s"}, "claims": [
        {"arm": {"model.variant": "fcn16s"}, "expect": "higher", "paper": "16s > 32s"},
        {"arm": {"model.variant": "fcn8s"}, "versus": {"model.variant": "fcn16s"},
         "expect": "same", "paper": "8s = 16s"},
        {"arm": {"model.variant": "atonce"}, "expect": "higher", "paper": "at-once > 32s"}]}
    fake_study_dir(tmp_path, values, study)
    proc = run_module("experiments.report", str(tmp_path))
    assert proc.returncode == 0, proc.stderr[-3000:]
    payload = json.loads((tmp_path / "report.json").read_text())["study"]
    for claim, (arm, versus) in zip(payload["claims"], [("fcn16s", "fcn32s"),
                                                         ("fcn8s", "fcn16s"),
                                                         ("atonce", "fcn32s")]):
        # scipy's paired t-test gives the same interval by another route
        test = stats.ttest_rel(arms[arm], arms[versus])
        low, high = test.confidence_interval(0.95)
        got = claim["difference"]
        assert got["seeds"] == 5
        np.testing.assert_allclose([got["mean"], got["low"], got["high"]],
                                   [np.mean(arms[arm] - arms[versus]), low, high], rtol=1e-9)
        assert got["std"] == pytest.approx(np.std(arms[arm] - arms[versus], ddof=1))
    verdicts = [c["agrees"] for c in payload["claims"]]
    assert verdicts == ["yes: higher", "yes: within ±1", "no: lower"]
    markdown = (tmp_path / "report.md").read_text()
    assert "| 16s > 32s | variant=fcn16s minus variant=fcn32s | +" in markdown
    assert "| at-once > 32s |" in markdown and "| no: lower |" in markdown
    assert len(payload["differences"]) == 3


def test_a_study_names_its_values_in_the_report_tables_and_figure(tmp_path, monkeypatch):
    values = {(v, s): x + s for v, x in (("fcn8s", 30.0), ("fcn32s", 20.0)) for s in range(2)}
    study = {"reference": {"model.variant": "fcn8s"}, "value_names": {"model.variant": [
        ["fcn32s", "coarse"]]}, "claims": [{"arm": {"model.variant": "fcn32s"},
                                            "expect": "lower", "paper": "p"}]}
    fake_study_dir(tmp_path, values, study)
    assert report.main([str(tmp_path)]) == 0
    markdown = (tmp_path / "report.md").read_text()
    assert "| coarse | 2 |" in markdown and "| fcn8s | 2 |" in markdown  # the unnamed stays
    assert "| p | variant=coarse minus variant=fcn8s | -10.00 ± 0.00 |" in markdown
    # the figure keeps the sweep's order of named values (fcn8s first), ticks by name
    figures = []
    monkeypatch.setattr(report.plt, "close", figures.append)
    manifest, trials = report.load_trials(str(tmp_path))
    report.plot_metric_vs_key(str(tmp_path / "f.png"), "model.variant", ["model.variant", "seed"],
                              trials, study["value_names"]["model.variant"])
    ticks = [t.get_text() for t in figures[0].axes[0].get_xticklabels()]
    assert ticks == ["fcn8s", "coarse"]
    assert report.sorted_values([32, 8, 16]) == [8, 16, 32]
    assert report.sorted_values([32, 8, 32], keep_order=True) == [32, 8]


def test_a_study_arm_without_finished_trials_is_one_line(tmp_path):
    values = {("fcn32s", s): 30.0 + s for s in range(3)}
    fake_study_dir(tmp_path, values, {"reference": {"model.variant": "fcn16s"}, "claims": []})
    proc = run_module("experiments.report", str(tmp_path))
    assert proc.returncode == 2
    assert proc.stderr.strip() == (
        "error: the study's reference arm {'model.variant': 'fcn16s'} matches no finished "
        "trial: run the sweep to the end (experiments.sweep resumes it), then report again")


def test_a_missing_start_file_stops_the_sweep_before_any_trial(tiny_config_file, tmp_path):
    proc = run_module("experiments.sweep", "--config", tiny_config_file, "--sweep", "missing",
                      "--workdir", str(tmp_path / "sweep"))
    assert proc.returncode == 2
    assert proc.stderr.strip() == (
        "error: trial seed=0,init_from=workdirs_no_vgg16_classifier.npz: "
        "model.init_from='workdirs/no/vgg16_classifier.npz' does not exist "
        f"(make classifier writes it); relative paths are from {ROOT}")
    assert not list((tmp_path / "sweep").glob("*/log.txt"))


@pytest.mark.parametrize("sweep, ready, waiting", [("sgd_lr", 4, 0), ("convergence", 5, 15),
                                                   ("pretraining", 10, 0),
                                                   ("skips", 15, 35), ("upsampling", 25, 0),
                                                   ("loss_sampling", 15, 0), ("balancing", 10, 0),
                                                   ("augmentation", 10, 0), ("data_size", 10, 0),
                                                   ("precision", 10, 0),
                                                   ("learning_regime", 10, 0),
                                                   ("backbones", 15, 0),
                                                   ("backbone_lr", 12, 0)])
def test_the_documented_study_commands_emit_their_trials(sweep, ready, waiting, tmp_path):
    """docs/experiments.md, Studies: the commands as documented, emitting instead of training."""
    commands = tmp_path / "commands.txt"
    proc = run_module("experiments.sweep", "--config", "configs/default.py", "--sweep", sweep,
                      "--workdir", str(tmp_path / sweep), "--emit-commands", str(commands))
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert len(commands.read_text().splitlines()) == ready
    assert (f"{waiting} staged trials wait" in proc.stdout) == bool(waiting)


@pytest.mark.parametrize("expect, low, high, margin, answer", [
    ("higher", 0.5, 2.0, 1.0, "yes: higher"),
    ("higher", -2.0, -0.5, 1.0, "no: lower"),
    ("lower", -2.0, -0.5, 1.0, "yes: lower"),
    ("lower", -0.5, 2.0, 1.0, "not separated (the interval contains 0)"),
    ("same", -0.8, 0.9, 1.0, "yes: within ±1"),
    ("same", 0.2, 0.6, 1.0, "yes: within ±1"),      # significant, but within the margin
    ("same", -3.0, 0.5, 1.0, "not separated: the interval is wider than ±1"),
    ("same", -0.8, 0.9, 0.5, "not separated: the interval is wider than ±0.5"),
    ("same", 1.5, 3.0, 1.0, "no: higher"),
])
def test_claim_verdicts_follow_the_interval(expect, low, high, margin, answer):
    assert report.verdict(expect, {"mean": (low + high) / 2, "low": low, "high": high},
                          margin) == answer
    assert report.verdict(expect, {"mean": 1.0, "seeds": 1}) == "too few seeds to tell"


def fake_record(tmp_path, name, parent, exit_status, seed=0, **overrides):
    """A trial that appends its name to tmp_path/started, then exits with ``exit_status``."""
    workdir = tmp_path / name
    workdir.mkdir()
    code = (f"open({str(tmp_path / 'started')!r}, 'a').write({name!r} + ' '); "
            f"import sys; sys.exit({exit_status})")
    return {"name": name, "parent": parent, "workdir": str(workdir), "init_from": "",
            "overrides": {"seed": seed, **overrides}, "command": [sys.executable, "-c", code]}


def test_every_arm_runs_its_first_seed_before_any_arm_its_second(tmp_path):
    """An arm's later seeds then find the programs its first seed compiled in the cache."""
    records = [fake_record(tmp_path, f"{arm}{seed}", None, 0, seed, **{"model.variant": arm})
               for arm in "abc" for seed in (0, 1)]
    sweep.run_trials(records, parallel=1, workdir=str(tmp_path), reused={})
    assert (tmp_path / "started").read_text().split() == ["a0", "b0", "c0", "a1", "b1", "c1"]


def test_a_line_search_runs_the_first_rate_of_every_net_first(tmp_path):
    """Rates, like seeds, are inputs of the compiled step: run two at a time, the second
    rate of a net would otherwise compile its program beside the first."""
    records = [fake_record(tmp_path, f"{net}{rate}", None, 0, 0,
                           **{"model.backbone": net, "optim.learning_rate": rate})
               for net in ("vgg", "alex") for rate in (0.1, 0.2, 0.3)]
    sweep.run_trials(records, parallel=1, workdir=str(tmp_path), reused={})
    assert (tmp_path / "started").read_text().split() == [
        "vgg0.1", "alex0.1", "vgg0.2", "alex0.2", "vgg0.3", "alex0.3"]


def test_a_trial_waits_while_its_program_compiles_if_another_can_run(tmp_path):
    """a1 shares a0's program, which a0 is still compiling (it runs until b1 has started):
    b1, whose program b0 compiled, runs first; a1 then loads a0's program."""
    records = [fake_record(tmp_path, name, None, 0, seed, **{"model.variant": name[0]})
               for name, seed in (("a0", 0), ("b0", 0), ("a1", 1), ("b1", 1))]
    records[0]["command"][-1] = (
        f"import os, sys, time; deadline, started = time.monotonic() + 60, {str(tmp_path / 'started')!r}\n"
        "while not os.path.exists(started) or 'b1' not in open(started).read():\n"
        "    time.sleep(0.05)\n"
        "    if time.monotonic() > deadline: sys.exit(4)\n" + records[0]["command"][-1])
    for record in records:  # each finishes: writes its results before exiting
        results = os.path.join(record["workdir"], "results.json")
        record["command"][-1] = f"open({results!r}, 'w').close(); " + record["command"][-1]
    status = sweep.run_trials(records, parallel=2, workdir=str(tmp_path), reused={})
    assert set(status.values()) == {"finished"}
    assert (tmp_path / "started").read_text().split() == ["b0", "b1", "a0", "a1"]


def test_trials_share_the_sweeps_compilation_cache_unless_one_is_named(tmp_path, monkeypatch):
    monkeypatch.delenv("JAX_COMPILATION_CACHE_DIR", raising=False)
    env = sweep.trial_environment(str(tmp_path))
    assert env["JAX_COMPILATION_CACHE_DIR"] == str(tmp_path / "jax_cache")
    assert float(env["JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS"]) < 1  # jax's default: 1 s
    assert int(env["JAX_COMPILATION_CACHE_MAX_SIZE"]) > 0  # the file lock, for --parallel
    monkeypatch.setenv("JAX_COMPILATION_CACHE_DIR", "/elsewhere")
    monkeypatch.setenv("JAX_COMPILATION_CACHE_MAX_SIZE", "5")
    assert sweep.trial_environment(str(tmp_path)) == dict(os.environ)


@pytest.mark.parametrize("parent_exit, child_status, code", [
    (75, "not started (its parent a was interrupted)", 75),
    (3, "not started (its parent a did not finish)", 1)])
def test_a_chain_after_an_interrupted_or_failed_parent(parent_exit, child_status, code,
                                                       tmp_path, capsys):
    records = [fake_record(tmp_path, "a", None, parent_exit),
               fake_record(tmp_path, "b", "a", 0), fake_record(tmp_path, "c", "b", 0),
               fake_record(tmp_path, "other", None, 3)]
    status = sweep.run_trials(records, parallel=2, workdir=str(tmp_path), reused={})
    assert status["b"] == child_status
    assert status["c"] == child_status.replace("parent a", "parent b")
    assert not (tmp_path / "b" / "log.txt").exists()
    assert status["other"].startswith("failed (exit code 3)")
    del status["other"]
    assert sweep.exit_code(status) == code


def numpy_coarse_mean_iu(labels: list, factor: int, num_classes: int) -> float:
    """The appendix's upper bound by loops: each f x f block's most frequent valid label (the
    smallest on ties), confusion by bincount, mean IU over classes present."""
    hist = np.zeros((num_classes, num_classes), np.int64)
    for label in labels:
        coarse = np.full_like(label, 255)
        for top in range(0, label.shape[0], factor):
            for left in range(0, label.shape[1], factor):
                block = label[top:top + factor, left:left + factor]
                valid = block[block != 255]
                if valid.size:
                    coarse[top:top + factor, left:left + factor] = np.bincount(valid).argmax()
        keep = label != 255
        hist += np.bincount(num_classes * label[keep].astype(np.int64) + coarse[keep],
                            minlength=num_classes ** 2).reshape(num_classes, num_classes)
    iu = np.diag(hist) / (hist.sum(0) + hist.sum(1) - np.diag(hist))
    return 100 * float(np.nanmean(iu))


@pytest.mark.slow
def test_a_study_report_draws_its_prediction_grid_and_coarse_upper_bound(
        tiny_config_file, tiny_data_dir, tmp_path):
    """docs/experiments.md's ``make studies`` (its classifier prerequisite taken as made): the paper's
    Figure 4 from the study's own trials, and the appendix's upper bound against a
    loop-by-loop numpy computation on the same validation labels."""
    sweep_dir, docs = tmp_path / "studies" / "figure", tmp_path / "docs"
    proc = subprocess.run(
        ["make", "-o", "classifier", "studies", f"PY={sys.executable}", "STUDIES=figure",
         "PARALLEL=2",
         f"CONFIG={tiny_config_file}", f"STUDIES_DIR={tmp_path / 'studies'}",
         f"STUDY_DOCS={docs}"], cwd=ROOT, capture_output=True, text=True, timeout=600,
        env=dict(os.environ, JAX_PLATFORMS="cpu"))
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "fcn_jax.pretrain" not in proc.stdout  # no classifier trained for this study
    assert sorted(p.name for p in (docs / "study_figure").iterdir()) == [
        "figures", "report.json", "report.md"]
    study = json.loads((sweep_dir / "report.json").read_text())["study"]
    assert study["prediction_grid"] == {"32s": "trial", "16s": "variant=fcn16s"}
    assert (sweep_dir / "figures" / "prediction_grid.png").stat().st_size > 10_000
    config = default.get_config()
    config.data.data_dir, config.data.builder_config = tiny_data_dir, "tiny"
    dataset = data.build(config)
    source = dataset.split(config.data.eval_split)
    labels = [pipeline.decode(source[i])[1] for i in range(len(source))]
    expected = {str(f): numpy_coarse_mean_iu(labels, f, dataset.num_classes) for f in (32, 8, 4)}
    assert study["coarse_upper_bound"] == pytest.approx(expected, abs=1e-6)
    assert expected["4"] > expected["32"]
    markdown = (sweep_dir / "report.md").read_text()
    assert "| mean IU | " + " | ".join(f"{expected[f]:.1f}" for f in ("32", "8", "4")) in markdown
    assert "![prediction grid](figures/prediction_grid.png)" in markdown


def test_coarse_labels_take_the_most_frequent_valid_label_per_block():
    labels = np.array([[[1, 1, 2, 255, 0],
                        [1, 2, 2, 255, 0],
                        [255, 255, 3, 3, 0]]], np.uint8)
    got = study_figures.coarse_labels(labels, 2, 4)
    want = np.array([[[1, 1, 2, 2, 0],
                      [1, 1, 2, 2, 0],
                      [255, 255, 3, 3, 0]]], np.uint8)
    np.testing.assert_array_equal(got, want)
    for label in (labels, labels[:, :2, :4]):
        np.testing.assert_array_equal(study_figures.coarse_labels(label, 1, 4), label)


def tiny_model_config(**model) -> dict:
    """TINY_CONFIG's FCN-32s model section (with ``model`` changed), as a resolved config
    holds it."""
    config = default.get_config("fcn32s")
    sweeps.apply_overrides(config, {"model.width": 0.0625, "model.fc_channels": 16,
                                    "model.init_convention": "torchvision",
                                    **{f"model.{k}": v for k, v in model.items()}})
    return json.loads(config.to_json())["model"]


def fcn_file(path, trunk_only: bool = True, **model) -> str:
    """That FCN's weights as a file: its trunk only, as a classifier's file holds, or all."""
    import ml_collections
    config = ml_collections.ConfigDict(tiny_model_config(**model))
    arrays = pretrained.reference_arrays(models.build(config, 7, seed=0))
    np.savez(path, **{k: v for k, v in arrays.items()
                      if not (trunk_only and k.startswith(("score_", "upscore")))})
    return str(path)


def trunk_file(path, **model) -> str:
    return fcn_file(path, trunk_only=True, **model)


def test_misfit_is_what_the_import_refuses_in_one_line(tmp_path):
    """pretrained.misfit, the sweep's check: None for a file the model loads; for one it does
    not, what the import says, one line, the first problems and how many more."""
    model = tiny_model_config()
    assert pretrained.misfit(model, trunk_file(tmp_path / "trunk.npz")) is None
    full = fcn_file(tmp_path / "full.npz", trunk_only=False)
    assert pretrained.misfit(model, full) is None
    with np.load(full) as archive:
        arrays = dict(archive)
    arrays["upscore.weight"] = arrays["upscore.weight"] * 2  # a fixed bilinear layer changed
    np.savez(tmp_path / "changed.npz", **arrays)
    assert pretrained.misfit(model, str(tmp_path / "changed.npz")) == (
        "fixed in this model but different in the file: upscore.weight (max |diff| 0.969); make it "
        "learnable")
    wide = trunk_file(tmp_path / "wide.npz", fc_channels=32)  # fc6, fc7 out; fc7 in
    assert pretrained.misfit(model, wide) == (
        "wrong shape: fc6.bias file (32,) vs model (16,); wrong shape: fc6.weight file "
        "(32, 32, 3, 3) vs model (16, 32, 3, 3) or (16, 288); wrong shape: fc7.bias file (32,) "
        "vs model (16,); and 1 more")
    assert pretrained.misfit(model, str(tmp_path / "none.npz")) == "no such file"


def test_the_check_skips_trials_that_load_no_start_file(tmp_path):
    """Checked once per file and model: unfinished trials that start from a file; not staged
    or longer runs (a parent's workdir), finished or resuming trials, continued runs."""
    path = trunk_file(tmp_path / "start.npz")
    resolved, records = {}, []

    def trial(name, parent=None, init_from=path, continue_from="", **model):
        (tmp_path / name).mkdir()
        resolved[name] = {"model": tiny_model_config(**model),
                          "train": {"continue_from": continue_from}}
        records.append({"name": name, "parent": parent, "init_from": init_from,
                        "workdir": str(tmp_path / name)})
        return tmp_path / name

    trial("first")
    trial("same_model")
    trial("other_model", fc6_kernel=2)
    trial("staged", parent="first", init_from=str(tmp_path / "first"))
    (trial("finished") / "results.json").write_text("{}")
    (trial("resuming") / "checkpoints" / "250").mkdir(parents=True)
    (trial("crashed_before_a_save", dropout_rate=0.25) / "checkpoints").mkdir()
    trial("continued", continue_from=str(tmp_path / "first"))
    trial("missing", init_from=str(tmp_path / "none.npz"))
    trial("from_scratch", init_from="")
    found = sweep.start_files_to_check(records, resolved)
    assert [(r["name"], p) for r, p, _ in found] == [
        ("first", path), ("other_model", path), ("crashed_before_a_save", path)]


@pytest.mark.parametrize("make_file, problem", [
    (lambda p: trunk_file(p, fc6_kernel=2),
     "wrong shape: fc6.weight file (16, 32, 2, 2) vs model (16, 32, 3, 3) or (16, 288); "
     "give it"),
    (lambda p: np.savez(p, foo=np.zeros(3)) or str(p),
     "none of its 1 arrays has a layer name this importer knows (foo); expected")])
def test_a_start_file_that_does_not_fit_stops_the_sweep_before_any_trial(
        make_file, problem, tiny_config_file, tmp_path):
    """A wrong classifier file (another trunk's shapes, or no known layer names) is one line
    naming the trial and the file before any trial runs, in both modes; the file that fits
    passes the same check."""
    path = make_file(tmp_path / "start.npz")
    args = ["--config", tiny_config_file, "--sweep", "grid", "--workdir", str(tmp_path / "sweep"),
            f"--config.model.init_from={path}", "--config.model.init_convention=torchvision"]
    for extra in ([], ["--emit-commands", str(tmp_path / "commands.txt")]):
        proc = run_module("experiments.sweep", *args, *extra)
        assert proc.returncode == 2, proc.stderr[-2000:]
        assert proc.stderr.count("\n") == 1
        assert proc.stderr.startswith(
            f"error: trial learning_rate=0.001,seed=0: model.init_from={path!r} does not fit "
            f"its model: {problem}")
        assert proc.stderr.rstrip().endswith("; give it a file of its model's trunk, or model "
                                             "settings that fit the file; no trial started")
        assert not list((tmp_path / "sweep").glob("*/log.txt"))
        assert not (tmp_path / "commands.txt").exists()


def test_a_start_file_that_fits_passes_the_check(tiny_config_file, tmp_path):
    path = trunk_file(tmp_path / "start.npz", fc6_kernel=2)
    commands = tmp_path / "commands.txt"
    proc = run_module("experiments.sweep", "--config", tiny_config_file, "--sweep", "grid",
                      "--workdir", str(tmp_path / "sweep"), f"--config.model.init_from={path}",
                      "--config.model.fc6_kernel=2", "--config.model.init_convention=torchvision",
                      "--emit-commands", str(commands))
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert len(commands.read_text().splitlines()) == 3
