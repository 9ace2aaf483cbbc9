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
# # Lesson 3: the exercises of Geron's chapter 10, with worked answers
#
# The chapter ends with ten exercises. Two of them are whole activities of this lesson (exercise 1,
# the TensorFlow Playground, and exercise 10, a deep MLP on MNIST); this page points to them. The
# other eight are answered here, in prose, and wherever an answer can be computed (a truth table,
# a shape, a derivative, a gradient), a cell computes it. Try each question before reading on.
#
# The page trains nothing that takes time: it runs in seconds and writes no run folder. This file
# is both the script and the notebook (`exercises.ipynb` beside it holds the same cells, kept in
# step by jupytext):
#
# ```
# python lesson_3/exercises/exercises.py
# ```
#
# The page for the chapter's first sections (the perceptron, XOR, the activations, the recipe
# tables) is `lesson_3/perceptrons/train_perceptrons.py`.

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
from labkit import in_notebook
from labkit.cli import OneLineParser

# No flags: the page only answers questions. An unknown flag still gets one line and exit code 2.
parser = OneLineParser(description="Lesson 3, the exercises of Geron's chapter 10, with worked answers.")
parser.parse_args([] if in_notebook() else None)

# %%
import keras
import matplotlib.pyplot as plt
import numpy as np
import tensorflow as tf
from sklearn.datasets import load_iris
from sklearn.linear_model import LogisticRegression, Perceptron

SEED = 42
keras.utils.set_random_seed(SEED)

# %% [markdown]
# ## Exercise 1: the TensorFlow Playground
#
# *Train the Playground's default network, then change one thing at a time: ReLU instead of tanh;
# one hidden layer of 3 neurons, reset several times; 2 neurons, then 8; the spiral with four
# hidden layers of 8 neurons. What does each change show?*
#
# This lesson runs those experiments offline, in Keras, on the Playground's four datasets:
# `lesson_3/playground/train_playground.py` (its card, `lesson_3/playground/README.md`, answers
# each part with the numbers measured there). In short: the first hidden layer draws straight
# lines and the next one combines them into curves; ReLU trains faster than tanh; a network with
# few neurons can stay stuck on a poor solution, depending on its initial weights; a network too
# small underfits, a larger one finds the solution reliably; and a deep, narrow network crawls
# through long plateaus, its first layers learning slowest (vanishing gradients).
#
# ## Exercise 2: XOR from threshold neurons
#
# *Draw a network of the simple neurons of the chapter's logic gates that computes A XOR B.
# Hint: A XOR B = (A AND NOT B) OR (NOT A AND B).*
#
# Follow the hint, one neuron per operation. A threshold neuron fires (outputs 1) when the
# weighted sum of its inputs reaches its threshold:
#
# - "A AND NOT B": weight +1 from A, -1 from B (an inhibitory connection), threshold 1. It fires
#   only for A = 1, B = 0.
# - "NOT A AND B": the mirror image, -1 from A, +1 from B, threshold 1.
# - the output, an OR of those two: weights +1 and +1, threshold 1.
#
# Two hidden neurons and one output neuron. (In the chapter's figure of logic gates, a neuron
# fires when two of its inputs are active; there, A gives the first hidden neuron two connections
# and B one inhibitory connection.) The perceptrons page builds another network for XOR, from an
# OR neuron and an AND neuron. The truth table of this one:


# %%
def threshold_neuron(inputs, weights, threshold) -> int:
    """1 when the weighted sum of the inputs reaches the threshold, else 0."""
    return int(np.dot(inputs, weights) >= threshold)


def xor_network(a: int, b: int) -> int:
    a_and_not_b = threshold_neuron([a, b], [1, -1], 1)
    not_a_and_b = threshold_neuron([a, b], [-1, 1], 1)
    return threshold_neuron([a_and_not_b, not_a_and_b], [1, 1], 1)


for a in (0, 1):
    for b in (0, 1):
        print(f"A={a} B={b} | network {xor_network(a, b)} | A XOR B {a ^ b}")
right = sum(xor_network(a, b) == a ^ b for a in (0, 1) for b in (0, 1))
print(f"XOR network: {right} of 4 rows of the truth table right")

