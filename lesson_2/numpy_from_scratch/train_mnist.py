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
# # Lesson 2, Activity 1: a neural network from scratch, then the same network in Keras
#
# Keras hides three things: the forward pass, the gradient, and the update. Here we write each one
# in NumPy: a tiny 2-3-1 network by hand, a line fitted by nudging its weights, backpropagation
# checked against TensorFlow, and last a digit classifier trained with our own loop, beside its
# Keras twin.
#
# This file is both the script and the notebook (`train_mnist.ipynb` beside it holds the same
# cells, kept in step by jupytext):
#
# ```
# python lesson_2/numpy_from_scratch/train_mnist.py            # full run: 10 epochs
# python lesson_2/numpy_from_scratch/train_mnist.py --quick    # the same cells on a small slice, seconds
# python lesson_2/numpy_from_scratch/train_mnist.py --activation sigmoid --hidden-units 32
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
# Plain SGD on a small network needs a far bigger step than RMSprop's 1e-3: a learning rate of 0.1,
# batches of 32, 10 epochs, 64 hidden ReLU units. A script reads its flags here (`--help` lists
# them); a notebook takes these defaults.

# %%
from labkit import LabError, cli
from labkit.distribute import not_offered

parser = cli.build_parser(
    "Lesson 2, a neural network from scratch: NumPy first, then the same network in Keras.",
    epochs=10,
    learning_rate=0.1,
    batch_size=32,
    several_runs="a NumPy run and its Keras twin",
    not_here=not_offered("the NumPy network trains outside TensorFlow, beside a one-device twin"),
)
parser.add_argument("--hidden-units", type=cli.positive_int, default=64, help="size of the hidden layer (default 64)")
parser.add_argument("--activation", default="relu", help="hidden activation: sigmoid or relu (default relu)")
config = cli.parse(parser)
if config.activation not in ("sigmoid", "relu"):
    raise LabError(f"argument --activation: choose one of sigmoid, relu, got '{config.activation}'")
print(config.plan, f"hidden units {config.hidden_units}, {config.activation}")

# %%
import statistics
import time

import keras
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import tensorflow as tf

from labkit.training import load_data, start_run

# %% [markdown]
# ## Networks by what goes in and what comes out
#
# Before we build one, a map. The from-scratch tutorial this page follows sorts networks by the
# shape of their input and output, counting a sequence as "many":
#
# | kind | in -> out | example tasks |
# |---|---|---|
# | one-to-one | one input -> one output | a digit image -> its class (this lesson); a house -> its price |
# | one-to-many | one input -> a sequence | an image -> a caption, word by word; a first note -> a melody |
# | many-to-one | a sequence -> one output | a film review -> good or bad; a month of prices -> the next one |
# | many-to-many | a sequence -> a sequence | a sentence -> its translation; speech -> text; a label per video frame |
#
# Everything on this page is one-to-one: a vector goes in, one prediction comes out. The other
# three need layers that read or write sequences, such as an LSTM. Many-to-many comes in two
# forms: in a translation, or in speech to text, the output sequence has a length of its own;
# labelling video frames gives one output per input step. The cell below builds a tiny Keras
# model of each kind, the aligned many-to-many among them, only to show the shapes: inputs of 3
# features, sequences of 5 steps, 4 units.


# %%
def architecture_shapes(steps=5, features=3, units=4):
    """Input and output shape of a tiny Keras model of each kind (None: any batch size)."""
    one, sequence = keras.Input(shape=(features,)), keras.Input(shape=(steps, features))
    outputs = {
        "one-to-one": (one, keras.layers.Dense(units)(one)),
        "one-to-many": (one, keras.layers.LSTM(units, return_sequences=True)(keras.layers.RepeatVector(steps)(one))),
        "many-to-one": (sequence, keras.layers.LSTM(units)(sequence)),
        "many-to-many": (sequence, keras.layers.LSTM(units, return_sequences=True)(sequence)),
    }
    return {kind: (tuple(x.shape), tuple(y.shape)) for kind, (x, y) in outputs.items()}


for kind, (input_shape, output_shape) in architecture_shapes().items():
    print(f"{kind:>12}: {input_shape} -> {output_shape}")

