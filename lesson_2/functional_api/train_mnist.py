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
# # Lesson 2: the Functional API, networks that are not a stack
#
# A `Sequential` model is a line of layers: one tensor goes in, passes every layer in turn, and
# comes out. With the Functional API you call layers on tensors yourself, so one tensor can feed
# two layers, two tensors can merge, and a model can take several inputs and give several outputs:
# any graph of layers without a cycle. Three parts, each trained into sibling run folders under
# `runs/lesson_2/functional_api/`:
#
# 1. **Topologies**, on handwritten digits: a model with two inputs and two outputs, then a model
#    built around an Inception-style block of parallel convolutions.
# 2. **Wide & Deep**, on Lesson 3's regression data: the input reaches the output by a short and a
#    long path; then with two inputs; then with a second, auxiliary output.
# 3. **Subclassing**: the same Wide & Deep written as a subclass of `keras.Model`, saved and
#    loaded back.
#
# This file is both the script and the notebook (`train_mnist.ipynb` beside it holds the same
# cells, kept in step by jupytext):
#
# ```
# python lesson_2/functional_api/train_mnist.py                   # all three parts, about 20 s on a laptop CPU
# python lesson_2/functional_api/train_mnist.py --quick           # the same cells on small slices, seconds
# python lesson_2/functional_api/train_mnist.py --part wide-deep  # one part only (a notebook runs all three)
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
# The image models train with Adam at 0.001, batches of 128, for 5 epochs. The regression models
# keep the chapter's settings: SGD at 0.001, batches of 32, 20 epochs. A script reads its flags
# here (`--help` lists them); a notebook takes these defaults.

# %%
import dataclasses

from labkit import cli

PARTS = ("topologies", "wide-deep", "subclassing")
parser = cli.build_parser(
    "Lesson 2, the Functional API: two inputs and two heads, an Inception block, Wide & Deep, subclassing.",
    epochs=5,
    learning_rate=1e-3,
    batch_size=128,
    several_runs="one run per model",
)
parser.add_argument(
    "--part",
    choices=("all", *PARTS),
    default="all",
    help="run one part only (default: all three); --epochs, --learning-rate, --batch-size and --dataset apply "
    "to the image models of the topologies part",
)
parser.add_argument(
    "--regression-epochs",
    type=cli.positive_int,
    default=20,
    help="epochs of each Wide & Deep run (default 20, as in the chapter)",
)
config = cli.parse(parser)
parts = PARTS if config.part == "all" else (config.part,)
# The chapter's regression settings: SGD at 0.001, batches of 32, one pass over the data per epoch.
regression_config = dataclasses.replace(
    config, learning_rate=1e-3, batch_size=32, epochs=config.regression_epochs, steps_per_epoch=None
)
print("parts:", ", ".join(parts))
print("images:", config.plan)
print("regression:", regression_config.plan)

# %%
import keras
import numpy as np
import pandas as pd

from labkit.distribute import clear_session
from labkit.figures import plot_model
from labkit.tabular import load_regression_data
from labkit.training import load_data, start_run

# %% [markdown]
# Open TensorBoard before training: it shows this activity's runs, and each new one appears while
# it trains (reload with the button at its top right). Each head of a model gets its own curves:
# `epoch_digit_accuracy`, `epoch_even_loss`, `epoch_main_loss`, `epoch_aux_loss`... From a
# terminal: `python3 scripts/lab.py tensorboard runs/lesson_2/functional_api`.

# %%
# %load_ext tensorboard

# %%
runs_folder = config.runs_root / config.lesson / config.activity
# %tensorboard --logdir "$runs_folder"

# %% [markdown]
# ## Part 1: two inputs and two heads
#
# The image goes in through one input. Its ink profile goes in through a second one: the share of
# ink in each of the 28 rows and each of the 28 columns, 56 numbers. It is computed from the image,
# so it adds nothing new; it stands for the data that often arrives next to an image (a scanner's
# settings, a form's fields) and enters the model separately. Two heads come out: which digit
# (softmax over 10) and "is it even" (one sigmoid). A model with named inputs and outputs takes
# and gives dictionaries, keyed by those names.


