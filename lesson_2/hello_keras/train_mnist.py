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
# # Lesson 2, Activity 2: hello world in Keras
#
# The classic first Keras program: two Dense layers learn to read handwritten digits. We build the
# model, compile it, train it, and then learn to read what it reports: the learning curves, the
# test accuracy, the gap between training and test accuracy (overfitting), and the probabilities
# behind each prediction.
#
# This file is both the script and the notebook (`train_mnist.ipynb` beside it holds the same
# cells, kept in step by jupytext):
#
# ```
# python lesson_2/hello_keras/train_mnist.py            # full run: 5 epochs
# python lesson_2/hello_keras/train_mnist.py --quick    # the same cells on a small slice, seconds
# python lesson_2/hello_keras/train_mnist.py --dataset fashion_mnist
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
# The lesson's: RMSprop (at its usual learning rate, 1e-3), batches of 128 images, 5 epochs. A
# script reads its flags here (`--help` lists them); a notebook takes these defaults.

# %%
from labkit import cli

parser = cli.build_parser(
    "Lesson 2, Keras hello world: two Dense layers learn to read handwritten digits.",
    epochs=5,
    learning_rate=1e-3,
    batch_size=128,
)
config = cli.parse(parser)
print(config.plan)

# %%
import keras
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from labkit.training import load_data, start_run

# %% [markdown]
# ## The data, as it arrives
#
# Before changing anything, the lesson looks at what it loaded: the shape of the image arrays and
# the labels. We do the same.

# %%
data = load_data(config)  # extra code: MNIST from the Keras cache or a mirror, else a labelled real substitute
for split, images in (("train", data.x_train), ("validation", data.x_val), ("test", data.x_test)):
    print(f"{split:>10} images: {images.shape}, {images.dtype}, values {images.min():g} to {images.max():g}")

# %% [markdown]
# Keras's `mnist.load_data()`, which the lesson calls, returns 60,000 training images as a `uint8`
# array of shape (60000, 28, 28), with values 0 to 255, and 10,000 test images shaped
# (10000, 28, 28). The lab's loader (`labkit.training.load_data`) hands the same images over in a
# different form, in three ways:
#
# 1. It holds out the first 5,000 training images for validation. On full MNIST that makes
#    55,000 + 5,000 = 60,000: the lesson's (60000, 28, 28), cut in two. (A `--quick` run keeps a
#    slice of each split, and `mnist_5k`, the offline substitute, is 5,000 digits in all.)
# 2. The pixels are already `float32` in [0, 1]: the lesson's `astype("float32") / 255` is done.
#    The raw `uint8` arrays are not kept, but x 255, rounded, gives their integers back exactly.
# 3. Each image has a last axis of size 1, its one grey channel, because a convolution layer
#    expects (height, width, channels). Every activity of the course gets the same format.

# %%
train_and_validation = len(data.x_train) + len(data.x_val)
print(
    f"train + validation = {len(data.x_train):,} + {len(data.x_val):,} = {train_and_validation:,} "
    f"images of {data.x_train.shape[1]}x{data.x_train.shape[2]}"
)
first_image = np.round(data.x_test[0, :, :, 0] * 255).astype("uint8")  # the integers a raw file holds
print(f"first test image x 255: {first_image.dtype} {first_image.shape}, {first_image.min()} to {first_image.max()}")

# %% [markdown]
# The labels are one integer per image, 0 to 9, stored as `uint8` as in the lesson. On full MNIST
# the lesson's `train_labels` starts 5, 0, 4: those three images are in our validation split now,
# since it took the first 5,000. Its `test_labels` starts 7, 2, 1, and so does ours. The counts per
# class show whether some digit is rare, which would let a model score well while ignoring it. In
# MNIST none is.

# %%
labels = {"train": data.y_train, "validation": data.y_val, "test": data.y_test}
for split, split_labels in labels.items():
    print(f"{split:>10} labels: {split_labels.dtype}, {len(split_labels):,} of them, first ten {split_labels[:10]}")
counts = pd.DataFrame(
    {split: np.bincount(split_labels, minlength=data.num_classes) for split, split_labels in labels.items()},
    index=pd.Index(data.class_names, name="class"),
)
print("images per class:")
print(counts.T.to_string())

