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
# # Hello world in Keras: reading handwritten digits with two Dense layers
#
# The model, the compile step and the training all live in `train_mnist.py`. Here we train it and
# then look at it: the learning curves TensorBoard recorded, the gap between training and test
# accuracy, and what the model says about the first ten test images.

# %%
# %matplotlib inline
import matplotlib.pyplot as plt

from labkit import cli
from labkit.tblogs import curve, read_scalars
from lesson_2.hello_keras.train_mnist import first_predictions, flatten_images, make_parser, train

args = cli.parse(make_parser(), [])

# %% [markdown]
# Open TensorBoard on this activity's runs folder (`runs/lesson_2/hello_keras` unless you set
# `--logdir` or `LAB_RUNS_DIR`) before training, and watch the curves grow. The page refreshes
# itself every 30 seconds; the reload button at its top right refreshes it at once.

# %%
# %load_ext tensorboard

# %%
runs_folder = args.runs_root / "lesson_2" / "hello_keras"
# %tensorboard --logdir "$runs_folder"

# %%
session = train(args)
session.model.summary()

# %% [markdown]
# ## Learning curves, read back from the TensorBoard logs

# %%
scalars = read_scalars(session.run_dir)
accuracy = {split: curve(scalars, split, "epoch_accuracy").iloc[:, 0] for split in ("train", "validation")}
ax = accuracy["train"].plot(marker="o", label="training (averaged during each epoch)")
accuracy["validation"].plot(ax=ax, marker="o", label="validation")
ax.set_xlabel("epoch")
ax.set_ylabel("accuracy")
ax.legend()
plt.show()

# %% [markdown]
# ## Overfitting
#
# The test set is data the model never saw. Scored again after training, the training images come
# out better than the test images. That gap is overfitting, and the run records it in `run.json`
# under `extra.overfitting`.

# %%
gap = session.record.data["extra"]["overfitting"]
print(
    f"train accuracy {gap['train_accuracy']:.4f}, test accuracy {gap['test_accuracy']:.4f}, "
    f"gap {100 * gap['gap']:.1f} points"
)

# %% [markdown]
# ## The first ten test digits
#
# `predict` returns ten probabilities per image, and they sum to 1. The predicted class is the
# argmax, and its probability says how sure the model is.

# %%
data = session.data
predictions = first_predictions(session.model, flatten_images(data.x_test), data.y_test, data.class_names)
print(predictions.to_string())
print(f"{predictions.correct.sum()} of 10 predictions match their labels")

fig, axes = plt.subplots(1, 10, figsize=(15, 2.2))
for ax, image, row in zip(axes, data.x_test[:10], predictions.itertuples(), strict=False):
    ax.imshow(image[:, :, 0], cmap="gray_r")
    ax.set_title(
        f"{row.predicted} ({row.probability:.2f})\nlabel {row.label}",
        color="black" if row.correct else "red",
        fontsize=9,
    )
    ax.axis("off")
plt.show()

# %% [markdown]
# ## Questions to explore
#
# 1. Train for 20 epochs (`--epochs 20`). What happens to the gap between training and test accuracy?
# 2. Make the hidden layer 32 units instead of 512 (edit `HIDDEN_UNITS`). How much accuracy do you
#    lose, and how many fewer weights does the model have?
# 3. Look at a wrong prediction above. Is the model unsure (a low probability), or sure and wrong?