# %%
def ink_profile(images):
    """The share of ink in each of the 28 rows and the 28 columns of each image: 56 numbers."""
    return np.concatenate([images.mean(axis=(2, 3)), images.mean(axis=(1, 3))], axis=1).astype("float32")


def image_inputs(images):
    return {"image": images, "profile": ink_profile(images)}


def image_targets(labels):
    return {"digit": labels.astype("int64"), "even": (labels % 2 == 0).astype("float32")}


# %%
if "topologies" in parts:
    data = load_data(config)  # extra code: MNIST from the Keras cache or a mirror, else a labelled real substitute
    x_train, y_train = image_inputs(data.x_train), image_targets(data.y_train)
    x_valid, y_valid = image_inputs(data.x_val), image_targets(data.y_val)
    x_test, y_test = image_inputs(data.x_test), image_targets(data.y_test)

    print("inputs:", {name: array.shape for name, array in x_train.items()})
    print("targets:", {name: array.shape for name, array in y_train.items()}, "| first labels:", data.y_train[:6])
    print("valid:", len(data.y_val), "| test:", len(data.y_test))
else:
    print("Part 1 skipped: --part", config.part)

# %% [markdown]
# Each branch is built by calling layers on tensors. `concatenate` joins the two branches; after
# it, one shared layer feeds both heads.


# %%
def two_heads_model(num_classes=10):
    image = keras.Input(shape=(28, 28, 1), name="image")
    profile = keras.Input(shape=(56,), name="profile")
    pixels = keras.layers.Dense(64, activation="relu", name="pixels")(keras.layers.Flatten()(image))
    side = keras.layers.Dense(16, activation="relu", name="side")(profile)
    merged = keras.layers.concatenate([pixels, side], name="merge")  # the two branches join here
    shared = keras.layers.Dense(64, activation="relu", name="shared")(merged)
    digit = keras.layers.Dense(num_classes, activation="softmax", name="digit")(shared)
    even = keras.layers.Dense(1, activation="sigmoid", name="even")(shared)
    return keras.Model(
        inputs={"image": image, "profile": profile}, outputs={"digit": digit, "even": even}, name="two_heads"
    )


# %% [markdown]
# Every run gets a folder of its own: TensorBoard's logs, a `run.json` with the settings and the
# results, and at the end the trained model. The model is built after the run starts (which seeds
# every random generator). Its summary has a "Connected to" column: which layer feeds which.

# %%
if "topologies" in parts:
    run = start_run(config, data, tag="two_heads")  # extra code: a new run folder; seeds every random generator
    model = two_heads_model(data.num_classes)
    model.summary()

# %%
# keras.utils.plot_model, drawn under the cell in a notebook (the `if` keeps a script's --part choice)
plot_model(model, run.dir / "two_heads.png") if "topologies" in parts else None

# %% [markdown]
# One loss and one metric per head, keyed by the output's name. The loss that training lowers is
# their weighted sum: digit loss + 0.5 x even loss.

# %%
if "topologies" in parts:
    model.compile(
        optimizer=keras.optimizers.Adam(learning_rate=config.learning_rate),
        loss={"digit": "sparse_categorical_crossentropy", "even": "binary_crossentropy"},
        loss_weights={"digit": 1.0, "even": 0.5},
        metrics={"digit": ["accuracy"], "even": ["accuracy"]},
    )

# %% [markdown]
# The TensorBoard callback writes the curves. The lab's callbacks come after it: they keep
# `run.json` up to date and save a backup for `--resume` (at an epoch's end, when it costs at most
# 2% of the training since the last).

# %%
if "topologies" in parts:
    tensorboard = keras.callbacks.TensorBoard(log_dir=run.dir)
    history = model.fit(
        run.batches(x_train, y_train),  # extra code: shuffled batches of 128 (dictionaries in, dictionaries out)
        epochs=run.epochs,
        steps_per_epoch=run.steps_per_epoch,
        validation_data=(x_valid, y_valid),
        callbacks=[tensorboard, *run.callbacks(tensorboard)],
    )

# %% [markdown]
# `evaluate` returns the weighted total loss, each head's own loss, and each head's accuracy.

