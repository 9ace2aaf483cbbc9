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
import pandas as pd

from labkit.training import load_data, start_run

# %% [markdown]
# ## The data
#
# 28x28 greyscale digits, scaled to [0, 1]. A Dense layer reads one flat vector per sample, so
# each image becomes a row of 784 pixel values: the 2-D layout of the pixels is thrown away here
# (Lesson 3's convolutions keep it). The labels are the integers 0-9.

# %%
data = load_data(config)  # extra code: MNIST from the Keras cache or a mirror, else a labelled real substitute
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
# `run.json` up to date and save a backup after each epoch for `--resume`.

# %%
tensorboard = keras.callbacks.TensorBoard(log_dir=run.dir)
history = model.fit(
    run.batches(x_train, y_train),  # extra code: shuffled batches of 128
    epochs=run.epochs,
    steps_per_epoch=run.steps_per_epoch,
    validation_data=(x_valid, y_valid),
    callbacks=[tensorboard, *run.callbacks(tensorboard)],
)

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
