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
# # The Functional API: networks that are not a stack
#
# Every model here is a function in `train_mnist.py`. A Sequential model passes one tensor down a
# line of layers. With the Functional API you call layers on tensors yourself, so one tensor can feed
# two layers, two tensors can be merged, and a model can have several inputs and several outputs.

# %%
import pandas as pd

from labkit import cli
from lesson_2.functional_api.train_mnist import (
    build_inception,
    build_two_inputs_two_heads,
    define_wide_and_deep,
    expected_parameters,
    load_table,
    make_parser,
    regression_models,
    split_features,
    train_subclassing,
    train_wide_deep,
)

args = cli.parse(make_parser(), [])

# %% [markdown]
# ## Two inputs and two heads
#
# The image goes in through one input. Its row and column ink profiles (56 numbers) go in through a
# second one. They are computed from the image, so they add nothing new; they stand for the data that
# often arrives next to an image. Two heads come out: which digit (softmax over 10) and "is it even"
# (one sigmoid). Each head gets its own loss and metric, and the loss that training lowers is
# digit loss + 0.5 x even loss. The summary's last column shows which layer feeds which.

# %%
build_two_inputs_two_heads().summary()

# %% [markdown]
# ## An Inception-style block
#
# Four branches read the same feature maps: a 1x1 convolution, a 3x3 and a 5x5 (each after a 1x1),
# and a 3x3 max pooling followed by a 1x1. Their outputs are stacked along the channel axis.

# %%
build_inception().summary()

# %% [markdown]
# ## Wide & Deep, and what its parameter counts are made of
#
# The deep path is two Dense(30, ReLU) layers; the wide path is the input itself, concatenated with
# the deep path's output before the last Dense(1). The two-input version sends features 0-4 wide and
# features 2 onwards deep; the auxiliary version adds a Dense(1) on the deep path. Building a model
# needs only the input shape, so we can check the seed's counts on California housing's 8 features
# even where the data itself is missing.

# %%
rows = []
for n_features in (8, 10):
    built = {name: model.count_params() for name, model in regression_models(n_features).items()}
    rows.append({"features": n_features, **built, "formula": expected_parameters(n_features)})
counts = pd.DataFrame(rows).set_index("features")
print(counts.to_string())
assert list(counts.loc[8, ["wide_deep", "two_inputs", "auxiliary"]]) == [1239, 1176, 1207]
print("On 8 features: 1,239, 1,176 and 1,207 parameters, as the layer sizes say.")

# %% [markdown]
# ## The Subclassing API
#
# `WideAndDeepModel` builds its layers in `__init__` and wires them in `call`, which is plain
# Python. The price: until the model is called on data, Keras knows neither its input shapes nor its
# weights, and even afterwards it cannot show which layer feeds which.

# %%
WideAndDeepModel = define_wide_and_deep()
model = WideAndDeepModel(units=30, activation="relu")
model.summary()  # no error, but every layer is unbuilt and its output shape is "?"
print(f"Before the first call: built={model.built}, {len(model.weights)} weight arrays")
table = load_table(args)
model(split_features(table.x_train[:1]))
model.summary()  # now with weights, but no "Connected to" column
print(f"After one call: built={model.built}, {model.count_params():,} parameters")
assert model.count_params() == expected_parameters(table.num_features)["auxiliary"]
try:
    print(model.inputs)
except AttributeError as error:
    print(f"No layer graph to inspect: {error}")

# %% [markdown]
# ## Training all of it
#
# Open TensorBoard on this activity's runs folder first. Here we train the four regression models,
# with the seed's settings (SGD at 0.001, batch 32); `python lesson_2/functional_api/train_mnist.py`
# trains the two image models as well.

# %%
# %load_ext tensorboard

# %%
runs_folder = args.runs_root / "lesson_2" / "functional_api"
# %tensorboard --logdir "$runs_folder"

# %%
runs = train_wide_deep(args, dataset=table)
subclassed = train_subclassing(args, dataset=table)
auxiliary = runs["auxiliary"].record.data["extra"]["losses"]
print(
    f"evaluate() on the auxiliary model: total {auxiliary['total']:.4f}, main {auxiliary['main']:.4f}, "
    f"aux {auxiliary['aux']:.4f}; 0.9 x main + 0.1 x aux = {auxiliary['weighted_sum']:.4f}"
)
print("Saving the subclassed model:", subclassed.record.data["extra"]["saving"])

# %% [markdown]
# ## Questions to explore
#
# 1. Set the "is it even" weight to 0 in `compile_two_heads`. Does the digit head get better or worse?
# 2. Remove the wide path from `build_wide_deep`. How many parameters are left, and does the test MSE change?
# 3. Delete `get_config` from `WideAndDeepModel` and save it again. What does loading say?
