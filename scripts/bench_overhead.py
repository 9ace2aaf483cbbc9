"""Section 1 of scripts/bench.py: what the lab's training loop costs over a bare `model.fit`.

For each Keras activity, one model (built and compiled by the activity's own functions) trains
alternately through `TrainingSession.fit` (TensorBoard, HParams, run.json, BackupAndRestore and
the activity's validation schedule) and through a bare `model.fit` on the same batches for the
same steps, with the same per-epoch validation. Both share the model, so both use the same traced
step; the lesson-specific callbacks some activities add (early stopping, checkpoints, the
playground's boundary pictures, the dashboards) are lesson content and stay out of both.
"""

from __future__ import annotations

import copy
import importlib
import time
from dataclasses import dataclass
from pathlib import Path

from bench_common import Section, fmt, interleaved, median, paired_ratio, silent, training_pipeline

GOAL = 1.05
EPOCHS = 2
STEP_CAP = {False: 100, True: 3}  # steps per epoch at most, full and quick


@dataclass
class Prepared:
    model: object
    x_train: object
    y_train: object
    x_val: object
    y_val: object
    validate_every: int | None = None


def images(args):
    from labkit import data as lab_data
    from labkit.plan import training_plan

    return lab_data.load_dataset(
        args.dataset, default=args.default_dataset, limits=training_plan(args).slice, announce=silent
    )


def as_is(m, data, model, validate_every=None):
    return Prepared(model, data.x_train, data.y_train, data.x_val, data.y_val, validate_every)


def flat(m, data, model):
    return Prepared(model, m.flatten_images(data.x_train), data.y_train, m.flatten_images(data.x_val), data.y_val)


def lesson_1(m, args, data):
    return as_is(m, data, m.compile_model(m.build_model(num_classes=data.num_classes), args.learning_rate),
                 20 if m.__name__.endswith("exercise_a.train_mnist") else m.VALIDATE_EVERY_STEPS)  # fmt: skip


def anatomy(m, args, data):
    model = m.build_sequential(output_units=data.num_classes)
    model.compile(optimizer=m.make_optimizer(args.optimizers[0], args.learning_rate),
                  loss="sparse_categorical_crossentropy", metrics=["accuracy"])  # fmt: skip
    return flat(m, data, model)


def numpy_twin(m, args, data):
    import numpy as np

    params = m.init_mlp(784, args.hidden_units, data.num_classes, np.random.default_rng(args.seed))
    return flat(m, data, m.keras_twin(params, args.activation, args.learning_rate))


def functional(name):
    def prepare(m, args, data):
        build, compile_model, inputs, targets = m.IMAGE_MODELS[name]
        model = compile_model(build(data.num_classes), args.learning_rate)
        return Prepared(model, inputs(data.x_train), targets(data.y_train), inputs(data.x_val), targets(data.y_val))

    return prepare


def retrain(m, args, data):
    # The activity wraps a trained Lesson 1 network; an untrained one has the same shape and cost.
    from lesson_1.exercise_a.train_mnist import build_model

    baseline = build_model(num_classes=data.num_classes)
    model = m.build_shift_trainer(baseline, args.max_shift_px, seed=args.seed)
    return as_is(m, data, m.compile_model(model, args.learning_rate))


def tabular(m, args):
    return m.load_data(args, announce=silent)


def planar(m, args):
    from labkit.planar import make_planar

    return make_planar(args.dataset or m.DEFAULT_PLANAR_SET, noise=args.noise, seed=args.data_seed)