# %% [markdown]
# ## Exercise 3: logistic regression against the classic perceptron
#
# *Why is a logistic regression classifier generally preferable to a classic perceptron (one layer
# of threshold units trained with the perceptron rule)? How would you change a perceptron to make
# it equivalent to a logistic regression classifier?*
#
# Two reasons. A perceptron only answers with a class; logistic regression also gives the
# probability of that class, so a close call can be told from a sure one. And the perceptron rule
# converges only when the classes are linearly separable: otherwise it keeps moving the line, and
# where it stops depends on the order of the rows and when training is cut off. Logistic
# regression minimises a convex loss, so it settles on one best line even when no line separates
# the classes perfectly.
#
# The change: replace the step function by the sigmoid (logistic) function, and train by gradient
# descent on the log loss (cross-entropy) instead of with the perceptron rule. The result *is*
# logistic regression.
#
# Checked on the iris flowers (petal length and width). Iris virginica cannot be separated from
# the others by a line: the perceptron's training accuracy depends on the shuffle, while logistic
# regression (scikit-learn's, with its default mild regularisation) gives one answer.

# %%
iris = load_iris()
X_iris = iris.data[:, 2:4]  # petal length, petal width (cm)
virginica = (iris.target == 2).astype(int)
setosa = (iris.target == 0).astype(int)

perceptron_scores = [
    Perceptron(random_state=seed).fit(X_iris, virginica).score(X_iris, virginica) for seed in range(10)
]
logistic = LogisticRegression().fit(X_iris, virginica)
print(
    f"virginica or not, perceptron, shuffle seeds 0-9: training accuracy "
    f"{min(perceptron_scores):.3f} to {max(perceptron_scores):.3f}"
)
print(f"virginica or not, logistic regression: training accuracy {logistic.score(X_iris, virginica):.3f}")

print("a perceptron has predict_proba:", hasattr(Perceptron(), "predict_proba"))
setosa_logistic = LogisticRegression().fit(X_iris, setosa)
print(f"logistic regression: P(setosa | petals 2 cm x 0.5 cm) = {setosa_logistic.predict_proba([[2, 0.5]])[0, 1]:.3f}")

# %% [markdown]
# ## Exercise 4: why the logistic activation mattered
#
# *Why was the logistic activation function a key ingredient in training the first MLPs?*
#
# Because its derivative is nonzero everywhere. Backpropagation moves each weight along the
# gradient of the loss, which passes back through the derivative of every activation. The step
# function's derivative is 0 wherever it exists (and it does not exist at 0): gradient descent
# gets no signal at all. The sigmoid's slope is small far from 0 but never zero, so every step of
# gradient descent makes some progress. TensorFlow's automatic differentiation shows the difference
# for one unit, output = activation(w x) with w = 0.5 and x = 2:

# %%
w = tf.Variable(0.5)
x = tf.constant(2.0)
with tf.GradientTape(persistent=True) as tape:
    step_output = tf.where(w * x >= 0, 1.0, 0.0)
    sigmoid_output = tf.sigmoid(w * x)
zero = tf.UnconnectedGradients.ZERO  # report "no path" as a gradient of 0 rather than None
print(f"d step(w x) / dw = {float(tape.gradient(step_output, w, unconnected_gradients=zero)):.4f}")
print(f"d sigmoid(w x) / dw = {float(tape.gradient(sigmoid_output, w)):.4f}")
del tape

z = np.linspace(-10, 10, 2001)
sigmoid_slope = 1 / (1 + np.exp(-z)) * (1 - 1 / (1 + np.exp(-z)))
print(f"slope of the sigmoid on [-10, 10]: smallest {sigmoid_slope.min():.3g} (at z = +/-10)")
print(f"slope of the sigmoid on [-10, 10]: largest {sigmoid_slope.max()} (at z = 0)")

# %% [markdown]
# ## Exercise 5: three popular activation functions
#
# *Name three popular activation functions. Can you draw them?*
#
# The sigmoid (logistic) function, 1 / (1 + exp(-z)), from 0 to 1; the hyperbolic tangent, tanh,
# from -1 to 1; and ReLU, max(0, z). (Others: softplus, a smooth ReLU; the leaky ReLU and its
# relatives; softmax for an output layer over classes.)

# %%
z = np.linspace(-5, 5, 401)
three = {
    "sigmoid: 1 / (1 + exp(-z))": 1 / (1 + np.exp(-z)),
    "tanh(z)": np.tanh(z),
    "ReLU: max(0, z)": np.maximum(z, 0),
}
fig, axes = plt.subplots(1, 3, figsize=(11, 3))
for ax, (name, values) in zip(axes, three.items(), strict=True):
    ax.plot(z, values)
    ax.axhline(0, color="grey", lw=0.5)
    ax.axvline(0, color="grey", lw=0.5)
    ax.set(title=name, xlabel="z")
plt.show()

