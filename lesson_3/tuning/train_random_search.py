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
# # Lesson 3, tuning: random search, how deep, how wide, how fast?
#
# A regression MLP has more knobs than its weights: the number of hidden layers, the neurons in
# each, the learning rate. Rather than try a grid of every combination, a random search draws a
# fixed number of candidates from the space and keeps the best. Here scikit-learn's
# `RandomizedSearchCV` draws ten settings from the seed's space (0 to 3 hidden layers, 1 to 99
# neurons, a learning rate between 3e-4 and 3e-2 on a log scale) and scores each one by 3-fold
# cross-validation on the training rows. The Keras model reaches scikit-learn through Keras 3's
# own wrapper, `keras.wrappers.SKLearnRegressor`.
#
# This file is both the script and the notebook (`train_random_search.ipynb` beside it holds the
# same cells, kept in step by jupytext):
#
# ```
# python lesson_3/tuning/train_random_search.py                 # the seed's search: 10 candidates x 3 folds
# python lesson_3/tuning/train_random_search.py --quick         # 3 candidates x 2 folds x 2 epochs: seconds
# python lesson_3/tuning/train_random_search.py --n-iter 20 --seed 7
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
# The seed's: `--n-iter` 10 candidates, `--cv` 3 folds, each fit up to `--epochs` 100 in batches
# of 32, stopped after `--patience` 10 epochs without a better validation loss. Quick mode draws 3
# candidates, scores them on 2 folds and trains each for 2 epochs. The search draws the learning
# rate itself, and scikit-learn trains its models itself: `--learning-rate`, `--steps-per-epoch`
# and `--distribute` are refused, with the reason.

# %%
import argparse

from labkit import LabError, cli
from labkit.distribute import not_offered
from labkit.tabular import DATASET_FLAGS

LEARNING_RATE_RANGE = (3e-4, 3e-2)  # drawn log-uniformly
QUICK_MAX_CANDIDATES, QUICK_MAX_FOLDS = 3, 2


def fold_count(text: str) -> int:
    value = cli.positive_int(text)
    if value < 2:
        raise argparse.ArgumentTypeError(
            f"must be at least 2 (cross-validation trains on some folds, scores on one), got {value}"
        )
    return value


parser = cli.build_parser(
    "Lesson 3, tuning: a randomized search over the depth, width and learning rate of a regression MLP.",
    epochs=100,
    learning_rate=None,
    batch_size=32,
    several_runs="one model per candidate and fold",
    not_here={
        "--learning-rate": "the search draws it from {:g} to {:g} itself".format(*LEARNING_RATE_RANGE),
        "--steps-per-epoch": "every epoch of a fit is one pass over its folds",
        **not_offered("scikit-learn's search trains its models itself"),
    },
    **DATASET_FLAGS,
)
parser.add_argument(
    "--n-iter",
    type=cli.positive_int,
    default=10,
    help=f"candidates to draw (default 10, as in the seed; quick mode: at most {QUICK_MAX_CANDIDATES})",
)
parser.add_argument(
    "--cv",
    type=fold_count,
    default=3,
    help=f"cross-validation folds, at least 2 (default 3; quick mode: at most {QUICK_MAX_FOLDS})",
)
parser.add_argument(
    "--patience",
    type=cli.positive_int,
    default=10,
    help="epochs without a better validation loss before a fit stops (default 10)",
)
config = cli.parse(parser)
n_iter = min(config.n_iter, QUICK_MAX_CANDIDATES) if config.quick else config.n_iter
folds = min(config.cv, QUICK_MAX_FOLDS) if config.quick else config.cv
print(config.plan)

# %%
import contextlib
import logging
import math

import keras
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import tensorflow as tf
from matplotlib.ticker import MaxNLocator
from scipy.stats import loguniform  # scipy's name for the seed's `reciprocal` distribution
from sklearn.base import BaseEstimator, clone
from sklearn.dummy import DummyRegressor
from sklearn.linear_model import LinearRegression
from sklearn.model_selection import ParameterSampler, RandomizedSearchCV, cross_val_score

