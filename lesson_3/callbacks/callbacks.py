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
# # Callbacks: checkpoints, early stopping, and a callback of your own
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
# For example `on_epoch_end(self, epoch, logs)` runs after every epoch with that epoch's metrics.
#
# The model and the three callbacks live in `train_with_callbacks.py`; this notebook trains with
# them and then checks each promise they make.

# %%
# %matplotlib inline
import matplotlib.pyplot as plt

from labkit import cli
from lesson_3.callbacks.train_with_callbacks import CHECKPOINT, learning_curves, make_parser, train

args = cli.parse(make_parser(), [])

# %% [markdown]
# Start TensorBoard on this activity's runs before training. Besides `epoch_loss`, the Scalars
# tab shows `val_train_loss_ratio`, the number our own callback prints after every epoch.

# %%
# %load_ext tensorboard

# %%
runs_folder = args.runs_root / "lesson_3" / "callbacks"
# %tensorboard --logdir "$runs_folder"

# %% [markdown]
# ## Train for up to 100 epochs
#
# Watch the `val/train loss ratio` lines: our callback prints one after each epoch. EarlyStopping
# ends the run once the validation loss has not improved for 10 epochs (in quick mode there are
# only two epochs, so it never gets the chance).

# %%
session = train(args)

# %% [markdown]
# ## The learning curves and the best epoch
#
# The dashed line marks the epoch with the lowest validation loss: the one ModelCheckpoint saved
# last and EarlyStopping restored.

# %%
curves = learning_curves(session.history)
check = session.record.data["extra"]["callbacks"]
ax = curves[["loss", "val_loss"]].plot(figsize=(8, 5), marker=".")
ax.axvline(check["best_epoch"], linestyle="--", color="grey", label=f"best epoch ({check['best_epoch']})")
ax.set_ylabel("mean squared error")
ax.legend()
plt.show()
curves.tail()

# %% [markdown]
# ## Did the callbacks keep their promises?
#
# Three numbers should agree: the best validation loss in the log, the validation loss of the
# model after training (EarlyStopping put the best weights back), and that of the model loaded
# from the checkpoint file.

# %%
for key in ("best_val_loss_logged", "restored_model_val_loss", "checkpoint_val_loss"):
    print(f"{key:>24}: {check[key]:.6f}")
print(f"checkpoint file: {session.run_dir / CHECKPOINT}")

# %% [markdown]
# ## Resuming after a crash
#
# Every Keras activity in this course also runs Keras's `BackupAndRestore` callback: after each
# epoch it saves the weights and the epoch number in `<run>/backup`. If a run dies (Ctrl-C, a
# closed laptop, a `kill -9`), continue it in its own folder:
#
# ```
# python lesson_3/callbacks/train_with_callbacks.py --resume runs/lesson_3/callbacks/<run folder>
# ```
#
# It carries on from the last saved epoch with the run's own settings, and `run.json` lists the
# comeback under `resumes`. Try it from a terminal: start the script, press Ctrl-C after a few
# epochs, then resume. In TensorBoard the curve continues with no repeated or missing epochs.
