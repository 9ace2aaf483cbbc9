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
# # Lesson 1, Exercise A: train your first convolutional network
#
# This notebook drives the same code as `train_mnist.py` in this folder: it imports the script's
# functions instead of copying them, so the two can never drift apart.
#
# * **Run it quick** (a small slice, two short epochs, seconds): set `LAB_QUICK=1` before starting
#   Jupyter, or pass `["--quick"]` to `cli.parse` below.
# * **Run it in full** (2,000 steps, about two minutes on a laptop CPU): leave quick mode off.
#
# While it trains, you can watch it live in TensorBoard: section 2 opens TensorBoard inside this
# notebook, and the run folder is printed below.

# %%
import matplotlib.pyplot as plt

from labkit import cli
from labkit.plan import training_plan
from labkit.tblogs import curve, read_scalars
from lesson_1.exercise_a.train_mnist import EDGE_SHIFTS, build_model, make_parser, misclassified_at_edge, train

# %% [markdown]
# ## 1. The network
#
# One convolutional layer (32 filters of 5x5, ReLU, 2x2 max-pooling) and two fully connected
# layers. Most of the weights sit in `fc1`: count them in the summary.

# %%
build_model().summary()

# %% [markdown]
# ## 2. Train it
#
# `cli.parse` applies the same checks and defaults as the command line. An empty list means the
# lesson's defaults: Adam at 1e-4, batches of 100, 10 epochs of 200 steps.

# %%
args = cli.parse(make_parser(), [])
plan = training_plan(args)
print("quick mode:", plan.quick, "| epochs:", plan.epochs, "| steps per epoch:", plan.steps_per_epoch)

# %% [markdown]
# Open TensorBoard before training starts. It watches this exercise's runs folder
# (`runs/lesson_1/exercise_a` unless you set `--logdir` or `LAB_RUNS_DIR`), so it shows every run
# you have made here, and the new run's points appear while it trains. The page refreshes itself
# every 30 seconds; the reload button at its top right refreshes it at once. To open the same
# TensorBoard in a browser tab, `from tensorboard import notebook; notebook.list()` prints its port.

# %%
# %load_ext tensorboard

# %%
runs_folder = args.runs_root / "lesson_1" / "exercise_a"
# %tensorboard --logdir "$runs_folder"

# %%
session = train(args)

# %% [markdown]
# ## 3. Read the curves back from TensorBoard's files
#
# `read_scalars` returns every point TensorBoard stored. `accuracy_by_step` is the validation
# accuracy measured every 20 steps; `epoch_accuracy` is Keras's one-point-per-epoch summary.

# %%
scalars = read_scalars(session.run_dir)
by_step = curve(scalars, "validation", "accuracy_by_step")
first_90 = by_step[by_step.iloc[:, 0] >= 0.9].index.min()
print("first step with validation accuracy >= 90%:", first_90)

fig, ax = plt.subplots(figsize=(7, 4))
by_step.plot(ax=ax, legend=False, marker=".")
ax.axhline(0.9, color="grey", linestyle="--", linewidth=1)
ax.set(xlabel="training step", ylabel="validation accuracy", title="Accuracy climbs fast, then slowly")
plt.show()

# %% [markdown]
# ## 4. Beyond the lesson: digits drawn at the edge
#
# MNIST digits are centred, with a 4-pixel margin. The original lesson asked you to draw a digit
# near the edge of a web canvas and watch the network fail. Here we do it offline: slide the test
# digits to the right and score the same trained network again.

# %%
shifted = session.record.data["extra"]["edge_shift_accuracy"]
for pixels, accuracy in shifted.items():
    print(f"shift {int(pixels):2d} px -> accuracy {accuracy:.3f}")

# %%
data = session.data
examples = misclassified_at_edge(session.model, data.x_test, data.y_test, pixels=max(EDGE_SHIFTS))
fig, axes = plt.subplots(1, max(len(examples), 1), figsize=(2 * max(len(examples), 1), 2.4))
for ax, (image, truth, guess) in zip(list(getattr(axes, "flat", [axes])), examples, strict=False):
    ax.imshow(image, cmap="gray_r")
    ax.set_title(f"true {truth}, said {guess}")
    ax.axis("off")
plt.suptitle(f"Correct when centred, wrong after a {max(EDGE_SHIFTS)}-pixel shift")
plt.show()

# %% [markdown]
# ## Questions to explore
#
# 1. At which step does validation accuracy first pass 90%? The original lesson saw about 200 steps.
# 2. The network learned nothing about the right-hand columns of the canvas. Why does a 2-pixel
#    shift hurt so much less than an 8-pixel one?
# 3. How would you make the network robust to shifts? (Hint: show it shifted digits while training.)
