# ---
# jupyter:
#   jupytext:
#     text_representation:
#       extension: .py
#       format_name: percent
#       format_version: '1.3'
#       jupytext_version: 1.19.6
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # Lesson 3, tuning: keras-tuner, and the search in TensorBoard's HParams tab
#
# How many hidden layers, how many neurons, which learning rate? The seed answers with
# scikit-learn's `RandomizedSearchCV` over 0-3 layers, 1-99 neurons and a learning rate between
# 3e-4 and 3e-2 (this folder's `train_random_search.py`). Here the same space goes to keras-tuner,
# twice:
#
# - a **random search** draws `--max-trials` settings (10, the seed's n_iter) and trains each for
#   up to `--epochs` (100), stopped early after 10 epochs without a better validation loss;
# - **Hyperband** spends its epochs unevenly: many settings get a few epochs, and only the best of
#   each round are trained further, up to `--hyperband-epochs` (20), keeping 1 in `--factor` (3).
#
# A third tuner, **Bayesian optimization** (`--tuner bayesian`), is kept out of the default pair
# to keep the default run short: it draws its first trials at random, then fits a Gaussian process
# to the scores so far and picks the next setting where that model expects a low loss or is still
# unsure. The section "Other tuners" at the end of the page says where it comes from.
#
# Each search is one run folder. keras-tuner keeps its own bookkeeping in `<run>/tuner/`, and every
# trial logs to `<run>/trials/<trial id>/execution0/`, with TensorBoard's HParams callback, so that
# the HParams tab lists every trial with its hyperparameters and losses. The best model is saved
# as `<run>/best_model.keras` and scored once on the test set.
#
# This file is both the script and the notebook (`train_keras_tuner.ipynb` beside it holds the same
# cells, kept in step by jupytext):
#
# ```
# python lesson_3/tuning/train_keras_tuner.py                  # both tuners, one run each
# python lesson_3/tuning/train_keras_tuner.py --tuner random   # one of them
# python lesson_3/tuning/train_keras_tuner.py --tuner bayesian # a third: Bayesian optimization
# python lesson_3/tuning/train_keras_tuner.py --quick          # 3 trials of 2 epochs each, seconds
# tensorboard --logdir runs/lesson_3/tuning/keras_tuner        # then open the HPARAMS tab
# ```
#
# In the notebook, set `LAB_QUICK=1` before starting Jupyter for the quick version.

# %%
# extra code: lets this page run outside the lab's environment (scripts/lab_bootstrap.py). With the
# lab installed it does nothing. In Colab, which opens a notebook alone, it clones the lab and installs
# it (a few minutes, once per session); anywhere else it says in one line how to run this page.
import importlib.util
import os
import sys
from pathlib import Path

if importlib.util.find_spec("labkit") is None:
    if "google.colab" in sys.modules and not Path("keras-course-lab").is_dir():
        os.system("git clone -q https://github.com/keras-course-lab/keras-course-lab")
    # A script knows its own file; a notebook runs in its own folder.
    sys.path += [str(Path(globals().get("__file__", ".")).parent / "../../scripts"), "keras-course-lab/scripts"]
    import lab_bootstrap

    lab_bootstrap.main()

# %% [markdown]
# ## The settings
#
# The search draws the learning rate itself, and keras-tuner trains every trial's model itself:
# `--learning-rate` and `--distribute` are refused, with the reason.

# %%
import argparse

from labkit import cli
from labkit.distribute import not_offered
from labkit.plan import QUICK_MAX_EPOCHS
from labkit.tabular import DATASET_FLAGS

LEARNING_RATE_RANGE = (3e-4, 3e-2)  # the seed's, drawn on a log scale
MAX_TRIALS, QUICK_MAX_TRIALS = 10, 3  # random search: the seed's n_iter; quick mode: at most 3 per search
PATIENCE = 10  # epochs without a better validation loss before a trial stops


def hyperband_factor(text: str) -> int:
    value = cli.positive_int(text)
    if value < 2:
        raise argparse.ArgumentTypeError(f"must be at least 2 (Hyperband keeps 1 in FACTOR), got {value}")
    return value


