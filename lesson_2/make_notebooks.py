"""Lesson 2's three notebooks, as cells (see labkit/notebooks.py). After editing, run:

    python lesson_2/make_notebooks.py
"""

from pathlib import Path

from labkit.notebooks import write_notebooks

LESSON = Path(__file__).resolve().parent

NUMPY_FROM_SCRATCH = [
    ("md", """
# A neural network from scratch, then the same network in Keras

Keras hides three things: the forward pass, the gradient, and the update. Here we write each one
in NumPy. All the code is in `train_mnist.py` in this folder, and this notebook calls its
functions, so the script and the notebook always run the same code.

Run with `LAB_QUICK=1` (as the tests do), the training at the end uses a small slice and two epochs.
"""),
    ("code", """
import labkit  # first: keeps TensorFlow's start-up chatter out of the notebook
%matplotlib inline
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from labkit import cli
from labkit.data import load_dataset
from labkit.tblogs import curve, read_scalars
from lesson_2.numpy_from_scratch.train_mnist import (
    SEED_HIDDEN_TO_OUTPUT, fit_line_by_finite_differences, flatten_images, forward_2_3_1,
    gradient_check, make_parser, time_gradient_methods, train)

args = cli.parse(make_parser(), [])
print(f"quick mode: {args.quick}, epochs: {args.epochs}, hidden units: {args.hidden_units}, "
      f"activation: {args.activation}")
"""),
    ("md", """
## 1. The forward pass of a 2-3-1 network

The input is (1, 1) and the target is 0. Each hidden unit adds up the inputs times its weights.
There are no biases. A sigmoid then squashes each sum into (0, 1), and the output unit adds up the
three squashed values times its own weights, with no activation. The squared difference from the
target is the error that training has to shrink.
"""),
    ("code", """
net = forward_2_3_1()
print(pd.DataFrame({"pre-activation": net["hidden_pre_activation"], "sigmoid": net["hidden"]},
                   index=["h1", "h2", "h3"]).round(4))
print(f"output {net['output']:.4f}, squared error {net['squared_error']:.4f}")
print(f"with the hidden values rounded to 2 decimals first, as the lesson does: "
      f"{np.round(net['hidden'], 2) @ SEED_HIDDEN_TO_OUTPUT:.4f}")
"""),
    ("md", """
The lesson reports 1.0 / 1.3 / 0.8, then 0.73 / 0.79 / 0.69, an output of 1.235 and an error of 1.52.
All of these agree with the printout to two decimals, with two catches. First, the lesson prints
sigmoid(1.3) as 0.78 in its list of activations, but it is 0.7858, and the lesson's own output sum
uses 0.79. Second, its 1.235 comes from adding up hidden values that were already rounded. At
full precision the output is 1.2332. The squared error rounds to 1.52 either way.
"""),
    ("md", """
## 2. Learning by nudging: fitting y = 3x with finite differences

Five points on the line y = 3x, and a model y = w x + b that starts at w = 2.269, b = 1.01. In every
epoch we move each weight by 1e-4 on its own, measure how much the mean squared error changes, and
divide by 1e-4. That gives the slope of the loss along that weight. Then both weights step against
their slopes, times a learning rate of 0.01. (The lesson says the answer is "2 and 0". It means 3 and 0.)
"""),
    ("code", """
w, b, line_losses = fit_line_by_finite_differences()
print(f"after 1000 epochs: w = {w:.5f}, b = {b:.5f}  (the lesson reports w = 2.99929, b = 0.00479)")

plt.figure(figsize=(6, 3))
plt.semilogy(line_losses)
plt.xlabel("epoch"); plt.ylabel("mean squared error"); plt.title("y = 3x, learned by nudging each weight")
plt.show()
"""),
    ("md", """
The lesson's printed figures are where this same procedure is after about 985 epochs. Its 1,000
epochs end a hair closer to (3, 0). The gap is well under 0.001 for w and 0.0004 for b.

## 3. Backpropagation, checked two ways

Nudging needs one forward pass per weight. Backpropagation gets every gradient from one forward
pass and one backward pass by applying the chain rule layer by layer, from the loss back to the
input. For our classifier (inputs x, hidden layer h = f(x W1 + b1), softmax over h W2 + b2, and
cross-entropy loss averaged over n images) it comes down to four lines:

* d loss / d logits = (softmax probabilities - one-hot labels) / n. This is why softmax and
  cross-entropy always come as a pair.
* dW2 = hᵀ · d logits, db2 = sum of d logits over the batch
* d hidden = d logits · W2ᵀ, then times f'(pre-activation): h (1 - h) for a sigmoid, 1 or 0 for a ReLU
* dW1 = xᵀ · d hidden, db1 = sum of d hidden over the batch

Is it right? We compare it with TensorFlow's automatic differentiation (`tf.GradientTape`) and with
central finite differences, on the same float64 weights and eight real training images.
"""),
    ("code", """
data = load_dataset(args.dataset, quick=args.quick)
images, labels = flatten_images(data.x_train[:8]), data.y_train[:8]
checks = pd.DataFrame([gradient_check(images, labels, activation) for activation in ("sigmoid", "relu")])
print(checks[["activation", "weights", "max_vs_gradient_tape", "max_vs_finite_differences"]].to_string())
assert (checks.max_vs_gradient_tape < 1e-5).all(), "backprop disagrees with GradientTape"
print("backprop agrees with GradientTape and with finite differences")
"""),
    ("md", """
A relative error near 1e-16 against GradientTape is float64 round-off, so the two compute the same
gradient. Against finite differences it is about 1e-10: a central difference is accurate only to
about nudge², and subtracting two nearly equal losses loses digits.

## 4. Why backprop is the one that scales

We time one full gradient both ways as the hidden layer grows. Nudging runs the forward pass once
for every weight, so its cost is (number of weights) × (cost of a forward pass). The forward pass
itself also grows with the number of weights, so the total grows with the square of the network's
size. Backprop costs about two forward passes whatever the size.
"""),
    ("code", """
sizes = (1, 2, 4, 8, 16) if args.quick else (1, 2, 4, 8, 16, 32, 64)
timing = time_gradient_methods(flatten_images(data.x_train[:16]), data.y_train[:16], sizes)
print(timing.to_string(float_format=lambda v: f"{v:.5f}"))

fig, ax = plt.subplots(figsize=(6, 4))
ax.loglog(timing.weights, timing.finite_difference_s, "o-", label="nudging each weight")
ax.loglog(timing.weights, timing.backprop_s, "o-", label="backpropagation")
ax.set_xlabel("weights in the network"); ax.set_ylabel("seconds for one gradient")
ax.legend(); ax.set_title("One gradient of a 784-h-10 network, 16 images")
plt.show()
"""),
    ("md", """
Each doubling of the weights doubles the nudging time. At these small sizes one forward pass costs
about the same at any size, so the growth here is just the count of passes. On a real network the
forward pass gets slower too, and the gap widens faster still. Backprop hardly moves, and the
"times slower" column grows in step with the number of weights. Hello-world MNIST nets have about
400,000 weights, which would be 400,000 forward passes for a single nudged gradient.

## 5. Training on digits: NumPy and Keras side by side

The NumPy network trains with mini-batch SGD. Then the same architecture is built in Keras (the
hello-world model at this hidden size), given the very same starting weights, and trained with
Keras's SGD at the same learning rate and batch size. Both runs write TensorBoard logs into sibling
folders of this activity, `numpy-...` and `keras-...`.
"""),
    ("code", """
runs = train(args)
runs.comparison
"""),
    ("code", """
fig, axes = plt.subplots(1, 2, figsize=(11, 4))
for session in (runs.numpy, runs.keras):
    scalars = read_scalars(session.run_dir)
    for ax, tag in zip(axes, ("epoch_accuracy", "epoch_loss")):
        curve(scalars, "validation", tag).iloc[:, 0].plot(ax=ax, marker="o", label=session.tag)
for ax, tag in zip(axes, ("validation accuracy", "validation loss")):
    ax.set_xlabel("epoch"); ax.set_title(tag); ax.legend()
plt.show()
print(f"TensorBoard overlays both: tensorboard --logdir \\"{runs.numpy.run_dir.parent}\\"")
"""),
    ("md", """
The two curves follow each other closely but do not coincide. They start from the same weights and
take the same kind of step, but each shuffles the mini-batches in its own order. On this small a
network NumPy is the faster one per epoch, by about 13 times on a 2-core CPU. Keras pays a fixed
cost on every step (and on its first epoch, where it traces the graph), and that cost matters less
once each step has real work in it. With `--hidden-units 512 --batch-size 128` the gap shrinks to
about 2 times. Speed is a trade-off: what Keras gives back is everything we wrote by hand above.

## Questions to explore

1. Change `nudge` in `fit_line_by_finite_differences` to 1e-1. Where does the fit end, and why is
   a big nudge biased? Then compare one slope at nudges 1e-4, 1e-8 and 1e-12 with the exact
   derivative, 2 · mean(x (wx + b - y)). Why are digits lost as the nudge shrinks?
2. Break the backward pass on purpose, for example drop the `/= n`. Which check catches it, and
   how big is the relative error then?
3. Train with `--activation sigmoid`. Why does it learn more slowly than ReLU at the same learning rate?
"""),
]

