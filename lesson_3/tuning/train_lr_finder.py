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
# # Lesson 3, tuning: find a learning rate in one pass
#
# The learning rate is the hyperparameter that matters most. Too small, and training crawls; too
# large, and every step overshoots until the loss explodes. A rule of thumb: the best rate is
# about half the rate at which training starts to diverge. So find that rate first.
#
# The finder does it in a single pass over the training images. It starts at a tiny rate (1e-5)
# and multiplies it by the same factor after every batch, up to 10 after 500 batches of 32
# (x1.028 per batch), while it records each batch's loss. Plotted against the rate on a log axis,
# the loss first stays flat, then falls, then turns up and explodes. A good rate lies about ten
# times below the point where it turned up. The network is part 1's Fashion-MNIST classifier.
#
# This file is both the script and the notebook (`train_lr_finder.ipynb` beside it holds the same
# cells, kept in step by jupytext):
#
# ```
# python lesson_3/tuning/train_lr_finder.py                    # the sweep alone: seconds
# python lesson_3/tuning/train_lr_finder.py --check            # then three short trainings to compare
# python lesson_3/tuning/train_lr_finder.py --quick --check    # the same cells on a small slice
# ```
#
# The notebook always runs the check (the second half of this page); set `LAB_QUICK=1` before
# starting Jupyter for the quick version.

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
# The sweep's: from `--start-rate` 1e-5 to `--end-rate` 10 over `--iterations` 500 batches, or
# one pass over the training images if that is shorter. The check's: `--epochs` 2 at each rate,
# with part 1's batches of 32 and, for reference, part 1's rate of 0.01 (`--learning-rate`).

# %%
from labkit import LabError, cli

parser = cli.build_parser(
    "Lesson 3, tuning: find a learning rate for part 1's Fashion-MNIST classifier in one pass.",
    epochs=2,
    learning_rate=0.01,
    batch_size=32,
    default_dataset="fashion_mnist",
    several_runs="a sweep that takes seconds (run it again) and, with --check, three short trainings",
)
parser.add_argument(
    "--start-rate", type=cli.positive_float, default=1e-5, help="first rate of the sweep (default 1e-05)"
)
parser.add_argument("--end-rate", type=cli.positive_float, default=10.0, help="last rate of the sweep (default 10)")
parser.add_argument(
    "--iterations",
    type=cli.positive_int,
    default=500,
    help="batches in the sweep, at most one pass over the training images (default 500)",
)
parser.add_argument(
    "--check",
    action="store_true",
    help="then train 2 epochs (--epochs) at the suggestion, at 100x it and at --learning-rate, and compare them",
)
config = cli.parse(parser)
if config.start_rate >= config.end_rate:
    raise LabError(
        f"--start-rate {config.start_rate:g} must be below --end-rate {config.end_rate:g}: the rate only grows"
    )
if config.iterations < 2:
    raise LabError(f"--iterations {config.iterations} is too few: a sweep needs at least 2 batches")
check = config.check or cli.in_notebook()  # the notebook always puts the suggestion to the test
print(config.plan)

# %%
import dataclasses
import math

import keras
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from labkit.lr_finder import (
    ExponentialSweep,
    growth_factor,
    plot_sweep,
    read_sweep,
    save_sweep_figure,
    typed,
    write_sweep,
)
from labkit.tblogs import curve, read_scalars
from labkit.training import load_data, start_run
from lesson_3.models import fashion_mlp

# %% [markdown]
# ## The data
#
# Fashion-MNIST: 28x28 greyscale pictures of clothes in 10 classes, scaled to [0, 1]; the first
# 5,000 training images are held out for validation.

# %%
data = load_data(config)  # extra code: Fashion-MNIST from the Keras cache or a mirror, else a labelled real substitute
x_train, y_train = data.x_train, data.y_train
x_valid, y_valid = data.x_val, data.y_val
x_test, y_test = data.x_test, data.y_test