# %% [markdown]
# `RepeatVector` hands the one input to every step of the LSTM, the simplest way to turn one
# input into a sequence. `return_sequences=True` makes an LSTM give an output at every step
# instead of only its last. A translation model, whose output has a length of its own, needs an
# encoder and a decoder; that is beyond this lesson.
#
# ## 1. The forward pass of a 2-3-1 network
#
# The input is (1, 1) and the target is 0. Each hidden unit adds up the inputs times its weights
# (there are no biases). A sigmoid then squashes each sum into (0, 1); without it, two layers would
# collapse into one linear map. The output unit adds up the three squashed values times its own
# weights, with no activation, since the target is a real number. The squared difference from the
# target is the error that training has to shrink.


# %%
def sigmoid(z):
    return 1.0 / (1.0 + np.exp(-z))


inputs = np.array([1.0, 1.0])
input_to_hidden = np.array([[0.8, 0.4, 0.3], [0.2, 0.9, 0.5]])  # row i: the weights leaving input i
hidden_to_output = np.array([0.3, 0.5, 0.9])
target = 0.0

hidden_pre_activation = inputs @ input_to_hidden
hidden = sigmoid(hidden_pre_activation)
output = hidden @ hidden_to_output
squared_error = (output - target) ** 2

print(pd.DataFrame({"pre-activation": hidden_pre_activation, "sigmoid": hidden}, index=["h1", "h2", "h3"]).round(4))
print(f"output {output:.4f}, squared error {squared_error:.4f}")
print(
    f"with the hidden values rounded to 2 decimals first, as the lesson does: {hidden.round(2) @ hidden_to_output:.4f}"
)

# %% [markdown]
# The lesson reports 1.0 / 1.3 / 0.8, then 0.73 / 0.79 / 0.69, an output of 1.235 and an error of
# 1.52. All of these agree with the printout to two decimals, with two catches. First, the lesson
# prints sigmoid(1.3) as 0.78 in its list of activations, but it is 0.7858, and the lesson's own
# output sum uses 0.79. Second, its 1.235 comes from adding up hidden values that were already
# rounded. At full precision the output is 1.2332. The squared error rounds to 1.52 either way.
#
# ## 2. Learning by nudging: fitting y = 3x with finite differences
#
# Five points on the line y = 3x, and a model y = w x + b that starts at w = 2.269, b = 1.01. In
# every epoch we move each weight by 1e-4 on its own, measure how much the mean squared error
# changes, and divide by 1e-4. That gives the slope of the loss along that weight. Then both
# weights step against their slopes, times a learning rate of 0.01. (The lesson says the answer is
# "2 and 0". It means 3 and 0.)
#
# `finite_difference_gradient` works for any loss and any weights; we use it again in parts 3 and 4.


# %%
def finite_difference_gradient(loss_of, params, nudge=1e-4, central=False):
    """d(loss)/d(weight) for every weight of `params` (a dict of arrays), each found by moving
    that weight alone and running the forward pass again: one extra pass per weight (two if
    `central`). Every weight is put back, so `params` is unchanged on return."""
    base_loss = None if central else loss_of(params)
    gradients = {}
    for name, values in params.items():
        gradient = np.zeros(values.shape)
        for i in range(values.size):
            original = values.flat[i]
            values.flat[i] = original + nudge
            loss_up = loss_of(params)
            if central:
                values.flat[i] = original - nudge
                gradient.flat[i] = (loss_up - loss_of(params)) / (2 * nudge)
            else:
                gradient.flat[i] = (loss_up - base_loss) / nudge
            values.flat[i] = original
        gradients[name] = gradient
    return gradients


# %%
line_x = np.array([1.0, 3.0, 4.0, 8.0, 10.0])
line_y = 3 * line_x


def line_loss(params):
    return float(np.mean((params["w"] * line_x + params["b"] - line_y) ** 2))


params = {"w": np.array([2.269]), "b": np.array([1.01])}
line_losses = []
for _ in range(1000):  # epochs
    line_losses.append(line_loss(params))
    slopes = finite_difference_gradient(line_loss, params, nudge=1e-4)  # both slopes at the same point
    params = {name: value - 0.01 * slopes[name] for name, value in params.items()}  # then both weights move
