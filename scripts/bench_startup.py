"""Section 3 of scripts/bench.py: where the time goes before a quick run's first training step.

"First" only means something in a fresh interpreter, so every round starts new processes:

- `stages`: this file as a script, doing one after the other what a quick Lesson 1 run does before
  it trains (load the data, import TensorFlow, build and compile the model, one traced step), timing
  the scikit-learn import on its own because the data's stratified split needs it;
- `real`: Lesson 1 Exercise A's own `main(["--quick"])`, with a callback slipped in that notes the
  moment its first training step ends, and when the whole run ends.

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

from bench_common import REPO, Section, fmt, median  # noqa: E402

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


def child_stages() -> dict:
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
    from lesson_1.exercise_a.train_mnist import BATCH_SIZE, build_model, compile_model

    model = compile_model(build_model(num_classes=data.num_classes))
    stamps["build + compile model"] = time.time()
    from bench_common import training_pipeline

    model.fit(training_pipeline(data.x_train, data.y_train, BATCH_SIZE), epochs=1, steps_per_epoch=1, verbose=0)
    stamps["first traced step"] = time.time()
    return stamps


def child_real(runs_root: str) -> dict:
    from labkit.deferred import keras
    from labkit.session import TrainingSession
    from lesson_1.exercise_a import train_mnist

    stamps = {"interpreter": CHILD_STARTED}
    original = TrainingSession.callbacks

    def with_stamp(session):
        class FirstStep(keras.callbacks.Callback):
            def on_train_batch_end(self, batch, logs=None):
                stamps.setdefault("first step", time.time())

        return original(session) + [FirstStep()]

    TrainingSession.callbacks = with_stamp
    sys.argv = ["train_mnist.py"]
    code = train_mnist.main(["--quick", "--logdir", runs_root])
    stamps["run ends"] = time.time()
    stamps["exit code"] = code
    return stamps


def spawn(mode: str, runs_root: str) -> dict:
    env = dict(os.environ, LAB_OFFLINE="1", TF_CPP_MIN_LOG_LEVEL="2", PYTHONUNBUFFERED="1")
    env.pop("LAB_QUICK", None)
    started = time.time()
    done = subprocess.run(
        [sys.executable, __file__, mode, runs_root], cwd=REPO, env=env, capture_output=True, text=True, timeout=300
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
    with tempfile.TemporaryDirectory(prefix="bench-startup-") as runs_root:
        for _ in range(rounds):  # alternated, each a fresh process
            stages.append(spawn("stages", runs_root))
            real.append(spawn("real", runs_root))
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
    mode, root = sys.argv[1], sys.argv[2]
    result = child_stages() if mode == "stages" else child_real(root)
    print(json.dumps(result), flush=True)