# (activity, module, how to load its data, how to build its model). Functions are the activity's own.
SPECS = [
    ("lesson_1/exercise_a", "lesson_1.exercise_a.train_mnist", images, lesson_1),
    ("lesson_1/activity_2", "lesson_1.activity_2.train_mnist", images, lesson_1),
    ("lesson_2/hello_keras", "lesson_2.hello_keras.train_mnist", images,
     lambda m, a, d: flat(m, d, m.compile_model(m.build_model(num_classes=d.num_classes), a.learning_rate))),
    ("lesson_2/numpy_from_scratch (Keras twin)", "lesson_2.numpy_from_scratch.train_mnist", images, numpy_twin),
    ("lesson_2/anatomy (first optimizer)", "lesson_2.anatomy.train_mnist", images, anatomy),
    ("lesson_2/functional_api (two heads)", "lesson_2.functional_api.train_mnist", images, functional("two_heads")),
    ("lesson_2/functional_api (inception)", "lesson_2.functional_api.train_mnist", images, functional("inception")),
    ("lesson_3/fashion_classifier", "lesson_3.fashion_classifier.train_mnist", images,
     lambda m, a, d: as_is(m, d, m.compile_model(m.build_model(d.num_classes), a.learning_rate))),
    ("lesson_3/deep_mlp", "lesson_3.deep_mlp.train_mnist", images,
     lambda m, a, d: as_is(m, d, m.compile_model(m.build_model(m.hidden_units_of(a), d.num_classes), 1e-2))),
    ("lesson_3/tensorboard (dashboards run)", "lesson_3.tensorboard.train_mnist", images,
     lambda m, a, d: as_is(m, d, m.compile_classifier(m.build_classifier(d.num_classes), a.learning_rate))),
    ("lesson_3/tuning lr_finder (check runs)", "lesson_3.tuning.train_lr_finder", images,
     lambda m, a, d: as_is(m, d, m.compile_model(m.build_model(d.num_classes), a.learning_rate))),
    ("lesson_3/regression", "lesson_3.regression.train_regression", tabular,
     lambda m, a, d: as_is(m, d, m.compile_model(m.build_model(d.num_features), a.learning_rate))),
    ("lesson_3/callbacks", "lesson_3.callbacks.train_with_callbacks", tabular,
     lambda m, a, d: as_is(m, d, m.compile_model(m.build_model(d.num_features), a.learning_rate))),
    ("lesson_3/playground (default network)", "lesson_3.playground.train_playground", planar,
     lambda m, a, d: as_is(m, d, m.compile_model(m.build_model(m.DEFAULT_LAYERS, "tanh"), a.learning_rate))),
    ("lesson_4/retrain", "lesson_4.retrain.train_mnist", images, retrain),
]  # fmt: skip

NOT_MEASURED = {
    "lesson_2/numpy_from_scratch (NumPy run)": "trains NumPy arrays with its own loop, not a Keras model",
    "lesson_3/tuning keras_tuner": "keras-tuner's search loop fits every trial; TrainingSession only records it",
    "lesson_3/tuning random_search": "scikit-learn's RandomizedSearchCV fits the candidates, not TrainingSession.fit",
}


def slug(activity: str) -> str:
    """`lesson_2/functional_api (two heads)` -> `lesson_2/functional_api.two_heads`: one word per ratio."""
    name, _, variant = activity.partition(" (")
    return name + ("." + variant.rstrip(")").replace(" ", "_") if variant else "")


def set_up(module_name: str, load, prepare, quick: bool, runs_root: Path):
    """The activity's flags (with its own defaults), its data, its compiled model, and the steps."""
    from labkit import cli
    from labkit.plan import training_plan

    module = importlib.import_module(module_name)
    args = cli.parse(module.make_parser(), ["--logdir", str(runs_root)] + (["--quick"] if quick else []))
    args.epochs = EPOCHS  # before the plan: some activities leave --epochs unset until they train
    data = load(module, args) if load is not images else images(args)
    real_steps = training_plan(args).steps_per_epoch_for(len(data.y_train))
    args.steps_per_epoch = min(real_steps, STEP_CAP[quick])
    return module, args, data, prepare(module, args, data), real_steps


def measure(activity: str, module_name: str, load, prepare, quick: bool, rounds: int, runs_root: Path) -> list:
    from labkit.session import TrainingSession

    module, args, data, prepared, real_steps = set_up(module_name, load, prepare, quick, runs_root)
    model, batch_size, steps = prepared.model, args.batch_size, args.steps_per_epoch
    validation = dict(validation_data=(prepared.x_val, prepared.y_val), validation_batch_size=max(batch_size, 256))
    parent = runs_root / activity.split(" ")[0]

    def lab(run_args=args) -> float:
        with TrainingSession(
            module.__file__, run_args, dataset=data, quiet=True, parent_dir=parent, save_model=False
        ) as s:
            s.model = model
            started = time.perf_counter()
            s.fit(model, x_train=prepared.x_train, y_train=prepared.y_train, x_val=prepared.x_val,
                  y_val=prepared.y_val, validate_every_steps=prepared.validate_every)  # fmt: skip
            return time.perf_counter() - started

    pipeline = training_pipeline(prepared.x_train, prepared.y_train, batch_size, seed=args.seed)

    def bare() -> float:
        started = time.perf_counter()
        model.fit(pipeline, epochs=EPOCHS, steps_per_epoch=steps, shuffle=False, verbose=0, **validation)
        return time.perf_counter() - started

    warm = copy.copy(args)  # one short lab run traces every function and loads the callbacks' modules
    warm.epochs, warm.steps_per_epoch = 1, min(prepared.validate_every or 2, steps if quick else 60)
    lab(warm)
    seconds = interleaved({"lab": lab, "bare": bare}, rounds)
    ratio = paired_ratio(seconds["lab"], seconds["bare"])
    row = [activity, data.name, str(batch_size), f"{EPOCHS} x {steps} (real: {real_steps})",
           str(prepared.validate_every or "-"), fmt(median(seconds["lab"]), 3), fmt(median(seconds["bare"]), 3),
           f"{ratio:.3f}"]  # fmt: skip
    return row, ratio


