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
# # A regression MLP: house values in California
#
# A classifier picks one of a few labels; a regressor answers with a number. Here the number is
# the median house value of a California district, in units of $100,000, predicted from eight
# features such as the median income and the average number of rooms. The network is small: one
# hidden layer of 30 ReLU units, then one output unit with no activation, trained with the mean
# squared error and plain SGD. The model and the training code live in `train_regression.py`;
# this notebook trains it, then judges it against a straight line.
#
# California housing needs a one-time download (`python scripts/fetch_data.py`). Without it, the
# run says so and uses scikit-learn's bundled diabetes set instead (the target divided by 100),
# recorded in `run.json` as a substitute.

# %%
# %matplotlib inline
import matplotlib.pyplot as plt
import pandas as pd

from labkit import cli
from labkit.deferred import keras
from labkit.tblogs import curve, read_scalars
from lesson_3.regression.train_regression import linear_baseline, make_parser, train

args = cli.parse(make_parser(), [])

# %% [markdown]
# Open TensorBoard on this activity's runs folder (`runs/lesson_3/regression` unless you set
# `--logdir` or `LAB_RUNS_DIR`) before training, and watch the loss fall.

# %%
# %load_ext tensorboard

# %%
runs_folder = args.runs_root / "lesson_3" / "regression"
# %tensorboard --logdir "$runs_folder"

# %%
session = train(args)
data = session.data
session.model.summary()
print(f"{session.model.count_params()} weights for {data.num_features} features")

# %% [markdown]
# ## Learning curves, read back from the TensorBoard logs
#
# The loss is the mean squared error, in squared target units. The training curve is averaged over
# each epoch while the weights were still moving; the validation curve is measured at its end.

# %%
scalars = read_scalars(session.run_dir)
ax = curve(scalars, "train", "epoch_loss").iloc[:, 0].plot(marker="o", label="training (averaged during each epoch)")
curve(scalars, "validation", "epoch_loss").iloc[:, 0].plot(ax=ax, marker="o", label="validation")
ax.set_xlabel("epoch")
ax.set_ylabel("MSE")
ax.legend()
plt.show()

# %% [markdown]
# ## Is the network any good? A straight line for comparison
#
# A loss of 0.35 says nothing by itself. Its square root, the RMSE, is in the target's own units:
# "typically off by this much". Two references put it in context: a linear regression fitted on the
# same training rows, and the error of always predicting the mean training value (a model that
# learned nothing from the features). The run stored all three in `run.json` under
# `extra.evaluation`.

# %%
evaluation = session.record.data["extra"]["evaluation"]
names = {"mlp": "MLP", "linear_regression": "linear regression", "training_mean": "training mean"}
table = pd.DataFrame({names[key]: evaluation[key] for key in names}).T
print(f"Test set of {len(data.y_test)} rows, RMSE in units of {evaluation['target_unit']}:")
print(table.round(4).to_string())
print("The MLP beats the straight line" if evaluation["mlp_beats_baseline"] else "The straight line wins on this data")

# %% [markdown]
# Every test row at once: the prediction against the true value. A perfect model puts every point
# on the diagonal.

# %%
baseline = linear_baseline(data)
fig, axes = plt.subplots(1, 2, figsize=(10, 4.5), sharex=True, sharey=True)
for ax, (name, predicted) in zip(
    axes,
    [
        ("MLP", session.model.predict(data.x_test, verbose=0).ravel()),
        ("linear regression", baseline.predict(data.x_test)),
    ],
    strict=True,
):
    ax.scatter(data.y_test, predicted, s=8, alpha=0.5)
    low, high = data.y_test.min(), data.y_test.max()
    ax.plot([low, high], [low, high], color="black", linewidth=1)
    ax.set_title(name)
    ax.set_xlabel(f"true value ({data.target_unit})")
axes[0].set_ylabel("predicted value")
plt.show()

# %% [markdown]
# ## Predicting new rows
#
# The first three test rows stand in for districts the model has never seen. They arrive already
# scaled by the `StandardScaler` fitted on the training rows; real new data would go through
# `data.scaler.transform` first.

# %%
print(pd.DataFrame(session.record.data["extra"]["predictions"]).round(3).to_string())

# %% [markdown]
# ## Keras 3: `lr=` is gone
#
# Older code writes `SGD(lr=0.01)`. Keras 3 accepts only `learning_rate=`:

# %%
try:
    keras.optimizers.SGD(lr=0.01)
except ValueError as error:
    print(f"SGD(lr=0.01) -> ValueError: {error}")
print(f"SGD(learning_rate=0.01) -> {keras.optimizers.SGD(learning_rate=0.01).learning_rate.numpy():g}")

# %% [markdown]
# ## Questions to explore
#
# 1. Run with `--learning-rate 0.1`, then `0.001`. Which one diverges, which one crawls? Compare the
#    curves in TensorBoard.
# 2. Change `HIDDEN_UNITS` to 300. Does the test RMSE improve enough to pay for ten times the weights?
# 3. Remove the scaling (use the raw features). What happens to SGD, and why?
# 4. Where does the MLP err most in the scatter plot above? California housing caps its values at
#    5 ($500,000): what does that do to the points at the top?
