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
# # Lesson 3: a regression MLP for house values in California
#
# A classifier picks one of a few labels; a regressor answers with a number. Here the number is
# the median house value of a California district, in units of $100,000, predicted from eight
# features such as the median income and the average number of rooms. The network is small: one
# hidden layer of 30 ReLU units, then one output unit with no activation, trained with the mean
# squared error and plain SGD. Then we judge it fairly: the test error in the target's own units,
# next to a straight line fitted on the same rows.
#
# This file is both the script and the notebook (`train_regression.ipynb` beside it holds the same
# cells, kept in step by jupytext):
#
# ```
# python lesson_3/regression/train_regression.py              # 20 epochs
# python lesson_3/regression/train_regression.py --quick      # the same cells on a slice, seconds
# python lesson_3/regression/train_regression.py --dataset diabetes
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
# The lesson's: plain SGD at a learning rate of 0.01 (what `optimizer="sgd"` means), batches of 32,
# 20 epochs. A script reads its flags here (`--help` lists them); a notebook takes these defaults.

# %%
from labkit import cli
from labkit.tabular import DATASET_FLAGS

parser = cli.build_parser(
    "Lesson 3: a regression MLP that predicts the median house value of California districts.",
    epochs=20,
    learning_rate=0.01,
    batch_size=32,
    **DATASET_FLAGS,  # --dataset {california_housing,diabetes}
)
config = cli.parse(parser)
print(config.plan)

# %%

import keras
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from sklearn.linear_model import LinearRegression

from labkit.tabular import load_regression_data
from labkit.training import start_run

# %% [markdown]
# ## The data
#
# California housing comes with scikit-learn, which downloads it once (`python
# scripts/fetch_data.py`). Without it, the run says so and uses scikit-learn's bundled diabetes
# set instead (442 patients, 10 features, the score divided by 100), recorded in `run.json` as a
# substitute. Either way the split is the lesson's: a test quarter, then a validation quarter of the
# rest, and a `StandardScaler` fitted on the training rows alone scales all three. SGD needs
# features on similar scales to train with one learning rate for all of them.

# %%
data = load_regression_data(
    config.dataset, limits=config.plan.slice
)  # extra code: housing, or diabetes said in one line
x_train, y_train = data.x_train, data.y_train
x_valid, y_valid = data.x_val, data.y_val
x_test, y_test = data.x_test, data.y_test

print("train:", x_train.shape, y_train.shape, "| valid:", x_valid.shape, "| test:", x_test.shape)
print("features:", ", ".join(data.feature_names))
print(f"target: {data.target_name}, in units of {data.target_unit}")
print("means after scaling:", x_train.mean(axis=0).round(2), "| standard deviations:", x_train.std(axis=0).round(2))

# %%
run = start_run(config, data, hparams={"hidden_units": 30})  # extra code: a new run folder; seeds every generator

# %% [markdown]
# ## The model
#
# A regressor's last layer is a single unit with no activation, so that any real value can come
# out (a ReLU there could only predict values of 0 or more, a sigmoid only values between 0 and 1).
# The callbacks, TensorBoard and tuning pages of this lesson train the same network: the `# @save`
# line lets `lesson_3/models.py` hand them this very definition.


# %%
# @save
def regression_mlp(n_features: int, hidden_units: int = 30) -> keras.Sequential:
    """n_features -> Dense(hidden_units, ReLU) -> Dense(1), a linear output: any real value can
    come out. 8 housing features give 8 * 30 + 30 + 30 + 1 = 301 weights."""
    return keras.Sequential(
        [
            keras.Input(shape=(n_features,), name="features"),
            keras.layers.Dense(hidden_units, activation="relu", name="hidden"),
            keras.layers.Dense(1, name="prediction"),
        ],
        name="regression_mlp",
    )


# %%
model = regression_mlp(data.num_features, hidden_units=30)
model.summary()
print(f"{model.count_params()} weights for {data.num_features} features")

# %% [markdown]
# ## Compile
#
# The loss is the mean squared error. A loss in squared units is hard to read, so the model also
# reports its square root, the RMSE, which is in the target's own units. Keras 3 spells the step
# size `SGD(learning_rate=...)`; the `lr=` of older code is an error now (see the end).

# %%
model.compile(
    loss="mse",
    optimizer=keras.optimizers.SGD(learning_rate=config.learning_rate),
    metrics=[keras.metrics.RootMeanSquaredError(name="rmse")],
)

# %% [markdown]
# ## Train
#
# Open TensorBoard before training (from a terminal:
# `python3 scripts/lab.py tensorboard runs/lesson_3/regression`): `epoch_loss` (the MSE) and
# `epoch_rmse` under `train` and `validation`.

# %%
# %load_ext tensorboard

# %%
runs_folder = run.dir.parent
# %tensorboard --logdir "$runs_folder"

# %% [markdown]
# The lesson's line is `history = model.fit(x_train, y_train, epochs=20, validation_data=(x_valid, y_valid))`.
# The lab's callbacks come after TensorBoard's: they keep `run.json` up to date and save a backup
# after each epoch for `--resume`.

