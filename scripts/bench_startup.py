"""Section 3 of scripts/bench.py: where the time goes before a quick run's first training step.

"First" only means something in a fresh interpreter, so every round starts new processes:

- `stages`: this file as a script, doing one after the other what a quick Lesson 1 run does before
  it trains (load the data, import TensorFlow, build and compile the model, one traced step), timing
  the scikit-learn import on its own because the data's stratified split needs it. The model is
  Exercise A's, built from the architecture and compile settings its own quick run saved (the
  parent runs that once, untimed): the bench imports no activity file;
- `real`: Lesson 1 Exercise A's file itself, `train_mnist.py --quick` run top to bottom with runpy,
  with a callback slipped into `model.fit` that notes the moment its first training step ends,
  and when the whole run ends.

Each child prints one JSON line of wall-clock stamps; the parent subtracts the moment it started
the child, so interpreter start-up is counted too.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time

CHILD_STARTED = time.time()  # as early as this process can tell the time

from bench_common import EXERCISE_A, REPO, Section, fmt, median, run_record, source_run  # noqa: E402

GOAL_S = 6.0
STAGES = (
    "interpreter",
    "import labkit + NumPy",
    "import scikit-learn",
    "load data",
    "import tensorflow",
    "build + compile model",
    "first traced step",
)


def child_stages(model_run: str) -> dict:
    stamps = {"interpreter": CHILD_STARTED}
    from labkit import data as lab_data
    from labkit.plan import QUICK_SLICE

    stamps["import labkit + NumPy"] = time.time()
    import sklearn.model_selection  # noqa: F401  (the data module's stratified split needs it)

    stamps["import scikit-learn"] = time.time()
    data = lab_data.load_dataset(None, limits=dict(QUICK_SLICE), announce=lambda message: None)
    stamps["load data"] = time.time()
    import keras  # noqa: F401
    import tensorflow  # noqa: F401

    stamps["import tensorflow"] = time.time()
    from bench_common import fresh_model, training_pipeline

    model = fresh_model(model_run)
    stamps["build + compile model"] = time.time()
    batch_size = run_record(model_run)["hparams"]["batch_size"]
    model.fit(training_pipeline(data.x_train, data.y_train, batch_size), epochs=1, steps_per_epoch=1, verbose=0)
    stamps["first traced step"] = time.time()
    return stamps


def child_real(runs_root: str) -> dict:
    import runpy

    import labkit  # noqa: F401  (first, as in the activity: it quietens TensorFlow's import)

    stamps = {"interpreter": CHILD_STARTED}
    import keras

    class FirstStep(keras.callbacks.Callback):
        def on_train_batch_end(self, batch, logs=None):
            stamps.setdefault("first step", time.time())

    fit = keras.Model.fit

    def fit_with_stamp(model, *args, callbacks=None, **kwargs):
        return fit(model, *args, callbacks=[*(callbacks or []), FirstStep()], **kwargs)

    keras.Model.fit = fit_with_stamp
    script = str(REPO / EXERCISE_A[0])
    sys.argv = [script, "--quick", "--logdir", runs_root]
    try:
        runpy.run_path(script, run_name="__main__")
        code = 0
    except SystemExit as exit_:
        code = exit_.code if isinstance(exit_.code, int) else (0 if exit_.code is None else 1)
    stamps["run ends"] = time.time()
    stamps["exit code"] = code
    return stamps


def spawn(mode: str, runs_root: str, model_run: str) -> dict:
    env = dict(os.environ, LAB_OFFLINE="1", TF_CPP_MIN_LOG_LEVEL="2", PYTHONUNBUFFERED="1")
    env.pop("LAB_QUICK", None)
    started = time.time()
    done = subprocess.run(
        [sys.executable, __file__, mode, runs_root, model_run],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    lines = [line for line in done.stdout.splitlines() if line.startswith("{")]
    if done.returncode != 0 or not lines:
        tail = (done.stderr or done.stdout).strip().splitlines()[-1:] or ["no output"]
        raise RuntimeError(f"startup child '{mode}' failed (exit {done.returncode}): {tail[0]}")
    stamps = json.loads(lines[-1])
    return {key: (value - started if key != "exit code" else value) for key, value in stamps.items()}


def startup(quick: bool, rounds: int) -> Section:
    section = Section("startup", "Where time goes before the first training step (quick run, fresh processes)")
    section.headers = ["stage", "median s (own)", "median s (since launch)"]
    stages, real = [], []
    model_run = str(source_run(*EXERCISE_A))  # Exercise A's saved model, for the staged child to rebuild
    with tempfile.TemporaryDirectory(prefix="bench-startup-") as runs_root:
        for _ in range(rounds):  # alternated, each a fresh process
            stages.append(spawn("stages", runs_root, model_run))
            real.append(spawn("real", runs_root, model_run))
    section.method = f"{rounds} round(s) of fresh processes, medians"
    previous = 0.0
    for stage in STAGES:
        since = median([s[stage] for s in stages])
        section.rows.append([stage, fmt(since - previous, 2), fmt(since, 2)])
        previous = since
    first = median([r["first step"] for r in real])
    whole = median([r["run ends"] for r in real])
    section.rows.append(["Lesson 1 Exercise A --quick: first step ends", "", fmt(first, 2)])
    section.rows.append(["Lesson 1 Exercise A --quick: whole run", "", fmt(whole, 2)])
    section.ratio("startup.first_step_vs_goal", first / GOAL_S, f"{first:.2f} s / {GOAL_S:g} s")
    importing = median([s["import tensorflow"] - s["load data"] for s in stages])
    section.ratio(
        "startup.import_share",
        importing / median([s["first traced step"] for s in stages]),
        "import tensorflow / time to the first traced step",
    )
    section.goals.append(
        (f"a quick run reaches its first training step in under {GOAL_S:g} s", first < GOAL_S, f"{first:.2f} s")
    )
    section.notes.append(
        f"{rounds} round(s), each a fresh interpreter for the staged child and one for the real quick run. "
        "The staged child does the steps in the order the real run does them; 'since launch' counts from the "
        "moment the parent started the process."
    )
    if any(r.get("exit code") for r in real):
        section.notes.append(
            "The real quick run exited with a non-zero code: " + str([r.get("exit code") for r in real])
        )
    return section


if __name__ == "__main__":
    mode, root, model_run = sys.argv[1:4]
    result = child_stages(model_run) if mode == "stages" else child_real(root)
    print(json.dumps(result), flush=True)
