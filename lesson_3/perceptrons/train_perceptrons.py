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
# # Lesson 3: from the perceptron to the multilayer perceptron
#
# Before the classifiers and regressors of this lesson, the ideas they are made of, in the order
# Geron's chapter 10 introduces them:
#
# 1. the perceptron, a single threshold unit, on two features of the iris flowers, and the proof
#    that scikit-learn's `Perceptron` is stochastic gradient descent in disguise;
# 2. XOR, four points that no single threshold unit can classify, and the hidden layer that can;
# 3. backpropagation in one paragraph, and the activation functions that made it possible;
# 4. the chapter's two recipe tables: which output layer and which loss for which task, with the
#    Huber loss and a softplus output computed by Keras.
#
# Every model here is a toy of a few weights: the whole page runs in seconds and writes no run
# folder. This file is both the script and the notebook (`train_perceptrons.ipynb` beside it holds
# the same cells, kept in step by jupytext):
#
# ```
# python lesson_3/perceptrons/train_perceptrons.py
# python lesson_3/perceptrons/train_perceptrons.py --seed 0     # another shuffle, another line
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

# %% [markdown]
# ## The settings
#
# The flags set the seed (the shuffling of the perceptrons and the initial weights of the XOR
# network) and how the XOR network trains. `--quick` (or `LAB_QUICK=1`) is accepted, as on every
# page, but changes nothing: the page is already seconds long.

# %%
from labkit import cli
from labkit.distribute import not_offered

XOR_EPOCHS = 10
XOR_LEARNING_RATE = 0.05  # Adam's step size for the XOR network
XOR_BATCH_SIZE = 32  # Keras's default batch size
XOR_REPEATS = 64  # the four XOR points 64 times over: 256 rows, 8 batches of 32 per epoch
NO_RUN_FOLDER = "this page trains toy models and writes no run folder"

parser = cli.build_parser(
    "Lesson 3, from the perceptron to the multilayer perceptron: iris, XOR, activations and the recipes.",
    epochs=XOR_EPOCHS,
    learning_rate=XOR_LEARNING_RATE,
    batch_size=XOR_BATCH_SIZE,
    epochs_help=f"passes of the XOR network over its {4 * XOR_REPEATS} rows (default {XOR_EPOCHS})",
    learning_rate_help=f"Adam's step size for the XOR network (default {XOR_LEARNING_RATE:g})",
    not_here={
        **not_offered("the page's models have a few weights each and train in a second on one device"),
        "--steps-per-epoch": "the XOR network's epoch is one pass over its rows",
        "--dataset": "this page's data are the iris flowers and the four XOR points",
        "--logdir": NO_RUN_FOLDER,
        "--resume": NO_RUN_FOLDER,
    },
)
config = cli.parse(parser)
print(
    f"seed {config.seed} | XOR network: {config.epochs} epochs, Adam at {config.learning_rate:g}, "
    f"batches of {config.batch_size}" + (" | --quick: the same page, already seconds long" if config.quick else "")
)

# %%
import keras
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from sklearn.datasets import load_iris
from sklearn.linear_model import Perceptron, SGDClassifier

# %% [markdown]
# ## 1. The perceptron on the iris flowers
#
# A threshold logic unit (TLU) computes a weighted sum of its inputs plus a bias,
# z = w1 x1 + w2 x2 + b, and outputs 1 when z >= 0, else 0: a step function of a linear function. A
# perceptron is a layer of such units; with one unit it is a binary linear classifier.
#
# The data: the iris set bundled with scikit-learn (150 flowers, no download), reduced to two
# features, petal length and petal width in cm, and to one question: is the flower an Iris
# setosa (class 0 of the data set, our label 1) or not (our label 0)?

# %%
iris = load_iris()
X_iris = iris.data[:, 2:4]  # petal length, petal width (cm)
y_iris = (iris.target == 0).astype(int)  # 1: Iris setosa, 0: the other two species
print("X_iris", X_iris.shape, "| y_iris", y_iris.shape, f"| {y_iris.sum()} setosa, {len(y_iris) - y_iris.sum()} others")

