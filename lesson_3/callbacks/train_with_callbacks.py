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
# # Lesson 3: callbacks keep the best model, stop in time, and report as they go
#
# `fit` accepts a list of callbacks and calls each of them at fixed moments. The hooks a callback
# can implement are:
#
# | during | whole call (`on_…`) | each epoch (`on_epoch_…`) | each batch (`on_…`) |
# |---|---|---|---|
# | `fit` | `train_begin`, `train_end` | `begin`, `end` | `train_batch_begin`, `train_batch_end` |
# | `evaluate` | `test_begin`, `test_end` | | `test_batch_begin`, `test_batch_end` |
# | `predict` | `predict_begin`, `predict_end` | | `predict_batch_begin`, `predict_batch_end` |
#
# We train the regression MLP of this lesson for up to 100 epochs with three of them:
# ModelCheckpoint keeps the best model on disk, EarlyStopping ends training once the validation
# loss stops improving and puts the best weights back, and ValTrainRatio, a callback of our own,
# prints validation loss / training loss after every epoch. Then we check that they kept their
# promises, and see how a run that crashed continues (`--resume`).
#
# This file is both the script and the notebook (`train_with_callbacks.ipynb` beside it holds the
# same cells, kept in step by jupytext):
#
# ```
# python lesson_3/callbacks/train_with_callbacks.py            # up to 100 epochs, stops early
# python lesson_3/callbacks/train_with_callbacks.py --quick    # the same cells, 2 epochs, seconds
# python lesson_3/callbacks/train_with_callbacks.py --resume runs/lesson_3/callbacks/<run>
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
# Up to 100 epochs: early stopping decides, after 10 epochs without a better validation loss
# (`--patience`). The learning rate is 0.05, the faster of the two rates the chapter compares in
# TensorBoard: at the regression page's 0.01, the small diabetes set is still improving after 100
# epochs and early stopping never acts.

# %%
from labkit import cli
from labkit.tabular import DATASET_FLAGS

parser = cli.build_parser(
    "Lesson 3: keep the best model, stop when it stops improving, watch overfitting live.",
    epochs=100,
    learning_rate=0.05,
    batch_size=32,
    **DATASET_FLAGS,  # --dataset {california_housing,diabetes}
)
parser.add_argument(
    "--patience",
    type=cli.positive_int,
    default=10,
    help="epochs without a better validation loss before early stopping (default 10)",
)
config = cli.parse(parser)
print(config.plan, "| patience:", config.patience)

# %%
import keras
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from labkit.tabular import load_regression_data
from labkit.training import start_run
from lesson_3.models import regression_mlp

# %% [markdown]
# ## The data and the model
#
# California housing, or where it is missing the diabetes substitute (said in one line), split
# and scaled as on the regression page. The model is that page's MLP (Dense 30 ReLU, then Dense 1),
# compiled the same way.

# %%
data = load_regression_data(config.dataset, limits=config.plan.slice)  # extra code: housing, else diabetes (said)
x_train, y_train = data.x_train, data.y_train
x_valid, y_valid = data.x_val, data.y_val
x_test, y_test = data.x_test, data.y_test
print("train:", x_train.shape, "| valid:", x_valid.shape, "| test:", x_test.shape, f"| target in {data.target_unit}")

# %%
run = start_run(config, data, hparams={"patience": config.patience})  # extra code: a new run folder, or the resumed one

# %%
model = regression_mlp(data.num_features)
model.compile(
    loss="mse",
    optimizer=keras.optimizers.SGD(learning_rate=config.learning_rate),
    metrics=[keras.metrics.RootMeanSquaredError(name="rmse")],
)

# %% [markdown]
# ## The callbacks
#
# **ModelCheckpoint** saves the whole model whenever the monitored value beats its best so far
# (`save_best_only=True`), so the file always holds the best model seen. Keras 3 saves whole models
# as `.keras` files, not the chapter's `.h5`.
#
# **EarlyStopping** ends training once `val_loss` has not improved for `patience` epochs, and with
# `restore_best_weights=True` it puts the best weights back: you can ask for many epochs without risk.

