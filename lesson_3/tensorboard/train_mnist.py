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
# # Lesson 3: TensorBoard in depth
#
# TensorBoard beyond the loss curve, in three parts. Each writes its runs side by side under
# `runs/lesson_3/tensorboard/`, so that one TensorBoard shows them all:
#
# 1. **Learning rates**: the same regression network trained at learning rate 0.001 and at 0.05.
#    Their loss curves on one chart are how you compare runs.
# 2. **Summaries by hand**: the `tf.summary` API without Keras: a scalar, a histogram, images,
#    text and audio, each of which lights up its own tab.
# 3. **Every dashboard**: the Fashion-MNIST classifier trained with the TensorBoard callback's
#    options switched on, a callback of our own that draws a confusion matrix each epoch, and what
#    Keras 3 no longer writes (the op graph, a projector it can read) from `labkit.dashboards`.
#
# This file is both the script and the notebook (`train_mnist.ipynb` beside it holds the same
# cells, kept in step by jupytext):
#
# ```
# python lesson_3/tensorboard/train_mnist.py                     # all three parts, about a minute on a laptop CPU
# python lesson_3/tensorboard/train_mnist.py --quick             # the same cells on small slices, seconds
# python lesson_3/tensorboard/train_mnist.py --part summaries    # one part only (a notebook runs all three)
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
# The classifier's, as in the lesson that built it: SGD at 0.01, batches of 32; 5 epochs here,
# enough for every dashboard to move. The learning-rate pair trains 30 epochs each. A script reads
# its flags here (`--help` lists them); a notebook takes these defaults.

# %%
from labkit import cli

PARTS = ("learning-rates", "summaries", "dashboards")
parser = cli.build_parser(
    "Lesson 3, TensorBoard in depth: compare runs, write summaries by hand, and use every dashboard.",
    epochs=5,
    learning_rate=0.01,
    batch_size=32,
    default_dataset="fashion_mnist",
    several_runs="a regression pair, a tf.summary run and a deep-dive run",
)
parser.add_argument(
    "--part",
    choices=("all", *PARTS),
    default="all",
    help="run one part only (default: all three); --epochs, --learning-rate and --dataset apply to the dashboards part",
)
parser.add_argument(
    "--regression-epochs",
    type=cli.positive_int,
    default=30,
    help="epochs of each learning-rate run (default 30, as in the chapter)",
)
config = cli.parse(parser)
parts = PARTS if config.part == "all" else (config.part,)
print("parts:", ", ".join(parts))
print(config.plan)

# %%
import dataclasses
import io
import json
import math

import keras
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import tensorflow as tf

from labkit.dashboards import (
    OpGraph,
    Projector,
    WeightHistograms,
    confusion_counts,
    confusion_matrix_figure,
    figure_to_image,
    misclassified_figure,
    read_images,
    start_summary_run,
)
from labkit.distribute import clear_session, writes_runs
from labkit.tabular import load_regression_data
from labkit.tblogs import curve, read_scalars, steps_of
from labkit.training import load_data, start_run
from lesson_3.models import fashion_mlp, regression_mlp

# %% [markdown]
# Start TensorBoard on this activity's runs folder (`runs/lesson_3/tensorboard` unless you set
# `--logdir` or `LAB_RUNS_DIR`). Each run appears as soon as it has written something; the reload
# button at the top right refreshes the page at once. From a terminal:
# `python3 scripts/lab.py tensorboard runs/lesson_3/tensorboard`.

# %%
# %load_ext tensorboard

# %%
runs_folder = config.runs_root / config.lesson / config.activity
# %tensorboard --logdir "$runs_folder"

# %% [markdown]
# ## Part 1: two learning rates, side by side
#
# The regression network of this lesson (Dense 30 ReLU, Dense 1, from `lesson_3/models.py`) on
# California housing, or on scikit-learn's bundled diabetes set where housing is not on the
# machine (said in one line). Both runs start from the same initial weights (each run seeds every
# generator) and see the same batches in the same order; only the step size differs. In
# TensorBoard, open the Scalars tab, type `regression` in the run filter and look at `epoch_loss`.

# %%
COMPARED_LEARNING_RATES = (1e-3, 5e-2)  # the two runs of the chapter's figure 10-17

if "learning-rates" in parts:
    table = load_regression_data(limits=config.plan.slice)  # extra code: housing, else diabetes
    print("train:", table.x_train.shape, "| valid:", table.x_val.shape, "| test:", table.x_test.shape)
else:
    print("Part 1 skipped: --part", config.part)