# %% [markdown]
# scikit-learn's `Perceptron` trains one TLU with Rosenblatt's rule: go through the rows in a
# shuffled order and, after each wrong prediction, move the weights towards the right answer
# (w <- w + eta (target - prediction) x). `random_state` fixes the shuffle; the page passes its
# `--seed`, 42 unless you change it. Then the question of the chapter: a flower with petals 2 cm
# long and 0.5 cm wide.

# %%
per_clf = Perceptron(random_state=config.seed)
per_clf.fit(X_iris, y_iris)
perceptron_prediction = int(per_clf.predict([[2, 0.5]])[0])
print(f"Perceptron: predict([[2, 0.5]]) = {perceptron_prediction}", "(setosa)" if perceptron_prediction else "(other)")
print(f"Perceptron: weights {per_clf.coef_[0]}, bias {per_clf.intercept_[0]:g}, {per_clf.n_iter_} epochs")
print(f"Perceptron: training accuracy {per_clf.score(X_iris, y_iris):.3f}")

# %% [markdown]
# The perceptron's rule is stochastic gradient descent on a particular loss, the "perceptron
# loss" max(0, -t z) (with targets t = -1/+1), which is zero for a right answer and grows with |z|
# for a wrong one. So scikit-learn's `SGDClassifier` with that loss, a constant learning rate of 1
# and no regularisation should be the very same model. With the same `random_state` (and the
# default `shuffle=True`, `max_iter=1000`, `tol=1e-3` that both classes share), check it: the same
# predictions on all 150 flowers, and the same weights, bias and number of epochs.


# %%
def compare_twins(first, second, X) -> dict:
    """What two fitted linear classifiers have in common, as yes/no answers."""
    return {
        "same predictions on every row": bool(np.array_equal(first.predict(X), second.predict(X))),
        "same weights": bool(np.array_equal(first.coef_, second.coef_)),
        "same bias": bool(np.array_equal(first.intercept_, second.intercept_)),
        "same number of epochs": bool(first.n_iter_ == second.n_iter_),
    }


sgd_clf = SGDClassifier(loss="perceptron", learning_rate="constant", eta0=1, penalty=None, random_state=config.seed)
sgd_clf.fit(X_iris, y_iris)
print(f"SGDClassifier: predict([[2, 0.5]]) = {int(sgd_clf.predict([[2, 0.5]])[0])}")
print(f"SGDClassifier: weights {sgd_clf.coef_[0]}, bias {sgd_clf.intercept_[0]:g}, {sgd_clf.n_iter_} epochs")
for question, answer in compare_twins(per_clf, sgd_clf, X_iris).items():
    print(f"{question}: {answer}")

# %% [markdown]
# Is the answer for [2, 0.5] a property of the data? Setosa petals are at most 1.9 cm long here,
# and the other species' at least 3.0 cm: the classes are linearly separable, so (the perceptron
# convergence theorem) the rule stops at a line that separates them, with training accuracy 1.
# But many lines do, and which one it stops at depends on the order of the rows. The point
# [2, 0.5] lies in the gap, so ten shuffles can disagree about it:

# %%
SHUFFLE_SEEDS = range(10)


def prediction_per_seed(X, y, point=(2, 0.5), seeds=SHUFFLE_SEEDS) -> dict:
    """The perceptron's prediction for `point` after training with each shuffle seed."""
    return {seed: int(Perceptron(random_state=seed).fit(X, y).predict([point])[0]) for seed in seeds}


lengths = X_iris[:, 0]
print(f"setosa petals at most {lengths[y_iris == 1].max()} cm long", end="; ")
print(f"the others' at least {lengths[y_iris == 0].min()} cm")
per_seed = prediction_per_seed(X_iris, y_iris)
print("prediction for [2, 0.5] by shuffle seed:", per_seed)
print(f"{sum(per_seed.values())} of {len(per_seed)} seeds say setosa")