# %%
tensorboard = keras.callbacks.TensorBoard(log_dir=run.dir)
history = model.fit(
    run.batches(x_train, y_train),  # extra code: shuffled batches of 32 (x_train, y_train in the lesson)
    epochs=run.epochs,  # 20; 2 in quick mode
    steps_per_epoch=run.steps_per_epoch,
    validation_data=(x_valid, y_valid),
    callbacks=[tensorboard, *run.callbacks(tensorboard)],
)

# %% [markdown]
# ## Learning curves
#
# The training curve is averaged over each epoch while the weights were still moving; the
# validation curve is measured at its end.

# %%
curves = pd.DataFrame(history.history, index=pd.Index([epoch + 1 for epoch in history.epoch], name="epoch"))
ax = curves[["loss", "val_loss"]].plot(figsize=(8, 5), marker="o", grid=True)
ax.set(ylabel="MSE", title="training (averaged during each epoch) and validation loss")
plt.show()

# %% [markdown]
# ## Is the network any good? The test set, and a straight line for comparison
#
# A loss of 0.35 says nothing by itself. Its square root is "typically off by this much". Two
# references put it in context: a linear regression fitted on the same training rows, and the
# error of always predicting the mean training value (a model that learned nothing).

# %%
test_metrics = model.evaluate(x_test, y_test, return_dict=True, verbose=0)
run.record_test(test_metrics)  # extra code: into run.json and TensorBoard's `test` run
test_metrics

# %%
line = LinearRegression().fit(x_train, y_train)


def errors(predicted):
    """MSE and RMSE of predictions for the test rows, in float64 outside Keras."""
    residual = np.asarray(predicted, dtype="float64").reshape(-1) - y_test.astype("float64")
    mse = float(np.mean(residual**2))
    return {"mse": mse, "rmse": float(np.sqrt(mse))}


evaluation = {
    "mlp": {"mse": float(test_metrics["loss"]), "rmse": float(test_metrics["rmse"])},
    "linear_regression": errors(line.predict(x_test)),
    "training_mean": errors(np.full(len(y_test), y_train.mean())),
}
table = pd.DataFrame(evaluation).T.rename(
    index={"mlp": "MLP (Dense 30 + 1)", "linear_regression": "linear regression", "training_mean": "training mean"}
)
table.columns = ["test MSE", f"test RMSE ({data.target_unit})"]
print(f"Test set, {len(y_test)} rows:\n" + table.to_string(float_format="{:.4f}".format))
mlp_wins = evaluation["mlp"]["mse"] < evaluation["linear_regression"]["mse"]
print("The MLP beats the straight line" if mlp_wins else "The straight line wins on this data")
run.record.add_extra(  # extra code: into run.json
    "evaluation", {"target_unit": data.target_unit, **evaluation, "mlp_beats_baseline": mlp_wins}
)

# %% [markdown]
# Every test row at once: the prediction against the true value. A perfect model puts every point
# on the diagonal.

# %%
fig, axes = plt.subplots(1, 2, figsize=(10, 4.5), sharex=True, sharey=True)
for ax, name, predicted in zip(
    axes, ["MLP", "linear regression"], [model.predict(x_test, verbose=0).ravel(), line.predict(x_test)], strict=True
):
    ax.scatter(y_test, predicted, s=8, alpha=0.5)
    ax.plot([y_test.min(), y_test.max()], [y_test.min(), y_test.max()], color="black", linewidth=1)
    ax.set(title=name, xlabel=f"true value ({data.target_unit})")
axes[0].set_ylabel("predicted value")
plt.show()

# %% [markdown]
# ## Predicting new rows
#
# The first three test rows stand in for districts the model has never seen. They arrive already
# scaled by the `StandardScaler` fitted on the training rows; real new data would go through
# `data.scaler.transform` first.

# %%
x_new = x_test[:3]
y_pred = model.predict(x_new, verbose=0)
predictions = pd.DataFrame(
    {"MLP": y_pred.reshape(-1), "linear regression": line.predict(x_new), "true value": y_test[:3]}
).astype("float64")
print(f"The first {len(predictions)} test rows, as new data ({data.target_unit}):")
print(predictions.to_string(float_format="{:.3f}".format))
run.record.add_extra(  # extra code: into run.json
    "predictions",
    [{"mlp": row[0], "linear_regression": row[1], "true": row[2]} for row in predictions.itertuples(index=False)],
)

# %%
run.finish(model)  # extra code: saves model.keras in the run folder; run.json says "finished"

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
# 2. Build the model with `hidden_units=300`. Does the test RMSE improve enough to pay for ten times
#    the weights?
# 3. Train on the raw features (`data.scaler.inverse_transform(x_train)`). What happens to SGD, and why?
# 4. Where does the MLP err most in the scatter plot? California housing caps its values at 5
#    ($500,000): what does that do to the points at the top?
# 5. On diabetes, what does it take for the MLP to beat the straight line: more epochs, fewer
#    units, a different optimizer? Or is the line simply the right model there?