# %%
if "learning-rates" in parts:
    rate_runs = {}
    for rate in COMPARED_LEARNING_RATES:
        rate_config = dataclasses.replace(
            config, learning_rate=rate, epochs=config.regression_epochs, steps_per_epoch=None
        )
        clear_session()  # extra code: nothing but the data carries over from one run to the next
        run = start_run(rate_config, table, tag="regression")
        model = regression_mlp(table.num_features)
        model.compile(
            optimizer=keras.optimizers.SGD(learning_rate=rate),
            loss="mse",
            metrics=[keras.metrics.RootMeanSquaredError(name="rmse")],
        )
        tensorboard = keras.callbacks.TensorBoard(log_dir=run.dir)
        model.fit(
            run.batches(table.x_train, table.y_train),
            epochs=run.epochs,
            steps_per_epoch=run.steps_per_epoch,
            validation_data=(table.x_val, table.y_val),
            callbacks=[tensorboard, *run.callbacks(tensorboard)],
            verbose=0,  # the curves are in TensorBoard and in the plot below
        )
        run.record_test(model.evaluate(table.x_test, table.y_test, return_dict=True, verbose=0))
        run.finish(model)
        rate_runs[rate] = run.dir

# %% [markdown]
# The same two curves, read back from the event files that TensorBoard reads.

# %%
if "learning-rates" in parts:
    fig, ax = plt.subplots(figsize=(8, 5))
    for rate, folder in rate_runs.items():
        loss = curve(read_scalars(folder), "train", "epoch_loss")
        ax.plot(loss.index, loss.iloc[:, 0], marker="o", label=f"learning rate {rate:g}")
    ax.set(xlabel="epoch", ylabel="training loss (MSE)", title=f"Regression MLP on {table.name}")
    ax.legend()
    plt.show()

# %% [markdown]
# ## Part 2: summaries written by hand
#
# Keras's callback is one writer of summaries among others. The API underneath: open a writer on
# a folder, make it the default, and call `tf.summary.scalar`, `histogram`, `image`, `text` or
# `audio` with a `step`. One writer, one step axis, five kinds of summary; each kind lights up its
# own tab. The scalar gets every step. TensorBoard would sample the others down anyway (to 500
# histograms, and to 10 images, texts or audio clips per tag), so they are written less often.

# %%
SUMMARY_STEPS = 1000
HISTOGRAM_EVERY = 10  # a histogram costs about 5 ms here; 100 of them show the drift well
MEDIA_EVERY = 100  # images, text and audio: TensorBoard keeps only 10 of each per tag
SAMPLE_RATE = 48_000  # audio samples per second

# Under --distribute multiworker only the chief writes this part: it trains nothing.
summaries_here = "summaries" in parts and writes_runs(config)
if summaries_here:
    summary_run = start_summary_run(
        config,
        tag="summaries",
        hparams={"steps": SUMMARY_STEPS, "seed": config.seed},
        source="signals generated on this page: a sine, normal samples, random pixels, pure tones",
    )
    writer = summary_run.open_writer()  # tf.summary.create_file_writer on the run's folder, closed with the run
elif "summaries" in parts:
    print("Part 2 skipped on this worker: the chief of --distribute multiworker writes it")
else:
    print("Part 2 skipped: --part", config.part)

# %%
if summaries_here:
    rng = np.random.default_rng(config.seed)
    seconds = tf.range(SAMPLE_RATE, dtype=tf.float32) / SAMPLE_RATE  # one second of time
    with writer.as_default():
        for step in range(1, SUMMARY_STEPS + 1):
            tf.summary.scalar("sin", math.sin(step / 10), step=step)
            if step % HISTOGRAM_EVERY:
                continue
            # Mean 2 x step / 100 and spread step / 100: the histogram slides right and widens.
            drifting = rng.normal(loc=2.0, scale=1.0, size=1000) * step / 100
            tf.summary.histogram("drifting_normal", drifting, buckets=50, step=step)
            if step % MEDIA_EVERY:
                continue
            images = rng.random((2, 32, 32, 3)) * step / SUMMARY_STEPS  # later steps are brighter
            tf.summary.image("random_images", images, step=step)
            tf.summary.text("step_text", [f"This is step {step}.", f"Its square is {step**2:,}."], step=step)
            tone = 0.5 * tf.sin(2 * math.pi * step * seconds)  # a pure tone of `step` hertz
            tf.summary.audio("tone", tf.reshape(tone, [1, -1, 1]), sample_rate=SAMPLE_RATE, step=step)

