"""Section 1 of scripts/bench.py: what the lab's training loop costs over a bare `model.fit`.

For each Keras activity, one model trains alternately the way the activity's page trains it,

    run = start_run(config, data)
    tensorboard = keras.callbacks.TensorBoard(log_dir=run.dir)
    model.fit(run.batches(x, y), ..., callbacks=[tensorboard, *run.callbacks(tensorboard)])

(TensorBoard, run.json, HParams, the --resume backup and the activity's validation every N steps),
and through a bare `model.fit` on the same batches for the same steps, with the same per-epoch
validation. Both share the model, so both use the same traced step; the lesson-specific callbacks
some activities add (early stopping, checkpoints, the playground's boundary pictures, the
dashboards) are lesson content and stay out of both.

The bench imports no activity file: the model is the one the activity's own quick command saved
(bench_common.activity_runs runs it once, outside the bench's runs root), built again from its
`model.keras` with fresh weights and compiled as the activity compiled it; the settings (batch
size, seed, dataset) are those in that run's run.json.
"""

from __future__ import annotations

import dataclasses
import math
import time
from dataclasses import dataclass
from pathlib import Path

from bench_common import (
    EXERCISE_A,
    ONE_STEP,
    Section,
    fmt,
    fresh_model,
    interleaved,
    lab_config,
    median,
    model_inputs,
    model_targets,
    paired_ratio,
    run_record,
    silent,
    source_run,
    training_pipeline,
)

GOAL = 1.10  # on these 2-epoch slices; a default command's full run should stay within 1.03x
EPOCHS = 2
STEP_CAP = {False: 100, True: 3}  # steps per epoch at most, full and quick
ONE_EPOCH = ("--epochs", "1")


@dataclass(frozen=True)
class Spec:
    """One measured activity: the row's name, the quick command whose saved model it trains (and
    the run's tag where the command trains several), and how often the page validates by step."""

    activity: str
    script: str
    flags: tuple[str, ...] = ONE_STEP
    tag: str | None = None
    validate_every: int | None = None
    first: tuple[str, ...] | None = None  # a command whose runs this one needs (Lesson 4's baseline)


SPECS = [
    Spec("lesson_1/exercise_a", EXERCISE_A[0], EXERCISE_A[1:], validate_every=20),
    Spec("lesson_1/activity_2", "lesson_1/activity_2/train_mnist.py", validate_every=10),
    Spec("lesson_2/hello_keras", "lesson_2/hello_keras/train_mnist.py"),
    Spec("lesson_2/numpy_from_scratch (Keras twin)", "lesson_2/numpy_from_scratch/train_mnist.py", ONE_EPOCH, "keras"),
    Spec("lesson_2/anatomy (first optimizer)", "lesson_2/anatomy/train_mnist.py", (*ONE_STEP, "--optimizers", "sgd"),
         "sgd"),
    Spec("lesson_2/functional_api (two heads)", "lesson_2/functional_api/train_mnist.py",
         (*ONE_EPOCH, "--part", "topologies"), "two_heads"),
    Spec("lesson_2/functional_api (inception)", "lesson_2/functional_api/train_mnist.py",
         (*ONE_EPOCH, "--part", "topologies"), "inception"),
    Spec("lesson_3/fashion_classifier", "lesson_3/fashion_classifier/train_mnist.py"),
    Spec("lesson_3/deep_mlp", "lesson_3/deep_mlp/train_mnist.py"),
    Spec("lesson_3/tensorboard (dashboards run)", "lesson_3/tensorboard/train_mnist.py",
         (*ONE_STEP, "--part", "dashboards"), "dashboards"),
    Spec("lesson_3/tuning lr_finder (check runs)", "lesson_3/tuning/train_lr_finder.py",
         (*ONE_STEP, "--iterations", "20", "--check"), "reference"),
    Spec("lesson_3/regression", "lesson_3/regression/train_regression.py", ONE_EPOCH),
    Spec("lesson_3/callbacks", "lesson_3/callbacks/train_with_callbacks.py", ONE_EPOCH),
    Spec("lesson_3/playground (default network)", "lesson_3/playground/train_playground.py",
         (*ONE_EPOCH, "--experiment", "default"), "default"),
    # The retraining wraps a trained Lesson 1 network: the newest quick Exercise A run in the same runs root.
    Spec("lesson_4/retrain", "lesson_4/retrain/train_mnist.py", first=EXERCISE_A),
]  # fmt: skip