parser = cli.build_parser(
    "Lesson 3, tuning with keras-tuner: the seed's search space, searched by RandomSearch and by Hyperband.",
    epochs=100,
    learning_rate=None,
    not_here={
        "--learning-rate": "the search draws it from {:g} to {:g} itself".format(*LEARNING_RATE_RANGE),
        **not_offered("KerasTuner trains every trial's model itself"),
    },
    epochs_help="random search: the most epochs one trial trains, stopping early (default 100)",
    batch_size=32,
    several_runs="one model per trial",
    **DATASET_FLAGS,
)
parser.add_argument(
    "--tuner",
    choices=("random", "hyperband", "bayesian", "both"),
    default="both",
    help="which search to run; both = random and hyperband (default: both)",
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
    default=20,
    help=f"Hyperband: the most epochs one trial reaches (default 20; quick: {QUICK_MAX_EPOCHS})",
)
parser.add_argument(
    "--factor",
    type=hyperband_factor,
    default=3,
    help="Hyperband: keep the best 1 in FACTOR of each round, for FACTOR times the epochs (default 3)",
)
config = cli.parse(parser)
tuners = ("random", "hyperband") if config.tuner == "both" else (config.tuner,)
print(config.plan)

# %%
import dataclasses
import gc
import time
from pathlib import Path

import keras
import keras_tuner
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from tensorboard.plugins.hparams import api as hparams_api

from labkit.distribute import clear_session
from labkit.tabular import load_regression_data
from labkit.tblogs import read_scalars
from labkit.training import start_run
from lesson_3.models import searched_mlp

# %% [markdown]
# ## The data
#
# Part 1's regression data: California housing when it is on the machine (`python
# scripts/fetch_data.py` fetches it). Without it, the run says so and searches scikit-learn's
# bundled diabetes set instead (a disease score divided by 100).

# %%
data = load_regression_data(config.dataset, limits=config.plan.slice)  # extra code: housing, else diabetes, said
x_train, y_train = data.x_train, data.y_train
x_valid, y_valid = data.x_val, data.y_val
x_test, y_test = data.x_test, data.y_test

print("train:", x_train.shape, y_train.shape, "| valid:", x_valid.shape, "| test:", x_test.shape)
print("target:", data.target_name, f"({data.target_unit}) | first values:", y_train[:5].round(2))

# %% [markdown]
# ## The space, declared where the model uses it
#
# keras-tuner calls `build(hp)` once per trial. Each `hp.Choice`, `hp.Int` or `hp.Float` both
# declares a hyperparameter (the first time) and returns the value this trial drew for it. The
# network is the random search's `searched_mlp` (taught by `train_random_search.py`, handed here
# by `lesson_3/models.py`): `n_hidden` ReLU layers of `n_neurons` each and one linear output,
# trained on the MSE with plain SGD.
#
# All three are declared on every call, even when `n_hidden` is 0 and `n_neurons` goes unused,
# so that every trial has all three values, as in the seed's `RandomizedSearchCV`.


# %%
def build(hp, n_features):
    n_hidden = hp.Choice("n_hidden", [0, 1, 2, 3])
    n_neurons = hp.Int("n_neurons", min_value=1, max_value=99)
    # Log sampling: 3e-4..3e-3 is as likely as 3e-3..3e-2, like scipy's reciprocal in the seed.
    learning_rate = hp.Float("learning_rate", *LEARNING_RATE_RANGE, sampling="log")
    model = searched_mlp(n_features, n_hidden, n_neurons)
    model.compile(optimizer=keras.optimizers.SGD(learning_rate=learning_rate), loss="mse")
    return model


# %% [markdown]
# Called once with an empty `HyperParameters`, `build` shows the space it declares (and builds the
# model of the default values: no hidden layer, the lowest rate).

# %%
space = keras_tuner.HyperParameters()
build(space, n_features=x_train.shape[1]).summary()
for hyperparameter in space.space:
    print(hyperparameter.name, hyperparameter.get_config())

