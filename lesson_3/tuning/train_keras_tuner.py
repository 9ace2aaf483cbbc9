"""Lesson 3, tuning with keras-tuner: the seed's search space, searched by RandomSearch and by Hyperband.

The space is the one the scikit-learn search of this folder draws from: 0 to 3 hidden layers,
1 to 99 neurons in each, a learning rate between 3e-4 and 3e-2 drawn on a log scale. keras-tuner
asks for it through a `build(hp)` function that declares each hyperparameter where the model
uses it, then trains one model per trial and keeps the best by validation loss (MSE).

- RandomSearch draws `--max-trials` settings (10, the seed's n_iter) and trains each for up to
  `--epochs` (100), stopped early after 10 epochs without a better validation loss.
- Hyperband spends its epochs unevenly: many settings get a few epochs, and only the best of
  each round are trained further, up to `--hyperband-epochs` (20), keeping 1 in `--factor` (3).

Each search is one run folder. keras-tuner keeps its own bookkeeping in `<run>/tuner/`, and
every trial logs to `<run>/trials/<trial id>/execution0/`: keras-tuner gives each trial that
folder and adds TensorBoard's HParams callback itself, so TensorBoard's HParams tab lists every
trial with its hyperparameters and losses. The best model is saved as `<run>/best_model.keras`
and scored once on the test set.

    python lesson_3/tuning/train_keras_tuner.py                  # both tuners, one run each
    python lesson_3/tuning/train_keras_tuner.py --tuner random   # one of them
    python lesson_3/tuning/train_keras_tuner.py --quick          # 3 trials of 2 epochs each, seconds
    tensorboard --logdir runs/lesson_3/tuning/keras_tuner        # then open the HPARAMS tab
"""

import argparse
import copy
import functools
import gc
import time

import numpy as np
import pandas as pd

from labkit import cli
from labkit.deferred import DeferredModule, keras  # TensorFlow loads on first use, after the flags are checked
from labkit.distribute import not_offered
from labkit.plan import QUICK_MAX_EPOCHS, training_plan
from labkit.session import RunSet, TrainingSession, run_main
from labkit.tabular import DATASET_FLAGS, load_regression_data
from lesson_3.regression.train_regression import regression_errors
from lesson_3.tuning.train_random_search import (
    HIDDEN_LAYER_CHOICES,
    LEARNING_RATE_RANGE,
    NEURONS_RANGE,
    SEED_RESULT,
    build_model,
)

keras_tuner = DeferredModule("keras_tuner")  # imports TensorFlow too, so it waits like keras

TUNERS = ("random", "hyperband")
MAX_TRIALS = 10  # the seed's n_iter
EPOCHS = 100  # the seed's fit: at most 100 epochs, with early stopping
PATIENCE = 10
HYPERBAND_EPOCHS = 20  # the most any Hyperband trial trains; the regression activity's 20 epochs
FACTOR = 3  # Hyperband keeps the best 1 in 3 of a round, and gives them 3 times the epochs
BATCH_SIZE = 32
LOW_RATE, HIGH_RATE = LEARNING_RATE_RANGE
QUICK_MAX_TRIALS = 3
SEARCH_FOLDER = "keras_tuner"  # runs/lesson_3/tuning/keras_tuner/: the searches, apart from the folder's other scripts
TRIALS_FOLDER = "trials"  # TensorBoard logs, one subfolder per trial
TUNER_FOLDER = "tuner"  # keras-tuner's oracle and trial checkpoints
BEST_MODEL = "best_model.keras"


# ----------------------------------------------------------------------------------------------
# The search space: this is the part of the lesson to read closely.


def build(hp, n_features):
    """One trial's model. Each `hp.*` call both declares a hyperparameter (the first time) and
    returns the value this trial drew for it.

    All three are declared on every call, even when n_hidden is 0 and n_neurons goes unused, so
    that every trial has all three values, as in the seed's RandomizedSearchCV."""
    n_hidden = hp.Choice("n_hidden", list(HIDDEN_LAYER_CHOICES))
    n_neurons = hp.Int("n_neurons", min_value=NEURONS_RANGE[0], max_value=NEURONS_RANGE[1])
    # Log sampling: 3e-4..3e-3 is as likely as 3e-3..3e-2, like scipy's reciprocal in the seed.
    learning_rate = hp.Float("learning_rate", LEARNING_RATE_RANGE[0], LEARNING_RATE_RANGE[1], sampling="log")
    return build_model(n_features, n_hidden=n_hidden, n_neurons=n_neurons, learning_rate=learning_rate)


