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
# # Lesson 1, Activity 2: explore a trained network, then change how it learns
#
# Part 1 needs no training at all: the course ships a few runs of Exercise A's network, recorded
# with this very file. Part 2 trains the same network again with other learning rates and
# training lengths, each variant in a run folder of its own, and lays their curves side by side.
#
# This file is both the script and the notebook (`train_mnist.ipynb` beside it holds the same
# cells, kept in step by jupytext):
#
# ```
# python lesson_1/activity_2/train_mnist.py --learning-rate 0.1 --steps 100       # one variant
# python lesson_1/activity_2/train_mnist.py --sweep 1e-4@2000,1e-3@2000,1e-1@100  # several
# python lesson_1/activity_2/train_mnist.py --quick --sweep                       # the same cells, seconds
# python scripts/lab.py tensorboard demo_runs/lesson_1                            # the recorded runs
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
# A variant is a pair `LEARNING_RATE@STEPS`: `1e-3@2000` is Adam at 0.001 for 2,000 steps. Its
# steps are cut into 10 equal epochs, so that every run, long or short, gets 10 validation points;
# the `accuracy_by_step` curve then puts all runs on one step axis. A script reads `--sweep`
# (`--sweep` alone trains the recorded runs' three variants) or one variant from
# `--learning-rate` and `--steps`. A notebook has no command line: it trains `NOTEBOOK_SWEEP`,
# which you may edit. In quick mode every variant is cut to two epochs of at most 25 steps.

# %%
import argparse
import math

from labkit import cli

EVALUATIONS = 10  # validation points per run, whatever its length
DEFAULT_SWEEP = "1e-4@2000,1e-3@2000,1e-1@100"  # the recorded runs
NOTEBOOK_SWEEP = "1e-4@2000,1e-2@2000,1e-1@100"