w, b = float(params["w"][0]), float(params["b"][0])
print(f"after 1000 epochs: w = {w:.5f}, b = {b:.5f}  (the lesson reports w = 2.99929, b = 0.00479)")

plt.figure(figsize=(6, 3))
plt.semilogy(line_losses)
plt.xlabel("epoch")
plt.ylabel("mean squared error")
plt.title("y = 3x, learned by nudging each weight")
plt.show()

# %% [markdown]
# The lesson's printed figures are where this same procedure is after about 985 epochs. Its 1,000
# epochs end a hair closer to (3, 0). The gap is well under 0.001 for w and 0.0004 for b.
#
# ## The digits
#
# From here on the network reads handwritten digits: 28x28 greyscale images scaled to [0, 1]. A
# dense layer reads one flat vector per image, so each image becomes a row of 784 pixels.

# %%
data = load_data(config)  # extra code: MNIST from the Keras cache or a mirror, else a labelled real substitute
x_train, y_train = data.x_train.reshape(len(data.x_train), -1), data.y_train.astype(np.int64)
x_valid, y_valid = data.x_val.reshape(len(data.x_val), -1), data.y_val.astype(np.int64)
x_test, y_test = data.x_test.reshape(len(data.x_test), -1), data.y_test.astype(np.int64)

print("train:", x_train.shape, y_train.shape, "| valid:", x_valid.shape, "| test:", x_test.shape)

# %% [markdown]
# The NumPy network gets a run folder of its own, like a Keras run: TensorBoard's logs and a
# `run.json` with the settings and the results, here also the numbers of parts 1 and 2.

# %%
activity_settings = {"hidden_units": config.hidden_units, "activation": config.activation}
numpy_run = start_run(config, data, tag="numpy", hparams=activity_settings)

# extra code: parts 1 and 2 into run.json
numpy_run.record.add_extra(
    "seed_2_3_1",
    {
        "hidden_pre_activation": hidden_pre_activation.round(4).tolist(),
        "hidden": hidden.round(4).tolist(),
        "output": round(float(output), 4),
        "squared_error": round(float(squared_error), 4),
    },
)
numpy_run.record.add_extra(
    "line_fit", {"w": w, "b": b, "epochs": len(line_losses), "first_loss": line_losses[0], "last_loss": line_losses[-1]}
)

# %% [markdown]
# ## 3. Backpropagation, checked two ways
#
# The classifier: inputs x, a hidden layer h = f(x W1 + b1) with f a ReLU or a sigmoid, then
# softmax over h W2 + b2, and the cross-entropy loss averaged over the n images of a batch. It
# starts as a Keras Dense layer does: Glorot-uniform weights and zero biases.

# %%
ACTIVATIONS = {
    # name: (the function, its derivative written from the input z and the output a)
    "sigmoid": (sigmoid, lambda z, a: a * (1 - a)),
    "relu": (lambda z: np.maximum(z, 0), lambda z, a: (z > 0).astype(z.dtype)),
}


def init_mlp(n_inputs, n_hidden, n_classes, rng, dtype=np.float32):
    def glorot(fan_in, fan_out):
        limit = np.sqrt(6.0 / (fan_in + fan_out))
        return rng.uniform(-limit, limit, size=(fan_in, fan_out)).astype(dtype)

    return {
        "W1": glorot(n_inputs, n_hidden),
        "b1": np.zeros(n_hidden, dtype),
        "W2": glorot(n_hidden, n_classes),
        "b2": np.zeros(n_classes, dtype),
    }


def mlp_forward(params, x, activation="relu"):
    """Log-probabilities of the classes, and what the backward pass needs."""
    activate, _ = ACTIVATIONS[activation]
    hidden_pre_activation = x @ params["W1"] + params["b1"]
    hidden = activate(hidden_pre_activation)
    logits = hidden @ params["W2"] + params["b2"]
    # Subtracting the row maximum changes nothing mathematically and keeps exp() from overflowing.
    shifted = logits - logits.max(axis=1, keepdims=True)
    log_probabilities = shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))
    return log_probabilities, (hidden_pre_activation, hidden)