NOT_MEASURED = {
    "lesson_2/numpy_from_scratch (NumPy run)": "trains NumPy arrays with its own loop, not a Keras model",
    "lesson_3/tuning keras_tuner": "keras-tuner's search loop fits every trial; the lab only records it",
    "lesson_3/tuning random_search": "scikit-learn's RandomizedSearchCV fits the candidates, not the lab's model.fit",
}


def slug(activity: str) -> str:
    """`lesson_2/functional_api (two heads)` -> `lesson_2/functional_api.two_heads`: one word per ratio."""
    name, _, variant = activity.partition(" (")
    return name + ("." + variant.rstrip(")").replace(" ", "_") if variant else "")


def load_data(record: dict, quick: bool):
    """The data the source run trained on, whole (or the quick slice): images, a table of
    features, or generated points, as its run.json describes it."""
    from labkit.plan import QUICK_SLICE

    described, limits = record["dataset"], dict(QUICK_SLICE) if quick else None
    if described.get("generated"):
        from labkit.planar import make_planar

        seed = described.get("data_seed", 0)
        return make_planar(described["name"], noise=described.get("noise_percent", 0.0), seed=seed, limits=limits)
    if "features" in described:
        from labkit.tabular import load_regression_data

        return load_regression_data(described["name"], limits=limits, announce=silent)
    from labkit import data as lab_data

    return lab_data.load_dataset(described["name"], limits=limits, announce=silent)


@dataclass
class Prepared:
    model: object
    data: object  # the Dataset: start_run checks the batch size against it and records it
    config: object  # what start_run takes: the source run's batch size and seed, this bench's steps
    x_train: object
    y_train: object
    x_val: object
    y_val: object
    real_steps: int


def set_up(spec: Spec, quick: bool, runs_root: Path) -> Prepared:
    if spec.first:
        source_run(*spec.first)
    run_dir = source_run(spec.script, *spec.flags, tag=spec.tag)
    record = run_record(run_dir)
    hparams = record["hparams"]
    data = load_data(record, quick)
    model = fresh_model(run_dir)
    batch_size = hparams["batch_size"]
    real_steps = math.ceil(len(data.y_train) / batch_size)
    config = lab_config(
        runs_root,
        batch_size=batch_size,
        epochs=EPOCHS,
        steps_per_epoch=min(real_steps, STEP_CAP[quick]),
        seed=hparams.get("seed", 42),
        learning_rate=hparams.get("learning_rate"),
    )
    return Prepared(
        model,
        data,
        config,
        model_inputs(model, data.x_train),
        model_targets(model, data.y_train),
        model_inputs(model, data.x_val),
        model_targets(model, data.y_val),
        real_steps,
    )


def lab_fit(p: Prepared, config, parent: Path, validate_every: int | None) -> float:
    """The page's training cell, timed around model.fit alone; the run ends without a model file."""
    import keras

    from labkit.training import start_run

    run = start_run(config, p.data, quiet=True, parent_dir=parent)
    tensorboard = keras.callbacks.TensorBoard(log_dir=run.dir)
    callbacks = [
        tensorboard,
        *run.callbacks(tensorboard, validate_every=validate_every, validation_data=(p.x_val, p.y_val)),
    ]
    started = time.perf_counter()
    p.model.fit(
        run.batches(p.x_train, p.y_train),
        epochs=run.epochs,
        steps_per_epoch=run.steps_per_epoch,
        validation_data=(p.x_val, p.y_val),
        callbacks=callbacks,
        verbose=0,
    )
    seconds = time.perf_counter() - started
    run.finish()
    return seconds