# %%
results = {}  # extra code: each run's test scores, for the table at the end
if "topologies" in parts:
    test_metrics = model.evaluate(x_test, y_test, return_dict=True, verbose=0)
    run.record_test(test_metrics)  # extra code: into run.json and TensorBoard's `test` run
    run.record.add_extra("parameters", model.count_params())
    print({name: round(value, 4) for name, value in test_metrics.items()})

    predicted = model.predict({name: array[:8] for name, array in x_test.items()}, verbose=0)
    print("digit predicted:", predicted["digit"].argmax(axis=1), "| true:", data.y_test[:8])
    print("even predicted: ", (predicted["even"][:, 0] > 0.5).astype(int), "| true:", y_test["even"][:8].astype(int))
    run.finish(model)  # extra code: saves model.keras in the run folder; run.json says "finished"
    results["two_heads"] = {"parameters": model.count_params(), **test_metrics}

# %% [markdown]
# ## An Inception-style block
#
# Four branches read the same feature maps: a 1x1 convolution; a 1x1 then a 3x3; a 1x1 then a 5x5;
# a 3x3 max pooling then a 1x1. With `padding="same"` and stride 1 they all keep the height and
# width, so their outputs can be stacked along the channel axis: 4 x 8 = 32 channels. A strided
# stem first halves the image to 13x13, to keep the CPU time low.


# %%
def inception_block(x, filters=8):
    one = keras.layers.Conv2D(filters, 1, padding="same", activation="relu")(x)
    three = keras.layers.Conv2D(filters, 1, padding="same", activation="relu")(x)
    three = keras.layers.Conv2D(filters, 3, padding="same", activation="relu")(three)
    five = keras.layers.Conv2D(filters, 1, padding="same", activation="relu")(x)
    five = keras.layers.Conv2D(filters, 5, padding="same", activation="relu")(five)
    pooled = keras.layers.MaxPooling2D(3, strides=1, padding="same")(x)
    pooled = keras.layers.Conv2D(filters, 1, padding="same", activation="relu")(pooled)
    return keras.layers.concatenate([one, three, five, pooled], axis=-1, name="inception")


def inception_model(num_classes=10):
    image = keras.Input(shape=(28, 28, 1), name="image")
    x = keras.layers.Conv2D(16, 3, strides=2, activation="relu", name="stem")(image)  # 28x28 -> 13x13
    x = keras.layers.MaxPooling2D(2)(inception_block(x))
    x = keras.layers.Flatten()(x)
    outputs = keras.layers.Dense(num_classes, activation="softmax", name="digit")(x)
    return keras.Model(image, outputs, name="inception")


# %%
if "topologies" in parts:
    clear_session()  # extra code: a fresh Keras session for the next model (labkit's keeps a --distribute scope)
    run = start_run(config, data, tag="inception")
    model = inception_model(data.num_classes)
    model.summary()

# %%
plot_model(model, run.dir / "inception.png") if "topologies" in parts else None

# %% [markdown]
# One input and one output again, so one loss, and plain arrays in and out.

# %%
if "topologies" in parts:
    model.compile(
        optimizer=keras.optimizers.Adam(learning_rate=config.learning_rate),
        loss="sparse_categorical_crossentropy",
        metrics=["accuracy"],
    )
    tensorboard = keras.callbacks.TensorBoard(log_dir=run.dir)
    history = model.fit(
        run.batches(data.x_train, data.y_train),
        epochs=run.epochs,
        steps_per_epoch=run.steps_per_epoch,
        validation_data=(data.x_val, data.y_val),
        callbacks=[tensorboard, *run.callbacks(tensorboard)],
    )

# %%
if "topologies" in parts:
    test_metrics = model.evaluate(data.x_test, data.y_test, return_dict=True, verbose=0)
    run.record_test(test_metrics)
    run.record.add_extra("parameters", model.count_params())
    run.finish(model)
    results["inception"] = {"parameters": model.count_params(), **test_metrics}

