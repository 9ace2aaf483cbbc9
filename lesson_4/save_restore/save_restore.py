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
# # Lesson 4, Save and restore: one trained model, three files
#
# A trained network is only useful if you can keep it. Keras 3 gives three ways to save one:
#
# * `model.keras` holds the architecture, the weights, the compile settings and, if you save a
#   compiled model, the optimizer's state. Load it with `keras.models.load_model`; use it to carry
#   on training or to share a model with Keras users.
# * `model.weights.h5` holds the weights alone. Rebuild the model from its code, then call
#   `model.load_weights`; use it for checkpoints and transfer learning.
# * `export/` is a TensorFlow SavedModel: a graph of the forward pass with its weights. Load it with
#   `tf.saved_model.load(path).serve(x)`; use it for serving (TF Serving, other languages).
#
# We save the network that a Lesson 1 Exercise A run trained all three ways, load each back, and
# check that every copy predicts the same on the same test images. Then we train a little further
# from each Keras copy, to see what each one kept of the training.
#
# This file is both the script and the notebook (`save_restore.ipynb` beside it holds the same
# cells, kept in step by jupytext):
#
# ```
# python lesson_4/save_restore/save_restore.py                 # the newest Lesson 1 Exercise A run
# python lesson_4/save_restore/save_restore.py --run RUN_DIR   # any finished run with a model.keras
# python lesson_4/save_restore/save_restore.py --quick         # 200 test images, each copy loaded once
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
# Each copy is loaded three times and the median load time kept (once with `--quick`), and scored
# on the test images the source run was scored on (the first 200 with `--quick`).

# %%
from labkit import LabError, cli

parser = cli.OneLineParser(
    description="Lesson 4, Save and restore: save a trained model three ways, load each back, compare.",
    epilog="See this folder's README.md.",
)
parser.add_argument(
    "--run",
    metavar="RUN_DIR",
    help="a finished run whose model.keras to save (default: the newest of Lesson 1, Exercise A)",
)
parser.add_argument(
    "--quick", action="store_true", help="compare on 200 test images, load each copy once (or LAB_QUICK=1)"
)
parser.add_argument("--logdir", help="root folder for runs (default: $LAB_RUNS_DIR or runs/ in the repo)")
parser.add_argument("--verbose", action="store_true", help="show TensorFlow's own INFO/WARNING logs")
config = cli.parse(parser)

images_to_compare = 200 if config.quick else None  # None: all the test images the source run was scored on
load_repeats = 1 if config.quick else 3
BATCH_SIZE = 256  # one batch size for every copy, so that each sees the very same batches
SERVING_TOLERANCE = 1e-6  # a SavedModel runs TensorFlow's own graph: allowed to differ by rounding only
fine_tune_images = 500 if config.quick else 5000  # a short epoch of further training from each copy
FINE_TUNE_BATCH = 100  # Lesson 1's batch size

# %% [markdown]
# ## The model to save
#
# Every finished Keras run of the course saved its model as `<run>/model.keras`, with a model card
# beside it. We take the newest finished Lesson 1 Exercise A run, or the run `--run` names. If there
# is none yet, this cell says so in one line: run `python lesson_1/exercise_a/train_mnist.py` first
# (about 4 minutes on full MNIST; `--quick` for about 15 seconds).

# %%
from labkit.saved_models import find_model

source_path, source = find_model(  # extra code: checks the folder, says in one line what is wrong
    config.runs_root, "lesson_1", "exercise_a", run_dir=config.run
)
source_dir = source_path.parent.resolve()
print("Model to save:", source_path)
print("trained on", source["dataset"]["name"], "| test accuracy", source["metrics"]["test"].get("accuracy"))

# %%
import copy
import statistics
import tempfile
import time
from pathlib import Path

import keras
import numpy as np
import pandas as pd
import tensorflow as tf

from labkit.data import load_dataset
from labkit.lifecycle import RunLifecycle
from labkit.runs import RunRecord, create_run_dir
from labkit.saved_models import model_card, read_card, size_on_disk, stored_bytes, write_card

if not config.verbose:  # extra code: each reloaded model traces its own predict function, as intended here
    tf.get_logger().addFilter(
        lambda entry: (
            not any(text in entry.getMessage() for text in ("triggered tf.function retracing", "Assets written to"))
        )
    )