def measure(spec: Spec, quick: bool, rounds: int, runs_root: Path, prepared=None):
    p, config = prepared or (None, None)
    p = p or set_up(spec, quick, runs_root)
    config = config or p.config
    steps = config.steps_per_epoch
    parent = runs_root / spec.activity.split(" ")[0]
    pipeline = training_pipeline(p.x_train, p.y_train, config.batch_size, seed=config.seed)

    def bare() -> float:
        started = time.perf_counter()
        p.model.fit(
            pipeline, epochs=config.epochs, steps_per_epoch=steps, validation_data=(p.x_val, p.y_val), verbose=0
        )
        return time.perf_counter() - started

    # One short lab run first: it traces every function and loads the callbacks' modules.
    warm = dataclasses.replace(config, epochs=1, steps_per_epoch=min(spec.validate_every or 2, steps if quick else 60))
    lab_fit(p, warm, parent, spec.validate_every)
    seconds = interleaved({"lab": lambda: lab_fit(p, config, parent, spec.validate_every), "bare": bare}, rounds)
    ratio = paired_ratio(seconds["lab"], seconds["bare"])
    # The fastest rounds beside the medians: a round slowed by the machine makes a side slower, never faster.
    fastest = min(seconds["lab"]) / min(seconds["bare"])
    lab, bare = (f"{fmt(median(seconds[side]), 3)} ({fmt(min(seconds[side]), 3)})" for side in ("lab", "bare"))
    row = [spec.activity, p.data.name, str(config.batch_size), f"{config.epochs} x {steps} (a pass: {p.real_steps})",
           str(spec.validate_every or "-"), lab, bare, f"{ratio:.3f}", f"{fastest:.3f}"]  # fmt: skip
    return row, ratio, fastest


CALLBACKS = {  # the lab's callbacks, by class name, as run.callbacks() makes them (TensorBoard is the page's)
    "HParams": "HParamsOnce",
    "run.json": "RecordEpochs",
    "BackupAndRestore": "FlushThenBackup",
}


def callback_costs(activity: str, quick: bool, rounds: int, runs_root: Path) -> str:
    """Milliseconds each of the lab's callbacks adds per epoch, on epochs of one step and no
    validation, so that only the callbacks differ (their per-fit set-up is spread over the epochs)."""
    import keras

    from labkit.training import start_run

    p = set_up(next(spec for spec in SPECS if spec.activity == activity), quick, runs_root)
    epochs = 3 if quick else 10
    config = dataclasses.replace(p.config, epochs=epochs, steps_per_epoch=1)
    pipeline = training_pipeline(p.x_train, p.y_train, config.batch_size, seed=config.seed)
    run = start_run(config, p.data, quiet=True, parent_dir=runs_root / "callback_costs")

    def lab_callback(class_name: str) -> list:
        return [c for c in run.callbacks() if type(c).__name__ == class_name]

    def everything() -> list:
        tensorboard = keras.callbacks.TensorBoard(log_dir=run.dir)
        return [tensorboard, *run.callbacks(tensorboard)]

    makers = {"none": list, "TensorBoard": lambda: [keras.callbacks.TensorBoard(log_dir=run.dir)]}
    makers.update({name: (lambda c=c: lab_callback(c)) for name, c in CALLBACKS.items()})
    makers["all"] = everything

    def timed(make):
        def fit() -> float:
            callbacks = make()
            started = time.perf_counter()
            p.model.fit(pipeline, epochs=epochs, steps_per_epoch=1, verbose=0, callbacks=callbacks)
            return time.perf_counter() - started

        return fit

    timed(everything)()  # warm-up: traces the step, opens the first writers
    seconds = interleaved({name: timed(make) for name, make in makers.items()}, rounds)
    run.finish()
    base = median(seconds.pop("none"))
    costs = ", ".join(f"{name} {(median(v) - base) / epochs * 1000:.0f}" for name, v in seconds.items())
    return f"Per-epoch cost of the lab's callbacks, {activity}, in ms ({epochs} one-step epochs, medians): {costs}."