# %% [markdown]
# The boundary is the line where z = 0: petal width = -(w1 x length + b) / w2. Setosa below-left,
# the others above-right, the point [2, 0.5] as a star.

# %%
fig, ax = plt.subplots(figsize=(5, 3.5))
for label, name, marker in ((1, "Iris setosa", "o"), (0, "other species", "s")):
    ax.scatter(*X_iris[y_iris == label].T, marker=marker, s=14, label=name)
ends = np.array([0.5, 7.5])  # petal lengths at the ends of the line
(w1, w2), b = per_clf.coef_[0], per_clf.intercept_[0]
ax.plot(ends, -(w1 * ends + b) / w2, "k-", label=f"Perceptron's boundary (seed {config.seed})")
ax.plot(2, 0.5, "r*", markersize=12, label="[2, 0.5]")
ax.set(xlabel="petal length (cm)", ylabel="petal width (cm)", xlim=(0.5, 7.5), ylim=(-0.2, 2.8))
ax.legend(fontsize=8, loc="upper left")
plt.show()

# %% [markdown]
# Unlike logistic regression, a perceptron gives no probability, only the side of the line: it
# cannot say that [2, 0.5] is a close call. (The exercises page, `lesson_3/exercises`, answers
# the chapter's question about that.)
#
# ## 2. XOR: where one unit is not enough
#
# Four points, the truth table of "exclusive or": (0, 0) and (1, 1) are class 0, (0, 1) and
# (1, 0) are class 1. First a perceptron, trained on them as on the flowers:

# %%
XOR_X = np.array([[0, 0], [0, 1], [1, 0], [1, 1]])
XOR_Y = np.array([0, 1, 1, 0])

xor_perceptron = Perceptron(random_state=config.seed).fit(XOR_X, XOR_Y)
print("Perceptron on XOR: predictions", xor_perceptron.predict(XOR_X), "targets", XOR_Y)
print(f"Perceptron on XOR: {int((xor_perceptron.predict(XOR_X) == XOR_Y).sum())} of 4 right")

# %% [markdown]
# That is not bad luck. Suppose one unit step(w1 x1 + w2 x2 + b) got all four right. Then
# (0, 1) and (1, 0) give w2 + b >= 0 and w1 + b >= 0, so w1 + w2 + 2b >= 0; and (0, 0) and (1, 1)
# give b < 0 and w1 + w2 + b < 0, so w1 + w2 + 2b < 0. Both cannot hold. The same check by brute
# force: every unit on a grid of weights and biases from -2 to 2, how many labellings of the four
# corners it can produce, and its best accuracy on XOR.


# %%
UNIT_GRID = np.linspace(-2, 2, 17)  # each of w1, w2 and b, in steps of 0.25


def linear_units_on_corners(X, y, grid=UNIT_GRID) -> tuple[float, int]:
    """Best accuracy of any unit step(w1 x1 + w2 x2 + b) on (X, y), over a grid of (w1, w2, b), and
    how many different labellings of the rows of X those units produce."""
    w1, w2, b = (axis.ravel() for axis in np.meshgrid(grid, grid, grid, indexing="ij"))
    outputs = (np.outer(X[:, 0], w1) + np.outer(X[:, 1], w2) + b >= 0).astype(int)  # (rows, units)
    accuracy = (outputs == y[:, None]).mean(axis=0)
    return float(accuracy.max()), len({tuple(column) for column in outputs.T})


best_accuracy, labellings = linear_units_on_corners(XOR_X, XOR_Y)
print(f"{len(UNIT_GRID) ** 3:,} units tried: they produce {labellings} of the 16 possible labellings of the corners")
print(f"best accuracy of a single unit on XOR: {best_accuracy:.2f}")