# %% [markdown]
# ## The test images
#
# The ones the source run was scored on: its run.json names the data and how many test images it used.

# %%
described = source.get("dataset") or {}
test_count = (described.get("sizes") or {}).get("test")
if not described.get("name") or not test_count:  # extra code: a run of an image activity names both
    raise LabError(f"run {source.get('run_name')}: its run.json names no dataset with a test split")
data = load_dataset(described["name"])
if len(data.x_test) < test_count:
    raise LabError(f"{data.name} here has {len(data.x_test)} test images; the run was scored on {test_count}")
keep = min(test_count, images_to_compare or test_count)
images, labels = data.x_test[:keep], data.y_test[:keep]
print("images:", images.shape, images.dtype, "| labels:", labels.shape)

# %% [markdown]
# ## Load the trained model
#
# `keras.models.load_model` reads a `.keras` file back: the architecture, the weights and the
# compile settings. The lab saved Lesson 1's run without its optimizer's state, which only training
# needs (while the run trained, its `backup/` folder kept it), so Keras compiles a fresh Adam and
# warns that it skipped the optimizer's variables. Its predictions are the reference every copy
# must match.

# %%
model = keras.models.load_model(source_path)
model.summary()

inputs = model.inputs or []
if len(inputs) != 1 or tuple(inputs[0].shape[1:]) != images.shape[1:]:  # extra code: one image in
    shapes = [tuple(i.shape[1:]) for i in inputs]
    raise LabError(f"--run {source_dir}: its model takes inputs {shapes}, not one image of shape {images.shape[1:]}")

reference = model.predict(images, batch_size=BATCH_SIZE, verbose=0)
print("original model's accuracy on these images:", float(np.mean(reference.argmax(axis=1) == labels)))

# %% [markdown]
# Like every activity, it keeps a run folder of its own, for the three copies,
# their cards and a `run.json` with the results (status `running`, then `finished`, `failed` or
# `interrupted`, however it ends).

# %%
# extra code: the run folder and its run.json (labkit.lifecycle marks it failed or interrupted if a cell fails)
hparams = {"dataset": data.name, "images": len(images), "load_repeats": load_repeats, "source": source["run_name"]}
run_dir = create_run_dir(
    config.runs_root / config.lesson / config.activity, hparams, tag="quick" if config.quick else None
)
record = RunRecord(
    run_dir,
    lesson=config.lesson,
    activity=config.activity,
    hparams=hparams,
    # The source run's own words for its data: a substitute for MNIST stays labelled as one.
    dataset={**data.describe(), **source["dataset"], "sizes": {"test": len(images)}},
    quick=config.quick,
)
run = RunLifecycle(run_dir, record)
run.say(f"Run folder: {run_dir}")

# %% [markdown]
# ## Save it three ways
#
# **1. The whole model**: architecture, weights, compile settings and the optimizer's state in one
# zip, enough to resume training. `model.save` on a compiled model keeps all of it: here Adam's
# slots are new (step 0), since Lesson 1's file left them out.

# %%
model.save(run_dir / "model.keras")

# %% [markdown]
# **2. The weights alone**: only the numbers in the layers. A trap: Keras 3's `save_weights` on a
# *compiled* model writes its optimizer state too. So we save them from an uncompiled twin built
# from the model's config. (`get_config()` leaves the compile settings out; `to_json()` keeps
# them, and `model_from_json` would hand back a compiled twin, optimizer included.)

# %%
twin = keras.Model.from_config(model.get_config())
twin.set_weights(model.get_weights())
twin.save_weights(run_dir / "model.weights.h5")

# %% [markdown]
# **3. A SavedModel for serving**: a TensorFlow graph whose `serve` function is the forward pass.
# Inference only.

# %%
model.export(run_dir / "export", format="tf_saved_model", verbose=False)

# %% [markdown]
# ## A model card beside each copy
#
# `<name>.card.json`: where the model came from (the source run folder, its data and where the
# data came from), how well it did, how it was trained, with which library versions, a SHA-256
# fingerprint of the saved bytes, and a note on what the file holds, measured inside it.