from labkit.tabular import load_regression_data
from labkit.tblogs import curve, read_scalars
from labkit.training import start_run

# %% [markdown]
# ## The data
#
# Part 1's regression data: California housing (8 features, the median house value in
# $100,000) when it is on the machine. Without it, the run says so and searches scikit-learn's
# bundled diabetes set instead (10 features, a disease score divided by 100): its scores are then
# not comparable with the seed's. The features are standardised on the training rows.

# %%
data = load_regression_data(config.dataset, limits=config.plan.slice)  # extra code: housing, else diabetes, said
x_train, y_train = data.x_train, data.y_train
x_valid, y_valid = data.x_val, data.y_val
x_test, y_test = data.x_test, data.y_test

print("train:", x_train.shape, y_train.shape, "| valid:", x_valid.shape, "| test:", x_test.shape)
print("target:", data.target_name, f"({data.target_unit}) | first values:", y_train[:5].round(2))
if folds > len(y_train):
    raise LabError(f"--cv {folds}: more folds than the {len(y_train)} training rows of {data.name}")

# %% [markdown]
# ## The model, for any depth and width
#
# A candidate's network: `n_hidden` ReLU layers of `n_neurons` each, then one linear output unit,
# so that any real value can come out. With `n_hidden=0` it is a linear regression trained by
# gradient descent (and `n_neurons` goes unused). The keras-tuner page of this folder builds the
# same networks: the `# @save` line lets `lesson_3/models.py` hand it this very definition.
#
# `build_model` compiles it the seed's way: the MSE as the loss, plain SGD at the candidate's
# learning rate.


# %%
# @save
def searched_mlp(n_features: int, n_hidden: int = 1, n_neurons: int = 30) -> keras.Sequential:
    """n_features -> n_hidden Dense(n_neurons, ReLU) layers -> Dense(1), a linear output; uncompiled."""
    model = keras.Sequential([keras.Input(shape=(n_features,), name="features")], name="searched_mlp")
    for index in range(n_hidden):
        model.add(keras.layers.Dense(n_neurons, activation="relu", name=f"hidden_{index + 1}"))
    model.add(keras.layers.Dense(1, name="prediction"))
    return model


def build_model(n_features, n_hidden=1, n_neurons=30, learning_rate=3e-3):
    model = searched_mlp(n_features, n_hidden, n_neurons)
    model.compile(optimizer=keras.optimizers.SGD(learning_rate=learning_rate), loss="mse")
    return model


build_model(x_train.shape[1], n_hidden=2, n_neurons=42).summary()  # the seed's best shape

# %% [markdown]
# ## The search space
#
# What `RandomizedSearchCV` draws from: a list is drawn uniformly, a distribution is sampled.
# The learning rate is drawn log-uniformly, so that 3e-4..3e-3 is as likely as 3e-3..3e-2.

# %%
SEARCH_SPACE = {
    "n_hidden": [0, 1, 2, 3],
    "n_neurons": np.arange(1, 100),
    "learning_rate": loguniform(*LEARNING_RATE_RANGE),
}
SEED_RESULT = {"learning_rate": 0.00336, "n_hidden": 2, "n_neurons": 42, "score": -0.319}  # California housing, cv=3

# %% [markdown]
# ## What scikit-learn sees
#
# scikit-learn tunes an estimator through `get_params()` and `set_params()`, and copies it with
# `clone()` before every fit. `SKLearnRegressor` passes the model's arguments as one dict,
# `model_kwargs`, and scikit-learn cannot search inside a dict (set_params only reaches into
# nested estimators). So a small subclass names the three hyperparameters as constructor
# arguments: they then show in `get_params()`, and the search can set each candidate's values.