# %% [markdown]
# ## What every trial's fit gets
#
# Given a TensorBoard callback, keras-tuner points a copy of it at `trials/<trial id>/execution0`
# for each trial and adds TensorBoard's HParams callback beside it (our own would log every trial
# twice). Early stopping ends a trial after 10 epochs without a better validation loss. A small
# callback of ours hands each finished trial's epochs and losses to a function, for one line per
# trial and for `run.json`.


# %%
class TrialReport(keras.callbacks.Callback):
    """Calls `report(epochs, val_losses, seconds)` when a trial ends. keras-tuner deep-copies the
    callbacks for each trial; the copies share the one plain function."""

    def __init__(self, report):
        super().__init__()
        self.report = report

    def on_train_begin(self, logs=None):
        self.started, self.epochs, self.val_losses = time.perf_counter(), [], []

    def on_epoch_end(self, epoch, logs=None):
        self.epochs.append(epoch)
        self.val_losses.append(float(logs["val_loss"]))

    def on_train_end(self, logs=None):
        self.report(self.epochs, self.val_losses, time.perf_counter() - self.started)


# %% [markdown]
# One catch, which the two tuner classes below handle: keras-tuner names each trial's HParams
# session by its bare id ("0", "1", ...), and TensorBoard's HParams tab merges sessions of the same
# name into one row, averaging their losses. Pointed at a folder of several searches, it would fold
# every search's trial 0 together. So each session is named `<search run>/<trial id>`; the folder
# and the HParams callback stay keras-tuner's own.


# %%
class NamedTrials:
    """extra code: renames the HParams session that keras-tuner's `_configure_tensorboard_dir` adds."""

    def _configure_tensorboard_dir(self, callbacks, trial, execution=0):
        super()._configure_tensorboard_dir(callbacks, trial, execution)
        for callback in callbacks:
            if isinstance(callback, hparams_api.KerasCallback):
                callback._trial_id = f"{Path(self.directory).name}/{trial.trial_id}"


class RandomSearch(NamedTrials, keras_tuner.RandomSearch):
    pass


class Hyperband(NamedTrials, keras_tuner.Hyperband):
    pass


class BayesianOptimization(NamedTrials, keras_tuner.BayesianOptimization):
    pass


# %% [markdown]
# Open TensorBoard on the folder the searches write to (`runs/lesson_3/tuning/keras_tuner` unless
# you set `--logdir` or `LAB_RUNS_DIR`) before they start. Every trial appears as a run of its own,
# `<search>/trials/<trial id>/execution0`, once it has finished training.

# %%
runs_folder = config.runs_root / config.lesson / config.activity / "keras_tuner"

# %%
# %load_ext tensorboard

# %%
# %tensorboard --logdir "$runs_folder"


# %%
# extra code: what run.json and the printed table keep of a search
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
                "logs": f"trials/{trial_id}/execution0",
            }
        )
    return rows


def results_text(results) -> str:
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
            f"test MSE {tested['mse']:.4f}, RMSE {tested['rmse']:.4f} ({data.target_unit})",
            f"The seed's search (California housing, 3-fold CV): {seed['n_hidden']} hidden x {seed['n_neurons']} "
            f"neurons, learning rate {seed['learning_rate']}, MSE {-seed['score']}",
        ]
    )


def mse(predicted, true) -> float:
    """In float64, outside Keras."""
    return float(np.mean((np.asarray(predicted, "float64").reshape(-1) - np.asarray(true, "float64")) ** 2))


# %% [markdown]
# ## One search
#
# Each search is a run of its own (tag `random`, `hyperband` or `bayesian`); for Hyperband, `--epochs` becomes
# `--hyperband-epochs`, the most one trial trains. The tuner keeps its files in the run folder and
# minimises the validation MSE; the seed makes it draw the same trials every time. `tuner.search`
# takes what `model.fit` takes, and fits one model per trial. Afterwards `get_best_models` rebuilds
# the best trial's model with the weights of its best epoch; it is saved and tested once.