# %%
checkpoint_path = run.dir / "checkpoints" / "best.keras"
checkpoint = keras.callbacks.ModelCheckpoint(checkpoint_path, monitor="val_loss", save_best_only=True)
early_stopping = keras.callbacks.EarlyStopping(monitor="val_loss", patience=config.patience, restore_best_weights=True)

# %% [markdown]
# **A callback of your own** is a subclass of `keras.callbacks.Callback` that implements the hooks
# it needs. Ours divides the validation loss by the training loss at the end of each epoch: far
# above 1 means the model has started to fit noise in the training rows. It also logs the ratio to
# TensorBoard, as `val_train_loss_ratio` under `train`. The deep MLP exercise uses it again (the
# `# @save` line lets `lesson_3/models.py` hand it over).


# %%
# @save
class ValTrainRatio(keras.callbacks.Callback):
    """Validation loss over training loss after every epoch: a ratio that climbs well above 1 says
    the model has started to overfit. Keras passes `on_epoch_end` the epoch's logs, which hold
    `loss` (averaged over the epoch's batches) and `val_loss` (scored at its end)."""

    def __init__(self, writer=None, echo=print):
        super().__init__()
        self.writer, self.echo = writer, echo
        self.ratios = []

    def on_epoch_end(self, epoch, logs=None):
        import tensorflow as tf

        ratio = logs["val_loss"] / logs["loss"]
        self.ratios.append(float(ratio))
        self.echo(f"epoch {epoch + 1}: val/train loss ratio {ratio:.2f}")
        if self.writer is not None:
            with self.writer.as_default():
                tf.summary.scalar("val_train_loss_ratio", ratio, step=epoch)


# %%
ratio = ValTrainRatio(writer=run.open_writer("train"))

# %% [markdown]
# ## Train for up to 100 epochs
#
# Start TensorBoard on this activity's runs before training (from a terminal:
# `python3 scripts/lab.py tensorboard runs/lesson_3/callbacks`). Besides `epoch_loss`, the
# Scalars tab shows `val_train_loss_ratio`.

# %%
# %load_ext tensorboard

# %%
runs_folder = run.dir.parent
# %tensorboard --logdir "$runs_folder"

# %% [markdown]
# Our three callbacks go in the list after TensorBoard's; the lab's come last: they keep
# `run.json` up to date and save a backup at an epoch's end, which `--resume` continues from.
# In quick mode there are only two epochs, so early stopping never gets the chance.

# %%
tensorboard = keras.callbacks.TensorBoard(log_dir=run.dir)
history = model.fit(
    run.batches(x_train, y_train),  # extra code: shuffled batches of 32
    epochs=run.epochs,  # at most 100; 2 in quick mode
    steps_per_epoch=run.steps_per_epoch,
    validation_data=(x_valid, y_valid),
    callbacks=[tensorboard, checkpoint, early_stopping, ratio, *run.callbacks(tensorboard)],
)

# %% [markdown]
# ## Did the callbacks keep their promises?
#
# Three numbers should agree: the best validation loss in the log, the validation loss of the
# model after training (EarlyStopping put the best weights back), and that of the model loaded
# from the checkpoint file. `best_model_check` measures them (the deep MLP exercise uses it too).


# %%
# @save
def best_model_check(model, history, checkpoint_path, x_val, y_val) -> dict:
    """The best validation loss that `history` logged, next to what the model after training (with
    EarlyStopping's restored weights) and the model saved at `checkpoint_path` (ModelCheckpoint's
    `save_best_only` file) score on the same validation rows. All three should agree."""
    logged = history.history["val_loss"]
    best_index = int(np.argmin(logged))  # a NaN counts as the lowest: a diverged run has no best epoch
    first_epoch = history.epoch[0]  # above 0 when the run was resumed
    restored = model.evaluate(x_val, y_val, verbose=0, return_dict=True)["loss"]
    saved = keras.models.load_model(checkpoint_path).evaluate(x_val, y_val, verbose=0, return_dict=True)["loss"]
    return {
        "best_epoch": first_epoch + best_index + 1,  # counted from 1, as the progress lines do
        "epochs_run": first_epoch + len(logged),
        "best_val_loss_logged": float(logged[best_index]),
        "restored_model_val_loss": float(restored),
        "checkpoint_val_loss": float(saved),
    }


