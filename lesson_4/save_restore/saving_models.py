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
# # Lesson 4: save a model, load it back, and prove nothing changed
#
# A trained network is only useful if you can keep it. Keras 3 gives three ways to save one:
#
# * `model.keras` holds the architecture, the weights and the optimizer's state. Load it with
#   `keras.models.load_model`; use it to carry on training or to share a model with Keras users.
# * `model.weights.h5` holds the weights alone. Rebuild the model from its code, then call
#   `model.load_weights`; use it for checkpoints and transfer learning.
# * `export/` is a TensorFlow SavedModel: a graph of the forward pass with its weights. Load it with
#   `tf.saved_model.load(path).serve(x)`; use it for serving (TF Serving, other languages).
#
# This notebook drives the same code as `save_restore.py` in this folder: it imports the script's
# functions. It trains nothing itself: it takes the model that a Lesson 1 Exercise A run saved.
# With `LAB_QUICK=1` set before Jupyter starts, it compares on 200 test images instead of all of them.

# %%
import tempfile
from pathlib import Path

import pandas as pd

from labkit import LabError, cli
from labkit.runs import read_run, runs_root
from labkit.saved_models import newest_run_model, read_card
from lesson_4.save_restore.save_restore import (
    SOURCE_ACTIVITY,
    load_served,
    load_whole,
    make_parser,
    save_restore,
    stored_bytes,
)

# %% [markdown]
# ## 1. A trained model to save
#
# Every Keras run of this course ends by saving `<run>/model.keras`. We take the newest finished
# run of Lesson 1, Exercise A. If you have none yet, the next cell trains a quick one (a small slice
# of the data, two short epochs, about 15 seconds), exactly as
# `python lesson_1/exercise_a/train_mnist.py --quick` would. For the real figures, train the full
# run from the command line first (about 3.5 minutes) and run this notebook again.

# %%
try:
    source = newest_run_model(runs_root(), *SOURCE_ACTIVITY)
except LabError as missing:
    print(missing)
    print("Training a quick Lesson 1 Exercise A run now ...")
    from lesson_1.exercise_a.train_mnist import make_parser as lesson_1_parser
    from lesson_1.exercise_a.train_mnist import train as train_lesson_1

    train_lesson_1(cli.parse(lesson_1_parser(), ["--quick"]), quiet=True)
    source = newest_run_model(runs_root(), *SOURCE_ACTIVITY)

trained = read_run(source.parent)
print("model:", source)
print("trained on", trained["dataset"]["name"], "| test accuracy", trained["metrics"]["test"]["accuracy"])

# %% [markdown]
# ## 2. Save it three ways, load each back, compare
#
# `save_restore` writes a run folder of its own with the three copies and a model card beside each,
# loads every copy three times (the median load time is kept) and scores each on the same test
# images as the original. The SavedModel is read twice: as a plain TensorFlow object, and wrapped
# in `keras.layers.TFSMLayer`, the only way Keras 3 itself can use one.

# %%
args = cli.parse(make_parser(), ["--run", str(source.parent)])
result = save_restore(args)

# %%
pd.DataFrame(result.rows).set_index("format")

# %% [markdown]
# `max_abs_diff` is the largest difference between any predicted probability and the original's.
# Zero means the same bits: the same weights through the same computations give the same numbers.

# %% [markdown]
# ## 3. Why is the `.keras` file three times bigger than the weights?
#
# A `.keras` file is a zip. Inside, next to a small `config.json`, is a weights file with two groups:
# the layers' weights, and the optimizer's state. Adam keeps two running averages for every weight
# (the moments `m` and `v`), so its state is twice the weights.

# %%
whole = result.run_dir / "model.keras"
for group, size in stored_bytes(whole).items():
    print(f"{group:<10} {size / 1e6:6.1f} MB")
print(
    f"{'weights':<10} {stored_bytes(result.run_dir / 'model.weights.h5')['layers'] / 1e6:6.1f} MB in model.weights.h5"
)

# %% [markdown]
# A trap: in Keras 3, `save_weights` on a *compiled* model also writes the optimizer's state. The
# script saves the weights from an uncompiled twin (`keras.Model.from_config(model.get_config())`).
# See the difference:

# %%
compiled = load_whole(whole)
with tempfile.TemporaryDirectory() as scratch:
    path = Path(scratch) / "compiled.weights.h5"
    compiled.save_weights(path)
    print(f"save_weights on the compiled model: {path.stat().st_size / 1e6:.1f} MB")
    print(f"save_weights on the uncompiled twin: {(result.run_dir / 'model.weights.h5').stat().st_size / 1e6:.1f} MB")

# %% [markdown]
# ## 4. The model card
#
# Beside every saved copy lies `<name>.card.json`: where the model came from (the run folder, the
# data and its source), how well it did, how it was trained, with which library versions, and a
# SHA-256 fingerprint of the saved bytes.

# %%
card = read_card(result.run_dir / "export")
for key in ("identity", "saved_as", "size_bytes", "run_dir", "hparams", "versions", "notes"):
    print(f"{key}: {card[key]}")

# %% [markdown]
# ## 5. Serving from the SavedModel
#
# A server needs no Keras and none of our code: only TensorFlow and the `export/` folder. Its
# `serve` function takes a batch of images and returns the ten probabilities for each.

# %%
served = load_served(result.run_dir / "export")
probabilities = served.serve(result.images[:10]).numpy()
print("served labels:", probabilities.argmax(axis=1))
print("true labels:  ", result.labels[:10])

# %% [markdown]
# Keras 3 cannot open that folder as a model: `keras.models.load_model` refuses it.

# %%
print(read_run(result.run_dir)["extra"]["load_model_on_savedmodel"])

# %% [markdown]
# ## Questions to explore
#
# 1. Which of the three copies would you send to a web service that only predicts? Which one to a
#    colleague who wants to train it ten more epochs? Why?
# 2. Load `model.weights.h5` into a model with 512 units in `fc1` instead of 1,024. What happens?
# 3. The SavedModel holds each weight twice. Look at `export.card.json` and `stored_bytes`: under
#    which two names?
# 4. Compile the model with plain SGD (no momentum) and save it again: how big is the `.keras` file now?