def make_tuner(kind, hypermodel, run_dir, *, max_trials, max_epochs, factor, seed):
    """A seeded tuner that minimises the validation MSE and keeps its files in `run_dir`/tuner.

    The folder is new for every run, so `overwrite=False` never reloads an older search."""
    common = dict(objective="val_loss", seed=seed, directory=str(run_dir), project_name=TUNER_FOLDER, overwrite=False)
    if kind == "random":
        return named_trials(keras_tuner.RandomSearch, run_dir.name)(hypermodel, max_trials=max_trials, **common)
    hyperband = named_trials(keras_tuner.Hyperband, run_dir.name)
    tuner = hyperband(hypermodel, max_epochs=max_epochs, factor=factor, **common)
    # Hyperband's schedule sets how many trials it runs; a cap (quick mode, --max-trials) ends it sooner.
    tuner.oracle.max_trials = max_trials
    return tuner


def named_trials(tuner_class, search_name):
    """`tuner_class`, with each trial's HParams session named `<search_name>/<trial id>`.

    keras-tuner names a trial's HParams session by its bare id ("0", "1", ...), and TensorBoard's
    HParams tab merges sessions of the same name into one row, averaging their losses: pointed at
    runs/, it would fold every search's trial 0 together. Only the name changes; the folder and the
    HParams callback stay keras-tuner's own (its `_configure_tensorboard_dir` adds them)."""
    from tensorboard.plugins.hparams import api as hparams_api

    class NamedTrials(tuner_class):
        def _configure_tensorboard_dir(self, callbacks, trial, execution=0):
            super()._configure_tensorboard_dir(callbacks, trial, execution)
            for callback in callbacks:
                if isinstance(callback, hparams_api.KerasCallback):
                    callback._trial_id = f"{search_name}/{trial.trial_id}"

    NamedTrials.__name__ = tuner_class.__name__
    return NamedTrials


def trial_callbacks(run_dir, report):
    """What every trial's fit gets. keras-tuner deep-copies this list for each trial, points the
    TensorBoard copy at `trials/<trial id>/execution0` and adds an HParams callback beside it:
    adding our own `hp.KerasCallback` would log every trial twice."""
    return [
        keras.callbacks.TensorBoard(log_dir=str(run_dir / TRIALS_FOLDER)),
        keras.callbacks.EarlyStopping(monitor="val_loss", patience=PATIENCE),
        trial_report_callback(report),
    ]


def trial_report_callback(report):
    """A callback that hands `report` each trial's epochs and validation losses when it ends.

    `report` is a plain function: deep copies share it, so one function sees every trial."""

    class TrialReport(keras.callbacks.Callback):
        def __init__(self):
            super().__init__()
            self.report = report

        def on_train_begin(self, logs=None):
            self.started, self.epochs, self.val_losses = time.perf_counter(), [], []

        def on_epoch_end(self, epoch, logs=None):
            self.epochs.append(epoch)
            self.val_losses.append(float(logs["val_loss"]))

        def on_train_end(self, logs=None):
            self.report(self.epochs, self.val_losses, time.perf_counter() - self.started)

    return TrialReport()


# ----------------------------------------------------------------------------------------------
# One search


def describe_space(tuner) -> list[dict]:
    """The space as keras-tuner holds it: each hyperparameter's kind and range."""
    return [{"kind": type(hp).__name__, **hp.get_config()} for hp in tuner.oracle.hyperparameters.space]


def trial_rows(tuner, epochs_run) -> list[dict]:
    """One summary per trial, in the order they ran, with where its logs are."""
    rows = []
    for trial_id, trial in sorted(tuner.oracle.trials.items()):
        values = trial.hyperparameters.values
        epochs = epochs_run.get(trial_id, [])
        rows.append(
            {
                "trial_id": trial_id,
                "status": trial.status,
                "n_hidden": values.get("n_hidden"),
                "n_neurons": values.get("n_neurons"),
                "learning_rate": values.get("learning_rate"),
                "continues_trial": values.get("tuner/trial_id"),  # Hyperband: whose weights it started from
                # The TensorBoard steps (epochs, from 0) of its first and last epoch.
                "first_step": epochs[0] if epochs else None,
                "last_step": epochs[-1] if epochs else None,
                "best_val_loss": trial.score,
                # keras-tuner counts the best step from the trial's first epoch; TensorBoard from epoch 0.
                "best_step": epochs[trial.best_step] if trial.best_step is not None and epochs else None,
                "logs": f"{TRIALS_FOLDER}/{trial_id}/execution0",
            }
        )
    return rows