def overhead(quick: bool, rounds: int, runs_root: Path, only: list[str] | None = None) -> Section:
    import keras

    section = Section(
        "overhead", "Toolkit overhead: model.fit with the lab's callbacks against a bare model.fit, per activity"
    )
    section.headers = [
        "activity", "data", "batch", "epochs x steps", "validate every",
        "lab s, median (fastest)", "bare s, median (fastest)", "lab / bare", "fastest / fastest",
    ]  # fmt: skip
    worst, failed = [], []
    for spec in SPECS:
        if only and not any(spec.activity.startswith(name) for name in only):
            continue
        keras.backend.clear_session()
        try:
            row, ratio, fastest = measure(spec, quick, rounds, runs_root)
        except Exception as error:  # one activity that cannot be measured does not hide the others
            failed.append(spec.activity)
            section.rows.append([spec.activity, "-", "-", "-", "-", "-", "-", "failed", "-"])
            section.notes.append(f"{spec.activity}: failed: {str(error).strip().splitlines()[-1]}")
            print(f"  {spec.activity}: failed: {error}", flush=True)
            continue
        section.rows.append(row)
        section.ratio(f"overhead.{slug(spec.activity)}", ratio, "lab seconds / bare seconds")
        section.ratio(f"overhead_fastest.{slug(spec.activity)}", fastest, "fastest lab round / fastest bare round")
        worst.append((ratio, fastest, spec.activity))
        print(f"  {spec.activity}: {ratio:.3f}x (fastest rounds {fastest:.3f}x)", flush=True)
    if not only:
        for activity in ("lesson_3/regression", "lesson_1/exercise_a"):
            if activity in failed:
                continue
            keras.backend.clear_session()
            section.notes.append(callback_costs(activity, quick, rounds, runs_root))
            print(f"  {section.notes[-1]}", flush=True)
    for activity, why in NOT_MEASURED.items():
        section.rows.append([activity, "-", "-", "-", "-", "-", "-", "not measured", "-"])
        section.notes.append(f"{activity}: not measured: {why}.")
    if worst:
        top, top_fastest, name = max(worst)
        section.goals.append(
            (
                f"the lab's loop costs at most {GOAL:.2f}x a bare model.fit",
                top <= GOAL,
                f"worst {top:.3f}x ({name}; its fastest rounds {top_fastest:.3f}x)",
            )
        )
    if failed:
        section.goals.append(("every Keras activity measured", False, "failed: " + ", ".join(failed)))
    section.notes += [
        f"Each activity trains {EPOCHS} epochs of at most {STEP_CAP[quick]} steps (one pass over its training data in"
        " brackets), so per-epoch costs (validation, TensorBoard epoch summaries, run.json, the backup) weigh more"
        " here than in a full run: the ratios are upper bounds.",
        "Both sides validate on the whole validation split after each epoch; the lab side also runs the activity's"
        " validate-every-N-steps score where it has one.",
        "Each model is the one its activity's quick command saved (run once before any timing), built again with"
        " fresh weights and compiled as the activity compiled it; no activity file is imported.",
        "Every start_run seeds the random generators and turns op determinism on, which then holds for both sides.",
    ]
    return section


# The default commands measured at full length: (epochs, steps per epoch or None for one pass).
DEFAULT_LENGTHS = {
    "lesson_1/exercise_a": (10, 200),
    "lesson_3/fashion_classifier": (30, None),
    "lesson_3/regression": (20, None),
}
DEFAULT_GOAL = 1.03


def defaults(rounds: int, runs_root: Path) -> Section:
    """The lab's loop against a bare model.fit over a default command's whole length (its epochs
    and steps, its full data), one activity at a time: what a student's run pays, fixed costs
    and per-epoch costs together."""
    import keras

    section = Section("defaults", "Toolkit overhead over a default command's full length: lab loop against bare")
    section.headers = ["activity", "data", "epochs x steps", "lab s, median (fastest)", "bare s, median (fastest)",
                       "lab / bare", "fastest / fastest"]  # fmt: skip
    worst = []
    for activity, (epochs, steps) in DEFAULT_LENGTHS.items():
        keras.backend.clear_session()
        spec = next(spec for spec in SPECS if spec.activity == activity)
        p = set_up(spec, False, runs_root)
        config = dataclasses.replace(p.config, epochs=epochs, steps_per_epoch=steps or p.real_steps)
        row, ratio, fastest = measure(spec, False, rounds, runs_root, prepared=(p, config))
        section.rows.append([row[0], row[1], f"{epochs} x {config.steps_per_epoch}", *row[5:]])
        section.ratio(f"defaults.{slug(activity)}", ratio, "lab seconds / bare seconds")
        worst.append((ratio, fastest, activity))
        print(f"  {activity}: {ratio:.3f}x (fastest rounds {fastest:.3f}x)", flush=True)
    top, top_fastest, name = max(worst)
    section.goals.append(
        (
            f"a default command's lab loop costs at most {DEFAULT_GOAL:.2f}x a bare model.fit",
            top <= DEFAULT_GOAL,
            f"worst {top:.3f}x ({name}; its fastest rounds {top_fastest:.3f}x)",
        )
    )
    section.notes.append(
        "Each side trains the default command's epochs and steps on its full data, with its per-epoch validation;"
        " the lab side adds its TensorBoard callback, run.json, HParams, the backup and any step validation."
    )
    return section