# %% [markdown]
# ## Sharing: one layer, or a whole model, called twice
#
# A layer object owns its weights. Call the same layer on two tensors and both calls use the same
# weights; in training, the gradients of both calls add up in that one set. This is *layer
# sharing*. Chollet's chapter names it, with model sharing and several inputs or outputs, among the
# architectures Keras supports beyond a plain stack. It fits two inputs of the same kind that
# should be read the same way: two sentences to compare, two photos of faces, two digits.
#
# Here one Dense(16) layer, `profile_reader`, reads the ink profiles (Part 1's 56 numbers) of two
# images, and a Dense(1, sigmoid) on top could learn to say whether they show the same digit. The
# summary lists `profile_reader` once, connected to both inputs, and `count_params` counts its
# weights once.


# %%
def shared_layer_model(n_features=56, units=16):
    first = keras.Input(shape=(n_features,), name="first")
    second = keras.Input(shape=(n_features,), name="second")
    reader = keras.layers.Dense(units, activation="relu", name="profile_reader")  # one layer, one set of weights...
    both = keras.layers.concatenate([reader(first), reader(second)], name="both")  # ...called on two inputs
    same = keras.layers.Dense(1, activation="sigmoid", name="same_digit")(both)
    return keras.Model({"first": first, "second": second}, same, name="shared_layer")


def branch_outputs(model, merge_layer, inputs):
    """What reaches `merge_layer` (a concatenate) from each branch: its output, cut in two halves."""
    merged = keras.Model(model.input, model.get_layer(merge_layer).output).predict(inputs, verbose=0)
    half = merged.shape[1] // 2
    return merged[:, :half], merged[:, half:]


# %%
if "topologies" in parts:
    shared = shared_layer_model()
    shared.summary()
    reader, head = shared.get_layer("profile_reader"), shared.get_layer("same_digit")
    print(
        f"shared_layer: {shared.count_params():,} parameters = profile_reader {reader.count_params():,} "
        f"(counted once) + same_digit {head.count_params():,}; "
        f"two separate readers would make {2 * reader.count_params() + head.count_params():,}"
    )
    # The same image through both inputs: the two branches give the very same 16 numbers.
    profiles = ink_profile(data.x_test[:8])
    left, right = branch_outputs(shared, "both", {"first": profiles, "second": profiles})
    print(f"same profile into both inputs: largest difference between the two branches {np.abs(left - right).max():g}")

# %% [markdown]
# *Model sharing* goes one step further. A whole model can be called like a layer: on a new
# input it adds its layers, with their weights, to the new model. A siamese network does this:
# one `encoder` model (Flatten, then Dense(32)) reads both images of a pair, and a head compares
# the two codes. The encoder appears in the summary as a single layer with two connections, and its
# 25,120 weights are counted once.


# %%
def image_encoder(units=32):
    image = keras.Input(shape=(28, 28, 1), name="image")
    code = keras.layers.Dense(units, activation="relu", name="code")(keras.layers.Flatten()(image))
    return keras.Model(image, code, name="encoder")


def siamese_model(encoder):
    left = keras.Input(shape=(28, 28, 1), name="left")
    right = keras.Input(shape=(28, 28, 1), name="right")
    codes = keras.layers.concatenate([encoder(left), encoder(right)], name="codes")  # one model, two calls
    same = keras.layers.Dense(1, activation="sigmoid", name="same_digit")(codes)
    return keras.Model({"left": left, "right": right}, same, name="siamese")


# %%
if "topologies" in parts:
    encoder = image_encoder()
    siamese = siamese_model(encoder)
    siamese.summary()
    print(
        f"siamese: {siamese.count_params():,} parameters = encoder {encoder.count_params():,} (counted once) "
        f"+ same_digit {siamese.get_layer('same_digit').count_params():,}"
    )
    # Each branch is the encoder itself: its codes for the left and the right images.
    left, right = branch_outputs(siamese, "codes", {"left": data.x_test[:8], "right": data.x_test[8:16]})
    encoder_gap = max(
        np.abs(left - encoder.predict(data.x_test[:8], verbose=0)).max(),
        np.abs(right - encoder.predict(data.x_test[8:16], verbose=0)).max(),
    )
    print(f"each branch against the encoder alone: largest difference {encoder_gap:g}")

# %% [markdown]
# ## Part 2: Wide & Deep
#
# The chapter's regression data: California housing (8 features per district, the median house
# value in units of $100,000), or, where it is not on the machine, scikit-learn's bundled diabetes
# set (10 features, the target divided by 100), said in one line. The features are scaled on the
# training rows.