def search(kind, args, dataset, *, quiet=False, parent_dir=None) -> TrainingSession:
    """Run one tuner over the space, then save, test and record its best model."""
    search_args = copy.copy(args)
    if kind == "hyperband":
        search_args.epochs = args.hyperband_epochs  # the plan's epochs: the most one trial trains
    plan = training_plan(search_args)
    max_trials = args.max_trials or (MAX_TRIALS if kind == "random" else None)
    if plan.quick:
        max_trials = min(max_trials or QUICK_MAX_TRIALS, QUICK_MAX_TRIALS)
    settings = {"tuner": kind, "max_trials": max_trials, "patience": PATIENCE}
    if kind == "hyperband":
        settings["factor"] = args.factor
    keras.backend.clear_session()  # nothing but the data carries over from the other search
    with TrainingSession(
        __file__, search_args, tag=kind, dataset=dataset, quiet=quiet, parent_dir=parent_dir, extra_hparams=settings
    ) as session:
        data, run_dir = session.data, session.run_dir
        tuner = make_tuner(
            kind,
            functools.partial(build, n_features=data.num_features),
            run_dir,
            max_trials=max_trials,
            max_epochs=plan.epochs,
            factor=args.factor,
            seed=args.seed,
        )
        epochs_run = {}

        def report(epochs, val_losses, seconds):
            # The trial that is running is the oracle's one ongoing trial (one tuner, no workers).
            (trial,) = tuner.oracle.ongoing_trials.values()
            values = trial.hyperparameters.values
            epochs_run[trial.trial_id] = epochs
            # What run.json says if the search stops here: epochs trained in all, trials finished.
            session.record.data["epochs_completed"] += len(epochs)
            session.record.add_extra("trials_done", len(epochs_run))
            best = int(np.argmin(val_losses))
            session.say(
                f"trial {trial.trial_id}: {values['n_hidden']} hidden x {values['n_neurons']:>2} neurons, "
                f"learning rate {values['learning_rate']:.5f}: best val_loss {val_losses[best]:.4f} "
                f"at epoch {epochs[best] + 1} (epochs {epochs[0] + 1}-{epochs[-1] + 1}, {seconds:.1f} s)"
            )

        session.say(f"{kind} search: {describe_budget(kind, max_trials, plan.epochs, args.factor)}")
        # keras-tuner runs a full garbage collection before building each model: 0.4 s with all of
        # TensorFlow's objects to scan, next to nothing once they are frozen out of it.
        gc.freeze()
        try:
            tuner.search(
                session.dataset_pipeline(data.x_train, data.y_train),
                epochs=plan.epochs,
                steps_per_epoch=plan.steps_per_epoch_for(len(data.x_train)) if plan.repeat else None,
                validation_data=(data.x_val, data.y_val),
                callbacks=trial_callbacks(run_dir, report),
                shuffle=False,  # the pipeline shuffles, reproducibly
                verbose=0,  # keras-tuner's tables and a line per epoch: the one line per trial above is enough
            )
            best_trial = tuner.oracle.get_best_trials(1)[0]
            best_model = tuner.get_best_models(1)[0]  # rebuilt, with the best trial's weights from its best epoch
        finally:
            gc.unfreeze()
        best_model.save(run_dir / BEST_MODEL)
        session.model = best_model
        record_search(session, tuner, best_trial, trial_rows(tuner, epochs_run), max_epochs=plan.epochs)
    return session


def record_search(session, tuner, best_trial, rows, *, max_epochs):
    """Score the best model on the test set, and keep the search's results in run.json."""
    data, search_settings = session.data, session.extra_hparams
    tested = regression_errors(session.model.predict(data.x_test, verbose=0), data.y_test)
    session.record_test_metrics({"loss": tested["mse"], "rmse": tested["rmse"]})
    session.record.set_validation_metrics({"loss": best_trial.score})
    mean_only = regression_errors(np.full(len(data.y_val), data.y_train.mean()), data.y_val)
    results = {
        "tuner": search_settings["tuner"],
        "space": describe_space(tuner),
        "trials": len(rows),
        "max_trials": search_settings["max_trials"],
        "max_epochs_per_trial": max_epochs,
        "factor": search_settings.get("factor"),
        "best_trial_id": best_trial.trial_id,
        "best_hyperparameters": best_trial.hyperparameters.values,
        "best_val_loss": best_trial.score,
        "best_model": BEST_MODEL,
        "test": tested,
        "training_mean_val_loss": mean_only["mse"],  # the floor: a model that ignores the features
        "seed_result": SEED_RESULT,
        "per_trial": rows,
    }
    session.record.add_extra("search", results)
    session.say(results_text(results, data.target_unit))