HELLO_KERAS = [
    ("md", """
# Hello world in Keras: reading handwritten digits with two Dense layers

The model, the compile step and the training all live in `train_mnist.py`. Here we train it and
then look at it: the learning curves TensorBoard recorded, the gap between training and test
accuracy, and what the model says about the first ten test images.
"""),
    ("code", """
import labkit  # first: keeps TensorFlow's start-up chatter out of the notebook
%matplotlib inline
import matplotlib.pyplot as plt

from labkit import cli
from labkit.tblogs import curve, read_scalars
from lesson_2.hello_keras.train_mnist import first_predictions, flatten_images, make_parser, train

args = cli.parse(make_parser(), [])
session = train(args)
session.model.summary()
"""),
    ("md", """
## Learning curves, read back from the TensorBoard logs
"""),
    ("code", """
scalars = read_scalars(session.run_dir)
accuracy = {split: curve(scalars, split, "epoch_accuracy").iloc[:, 0] for split in ("train", "validation")}
ax = accuracy["train"].plot(marker="o", label="training (averaged during each epoch)")
accuracy["validation"].plot(ax=ax, marker="o", label="validation")
ax.set_xlabel("epoch"); ax.set_ylabel("accuracy"); ax.legend(); plt.show()
"""),
    ("md", """
## Overfitting

The test set is data the model never saw. Scored again after training, the training images come
out better than the test images. That gap is overfitting, and the run records it in `run.json`
under `extra.overfitting`.
"""),
    ("code", """
gap = session.record.data["extra"]["overfitting"]
print(f"train accuracy {gap['train_accuracy']:.4f}, test accuracy {gap['test_accuracy']:.4f}, "
      f"gap {100 * gap['gap']:.1f} points")
"""),
    ("md", """
## The first ten test digits

`predict` returns ten probabilities per image, and they sum to 1. The predicted class is the
argmax, and its probability says how sure the model is.
"""),
    ("code", """
data = session.data
predictions = first_predictions(session.model, flatten_images(data.x_test), data.y_test, data.class_names)
print(predictions.to_string())
print(f"{predictions.correct.sum()} of 10 predictions match their labels")

fig, axes = plt.subplots(1, 10, figsize=(15, 2.2))
for ax, image, row in zip(axes, data.x_test[:10], predictions.itertuples()):
    ax.imshow(image[:, :, 0], cmap="gray_r")
    ax.set_title(f"{row.predicted} ({row.probability:.2f})\\nlabel {row.label}",
                 color="black" if row.correct else "red", fontsize=9)
    ax.axis("off")
plt.show()
"""),
    ("md", """
## Questions to explore

1. Train for 20 epochs (`--epochs 20`). What happens to the gap between training and test accuracy?
2. Make the hidden layer 32 units instead of 512 (edit `HIDDEN_UNITS`). How much accuracy do you
   lose, and how many fewer weights does the model have?
3. Look at a wrong prediction above. Is the model unsure (a low probability), or sure and wrong?
"""),
]