# %%
if "wide-deep" in parts or "subclassing" in parts:
    table = load_regression_data(limits=regression_config.plan.slice)  # extra code: housing, else diabetes
    x_train, y_train = table.x_train, table.y_train
    x_valid, y_valid = table.x_val, table.y_val
    x_test, y_test = table.x_test, table.y_test
    # The score to beat: always predict the training rows' mean.
    training_mean_mse = float(np.mean((y_test - y_train.mean()) ** 2))

    print("train:", x_train.shape, y_train.shape, "| valid:", x_valid.shape, "| test:", x_test.shape)
    print("features:", ", ".join(table.feature_names))
    print(f"test MSE of always predicting the training mean: {training_mean_mse:.4f}")
else:
    print("Part 2 skipped: --part", config.part)

# %% [markdown]
# Wide & Deep lets the input take two routes to the output: straight (wide), where simple
# patterns pass untouched, and through two Dense(30, ReLU) layers (deep). `concatenate` joins them
# before the last Dense(1).

# %%
UNITS = 30  # the chapter's deep path: two Dense(30, ReLU) layers


def deep_path(x, units=UNITS):
    hidden = keras.layers.Dense(units, activation="relu", name="hidden1")(x)
    return keras.layers.Dense(units, activation="relu", name="hidden2")(hidden)


def wide_deep_model(n_features):
    features = keras.Input(shape=(n_features,), name="features")
    merged = keras.layers.concatenate([features, deep_path(features)], name="wide_and_deep")
    output = keras.layers.Dense(1, name="output")(merged)
    return keras.Model(features, output, name="wide_deep")


# %%
if "wide-deep" in parts:
    clear_session()
    run = start_run(regression_config, table, tag="wide_deep")
    model = wide_deep_model(table.num_features)
    model.summary()

# %%
plot_model(model, run.dir / "wide_deep.png") if "wide-deep" in parts else None

# %% [markdown]
# Every regression run compiles the same way: mean squared error as the loss, plain SGD, and the
# root of the MSE as a metric (an error in the target's own units).

# %%
if "wide-deep" in parts:
    model.compile(
        optimizer=keras.optimizers.SGD(learning_rate=regression_config.learning_rate),
        loss="mse",
        metrics=[keras.metrics.RootMeanSquaredError(name="rmse")],
    )
    tensorboard = keras.callbacks.TensorBoard(log_dir=run.dir)
    history = model.fit(
        run.batches(x_train, y_train),
        epochs=run.epochs,
        steps_per_epoch=run.steps_per_epoch,
        validation_data=(x_valid, y_valid),
        callbacks=[tensorboard, *run.callbacks(tensorboard)],
        verbose=0,  # the curves are in TensorBoard; one line per run below
    )

# %%
if "wide-deep" in parts:
    test_metrics = model.evaluate(x_test, y_test, return_dict=True, verbose=0)
    run.record_test(test_metrics)
    run.record.add_extra("parameters", model.count_params())
    run.record.add_extra("training_mean_mse", training_mean_mse)
    print(f"wide_deep: {model.count_params():,} parameters, test MSE {test_metrics['loss']:.4f}")
    run.finish(model)
    results["wide_deep"] = {"parameters": model.count_params(), **test_metrics}

# %% [markdown]
# ### Two inputs
#
# Now some features go wide and some deep, and the two sets may overlap: features 0-4 go wide,
# features 2 onwards go deep (2-7 on housing). The model takes a dictionary with one array per
# input.

# %%
WIDE = slice(0, 5)  # the features that go wide
DEEP = slice(2, None)  # the features that go deep


def split_features(x):
    return {"wide": x[:, WIDE], "deep": x[:, DEEP]}


def two_inputs_model(n_wide, n_deep, auxiliary=False):
    """`auxiliary` adds a second output, `aux`, on the deep path alone."""
    wide = keras.Input(shape=(n_wide,), name="wide")
    deep = keras.Input(shape=(n_deep,), name="deep")
    hidden = deep_path(deep)
    main = keras.layers.Dense(1, name="main")(keras.layers.concatenate([wide, hidden], name="wide_and_deep"))
    if not auxiliary:
        return keras.Model({"wide": wide, "deep": deep}, main, name="two_inputs")
    aux = keras.layers.Dense(1, name="aux")(hidden)
    return keras.Model({"wide": wide, "deep": deep}, {"main": main, "aux": aux}, name="auxiliary")