def describe_budget(kind, max_trials, epochs, factor) -> str:
    if kind == "random":
        return f"{max_trials} trials of up to {epochs} epochs (early stopping after {PATIENCE} without progress)"
    cap = f", at most {max_trials} trials" if max_trials else ""
    return f"Hyperband up to {epochs} epochs a trial, keeping the best 1 in {factor} of each round{cap}"


def results_text(results, target_unit) -> str:
    table = pd.DataFrame(results["per_trial"]).set_index("trial_id")
    table["epochs"] = [
        "-" if pd.isna(first) else f"{int(first) + 1}-{int(last) + 1}"  # a failed trial trained none
        for first, last in zip(table.first_step, table.last_step, strict=True)
    ]
    table = table[["n_hidden", "n_neurons", "learning_rate", "epochs", "best_val_loss"]].sort_values("best_val_loss")
    best, seed, tested = results["best_hyperparameters"], results["seed_result"], results["test"]
    return "\n".join(
        [
            f"\n{results['tuner']} search, {results['trials']} trials, best first:",
            table.to_string(float_format="{:.5f}".format),
            f"Best: trial {results['best_trial_id']}, {best['n_hidden']} hidden x {best['n_neurons']} neurons, "
            f"learning rate {best['learning_rate']:.5f}: validation MSE {results['best_val_loss']:.4f} "
            f"(predicting the training mean: {results['training_mean_val_loss']:.4f}); "
            f"test MSE {tested['mse']:.4f}, RMSE {tested['rmse']:.4f} ({target_unit})",
            f"The seed's search (California housing, 3-fold CV): {seed['n_hidden']} hidden x {seed['n_neurons']} "
            f"neurons, learning rate {seed['learning_rate']}, MSE {-seed['score']}",
        ]
    )


# ----------------------------------------------------------------------------------------------
# Command line


def hyperband_factor(text: str) -> int:
    value = cli.positive_int(text)
    if value < 2:
        raise argparse.ArgumentTypeError(f"must be at least 2 (Hyperband keeps 1 in FACTOR), got {value}")
    return value


def make_parser():
    parser = cli.build_parser(
        __doc__,
        epochs=EPOCHS,
        learning_rate=None,
        not_here={
            "--learning-rate": f"the search draws it from {LOW_RATE:g} to {HIGH_RATE:g} itself",
            **not_offered("KerasTuner trains every trial's model itself"),
        },
        epochs_help=f"random search: the most epochs one trial trains, stopping early (default {EPOCHS})",
        batch_size=BATCH_SIZE,
        several_runs="one model per trial",
        **DATASET_FLAGS,
    )
    parser.add_argument(
        "--tuner", choices=(*TUNERS, "both"), default="both", help="which search to run (default: both, one run each)"
    )
    parser.add_argument(
        "--max-trials",
        type=cli.positive_int,
        default=None,
        help=f"trials per search (default: {MAX_TRIALS} for random search, Hyperband's whole schedule; "
        f"quick mode: at most {QUICK_MAX_TRIALS})",
    )
    parser.add_argument(
        "--hyperband-epochs",
        type=cli.positive_int,
        default=HYPERBAND_EPOCHS,
        help=f"Hyperband: the most epochs one trial reaches (default {HYPERBAND_EPOCHS}; quick: {QUICK_MAX_EPOCHS})",
    )
    parser.add_argument(
        "--factor",
        type=hyperband_factor,
        default=FACTOR,
        help=f"Hyperband: keep the best 1 in FACTOR of each round, for FACTOR times the epochs (default {FACTOR})",
    )
    return parser


def train(args, *, quiet=False, parent_dir=None) -> RunSet:
    """One search per tuner asked for, on one copy of the data; returns a RunSet keyed by tuner."""
    dataset = load_regression_data(
        args.dataset, limits=training_plan(args).slice, announce=(lambda message: None) if quiet else print
    )
    parent_dir = parent_dir or args.runs_root / "lesson_3" / "tuning" / SEARCH_FOLDER
    runs = RunSet()
    for kind in TUNERS if args.tuner == "both" else (args.tuner,):
        runs.add(kind, search(kind, args, dataset, quiet=quiet, parent_dir=parent_dir))
        if runs.exit_code:  # Ctrl-C: stop here, the finished searches stay as they are
            break
    return runs


def main(argv=None):
    return run_main(train, make_parser, argv)


if __name__ == "__main__":
    raise SystemExit(main())
