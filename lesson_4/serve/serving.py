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
# # Lesson 4: serve your network over HTTP
#
# A trained network is only useful once something else can ask it questions. This notebook
# loads Lesson 1's trained network with Keras and asks it about a few digits, then starts the
# same server as `serve.py` in this folder (it imports it rather than copying it) inside the
# notebook's own process, and talks to it the way any program would: over HTTP, with JSON or a
# PNG image.
#
# From a terminal, the same server runs with `python lesson_4/serve/serve.py`: it prints an
# address where you can draw digits with the mouse.

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
import httpx
import keras
import matplotlib.pyplot as plt
import numpy as np
from IPython.display import IFrame

from labkit.data import load_dataset
from labkit.runs import runs_root
from labkit.saved_models import find_model, read_card
from labkit.shifts import shift_right
from lesson_4.serve.load_check import run_load
from lesson_4.serve.serve import BackgroundServer

# %% [markdown]
# ## 1. A model to serve
#
# Every finished Keras run saves `model.keras` with a model card beside it. We serve the newest
# Lesson 1 Exercise A run. If you have none yet, this cell says so: train one with
# `python lesson_1/exercise_a/train_mnist.py` (add `--quick` for a run of seconds), then run it again.

# %%
model_path, recorded = find_model(runs_root(), "lesson_1", "exercise_a")
card = read_card(model_path)
print(model_path)
print({key: card[key] for key in ("identity", "size_bytes", "saved_at")})
print("test metrics:", recorded["metrics"]["test"], "on", recorded["dataset"]["name"])

# %% [markdown]
# ## 2. What the server does, in Keras
#
# The server loads that file once with `keras.models.load_model`. `compile=False`: serving needs
# the weights, not the optimizer's state or the loss.

# %%
model = keras.models.load_model(model_path, compile=False)
model.summary()

# %% [markdown]
# For every request it turns the image into what the network was trained on (28x28 pixels scaled
# to [0, 1], one channel) and runs the network on it. Here on eight real test digits at once:

# %%
data = load_dataset(recorded["dataset"]["name"])
x, y = data.x_test[:8], data.y_test[:8]
print("input:", x.shape, x.dtype, x.min(), "to", x.max())
probabilities = model.predict(x, verbose=0)
print("predicted:", probabilities.argmax(axis=1), "| true:", y)
print("confidence:", probabilities.max(axis=1).round(3))

# %% [markdown]
# Before serving a file, check it scores what its run recorded: predict the same test images as
# its run, as the server will, and count how many predictions match the labels. No `compile` is
# needed, since the server only ever calls `predict`.

# %%
n_test = recorded["dataset"]["sizes"]["test"]  # a quick run scored the first 1,000 test digits only
x_test, y_test = data.x_test[:n_test], data.y_test[:n_test]
predicted = model.predict(x_test, batch_size=256, verbose=0).argmax(axis=1)
accuracy = float((predicted == y_test).mean())
print("test accuracy of the file to serve:", round(accuracy, 4), "on", len(x_test), "images")
print("test accuracy its run recorded:   ", round(recorded["metrics"]["test"]["accuracy"], 4))

# %% [markdown]
# ## 3. Start the server
#
# `BackgroundServer` runs the FastAPI app under uvicorn in a thread of this kernel, on a free
# port of 127.0.0.1. It loads the model as above (and runs one warm-up prediction) in a few seconds.

# %%
server = BackgroundServer(model_path)
client = httpx.Client(base_url=server.url, timeout=30)
print("serving at", server.url)
print(client.get("/health").json())

# %% [markdown]
# ## 4. Ask it about the same digits over HTTP
#
# The JSON body holds 28 rows of 28 pixel values from 0 (background) to 255 (ink). The answer
# names the label, the ten probabilities, and the identity of the model that answered: the same
# numbers as `model.predict` above, rounded.

# %%
digits = np.rint(x[:, :, :, 0] * 255).astype(int)
for image, truth, local in zip(digits, y, probabilities, strict=True):
    reply = client.post("/predict", json={"image": image.tolist()})
    answer = reply.json()
    print(
        f"HTTP {reply.status_code}: label {answer['label']} (true {truth}, model.predict {local.argmax()}), "
        f"p={max(answer['probabilities']):.2f}"
    )

# %% [markdown]
# ## 5. Bad requests get a clear answer, and the server keeps serving
#
# A 4xx status says the client sent something wrong; the JSON error says what.

# %%
for body in ([1, 2, 3], {"image": [[300] * 28] * 28}, {"pixels": []}):
    reply = client.post("/predict", json=body)
    print(f"HTTP {reply.status_code}: {reply.json()['error']}")
print(client.get("/health").json()["status"])

# %% [markdown]
# ## 6. The edge lesson
#
# The same digit slid 9 pixels to the right. "As drawn", the network gets it at the edge, where
# no MNIST digit ever was. "Centred like MNIST" crops it, fits it in 20x20 and centres it, as
# MNIST's makers did with every digit. Each answer carries the image the network received.

# %%
at_edge = shift_right(digits[..., np.newaxis], 9)[..., 0]
figure, axes = plt.subplots(2, 4, figsize=(9, 4.8))
for column, image in enumerate(at_edge[:4]):
    for row, preprocess in enumerate(("as_drawn", "centred")):
        answer = client.post(f"/predict?preprocess={preprocess}", json={"image": image.tolist()}).json()
        axes[row, column].imshow(answer["input"], cmap="gray", vmin=0, vmax=255)
        axes[row, column].set_title(f"{preprocess}: {answer['label']} (true {y[column]})", fontsize=9)
        axes[row, column].axis("off")
figure.tight_layout()
plt.show()

# %% [markdown]
# ## 7. The drawing page
#
# The page below is served by the same app (`GET /`). It shows live only while the server runs:
# draw a digit in the middle, then against the right edge, and compare the two panels.

# %%
IFrame(server.url + "/", width=960, height=640)

# %% [markdown]
# ## 8. A small load check
#
# Eight clients at once, real digits as JSON and PNG. `load_check.py` does the same from a
# terminal with 500 requests; here 100 keep it short.

# %%
result = run_load(server.url, requests=100, clients=8, time_limit=60)
print({key: round(value, 1) if isinstance(value, float) else value for key, value in result.items()})

# %% [markdown]
# ## 9. Stop the server
#
# Run this before closing the notebook, or the port stays taken until the kernel stops.
#
# **Questions to explore**
# * Draw a 1, a 4 and a 7 at each edge. Which does the "as drawn" network still read, and why?
# * `GET /model` returns the card. Which fields would you need to reproduce this model?
# * The load check's p95 is several times its p50. Where could the extra time go?

# %%
client.close()
server.stop()