print("train:", x_train.shape, y_train.shape, "| valid:", x_valid.shape, "| test:", x_test.shape)
print("classes:", data.num_classes, "| first labels:", y_train[:10])

# %% [markdown]
# The finder's runs go beside the searches of this folder, in a folder of their own:
# `runs/lesson_3/tuning/lr_finder` (unless you set `--logdir` or `LAB_RUNS_DIR`). Open TensorBoard
# on it: the sweep shows up as the run `<sweep folder>/lr_finder`, its plot in the Images tab, and
# the check's trainings as runs of their own.

# %%
runs_folder = config.runs_root / config.lesson / config.activity / "lr_finder"

# %%
# %load_ext tensorboard

# %%
# %tensorboard --logdir "$runs_folder"

# %% [markdown]
# The sweep is a run of its own. It tries hundreds of rates, so it records none as its
# `learning_rate`; its own settings go into `run.json` and the HParams dashboard beside the usual ones.

# %%
run = start_run(
    config,
    data,
    tag="sweep",
    hparams={
        "learning_rate": None,  # no single rate: the sweep tries hundreds
        "epochs": 1,
        "steps_per_epoch": None,
        "model": "mlp",
        "start_rate": config.start_rate,
        "end_rate": config.end_rate,
        "iterations": config.iterations,
    },
    parent_dir=runs_folder,
)

# %% [markdown]
# ## The model
#
# Part 1's classifier, taught by `fashion_classifier/train_mnist.py` and handed here by
# `lesson_3/models.py`: Flatten, then Dense layers of 300 and 100 ReLU units, then a softmax over
# the 10 classes. Part 1 trains it with plain SGD; the sweep sets the optimizer's rate itself
# before every batch.

# %%
model = fashion_mlp(data.num_classes)
model.summary()

# %%
model.compile(
    optimizer=keras.optimizers.SGD(learning_rate=config.learning_rate),
    loss="sparse_categorical_crossentropy",
    metrics=["accuracy"],
)

# %% [markdown]
# ## The sweep
#
# One pass at most, so that no image is seen twice: in quick mode, the 63 batches of a 2,000-image
# slice, with the same start and end rates (a larger factor per batch).

# %%
batches = math.ceil(len(x_train) / config.batch_size)
iterations = min(config.iterations, batches)
factor = growth_factor(config.start_rate, config.end_rate, iterations)
print(f"{iterations} batches of {config.batch_size}: the rate x{factor:.3f} per batch")

# %% [markdown]
# A callback does the sweeping (`ExponentialSweep`, in `labkit/lr_finder.py`; the deep MLP
# exercise uses it too). Before each batch it sets `model.optimizer.learning_rate` to
# `start * factor**k`; after it, it records that batch's loss. It stops the training once the
# smoothed loss has grown to four times its lowest value: the rest would only be the explosion.
# Afterwards the model gets its initial weights back, so the sweep has only looked.

# %%
sweep = ExponentialSweep(config.start_rate, factor, iterations)
initial_weights = model.get_weights()
model.fit(x_train, y_train, batch_size=config.batch_size, epochs=1, callbacks=[sweep], verbose=0)
model.set_weights(initial_weights)  # every weight back where it started
model.optimizer.learning_rate = config.learning_rate
result = read_sweep(sweep)  # the smoothed loss, where it turned up, and the suggestion
print(
    f"Swept {len(result.rates)} batches of {config.batch_size}, rate {result.rates[0]:.2g} to {result.rates[-1]:.2g}."
)

# %%
# extra code: the sweep into TensorBoard (one step per batch) and lr_finder.png, also an image there
writer = run.open_writer("lr_finder")
write_sweep(writer, result)
save_sweep_figure(result, run.dir / "lr_finder.png", writer=writer)

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
fig, ax = plt.subplots(figsize=(7, 4.2))
plot_sweep(result, ax)
plt.show()