# %% [markdown]
# ## Exercise 6: the shapes of a small MLP
#
# *An MLP has an input layer of 10 passthrough neurons, one hidden layer of 50 neurons and an
# output layer of 3 neurons, all with ReLU. What are the shapes of the input matrix X, of the
# hidden layer's weights W_h and bias b_h, of the output layer's W_o and b_o, and of the output
# Y? Write the equation that computes Y from them.*
#
# For a batch of m instances: X is (m, 10), one row per instance and one column per feature.
# W_h is (10, 50), one row per input and one column per hidden neuron; b_h is (50,), one bias per
# hidden neuron. W_o is (50, 3) and b_o is (3,). Y is (m, 3). With every neuron using ReLU:
#
# Y = ReLU(ReLU(X W_h + b_h) W_o + b_o)
#
# (A ReLU on the output layer is the exercise's choice: it makes every output at least 0.) Keras
# builds the same network and stores its weights in exactly these shapes:


# %%
def exercise_6_mlp() -> keras.Sequential:
    return keras.Sequential(
        [
            keras.Input(shape=(10,)),
            keras.layers.Dense(50, activation="relu", name="hidden"),
            keras.layers.Dense(3, activation="relu", name="output"),
        ],
        name="mlp_10_50_3",
    )


mlp = exercise_6_mlp()
W_h, b_h = mlp.get_layer("hidden").get_weights()
W_o, b_o = mlp.get_layer("output").get_weights()
# Keras starts biases at 0; give them random values so that the check below involves them too.
rng = np.random.default_rng(SEED)
b_h, b_o = rng.normal(size=b_h.shape).astype("float32"), rng.normal(size=b_o.shape).astype("float32")
mlp.get_layer("hidden").set_weights([W_h, b_h])
mlp.get_layer("output").set_weights([W_o, b_o])

m = 4
X_batch = rng.normal(size=(m, 10)).astype("float32")
Y_keras = keras.ops.convert_to_numpy(mlp(X_batch))
for name, array in {"X": X_batch, "W_h": W_h, "b_h": b_h, "W_o": W_o, "b_o": b_o, "Y": Y_keras}.items():
    print(f"{name} {array.shape}")
print(f"parameters: {mlp.count_params()}")

# %% [markdown]
# The same output by the equation, in NumPy:

# %%
Y_by_hand = np.maximum(np.maximum(X_batch @ W_h + b_h, 0) @ W_o + b_o, 0)
print(f"max |Keras - equation| = {np.abs(Y_keras - Y_by_hand).max():.3g}")
print("Y =\n", Y_keras.round(4))

# %% [markdown]
# ## Exercise 7: the output layer for three tasks
#
# *How many output neurons, and which activation, to classify mail as spam or ham? For MNIST? To
# predict housing prices (chapter 2's California data)?*
#
# - Spam or ham: one neuron with the sigmoid (logistic) activation, the estimated probability
#   that a mail is spam; loss: binary cross-entropy.
# - MNIST: ten neurons, one per digit, with softmax, so that the ten probabilities add up to 1;
#   loss: (sparse) categorical cross-entropy.
# - Housing prices: one neuron and no activation, any real value; loss: mean squared error. Since
#   prices are positive, a ReLU or softplus output would also do.
#
# Each one built on a hidden layer of 30 ReLU units (the input sizes are only examples: 100 word
# counts for a mail, 784 pixels for a digit, the California set's 8 features), then fed a batch
# of random inputs:


# %%
def output_heads() -> dict:
    """The three tasks: (input features, output layer, loss) for each."""
    return {
        "spam": (100, keras.layers.Dense(1, activation="sigmoid"), "binary_crossentropy"),
        "MNIST": (784, keras.layers.Dense(10, activation="softmax"), "sparse_categorical_crossentropy"),
        "housing": (8, keras.layers.Dense(1), "mse"),
    }


for task, (features, output_layer, loss) in output_heads().items():
    model = keras.Sequential([keras.Input(shape=(features,)), keras.layers.Dense(30, activation="relu"), output_layer])
    model.compile(optimizer="sgd", loss=loss)
    outputs = keras.ops.convert_to_numpy(model(rng.normal(size=(5, features)).astype("float32")))
    activation = output_layer.get_config()["activation"]
    print(f"{task}: {output_layer.units} output neuron(s), activation {activation}, loss {loss}")
    print(f"    output shape {outputs.shape}, values from {outputs.min():.3f} to {outputs.max():.3f}", end="")
    print(f", each row sums to 1: {bool(np.allclose(outputs.sum(axis=1), 1))}" if task == "MNIST" else "")