# %% [markdown]
# ## Flat rows for the Dense layers
#
# A Dense layer reads one flat vector per sample, so each image becomes a row of 784 pixel values,
# as the lesson's `reshape((60000, 28 * 28))` does. The 2-D layout of the pixels is thrown away
# here. A convolutional network keeps it: Lesson 1's Exercise A
# (`lesson_1/exercise_a/train_mnist.py`) reads the (28, 28, 1) images with a Conv2D layer, and so
# does the Inception block of this lesson's Functional API activity.

# %%
x_train, y_train = data.x_train.reshape(len(data.x_train), -1), data.y_train
x_valid, y_valid = data.x_val.reshape(len(data.x_val), -1), data.y_val
x_test, y_test = data.x_test.reshape(len(data.x_test), -1), data.y_test

print("train:", x_train.shape, y_train.shape, "| valid:", x_valid.shape, "| test:", x_test.shape)
print("pixels:", x_train.dtype, x_train.min(), "to", x_train.max(), "| first labels:", y_train[:10])

# %% [markdown]
# Every run gets a folder of its own: TensorBoard's logs, a `run.json` with the settings and the
# results, and at the end the trained model.

# %%
run = start_run(config, data)  # extra code: a new run folder; seeds every random generator

# %% [markdown]
# ## The model
#
# A Dense layer of 512 ReLU units turns the row of pixels into a new representation, and a
# softmax layer turns that into ten class probabilities that sum to 1.

# %%
model = keras.Sequential(
    [
        keras.Input(shape=(784,), name="pixels"),
        keras.layers.Dense(512, activation="relu", name="hidden"),
        keras.layers.Dense(data.num_classes, activation="softmax", name="class_probabilities"),
    ],
    name="hello_world_mlp",
)

# %%
model.summary()

# %% [markdown]
# ## Compile
#
# Compiling fixes the three things training needs: an optimizer (RMSprop), a loss (sparse
# categorical cross-entropy, because the labels are plain integers 0-9) and a metric to watch
# (accuracy).

# %%
model.compile(
    optimizer=keras.optimizers.RMSprop(learning_rate=config.learning_rate),
    loss="sparse_categorical_crossentropy",
    metrics=["accuracy"],
)

# %% [markdown]
# ## Train, with TensorBoard watching
#
# In the notebook, open TensorBoard before training: it shows this activity's runs, and the new
# one's points appear while it trains (reload with the button at its top right). From a terminal:
# `tensorboard --logdir runs/lesson_2/hello_keras`.

# %%
# %load_ext tensorboard

# %%
runs_folder = run.dir.parent
# %tensorboard --logdir "$runs_folder"

# %% [markdown]
# The TensorBoard callback writes the curves. The lab's callbacks come after it: they keep
# `run.json` up to date and save a backup for `--resume` at the end of an epoch (of every few, when
# epochs are short, so that saving costs at most 2% of the training).

# %%
tensorboard = keras.callbacks.TensorBoard(log_dir=run.dir)
history = model.fit(
    run.batches(x_train, y_train),  # extra code: shuffled batches of 128
    epochs=run.epochs,
    steps_per_epoch=run.steps_per_epoch,
    validation_data=(x_valid, y_valid),
    callbacks=[tensorboard, *run.callbacks(tensorboard)],
)

# %% [markdown]
# The lesson prints the log of its first epoch: loss 0.2524, accuracy 0.9273. Those are the
# lesson's figures, from an older Keras, over all 60,000 training images (60,000 / 128 = 469
# steps, the last one short) and with no validation set. Here is our first epoch, from `history`,
# with the validation scores the lesson did not ask for. A `--quick` run, cut to a few steps per
# epoch, is far from the lesson's figures here.

# %%
if history.epoch[:1] == [0]:  # a resumed run's history starts later
    epoch_1 = {name: float(history.history[name][0]) for name in ("loss", "accuracy", "val_loss", "val_accuracy")}
    run.record.add_extra("epoch_1", epoch_1)  # extra code: into run.json
    print(
        f"epoch 1 here ({run.steps_per_epoch or 'all'} steps of {config.batch_size}): "
        + ", ".join(f"{name} {value:.4f}" for name, value in epoch_1.items())
    )
