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
# # Finding a learning rate in one pass
#
# The learning rate is the hyperparameter that matters most. Too small, and training crawls; too
# large, and every step overshoots until the loss explodes. A rule of thumb: the best rate is
# about half the rate at which training starts to diverge. So find that rate first.
#
# The finder does it in a single pass over the training data. It starts at a tiny rate (1e-5)
# and multiplies it by the same factor after every batch, up to 10 after 500 batches, while it
# records each batch's loss. Plotted against the rate on a log axis, the loss first stays flat,
# then falls, then turns up. A good rate lies about ten times below that turning point.
#
# Everything here is imported from `train_lr_finder.py`; the network is part 1's Fashion-MNIST
# classifier (Flatten, Dense 300 and 100 ReLU, softmax; plain SGD, batches of 32).

# %%
# %matplotlib inline
import matplotlib.pyplot as plt
from IPython.display import Image, display

from labkit import cli
from labkit.tblogs import curve, read_scalars
from lesson_3.tuning.train_lr_finder import FIGURE, check_suggestion, find_rate, make_parser, runs_folder

args = cli.parse(make_parser(), [])

# %% [markdown]
# TensorBoard on the finder's runs folder (`runs/lesson_3/tuning/lr_finder` unless you set
# `--logdir` or `LAB_RUNS_DIR`). The sweep shows up as the run `<sweep folder>/lr_finder`, its
# plot in the Images tab; the comparison trainings below are runs of their own. The page
# refreshes every 30 seconds.

# %%
# %load_ext tensorboard

# %%
finder_folder = runs_folder(args)
# %tensorboard --logdir "$finder_folder"

# %% [markdown]
# ## The sweep
#
# One pass, at most 500 batches (in quick mode, the 63 batches of a 2,000-image slice, with the
# same start and end rates). The sweep stops early once the smoothed loss has grown to four times
# its lowest value: the rest would only be the explosion. Afterwards the model gets its initial
# weights back, so the sweep has only looked.

# %%
sweep_session, result = find_rate(args)
display(Image(filename=str(sweep_session.run_dir / FIGURE)))

# %% [markdown]
# ## Reading the curve
#
# - On the left, the rate is too small to change anything: the loss stays at about 2.3, which is
#   ln(10), the score of a network that spreads its bets evenly over ten classes.
# - Then the loss falls, faster and faster: the rates in this stretch all learn.
# - At some point it stops falling and turns up (red, dashed). The steps have become so large
#   that they undo what the previous ones learned, and a little further on the loss explodes
#   (grey, dotted: where the smoothed loss passed four times its lowest value).
#
# Single batches are noisy, so the finder reads a moving average (blue) over a tenth of the
# sweep. It then picks the rate ten times below the turning point (green). Why not the turning
# point itself? The moving average lags behind the raw loss, and the turning point is already
# on the edge of instability; a decade lower is safely inside the region where the loss fell.

# %%
print(result.how)
print(f"The sweep's divergence point: {result.divergence_rate:.2g}; half of it: {result.divergence_rate / 2:.2g}")
print(f"To train part 1's classifier at the suggestion:\n  {sweep_session.record.data['extra']['part_1_command']}")

# %% [markdown]
# The chapter's rule of thumb says that the best rate is about half the divergence rate. Careful:
# it means the rate at which a whole training *at that fixed rate* diverges, and the sweep's
# divergence point lies further right than that. The sweep spends only a few batches at each
# rate, and the damage shows a few batches later, at a larger rate. On full Fashion-MNIST (seed
# 42), one epoch at a fixed rate gave these validation accuracies:
#
# | fixed rate | 0.01 | 0.029 (suggested) | 0.1 | 0.2 | 0.4 | 0.65 |
# |---|---|---|---|---|---|---|
# | validation accuracy after one epoch | 0.826 | 0.836 | 0.831 | 0.827 | 0.755 | 0.101 (chance) |
#
# Fixed-rate training broke down between 0.4 and 0.65, about half the sweep's divergence point
# (1.3 on that run). Half of *that*, 0.2 to 0.3, is close to where the sweep's loss turned up
# (0.29), and the finder's pick sits a decade below, with a wide safety margin.
#
# ## The same curve in TensorBoard
#
# TensorBoard plots scalars against a step. The sweep logs one step per batch, and because the
# rate grows by a fixed factor per batch, the step is a logarithmic rate axis in disguise:
# `lr_finder/log10_learning_rate` climbs in a straight line. Here are the logged scalars, read
# back from the event file.

