"""Mutation check (not in CI): cosmic-ray mutates one module at a time and runs the tests that
cover it; a mutant that no test kills is a change to the code that the tests cannot see.

    make mutation                      # every module of mutation/targets.toml
    make mutation MODULES=fcn_jax/losses.py
    make mutation MODULES=fcn_jax/losses.py MUTATION_FLAGS=--survivors   # after new tests

Cosmic-ray edits the module on disk while a mutant runs, so this works on a copy of the
repository under WORKDIR (default workdirs/mutation): the checkout is never touched. Per
module it writes WORKDIR/<module>.sqlite (cosmic-ray's session; `cr-report` lists survivors)
and prints one line: killed / total and the score; WORKDIR/scores.json collects them.
``--survivors`` keeps each module's session and runs only its surviving mutants again, against
the tests as they are now (the score after new tests, without rerunning the killed ones);
``--resume`` keeps it and runs the mutants an interrupted run left untested. Before any mutant,
the module's tests run once on the unmutated copy and must pass: a missing or failing test
would count every mutant as killed.
"""

import argparse
import json
import os
import shutil
import sqlite3
import subprocess
import sys
import tomllib

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PYTEST = [sys.executable, "-m", "pytest", "-x", "-q", "-p", "no:cacheprovider"]
CONFIG = """[cosmic-ray]
module-path = "{module}"
timeout = {timeout}
excluded-modules = []
test-command = "{pytest} {tests}"

[cosmic-ray.distributor]
name = "local"
"""


def targets(path: str, selected: list[str]) -> dict:
    with open(path, "rb") as f:
        table = tomllib.load(f)["targets"]
    unknown = sorted(set(selected) - table.keys())
    if unknown:
        sys.exit(f"error: {unknown} not in {path}; choose from {sorted(table)}")
    return {m: table[m] for m in selected} if selected else table


def copy_repository(workdir: str) -> str:
    """A fresh copy of the tracked files (cosmic-ray mutates files in place)."""
    copy = os.path.join(workdir, "repo")
    shutil.rmtree(copy, ignore_errors=True)
    files = subprocess.run(["git", "ls-files"], cwd=ROOT, capture_output=True, text=True,
                           check=True).stdout.split()
    for name in files:
        os.makedirs(os.path.dirname(os.path.join(copy, name)), exist_ok=True)
        shutil.copy2(os.path.join(ROOT, name), os.path.join(copy, name))
    return copy


def forget_survivors(session: str) -> None:
    """Mark a finished session's surviving mutants untested, so that ``cosmic-ray exec`` runs
    them again (cosmic-ray 8.7's session: a result row per tested mutant, ``test_outcome``
    'SURVIVED'). A session with untested mutants is refused: exec would run those too."""
    with sqlite3.connect(session) as db:
        untested = db.execute("SELECT COUNT(*) FROM work_items WHERE job_id NOT IN "
                              "(SELECT job_id FROM work_results)").fetchone()[0]
        if untested:
            sys.exit(f"error: {session} has {untested} untested mutants; finish that run with "
                     "--resume first (--survivors reruns the survivors of a finished run)")
        db.execute("DELETE FROM work_results WHERE test_outcome = 'SURVIVED'")


def check_baseline(module: str, tests: list[str], copy: str) -> None:
    """The tests must pass on the unmutated module: a failing or missing test would count
    every mutant as killed and make the score meaningless."""
    proc = subprocess.run([*PYTEST, *tests], cwd=copy, capture_output=True, text=True)
    if proc.returncode != 0:
        last = (proc.stdout.strip().splitlines() or ["no output"])[-1]
        sys.exit(f"error: the tests of {module} ({' '.join(tests)}) do not pass on the "
                 f"unmutated module (pytest: {last}); fix them or their list in the targets "
                 "file before scoring mutants")


