"""Summarise a sweep directory: a markdown table, a JSON file and figures.

    python -m experiments.report workdirs/lr_decoder

Reads ``sweep.json`` and every trial's ``results.json`` / ``metrics.jsonl`` and writes
``report.md`` (one row per setting, sorted by mean IU; trials that differ only in ``seed``
share a row as mean ± sample std), ``report.json`` and ``figures/``: mean IU against each swept
key, eval learning curves overlaid, and the best trial's confusion matrix. A sweep run as a
study (``STUDIES`` in its config file, see ``fcn_jax/sweeps.py``) also gets each arm's mean IU
difference to the reference arm, paired by seed, with its 95% t interval, and a row per claim
of the paper: what it says, what was measured, whether they agree.
"""

import argparse
import json
import os
import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402  (after the backend is chosen)
import numpy as np  # noqa: E402
from scipy import stats  # noqa: E402

from fcn_jax import sweeps  # noqa: E402
from experiments import reuse, study_figures  # noqa: E402
from fcn_jax.metrics import PAPER_METRICS  # noqa: E402
from fcn_jax.workdir import write_json  # noqa: E402
from fcn_jax.writer import read_metrics  # noqa: E402

SEED_KEY = sweeps.SEED_KEY
METRICS = (*PAPER_METRICS, ("boundary_f", "boundary F"))  # results.json: metrics, boundary_f
SAME_MARGIN = 1.0  # mean IU points: a "same" claim agrees when the interval lies within +-this


def read_json(path: str):
    with open(path, encoding="utf-8") as f:
        return json.load(f)


def load_trials(sweep_dir: str) -> tuple[dict, list[dict]]:
    """The sweep manifest and, per trial, its overrides, results (None if unfinished), logs,
    launches and the code versions they ran."""
    manifest_path = os.path.join(sweep_dir, "sweep.json")
    if not os.path.exists(manifest_path):
        raise FileNotFoundError(f"{manifest_path} not found: is {sweep_dir} a sweep directory?")
    manifest = read_json(manifest_path)
    trials = []
    for entry in manifest["trials"]:
        trial_dir = os.path.join(sweep_dir, entry["name"])
        results_path = os.path.join(trial_dir, "results.json")
        launches = read_launches(trial_dir)
        trials.append({"name": entry["name"], "overrides": entry["overrides"],
                       "parent": entry.get("parent"),
                       "results": read_json(results_path) if os.path.exists(results_path)
                       else None,
                       "logs": read_metrics(trial_dir), "launches": launches,
                       "code": sorted({launch["code"] for launch in launches}),
                       "reused": os.path.exists(os.path.join(trial_dir, reuse.REUSED))})
    return manifest, trials


