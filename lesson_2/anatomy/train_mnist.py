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
# # Lesson 2, Activity 3: the anatomy of a Keras model
#
# Four pieces make up every Keras training setup:
#
# - **Layers** turn input tensors into output tensors, and most hold weights. A stack only works
#   if each layer accepts the shape the layer before it returns.
# - A **model** connects layers. The Sequential API stacks them in a line; the Functional API
#   wires them as a graph of calls.
# - The **loss** is the number training pushes down. It has to fit the task and the way the labels
#   are written.
# - The **optimizer** decides how the gradient turns into a weight update.
#
# Every Keras program puts them to work in the same four steps:
#
# 1. **Define the training data**: the input tensors and the target tensors.
# 2. **Define the network**: a model of layers that maps the inputs to the targets.
# 3. **Configure learning** with `compile`: the loss, the optimizer, and the metrics to watch.
# 4. **Fit**: `fit` iterates over the training data and updates the weights.
#
# We take the pieces in order, and end with one model trained three times, with SGD, RMSprop and
# Adam, each in its own run folder so that TensorBoard draws the three curves together. That last
# part goes through the four steps, and its code says which step is which.
#
# This file is both the script and the notebook (`train_mnist.ipynb` beside it holds the same
# cells, kept in step by jupytext):
#
# ```
# python lesson_2/anatomy/train_mnist.py            # sgd, rmsprop, adam: 10 epochs each
# python lesson_2/anatomy/train_mnist.py --quick    # the same cells on a small slice, seconds
# python lesson_2/anatomy/train_mnist.py --learning-rate 0.1 --optimizers sgd,adam
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
# Batches of 128, 10 epochs per optimizer, and one learning rate, 0.01, shared by all three so that
# only the update rule changes between the runs. `--optimizers` picks which to compare. A script
# reads its flags here (`--help` lists them); a notebook takes these defaults.

# %%
import argparse

from labkit import cli

OPTIMIZERS = ("sgd", "rmsprop", "adam")


def optimizer_list(text):
    """'Adam, sgd' -> ("adam", "sgd"): names from OPTIMIZERS, each once, in the order given."""
    names = tuple(part.strip().lower() for part in text.split(",") if part.strip())
    if not names or set(names) - set(OPTIMIZERS):
        raise argparse.ArgumentTypeError(f"expected a comma-separated list from {', '.join(OPTIMIZERS)}, got '{text}'")
    if len(set(names)) != len(names):
        raise argparse.ArgumentTypeError(f"each optimizer once, got '{text}'")
    return names


parser = cli.build_parser(
    "Lesson 2, anatomy of a Keras model: layers, models, losses and optimizers.",
    epochs=10,
    learning_rate=0.01,
    batch_size=128,
    several_runs="one run per optimizer",
)
parser.add_argument(
    "--optimizers",
    type=optimizer_list,
    default=OPTIMIZERS,
    help=f"which to compare, comma-separated (default {','.join(OPTIMIZERS)})",
)
config = cli.parse(parser)
print(config.plan, "optimizers:", ", ".join(config.optimizers))

# %%
import itertools
import re
import warnings

import keras
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from labkit.training import load_data, start_run

# %% [markdown]
# ## The data
#
# Handwritten digits, each 28x28 image flattened into a row of 784 pixel values in [0, 1]: the
# Dense layers below read flat rows. The labels are the integers 0-9.

# %%
# Step 1, the training data: input tensors (flat images) and target tensors (their labels).
data = load_data(config)  # extra code: MNIST from the Keras cache or a mirror, else a labelled real substitute
x_train, y_train = data.x_train.reshape(len(data.x_train), -1), data.y_train
x_valid, y_valid = data.x_val.reshape(len(data.x_val), -1), data.y_val
x_test, y_test = data.x_test.reshape(len(data.x_test), -1), data.y_test

print("train:", x_train.shape, y_train.shape, "| valid:", x_valid.shape, "| test:", x_test.shape)

# %% [markdown]
# ## Models: Sequential and Functional
#
# The lesson's model: 784 inputs, Dense(32, ReLU), Dense(10, softmax). The Sequential API takes a
# list of layers. The Functional API calls each layer on the tensor the previous one returned, then
# names the inputs and outputs. The size and activation of the last layer are arguments, because
# the losses below need other last layers.


# %%
def build_sequential(output_units=10, output_activation="softmax"):
    return keras.Sequential(
        [
            keras.Input(shape=(784,)),
            keras.layers.Dense(32, activation="relu"),
            keras.layers.Dense(output_units, activation=output_activation),
        ],
        name="sequential_api",
    )