# %% [markdown]
# The scalar read back from the event file: `sin(step / 10)` at every step from 1 to 1000. In
# TensorBoard, find the run whose name starts with `summaries` and visit Histograms
# (`drifting_normal` slides right and spreads out as the step grows), Images (`random_images`,
# brighter at later steps), Text (`step_text`) and Audio (`tone`: one second at 48 kHz, whose
# pitch is the step in hertz).

# %%
if summaries_here:
    writer.flush()
    sine = read_scalars(summary_run.dir)
    sine = sine[sine.tag == "sin"]
    print(f"{len(sine)} points, steps {steps_of(sine, '.', 'sin')[0]} to {steps_of(sine, '.', 'sin')[-1]}")
    sine.plot(x="step", y="value", legend=False, figsize=(8, 3), title="the `sin` scalar")
    plt.show()

    summary_run.record.add_extra(
        "summaries",
        {
            "steps": SUMMARY_STEPS,
            "histogram_every": HISTOGRAM_EVERY,
            "media_every": MEDIA_EVERY,
            "sample_rate": SAMPLE_RATE,
            "audio_seconds": 1.0,
        },
    )
    summary_run.finish()  # extra code: run.json says "finished"

# %% [markdown]
# ## Part 3: every dashboard on one classifier
#
# The Fashion-MNIST classifier of this lesson (Flatten, Dense 300 ReLU, Dense 100 ReLU, Dense 10
# softmax, from `lesson_3/models.py`). The run is short on purpose: the dashboards are the point
# here, not the accuracy.

# %%
if "dashboards" in parts:
    data = load_data(config)  # extra code: Fashion-MNIST from the Keras cache, else a labelled real substitute
    x_train, y_train = data.x_train, data.y_train
    x_valid, y_valid = data.x_val, data.y_val
    x_test, y_test = data.x_test, data.y_test
    class_names = data.class_names
    print("train:", x_train.shape, y_train.shape, "| valid:", x_valid.shape, "| test:", x_test.shape)
    print("classes:", ", ".join(class_names))
else:
    print("Part 3 skipped: --part", config.part)

# %%
if "dashboards" in parts:
    clear_session()  # extra code: layer names start again at `dense`, as in the lesson that built it
    run = start_run(config, data, tag="dashboards")
    model = fashion_mlp(data.num_classes)
    model.summary()
    model.compile(
        optimizer=keras.optimizers.SGD(learning_rate=config.learning_rate),
        loss="sparse_categorical_crossentropy",
        metrics=["accuracy"],
    )

# %% [markdown]
# ### The TensorBoard callback's options
#
# - `histogram_freq=1`: every layer's weights as a histogram each epoch (Histograms and
#   Distributions), in the `train` run, one chart per weight (`sequential/dense/kernel/histogram`).
# - `write_graph=True`: the model's conceptual graph (Graphs, run `train`, tag `keras`). With
#   TensorFlow 2.0 this was the op graph; in Keras 3 it is the layers only.
# - `write_images=True` would also draw each weight matrix as an image; `update_freq=N` would log
#   the training scalars every N batches instead of once per epoch.
# - `profile_batch=(10, 20)` would profile batches 10 to 20 for the Profile tab, which needs the
#   separate `tensorboard-plugin-profile` package; 0 leaves the profiler off.
# - `embeddings_freq` saves Keras 3 `.weights.h5` files, which the projector cannot read (it
#   shows "no data"), and only for `Embedding` layers: 0 here, and `Projector` below instead.

# %%
if "dashboards" in parts:
    tensorboard = keras.callbacks.TensorBoard(
        log_dir=run.dir,
        histogram_freq=1,
        write_graph=True,
        write_images=False,
        update_freq="epoch",
        profile_batch=0,
        embeddings_freq=0,
    )

# %% [markdown]
# ### A callback of our own: the confusion matrix, each epoch
#
# Any callback can write summaries. This one scores the test images after each epoch and logs two
# pictures to `<run>/images` (Images tab): the confusion matrix (rows: true class, columns:
# predicted) and the first 25 test images the model gets wrong. `tf.summary.image` takes a batch of
# pixels, so each matplotlib figure is turned into one.


