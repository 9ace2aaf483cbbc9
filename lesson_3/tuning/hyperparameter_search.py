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
# # Searching hyperparameters with keras-tuner, and reading the search in TensorBoard's HParams tab
#
# How many hidden layers, how many neurons, which learning rate? The seed answers with scikit-learn's
# `RandomizedSearchCV` over 0-3 layers, 1-99 neurons and a learning rate between 3e-4 and 3e-2. Here
# the same space goes to keras-tuner, twice: a **random search**, which gives every setting the same
# budget, and **Hyperband**, which gives many settings a few epochs and trains only the most
# promising ones further. The model, the space and the search live in `train_keras_tuner.py`; this
# notebook runs both searches, then reads what they found.
#
# Without California housing on this machine (`python scripts/fetch_data.py` fetches it), the run
# says so and searches on scikit-learn's bundled diabetes set instead.

# %%
# %matplotlib inline
import matplotlib.pyplot as plt
import pandas as pd

from labkit import cli
from labkit.deferred import keras
from labkit.tblogs import read_scalars
from lesson_3.tuning.train_keras_tuner import SEARCH_FOLDER, build, keras_tuner, make_parser, train

args = cli.parse(make_parser(), [])

# %% [markdown]
# ## The space, declared where the model uses it
#
# keras-tuner calls `build(hp)` once per trial. Each `hp.Choice`, `hp.Int` or `hp.Float` both
# declares a hyperparameter (the first time) and returns the value this trial drew. Called once with
# an empty `HyperParameters`, it shows the space it declares. (`keras_tuner` comes from the script,
# where it waits to be used before it loads TensorFlow.)

# %%
space = keras_tuner.HyperParameters()
build(space, n_features=10)
for hyperparameter in space.space:
    print(hyperparameter.name, hyperparameter.get_config())

# %% [markdown]
# Open TensorBoard on the folder the searches write to (`runs/lesson_3/tuning/keras_tuner` unless
# you set `--logdir` or `LAB_RUNS_DIR`) before they start. Every trial appears as a run of its own,
# `<search>/trials/<trial id>/execution0`, once it has finished training.

# %%
# %load_ext tensorboard

# %%
search_folder = args.runs_root / "lesson_3" / "tuning" / SEARCH_FOLDER
# %tensorboard --logdir "$search_folder"

# %%
searches = train(args)

# %% [markdown]
# ## Both searches, side by side
#
# Each search wrote one line per trial to its `run.json` (`extra.search.per_trial`). The score of a
# trial is its **best** validation MSE over the epochs it trained, and that is what the tuner ranks
# by. In Hyperband, a trial whose `continues_trial` is set started from another trial's weights: the
# same hyperparameters, trained for more epochs because they ranked high.

# %%
rows = []
for kind, session in searches.sessions.items():
    for trial in session.record.data["extra"]["search"]["per_trial"]:
        rows.append({"tuner": kind, **{k: v for k, v in trial.items() if k not in ("logs", "status")}})
trials = pd.DataFrame(rows)
print(trials.sort_values("best_val_loss").to_string(index=False, float_format="{:.5f}".format))

# %%
summary = {}
for kind, session in searches.sessions.items():
    search = session.record.data["extra"]["search"]
    summary[kind] = {
        "trials": search["trials"],
        "best validation MSE": search["best_val_loss"],
        "test MSE of the best model": search["test"]["mse"],
        "predicting the training mean": search["training_mean_val_loss"],
        "search time (s)": session.record.data["wall_time_s"],
    }
print(pd.DataFrame(summary).round(4).to_string())
seed = searches.last.record.data["extra"]["search"]["seed_result"]
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
for ax, (kind, session) in zip(axes[0], searches.sessions.items(), strict=True):
    scalars = read_scalars(session.run_dir)
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
# `tuner.get_best_models(1)` rebuilt the best trial's model and loaded its weights from its best
# epoch; the run saved it as `best_model.keras`. Loaded back, it predicts like any Keras model:

# %%
best = searches.last
model = keras.saving.load_model(best.run_dir / "best_model.keras")
model.summary()
data = best.data
# For a handful of rows, calling the model is the quick way; predict() pays off on many batches.
predicted = model(data.x_test[:3]).numpy().ravel()
print(pd.DataFrame({"predicted": predicted, "true": data.y_test[:3]}))

# %% [markdown]
# ## Reading the search in TensorBoard's HParams tab
#
# keras-tuner logged every trial for the HParams dashboard: given a TensorBoard callback, it gives
# each trial its own folder and adds TensorBoard's HParams callback there. Open the **HPARAMS** tab
# above (or at http://localhost:6006 when TensorBoard runs in a terminal). It has three views:
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

# %% [markdown]
# ## Questions to explore
#
# 1. Which search found the lower validation MSE, and which one spent less time? Run both again with
#    `--seed 1`: does the ranking hold?
# 2. Compare the best settings with the seed's (2 layers of 42 neurons, learning rate 0.0034). Is the
#    learning rate the hyperparameter that matters most here? Check in the scatter plot matrix.
# 3. Give Hyperband `--factor 2`, then `--factor 4`. How do the number of trials and the epochs
#    per trial change?
# 4. The best model is tested once, at the end. Why not pick the best trial by its test MSE instead?
