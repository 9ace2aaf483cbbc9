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
# # A deep MLP on MNIST, tuned with the lesson's tools
#
# The exercise: train a deep multilayer perceptron on MNIST to more than 98% test accuracy, using
# what this lesson built. The learning-rate finder picks the rate, ModelCheckpoint keeps the best
# model, EarlyStopping decides when to stop, and TensorBoard shows the curves. The model and the
# whole procedure live in `train_mnist.py`; this notebook runs it, looks inside the good run, and
# then trains three runs that fall short, to see in TensorBoard why they do.

# %%
# %matplotlib inline
import matplotlib.pyplot as plt
from IPython.display import Image, display

from labkit import cli
from labkit.deferred import keras
from labkit.tblogs import curve, read_scalars
from lesson_3.deep_mlp.train_mnist import CHECKPOINT, FINDER_PLOT, compare_runs, make_parser, train, with_changes

args = cli.parse(make_parser(), [])

# %% [markdown]
# Start TensorBoard on this activity's runs folder before training. Every run of this notebook
# writes a sibling folder there, so the Scalars tab can lay their curves over each other. Besides
# `train` and `validation`, the good run has a `lr_finder` folder: the finder's sweep, one point per
# batch, and its plot in the Images tab.

# %%
# %load_ext tensorboard

# %%
runs_folder = args.runs_root / "lesson_3" / "deep_mlp"
# %tensorboard --logdir "$runs_folder"

# %% [markdown]
# ## The good run: finder first, then training
#
# The finder trains the untrained network for one pass while it multiplies the rate by the same
# factor after every batch, from 1e-5 up to 10. Then it puts the weights back and reads the sweep.
# Without full MNIST on the machine, the run uses the 4,000 training digits of `mnist_5k`, so the
# sweep lasts at most 125 batches instead of the seed's 500.

# %%
session = train(args)
session.model.summary()

# %% [markdown]
# The grey line is each batch's own loss; the blue one is smoothed, since single batches are too
# noisy to read. The loss hardly moves while the rate is tiny, falls once the rate is large enough,
# then turns up and explodes. The suggestion sits ten times below the turn.

# %%
display(Image(filename=str(session.run_dir / FINDER_PLOT)))
finder = session.record.data["extra"]["lr_finder"]
print(finder["how"])
suggested = finder["suggested_rate"]

# %% [markdown]
# ## What the callbacks kept
#
# EarlyStopping put back the weights of the epoch with the lowest validation loss, and
# ModelCheckpoint saved that same model to disk. Loaded from the file, it must score what the
# restored model scored on the test set.

# %%
check = session.record.data["extra"]["callbacks"]
print(f"best epoch {check['best_epoch']} of {check['epochs_run']}")
saved = keras.models.load_model(session.run_dir / CHECKPOINT)
data = session.data
from_file = saved.evaluate(data.x_test, data.y_test, batch_size=256, verbose=0, return_dict=True)["accuracy"]
print(f"test accuracy: restored model {session.record.data['metrics']['test']['accuracy']:.4f}, file {from_file:.4f}")

# %% [markdown]
# ## The runs that did not make it
#
# Three runs that change one thing each, trained with the same seed, data and callbacks:
# - **too fast**: 100 times the suggested rate, beyond the point where the finder's loss blew up;
# - **too slow**: a thousandth of the suggested rate;
# - **too narrow**: one hidden layer of 8 units instead of the 300-200-100 pyramid (the finder picks
#   its rate).

# %%
# The same data object, already loaded, and no progress lines: the table below says how each ended.
same = {"dataset": session.data, "quiet": True}
runs = {"good": session}
runs["too fast"] = train(with_changes(args, learning_rate=100 * suggested), tag="too-fast", **same)
runs["too slow"] = train(with_changes(args, learning_rate=suggested / 1000), tag="too-slow", **same)
runs["too narrow"] = train(with_changes(args, hidden_units="8"), tag="too-narrow", **same)
compare_runs(runs)

# %% [markdown]
# Switch to TensorBoard (reload it) to see the four runs side by side. The same curves, read back
# from the event files:

# %%
scalars = read_scalars(runs_folder)
names = {s.run_dir.name: name for name, s in runs.items()}
scalars = scalars[scalars.run.isin(list(names))].assign(run=lambda table: table.run.map(names))


def by_epoch(split, tag):
    """One curve per run, in the order the runs were trained, epochs counted from 1."""
    table = curve(scalars, split, tag).reindex(columns=list(runs))
    return table.set_axis(table.index + 1, axis="index")


fig, (loss_axes, accuracy_axes) = plt.subplots(1, 2, figsize=(12, 4.5))
by_epoch("train", "epoch_loss").plot(ax=loss_axes, marker="o")
loss_axes.set(title="training loss (a NaN point is not drawn)", xlabel="epoch", ylabel="loss")
by_epoch("validation", "epoch_accuracy").plot(ax=accuracy_axes, marker="o")
accuracy_axes.set(title="validation accuracy", xlabel="epoch", ylabel="accuracy", ylim=(0, 1))
plt.show()

# %% [markdown]
# ## Why each run fell short
#
# - **Too fast.** Every SGD step moves the weights by the rate times the gradient. At 100 times
#   the suggestion, ten times the rate where the finder's loss turned up, the steps overshoot: the
#   loss grows from one batch to the next until it is no longer a number. `TerminateOnNaN` stops
#   the run within its first epoch. Its one logged point is NaN, which is why its loss curve is
#   missing, and the model does no better than guessing (10%).
# - **Too slow.** Nothing goes wrong; it just takes forever. A thousandth of the rate needs
#   roughly a thousand times more steps to cover the same distance, so the loss creeps down and the
#   accuracy stays low. At full length it is still improving at the 100-epoch cap, and early
#   stopping never acts.
# - **Too narrow.** Eight units must squeeze everything the network knows about a digit into
#   eight numbers. The finder gives it a good rate and it learns, but it levels off early, with a
#   higher loss than the pyramid. That is underfitting, and neither a better rate nor more epochs
#   will fix it.
#
# In quick mode every run sees two short epochs of a 2,000-image slice, so the gaps are rough.
# At full length on `mnist_5k` (seed 42), the good run reached 0.926 test accuracy, the too-fast
# one 0.10, the too-slow one 0.48 after 100 epochs, and the too-narrow one 0.876. The card
# (`README.md`) has the details and the timings.

# %% [markdown]
# ## Questions to explore
#
# 1. The finder's rule (ten times below the turn) is cautious. Train at 3 and 10 times the
#    suggestion with `--learning-rate`. Which is best? Compare with half the rate at which the
#    finder's loss blew up (`divergence_rate` in `run.json`).
# 2. Use two hidden layers (`--hidden-units 300,100`) instead of three. Does the third layer earn
#    its weights?
# 3. Set `--patience 3`. Does training stop too early? Compare the best epochs in TensorBoard.
# 4. Read `lr_finder/smoothed_loss` in TensorBoard. Why is its step axis a logarithmic rate axis?