# %%
class ConfusionMatrixImages(keras.callbacks.Callback):
    def __init__(self, run, x, y, class_names):
        super().__init__()
        self.run, self.x, self.y, self.class_names = run, x, y, list(class_names)

    def on_train_begin(self, logs=None):
        self.writer = self.run.open_writer("images")  # tf.summary.create_file_writer, closed with the run

    def on_epoch_end(self, epoch, logs=None):
        predicted = self.model.predict(self.x, batch_size=512, verbose=0).argmax(axis=1)
        counts = confusion_counts(self.y, predicted, len(self.class_names))
        accuracy = np.trace(counts) / len(self.y)
        title = f"epoch {epoch}: {len(self.y):,} test images, accuracy {accuracy:.3f}"
        matrix = confusion_matrix_figure(counts, self.class_names, title)
        wrong = misclassified_figure(self.x, self.y, predicted, self.class_names, f"epoch {epoch}: misclassified")
        with self.writer.as_default():
            tf.summary.image("confusion_matrix", figure_to_image(matrix), step=epoch)
            tf.summary.image("misclassified", figure_to_image(wrong), step=epoch)
        self.writer.flush()
        # extra code: the same counts as numbers in run.json, so that a notebook or a test can check the picture
        self.run.record.add_extra(
            "confusion_matrix", {"epoch": epoch, "classes": self.class_names, "counts": counts.tolist()}
        )


# %% [markdown]
# ### What Keras 3 no longer writes
#
# `labkit.dashboards` adds three callbacks, each writing a folder of its own in the run:
# `OpGraph` traces one forward pass through a `tf.function` (Graphs, run `graph`, tag
# `forward_pass`); `WeightHistograms` logs the same weights as `histogram_freq` with tags such as
# `dense/kernel` that keep layers apart on every Keras 3 release (run `weights`); `Projector`
# saves what the last hidden layer makes of 1,000 test images as a checkpoint the projector can
# read (run `embedding`).

# %%
if "dashboards" in parts:
    dashboards = [
        ConfusionMatrixImages(run, x_test, y_test, class_names),
        OpGraph(run, x_test[:1]),
        WeightHistograms(run),
        Projector(run, x_test, y_test, class_names, layer=model.layers[-2]),
    ]
    history = model.fit(
        run.batches(x_train, y_train),  # extra code: shuffled batches of 32
        epochs=run.epochs,
        steps_per_epoch=run.steps_per_epoch,
        validation_data=(x_valid, y_valid),
        callbacks=[tensorboard, *dashboards, *run.callbacks(tensorboard)],
    )

# %%
if "dashboards" in parts:
    test_metrics = model.evaluate(x_test, y_test, return_dict=True, verbose=0)
    run.record_test(test_metrics)  # extra code: into run.json and TensorBoard's `test` run
    print(json.dumps({"test": test_metrics, "projector": run.record.data["extra"]["projector"]}, indent=2))

# %% [markdown]
# The confusion matrix after the last epoch, as numbers, then as the picture the Images tab
# shows (read back from the event file).

# %%
if "dashboards" in parts:
    confusion = run.record.data["extra"]["confusion_matrix"]
    counts = pd.DataFrame(confusion["counts"], index=confusion["classes"], columns=confusion["classes"])
    print(counts.to_string())

    step, png = read_images(run.dir / "images", "confusion_matrix")[-1]
    fig, ax = plt.subplots(figsize=(7, 7))
    ax.imshow(plt.imread(io.BytesIO(png), format="png"))
    ax.axis("off")
    plt.show()

# %% [markdown]
# The projector's files: a checkpoint with one 2-D variable (one row per test image), the labels
# in `metadata.tsv`, and the thumbnails in `sprite.png`. In TensorBoard, pick Projector from the
# menu at the top right, choose the `embedding` run, and colour the points by `class`.

# %%
if "dashboards" in parts:
    print((run.dir / "embedding" / "projector_config.pbtxt").read_text())
    print("\n".join((run.dir / "embedding" / "metadata.tsv").read_text().splitlines()[:6]))
    run.finish(model)  # extra code: saves model.keras in the run folder; run.json says "finished"

# %% [markdown]
# ## Questions to explore
#
# 1. Add 0.2 and 0.5 to `COMPARED_LEARNING_RATES`. Where does the loss stop falling, or blow up?
#    The chapter's rule of thumb puts the best rate at about half the rate at which training
#    diverges.
# 2. In the Histograms tab, the biases of every layer start as one spike at 0. Which layer's
#    weights change the most over the epochs, and which hardly move? Try `--part dashboards --epochs 15`.
# 3. Which two classes does the confusion matrix mix up most? Find them in the projector: do their
#    points overlap?
# 4. Change the `sin` scalar to `sin(step / 100)`. What does TensorBoard's smoothing slider do to it?
# 5. Why does the op graph show MatMul and BiasAdd where `model.summary()` shows one Dense layer?