# %%
class SearchableMLP(keras.wrappers.SKLearnRegressor):
    def __init__(self, n_hidden=1, n_neurons=30, learning_rate=3e-3, epochs=100, batch_size=32, patience=10):
        super().__init__(model=build_model)
        self.n_hidden = n_hidden
        self.n_neurons = n_neurons
        self.learning_rate = learning_rate
        self.epochs = epochs
        self.batch_size = batch_size
        self.patience = patience

    def _get_model(self, X, y):
        # The hook the wrapper's fit() calls for a fresh model. The sampler hands over NumPy
        # integers, which Keras refuses as a layer's units: hence int().
        return build_model(X.shape[1], int(self.n_hidden), int(self.n_neurons), float(self.learning_rate))

    def fit(self, X, y, validation_data=None, **fit_kwargs):
        # Whatever reaches fit() (here validation_data, from search.fit) goes on to Keras's
        # model.fit, as in the seed. Early stopping is made anew for every fit: one instance
        # shared by 31 fits would carry state from fit to fit.
        callbacks = [keras.callbacks.EarlyStopping(patience=self.patience), *fit_kwargs.pop("callbacks", [])]
        if isinstance(validation_data, tuple):
            # extra code: Keras rebuilds an array's input pipeline for every epoch's evaluation, which
            # on a few hundred rows costs more than the evaluation itself; a tf.data.Dataset does not.
            validation_data = tf.data.Dataset.from_tensor_slices(validation_data).batch(256)
        fit_kwargs.update(epochs=self.epochs, batch_size=self.batch_size, callbacks=callbacks, verbose=0)
        return super().fit(X, y, validation_data=validation_data, **fit_kwargs)

    # scikit-learn clones the estimator for every fit. The wrapper's own clone rebuilds it from
    # model, warm_start and model_kwargs alone, which would lose every argument above;
    # scikit-learn's standard clone rebuilds it from get_params().
    __sklearn_clone__ = BaseEstimator.__sklearn_clone__


# %%
estimator = SearchableMLP(n_hidden=2, n_neurons=42, learning_rate=0.00336)
print(estimator)
print(clone(estimator).get_params())

# %% [markdown]
# Left to itself, the wrapper's `score()` is R² (1 is perfect, 0 is no better than the mean). The
# search asks for `neg_mean_squared_error` instead: the MSE with its sign flipped, so that higher
# is still better. A score of -0.3 is an MSE of 0.3.
#
# ## The candidates, before any training
#
# `RandomizedSearchCV` draws its candidates with `ParameterSampler`. With the same space and the
# same `random_state`, it draws the same values every time: no model is needed to see them.

# %%
draws = pd.DataFrame(ParameterSampler(SEARCH_SPACE, n_iter=10, random_state=config.seed))
draws.index += 1
print(draws[["n_hidden", "n_neurons", "learning_rate"]].round(5).to_string())

# %% [markdown]
# With `random_state=42`, the tenth draw has the seed's best values: 2 hidden layers of 42
# neurons and a learning rate of 0.00336. A draw with no hidden layer still gets a neuron count,
# which its model never uses.
#
# ## The search
#
# The search is one run: its folder (under `runs/lesson_3/tuning/random_search`) keeps every
# candidate's scores in `run.json`, and the best candidate's refit below in TensorBoard. Open
# TensorBoard on that folder: under `search`, every candidate's cross-validated MSE and the best
# one so far.

# %%
run = start_run(
    config,
    data,
    hparams={"n_iter": n_iter, "cv": folds, "patience": config.patience},
    parent_dir=config.runs_root / config.lesson / config.activity / "random_search",
)

# %%
# %load_ext tensorboard

# %%
runs_folder = run.dir.parent
# %tensorboard --logdir "$runs_folder"