def build_functional(output_units=10, output_activation="softmax"):
    inputs = keras.Input(shape=(784,))
    hidden = keras.layers.Dense(32, activation="relu")(inputs)
    outputs = keras.layers.Dense(output_units, activation=output_activation)(hidden)
    return keras.Model(inputs=inputs, outputs=outputs, name="functional_api")


# %%
sequential, functional = build_sequential(), build_functional()
sequential.summary()
functional.summary()

# %% [markdown]
# For a plain stack the two give the same network: give the Functional model the Sequential
# model's weights, and on the same images the two agree to the last digit.

# %%
functional.set_weights(sequential.get_weights())
difference = np.abs(sequential.predict(x_valid[:64], verbose=0) - functional.predict(x_valid[:64], verbose=0)).max()
print(
    f"Sequential and Functional: {sequential.count_params():,} and {functional.count_params():,} parameters, "
    f"largest output difference {difference:g} with the same weights"
)
assert sequential.count_params() == functional.count_params() and difference == 0
print("Same parameter count, and identical outputs once they share weights.")

# %% [markdown]
# ## The hypothesis space: what a topology allows
#
# Training never invents a new kind of function. The layers we choose fix a family of functions,
# one for each possible setting of the weights, and training only searches inside that family for
# the weights that fit the data best. Chollet calls the family the hypothesis space, or the space
# of possibilities. Choosing a topology is choosing it, before any data is seen.
#
# A small illustration: drop the ReLU from the model above. A Dense layer without an activation
# computes x W + b, and two in a row compute (x W1 + b1) W2 + b2 = x (W1 W2) + (b1 W2 + b2): one
# Dense layer again. The stack has 25,450 weights, but every function it can reach is a linear
# function of the pixels, which one Dense(10) layer with 7,850 weights already covers. With the
# ReLU in between, the same sum no longer holds, and the space is larger.


# %%
def dense_stack(hidden_activation=None):
    """The lesson's two Dense layers, left without the softmax, with or without an activation between them."""
    return keras.Sequential(
        [
            keras.Input(shape=(784,)),
            keras.layers.Dense(32, activation=hidden_activation),
            keras.layers.Dense(10),
        ],
        name=f"dense_stack_{hidden_activation or 'linear'}",
    )


def one_layer_gap(model, x):
    """Largest difference between the stack's output and the one layer x (W1 W2) + (b1 W2 + b2)."""
    (w1, b1), (w2, b2) = (layer.get_weights() for layer in model.layers)
    one_layer = x @ (w1 @ w2) + (b1 @ w2 + b2)
    return float(np.abs(model.predict(x, verbose=0) - one_layer).max())


# %%
for activation in (None, "relu"):
    stack = dense_stack(activation)
    print(
        f"Dense(32, {activation or 'no activation'}) then Dense(10): {stack.count_params():,} weights; largest "
        f"difference from one Dense(10) layer ({784 * 10 + 10:,} weights) {one_layer_gap(stack, x_valid[:64]):.2g}"
    )

# %% [markdown]
# Without an activation, the two layers and the one layer agree to float32 rounding: more weights,
# the same space. With the ReLU they disagree. The ReLU is what lets depth add anything, which is
# why the hidden layers of every model in this course have an activation.

# %% [markdown]
# ## Losses: one per kind of task
#
# The same images, labelled four ways: a yes/no question ("is it a 5 or more?"), the digit as an
# integer, the digit as a one-hot row (`to_categorical` turns 3 into
# `[0, 0, 0, 1, 0, 0, 0, 0, 0, 0]`), and a real number (how much of the canvas the stroke covers,
# in percent). Each task needs its own last layer and loss.