# %% [markdown]
# The two labellings out of reach are XOR and its negation. Stack units, though, and it is easy:
# a hidden layer of two units computes "x1 OR x2" and "x1 AND x2", and the output unit fires for
# OR but not AND. All hidden weights are 1; only the biases and the output weights differ. This
# network of step units is also the answer to the chapter's exercise 2.


# %%
def step(z):
    """Heaviside's step: 1 where z >= 0, else 0."""
    return (np.asarray(z) >= 0).astype(int)


XOR_HIDDEN_WEIGHTS = np.array([[1, 1], [1, 1]])  # column 0: the OR unit, column 1: the AND unit
XOR_HIDDEN_BIAS = np.array([-0.5, -1.5])
XOR_OUTPUT_WEIGHTS = np.array([1, -1])  # OR and not AND
XOR_OUTPUT_BIAS = -0.5


def xor_by_hand(X):
    hidden = step(X @ XOR_HIDDEN_WEIGHTS + XOR_HIDDEN_BIAS)
    return step(hidden @ XOR_OUTPUT_WEIGHTS + XOR_OUTPUT_BIAS)


print(pd.DataFrame({"x1": XOR_X[:, 0], "x2": XOR_X[:, 1], "target": XOR_Y, "network": xor_by_hand(XOR_X)}))
print(f"hand-set network: {int((xor_by_hand(XOR_X) == XOR_Y).sum())} of 4 right")

# %% [markdown]
# Now let Keras find weights of its own. A step function gives gradient descent nothing to follow
# (section 3), so the hidden units use tanh and the output a sigmoid, the probability of class 1;
# the loss is binary cross-entropy, the chapter's recipe for a binary classifier (section 4).
# Eight hidden units rather than the two above: a very small network can stall from unlucky
# initial weights (the Playground page, `lesson_3/playground`, shows it on its 3-unit networks).
# With eight, seeds 1 to 9 and 42 all learned XOR when this page was written (a measured example).
#
# The four points are repeated 64 times, so that an epoch is 8 batches of 32 rows, Keras's default
# batch size, instead of one batch of 4: with so little data, Keras's bookkeeping per epoch would
# cost more than the learning.

# %%
keras.utils.set_random_seed(config.seed)  # the initial weights and the shuffling of the batches

xor_model = keras.Sequential(
    [
        keras.Input(shape=(2,)),
        keras.layers.Dense(8, activation="tanh", name="hidden"),
        keras.layers.Dense(1, activation="sigmoid", name="output"),
    ],
    name="xor_mlp",
)
xor_model.compile(
    loss="binary_crossentropy",
    optimizer=keras.optimizers.Adam(learning_rate=config.learning_rate),
    metrics=["accuracy"],
)

# %%
x_repeated = np.tile(XOR_X, (XOR_REPEATS, 1)).astype("float32")
y_repeated = np.tile(XOR_Y, XOR_REPEATS).astype("float32")
history = xor_model.fit(x_repeated, y_repeated, epochs=config.epochs, batch_size=config.batch_size, verbose=0)
print("training accuracy by epoch:", [round(a, 3) for a in history.history["accuracy"]])

# %%
xor_probabilities = xor_model.predict(XOR_X.astype("float32"), verbose=0).ravel()
xor_predictions = (xor_probabilities >= 0.5).astype(int)
xor_table = {"x1": XOR_X[:, 0], "x2": XOR_X[:, 1], "target": XOR_Y, "P(class 1)": xor_probabilities.round(3)}
print(pd.DataFrame({**xor_table, "predicted": xor_predictions}))
print(f"Keras MLP on XOR: {int((xor_predictions == XOR_Y).sum())} of 4 right")

# %% [markdown]
# What the hidden layer buys: the probability the network gives over the whole unit square. No
# single straight line splits it; the 0.5 contour (black) bends around the two class-1 corners.