# %%
def search(kind):
    run_config = dataclasses.replace(config, epochs=config.hyperband_epochs) if kind == "hyperband" else config
    max_trials = config.max_trials or (None if kind == "hyperband" else MAX_TRIALS)
    if config.quick:
        max_trials = min(max_trials or QUICK_MAX_TRIALS, QUICK_MAX_TRIALS)
    settings = {"tuner": kind, "max_trials": max_trials, "patience": PATIENCE}
    if kind == "hyperband":
        settings["factor"] = config.factor
    clear_session()  # nothing but the data carries over from the other search
    run = start_run(run_config, data, tag=kind, hparams=settings, parent_dir=runs_folder)

    def hypermodel(hp):
        return build(hp, n_features=x_train.shape[1])

    common = dict(objective="val_loss", seed=config.seed, directory=str(run.dir), project_name="tuner")
    if kind == "random":
        tuner = RandomSearch(hypermodel, max_trials=max_trials, **common)
        print(f"random search: {max_trials} trials of up to {run.epochs} epochs (early stopping after {PATIENCE})")
    elif kind == "bayesian":
        # Half the trials drawn at random, the other half where the Gaussian process fitted to the
        # scores so far expects a low validation loss (keras-tuner's default, 3 random trials per
        # hyperparameter, would spend all ten of ours at random).
        random_start = max(1, max_trials // 2)
        tuner = BayesianOptimization(hypermodel, max_trials=max_trials, num_initial_points=random_start, **common)
        print(f"Bayesian optimization: {max_trials} trials of up to {run.epochs} epochs (early stop after {PATIENCE})")
    else:
        tuner = Hyperband(hypermodel, max_epochs=run.epochs, factor=config.factor, **common)
        tuner.oracle.max_trials = max_trials  # Hyperband's schedule sets the trials; a cap ends it sooner
        cap = f", at most {max_trials} trials" if max_trials else ""
        print(f"Hyperband up to {run.epochs} epochs a trial, keeping the best 1 in {config.factor} of each round{cap}")

    epochs_run = {}

    def report(epochs, val_losses, seconds):
        (trial,) = tuner.oracle.ongoing_trials.values()  # the one trial running (one tuner, no workers)
        values = trial.hyperparameters.values
        epochs_run[trial.trial_id] = epochs
        run.record.data["epochs_completed"] += len(epochs)  # what run.json says if the search stops here
        run.record.add_extra("trials_done", len(epochs_run))
        best = int(np.argmin(val_losses))
        print(
            f"trial {trial.trial_id}: {values['n_hidden']} hidden x {values['n_neurons']:>2} neurons, "
            f"learning rate {values['learning_rate']:.5f}: best val_loss {val_losses[best]:.4f} "
            f"at epoch {epochs[best] + 1} (epochs {epochs[0] + 1}-{epochs[-1] + 1}, {seconds:.1f} s)"
        )

    # extra code: keras-tuner collects all garbage before building each model, 0.4 s with all of
    # TensorFlow's objects to scan, next to nothing once they are frozen out of it
    gc.freeze()
    try:
        tuner.search(
            run.batches(x_train, y_train),
            epochs=run.epochs,
            steps_per_epoch=run.steps_per_epoch,
            validation_data=(x_valid, y_valid),
            callbacks=[
                keras.callbacks.TensorBoard(log_dir=run.dir / "trials"),
                keras.callbacks.EarlyStopping(monitor="val_loss", patience=PATIENCE),
                TrialReport(report),
            ],
            shuffle=False,  # run.batches shuffles, reproducibly
            verbose=0,  # keras-tuner's tables and a line per epoch: the one line per trial above is enough
        )
        best_trial = tuner.oracle.get_best_trials(1)[0]
        best_model = tuner.get_best_models(1)[0]
    finally:
        gc.unfreeze()
    best_model.save(run.dir / "best_model.keras")

    test_mse = mse(best_model.predict(x_test, verbose=0), y_test)
    tested = {"mse": test_mse, "rmse": float(np.sqrt(test_mse))}
    run.record_test({"loss": tested["mse"], "rmse": tested["rmse"]})
    run.record.set_validation_metrics({"loss": best_trial.score})
    rows = trial_rows(tuner, epochs_run)
    results = {
        "tuner": kind,
        "space": [{"kind": type(hp).__name__, **hp.get_config()} for hp in tuner.oracle.hyperparameters.space],
        "trials": len(rows),
        "max_trials": max_trials,
        "max_epochs_per_trial": run.epochs,
        "factor": settings.get("factor"),
        "best_trial_id": best_trial.trial_id,
        "best_hyperparameters": best_trial.hyperparameters.values,
        "best_val_loss": best_trial.score,
        "best_model": "best_model.keras",
        "test": tested,
        "training_mean_val_loss": mse(np.full(len(y_valid), y_train.mean()), y_valid),  # a model that ignores x
        "seed_result": {"learning_rate": 0.00336, "n_hidden": 2, "n_neurons": 42, "score": -0.319},
        "per_trial": rows,
    }
    run.record.add_extra("search", results)
    print(results_text(results))
    run.finish(best_model)
    return run


# %% [markdown]
# ## The searches
#
# Quick mode (`LAB_QUICK=1`) gives each search 3 trials of at most 2 epochs: enough to check the
# code, not to trust the ranking.

# %%
searches = {kind: search(kind) for kind in tuners}

# %% [markdown]
# ## Both searches, side by side
#
# Each search wrote one line per trial to its `run.json` (`extra.search.per_trial`). The score of a
# trial is its **best** validation MSE over the epochs it trained, and that is what the tuner ranks
# by. In Hyperband, a trial whose `continues_trial` is set started from another trial's weights: the
# same hyperparameters, trained for more epochs because they ranked high.

# %%
rows = []
for kind, run in searches.items():
    for trial in run.record.data["extra"]["search"]["per_trial"]:
        rows.append({"tuner": kind, **{k: v for k, v in trial.items() if k not in ("logs", "status")}})
trials = pd.DataFrame(rows)
print(trials.sort_values("best_val_loss").to_string(index=False, float_format="{:.5f}".format))

# %%
summary = {}
for kind, run in searches.items():
    found = run.record.data["extra"]["search"]
    summary[kind] = {
        "trials": found["trials"],
        "best validation MSE": found["best_val_loss"],
        "test MSE of the best model": found["test"]["mse"],
        "predicting the training mean": found["training_mean_val_loss"],
        "search time (s)": run.record.data["wall_time_s"],
    }
print(pd.DataFrame(summary).round(4).to_string())
seed = found["seed_result"]
print(
    f"\nThe seed's search on California housing: {seed['n_hidden']} hidden layers of {seed['n_neurons']} neurons, "
    f"learning rate {seed['learning_rate']}, cross-validated MSE {-seed['score']}"
)

# %% [markdown]
# ## Every trial's validation curve
#
# Read back from each trial's own event files. In the Hyperband plot, a curve that starts late is a
# trial that continued another one: successive halving at work. (A quick run has too few epochs for
# Hyperband to halve anything with its default factor of 3; run without `LAB_QUICK` to see it.)

# %%
fig, axes = plt.subplots(1, len(searches), figsize=(5.5 * len(searches), 4), sharey=True, squeeze=False)
for ax, (kind, run) in zip(axes[0], searches.items(), strict=True):
    scalars = read_scalars(run.dir)
    validation = scalars[(scalars.tag == "epoch_loss") & scalars.split.str.endswith("/validation")]
    for split, points in validation.groupby("split"):
        ax.plot(points.step + 1, points.value, marker=".", label=split.split("/")[1])
    ax.set_title(f"{kind}: validation MSE of each trial")
    ax.set_xlabel("epoch")
    ax.set_yscale("log")
axes[0][0].set_ylabel("validation MSE (log scale)")
if len(trials) <= 10:
    axes[0][0].legend(title="trial")
plt.show()

# %% [markdown]
# ## The best model, saved as `.keras`
#
# Loaded back, the last search's best model predicts like any Keras model:

# %%
model = keras.saving.load_model(run.dir / "best_model.keras")
model.summary()
# For a handful of rows, calling the model is the quick way; predict() pays off on many batches.
predicted = model(x_test[:3]).numpy().ravel()
print(pd.DataFrame({"predicted": predicted, "true": y_test[:3]}))

# %% [markdown]
# ## Reading the search in TensorBoard's HParams tab
#
# keras-tuner logged every trial for the HParams dashboard. Open the **HPARAMS** tab above (or at
# http://localhost:6006 when TensorBoard runs in a terminal). It has three views:
#
# - **TABLE VIEW**: one row per trial, named `<search run>/<trial id>` in the *Trial ID* column, with
#   `n_hidden`, `n_neurons`, `learning_rate` and the logged losses. Sort by *validation.epoch_loss*
#   in the *Sorting* box on the left; tick *Show Metrics* on a row to see its curves.
# - **PARALLEL COORDINATES VIEW**: one line per trial across an axis per hyperparameter and metric.
#   Drag along the `validation.epoch_loss` axis to keep only the best trials, and see which layer
#   counts and learning rates they share.
# - **SCATTER PLOT MATRIX VIEW**: every hyperparameter against every metric; `learning_rate` against
#   `validation.epoch_loss` shows how much the rate matters next to the width of the layers.
#
# The checkboxes and ranges on the left hide hyperparameters, metrics or trials (say, only
# `n_hidden` 0). Two things to know when comparing with the tables above: the HParams tab shows the
# loss of each trial's **last** epoch, while the tuner ranks by its **best** epoch; and pointed at a
# folder holding several searches, it lists every trial of all of them.
#
# ## Other tuners
#
# The chapter lists the tools of its day for searching hyperparameters. Ideas outlive libraries, so
# each row says which idea it stands for and where that idea lives now. Only keras-tuner is
# installed with the lab.
#
# - **Hyperopt**: tree-structured Parzen estimators, which model where good and where bad settings
#   lie and sample from the good side. Optuna, much used today, takes the same estimator by default.
# - **Hyperas** and **kopt**: Hyperopt wrapped for Keras models; written for the standalone Keras
#   of their day.
# - **Talos**: scans of Keras models over a grid or at random; the idea of the random search here.
# - **Keras Tuner**: this page. Random search, Hyperband and Bayesian optimization.
# - **scikit-optimize**: `BayesSearchCV`, a drop-in for `RandomizedSearchCV` that fits a Gaussian
#   process to the scores; the same idea as `--tuner bayesian` here.
# - **Spearmint**: an early library of Bayesian optimization with Gaussian processes.
# - **Hyperband**: an algorithm rather than a library: many short trials, and only the best of
#   each round trained longer. `--tuner hyperband` here.
# - **Sklearn-Deap**: evolutionary search (mutation and selection) for scikit-learn's searches.
# - **Population-based training** (DeepMind): a population of models trains at once; now and then
#   the weak ones copy the weights of the strong ones and perturb their settings. Ray Tune
#   offers it.
# - **AutoML services**: search the architecture too, as a hosted service (Google Cloud's Vertex
#   AI, for one).
#
# Whatever the tool, the workflow stays the one above: a space, a budget of trials, a validation
# score to rank them, and one test at the end.
#
# ## Questions to explore
#
# 1. Which search found the lower validation MSE, and which one spent less time? Run both again with
#    `--seed 1`: does the ranking hold?
# 2. Compare the best settings with the seed's (2 layers of 42 neurons, learning rate 0.0034). Is the
#    learning rate the hyperparameter that matters most here? Check in the scatter plot matrix.
# 3. Give Hyperband `--factor 2`, then `--factor 4`. How do the number of trials and the epochs
#    per trial change?
# 4. The best model is tested once, at the end. Why not pick the best trial by its test MSE instead?
# 5. Run `--tuner bayesian` with the same `--max-trials` as the random search. Do its later trials
#    (after the random start) score better than the random search's? Compare the two in the
#    parallel coordinates view.
