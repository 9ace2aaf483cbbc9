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
# # Anatomy of a Keras model: layers, models, losses, optimizers
#
# Every piece here is a function in `train_mnist.py`. We go through the four parts in order: two ways
# to write the same model, which loss goes with which task (and what a wrong choice looks like), what
# happens when layer shapes do not fit, and three optimizers racing on the same model.

# %%
# %matplotlib inline
import matplotlib.pyplot as plt
import pandas as pd
from IPython.display import display

from labkit import cli
from labkit.data import load_dataset
from labkit.plan import training_plan
from labkit.tblogs import curve, read_scalars
from lesson_2.anatomy.train_mnist import (
    build_functional,
    build_sequential,
    compare_apis,
    flatten_images,
    loss_table,
    make_parser,
    shape_errors,
    train,
    wrong_pairings,
)

pd.set_option("display.max_colwidth", None)
args = cli.parse(make_parser(), [])
data = load_dataset(args.dataset, limits=training_plan(args).slice)

# %% [markdown]
# ## Models: Sequential and Functional
#
# The Sequential API takes a list of layers. The Functional API calls each layer on the tensor the
# previous one returned and then names the inputs and outputs. For a plain stack the two give the
# same network: same weights, same outputs.

# %%
build_sequential().summary()
build_functional().summary()
check = compare_apis(flatten_images(data.x_val[:64]))
print(check)
assert check["sequential_parameters"] == check["functional_parameters"]
assert check["max_output_difference"] == 0
print("Same parameter count, and identical outputs once they share weights.")

# %% [markdown]
# ## Losses: one per kind of task
#
# Each row trains the same small body (Dense 32, ReLU) with a different last layer and loss, then
# scores it on the validation images. The last column is what a model that ignores the image would
# score: the majority class, or the mean for a regression. Every row should beat it clearly.

# %%
table = loss_table(data)
display(table)

# %% [markdown]
# Sparse and non-sparse categorical cross-entropy are the same loss. Only the labels are written
# differently: `to_categorical` turns the integer 3 into the one-hot row `[0, 0, 0, 1, 0, 0, 0, 0, 0, 0]`.
#
# ### Wrong pairings, and what you see when you make one

# %%
mistakes = wrong_pairings(data)
for row in mistakes.itertuples():
    print(f"{row.pairing}\n    {row.symptom}\n")

# %% [markdown]
# The first two stop at once with a shape or rank error. The message names the target and output
# shapes, and the fix is to match the labels to the loss (`to_categorical`, or the sparse loss).
#
# The last two are worse, because they run. A softmax over a single unit always outputs 1.0, so the
# "yes/no" model says yes to every image, and its accuracy stays at the share of yes labels. The loss
# still falls, because Keras computes binary cross-entropy from the layer's pre-activation value, so
# the loss curve looks healthy. Categorical cross-entropy on one unit divides the output by itself:
# the loss is exactly 0 from the first step and nothing is learned. Keras only warns, and a warning
# is easy to miss in a notebook. A loss of exactly 0, or an accuracy that never moves, is the sign.

# %% [markdown]
# ## Shapes: layers must fit together
#
# A Dense layer returns (batch, units). When you stack Dense layers, Keras works out each layer's
# input size for you. A Conv2D layer, though, needs (batch, height, width, channels), and a model
# built for flat rows of 784 pixels cannot take 28x28 images.

# %%
for case in shape_errors(data.x_val):
    print(f"{case['mistake']}:\n    ValueError: {case['error']}\n")

# %% [markdown]
# Both messages say what Keras expected and what it got. "expected min_ndim=4, found ndim=2" means
# the Conv2D layer wanted a 4-D tensor and received the Dense layer's 2-D output. A `Reshape`
# layer could fold the 32 values into a tiny image, but the usual fix is to put the convolution first,
# on the (28, 28, 1) images, and the Dense layers after it. The second message
# compares the shape the model was built for, (None, 784), with the images, (4, 28, 28, 1):
# flatten first.
#
# ## Optimizers: SGD vs RMSprop vs Adam
#
# The same model trains three times, once per optimizer, at the same learning rate. Each run gets its
# own folder next to the others, so TensorBoard draws all three, and so does the toolkit's log reader.
#
# Open TensorBoard on this activity's runs folder (`runs/lesson_2/anatomy` unless you set `--logdir`
# or `LAB_RUNS_DIR`) before they train, and watch the three race. The page refreshes itself every
# 30 seconds; the reload button at its top right refreshes it at once.

# %%
# %load_ext tensorboard

# %%
runs_folder = args.runs_root / "lesson_2" / "anatomy"
# %tensorboard --logdir "$runs_folder"

# %%
runs = train(args, dataset=data)
scalars = pd.concat([read_scalars(session.run_dir).assign(run=name) for name, session in runs.sessions.items()])
fig, axes = plt.subplots(1, 2, figsize=(11, 4))
curve(scalars, "validation", "epoch_accuracy").plot(ax=axes[0], marker="o", title="validation accuracy")
curve(scalars, "train", "epoch_loss").plot(ax=axes[1], marker="o", title="training loss")
for ax in axes:
    ax.set_xlabel("epoch")
plt.show()
print(f'All three in TensorBoard: tensorboard --logdir "{runs.sessions["sgd"].run_dir.parent}"')

# %% [markdown]
# At one shared learning rate, plain SGD lags. It moves every weight by the learning rate times its
# gradient, and here the gradients are small. RMSprop divides each weight's step by the size of its
# recent gradients, and Adam also adds momentum, so their steps stay useful. This is a comparison at
# one step size, not a verdict on the optimizers.
#
# ## Questions to explore
#
# 1. Run `python lesson_2/anatomy/train_mnist.py --learning-rate 0.1`. Does SGD catch up? What
#    happens to the other two?
# 2. Run it again with `--learning-rate 0.001`, RMSprop's usual setting. Which optimizer suffers most?
# 3. Make the "yes/no" model with `Dense(2, softmax)` and `sparse_categorical_crossentropy`. Is that
#    also correct?