def mlp_loss(params, x, labels, activation="relu"):
    log_probabilities, _ = mlp_forward(params, x, activation)
    return float(-log_probabilities[np.arange(len(labels)), labels].mean())


# %% [markdown]
# Nudging needs one forward pass per weight. Backpropagation gets every gradient from one forward
# pass and one backward pass, by applying the chain rule layer by layer from the loss back to the
# input. For this network it comes down to four lines:
#
# * d loss / d logits = (softmax probabilities - one-hot labels) / n. This is why softmax and
#   cross-entropy always come as a pair.
# * dW2 = hᵀ · d logits, db2 = the sum of d logits over the batch
# * d hidden = d logits · W2ᵀ, then times f'(pre-activation): h (1 - h) for a sigmoid, 1 or 0 for a ReLU
# * dW1 = xᵀ · d hidden, db1 = the sum of d hidden over the batch


# %%
def mlp_gradients(params, x, labels, activation="relu"):
    """The loss, the gradient of every weight, and the probabilities: one forward, one backward pass."""
    _, derivative = ACTIVATIONS[activation]
    log_probabilities, (hidden_pre_activation, hidden) = mlp_forward(params, x, activation)
    rows = np.arange(len(labels))
    loss = float(-log_probabilities[rows, labels].mean())
    probabilities = np.exp(log_probabilities)

    d_logits = probabilities.copy()
    d_logits[rows, labels] -= 1
    d_logits /= len(labels)
    d_hidden = d_logits @ params["W2"].T  # each hidden unit is blamed through the weights it feeds
    d_hidden_pre_activation = d_hidden * derivative(hidden_pre_activation, hidden)
    gradients = {
        "W1": x.T @ d_hidden_pre_activation,
        "b1": d_hidden_pre_activation.sum(axis=0),
        "W2": hidden.T @ d_logits,
        "b2": d_logits.sum(axis=0),
    }
    return loss, gradients, probabilities


# %% [markdown]
# Is it right? We compare it with TensorFlow's automatic differentiation (`tf.GradientTape`: the
# same loss written with TensorFlow ops) and with central finite differences, on the same weights
# and eight real training images. The weights are float64, because the check is about the
# calculus: in float32, round-off alone gives relative errors near 1e-6 and would hide a real
# mistake of that size.


# %%
def gradient_tape_gradients(params, x, labels, activation="relu"):
    tf_activation = {"sigmoid": tf.sigmoid, "relu": tf.nn.relu}[activation]
    variables = {name: tf.Variable(values) for name, values in params.items()}
    with tf.GradientTape() as tape:
        hidden = tf_activation(tf.constant(x) @ variables["W1"] + variables["b1"])
        logits = hidden @ variables["W2"] + variables["b2"]
        loss = tf.reduce_mean(tf.nn.sparse_softmax_cross_entropy_with_logits(labels=labels, logits=logits))
    return {name: gradient.numpy() for name, gradient in tape.gradient(loss, variables).items()}


def relative_error(a, b):
    """|a - b| / (|a| + |b|): scale-free, so 1e-7 means "agrees to about 7 digits"."""
    denominator = np.linalg.norm(a) + np.linalg.norm(b)
    return float(np.linalg.norm(a - b) / denominator) if denominator else 0.0


def gradient_check(x, labels, activation="relu", hidden_units=6, seed=0):
    x, labels = np.asarray(x, dtype=np.float64), np.asarray(labels, dtype=np.int64)
    params = init_mlp(x.shape[1], hidden_units, 10, np.random.default_rng(seed), dtype=np.float64)
    # Small random biases, so that no ReLU sits exactly on its kink at 0, where the slope is undefined.
    for name in ("b1", "b2"):
        params[name] += np.random.default_rng(seed + 1).normal(0, 0.1, params[name].shape)
    _, backprop, _ = mlp_gradients(params, x, labels, activation)
    tape = gradient_tape_gradients(params, x, labels, activation)
    nudged = finite_difference_gradient(lambda p: mlp_loss(p, x, labels, activation), params, nudge=1e-5, central=True)
    vs_tape = {name: relative_error(backprop[name], tape[name]) for name in params}
    vs_nudge = {name: relative_error(backprop[name], nudged[name]) for name in params}
    return {
        "activation": activation,
        "weights": sum(values.size for values in params.values()),
        "images": len(x),
        "vs_gradient_tape": vs_tape,
        "vs_finite_differences": vs_nudge,
        "max_vs_gradient_tape": max(vs_tape.values()),
        "max_vs_finite_differences": max(vs_nudge.values()),
    }