# %%
@contextlib.contextmanager
def keras_silenced():
    """extra code: no progress bar from the wrapper's predict() (one per fold otherwise), and no warning
    that a new model retraces its functions: every candidate is a new model, so that is expected."""
    interactive = keras.config.is_interactive_logging_enabled()
    tf_logger = logging.getLogger("tensorflow")
    level = tf_logger.level
    keras.config.disable_interactive_logging()
    tf_logger.setLevel(logging.ERROR)
    try:
        yield
    finally:
        tf_logger.setLevel(level)
        if interactive:
            keras.config.enable_interactive_logging()


# %% [markdown]
# Each fit trains on two folds and is scored on the third (`cv=3`), three times per candidate.
# The fixed validation rows serve early stopping only; the score comes from the held-out fold.
# `refit=False`: the best candidate is trained again below, by hand, so that this one fit logs its
# curves to TensorBoard. `verbose=3` prints one line per fit, with its score.

# %%
search = RandomizedSearchCV(
    SearchableMLP(epochs=run.epochs, batch_size=config.batch_size, patience=config.patience),
    SEARCH_SPACE,
    n_iter=n_iter,
    cv=folds,
    scoring="neg_mean_squared_error",
    random_state=config.seed,  # the same candidates every run with the same --seed
    refit=False,
    verbose=3,
)
with keras_silenced():
    search.fit(x_train, y_train, validation_data=(x_valid, y_valid))

# %% [markdown]
# ## The candidates, best first
#
# `search.cv_results_` holds every candidate, in the order drawn: its values, its score on each
# fold, their mean and spread, and its rank. Two models without a network, scored on the same
# folds, say what the scores are worth: the training mean (a model that ignores the features) and
# a least-squares line. A search should beat the first.


# %%
def finite_or_none(value):
    value = float(value)
    return value if math.isfinite(value) else None  # a candidate whose fits failed scores NaN


def seed_candidate(candidates) -> int | None:
    """The number of our candidate that has the seed's best values, if we drew it too."""
    seed = (SEED_RESULT["n_hidden"], SEED_RESULT["n_neurons"], f"{SEED_RESULT['learning_rate']:.3g}")
    found = (c["candidate"] for c in candidates if (c["n_hidden"], c["n_neurons"], f"{c['learning_rate']:.3g}") == seed)
    return next(found, None)


results = search.cv_results_
candidates = [
    {
        "candidate": index + 1,
        "n_hidden": int(params["n_hidden"]),
        "n_neurons": int(params["n_neurons"]),
        "learning_rate": float(params["learning_rate"]),
        "mean_score": finite_or_none(results["mean_test_score"][index]),
        "std_score": finite_or_none(results["std_test_score"][index]),
        "fold_scores": [finite_or_none(results[f"split{fold}_test_score"][index]) for fold in range(folds)],
        "mean_fit_time_s": float(results["mean_fit_time"][index]),
        "rank": int(results["rank_test_score"][index]),
    }
    for index, params in enumerate(results["params"])
]
if all(c["mean_score"] is None for c in candidates):
    raise RuntimeError("every candidate failed to train; scikit-learn's warnings above say why")
table = pd.DataFrame(candidates).sort_values(["rank", "candidate"]).set_index("rank")
table = table[["candidate", "n_hidden", "n_neurons", "learning_rate", "mean_score", "std_score", "mean_fit_time_s"]]
table = table.rename(columns={"mean_score": "score (-MSE)", "std_score": "± std", "mean_fit_time_s": "fit s"})
baselines = {
    name: float(cross_val_score(model, x_train, y_train, cv=folds, scoring="neg_mean_squared_error").mean())
    for name, model in (("training_mean", DummyRegressor()), ("linear_regression", LinearRegression()))
}

print(
    f"\n{len(candidates)} candidates, best first ({folds}-fold cross-validation on {len(y_train)} training rows"
    f" of {data.name}; score = -MSE, higher is better):"
)
print(table.to_string(float_format="{:.4g}".format))
print(
    f"Same folds without a network: the training mean scores {baselines['training_mean']:.3f}, "
    f"a least-squares line {baselines['linear_regression']:.3f}."
)

