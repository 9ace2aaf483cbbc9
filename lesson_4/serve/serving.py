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
# starts the same server as `serve.py` in this folder (it imports it rather than copying it),
# inside the notebook's own process, and talks to it the way any program would: over HTTP, with
# JSON or a PNG image.
#
# From a terminal, the same server runs with `python lesson_4/serve/serve.py`: it prints an
# address where you can draw digits with the mouse.

# %%
import httpx
import matplotlib.pyplot as plt
import numpy as np
from IPython.display import IFrame

from labkit import LabError, cli
from labkit.data import load_dataset
from labkit.runs import runs_root
from labkit.saved_models import newest_run_model, read_card
from lesson_1.exercise_a.train_mnist import make_parser, shift_right, train
from lesson_4.serve.load_check import run_load
from lesson_4.serve.serve import BackgroundServer

# %% [markdown]
# ## 1. A model to serve
#
# Every finished Keras run saves `model.keras` with a model card beside it. We serve the newest
# Lesson 1 Exercise A run; if you have none yet, the cell trains one first (quick mode if
# `LAB_QUICK=1` is set, about two minutes otherwise).

# %%
try:
    model_path = newest_run_model(runs_root(), "lesson_1", "exercise_a")
except LabError as missing:
    print(f"{missing}\nTraining one now.")
    train(cli.parse(make_parser(), []))
    model_path = newest_run_model(runs_root(), "lesson_1", "exercise_a")
card = read_card(model_path)
print(model_path)
print({key: card[key] for key in ("identity", "size_bytes", "saved_at")})
print("test metrics:", card["metrics"]["test"], "on", card["data"]["name"])

# %% [markdown]
# ## 2. Start the server
#
# `BackgroundServer` runs the FastAPI app under uvicorn in a thread of this kernel, on a free
# port of 127.0.0.1. Loading the model and running one warm-up prediction takes a few seconds.

# %%
server = BackgroundServer(model_path)
client = httpx.Client(base_url=server.url, timeout=30)
print("serving at", server.url)
print(client.get("/health").json())

# %% [markdown]
# ## 3. Ask it about real test digits
#
# The JSON body holds 28 rows of 28 pixel values from 0 (background) to 255 (ink). The answer
# names the label, the ten probabilities, and the identity of the model that answered.

# %%
data = load_dataset(card["data"]["name"], announce=print)
digits = np.rint(data.x_test[:8, :, :, 0] * 255).astype(int)
for image, truth in zip(digits, data.y_test[:8], strict=True):
    reply = client.post("/predict", json={"image": image.tolist()})
    answer = reply.json()
    print(f"HTTP {reply.status_code}: label {answer['label']} (true {truth}), p={max(answer['probabilities']):.2f}")

# %% [markdown]
# ## 4. Bad requests get a clear answer, and the server keeps serving
#
# A 4xx status says the client sent something wrong; the JSON error says what.

# %%
for body in ([1, 2, 3], {"image": [[300] * 28] * 28}, {"pixels": []}):
    reply = client.post("/predict", json=body)
    print(f"HTTP {reply.status_code}: {reply.json()['error']}")
print(client.get("/health").json()["status"])

# %% [markdown]
# ## 5. The edge lesson
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
        axes[row, column].set_title(f"{preprocess}: {answer['label']} (true {data.y_test[column]})", fontsize=9)
        axes[row, column].axis("off")
figure.tight_layout()

# %% [markdown]
# ## 6. The drawing page
#
# The page below is served by the same app (`GET /`). It shows live only while the server runs:
# draw a digit in the middle, then against the right edge, and compare the two panels.

# %%
IFrame(server.url + "/", width=960, height=640)

# %% [markdown]
# ## 7. A small load check
#
# Eight clients at once, real digits as JSON and PNG. `load_check.py` does the same from a
# terminal with 500 requests; here 100 keep it short.

# %%
result = run_load(server.url, requests=100, clients=8, time_limit=60)
print({key: round(value, 1) if isinstance(value, float) else value for key, value in result.items()})

# %% [markdown]
# ## 8. Stop the server
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