# %%
if "wide-deep" in parts:
    n_wide, n_deep = split_features(x_train)["wide"].shape[1], split_features(x_train)["deep"].shape[1]
    print(f"{n_wide} features go wide, {n_deep} go deep")
    clear_session()
    run = start_run(regression_config, table, tag="two_inputs")
    model = two_inputs_model(n_wide, n_deep)
    model.summary()

# %%
plot_model(model, run.dir / "two_inputs.png") if "wide-deep" in parts else None

# %%
if "wide-deep" in parts:
    model.compile(
        optimizer=keras.optimizers.SGD(learning_rate=regression_config.learning_rate),
        loss="mse",
        metrics=[keras.metrics.RootMeanSquaredError(name="rmse")],
    )
    tensorboard = keras.callbacks.TensorBoard(log_dir=run.dir)
    history = model.fit(
        run.batches(split_features(x_train), y_train),
        epochs=run.epochs,
        steps_per_epoch=run.steps_per_epoch,
        validation_data=(split_features(x_valid), y_valid),
        callbacks=[tensorboard, *run.callbacks(tensorboard)],
        verbose=0,
    )
    test_metrics = model.evaluate(split_features(x_test), y_test, return_dict=True, verbose=0)
    run.record_test(test_metrics)
    run.record.add_extra("parameters", model.count_params())
    run.record.add_extra("training_mean_mse", training_mean_mse)
    print(f"two_inputs: {model.count_params():,} parameters, test MSE {test_metrics['loss']:.4f}")
    run.finish(model)
    results["two_inputs"] = {"parameters": model.count_params(), **test_metrics}

# %% [markdown]
# ### An auxiliary output
#
# A second output on the deep path alone asks the deep part to be useful on its own: a
# regularizer. Each output gets its own loss (both MSE here) and the total is weighted 0.9 to 0.1.
# The targets are a dictionary too: both outputs predict the same value.


# %%
def main_and_aux(y):
    return {"main": y, "aux": y}


# %%
if "wide-deep" in parts:
    clear_session()
    run = start_run(regression_config, table, tag="auxiliary")
    model = two_inputs_model(n_wide, n_deep, auxiliary=True)
    model.summary()

# %%
plot_model(model, run.dir / "auxiliary.png") if "wide-deep" in parts else None

# %%
if "wide-deep" in parts:
    model.compile(
        optimizer=keras.optimizers.SGD(learning_rate=regression_config.learning_rate),
        loss={"main": "mse", "aux": "mse"},
        loss_weights={"main": 0.9, "aux": 0.1},
        metrics={
            "main": [keras.metrics.RootMeanSquaredError(name="rmse")],
            "aux": [keras.metrics.RootMeanSquaredError(name="rmse")],
        },
    )
    tensorboard = keras.callbacks.TensorBoard(log_dir=run.dir)
    history = model.fit(
        run.batches(split_features(x_train), main_and_aux(y_train)),
        epochs=run.epochs,
        steps_per_epoch=run.steps_per_epoch,
        validation_data=(split_features(x_valid), main_and_aux(y_valid)),
        callbacks=[tensorboard, *run.callbacks(tensorboard)],
        verbose=0,
    )

# %% [markdown]
# With two outputs, `evaluate` returns the weighted total and each output's own loss; the total
# is 0.9 x main + 0.1 x aux. We score the test set in one batch: Keras 3 averages each output's
# own loss over the batches without weighting a shorter last batch, which would put the two
# sides of that sum apart.