# %%
saved = {"keras": run_dir / "model.keras", "weights": run_dir / "model.weights.h5", "savedmodel": run_dir / "export"}
contents = {kind: stored_bytes(path) for kind, path in saved.items()}
layers, optimizer = contents["keras"]["layers"], contents["keras"].get("optimizer", 0)
keras_story = (
    f"The .keras file is {(layers + optimizer) / layers:.1f}x the weights alone: {layers / 1e6:.1f} MB of "
    f"weights and {optimizer / 1e6:.1f} MB of optimizer state (Adam keeps two moment slots, m and v, per weight, "
    "plus its step counter and learning rate)."
)
copies = round(sum(contents["savedmodel"].values()) / layers, 2)
export_story = f"The export stores each weight {({1: 'once', 2: 'twice'}).get(copies, f'{copies:g} times')}: " + (
    ", ".join(f"{name} {size / 1e6:.1f} MB" for name, size in sorted(contents["savedmodel"].items())) + "."
)
notes = {
    "keras": "The whole model; load with keras.models.load_model, and training can resume. " + keras_story,
    "weights": f"The weights alone ({contents['weights']['layers'] / 1e6:.1f} MB): no architecture, no optimizer. "
    "Rebuild the model (from code or keras.Model.from_config) and call load_weights. Saved from an uncompiled twin: "
    "Keras 3's save_weights writes a compiled model's optimizer state too. " + keras_story,
    "savedmodel": "A TensorFlow SavedModel for serving: tf.saved_model.load(path).serve(images). Inference only: "
    "keras.models.load_model cannot read it in Keras 3, keras.layers.TFSMLayer can. " + export_story,
}
for kind, path in saved.items():
    card = model_card(path, source_dir, model=model, saved_as=kind, record=source)
    card.update(notes=notes[kind], saved_by=str(run_dir.resolve()))
    write_card(path, card)
record.add_extra("stored_bytes", contents)
print(keras_story, export_story)

# %% [markdown]
# ## Load each copy back
#
# Each format has its own way back. The weights file holds no architecture: code (here the
# model's config) must rebuild the model first. `tf.saved_model.load` gives no Keras model, only a
# TensorFlow object with the `serve` function on it; `keras.layers.TFSMLayer` wraps the same
# folder as an inference-only Keras layer.


# %%
def load_whole():
    return keras.models.load_model(run_dir / "model.keras")


def load_weights_into_fresh_model():
    # Same layers, fresh random weights, then the saved ones. from_config consumes parts of the
    # dict it is given (Keras 3.15: a second call with the same dict builds no model): a copy.
    fresh = keras.Model.from_config(copy.deepcopy(model_config))
    fresh.load_weights(run_dir / "model.weights.h5")
    return fresh


def load_served():
    return tf.saved_model.load(str(run_dir / "export"))


def load_as_keras_layer():
    return keras.layers.TFSMLayer(str(run_dir / "export"), call_endpoint="serve")


def predict_keras(loaded):
    return loaded.predict(images, batch_size=BATCH_SIZE, verbose=0)


def in_batches(forward):
    """`forward` on BATCH_SIZE images at a time, as predict does."""
    return np.concatenate([np.asarray(forward(images[i : i + BATCH_SIZE])) for i in range(0, len(images), BATCH_SIZE)])


def predict_served(artifact):
    return in_batches(lambda batch: artifact.serve(tf.constant(batch)))


model_config = model.get_config()
ways = {  # row: (saved copy, how to load it, how to predict with what was loaded)
    "keras": (saved["keras"], load_whole, predict_keras),
    "weights": (saved["weights"], load_weights_into_fresh_model, predict_keras),
    "savedmodel": (saved["savedmodel"], load_served, predict_served),
    "tfsmlayer": (saved["savedmodel"], load_as_keras_layer, in_batches),
}

# %% [markdown]
# ## Compare
#
# Each copy is loaded (the median load time kept), then scored on the same images as the original.
# `max_abs_diff` is the largest difference between any predicted probability and the original's:
# zero means the same bits, as the same weights through the same computations must give.