CALLBACKS = {  # the lab's callbacks, by class name, as TrainingSession.callbacks() makes them
    "TensorBoard": "TensorBoard",
    "HParams": "KerasCallback",
    "run.json": "RecordEpochs",
}


def callback_costs(activity: str, quick: bool, rounds: int, runs_root: Path) -> str:
    """Milliseconds each of the lab's callbacks adds per epoch, on epochs of one step and no
    validation, so that only the callbacks differ (their per-fit set-up is spread over the epochs)."""
    from labkit.session import TrainingSession

    _, module_name, load, prepare = next(spec for spec in SPECS if spec[0] == activity)
    module, args, data, prepared, _ = set_up(module_name, load, prepare, quick, runs_root)
    model, epochs = prepared.model, 3 if quick else 10
    pipeline = training_pipeline(prepared.x_train, prepared.y_train, args.batch_size, seed=args.seed)
    parent = runs_root / "callback_costs"
    with TrainingSession(module.__file__, args, dataset=data, quiet=True, parent_dir=parent, save_model=False) as s:
        s.model = model

        def lab_callback(class_name: str) -> list:
            return [c for c in s.callbacks() if type(c).__name__ == class_name]

        makers = {"none": list, **{name: (lambda c=c: lab_callback(c)) for name, c in CALLBACKS.items()}}
        makers["BackupAndRestore"] = lambda: [s.backup_callback()]
        makers["all"] = lambda: s.callbacks() + [s.backup_callback()]

        def timed(make):
            def run() -> float:
                callbacks = make()
                started = time.perf_counter()
                model.fit(pipeline, epochs=epochs, steps_per_epoch=1, shuffle=False, verbose=0, callbacks=callbacks)
                return time.perf_counter() - started

            return run

        timed(makers["all"])()  # warm-up: traces the step, opens the first writers
        seconds = interleaved({name: timed(make) for name, make in makers.items()}, rounds)
    base = median(seconds.pop("none"))
    costs = ", ".join(f"{name} {(median(v) - base) / epochs * 1000:.0f}" for name, v in seconds.items())
    return f"Per-epoch cost of the lab's callbacks, {activity}, in ms ({epochs} one-step epochs, medians): {costs}."


def overhead(quick: bool, rounds: int, runs_root: Path, only: list[str] | None = None) -> Section:
    from labkit.deferred import keras

    section = Section("overhead", "Toolkit overhead: TrainingSession.fit against a bare model.fit, per activity")
    section.headers = ["activity", "data", "batch", "epochs x steps", "validate every", "lab s", "bare s", "lab / bare"]
    worst = []
    for activity, module_name, load, prepare in SPECS:
        if only and not any(activity.startswith(name) for name in only):
            continue
        keras.backend.clear_session()
        row, ratio = measure(activity, module_name, load, prepare, quick, rounds, runs_root)
        section.rows.append(row)
        section.ratio(f"overhead.{slug(activity)}", ratio, "lab seconds / bare seconds")
        worst.append((ratio, activity))
        print(f"  {activity}: {ratio:.3f}x", flush=True)
    if not only:
        for activity in ("lesson_3/regression", "lesson_1/exercise_a"):
            keras.backend.clear_session()
            section.notes.append(callback_costs(activity, quick, rounds, runs_root))
            print(f"  {section.notes[-1]}", flush=True)
    for activity, why in NOT_MEASURED.items():
        section.rows.append([activity, "-", "-", "-", "-", "-", "-", "not measured"])
        section.notes.append(f"{activity}: not measured: {why}.")
    if worst:
        top, name = max(worst)
        section.goals.append(
            (f"the lab's loop costs at most {GOAL:.2f}x a bare model.fit", top <= GOAL, f"worst {top:.3f}x ({name})")
        )
    section.notes += [
        f"Each activity trains {EPOCHS} epochs of at most {STEP_CAP[quick]} steps (its real epoch length in brackets),"
        " so per-epoch costs (validation, TensorBoard epoch summaries, run.json, the backup) weigh more here than in a"
        " full run: the ratios are upper bounds.",
        "Both sides validate on the whole validation split after each epoch, with the same batch size; the lab side"
        " also runs the activity's validate-every-N-steps score where it has one.",
        "Random seeds and op determinism are set once, by the first TrainingSession, and hold for both sides.",
    ]
    return section