else:
    print(f"this process resumed the run; the log of epoch 1 is in {run.dir / 'epochs.log'}")
print("epoch 1 in the lesson (469 steps of 128): loss 0.2524, accuracy 0.9273")

# %%
pd.DataFrame(history.history)[["accuracy", "val_accuracy"]].plot(
    marker="o", xlabel="epoch", ylabel="accuracy", title="Training (averaged during each epoch) and validation"
)
plt.show()

# %% [markdown]
# ## Evaluate: the test set, and overfitting
#
# The test set is data the model never saw.

# %%
test_metrics = model.evaluate(x_test, y_test, return_dict=True, verbose=0)
run.record_test(test_metrics)  # extra code: into run.json and TensorBoard's `test` run
test_metrics

# %% [markdown]
# The training accuracy that `fit` prints is averaged over an epoch while the weights were still
# moving. Scoring the finished model on its own training images is the fair comparison, and they
# come out better than the test images. That gap is overfitting.

# %%
train_accuracy = model.evaluate(x_train, y_train, batch_size=512, return_dict=True, verbose=0)["accuracy"]
gap = {
    "train_accuracy": train_accuracy,
    "test_accuracy": test_metrics["accuracy"],
    "gap": train_accuracy - test_metrics["accuracy"],
}
run.record.add_extra("overfitting", gap)  # extra code: into run.json
print(
    f"Overfitting: train accuracy {gap['train_accuracy']:.4f} vs test "
    f"{gap['test_accuracy']:.4f}, a gap of {100 * gap['gap']:.1f} points"
)

# %% [markdown]
# ## Predict: the first ten test digits
#
# `predict` returns ten probabilities per image, and they sum to 1. The predicted class is the
# argmax, and its probability says how sure the model is.

# %%
probabilities = model.predict(x_test[:10], verbose=0)
predicted = probabilities.argmax(axis=1)
predictions = pd.DataFrame(
    {
        "label": [data.class_names[i] for i in y_test[:10]],
        "predicted": [data.class_names[i] for i in predicted],
        "probability": probabilities.max(axis=1).round(4),
        "correct": predicted == y_test[:10],
    }
)
print(predictions.to_string())
print(f"{predictions.correct.sum()} of 10 predictions match their labels")

# %% [markdown]
# The lesson then looks at one row of that array: `predictions[0]`, the ten probabilities for the
# first test digit. Its model gives index 7 a probability of 0.99999106 (the lesson's figure) and
# every other digit almost nothing, and the label is indeed 7. Here the array is called
# `probabilities`.

# %%
first = probabilities[0]
print("probabilities for the first test digit:")
print(np.array2string(first, formatter={"float_kind": lambda v: f"{v:.2e}"}))
print(
    f"argmax {first.argmax()} with probability {first.max():.5f}; label {y_test[0]} "
    "(the lesson: argmax 7, probability 0.99999106, label 7)"
)
run.record.add_extra(  # extra code: into run.json
    "first_test_digit",
    {"probabilities": first.tolist(), "predicted": int(first.argmax()), "label": int(y_test[0])},
)

# %%
fig, axes = plt.subplots(1, 10, figsize=(15, 2.2))
for ax, image, row in zip(axes, data.x_test[:10], predictions.itertuples(), strict=False):
    ax.imshow(image[:, :, 0], cmap="gray_r")
    ax.set_title(f"{row.predicted} ({row.probability:.2f})\nlabel {row.label}", color="black" if row.correct else "red")
    ax.axis("off")
plt.show()

# %%
run.finish(model)  # extra code: saves model.keras in the run folder; run.json says "finished"

# %% [markdown]
# ## Questions to explore
#
# 1. Train for 20 epochs (`--epochs 20`). What happens to the training accuracy, the test accuracy
#    and the gap between them?
# 2. Make the hidden layer 32 units instead of 512. How many weights does the model lose (see
#    `model.summary()`), and how much accuracy?
# 3. Find a prediction with a low probability. Is the model unsure about digits a person finds hard
#    too? Is a wrong prediction unsure, or sure and wrong?
# 4. Why is the loss sparse categorical cross-entropy and not categorical cross-entropy? What would
#    you change to use the other one? (The anatomy activity shows what happens if you mix them up.)