# %%
grid = np.linspace(-0.25, 1.25, 61)
g1, g2 = np.meshgrid(grid, grid)
surface = xor_model.predict(np.c_[g1.ravel(), g2.ravel()].astype("float32"), verbose=0).reshape(g1.shape)
fig, ax = plt.subplots(figsize=(4, 3.4))
image = ax.contourf(g1, g2, surface, levels=20, cmap="RdBu")
ax.contour(g1, g2, surface, levels=[0.5], colors="k")
ax.scatter(*XOR_X.T, c=XOR_Y, cmap="RdBu", edgecolors="k", s=80, vmin=-0.5, vmax=1.5)
ax.set(xlabel="x1", ylabel="x2", title="the XOR network's P(class 1)")
fig.colorbar(image, ax=ax)
plt.show()

# %% [markdown]
# ## 3. Backpropagation, and why the step function had to go
#
# Training a multilayer perceptron is gradient descent with an efficient way to get the gradient,
# backpropagation (Rumelhart, Hinton and Williams, 1986). The training set goes through in
# mini-batches (Keras takes 32 rows per batch unless told otherwise), and each full pass is an
# epoch. For each batch: a forward pass computes every layer's output, keeping the intermediate
# results; the loss compares the outputs with the targets; a backward pass applies the chain rule
# from the output layer back to the first, giving how much each weight and bias contributed to the
# error; then one gradient descent step moves every parameter against its gradient. Two passes
# through the network give the gradient for all the parameters at once: this is reverse-mode
# automatic differentiation. The weights must start random: if all were equal, all units of a
# layer would receive the same gradient and stay identical.
#
# A step function is flat everywhere except at 0, so its derivative is 0 and the chain rule
# passes no signal back. Backpropagation needs activations with a useful slope. The chapter's
# three: the sigmoid (logistic) function, tanh, and ReLU.


# %%
def sigmoid(z):
    return 1 / (1 + np.exp(-z))


def relu(z):
    return np.maximum(z, 0)


ACTIVATIONS = {  # name: (function, its derivative)
    "step": (step, lambda z: np.zeros_like(z)),  # derivative 0 everywhere but at 0, where it has none
    "sigmoid": (sigmoid, lambda z: sigmoid(z) * (1 - sigmoid(z))),
    "tanh": (np.tanh, lambda z: 1 - np.tanh(z) ** 2),
    "ReLU": (relu, lambda z: (z > 0).astype(float)),  # no derivative at 0 itself
}

z = np.linspace(-5, 5, 401)
fig, (left, right) = plt.subplots(1, 2, figsize=(10, 3.4))
for name, (function, derivative) in ACTIVATIONS.items():
    style = "--" if name == "step" else "-"
    left.plot(z, function(z), style, label=name)
    right.plot(z, derivative(z), style, label=name)
left.set(title="activation functions", xlabel="z", ylim=(-1.2, 1.5))
right.set(title="their derivatives", xlabel="z", ylim=(-0.2, 1.2))
for ax in (left, right):
    ax.grid(True, alpha=0.3)
    ax.legend()
plt.show()

# %% [markdown]
# - sigmoid: sigma(z) = 1 / (1 + exp(-z)), from 0 to 1; its slope is never 0, at most 0.25.
# - tanh: S-shaped too, from -1 to 1, centred on 0, so a layer's outputs start out centred, which
#   often speeds training up.
# - ReLU: max(0, z). No slope at 0 itself and none for z < 0, but fast, unbounded above, and the
#   usual default for hidden layers.
#
# tanh is the sigmoid rescaled: tanh(z) = 2 sigma(2z) - 1. Checked numerically over [-10, 10], in
# NumPy's double and single precision and with Keras's own ops (float32):


# %%
def tanh_identity_gap(dtype="float64", low=-10.0, high=10.0, points=2001) -> float:
    """max |tanh(z) - (2 sigmoid(2z) - 1)| over `points` values of z from `low` to `high`."""
    z = np.linspace(low, high, points).astype(dtype)
    return float(np.max(np.abs(np.tanh(z) - (2 * sigmoid(2 * z) - 1))))