# %%
check = best_model_check(model, history, checkpoint_path, x_valid, y_valid)
run.record.add_extra("callbacks", check)  # extra code: into run.json
for key in ("best_val_loss_logged", "restored_model_val_loss", "checkpoint_val_loss"):
    print(f"{key:>24}: {check[key]:.6f}")
stopped = check["epochs_run"] < run.epochs
print(
    (f"Early stopping ended training after epoch {check['epochs_run']}" if stopped else "Ran every epoch")
    + f"; the best was epoch {check['best_epoch']} with validation loss {check['best_val_loss_logged']:.4f}."
)
print(f"checkpoint file: {checkpoint_path}")

# %% [markdown]
# The learning curves, with the ratio our callback printed. The dashed line marks the best epoch:
# the one ModelCheckpoint saved last and EarlyStopping restored.

# %%
curves = pd.DataFrame(history.history, index=pd.Index([epoch + 1 for epoch in history.epoch], name="epoch"))
curves["val/train"] = curves["val_loss"] / curves["loss"]
ax = curves[["loss", "val_loss"]].plot(figsize=(8, 5), marker=".")
ax.axvline(check["best_epoch"], linestyle="--", color="grey", label=f"best epoch ({check['best_epoch']})")
ax.set_ylabel("mean squared error")
ax.legend()
plt.show()
curves[["loss", "val_loss", "val/train"]].tail()

# %% [markdown]
# ## The test set, once

# %%
test_metrics = model.evaluate(x_test, y_test, return_dict=True, verbose=0)
run.record_test(test_metrics)  # extra code: into run.json and TensorBoard's `test` run
test_metrics

# %%
run.finish(model)  # extra code: saves model.keras in the run folder; run.json says "finished"

# %% [markdown]
# ## Resuming after a crash
#
# The last of the lab's callbacks is Keras's `BackupAndRestore`: at the end of an epoch it saves the
# weights and the epoch number in `<run>/backup` (and removes them once training is complete).
# Saving a small model takes 25-50 ms, a lot beside epochs of a tenth of a second, so the lab saves
# only when the save costs at most 2% of the training since the last one. Here the first save comes
# after 2 s of training, then one every ten epochs or so: 40 epochs on a 2-core CPU saved once (14
# ms, 0.5% of the training). A killed run repeats the epochs since its last save. If
# a run dies (Ctrl-C, a closed laptop, a `kill -9`), continue it in its own folder:
#
# ```
# python lesson_3/callbacks/train_with_callbacks.py --resume runs/lesson_3/callbacks/<run folder>
# ```
#
# It carries on from the last saved epoch with the run's own settings, and `run.json` lists the
# comeback under `resumes`. Try it from a terminal: start the script, press Ctrl-C after a few
# epochs, then resume. In TensorBoard the curve continues with no repeated or missing epochs.
# Every single-run Keras activity of the course accepts `--resume`.
#
# ## Questions to explore
#
# 1. Run with `--patience 3` and with `--patience 30`. How do the stopping epoch and the test MSE
#    change? What does patience trade off?
# 2. Watch the ratio. When does it rise above 1, and does it keep rising after the best epoch?
# 3. After a resume, EarlyStopping's patience counter and ModelCheckpoint's "best so far" start
#    afresh. When could that save a worse model over a better one? (Hint:
#    `ModelCheckpoint(initial_value_threshold=...)`.)
# 4. Write a callback that stops training when `val_loss` drops below a value you choose
#    (`self.model.stop_training = True`).