# %%
checks = {activation: gradient_check(x_train[:8], y_train[:8], activation) for activation in ("sigmoid", "relu")}
print(pd.DataFrame.from_dict(checks, orient="index")[["weights", "max_vs_gradient_tape", "max_vs_finite_differences"]])
assert all(check["max_vs_gradient_tape"] < 1e-5 for check in checks.values()), "backprop disagrees with GradientTape"
print("backprop agrees with GradientTape and with finite differences")
numpy_run.record.add_extra("gradient_check", checks[config.activation])  # extra code: into run.json

# %% [markdown]
# A relative error near 1e-16 against GradientTape is float64 round-off, so the two compute the
# same gradient. Against finite differences it is about 1e-10: a central difference is accurate
# only to about nudge², and subtracting two nearly equal losses loses digits.
#
# ## 4. Why backprop is the one that scales
#
# We time one full gradient both ways, on 16 images, as the hidden layer grows. Nudging runs the
# forward pass once for every weight, so its cost is (number of weights) × (cost of a forward
# pass), and the forward pass itself grows with the number of weights. Backprop costs about two
# forward passes whatever the size.

# %%
x16, y16 = x_train[:16].astype(np.float64), y_train[:16]
timing = []
for hidden_units in (1, 2, 4) if config.quick else (1, 2, 4, 8, 16):
    params = init_mlp(784, hidden_units, 10, np.random.default_rng(0), dtype=np.float64)
    started = time.perf_counter()
    finite_difference_gradient(lambda p: mlp_loss(p, x16, y16, config.activation), params)
    nudging = time.perf_counter() - started
    backprop = []  # one backprop is so fast that a single timing is mostly noise: the best of 20
    for _ in range(20):
        started = time.perf_counter()
        mlp_gradients(params, x16, y16, config.activation)
        backprop.append(time.perf_counter() - started)
    weights = sum(values.size for values in params.values())
    timing.append({"hidden_units": hidden_units, "weights": weights, "finite_difference_s": nudging})
    timing[-1].update(backprop_s=min(backprop), times_slower=nudging / min(backprop))
timing = pd.DataFrame(timing)
print(timing.to_string(float_format=lambda v: f"{v:.5f}"))
numpy_run.record.add_extra("gradient_timing", timing.round(6).to_dict(orient="records"))  # extra code

fig, ax = plt.subplots(figsize=(6, 4))
ax.loglog(timing.weights, timing.finite_difference_s, "o-", label="nudging each weight")
ax.loglog(timing.weights, timing.backprop_s, "o-", label="backpropagation")
ax.set(xlabel="weights in the network", ylabel="seconds for one gradient", title="One gradient, 16 images")
ax.legend()
plt.show()

# %% [markdown]
# Each doubling of the weights about doubles the nudging time, and the "times slower" column grows
# in step with the number of weights. The hello-world network of the next activity has 407,050
# weights: 407,050 forward passes for a single nudged gradient.
#
# ## 5. Training on digits: our own loop
#
# Mini-batch SGD: draw a shuffled batch, get the gradients by backprop, move every weight against
# its gradient times the learning rate. Like Keras, we report each epoch's training loss and
# accuracy averaged over its batches (while the weights were still moving), then score the
# validation images.
#
# Why batches? Part 2 computed its loss on all five points at once. With tens of thousands of
# images, one gradient over all of them is slow to get and may not fit in memory, so each pass over
# the data (an epoch) is cut into batches, and the weights move after each one. The tutorial's
# advice is that batch sizes between 16 and 512 are the usual choice. This page uses 32, the hello
# world of the next activity 128. The batch size also sets how many updates one pass makes:
#
# In the notebook, open TensorBoard before training; this activity's runs, NumPy and Keras, land
# side by side in its folder.

# %%
# %load_ext tensorboard

# %%
runs_folder = numpy_run.dir.parent
# %tensorboard --logdir "$runs_folder"