# %%
if "wide-deep" in parts:
    test_metrics = model.evaluate(
        split_features(x_test), main_and_aux(y_test), batch_size=len(y_test), return_dict=True, verbose=0
    )
    run.record_test(test_metrics)
    total, main, aux = test_metrics["loss"], test_metrics["main_loss"], test_metrics["aux_loss"]
    weighted_sum = 0.9 * main + 0.1 * aux
    print(f"evaluate(): total {total:.4f}, main {main:.4f}, aux {aux:.4f}; 0.9 x main + 0.1 x aux = {weighted_sum:.4f}")
    run.record.add_extra("parameters", model.count_params())
    run.record.add_extra("training_mean_mse", training_mean_mse)
    run.record.add_extra("losses", {"total": total, "main": main, "aux": aux, "weighted_sum": weighted_sum})
    run.finish(model)
    results["auxiliary"] = {"parameters": model.count_params(), **test_metrics}

# %% [markdown]
# ### Parameter counts, from the layer sizes alone
#
# A Dense layer from n inputs to m units holds n x m weights and m biases. Building a model needs
# only its input shapes, not the data: so we can check the chapter's counts on California
# housing's 8 features (1,239, 1,176 and 1,207) even where the data itself is missing.


# %%
def dense_parameters(n_in, n_out):
    return n_in * n_out + n_out


def parameters_from_sizes(n_features, units=UNITS):
    n_wide, n_deep = len(range(n_features)[WIDE]), len(range(n_features)[DEEP])
    deep = dense_parameters(units, units)  # hidden2; hidden1 depends on its input
    return {
        "wide_deep": dense_parameters(n_features, units) + deep + dense_parameters(n_features + units, 1),
        "two_inputs": dense_parameters(n_deep, units) + deep + dense_parameters(n_wide + units, 1),
        "auxiliary": dense_parameters(n_deep, units)
        + deep
        + dense_parameters(n_wide + units, 1)
        + dense_parameters(units, 1),
    }


# %%
if "wide-deep" in parts:
    on_housing = {
        "wide_deep": wide_deep_model(8).count_params(),
        "two_inputs": two_inputs_model(5, 6).count_params(),
        "auxiliary": two_inputs_model(5, 6, auxiliary=True).count_params(),
    }
    assert on_housing == parameters_from_sizes(8), on_housing
    print("On 8 features: {:,}, {:,} and {:,} parameters, as the layer sizes say.".format(*on_housing.values()))
    print(f"On this data's {table.num_features} features:", parameters_from_sizes(table.num_features))

# %% [markdown]
# ## Part 3: the Subclassing API
#
# The auxiliary Wide & Deep again, as a subclass of `keras.Model`: the layers are made in
# `__init__` and wired together in `call`, which is plain Python and could hold loops or `if`s.
# `get_config` and the registration decorator let Keras save the model as a `.keras` file and
# build it again when loading.


# %%
@keras.saving.register_keras_serializable(package="lab")  # load_model finds the class by this name
class WideAndDeepModel(keras.Model):
    def __init__(self, units=UNITS, activation="relu", **kwargs):
        super().__init__(**kwargs)
        self.units, self.activation = units, activation
        self.hidden1 = keras.layers.Dense(units, activation=activation)
        self.hidden2 = keras.layers.Dense(units, activation=activation)
        self.main_output = keras.layers.Dense(1)
        self.aux_output = keras.layers.Dense(1)

    def call(self, inputs):
        hidden = self.hidden2(self.hidden1(inputs["deep"]))
        main = self.main_output(keras.layers.concatenate([inputs["wide"], hidden]))
        return {"main": main, "aux": self.aux_output(hidden)}

    def get_config(self):  # what a .keras file needs to call __init__ again
        return {**super().get_config(), "units": self.units, "activation": self.activation}


# %% [markdown]
# The price of that freedom: until the model is called on data, Keras knows neither its input
# shapes nor its weights. `summary()` does not fail, but every layer is unbuilt.

# %%
if "subclassing" in parts:
    clear_session()
    run = start_run(regression_config, table, tag="subclassed")
    model = WideAndDeepModel(units=UNITS, activation="relu", name="wide_and_deep")
    model.summary()  # no error, but every layer is unbuilt and its output shape is "?"
    print(f"Before the first call: built={model.built}, {len(model.weights)} weight arrays")
else:
    print("Part 3 skipped: --part", config.part)

# %% [markdown]
# One call on a row of data creates the weights. Even then the summary has no "Connected to"
# column, and there is no graph of layers to inspect or to draw: `call` is code, not a graph.