z32 = keras.ops.convert_to_tensor(np.linspace(-10, 10, 2001), dtype="float32")
keras_gap = float(keras.ops.max(keras.ops.abs(keras.ops.tanh(z32) - (2 * keras.ops.sigmoid(2 * z32) - 1))))
print(f"float64 (NumPy): max |tanh(z) - (2 sigmoid(2z) - 1)| = {tanh_identity_gap('float64'):.3g}")
print(f"float32 (NumPy): max |tanh(z) - (2 sigmoid(2z) - 1)| = {tanh_identity_gap('float32'):.3g}")
print(f"float32 (Keras ops): max |tanh(z) - (2 sigmoid(2z) - 1)| = {keras_gap:.3g}")
print(f"float32 machine epsilon: {np.finfo(np.float32).eps:.3g}")

# %% [markdown]
# The differences are rounding errors, a few units of the last digit: about 1e-16 in double
# precision, about 1e-7 in single precision, the size of float32's machine epsilon.
#
# Why a nonlinear activation at all? Linear layers stacked make one linear layer: f(x) = 2x + 3
# after g(x) = 5x - 1 is f(g(x)) = 10x + 1. Without a nonlinearity between them, a deep network
# could draw no more than the single unit that failed on XOR.
#
# ## 4. The recipes: output layer and loss for each task
#
# The chapter sums up how to shape a multilayer perceptron in two tables. In our words:
#
# **A regression MLP**
#
# | part | what to choose |
# |---|---|
# | input neurons | one per input feature |
# | hidden layers and neurons | depend on the problem: Lesson 3's tuning and deep MLP pages search for them |
# | output neurons | one per value predicted (two for a point's coordinates, four for a box) |
# | hidden activation | ReLU |
# | output activation, for any real value | none |
# | output activation, for a positive value | ReLU, or softplus (below) |
# | output activation, for a value in a range | sigmoid (0 to 1) or tanh (-1 to 1), rescaled to the range |
# | loss | mean squared error; mean absolute error or Huber when the training set has many outliers |
#
# **A classification MLP**
#
# | part | binary | multilabel binary | multiclass |
# |---|---|---|---|
# | input and hidden layers | as for regression | as for regression | as for regression |
# | output neurons | 1 | 1 per label | 1 per class |
# | output activation | sigmoid | sigmoid (the probabilities need not add up to 1) | softmax (they add up to 1) |
# | loss | cross-entropy | cross-entropy | cross-entropy |
#
# The multilabel case: a mail filter that says both "spam or not" and "urgent or not" needs two
# sigmoid outputs, one per question. The multiclass case: a digit is exactly one of ten classes,
# so ten outputs and a softmax.
#
# ### The Huber loss
#
# The mean squared error punishes a large error by its square, so a few outliers can dominate
# training; the mean absolute error is robust but has the same slope near 0 as far from it, which
# makes it converge less precisely. Huber's loss takes the best of each: quadratic, 0.5 e^2, when
# the error |e| is at most delta (usually 1), and linear, delta (|e| - 0.5 delta), beyond. Keras's
# `Huber`, `MeanSquaredError` and `MeanAbsoluteError` on a few errors, with `reduction=None` to get
# one loss per error:

# %%
errors = np.array([-3, -1.5, -1, -0.5, 0, 0.5, 1, 1.5, 3], dtype="float32")
targets, predictions = np.zeros((len(errors), 1), "float32"), errors[:, None]  # one column: one loss per row
huber = keras.losses.Huber(delta=1.0, reduction=None)
mse = keras.losses.MeanSquaredError(reduction=None)
mae = keras.losses.MeanAbsoluteError(reduction=None)
losses = pd.DataFrame(
    {
        "error": errors,
        "MSE": keras.ops.convert_to_numpy(mse(targets, predictions)),
        "MAE": keras.ops.convert_to_numpy(mae(targets, predictions)),
        "Huber (delta=1)": keras.ops.convert_to_numpy(huber(targets, predictions)),
    }
)
print(losses.to_string(index=False))