# %%
rows = []
for name, (path, load, predict) in ways.items():
    seconds = []
    for _ in range(load_repeats):
        started = time.perf_counter()
        loaded = load()
        seconds.append(time.perf_counter() - started)
    predictions = predict(loaded)
    rows.append(
        {
            "format": name,
            "file": path.name,
            "size_bytes": size_on_disk(path),
            "load_s": round(statistics.median(seconds), 4),
            "max_abs_diff": float(np.max(np.abs(predictions - reference))),
            "bit_identical": bool(np.array_equal(predictions, reference)),
            "labels_identical": bool(np.array_equal(predictions.argmax(axis=1), reference.argmax(axis=1))),
            "accuracy": float(np.mean(predictions.argmax(axis=1) == labels)),
        }
    )
table = pd.DataFrame(rows).set_index("format")
print(f"Predictions on {len(images)} test images, against the original model:")
print(table.to_string(formatters={"size_bytes": lambda size: f"{size / 1e6:.1f} MB"}))

# %%
# extra code: the table and where the model came from into run.json
record.add_extra(
    "source",
    {
        "run_dir": str(source_dir),
        "test_accuracy": source["metrics"]["test"].get("accuracy"),  # as the source run recorded it
        "original_accuracy": float(np.mean(reference.argmax(axis=1) == labels)),
        "images": len(images),
    },
)
record.add_extra("formats", rows)


class ReloadMismatch(LabError):
    """A reloaded copy predicts differently from the original: the run fails (exit 1)."""

    exit_code = 1


# Keras reloads must be bit-identical; the SavedModel paths may differ by float rounding only.
for row in rows:
    exact = row["format"] in ("keras", "weights")
    if (exact and not row["bit_identical"]) or row["max_abs_diff"] >= SERVING_TOLERANCE or not row["labels_identical"]:
        raise ReloadMismatch(
            f"the {row['format']} copy predicts differently: max |difference| {row['max_abs_diff']:g}, "
            f"labels identical: {row['labels_identical']}"
        )
print(f"Every copy predicts the same labels. Model cards: {run_dir}/*.card.json")

# %% [markdown]
# ## Train further from each copy
#
# The colleague's question: can I go on training it? Both Keras copies can. The `.keras` copy
# comes back compiled, with the Adam it was saved with (at step 0 here). The weights file holds no
# optimizer, so the rebuilt model must be compiled again. (The same optimizer settings as Lesson
# 1's `compile`: rate from the saved copy's optimizer.) Then we save the trained `.keras` copy and
# load it once more: its Adam comes back exactly where `fit` left it, the step counter and the two
# moments per weight, which is what resuming needs.

# %%
x_more, y_more = data.x_train[:fine_tune_images], data.y_train[:fine_tune_images]
print("more training images:", x_more.shape, "| labels:", y_more.shape)

resumed = keras.models.load_model(run_dir / "model.keras")  # compiled: optimizer and its state included
steps_before = int(resumed.optimizer.iterations)
resumed_history = resumed.fit(x_more, y_more, batch_size=FINE_TUNE_BATCH, epochs=1, verbose=0)

rebuilt = keras.Model.from_config(copy.deepcopy(model_config))
rebuilt.load_weights(run_dir / "model.weights.h5")
rebuilt.compile(
    optimizer=keras.optimizers.Adam(learning_rate=float(resumed.optimizer.learning_rate)),
    loss="sparse_categorical_crossentropy",
    metrics=["accuracy"],
)
rebuilt_history = rebuilt.fit(x_more, y_more, batch_size=FINE_TUNE_BATCH, epochs=1, verbose=0)

further = {
    "images": len(x_more),
    "batch_size": FINE_TUNE_BATCH,
    "keras_steps_before": steps_before,
    "keras_steps_after": int(resumed.optimizer.iterations),
    "weights_steps_after": int(rebuilt.optimizer.iterations),
    "keras_loss": float(resumed_history.history["loss"][0]),
    "weights_loss": float(rebuilt_history.history["loss"][0]),
}
with tempfile.TemporaryDirectory() as scratch:
    resumed.save(Path(scratch) / "trained_further.keras")
    reloaded = keras.models.load_model(Path(scratch) / "trained_further.keras")