# %%
def task_targets(labels, images, num_classes=10):
    return {
        "binary": (labels >= num_classes // 2).astype("float32"),
        "integer": labels.astype("int64"),
        "one_hot": keras.utils.to_categorical(labels, num_classes),
        "ink": (100 * images.reshape(len(images), -1).mean(axis=1)).astype("float32"),
    }


# task, targets, last layer (units, activation), loss, metric
LOSS_PAIRINGS = [
    ("yes/no: is the label 5 or more?", "binary", (1, "sigmoid"), "binary_crossentropy", "accuracy"),
    ("10 classes, integer labels", "integer", (10, "softmax"), "sparse_categorical_crossentropy", "accuracy"),
    ("10 classes, one-hot labels (to_categorical)", "one_hot", (10, "softmax"), "categorical_crossentropy", "accuracy"),
    ("regression: ink on the canvas, %", "ink", (1, None), "mse", "mae"),
]


# %% [markdown]
# Each pairing trains the same small body (Dense 32, ReLU) with its own last layer and loss for 5
# epochs, and is scored on the validation images. The last column is what a model that ignores
# the image would score: the majority class, or the mean for the regression. Every row should
# beat it clearly.


# %%
def do_nothing_score(target_kind, train_targets, valid_targets):
    """The majority class's accuracy, or for the regression the error of always guessing the mean."""
    if target_kind == "ink":
        return float(np.mean(np.abs(valid_targets - train_targets.mean())))
    if target_kind == "one_hot":
        train_targets, valid_targets = train_targets.argmax(axis=1), valid_targets.argmax(axis=1)
    majority = np.bincount(train_targets.astype(int)).argmax()
    return float(np.mean(valid_targets == majority))


def loss_table(data, epochs=5):
    x_train, x_valid = data.x_train.reshape(len(data.x_train), -1), data.x_val.reshape(len(data.x_val), -1)
    train_targets = task_targets(data.y_train, data.x_train, data.num_classes)
    valid_targets = task_targets(data.y_val, data.x_val, data.num_classes)
    rows = []
    for task, kind, (units, activation), loss, metric in LOSS_PAIRINGS:
        keras.utils.set_random_seed(0)
        model = build_sequential(output_units=units, output_activation=activation)
        model.compile(optimizer="rmsprop", loss=loss, metrics=[metric])
        model.fit(x_train, train_targets[kind], epochs=epochs, batch_size=128, verbose=0)
        score = model.evaluate(x_valid, valid_targets[kind], verbose=0, return_dict=True)[metric]
        rows.append(
            {
                "task": task,
                "last layer": f"Dense({units}, {activation or 'linear'})",
                "loss": loss,
                "metric": metric,
                "validation": round(score, 4),
                "ignoring the image": round(do_nothing_score(kind, train_targets[kind], valid_targets[kind]), 4),
            }
        )
    return pd.DataFrame(rows)


# %%
pd.set_option("display.max_colwidth", None)
table = loss_table(data)
print(table.to_string())

# %% [markdown]
# Sparse and non-sparse categorical cross-entropy are the same loss; only the labels are written
# differently.
#
# ### A fifth kind of task: sequences, and the CTC loss
#
# Chollet's list of losses ends with one for sequence problems: connectionist temporal
# classification (CTC). It is used where the input is a long sequence, the label a shorter one,
# and nobody marks which part of the input goes with which symbol of the label. Speech
# recognition is the classic case (audio frames in, letters out), and handwriting recognition
# another (a written line read column by column, its characters out).
#
# The model gives a probability distribution over the symbols at every time step, plus one extra
# symbol, the *blank*. A path is one symbol per step; it reads as a label once repeated symbols are
# merged and blanks dropped (blank a a blank b reads "ab"). The CTC loss is minus the log of the
# total probability of all the paths that read as the label. Keras 3 has it as `keras.losses.CTC`:
# the labels are integers with 0 kept for the blank (and for padding), and the predictions are the
# model's raw scores, before any softmax.
#
# On a tiny example we can list every path. Four time steps, three symbols (the blank, "a" = 1,
# "b" = 2): 3^4 = 81 paths, and we add up the probability of those that read "ab".


# %%
def ctc_by_counting(scores, label, blank=0):
    """The CTC loss by brute force: minus the log of the summed probability of every path that
    reads as `label`. `scores`: (time steps, symbols), raw. Returns the loss and the number of paths."""
    probabilities = np.exp(scores) / np.exp(scores).sum(axis=-1, keepdims=True)
    steps, symbols = probabilities.shape
    total, paths = 0.0, 0
    for path in itertools.product(range(symbols), repeat=steps):
        merged = [symbol for i, symbol in enumerate(path) if i == 0 or symbol != path[i - 1]]
        if [symbol for symbol in merged if symbol != blank] == list(label):
            total += float(np.prod(probabilities[np.arange(steps), path]))
            paths += 1
    return -np.log(total), paths


# %%
scores = np.random.default_rng(0).normal(size=(4, 3)).astype("float32")  # 4 steps, 3 symbols
label = [1, 2]  # "ab"
by_counting, paths = ctc_by_counting(scores, label)
by_keras = float(keras.losses.CTC()(np.array([label]), scores[np.newaxis]))  # a batch of one
print(f"{paths} of the {3**4} paths read 'ab'")
print(f"CTC loss by counting them: {by_counting:.5f}; keras.losses.CTC: {by_keras:.5f}")

# %% [markdown]
# Listing paths grows as (symbols)^(steps): a real model has dozens of symbols and hundreds of
# steps, and Keras sums the same quantity with dynamic programming instead.
#
# ### Wrong pairings, and what you see when you make one
#
# Four mistakes students make. Each trains for 3 epochs, or stops at once with an error.


# %%
def first_line(message):
    """The line of a Keras message that says what is wrong, without its terminal colour codes."""
    lines = [re.sub(r"\x1b\[[0-9;]*m", "", line).strip() for line in str(message).splitlines()]
    lines = [line for line in lines if line and not line.startswith("Exception encountered")]
    return lines[0] if lines else ""


def wrong_pairings(data, epochs=3):
    x_train = data.x_train.reshape(len(data.x_train), -1)
    targets = task_targets(data.y_train, data.x_train, data.num_classes)
    attempts = [  # what goes wrong, last layer (units, activation), loss, metric, targets
        (
            "integer labels + categorical_crossentropy",
            (10, "softmax"),
            "categorical_crossentropy",
            "accuracy",
            "integer",
        ),
        (
            "one-hot labels + sparse_categorical_crossentropy",
            (10, "softmax"),
            "sparse_categorical_crossentropy",
            "accuracy",
            "one_hot",
        ),
        (
            "yes/no task, Dense(1, softmax) + binary_crossentropy",
            (1, "softmax"),
            "binary_crossentropy",
            "accuracy",
            "binary",
        ),
        ("regression target + categorical_crossentropy", (1, None), "categorical_crossentropy", "mae", "ink"),
    ]
    rows = []
    for pairing, (units, activation), loss, metric, kind in attempts:
        keras.utils.set_random_seed(0)
        model = build_sequential(output_units=units, output_activation=activation)
        model.compile(optimizer="rmsprop", loss=loss, metrics=[metric])
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            try:
                history = model.fit(x_train, targets[kind], epochs=epochs, batch_size=128, verbose=0).history
            except ValueError as error:
                rows.append({"pairing": pairing, "fails": True, "symptom": f"ValueError: {first_line(error)}"})
                continue
            predictions = model.predict(x_train[:200], verbose=0)
        seen = [
            f"loss by epoch {', '.join(f'{v:.3f}' for v in history['loss'])}",
            f"{metric} {', '.join(f'{v:.3f}' for v in history[metric])}",
            f"predictions from {predictions.min():.3f} to {predictions.max():.3f}",
        ]
        if caught:
            seen.append(f"only a warning: {first_line(caught[0].message)}")
        rows.append({"pairing": pairing, "fails": False, "symptom": "; ".join(seen)})
    return pd.DataFrame(rows)


# %%
for row in wrong_pairings(data).itertuples():
    print(f"{row.pairing}\n    {row.symptom}\n")

# %% [markdown]
# The first two stop at once with a shape or rank error. The message names the target and output
# shapes, and the fix is to match the labels to the loss (`to_categorical`, or the sparse loss).
#
# The last two are worse, because they run. A softmax over a single unit always outputs 1.0, so
# the "yes/no" model says yes to every image, and its accuracy stays at the share of yes labels.
# The loss still falls, because Keras computes binary cross-entropy from the layer's
# pre-activation value, so the loss curve looks healthy. Categorical cross-entropy on one unit
# divides the output by itself: the loss is exactly 0 from the first step and nothing is learned.
# Keras only warns, and a warning is easy to miss in a notebook. A loss of exactly 0, or an
# accuracy that never moves, is the sign.
#
# ## Shapes: layers must fit together
#
# A Dense layer returns (batch, units). When you stack Dense layers, Keras works out each layer's
# input size for you. A Conv2D layer, though, needs (batch, height, width, channels), and a model
# built for flat rows of 784 pixels cannot take 28x28 images.


# %%
def shape_errors(images):
    """Two ways to get the shapes wrong, each caught so that its message can be read."""
    cases = []
    try:
        keras.Sequential([keras.Input(shape=(784,)), keras.layers.Dense(32), keras.layers.Conv2D(8, 3)])
    except ValueError as error:
        cases.append({"mistake": "Conv2D stacked on a Dense layer", "error": first_line(error)})
    try:
        build_sequential().predict(images[:4], verbose=0)  # (4, 28, 28, 1): not flattened
    except ValueError as error:
        cases.append({"mistake": "unflattened images into a (784,) model", "error": first_line(error)})
    return cases


# %%
for case in shape_errors(data.x_val):
    print(f"{case['mistake']}:\n    ValueError: {case['error']}\n")

# %% [markdown]
# Both messages say what Keras expected and what it got. "expected min_ndim=4, found ndim=2" means
# the Conv2D layer wanted a 4-D tensor and received the Dense layer's 2-D output. A `Reshape` layer
# could fold the 32 values into a tiny image, but the usual fix is to put the convolution first, on
# the (28, 28, 1) images, and the Dense layers after it. The second message compares the shape the
# model was built for, (None, 784), with the images, (4, 28, 28, 1): flatten first.
#
# ## Optimizers: SGD vs RMSprop vs Adam
#
# The same model trains once per optimizer, at the same learning rate, from the same starting
# weights (each `start_run` seeds the random generators again). Each run gets its own folder next
# to the others, so TensorBoard draws all three.
#
# In the notebook, open TensorBoard before they train, and watch the three race (reload with the
# button at its top right). From a terminal: `tensorboard --logdir runs/lesson_2/anatomy`.

# %%
# %load_ext tensorboard

# %%
runs_folder = config.runs_root / config.lesson / config.activity
# %tensorboard --logdir "$runs_folder"

# %%
optimizers = {"sgd": keras.optimizers.SGD, "rmsprop": keras.optimizers.RMSprop, "adam": keras.optimizers.Adam}
histories, results = {}, {}
for name in config.optimizers:
    run = start_run(config, data, tag=name, hparams={"optimizer": name})  # extra code: one run folder per optimizer
    model = build_sequential(output_units=data.num_classes)  # step 2: the network
    model.compile(  # step 3: configure learning
        optimizer=optimizers[name](learning_rate=config.learning_rate),
        loss="sparse_categorical_crossentropy",
        metrics=["accuracy"],
    )
    tensorboard = keras.callbacks.TensorBoard(log_dir=run.dir)
    histories[name] = model.fit(  # step 4: fit, on step 1's data
        run.batches(x_train, y_train),  # extra code: shuffled batches of 128
        epochs=run.epochs,
        steps_per_epoch=run.steps_per_epoch,
        validation_data=(x_valid, y_valid),
        callbacks=[tensorboard, *run.callbacks(tensorboard)],
    )
    test_metrics = model.evaluate(x_test, y_test, return_dict=True, verbose=0)
    run.record_test(test_metrics)  # extra code: into run.json and TensorBoard's `test` run
    results[name] = {"validation accuracy": histories[name].history["val_accuracy"][-1]}
    results[name].update({f"test {metric}": value for metric, value in test_metrics.items()})
    run.finish(model)  # extra code: saves model.keras in the run folder; run.json says "finished"

# %%
comparison = pd.DataFrame(results).T
print(
    f"Same model, same start, learning rate {config.learning_rate:g}:\n"
    + comparison.to_string(float_format=lambda v: f"{v:.4f}")
)
print(f'All three in TensorBoard: tensorboard --logdir "{run.dir.parent}"')

fig, axes = plt.subplots(1, 2, figsize=(11, 4))
for name, history in histories.items():
    axes[0].plot(history.history["val_accuracy"], marker="o", label=name)
    axes[1].plot(history.history["loss"], marker="o", label=name)
for ax, title in zip(axes, ("validation accuracy", "training loss"), strict=True):
    ax.set(xlabel="epoch", title=title)
    ax.legend()
plt.show()

# %% [markdown]
# At one shared learning rate, plain SGD lags. It moves every weight by the learning rate times
# its gradient, and here the gradients are small. RMSprop divides each weight's step by the size of
# its recent gradients, and Adam also adds momentum, so their steps stay useful. This is a
# comparison at one step size, not a verdict on the optimizers.
#
# ## Questions to explore
#
# 1. Run `python lesson_2/anatomy/train_mnist.py --learning-rate 0.1`. Does SGD catch up? What
#    happens to RMSprop and Adam?
# 2. Run it again with `--learning-rate 0.001`, RMSprop's usual setting. Which optimizer suffers
#    most, and why do the other two barely notice?
# 3. Write the yes/no model as Dense(2, softmax) with `sparse_categorical_crossentropy`. Is that
#    also right? How does it differ from Dense(1, sigmoid)?
# 4. Fix the mismatched stack in `shape_errors` with a `Reshape` layer. What target shape works,
#    and what does the Conv2D then output?