# %%
for batch_size in (16, 32, 128, 512):
    updates = -(-len(x_train) // batch_size)  # rounded up: the last batch may be short
    print(f"batches of {batch_size:>3}: {updates:>5,} updates per pass over {len(x_train):,} images")

# %% [markdown]
# Small batches give many cheap, noisy steps; big ones give few, smoother steps that use the
# hardware better. A `--quick` run caps each epoch at a few steps, whatever the batch size.


# %%
def minibatches(n, batch_size, rng):
    """Endless shuffled batches of indices, reshuffled after every pass over the data."""
    while True:
        order = rng.permutation(n)
        for start in range(0, n, batch_size):
            yield order[start : start + batch_size]


def evaluate_mlp(params, x, labels, activation="relu"):
    log_probabilities, _ = mlp_forward(params, x, activation)
    loss = -log_probabilities[np.arange(len(labels)), labels].mean()
    return {"loss": float(loss), "accuracy": float(np.mean(log_probabilities.argmax(axis=1) == labels))}


# %%
params = init_mlp(784, config.hidden_units, data.num_classes, np.random.default_rng(config.seed))
start_weights = {name: values.copy() for name, values in params.items()}  # the Keras twin starts here too
steps = config.plan.steps_per_epoch_for(len(x_train))  # the very count Keras gets for its twin
batches = minibatches(len(x_train), config.batch_size, np.random.default_rng(config.seed))
writers = {split: numpy_run.open_writer(split) for split in ("train", "validation")}

numpy_history, numpy_epoch_seconds = [], []
for epoch in range(numpy_run.epochs):
    started = time.perf_counter()
    loss_sum, correct, seen = 0.0, 0, 0
    for _ in range(steps):
        batch = next(batches)
        loss, gradients, probabilities = mlp_gradients(params, x_train[batch], y_train[batch], config.activation)
        for name in params:
            params[name] -= config.learning_rate * gradients[name]  # the update
        loss_sum += loss * len(batch)
        correct += int((probabilities.argmax(axis=1) == y_train[batch]).sum())
        seen += len(batch)
    validation = evaluate_mlp(params, x_valid, y_valid, config.activation)
    numpy_epoch_seconds.append(time.perf_counter() - started)
    logs = {"loss": loss_sum / seen, "accuracy": correct / seen}
    logs.update(val_loss=validation["loss"], val_accuracy=validation["accuracy"])
    numpy_history.append(logs)
    print(
        f"Epoch {epoch + 1}/{numpy_run.epochs} - {numpy_epoch_seconds[-1]:.2f}s - {pd.Series(logs).round(4).to_dict()}"
    )

    # extra code: the epoch into TensorBoard and run.json, as Keras's callbacks do
    for split, prefix in (("train", ""), ("validation", "val_")):
        with writers[split].as_default():
            tf.summary.scalar("epoch_loss", logs[prefix + "loss"], step=epoch)
            tf.summary.scalar("epoch_accuracy", logs[prefix + "accuracy"], step=epoch)
    numpy_run.record.epoch_done(epoch, logs)

# %%
numpy_test = numpy_run.record_test(evaluate_mlp(params, x_test, y_test, config.activation))
print("NumPy network, test set:", numpy_test)


# extra code: the epoch times into run.json (Keras spends its first epoch tracing the graph,
# so the median is the fair per-epoch cost)
def speed(epoch_seconds):
    return {
        "train_seconds": round(sum(epoch_seconds), 3),
        "median_epoch_seconds": round(statistics.median(epoch_seconds), 4),
        "epoch_seconds": [round(s, 4) for s in epoch_seconds],
    }


numpy_run.record.add_extra("speed", speed(numpy_epoch_seconds))
numpy_run.finish()

# %% [markdown]
# ## The same network in Keras
#
# Now Keras does all of the above. The same architecture (the hello-world model of the next
# activity, at this hidden size) gets the very same starting weights, and trains with Keras's SGD at
# the same learning rate and batch size, in a run folder of its own.

# %%
keras_run = start_run(config, data, tag="keras", hparams=activity_settings)

# %%
model = keras.Sequential(
    [
        keras.Input(shape=(784,)),
        keras.layers.Dense(config.hidden_units, activation=config.activation),
        keras.layers.Dense(data.num_classes, activation="softmax"),
    ]
)
model.set_weights([start_weights["W1"], start_weights["b1"], start_weights["W2"], start_weights["b2"]])
model.summary()

# %%
model.compile(
    optimizer=keras.optimizers.SGD(learning_rate=config.learning_rate),
    loss="sparse_categorical_crossentropy",
    metrics=["accuracy"],
)

# %%
tensorboard = keras.callbacks.TensorBoard(log_dir=keras_run.dir)
history = model.fit(
    keras_run.batches(x_train, y_train),  # extra code: shuffled batches of the run's size
    epochs=keras_run.epochs,
    steps_per_epoch=keras_run.steps_per_epoch,
    validation_data=(x_valid, y_valid),
    callbacks=[tensorboard, *keras_run.callbacks(tensorboard)],
)

# %%
keras_test = model.evaluate(x_test, y_test, return_dict=True, verbose=0)
keras_run.record_test(keras_test)  # extra code: into run.json and TensorBoard's `test` run

comparison = pd.DataFrame(
    {
        "test_accuracy": [numpy_test["accuracy"], keras_test["accuracy"]],
        "train_seconds": [sum(numpy_epoch_seconds), sum(keras_run.epoch_seconds)],
        "median_epoch_seconds": [statistics.median(numpy_epoch_seconds), statistics.median(keras_run.epoch_seconds)],
    },
    index=["numpy", "keras"],
)
print(
    f"Same network ({config.hidden_units} {config.activation} units), same start, "
    f"same SGD (lr {config.learning_rate:g}, batch {config.batch_size}):\n"
    + comparison.to_string(float_format=lambda v: f"{v:.4f}")
)

# %% [markdown]
# The two validation curves follow each other closely but do not coincide. They start from the
# same weights and take the same kind of step, but each shuffles the mini-batches in its own order.

# %%
fig, axes = plt.subplots(1, 2, figsize=(11, 4))
for name, logs in (("numpy", pd.DataFrame(numpy_history)), ("keras", pd.DataFrame(history.history))):
    logs["val_accuracy"].plot(ax=axes[0], marker="o", label=name)
    logs["val_loss"].plot(ax=axes[1], marker="o", label=name)
for ax, title in zip(axes, ("validation accuracy", "validation loss"), strict=True):
    ax.set(xlabel="epoch", title=title)
    ax.legend()
plt.show()

# %%
# extra code: the comparison into the Keras run's run.json
keras_run.record.add_extra("speed", speed(keras_run.epoch_seconds))
keras_run.record.add_extra(
    "compared_with_numpy",
    {
        "numpy_run": numpy_run.dir.name,
        "numpy_test_accuracy": numpy_test["accuracy"],
        "numpy_median_epoch_seconds": statistics.median(numpy_epoch_seconds),
        "keras_over_numpy_epoch_time": (
            statistics.median(keras_run.epoch_seconds) / max(statistics.median(numpy_epoch_seconds), 1e-4)
        ),
    },
)
keras_run.finish(model)

# %% [markdown]
# On this small a network NumPy is the faster one per epoch, by about 10-15 times on a 2-core CPU.
# Keras pays a fixed cost on every step (and on its first epoch, where it traces the graph), and
# that cost matters less once each step has real work in it: with `--hidden-units 512
# --batch-size 128` the gap shrinks to about 5 times. What Keras gives back is everything we wrote
# by hand above.
#
# ## Questions to explore
#
# 1. In part 2, change the nudge to 1e-1. Where does the fit end, and why is a big nudge biased?
#    Then compare one slope at nudges 1e-4, 1e-8 and 1e-12 with the exact derivative,
#    2 · mean(x (wx + b - y)). Why are digits lost as the nudge shrinks?
# 2. Break the backward pass on purpose, for example drop the `/= len(labels)`. Which check
#    catches it, and how big is the relative error then?
# 3. Train with `--activation sigmoid`. Why does it learn more slowly than ReLU at the same
#    learning rate?
# 4. The two twins start from the same weights and use the same optimizer, yet their curves differ
#    a little. Where does the difference come from?