# %%
suggested = typed(result.suggested_rate)  # two significant digits, as you would type it
flags = [f"--learning-rate {suggested:g}"]
if config.batch_size != parser.get_default("batch_size"):
    flags.append(f"--batch-size {config.batch_size}")  # the best rate depends on the batch size
if config.dataset:
    flags.append(f"--dataset {config.dataset}")
part_1_command = "python lesson_3/fashion_classifier/train_mnist.py " + " ".join(flags)

print(result.how)
for note in result.notes:
    print(f"  ({note})")
print(f"The sweep's divergence point: {result.divergence_rate:.2g}; half of it: {result.divergence_rate / 2:.2g}")
reference = (
    "part 1's rate" if config.learning_rate == parser.get_default("learning_rate") else "the --learning-rate given"
)
ratio = suggested / config.learning_rate
print(f"That is {ratio:.2g} times {reference}, {config.learning_rate:g}. Train part 1's classifier at it:")
print(f"  {part_1_command}")
if config.quick:
    print("  (a quick sweep reads a small slice: sweep without --quick before a full training)")

# %%
run.record.add_extra("lr_finder", result.describe())  # extra code: the reading, into run.json
run.record.add_extra("part_1_command", part_1_command)
run.finish(model)

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
# TensorBoard plots scalars against a step. The sweep logged one step per batch, and because the
# rate grows by a fixed factor per batch, the step is a logarithmic rate axis in disguise:
# `lr_finder/log10_learning_rate` climbs in a straight line. Here are the logged scalars, read
# back from the event file.

# %%
scalars = read_scalars(run.dir)
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
# ## Does the suggestion train well? (`--check`)
#
# Three short trainings tell: part 1's classifier for `--epochs` (2) at the suggested rate, again
# at 100 times that rate, which lies past the point where the sweep diverged, and at part 1's own
# rate, 0.01, for reference. Each is a run of its own, and all three start from the weights the
# sweep started from and see the same batches, so the rate is the only difference.
#
# The same model object trains all three: its training step is traced once, not three times.
# Plain SGD keeps no state but its step counter, so resetting the weights, the counter and the
# rate gives each run the same start as a freshly compiled model.

# %%
check_rates = {"suggested": suggested, "100x": typed(100 * suggested), "reference": config.learning_rate}
if not check:
    check_rates = {}  # a script without --check stops at the sweep: the cells below train nothing
checks, histories = {}, {}
start_weights = model.get_weights()
for tag, rate in check_rates.items():
    check_run = start_run(
        dataclasses.replace(config, learning_rate=rate), data, tag=tag, hparams={"model": "mlp"}, parent_dir=runs_folder
    )
    model.set_weights(start_weights)
    model.optimizer.iterations.assign(0)
    model.optimizer.learning_rate = rate
    tensorboard = keras.callbacks.TensorBoard(log_dir=check_run.dir)
    histories[tag] = model.fit(
        check_run.batches(x_train, y_train),
        epochs=check_run.epochs,
        steps_per_epoch=check_run.steps_per_epoch,
        validation_data=(x_valid, y_valid),
        callbacks=[tensorboard, *check_run.callbacks(tensorboard)],
        verbose=2,
    )
    test_metrics = model.evaluate(x_test, y_test, return_dict=True, verbose=0)
    check_run.record_test(test_metrics)
    check_run.finish(model)
    checks[tag] = check_run

# %% [markdown]
# The verdict: the suggestion wins if it ends with a lower validation loss and a higher
# validation accuracy than 100 times itself (a NaN loss always loses).