# %% [markdown]
# Each candidate's score on every fold: its `± std` above is how much its folds disagree. A small
# training set makes each fold's score noisy.

# %%
fold_table = pd.DataFrame({c["candidate"]: c["fold_scores"] for c in candidates}).T
fold_table.columns = [f"fold {number + 1}" for number in fold_table.columns]
fold_table.index.name = "candidate"
print(fold_table.round(3).to_string())

# %% [markdown]
# ## The best, against the seed's
#
# The seed searched California housing, and its best candidate scored -0.319. The comparison
# holds only on the same data: `extra.seed_result.comparable` in `run.json` says whether it does.

# %%
top = candidates[search.best_index_]
best_values = {key: top[key] for key in ("n_hidden", "n_neurons", "learning_rate")}
best = {"candidate": top["candidate"], **best_values, "score": float(search.best_score_)}

print(
    f"This run's best: learning_rate {best['learning_rate']:.3g}, n_hidden {best['n_hidden']}, "
    f"n_neurons {best['n_neurons']}, score {best['score']:.3f} ({data.name})"
)
print(
    f"Seed's result (California housing, n_iter=10, cv=3): learning_rate {SEED_RESULT['learning_rate']:.3g}, "
    f"n_hidden {SEED_RESULT['n_hidden']}, n_neurons {SEED_RESULT['n_neurons']}, score {SEED_RESULT['score']:.3f}"
)
comparable = data.name == "california_housing"
if not comparable:
    print(
        f"Not comparable: this search ran on {data.name}, a substitute with another target "
        f"({data.target_unit}), so its scores cannot be set against the seed's housing score."
    )
elif config.quick:
    print("Quick run: a few candidates of 2 epochs each; run without --quick to compare with the seed.")
else:
    print("Same data as the seed: the scores are comparable, up to the seed's randomness and library versions.")
drawn_as = seed_candidate(candidates)
if drawn_as:
    print(f"Candidate {drawn_as} has the seed's best values: the same sampler and seed draw the same values.")

# %%
# extra code: the search into run.json, and each candidate's cross-validated MSE into TensorBoard (`search`)
search_settings = {"n_iter": n_iter, "cv": folds, "patience": config.patience}
run.record.add_extra(
    "search", {**search_settings, "scoring": "neg_mean_squared_error", "epochs": run.epochs, "seed": config.seed}
)
run.record.add_extra("candidates", candidates)
run.record.add_extra("best", best)
run.record.add_extra("cv_baselines", baselines)
seed_result = {**SEED_RESULT, "dataset": "california_housing", "comparable": comparable}
run.record.add_extra("seed_result", {**seed_result, "drawn_as_candidate": drawn_as})
writer = run.open_writer("search")
best_so_far = math.inf
with writer.as_default():
    for c in candidates:
        if c["mean_score"] is not None:
            best_so_far = min(best_so_far, -c["mean_score"])
            tf.summary.scalar("cv_mse", -c["mean_score"], step=c["candidate"])
            tf.summary.scalar("best_cv_mse_so_far", best_so_far, step=c["candidate"])
writer.flush()

# %% [markdown]
# Each point below is one candidate: its cross-validated MSE against its learning rate, coloured
# by the number of hidden layers. Too small a learning rate leaves SGD far from the minimum after
# the epochs it has.

# %%
fig, ax = plt.subplots(figsize=(7, 4.5))
for n_hidden, rows in table.groupby("n_hidden"):
    ax.scatter(rows["learning_rate"], -rows["score (-MSE)"], s=30 + 2 * rows["n_neurons"], label=f"{n_hidden} hidden")
ax.set_xscale("log")
ax.set_xlim(*LEARNING_RATE_RANGE)  # the whole range the rates are drawn from
ax.set(xlabel="learning rate (log scale)", ylabel="cross-validated MSE (lower is better)")
ax.set_title("marker size grows with the neurons per layer")
ax.legend()
plt.show()