def read_launches(trial_dir: str) -> list[dict]:
    """The trial's launches as experiments.sweep recorded them (empty if none were)."""
    path = os.path.join(trial_dir, sweeps.LAUNCHES)
    if not os.path.exists(path):
        return []
    with open(path, encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


def code_versions(trials: list[dict]) -> dict:
    """How many trials ran on each code version (a trial launched on several counts under
    each; "not recorded" for trials run before launches were recorded)."""
    counts: dict[str, int] = {}
    for trial in trials:
        for code in trial["code"] or ["not recorded"]:
            counts[code] = counts.get(code, 0) + 1
    return counts


def code_line(trials: list[dict]) -> str:
    """The report's line on the code its trials ran: each version with its number of trials
    and the most trials run at a time (``--parallel``), which their s/step depends on."""
    versions = ", ".join(f"`{code}` ({n} trial{'s' * (n != 1)})"
                         for code, n in code_versions(trials).items())
    parallel = [launch["parallel"] for t in trials for launch in t["launches"]]
    at_once = f"; up to {max(parallel)} trials at a time" if parallel else ""
    reused = sum(t["reused"] for t in trials)
    copied = f"; {reused} of them copied from another sweep's runs" if reused else ""
    return f"Code (`git describe` at each trial's launch): {versions}{at_once}{copied}."


def group_rows(keys: list[str], trials: list[dict]) -> list[dict]:
    """Finished trials grouped by every swept key but ``seed``; mean and std per metric."""
    groups: dict[str, dict] = {}
    for trial in (t for t in trials if t["results"] is not None):
        setting = {k: trial["overrides"].get(k) for k in keys if k != SEED_KEY}
        row = groups.setdefault(json.dumps(setting), {"setting": setting, "trials": [],
                                                      "staged": False})
        row["trials"].append(trial["name"])
        row["staged"] |= sweeps.PARENT in trial["overrides"]
        row.setdefault("step_seconds", []).append(seconds_per_step(trial["logs"]))
        for name, _ in METRICS:
            row.setdefault("values", {}).setdefault(name, []).append(
                metric_value(trial["results"], name))
    rows = list(groups.values())
    for row in rows:
        row["mean"] = {k: float(np.mean(v)) for k, v in row["values"].items()}
        row["std"] = {k: float(np.std(v, ddof=1)) if len(v) > 1 else 0.0
                      for k, v in row["values"].items()}
    return sorted(rows, key=lambda r: -r["mean"]["mean_iu"])


def seconds_per_step(logs: list[dict]) -> float:
    """Median training seconds per step of a trial's logged intervals (training steps only:
    the run times the first step, which compiles, apart; in logs from before it did, the
    first interval is left out); NaN when nothing was logged."""
    rates = [r["steps_per_sec"] for r in logs if r.get("steps_per_sec") is not None]
    if not any("first_step_seconds" in r for r in logs):
        rates = rates[1:]  # logs written before the first step (compile) was timed apart
    return float(1 / np.median(rates)) if rates else float("nan")


def metric_value(results: dict, name: str) -> float:
    """One metric of a trial's results.json: the paper's four, or the boundary F-score (NaN
    where the file holds null: undefined)."""
    value = results["metrics"][name] if name in results["metrics"] else results[name]
    return float("nan") if value is None else value


def format_cell(row: dict, metric: str) -> str:
    if len(row["trials"]) == 1:
        return f"{row['mean'][metric]:.2f}"
    return f"{row['mean'][metric]:.2f} ± {row['std'][metric]:.2f}"


def markdown_table(keys: list[str], rows: list[dict]) -> str:
    setting_keys = [k for k in keys if k != SEED_KEY]
    header = (setting_keys + (["seeds"] if SEED_KEY in keys else []) + [t for _, t in METRICS]
              + ["s/step"])
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for row in rows:
        cells = [value_label(k, row) for k in setting_keys]
        if SEED_KEY in keys:
            cells.append(str(len(row["trials"])))
        cells += [format_cell(row, name) for name, _ in METRICS]
        seconds = np.mean(row["step_seconds"])
        cells.append("(no steps)" if np.isnan(seconds) else f"{seconds:.3f}")
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def evaluation_curve(row: dict, by_name: dict) -> dict[int, dict]:
    """{step: {seed: validation mean IU (%)}} of a row's trials' evaluations during training."""
    curve: dict[int, dict] = {}
    for name in row["trials"]:
        seed = by_name[name]["overrides"].get(SEED_KEY)
        for record in by_name[name]["logs"]:
            if record["split"] == "eval" and record.get("mean_iu") is not None:
                curve.setdefault(record["step"], {})[seed] = record["mean_iu"]
    return curve


def learning_table(rows: list[dict], trials: list[dict]) -> str:
    """Validation mean IU (%) at each evaluation step per setting, mean ± sample std over its
    trials: whether a run had converged when it stopped (the step counts' evidence)."""
    by_name = {t["name"]: t for t in trials}
    curves = [evaluation_curve(row, by_name) for row in rows]
    steps = sorted(set().union(*curves))
    lines = ["| setting | " + " | ".join(f"step {s}" for s in steps) + " |",
             "|---" * (len(steps) + 1) + "|"]
    for row, curve in zip(rows, curves):
        values = {s: list(curve[s].values()) for s in curve}
        cells = [(f"{np.mean(values[s]):.2f}" + (f" ± {np.std(values[s], ddof=1):.2f}"
                                                  if len(values[s]) > 1 else ""))
                 if s in values else "" for s in steps]
        lines.append(f"| {arm_label(row)} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def evaluation_gains(rows: list[dict], trials: list[dict]) -> list[dict]:
    """Each setting's gain in validation mean IU from one evaluation to the next, paired by
    seed (``paired_difference``, keyed by the later step): has the run stopped learning? Only
    settings with two seeds and two evaluations."""
    by_name = {t["name"]: t for t in trials}
    found = []
    for row in rows:
        curve = evaluation_curve(row, by_name)
        steps = sorted(curve)
        gains = {later: paired_difference(curve[later], curve[earlier])
                 for earlier, later in zip(steps, steps[1:])}
        if any("low" in g for g in gains.values()):
            found.append({"setting": row["setting"], "label": arm_label(row), "gains": gains})
    return found


def gain_table(found: list[dict]) -> str:
    """``evaluation_gains`` as markdown: a column per later step, mean ± std [95% interval]."""
    steps = sorted(set().union(*(f["gains"] for f in found)))
    lines = ["| setting | " + " | ".join(f"to step {s}" for s in steps) + " |",
             "|---" * (len(steps) + 1) + "|"]
    for f in found:
        cells = [" ".join(format_interval(f["gains"][s])) if s in f["gains"] else ""
                 for s in steps]
        lines.append(f"| {f['label']} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def value_name(value, pairs: list) -> str | None:
    """The study's name for a swept value (``value_names``' ``[value, name]`` pairs), if any."""
    return next((name for v, name in pairs if sweeps.as_json(v) == sweeps.as_json(value)), None)


def name_values(rows: list[dict], value_names: dict) -> None:
    """Give each row the study's names of its values (``row["names"]``), for its labels."""
    for row in rows:
        names = {k: value_name(row["setting"].get(k), pairs) for k, pairs in value_names.items()}
        row["names"] = {k: name for k, name in names.items() if name is not None}


def value_label(key: str, row: dict) -> str:
    """A row's value of a swept key: the study's name for it if it has one, "(base)" when its
    trials do not set it, "(parent)" for the starting point of a staged trial."""
    value = row["setting"].get(key)
    if key in row.get("names", {}):
        return row["names"][key]
    if value is None:
        return "(parent)" if key == sweeps.INIT_KEY and row["staged"] else "(base)"
    return '""' if value == "" else str(value)


def arm_label(row: dict) -> str:
    """A row's values, short: the keys' last components, values the base config keeps left out."""
    parts = [f"{k.rpartition('.')[2]}={value_label(k, row)}" for k in row["setting"]
             if value_label(k, row) != "(base)"]
    return ", ".join(parts) or "(base)"


def matching_row(rows: list[dict], arm: dict, label: str) -> dict:
    """The one row whose setting has ``arm``'s values."""
    found = [r for r in rows if sweeps.matches(r["setting"], arm)]
    if not found:
        raise ValueError(f"the study's {label} arm {arm} matches no finished trial: run the "
                         "sweep to the end (experiments.sweep resumes it), then report again")
    if len(found) > 1:
        raise ValueError(f"the study's {label} arm {arm} matches {len(found)} settings of "
                         "finished trials, not one: name its other swept values too")
    return found[0]


def seed_values(row: dict, trials: list[dict], metric: str = "mean_iu") -> dict:
    """{seed: metric} of the row's trials."""
    names = set(row["trials"])
    return {t["overrides"].get(SEED_KEY): t["results"]["metrics"][metric]
            for t in trials if t["name"] in names}


def paired_difference(arm: dict, reference: dict) -> dict:
    """Mean of arm - reference over the seeds both have, its sample std and 95% t interval."""
    seeds = sorted(arm.keys() & reference.keys(), key=repr)
    diffs = np.array([arm[s] - reference[s] for s in seeds])
    result = {"seeds": len(seeds), "mean": float(diffs.mean()) if len(seeds) else None}
    if len(seeds) > 1:
        std = float(diffs.std(ddof=1))
        half = float(stats.t.ppf(0.975, len(seeds) - 1) * std / np.sqrt(len(seeds)))
        result.update(std=std, low=result["mean"] - half, high=result["mean"] + half)
    return result


def verdict(expect: str, difference: dict, margin: float = SAME_MARGIN) -> str:
    """Whether a paired difference agrees with what the paper expects: its 95% interval on
    the expected side of 0, or for "same" inside +-margin (an equivalence test)."""
    if "low" not in difference:
        return "too few seeds to tell"
    low, high = difference["low"], difference["high"]
    side = "higher" if low > 0 else "lower" if high < 0 else None
    if expect == "same":
        if -margin <= low and high <= margin:
            return f"yes: within ±{margin:g}"
        return f"no: {side}" if side else f"not separated: the interval is wider than ±{margin:g}"
    if side is None:
        return "not separated (the interval contains 0)"
    return f"yes: {side}" if side == expect else f"no: {side}"


def format_interval(difference: dict) -> tuple[str, str]:
    if difference["mean"] is None:
        return "-", "-"
    if "low" not in difference:
        return f"{difference['mean']:+.2f}", "-"
    return (f"{difference['mean']:+.2f} ± {difference['std']:.2f}",
            f"[{difference['low']:+.2f}, {difference['high']:+.2f}]")


def study_section(study: dict, rows: list[dict], trials: list[dict]) -> tuple[list, dict]:
    """Markdown lines comparing every arm with the reference arm, and the claims table."""
    reference = matching_row(rows, study["reference"], "reference")
    ref_values = seed_values(reference, trials)
    lines = [f"Mean IU difference to the reference arm ({arm_label(reference)}), "
             "paired by seed: mean ± sample std of the differences and their 95% t interval:",
             "", "| arm | seeds | mean IU | difference | 95% interval |", "|---|---|---|---|---|"]
    payload = {"reference": reference["setting"], "differences": [], "claims": []}
    for row in rows:
        if row is reference:
            lines.append(f"| {arm_label(row)} (reference) | {len(row['trials'])} "
                         f"| {format_cell(row, 'mean_iu')} | | |")
            continue
        difference = paired_difference(seed_values(row, trials), ref_values)
        payload["differences"].append({"setting": row["setting"], **difference})
        lines.append(f"| {arm_label(row)} | {difference['seeds']} | "
                     f"{format_cell(row, 'mean_iu')} | " + " | ".join(format_interval(difference))
                     + " |")
    if study.get("claims"):
        lines += ["", "| paper says | measured here: arm minus arm | mean IU difference | "
                  "95% interval | agrees? |", "|---|---|---|---|---|"]
        for claim in study["claims"]:
            label = f"claim {claim['paper']!r}"
            row = matching_row(rows, claim["arm"], label)
            versus = (matching_row(rows, claim["versus"], label + " versus")
                      if "versus" in claim else reference)
            difference = paired_difference(seed_values(row, trials), seed_values(versus, trials))
            mean, interval = format_interval(difference)
            agrees = verdict(claim["expect"], difference, claim.get("margin", SAME_MARGIN))
            payload["claims"].append({**claim, "difference": difference, "agrees": agrees})
            lines.append(f"| {claim['paper']} | {arm_label(row)} minus {arm_label(versus)} "
                         f"| {mean} | {interval} | {agrees} |")
    return lines + [""], payload


def study_figures_section(sweep_dir: str, manifest: dict, rows: list[dict],
                          trials: list[dict]) -> tuple[list, dict]:
    """The study's coarse upper bound (paper, appendix) and its Figure-4 grid of the arms' first
    trials, when it asks for them: markdown lines and the numbers."""
    study, lines, payload = manifest["study"], [], {}
    if study.get("coarse_upper_bound"):
        finished = next(t for t in trials if t["results"] is not None)
        split, bound = study_figures.coarse_upper_bound(
            study_figures.trial_config(sweep_dir, finished), study["coarse_upper_bound"])
        lines += [f"Upper bound of a prediction at stride f: mean IU (%) of the {split} ground "
                  "truth reduced to its most frequent label per f x f block (paper, appendix):",
                  "", "| stride f | " + " | ".join(map(str, bound)) + " |",
                  "|---|" + "---|" * len(bound),
                  "| mean IU | " + " | ".join(f"{v:.1f}" for v in bound.values()) + " |", ""]
        payload["coarse_upper_bound"] = bound
    if study.get("prediction_grid"):
        by_name = {t["name"]: t for t in trials}
        columns = {title: by_name[matching_row(rows, arm, f"prediction_grid {title!r}")
                                  ["trials"][0]]
                   for title, arm in study["prediction_grid"].items()}
        os.makedirs(os.path.join(sweep_dir, "figures"), exist_ok=True)
        study_figures.prediction_grid(os.path.join(sweep_dir, "figures", "prediction_grid.png"),
                                      sweep_dir, columns)
        names = ", ".join(f"`{t['name']}`" for t in columns.values())
        lines += [f"Predictions on the first validation images (as the paper's Figure 4), of "
                  f"{names}:", "", "![prediction grid](figures/prediction_grid.png)", ""]
        payload["prediction_grid"] = {title: t["name"] for title, t in columns.items()}
    if study.get("backbone_table"):
        table = backbone_table(sweep_dir, rows, trials)
        lines += ["Table 1's columns for each backbone (FCN-32s as trained here; receptive field "
                  "and stride of the features score_fr reads, in input pixels; forward time: "
                  "`python -m benchmarks.backbones`):", "",
                  "| backbone | mean IU | parameters | receptive field | max stride | s/step |",
                  "|---|---|---|---|---|---|"]
        lines += [f"| {name} | {c['mean_iu']} | {c['parameters'] / 1e6:.3f}M | "
                  f"{c['receptive_field']} | {c['max_stride']} | {c['seconds_per_step']:.3f} |"
                  for name, c in table.items()] + [""]
        payload["backbone_table"] = table
    return lines, payload


def backbone_table(sweep_dir: str, rows: list[dict], trials: list[dict]) -> dict:
    """{backbone: mean IU, parameters, receptive field, max stride, s/step} per arm."""
    by_name = {t["name"]: t for t in trials}
    table = {}
    for row in rows:
        config = study_figures.trial_config(sweep_dir, by_name[row["trials"][0]])
        table[config.model.backbone] = {"mean_iu": format_cell(row, "mean_iu"),
                                        "seconds_per_step": float(np.mean(row["step_seconds"])),
                                        **study_figures.backbone_columns(config)}
    return table


def trial_states(sweep_dir: str, trials: list[dict]) -> dict:
    """Unfinished trials: 'failed' per the last run's ``sweep_status.json``, else 'unfinished'."""
    status_path = os.path.join(sweep_dir, "sweep_status.json")
    status = read_json(status_path) if os.path.exists(status_path) else {}
    return {t["name"]: "failed" if status.get(t["name"], "").startswith("failed")
            else "unfinished" for t in trials if t["results"] is None}


def sorted_values(values: list, keep_order: bool = False) -> list:
    """Distinct values, numerically sorted when they are all numbers (unless ``keep_order``)."""
    distinct = list({json.dumps(v): v for v in values}.values())
    numbers = all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in distinct)
    if numbers and not keep_order:
        return sorted(distinct)
    return distinct


def plot_metric_vs_key(path: str, key: str, keys: list[str], trials: list[dict],
                       value_names: list | None = None) -> None:
    """Mean IU against ``key``'s values: one line per setting of the other keys (mean over
    seeds) and a dot per trial. Values the study names are shown by name, in the sweep's
    order."""
    finished = [t for t in trials if t["results"] is not None]
    values = sorted_values([t["overrides"].get(key) for t in finished],
                           keep_order=bool(value_names))
    position = {json.dumps(v): i for i, v in enumerate(values)}
    others = [k for k in keys if k not in (key, SEED_KEY)]
    series: dict[str, dict] = {}
    for t in finished:
        label = ", ".join(f"{k.rpartition('.')[2]}={t['overrides'].get(k)}" for k in others)
        x = position[json.dumps(t["overrides"].get(key))]
        series.setdefault(label, {}).setdefault(x, []).append(t["results"]["metrics"]["mean_iu"])
    fig, ax = plt.subplots(figsize=(5, 3.5))
    for label, points in series.items():
        xs = sorted(points)
        line, = ax.plot(xs, [np.mean(points[x]) for x in xs], marker="o", label=label or None)
        for x in xs:
            ax.scatter([x] * len(points[x]), points[x], s=10, color=line.get_color(), alpha=0.5)
    ax.set_xticks(range(len(values)), [value_name(v, value_names or []) or str(v)
                                       for v in values])
    ax.set_xlabel(key)
    ax.set_ylabel("mean IU (%)")
    if others:
        ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def plot_learning_curves(path: str, trials: list[dict]) -> None:
    """Train loss and eval mean IU against step, every trial overlaid."""
    fig, (loss_ax, iu_ax) = plt.subplots(1, 2, figsize=(10, 3.8))
    for t in trials:
        train = [r for r in t["logs"] if r["split"] == "train"]
        evals = [r for r in t["logs"] if r["split"] == "eval"]
        line, = loss_ax.plot([r["step"] for r in train], [r["loss"] for r in train],
                             label=t["name"], linewidth=1)
        iu_ax.plot([r["step"] for r in evals], [r["mean_iu"] for r in evals],
                   marker="o", color=line.get_color(), linewidth=1)
    loss_ax.set(xlabel="step", ylabel="train loss")
    iu_ax.set(xlabel="step", ylabel="eval mean IU (%)")
    fig.legend(*loss_ax.get_legend_handles_labels(), loc="lower center", fontsize=7,
               ncol=2, frameon=False)
    fig.tight_layout(rect=(0, 0.05 + 0.03 * ((len(trials) + 1) // 2), 1, 1))
    fig.savefig(path, dpi=120)
    plt.close(fig)


def class_names(num_classes: int) -> list[str]:
    """The embedded dataset's class names when the count matches, else indices."""
    from fcn_jax.data.shapes import CLASS_NAMES

    if len(CLASS_NAMES) == num_classes:
        return list(CLASS_NAMES)
    return [str(i) for i in range(num_classes)]


def plot_confusion(path: str, trial: dict) -> None:
    """The trial's confusion matrix, each row (ground-truth class) normalised to 1."""
    confusion = np.asarray(trial["results"]["confusion"], dtype=np.float64)
    rows = confusion / np.maximum(confusion.sum(axis=1, keepdims=True), 1)
    names = class_names(len(confusion))
    fig, ax = plt.subplots(figsize=(5.5, 5))
    image = ax.imshow(rows, cmap="Blues", vmin=0, vmax=1)
    for i, j in np.ndindex(rows.shape):
        ax.text(j, i, f"{rows[i, j]:.2f}", ha="center", va="center", fontsize=7,
                color="white" if rows[i, j] > 0.5 else "black")
    ax.set_xticks(range(len(names)), names, rotation=45, ha="right")
    ax.set_yticks(range(len(names)), names)
    ax.set(xlabel="predicted", ylabel="ground truth",
           title=f"{trial['name']}\nmean IU {trial['results']['metrics']['mean_iu']:.2f}")
    ax.title.set_fontsize(8)
    fig.colorbar(image, ax=ax, fraction=0.046)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def write_figures(sweep_dir: str, keys: list[str], trials: list[dict],
                  value_names: dict) -> list[str]:
    """All figures into ``sweep_dir/figures``; their paths."""
    figures = os.path.join(sweep_dir, "figures")
    os.makedirs(figures, exist_ok=True)
    paths = []
    for key in (k for k in keys if k != SEED_KEY):
        paths.append(os.path.join(figures, f"mean_iu_vs_{key}.png"))
        plot_metric_vs_key(paths[-1], key, keys, trials, value_names.get(key))
    paths.append(os.path.join(figures, "learning_curves.png"))
    plot_learning_curves(paths[-1], trials)
    best = max((t for t in trials if t["results"] is not None),
               key=lambda t: t["results"]["metrics"]["mean_iu"])
    paths.append(os.path.join(figures, "confusion_best.png"))
    plot_confusion(paths[-1], best)
    return paths


def report(sweep_dir: str) -> str:
    """Write ``report.md``, ``report.json`` and the figures; return the markdown."""
    manifest, trials = load_trials(sweep_dir)
    keys = manifest["swept_keys"]
    rows = group_rows(keys, trials)
    value_names = (manifest.get("study") or {}).get("value_names", {})
    name_values(rows, value_names)
    states = trial_states(sweep_dir, trials)
    parts = [f"# Sweep `{manifest['sweep']}` of `{manifest['config']}`", ""]
    if manifest.get("quick"):
        parts += ["Quick form (`--quick`): each trial seconds long on the smoke config; the "
                  "numbers check the pipeline and are not results.", ""]
    if manifest["common_overrides"]:
        common = " ".join(f"`{k}={v}`" for k, v in manifest["common_overrides"].items())
        parts += [f"Common overrides: {common}", ""]
    parts += [code_line(trials), ""]
    if rows:
        split = next(t["results"]["split"] for t in trials if t["results"] is not None)
        parts += [f"Final {split} metrics (%), sorted by mean IU"
                  + (" (mean ± sample std over seeds)" if SEED_KEY in keys else "") + ":", "",
                  markdown_table(keys, rows), ""]
    study_payload, gains = None, []
    if rows and manifest.get("study"):
        lines, study_payload = study_section(manifest["study"], rows, trials)
        figure_lines, figure_payload = study_figures_section(sweep_dir, manifest, rows, trials)
        parts += lines + figure_lines
        study_payload.update(figure_payload)
    if rows and any(r["split"] == "eval" for t in trials for r in t["logs"]):
        parts += ["Validation mean IU (%) at each evaluation during training:", "",
                  learning_table(rows, trials), ""]
        gains = evaluation_gains(rows, trials)
        if gains:
            parts += ["Gain in validation mean IU (points) since the previous evaluation, "
                      "paired by seed: mean ± sample std of the gains and their 95% t "
                      "interval:", "", gain_table(gains), ""]
    if states:
        parts += ["Not finished: " + ", ".join(f"`{n}` ({s})" for n, s in states.items()), ""]
    figures = write_figures(sweep_dir, keys, trials, value_names) if rows else []
    parts += [f"![{os.path.basename(p)}](figures/{os.path.basename(p)})" for p in figures]
    markdown = "\n".join(parts).rstrip() + "\n"
    with open(os.path.join(sweep_dir, "report.md"), "w", encoding="utf-8") as f:
        f.write(markdown)
    payload = {"swept_keys": keys, "code_versions": code_versions(trials),
               "rows": rows, "not_finished": states, "study": study_payload,
               "gains": [{k: v for k, v in g.items() if k != "label"} for g in gains],
               "trials": [{"name": t["name"], "overrides": t["overrides"],
                           "code": t["code"],
                           "metrics": t["results"]["metrics"] if t["results"] else None}
                          for t in trials]}
    write_json(os.path.join(sweep_dir, "report.json"), payload)
    return markdown


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("sweep_dir", help="a directory written by experiments.sweep")
    args = parser.parse_args(argv)
    try:
        print(report(args.sweep_dir), end="")
    except (FileNotFoundError, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