def parse_variant(text):  # extra code: '1e-3@2000' -> (0.001, 2000), or one line that says what is wrong
    rate_text, _, steps_text = text.partition("@")
    try:
        rate, steps = float(rate_text), int(steps_text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected LEARNING_RATE@STEPS such as 1e-3@2000, got '{text}'") from None
    if not (math.isfinite(rate) and rate > 0) or steps < EVALUATIONS:
        raise argparse.ArgumentTypeError(
            f"'{text}': the learning rate must be above 0 and steps at least {EVALUATIONS}"
        )
    return rate, steps


def parse_sweep(text):
    variants = [parse_variant(item.strip()) for item in text.split(",") if item.strip()]
    if not variants:
        raise argparse.ArgumentTypeError("the sweep is empty")
    return variants


parser = cli.build_parser(
    "Lesson 1, Activity 2: explore a trained network, then change how it learns.",
    epochs=EVALUATIONS,
    learning_rate=1e-4,
    batch_size=100,
)
parser.add_argument(
    "--steps",
    type=cli.positive_int,
    default=None,
    help=f"total training steps, split into {EVALUATIONS} evaluations "
    "(overrides --epochs/--steps-per-epoch; the lesson used 2000)",
)
parser.add_argument(
    "--sweep",
    nargs="?",
    const=DEFAULT_SWEEP,
    type=parse_sweep,
    default=None,
    metavar="LR@STEPS,...",
    help=f"train several variants as sibling runs (default set: {DEFAULT_SWEEP})",
)
config = cli.parse(parser, ["--sweep", NOTEBOOK_SWEEP] if cli.in_notebook() else None)

if config.sweep:
    variants = config.sweep
elif config.steps:
    variants = [(config.learning_rate, config.steps)]
else:
    variants = [(config.learning_rate, None)]  # a plain run: --epochs of --steps-per-epoch (one pass)
print("variants (learning rate, steps):", variants)

# %%
import dataclasses
from pathlib import Path

import keras
import matplotlib.pyplot as plt
import pandas as pd

from labkit import REPO_ROOT
from labkit.runs import find_runs, read_run
from labkit.tblogs import curve, read_scalars
from labkit.training import load_data, start_run
from lesson_1.models import lesson1_cnn

# %% [markdown]
# ## Part 1: the recorded runs
#
# `demo_runs/lesson_1/activity_2/` holds this file's default sweep, trained at full length
# (`python scripts/lab.py demo-runs --lesson 1` trains it again). Each run folder holds TensorBoard
# event files and a `run.json` with the run's settings and results.

# %%
RECORDED_RUNS = Path(REPO_ROOT) / "demo_runs" / "lesson_1" / "activity_2"


def runs_table(run_dirs):
    rows = []
    for run_dir in run_dirs:
        record = read_run(run_dir)
        hp, dataset = record["hparams"], record["dataset"]
        rows.append(
            {
                "run": run_dir.name,
                "learning_rate": hp["learning_rate"],
                "steps": hp["epochs"] * hp["steps_per_epoch"] if hp["steps_per_epoch"] else None,
                "data": dataset["name"] + (f" (for {dataset['substitute_for']})" if dataset["substitute_for"] else ""),
                "val_accuracy": record["metrics"]["validation"].get("accuracy"),
                "test_accuracy": record["metrics"]["test"].get("accuracy"),
            }
        )
    return pd.DataFrame(rows)


print(runs_table(find_runs(RECORDED_RUNS)).to_string(index=False))

# %% [markdown]
# `accuracy_by_step` is the validation accuracy every 10 training steps, read back from the event
# files.


# %%
def plot_accuracy_by_step(scalars, title):
    curves = curve(scalars, "validation", "accuracy_by_step")
    fig, ax = plt.subplots(figsize=(8, 4))
    for run in curves.columns:
        series = curves[run].dropna()
        ax.plot(series.index, series.values, marker=".", label=run.split("/")[-1])
    ax.axhline(0.9, color="grey", linestyle="--", linewidth=1)
    ax.set(xlabel="training step", ylabel="validation accuracy", ylim=(0, 1.02), title=title)
    ax.legend(fontsize="small")
    plt.show()
    return curves


recorded_curves = plot_accuracy_by_step(read_scalars(RECORDED_RUNS), "Recorded runs: one network, three learning rates")
print("runs read back from the event files:", len(recorded_curves.columns))

# %% [markdown]
# **What to look for.** With a learning rate of 1e-4 the network passes 90% within the first few
# hundred steps and then creeps upward. At 0.1 Adam's steps are far too large: the loss explodes
# in the first steps and accuracy stays at chance (about 10%) however long it trains.
#
# ## Part 2: your own variants
#
# The data: MNIST's 28x28 greyscale digits scaled to [0, 1] with one channel, 5,000 training
# images held out for validation. Every variant trains on the same arrays.

# %%
data = load_data(config)  # extra code: MNIST from the Keras cache or a mirror, else a labelled real substitute
x_train, y_train = data.x_train, data.y_train
x_valid, y_valid = data.x_val, data.y_val
x_test, y_test = data.x_test, data.y_test

print("train:", x_train.shape, y_train.shape, "| valid:", x_valid.shape, "| test:", x_test.shape)

# %% [markdown]
# The network is Exercise A's (`lesson_1/models.py` hands over the definition that Exercise A's page
# shows): one convolutional layer (32 filters of 5x5, ReLU) with 2x2 max-pooling, then 1,024 ReLU
# units and 10 softmax outputs. Each variant builds a fresh copy, so every run starts from the same
# seeded weights and only the learning rate and length differ.

# %% [markdown]
# One variant, start to finish: a run folder, a fresh network, Adam at the variant's learning
# rate, training with TensorBoard watching and a validation score every 10 steps, then the test
# set. `run.finish` saves the model and marks the run finished.


# %%
def train_variant(settings):
    run = start_run(settings, data)  # extra code: a new run folder; seeds every random generator
    model = lesson1_cnn(data.num_classes)
    model.compile(
        optimizer=keras.optimizers.Adam(learning_rate=settings.learning_rate),
        loss="sparse_categorical_crossentropy",
        metrics=["accuracy"],
    )
    tensorboard = keras.callbacks.TensorBoard(log_dir=run.dir)
    model.fit(
        run.batches(x_train, y_train),  # extra code: shuffled batches of 100, repeated for fixed-length epochs
        epochs=run.epochs,
        steps_per_epoch=run.steps_per_epoch,
        validation_data=(x_valid, y_valid),
        callbacks=[tensorboard, *run.callbacks(tensorboard, validate_every=10)],
    )
    test_metrics = model.evaluate(x_test, y_test, return_dict=True, verbose=0)
    run.record_test(test_metrics)  # extra code: into run.json and TensorBoard's `test` run
    run.finish(model)
    return run, model


def settings_for(learning_rate, steps):
    """The variant's settings: its `steps` as EVALUATIONS equal epochs (quick mode then caps them)."""
    if steps is None:
        return config
    return dataclasses.replace(
        config, learning_rate=learning_rate, epochs=EVALUATIONS, steps_per_epoch=max(steps // EVALUATIONS, 1)
    )


# %% [markdown]
# Open TensorBoard on this activity's runs folder (`runs/lesson_1/activity_2` unless you set
# `--logdir` or `LAB_RUNS_DIR`) before the sweep starts, and watch each variant's curves appear
# beside the others. The page refreshes itself every 30 seconds; the reload button at its top
# right refreshes it at once. From a terminal: `python scripts/lab.py tensorboard runs/lesson_1/activity_2`.

# %%
# %load_ext tensorboard

# %%
runs_folder = config.runs_root / config.lesson / config.activity
# %tensorboard --logdir "$runs_folder"

# %% [markdown]
# The sweep: one run per variant, one after the other. Ctrl-C (or the notebook's stop button)
# stops the whole sweep and marks the current run interrupted.

# %%
my_runs = []
for learning_rate, steps in variants:
    run, model = train_variant(settings_for(learning_rate, steps))
    my_runs.append(run.dir)

# %%
model.summary()  # the network every variant trained (here with the last variant's weights)

# %% [markdown]
# ## Your runs beside the recorded ones

# %%
print(runs_table(my_runs).to_string(index=False))
my_scalars = pd.concat([read_scalars(run_dir) for run_dir in my_runs], ignore_index=True)
my_curves = plot_accuracy_by_step(my_scalars, "Your runs")

# %% [markdown]
# ## Questions to explore
#
# 1. Multiply the learning rate by 10 a few times, starting from 1e-4. Where does training stop
#    improving, and where does it break down completely?
# 2. Can a larger learning rate with fewer steps match 1e-4 over 2,000 steps?
# 3. Between step 1,000 and step 2,000 accuracy still rises, but slowly. Would 20,000 steps reach
#    100%? What does the gap between training and validation accuracy tell you?