ANATOMY = [
    ("md", """
# Anatomy of a Keras model: layers, models, losses, optimizers

Every piece here is a function in `train_mnist.py`. We go through the four parts in order: two ways
to write the same model, which loss goes with which task (and what a wrong choice looks like), what
happens when layer shapes do not fit, and three optimizers racing on the same model.
"""),
    ("code", """
import labkit  # first: keeps TensorFlow's start-up chatter out of the notebook
%matplotlib inline
import matplotlib.pyplot as plt
import pandas as pd

from labkit import cli
from labkit.data import load_dataset
from labkit.tblogs import curve, read_scalars
from lesson_2.anatomy.train_mnist import (build_functional, build_sequential, compare_apis, flatten_images,
                                          loss_table, make_parser, shape_errors, train, wrong_pairings)

pd.set_option("display.max_colwidth", None)
args = cli.parse(make_parser(), [])
data = load_dataset(args.dataset, quick=args.quick)
"""),
    ("md", """
## Models: Sequential and Functional

The Sequential API takes a list of layers. The Functional API calls each layer on the tensor the
previous one returned and then names the inputs and outputs. For a plain stack the two give the
same network: same weights, same outputs.
"""),
    ("code", """
build_sequential().summary()
build_functional().summary()
check = compare_apis(flatten_images(data.x_val[:64]))
print(check)
assert check["sequential_parameters"] == check["functional_parameters"] and check["max_output_difference"] == 0
print("Same parameter count, and identical outputs once they share weights.")
"""),
    ("md", """
## Losses: one per kind of task

Each row trains the same small body (Dense 32, ReLU) with a different last layer and loss, then
scores it on the validation images. The last column is what a model that ignores the image would
score: the majority class, or the mean for a regression. Every row should beat it clearly.
"""),
    ("code", """
table = loss_table(data)
table
"""),
    ("md", """
Sparse and non-sparse categorical cross-entropy are the same loss. Only the labels are written
differently: `to_categorical` turns the integer 3 into the one-hot row `[0, 0, 0, 1, 0, 0, 0, 0, 0, 0]`.

### Wrong pairings, and what you see when you make one
"""),
    ("code", """
mistakes = wrong_pairings(data)
for row in mistakes.itertuples():
    print(f"{row.pairing}\\n    {row.symptom}\\n")
"""),
    ("md", """
The first two stop at once with a shape or rank error. The message names the target and output
shapes, and the fix is to match the labels to the loss (`to_categorical`, or the sparse loss).

The last two are worse, because they run. A softmax over a single unit always outputs 1.0, so the
"yes/no" model says yes to every image, and its accuracy stays at the share of yes labels. The loss
still falls, because Keras computes binary cross-entropy from the layer's pre-activation value, so
the loss curve looks healthy. Categorical cross-entropy on one unit divides the output by itself:
the loss is exactly 0 from the first step and nothing is learned. Keras only warns, and a warning
is easy to miss in a notebook. A loss of exactly 0, or an accuracy that never moves, is the sign.
"""),
    ("md", """
## Shapes: layers must fit together

A Dense layer returns (batch, units). When you stack Dense layers, Keras works out each layer's
input size for you. A Conv2D layer, though, needs (batch, height, width, channels), and a model
built for flat rows of 784 pixels cannot take 28x28 images.
"""),
    ("code", """
for case in shape_errors(data.x_val):
    print(f"{case['mistake']}:\\n    ValueError: {case['error']}\\n")
"""),
    ("md", """
Both messages say what Keras expected and what it got. "expected min_ndim=4, found ndim=2" means
the Conv2D layer wanted a 4-D tensor and received the Dense layer's 2-D output. A `Reshape`
layer could fold the 32 values into a tiny image, but the usual fix is to put the convolution first,
on the (28, 28, 1) images, and the Dense layers after it. The second message
compares the shape the model was built for, (None, 784), with the images, (4, 28, 28, 1):
flatten first.

## Optimizers: SGD vs RMSprop vs Adam

The same model trains three times, once per optimizer, at the same learning rate. Each run gets its
own folder next to the others, so TensorBoard draws all three, and so does the toolkit's log reader.
"""),
    ("code", """
runs = train(args, dataset=data)
scalars = pd.concat([read_scalars(session.run_dir).assign(run=name) for name, session in runs.sessions.items()])
fig, axes = plt.subplots(1, 2, figsize=(11, 4))
curve(scalars, "validation", "epoch_accuracy").plot(ax=axes[0], marker="o", title="validation accuracy")
curve(scalars, "train", "epoch_loss").plot(ax=axes[1], marker="o", title="training loss")
for ax in axes:
    ax.set_xlabel("epoch")
plt.show()
print(f'All three in TensorBoard: tensorboard --logdir "{runs.sessions["sgd"].run_dir.parent}"')
"""),
    ("md", """
At one shared learning rate, plain SGD lags. It moves every weight by the learning rate times its
gradient, and here the gradients are small. RMSprop divides each weight's step by the size of its
recent gradients, and Adam also adds momentum, so their steps stay useful. This is a comparison at
one step size, not a verdict on the optimizers.

## Questions to explore

1. Run `python lesson_2/anatomy/train_mnist.py --learning-rate 0.1`. Does SGD catch up? What happens to the other two?
2. Run it again with `--learning-rate 0.001`, RMSprop's usual setting. Which optimizer suffers most?
3. Make the "yes/no" model with `Dense(2, softmax)` and `sparse_categorical_crossentropy`. Is that also correct?
"""),
]


NOTEBOOKS = {"numpy_from_scratch": NUMPY_FROM_SCRATCH, "hello_keras": HELLO_KERAS, "anatomy": ANATOMY}


if __name__ == "__main__":
    write_notebooks(LESSON, NOTEBOOKS)