# %%
scalars = read_scalars(sweep_session.run_dir)
logged = {
    tag: curve(scalars, "lr_finder", f"lr_finder/{tag}").iloc[:, 0]
    for tag in ("loss", "smoothed_loss", "log10_learning_rate")
}
fig, (loss_axes, rate_axes) = plt.subplots(1, 2, figsize=(12, 4))
loss_axes.plot(logged["loss"], color="0.7", label="lr_finder/loss")
loss_axes.plot(logged["smoothed_loss"], label="lr_finder/smoothed_loss")
loss_axes.set_ylim(0, 1.5 * logged["smoothed_loss"].iloc[0])
loss_axes.set_ylabel("training loss")
loss_axes.legend()
rate_axes.plot(logged["log10_learning_rate"], color="C2")
rate_axes.set_ylabel("lr_finder/log10_learning_rate")
for axes in (loss_axes, rate_axes):
    axes.set_xlabel("step (one batch each)")
plt.show()

# %% [markdown]
# ## Does the suggestion train well?
#
# Two short trainings tell: part 1's classifier for two epochs at the suggested rate, and again
# at 100 times that rate, which lies past the point where the sweep diverged. A third run uses
# part 1's own rate, 0.01, for reference. All three start from the same weights and see the same
# batches, so the rate is the only difference.

# %%
checks = check_suggestion(args, result, sweep_session.model, sweep_session.data)

# %%
fig, ax = plt.subplots(figsize=(7, 4))
for tag, session in checks.sessions.items():
    accuracy = curve(read_scalars(session.run_dir), "validation", "epoch_accuracy").iloc[:, 0]
    rate = session.record.data["hparams"]["learning_rate"]
    ax.plot(accuracy.index + 1, accuracy.to_numpy(), marker="o", label=f"{tag} (learning rate {rate:g})")
ax.set_xticks(accuracy.index + 1)
ax.set_xlabel("epoch")
ax.set_ylabel("validation accuracy")
ax.set_ylim(0, 1)
ax.legend()
plt.show()

# %% [markdown]
# At 100 times the suggestion the first steps are so large that the loss shoots up and the ReLU
# units die: pushed negative for every image, they output zero and pass no gradient back (in our
# runs, all 100 units of the second hidden layer). The network is stuck at chance, 10% accuracy.
# The suggested rate learns, and faster than part 1's 0.01 over these few epochs.
#
# ## Questions to explore
#
# 1. Run the sweep at full length (`python lesson_3/tuning/train_lr_finder.py`). Is the
#    suggestion the same as on the quick slice? Try two other seeds (`--seed 1`, `--seed 2`):
#    how much does it move?
# 2. Train part 1's classifier for 30 epochs at the suggested rate with the printed command.
#    Does it end better than at 0.01, or only get there sooner?
# 3. Train at the suggestion, at the turning point and at half the sweep's divergence point
#    (`--learning-rate` of part 1's script, `--epochs 5`). Which rate is best after five epochs,
#    and which after 30?
# 4. Sweep with `--batch-size 256`. Does the suggested rate go up or down, and why would larger
#    batches tolerate larger steps?
# 5. What happens to the suggestion if the sweep ends too early (`--end-rate 0.1`)? Read the note
#    the finder prints.