# %%
if "subclassing" in parts:
    model(split_features(x_train[:1]))
    model.summary()
    print(f"After one call: built={model.built}, {model.count_params():,} parameters")
    try:
        print(model.inputs)
    except AttributeError as error:
        print(f"No layer graph to inspect: {error}")

# %% [markdown]
# Compiling and training are the same as for the functional model.

# %%
if "subclassing" in parts:
    model.compile(
        optimizer=keras.optimizers.SGD(learning_rate=regression_config.learning_rate),
        loss={"main": "mse", "aux": "mse"},
        loss_weights={"main": 0.9, "aux": 0.1},
        metrics={
            "main": [keras.metrics.RootMeanSquaredError(name="rmse")],
            "aux": [keras.metrics.RootMeanSquaredError(name="rmse")],
        },
    )
    tensorboard = keras.callbacks.TensorBoard(log_dir=run.dir)
    history = model.fit(
        run.batches(split_features(x_train), main_and_aux(y_train)),
        epochs=run.epochs,
        steps_per_epoch=run.steps_per_epoch,
        validation_data=(split_features(x_valid), main_and_aux(y_valid)),
        callbacks=[tensorboard, *run.callbacks(tensorboard)],
        verbose=0,
    )
    test_metrics = model.evaluate(
        split_features(x_test), main_and_aux(y_test), batch_size=len(y_test), return_dict=True, verbose=0
    )
    run.record_test(test_metrics)
    total, main, aux = test_metrics["loss"], test_metrics["main_loss"], test_metrics["aux_loss"]
    run.record.add_extra("parameters", model.count_params())
    run.record.add_extra("training_mean_mse", training_mean_mse)
    run.record.add_extra("losses", {"total": total, "main": main, "aux": aux, "weighted_sum": 0.9 * main + 0.1 * aux})
    results["subclassed"] = {"parameters": model.count_params(), **test_metrics}

# %% [markdown]
# ### Saving and loading it back
#
# `model.save("....keras")` keeps everything: the class name, `get_config`, the weights. Loading
# calls `__init__` with that config, then fills in the weights. `save_weights("....weights.h5")`
# keeps the weights alone: to load them, build the same model and call it once first.

# %%
if "subclassing" in parts:
    model.save(run.dir / "wide_and_deep.keras")
    model.save_weights(run.dir / "wide_and_deep.weights.h5")

    reloaded = keras.models.load_model(run.dir / "wide_and_deep.keras")
    twin = WideAndDeepModel(units=model.units, activation=model.activation)
    sample = split_features(x_test[:64])
    twin(sample)  # a subclassed model has no weights until it is called once
    twin.load_weights(run.dir / "wide_and_deep.weights.h5")

    before = model.predict(sample, verbose=0)["main"]
    saving = {
        "reloaded_class": type(reloaded).__name__,
        "reloaded_max_difference": float(np.max(np.abs(reloaded.predict(sample, verbose=0)["main"] - before))),
        "weights_only_max_difference": float(np.max(np.abs(twin.predict(sample, verbose=0)["main"] - before))),
        "files": ["wide_and_deep.keras", "wide_and_deep.weights.h5"],
    }
    run.record.add_extra("saving", saving)
    print("Saving the subclassed model:", saving)
    run.finish(model)

# %% [markdown]
# ## All the runs
#
# The functional auxiliary model and the subclassed one are the same network: each is built right
# after its run seeds Keras, and they create the same layers in the same order, so they start from
# the same weights and take the same steps. Their test scores agree to the last digit.

# %%
pd.DataFrame(results).T.round(4)

# %% [markdown]
# ## Questions to explore
#
# 1. Set the `even` loss weight to 0. Does the digit head gain or lose accuracy?
# 2. Remove the wide path from `wide_deep_model`. How many parameters are left, and does the test
#    MSE change?
# 3. Delete `get_config` from `WideAndDeepModel` and run Part 3 again. What does loading say?
# 4. On diabetes, 20 epochs are only 160 SGD steps. Run `--part wide-deep --regression-epochs 100`:
#    do the models beat the training mean now?
# 5. Train the siamese pair on pairs of digits labelled "same" or "different". Do the encoder's
#    codes of two 7s end up closer than those of a 7 and a 1?