further["keras_steps_reloaded"] = int(reloaded.optimizer.iterations)
further["adam_state_reloaded"] = all(  # extra code: every slot, value for value
    np.array_equal(saved_slot, loaded_slot)
    for saved_slot, loaded_slot in zip(resumed.optimizer.variables, reloaded.optimizer.variables, strict=True)
)
print("Adam's step counter, .keras copy:", steps_before, "->", further["keras_steps_after"])
print(
    "after saving and loading it again:",
    further["keras_steps_reloaded"],
    "| moments equal:",
    further["adam_state_reloaded"],
)
print("Adam's step counter, weights copy: 0 ->", further["weights_steps_after"])
print(f"loss over the epoch: .keras copy {further['keras_loss']:.4f}, weights copy {further['weights_loss']:.4f}")
record.add_extra("train_further", further)  # extra code

# %% [markdown]
# ## Why is the `.keras` file three times bigger than the weights?
#
# A `.keras` file is a zip. Inside, next to a small `config.json`, is a weights file with two groups:
# the layers' weights, and the optimizer's state. Adam keeps two running averages for every weight
# (the moments `m` and `v`), so its state is twice the weights. That is why the lab saves a
# finished run's `model.keras` without it: Lesson 1's file holds the layers alone.

# %%
for group, size in contents["keras"].items():
    print(f"{group:<10} {size / 1e6:6.1f} MB in model.keras")
print(f"{'layers':<10} {contents['weights']['layers'] / 1e6:6.1f} MB in model.weights.h5")
source_contents = stored_bytes(source_path)
record.add_extra("source_stored_bytes", source_contents)  # extra code
for group, size in source_contents.items():
    print(f"{group:<10} {size / 1e6:6.1f} MB in Lesson 1's model.keras")

# %% [markdown]
# The trap again: `save_weights` on the compiled model we loaded writes its optimizer state too.

# %%
with tempfile.TemporaryDirectory() as scratch:
    path = Path(scratch) / "compiled.weights.h5"
    model.save_weights(path)
    print(f"save_weights on the compiled model: {path.stat().st_size / 1e6:.1f} MB")
    print(f"save_weights on the uncompiled twin: {(run_dir / 'model.weights.h5').stat().st_size / 1e6:.1f} MB")

# %% [markdown]
# ## The model card

# %%
card = read_card(run_dir / "export")
for key in ("identity", "saved_as", "size_bytes", "run_dir", "hparams", "versions", "notes"):
    print(f"{key}: {card[key]}")

# %% [markdown]
# ## Serving from the SavedModel
#
# A server needs no Keras and none of our code: only TensorFlow and the `export/` folder. Its
# `serve` function takes a batch of images and returns the ten probabilities for each.

# %%
served = tf.saved_model.load(str(run_dir / "export"))
probabilities = served.serve(tf.constant(images[:10])).numpy()
print("served labels:", probabilities.argmax(axis=1))
print("true labels:  ", labels[:10])

# %% [markdown]
# Keras 3 cannot open that folder as a model: `keras.models.load_model` refuses it.

# %%
try:
    keras.models.load_model(run_dir / "export")
except ValueError as error:
    refusal = str(error).split(". ")[0] + "."
else:
    raise AssertionError("keras.models.load_model read the SavedModel: Keras changed, update the lesson")
print(refusal)
record.add_extra("load_model_on_savedmodel", refusal)

# %%
run.end("finished")  # extra code: run.json says "finished"

# %% [markdown]
# ## Questions to explore
#
# 1. Which of the three copies would you send to a web service that only predicts? Which one to a
#    colleague who wants to train it ten more epochs? Why?
# 2. Compile Lesson 1's network with plain SGD (no momentum) instead of Adam, train a few steps and
#    save it as `.keras`. How big is the file now, and why?
# 3. Load `model.weights.h5` into a network with 512 units in `fc1` instead of 1,024. What does
#    Keras say, and why can it not guess?
# 4. Why can the Keras reloads promise the very same bits, while a SavedModel served elsewhere
#    (another machine, a GPU, TF Serving) is only promised the same labels?
# 5. The card's `sha256` names the exact bytes. Save the same model twice: is the fingerprint of
#    the `.keras` file the same both times? (Look at what the zip stores besides the weights.)