# %%
def huber_by_formula(error, delta=1.0):
    error = np.abs(error)
    return np.where(error <= delta, 0.5 * error**2, delta * (error - 0.5 * delta))


print("Keras's Huber matches the formula:", bool(np.allclose(losses["Huber (delta=1)"], huber_by_formula(errors))))

# %% [markdown]
# For |e| <= 1, Huber is half the squared error (Keras's MSE has no factor one half); beyond, it
# grows like the absolute error. On a batch where one prediction is 10 off and the others are
# close, the mean squared error is all about the outlier:

# %%
BATCH_ERRORS = [0.1, -0.2, 0.3, 10.0]
batch_errors = np.array(BATCH_ERRORS, dtype="float32")[:, None]
batch_targets = np.zeros_like(batch_errors)
for name, loss in {
    "MSE": keras.losses.MeanSquaredError(),
    "MAE": keras.losses.MeanAbsoluteError(),
    "Huber": keras.losses.Huber(delta=1.0),
}.items():
    print(f"{name:>5} over the batch of errors {BATCH_ERRORS}: {float(loss(batch_targets, batch_errors)):.4f}")

# %%
e = np.linspace(-3, 3, 301)
fig, ax = plt.subplots(figsize=(5, 3.4))
ax.plot(e, e**2, label="squared error")
ax.plot(e, np.abs(e), label="absolute error")
ax.plot(e, huber_by_formula(e), label="Huber, delta = 1")
ax.axvspan(-1, 1, color="grey", alpha=0.15)
ax.set(xlabel="error", ylabel="loss", ylim=(0, 4), title="quadratic inside |e| <= 1, linear outside")
ax.legend()
plt.show()

# %% [markdown]
# ### A softplus output
#
# softplus(z) = log(1 + exp(z)) is a smooth ReLU: close to 0 for negative z, close to z for large
# z, and never negative. A regression output that must be positive (a price, a duration) can use
# it: whatever the weights, `Dense(1, activation="softplus")` only outputs positive values.

# %%
keras.utils.set_random_seed(config.seed)
positive_output = keras.Sequential([keras.Input(shape=(3,)), keras.layers.Dense(1, activation="softplus")])
inputs = np.random.default_rng(config.seed).normal(scale=5, size=(6, 3)).astype("float32")
outputs = positive_output.predict(inputs, verbose=0).ravel()
print("softplus outputs for 6 random inputs:", outputs.round(4), "| all positive:", bool((outputs > 0).all()))

z_values = np.array([-5.0, 0.0, 5.0], dtype="float32")
print("keras.activations.softplus:", keras.ops.convert_to_numpy(keras.activations.softplus(z_values)).round(4))
print("log(1 + exp(z)):           ", np.log1p(np.exp(z_values)).round(4))

fig, ax = plt.subplots(figsize=(4.5, 3))
z = np.linspace(-4, 4, 201)
ax.plot(z, relu(z), label="ReLU")
ax.plot(z, np.log1p(np.exp(z)), label="softplus")
ax.set(xlabel="z", title="two positive outputs")
ax.legend()
plt.show()

# %% [markdown]
# ## Questions to explore
#
# 1. `--seed 0` and `--seed 6` give the point [2, 0.5] to the other species. Plot their boundaries:
#    which line would you trust, and what would logistic regression say about that point?
# 2. Give the XOR network 2 hidden units instead of 8 and try seeds 0 to 9. How often does it get
#    all four right? (The Playground page, `lesson_3/playground`, shows the same kind of stuck run.)
# 3. Replace tanh by ReLU in the XOR network. Does it still learn XOR in 10 epochs?
# 4. In the Huber example, change `delta` to 0.5 and to 3. Where does the loss switch from
#    quadratic to linear, and what happens to the batch with the outlier?
