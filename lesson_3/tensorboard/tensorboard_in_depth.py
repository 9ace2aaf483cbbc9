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
# # TensorBoard in depth
#
# Three parts, each written as run folders side by side, so that one TensorBoard shows them all:
#
# 1. **Learning rates**: the same regression network trained at learning rate 0.001 and at 0.05.
#    Their loss curves on one chart are how you compare runs.
# 2. **Summaries by hand**: the `tf.summary` API without Keras: a scalar, a histogram, images,
#    text and audio, each of which lights up its own tab.
# 3. **Every dashboard**: the Fashion-MNIST classifier trained with the op graph, per-layer weight
#    histograms, a confusion matrix, the misclassified images and the embedding projector, which
#    `labkit.dashboards` writes because the Keras 3 callback no longer does.
#
# The code lives in `train_mnist.py`; this notebook runs its parts one at a time and reads back what
# they logged.

# %%
# %matplotlib inline
import io
import json

import matplotlib.pyplot as plt
import pandas as pd

from labkit import cli
from labkit.dashboards import read_images
from labkit.tblogs import read_scalars, steps_of
from lesson_3.tensorboard.train_mnist import make_parser, summaries_demo, train_dashboards, train_learning_rates

args = cli.parse(make_parser(), [])

# %% [markdown]
# Start TensorBoard on this activity's runs folder (`runs/lesson_3/tensorboard` unless you set
# `--logdir` or `LAB_RUNS_DIR`). Each run appears in it as soon as it has written something; the
# reload button at the top right refreshes the page at once.

# %%
# %load_ext tensorboard

# %%
runs_folder = args.runs_root / "lesson_3" / "tensorboard"
# %tensorboard --logdir "$runs_folder"

# %% [markdown]
# ## 1. Two learning rates, side by side
#
# Both runs start from the same initial weights (same seed) and see the same batches in the same
# order; only the step size differs. In TensorBoard, open the Scalars tab, type `regression` in
# the run filter and look at `epoch_loss`.

# %%
rates = train_learning_rates(args)
fig, ax = plt.subplots(figsize=(8, 5))
for session in rates.sessions.values():
    scalars = read_scalars(session.run_dir)
    loss = scalars[(scalars.split == "train") & (scalars.tag == "epoch_loss")]
    ax.plot(loss.step, loss.value, marker="o", label=f"learning rate {session.args.learning_rate:g}")
ax.set_xlabel("epoch")
ax.set_ylabel("training loss (MSE)")
ax.set_title(f"Regression MLP on {session.data.name}")
ax.legend()
plt.show()

# %% [markdown]
# ## 2. Summaries written by hand
#
# `write_summaries` in `train_mnist.py` is the whole demo: open a writer, make it the default,
# and call `tf.summary.scalar`, `histogram`, `image`, `text` and `audio` with a `step`. Below is the
# scalar read back from the event file: `sin(step / 10)` at every step from 1 to 1000.

# %%
summary_run = summaries_demo(args)
sine = read_scalars(summary_run.run_dir)
sine = sine[sine.tag == "sin"]
print(f"{len(sine)} points, steps {steps_of(sine, '.', 'sin')[0]} to {steps_of(sine, '.', 'sin')[-1]}")
sine.plot(x="step", y="value", legend=False, figsize=(8, 3), title="the `sin` scalar")
plt.show()

# %% [markdown]
# In TensorBoard, find the run whose name starts with `summaries` and visit the Histograms tab
# (`drifting_normal` slides right and spreads out as the step grows), Images (`random_images`, brighter
# at later steps), Text (`step_text`) and Audio (`tone`: one second at 48 kHz, whose pitch is the
# step in hertz).

# %% [markdown]
# ## 3. Every dashboard on one classifier
#
# The callbacks from `labkit.dashboards.deep_dive_callbacks` write four folders inside the run:
# `graph/`, `weights/`, `images/` and `embedding/`. The run is short on purpose: the dashboards are
# the point here, not the accuracy.

# %%
session = train_dashboards(args)
record = session.record.data
print(json.dumps({"test": record["metrics"]["test"], "projector": record["extra"]["projector"]}, indent=2))

# %% [markdown]
# The confusion matrix after the last epoch, as numbers (rows: true class, columns: predicted),
# then as the picture TensorBoard's Images tab shows.

# %%
confusion = record["extra"]["confusion_matrix"]
table = pd.DataFrame(confusion["counts"], index=confusion["classes"], columns=confusion["classes"])
print(table.to_string())

step, png = read_images(session.run_dir / "images", "confusion_matrix")[-1]
fig, ax = plt.subplots(figsize=(7, 7))
ax.imshow(plt.imread(io.BytesIO(png), format="png"))
ax.axis("off")
plt.show()

# %% [markdown]
# The projector's files: a checkpoint with one 2-D variable (one row per test image), the labels in
# `metadata.tsv`, and the thumbnails in `sprite.png`. In TensorBoard pick Projector from the
# menu at the top right, choose the `embedding` run, and colour the points by `class`.

# %%
print((session.run_dir / "embedding" / "projector_config.pbtxt").read_text())
print("\n".join((session.run_dir / "embedding" / "metadata.tsv").read_text().splitlines()[:6]))

# %% [markdown]
# ## Questions to explore
#
# 1. Add a third learning rate (0.2, or 0.5) to `COMPARED_LEARNING_RATES`. At what rate does the loss
#    stop falling, or blow up?
# 2. In the Histograms tab, the biases of every layer start as one spike at 0. Which layer's
#    weights change the most over the epochs, and which hardly move?
# 3. Which two classes does the confusion matrix mix up most? Find them in the projector: do their
#    points overlap?
# 4. Change the `sin` scalar to `sin(step / 100)`. What does TensorBoard's smoothing slider do to it?