# %% [markdown]
# ## Exercise 8: backpropagation and reverse-mode autodiff
#
# *What is backpropagation and how does it work? What is the difference between backpropagation
# and reverse-mode autodiff?*
#
# Backpropagation is the algorithm that trains a neural network by gradient descent. For each
# batch it makes a forward pass (computing every layer's output and keeping the intermediate
# values), measures the loss, makes a backward pass that applies the chain rule layer by layer,
# from the output back to the input, to get the gradient of the loss with respect to every
# parameter, and then takes a gradient descent step with those gradients. It repeats this for
# every batch, epoch after epoch.
#
# Reverse-mode autodiff is the technique for the gradient part alone: after one forward pass
# through any computation, one reverse pass gives the derivatives of its output with respect to
# all of its inputs. It works for any differentiable program, not only networks, and is what
# `tf.GradientTape` does. Backpropagation is the whole training loop; reverse-mode autodiff is
# how it gets its gradients.
#
# The gradient of a small network's loss from `tf.GradientTape`, checked against finite
# differences (nudge each parameter up and down by a tiny epsilon and watch the loss), in float64:


# %%
def small_mlp_loss(params, x, y):
    """Mean squared error of a 3 -> 4 (tanh) -> 1 network with weights `params`."""
    w1, b1, w2, b2 = params
    hidden = tf.tanh(tf.matmul(x, w1) + b1)
    return tf.reduce_mean((tf.matmul(hidden, w2) + b2 - y) ** 2)


def tape_gradients(params, x, y) -> list:
    variables = [tf.Variable(p) for p in params]
    with tf.GradientTape() as tape:
        loss = small_mlp_loss(variables, x, y)
    return [g.numpy() for g in tape.gradient(loss, variables)]


def finite_difference_gradients(params, x, y, epsilon=1e-6) -> list:
    """Central differences, one parameter at a time: (loss(p + eps) - loss(p - eps)) / (2 eps)."""
    gradients = []
    for k, p in enumerate(params):
        gradient = np.zeros_like(p)
        for index in np.ndindex(p.shape):
            up, down = [q.copy() for q in params], [q.copy() for q in params]
            up[k][index] += epsilon
            down[k][index] -= epsilon
            gradient[index] = (float(small_mlp_loss(up, x, y)) - float(small_mlp_loss(down, x, y))) / (2 * epsilon)
        gradients.append(gradient)
    return gradients


def small_mlp_problem(seed=SEED):
    """Random float64 weights (w1 (3, 4), b1 (4,), w2 (4, 1), b2 (1,)), 5 inputs and targets."""
    rng = np.random.default_rng(seed)
    params = [rng.normal(size=shape) for shape in ((3, 4), (4,), (4, 1), (1,))]
    return params, rng.normal(size=(5, 3)), rng.normal(size=(5, 1))


params, x_small, y_small = small_mlp_problem()
by_tape = tape_gradients(params, x_small, y_small)
by_differences = finite_difference_gradients(params, x_small, y_small)
gap = max(float(np.abs(a - b).max()) for a, b in zip(by_tape, by_differences, strict=True))
print(f"{sum(p.size for p in params)} parameters; the gradient of w1 by the tape:")
print(np.array2string(by_tape[0], precision=5, suppress_small=True))
print(f"max |tape - finite differences| over all parameters: {gap:.2e}")

# %% [markdown]
# The finite differences needed two loss evaluations per parameter (42 here); the tape needed one
# forward and one backward pass for all of them. For a network of millions of weights, that is
# the difference between feasible and not.
#
# ## Exercise 9: hyperparameters, and overfitting
#
# *List the hyperparameters you can tweak in a basic MLP. If it overfits the training data, how
# could you tweak them to fix it?*
#
# - the number of hidden layers, and the number of neurons in each;
# - the activation function of the hidden layers (ReLU is a good default) and of the output
#   layer (set by the task: exercise 7), and the loss (also set by the task);
# - the optimizer and its learning rate, the most important of all;
# - the batch size and the number of epochs;
# - the weight initialisation.
#
# Lesson 3's tuning pages (`lesson_3/tuning`) search several of them. If the network overfits:
# fewer hidden layers or fewer neurons per layer, so that it has less capacity to memorise;
# stop training early (`EarlyStopping`, on the callbacks page, `lesson_3/callbacks`); more
# training data; and the regularisation techniques of the next chapter (l1 and l2 penalties,
# dropout).
#
# ## Exercise 10: a deep MLP on MNIST, above 98%
#
# *Train a deep MLP on MNIST and try to get over 98% accuracy: find the learning rate by growing
# it exponentially and plotting the loss, save checkpoints, use early stopping, and plot the
# learning curves in TensorBoard.*
#
# That is the lesson's activity `lesson_3/deep_mlp/train_mnist.py`: a learning-rate finder, then
# training at half the rate where the loss turned, with ModelCheckpoint, EarlyStopping and
# TensorBoard. Its card, `lesson_3/deep_mlp/README.md`, gives the test accuracies measured there,
# on which data, and with which seeds.