# %%
if checks:
    table = pd.DataFrame.from_dict(
        {
            tag: {
                "learning_rate": rate,
                "validation_loss": histories[tag].history["val_loss"][-1],
                "validation_accuracy": histories[tag].history["val_accuracy"][-1],
                "test_accuracy": checks[tag].record.data["metrics"]["test"]["accuracy"],
            }
            for tag, rate in check_rates.items()
        },
        orient="index",
    ).rename_axis("run")
    good, large = table.loc["suggested"], table.loc["100x"]
    lower_loss = math.isfinite(good.validation_loss) and not (large.validation_loss <= good.validation_loss)
    suggestion_wins = bool(lower_loss and good.validation_accuracy > large.validation_accuracy)
    # extra code: the table and the verdict into the last run's run.json
    checks["reference"].record.add_extra("check", table.reset_index().to_dict(orient="records"))
    checks["reference"].record.add_extra("suggestion_beats_100x", suggestion_wins)

    print("The same network, the same start, the same batches, three learning rates:")
    print(table.to_string(float_format=lambda v: f"{v:.4f}"))
    beyond = "beyond" if check_rates["100x"] >= result.divergence_rate else "below"
    print(
        f"100x the suggestion ({check_rates['100x']:g}) lies {beyond} the rate at which the sweep diverged"
        f" ({result.divergence_rate:.2g}). The suggestion "
        + ("beats it." if suggestion_wins else "does NOT beat it: look at the curve before trusting the rule of thumb.")
    )

# %%
if checks:
    fig, ax = plt.subplots(figsize=(7, 4))
    for tag, history in histories.items():
        epochs = np.arange(1, len(history.history["val_accuracy"]) + 1)
        ax.plot(
            epochs, history.history["val_accuracy"], marker="o", label=f"{tag} (learning rate {check_rates[tag]:g})"
        )
    ax.set_xticks(epochs)
    ax.set(xlabel="epoch", ylabel="validation accuracy", ylim=(0, 1))
    ax.legend()
    plt.show()

# %% [markdown]
# At 100 times the suggestion the first steps are so large that the loss shoots up and the ReLU
# units die: pushed negative for every image, they output zero and pass no gradient back (in our
# runs, all 100 units of the second hidden layer). The network is stuck at chance, 10% accuracy.
# The suggested rate learns, and faster than part 1's 0.01 over these few epochs.
#
# ## The batch size, and a warm-up for large batches
#
# The chapter's advice on the other knob that moves the best rate:
#
# - **Keras's default is 32**, and 32 is a sound first choice.
# - **One camp trains with small batches**, of 2 to 32 images: in the studies the chapter cites,
#   they gave models that generalized better in less time.
# - **The other camp goes as large as the hardware allows, up to 8,192 images**, and makes it work
#   with a **learning-rate warm-up**: the rate starts small and grows over the first steps, so that
#   the first updates, computed from an untrained network, cannot throw it far off.
# - **A practical route**: try a large batch with a warm-up; if training is unstable or the model
#   ends worse, go back to small batches.
#
# A batch is an average over more images, so its gradient is less noisy and a larger step is
# safe. That is why the best rate depends on the batch size, and why this page prints
# `--batch-size` in its command: run the finder again whenever you change the batch. A measured
# example (full Fashion-MNIST, seed 42, one pass at most): the suggestion was 0.028 with batches of
# 32, 0.04 with 256 and 0.074 with 1,024. Larger batches also mean fewer batches in the one pass (49
# at 1,024), so the sweep's curve is coarser.
#
# Keras builds a warm-up into its cosine schedule: the rate below climbs in a straight line from
# near 0 to the target over `warmup_steps`, then decays along a cosine. Pass the schedule to an
# optimizer as its `learning_rate`.

# %%
warm_up = keras.optimizers.schedules.CosineDecay(
    initial_learning_rate=0.0,  # where the warm-up starts
    warmup_target=0.074,  # the rate it reaches: the finder's suggestion for batches of 1,024 above
    warmup_steps=54,  # one epoch of Fashion-MNIST's 55,000 training images, in batches of 1,024
    decay_steps=54 * 29,  # then a cosine decay over 29 more epochs
)
steps_shown = (0, 27, 54, 54 * 15, 54 * 30)
print("step -> learning rate:", {step: round(float(warm_up(step)), 4) for step in steps_shown})
optimizer_with_warm_up = keras.optimizers.SGD(learning_rate=warm_up)

# %% [markdown]
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