# %% [markdown]
# ## The best candidate, trained again and tested
#
# With `refit=True`, scikit-learn would train the best candidate once more on all the training
# rows. We do it by hand, with a TensorBoard callback and the lab's, so that this one fit logs its
# curves. The test set, untouched by the search, gives the final figure.

# %%
refitted = clone(search.estimator).set_params(**best_values)
run.hparams.update(best_values)  # extra code: the HParams dashboard shows the values this fit trains with
tensorboard = keras.callbacks.TensorBoard(log_dir=run.dir)
with keras_silenced():
    refitted.fit(
        x_train, y_train, validation_data=(x_valid, y_valid), callbacks=[tensorboard, *run.callbacks(tensorboard)]
    )
    predicted = refitted.predict(x_test)


# %%
def mse(predicted, true) -> float:
    """In float64, outside Keras."""
    return float(np.mean((np.asarray(predicted, "float64").reshape(-1) - np.asarray(true, "float64")) ** 2))


test_mse = mse(predicted, y_test)
run.record_test({"loss": test_mse, "rmse": math.sqrt(test_mse)})
epochs_run = run.record.data["epochs_completed"]
refit = {
    **best_values,
    "epochs_run": epochs_run,
    "stopped_early": epochs_run < run.epochs,
    "test_mse": test_mse,
    "test_rmse": math.sqrt(test_mse),
    "training_mean_test_rmse": math.sqrt(mse(np.full(len(y_test), y_train.mean()), y_test)),
    "target_unit": data.target_unit,
}
run.record.add_extra("refit", refit)
stopped = " (stopped early)" if refit["stopped_early"] else ""
print(
    f"The best candidate, trained again on all {len(y_train)} training rows for {epochs_run} epoch(s){stopped}: "
    f"test MSE {test_mse:.4f}, RMSE {refit['test_rmse']:.4f} ({data.target_unit}); "
    f"predicting the training mean: RMSE {refit['training_mean_test_rmse']:.4f}."
)

# %%
history = refitted.history_.history
epochs = np.arange(1, len(history["loss"]) + 1)
fig, ax = plt.subplots()
ax.plot(epochs, history["loss"], marker="o", label="training")
ax.plot(epochs, history["val_loss"], marker="o", label="validation")
ax.xaxis.set_major_locator(MaxNLocator(integer=True))
ax.set(xlabel="epoch", ylabel="MSE")
ax.legend()
plt.show()

# %%
run.finish(refitted.model_)

# %% [markdown]
# ## How much does one more candidate buy?
#
# The run logged, by candidate number, the best cross-validated MSE found so far (TensorBoard:
# `search/best_cv_mse_so_far`). Random search improves in jumps, and ever more rarely.

# %%
best_curve = curve(read_scalars(run.dir), "search", "best_cv_mse_so_far").iloc[:, 0]
ax = best_curve.plot(marker="o", drawstyle="steps-post")
ax.xaxis.set_major_locator(MaxNLocator(integer=True))
ax.set(xlabel="candidates tried", ylabel="best cross-validated MSE so far")
plt.show()

# %% [markdown]
# ## Questions to explore
#
# 1. Run the full search twice with the same `--seed`, then with `--seed 7`. Which results repeat
#    exactly, and which candidates change?
# 2. The best candidate on the diabetes set may have no hidden layer at all. What does that say
#    about this data, next to the least-squares line's score?
# 3. Run `--n-iter 30`. How much better is the best score than with 10? Look at
#    `search/best_cv_mse_so_far` in TensorBoard.
# 4. The score comes from the held-out fold, not from the validation rows. What are the validation
#    rows used for, and would the search still work without them?
# 5. Replace `scoring="neg_mean_squared_error"` with the wrapper's default (R²). Does the ranking of
#    the candidates change? (On one fold, R² is 1 - MSE / the variance of that fold's targets.)