def score(module: str, tests: list[str], copy: str, workdir: str, timeout: float,
          keep: str | None = None) -> dict:
    """Mutate ``module`` and run ``tests`` against each mutant. ``keep`` = "survivors" or
    "resume" goes on with the module's last session instead of starting a new one."""
    name = module.replace("/", ".")
    config, session = (os.path.join(workdir, f"{name}.{ext}") for ext in ("toml", "sqlite"))
    with open(config, "w", encoding="utf-8") as f:
        f.write(CONFIG.format(module=module, timeout=timeout, pytest=" ".join(PYTEST),
                              tests=" ".join(tests)))
    cosmic = os.path.join(os.path.dirname(sys.executable), "cosmic-ray")
    if keep and not os.path.exists(session):
        sys.exit(f"error: --{keep} needs {session} from an earlier run of {module}; "
                 "run it without the flag first")
    check_baseline(module, tests, copy)
    if keep == "survivors":
        forget_survivors(session)
    elif not keep:
        if os.path.exists(session):
            os.remove(session)
        subprocess.run([cosmic, "init", config, session], cwd=copy, check=True)
    subprocess.run([cosmic, "exec", config, session], cwd=copy, check=True)
    return tally(session)


def tally(session: str) -> dict:
    """Killed / valid mutants of a session; a mutant that is not valid Python (e.g. ``*`` of
    a keyword-only signature turned into ``+``) is counted apart, neither killed nor survived.
    The survivors are listed as (line, operator)."""
    cosmic = os.path.join(os.path.dirname(sys.executable), "cosmic-ray")
    dump = subprocess.run([cosmic, "dump", session], capture_output=True, text=True,
                          check=True).stdout
    counts, survivors = {"killed": 0, "survived": 0, "invalid": 0, "pending": 0}, []
    for line in filter(str.strip, dump.splitlines()):
        item, result = json.loads(line)
        if not result:
            counts["pending"] += 1
        elif "SyntaxError" in (result.get("output") or ""):
            counts["invalid"] += 1
        elif result.get("test_outcome") == "killed":
            counts["killed"] += 1
        else:
            counts["survived"] += 1
            mutation = item["mutations"][0]
            survivors.append((mutation["start_pos"][0], mutation["operator_name"]))
    valid = counts["killed"] + counts["survived"]
    return {**counts, "score": round(100 * counts["killed"] / valid, 1) if valid else None,
            "survivors": sorted(survivors)}


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("modules", nargs="*", help="default: every module of targets.toml")
    parser.add_argument("--workdir", default=os.path.join(ROOT, "workdirs", "mutation"))
    parser.add_argument("--targets", default=os.path.join(ROOT, "mutation", "targets.toml"),
                        help="TOML file: [targets] module = [test files]")
    parser.add_argument("--timeout", type=float, default=300.0,
                        help="seconds per mutant's test run (a hang counts as killed)")
    again = parser.add_mutually_exclusive_group()
    again.add_argument("--survivors", action="store_const", dest="keep", const="survivors",
                       help="run only the last run's surviving mutants again (after new tests)")
    again.add_argument("--resume", action="store_const", dest="keep", const="resume",
                       help="run the mutants an interrupted run left untested")
    args = parser.parse_args(argv)
    chosen = targets(args.targets, args.modules)
    args.workdir = os.path.abspath(args.workdir)  # cosmic-ray runs inside the copy
    os.makedirs(args.workdir, exist_ok=True)
    copy = copy_repository(args.workdir)
    path = os.path.join(args.workdir, "scores.json")
    scores = {}
    if os.path.exists(path):
        with open(path, encoding="utf-8") as f:
            scores = json.load(f)
    for module, tests in chosen.items():
        scores[module] = score(module, tests, copy, args.workdir, args.timeout, args.keep)
        s = scores[module]
        untested = f", {s['pending']} not yet tested" if s["pending"] else ""
        print(f"{module}: {s['killed']} of {s['killed'] + s['survived']} valid mutants killed "
              f"({s['score']}%; {s['invalid']} not valid Python{untested})", flush=True)
        with open(path, "w", encoding="utf-8") as f:
            json.dump(scores, f, indent=2)


if __name__ == "__main__":
    main()
