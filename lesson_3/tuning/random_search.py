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
# # Random search: how deep, how wide, how fast?
#
# A regression MLP has more knobs than its weights: the number of hidden layers, the neurons in
# each, the learning rate. Here scikit-learn's `RandomizedSearchCV` draws ten settings at random
# from the seed's space (0 to 3 hidden layers, 1 to 99 neurons, a learning rate between 3e-4 and
# 3e-2 on a log scale) and scores each one by 3-fold cross-validation on the training rows. The
# Keras model reaches scikit-learn through Keras 3's own wrapper, `keras.wrappers.SKLearnRegressor`.
#
# The search and the model live in `train_random_search.py`. Without California housing on the
# machine, the run says so and searches scikit-learn's bundled diabetes set instead: its scores
# are then not comparable with the seed's.

# %%
# %matplotlib inline
import matplotlib.pyplot as plt
import pandas as pd
from matplotlib.ticker import MaxNLocator
from sklearn.base import clone
from sklearn.model_selection import ParameterSampler

from labkit import cli
from labkit.tblogs import curve, read_scalars
from lesson_3.tuning.train_random_search import (
    LEARNING_RATE_RANGE,
    SEED_RESULT,
    candidates_table,
    make_parser,
    search_space,
    searchable_mlp,
    seed_reference_line,
    train,
)

args = cli.parse(make_parser(), [])

# %% [markdown]
# Open TensorBoard on the searches' folder (`runs/lesson_3/tuning/random_search` unless you set
# `--logdir` or `LAB_RUNS_DIR`). Each run holds the best candidate's learning curves and, under
# `search`, every candidate's cross-validated MSE with the best one so far.

# %%
# %load_ext tensorboard

# %%
runs_folder = args.runs_root / "lesson_3" / "tuning" / "random_search"
# %tensorboard --logdir "$runs_folder"

# %% [markdown]
# ## What scikit-learn sees
#
# scikit-learn tunes an estimator through `get_params()` and `set_params()`, and copies it with
# `clone()` before every fit. The small subclass of `SKLearnRegressor` in the script names the
# three hyperparameters as constructor arguments, so all three show up, and survive a clone:

# %%
estimator = searchable_mlp()(**{key: SEED_RESULT[key] for key in ("n_hidden", "n_neurons", "learning_rate")})
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
draws = pd.DataFrame(ParameterSampler(search_space(), n_iter=10, random_state=args.seed))
draws.index += 1
print(draws[["n_hidden", "n_neurons", "learning_rate"]].round(5).to_string())

# %% [markdown]
# With `random_state=42`, the tenth draw has the seed's best values: 2 hidden layers of 42
# neurons and a learning rate of 0.00336. A draw with no hidden layer still gets a neuron count,
# which its model never uses.
#
# ## The search
#
# Quick mode (`LAB_QUICK=1`) draws 3 candidates, scores them on 2 folds and trains each for 2
# epochs only: enough to check the code, not to trust the ranking.

# %%
session = train(args)
record = session.record.data

# %% [markdown]
# ## One score per fold
#
# The table above is rebuilt from `run.json`, where the run stored every candidate under
# `extra.candidates`, together with its score on each fold. A candidate's `± std` is how much its
# folds disagree: a small training set makes each fold's score noisy.

# %%
candidates = record["extra"]["candidates"]
table = candidates_table(candidates)
folds = pd.DataFrame({row["candidate"]: row["fold_scores"] for row in candidates}).T
folds.columns = [f"fold {number + 1}" for number in folds.columns]
folds.index.name = "candidate"
print(folds.round(3).to_string())
baselines = record["extra"]["cv_baselines"]
print(
    f"Same folds, no network: training mean {baselines['training_mean']:.3f}, line {baselines['linear_regression']:.3f}"
)

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
ax.set_xlabel("learning rate (log scale)")
ax.set_ylabel("cross-validated MSE (lower is better)")
ax.set_title("marker size grows with the neurons per layer")
ax.legend()
plt.show()

# %% [markdown]
# ## How much does one more candidate buy?
#
# The run logged, by candidate number, the best cross-validated MSE found so far (TensorBoard:
# `search/best_cv_mse_so_far`). Random search improves in jumps, and ever more rarely.

# %%
scalars = read_scalars(session.run_dir)
best_so_far = curve(scalars, "search", "best_cv_mse_so_far").iloc[:, 0]
ax = best_so_far.plot(marker="o", drawstyle="steps-post")
ax.xaxis.set_major_locator(MaxNLocator(integer=True))
ax.set_xlabel("candidates tried")
ax.set_ylabel("best cross-validated MSE so far")
plt.show()

# %% [markdown]
# ## The best candidate, trained again and tested
#
# With `refit=True`, scikit-learn would train the best candidate once more on all the training
# rows. The script does it by hand, to log that one fit to TensorBoard: its curves are below. The
# test set, untouched by the search, gives the final figure.

# %%
refit = record["extra"]["refit"]
ax = curve(scalars, "train", "epoch_loss").iloc[:, 0].plot(marker="o", label="training")
curve(scalars, "validation", "epoch_loss").iloc[:, 0].plot(ax=ax, marker="o", label="validation")
ax.xaxis.set_major_locator(MaxNLocator(integer=True))
ax.set_xlabel("epoch")
ax.set_ylabel("MSE")
ax.legend()
plt.show()
print(
    f"Best candidate: {refit['n_hidden']} hidden layer(s) of {refit['n_neurons']} neurons, learning rate "
    f"{refit['learning_rate']:.3g}; {refit['epochs_run']} epochs; test RMSE {refit['test_rmse']:.3f} "
    f"({refit['target_unit']}), against {refit['training_mean_test_rmse']:.3f} for the training mean"
)

# %% [markdown]
# ## Against the seed
#
# The seed searched California housing, and its best candidate scored -0.319. The comparison holds
# only on the same data: `extra.seed_result.comparable` in `run.json` says whether it does.

# %%
best = record["extra"]["best"]
print(f"This run ({record['dataset']['name']}): score {best['score']:.3f}")
print(seed_reference_line())
print("comparable" if record["extra"]["seed_result"]["comparable"] else "not comparable: different data")

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
