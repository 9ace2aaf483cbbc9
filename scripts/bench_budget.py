"""Section 6 of scripts/bench.py: the course's budget, the wall time of every activity's default
command, run as a student runs it, one after the other, into a runs folder of their own.

Lesson 4's retraining and saving start from the newest Lesson 1 Exercise A run, so they come after
it, as in the course. The serving demo is left out: it is a server that the student stops.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench_common import REPO, Section, fmt

from labkit.runs import RunRecordError, find_runs, read_run

COMMANDS = [
    "lesson_1/activity_1/test_stack.py",
    "lesson_1/exercise_a/train_mnist.py",
    "lesson_1/activity_2/train_mnist.py",
    "lesson_2/hello_keras/train_mnist.py",
    "lesson_2/numpy_from_scratch/train_mnist.py",
    "lesson_2/anatomy/train_mnist.py",
    "lesson_2/functional_api/train_mnist.py",
    "lesson_3/fashion_classifier/train_mnist.py",
    "lesson_3/regression/train_regression.py",
    "lesson_3/callbacks/train_with_callbacks.py",
    "lesson_3/deep_mlp/train_mnist.py",
    "lesson_3/tensorboard/train_mnist.py",
    "lesson_3/playground/train_playground.py",
    "lesson_3/tuning/train_lr_finder.py",
    "lesson_3/tuning/train_keras_tuner.py",
    "lesson_3/tuning/train_random_search.py",
    "lesson_4/retrain/train_mnist.py",
    "lesson_4/save_restore/save_restore.py",
]
LEFT_OUT = {"lesson_4/serve/serve.py": "a web server that runs until the student stops it"}
TIMEOUT_S = {False: 3600, True: 300}
# The doctor checks the environment and has no quick mode; every other command takes --quick.
NO_QUICK = {"lesson_1/activity_1/test_stack.py"}


def command_for(script: str, quick: bool) -> list[str]:
    return [script] + (["--quick"] if quick and script not in NO_QUICK else [])


def what_it_trained(runs_root: Path, before: set[Path]) -> tuple[str, str]:
    """The data and the headline result of the runs one command made: their datasets, and the
    test accuracy of each (or the test loss, for a regression), from their run.json files."""
    records = []
    for run in sorted(set(find_runs(runs_root)) - before):
        try:
            records.append(read_run(run))
        except RunRecordError:  # a command that died before writing its record says so by its exit
            continue
    names = sorted({(record.get("dataset") or {}).get("name") or "?" for record in records})
    accuracies, losses = [], []
    for record in records:
        test = (record.get("metrics") or {}).get("test") or {}
        if "accuracy" in test:
            accuracies.append(test["accuracy"])
        elif "loss" in test:
            losses.append(test["loss"])
    if len(accuracies) + len(losses) > 3:  # a sweep or a search: the range of each kind
        results = [f"{len(records)} runs"]
        results += [f"accuracy {min(accuracies):.4f} to {max(accuracies):.4f}"] if accuracies else []
        results += [f"loss {min(losses):.4g} to {max(losses):.4g}"] if losses else []
    else:
        results = [f"{value:.4f}" for value in accuracies] + [f"loss {value:.4g}" for value in losses]
    return ", ".join(names) or "-", ", ".join(results) or "-"


def budget(quick: bool, rounds: int, keep_runs: Path | None = None) -> Section:
    mode = "--quick commands (quick mode: NOT the full course)" if quick else "full default commands"
    section = Section("budget", f"The course's budget: wall time of every activity's {mode}")
    section.headers = ["activity command", "exit", "wall s", "wall min", "data", "test result"]
    total = 0.0
    failed = []
    datasets: set[str] = set()
    with tempfile.TemporaryDirectory(prefix="bench-budget-") as scratch:
        runs_root = Path(keep_runs or scratch)
        runs_root.mkdir(parents=True, exist_ok=True)
        env = dict(os.environ, LAB_RUNS_DIR=str(runs_root), LAB_OFFLINE="1", TF_CPP_MIN_LOG_LEVEL="2")
        env.pop("LAB_QUICK", None)
        for script in COMMANDS:
            argv = command_for(script, quick)
            before = set(find_runs(runs_root))
            started = time.perf_counter()
            try:
                done = subprocess.run(
                    [sys.executable, *argv], cwd=REPO, env=env, capture_output=True, text=True, timeout=TIMEOUT_S[quick]
                )
                code = str(done.returncode)
                if done.returncode:
                    tail = (done.stderr or done.stdout).strip().splitlines()[-1:] or [""]
                    failed.append(f"`{' '.join(argv)}` exited {done.returncode}: {tail[0][:200]}")
            except subprocess.TimeoutExpired:
                code = f"stopped after {TIMEOUT_S[quick]} s"
                failed.append(f"`{' '.join(argv)}` was stopped after {TIMEOUT_S[quick]} s")
            seconds = time.perf_counter() - started
            total += seconds
            data, result = what_it_trained(runs_root, before)
            datasets.update(name for name in data.split(", ") if name != "-")
            section.rows.append(
                [f"`python {' '.join(argv)}`", code, fmt(seconds, 1), fmt(seconds / 60, 1), data, result]
            )
            print(f"  {' '.join(argv)}: {seconds:.1f} s (exit {code}; {data}: {result})", flush=True)
    section.rows.append(["**total**", "", fmt(total, 1), fmt(total / 60, 1), "", ""])
    section.method = "each command once, one after the other, in fresh processes"
    section.notes.append(f"Total: {total:.0f} s, {total / 60:.1f} minutes of wall time for the commands above.")
    section.notes += [f"{name}: left out, {why}." for name, why in LEFT_OUT.items()]
    mnist = (
        "the MNIST activities trained on full MNIST (60,000 + 10,000 digits)"
        if "mnist" in datasets
        else "the MNIST activities trained on the mnist_5k substitute (full MNIST was not here)"
    )
    section.notes.append(
        f"Each command runs once, as a fresh process, with LAB_OFFLINE=1 and its own runs folder; {mnist}. "
        "The data and test result columns (accuracy, or loss for a regression) come from each command's run.json files."
    )
    if keep_runs:
        section.notes.append(f"The runs were kept in {keep_runs}.")
    if quick:
        section.notes.append(
            "Quick mode: these are the --quick commands, seconds each; the full budget needs `--only budget`."
        )
    section.notes += failed
    return section
