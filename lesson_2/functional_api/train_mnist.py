"""Lesson 2, the Functional API: networks that are not a stack.

A Sequential model is a line of layers. The Functional API calls layers on tensors, so a model can
be any graph of layers without cycles: several inputs, several outputs, branches that split and
merge again. Three parts, each trained into sibling run folders under runs/lesson_2/functional_api/:

1. topologies, on MNIST-family images: a model with two inputs (the image, plus a side input of the
   image's row and column ink profiles) and two heads (which digit, and "is it even"), then a
   model built around one Inception-style block of parallel convolutions.
2. wide-deep, on Lesson 3's regression data: Wide & Deep (the input concatenated with the output
   of a deep path), its two-input variant (features 0-4 go wide, features 2 onwards go deep) and
   the same with an auxiliary output, trained with loss weights 0.9 and 0.1.
3. subclassing: the auxiliary Wide & Deep written as a subclass of keras.Model, saved as a .keras
   file and as .weights.h5, and loaded back.

    python lesson_2/functional_api/train_mnist.py                       # all three parts
    python lesson_2/functional_api/train_mnist.py --quick               # the same on small slices, seconds
    python lesson_2/functional_api/train_mnist.py --part wide-deep      # one part only
"""

import copy
import functools

import numpy as np

from labkit import cli
from labkit.deferred import keras  # TensorFlow loads on first use, after the flags are checked
from labkit.plan import training_plan
from labkit.session import RunSet, TrainingSession, run_main
from labkit.tabular import load_regression_data

PARTS = ("topologies", "wide-deep", "subclassing")
EPOCHS = 5  # image models
LEARNING_RATE = 1e-3  # Adam, for the image models
BATCH_SIZE = 128
EVEN_WEIGHT = 0.5  # the "is it even" head counts half as much as the digit head in the total loss

UNITS = 30  # the seed's Wide & Deep: two Dense(30, ReLU) layers on the deep path
REGRESSION_EPOCHS = 20
REGRESSION_LEARNING_RATE = 1e-3  # SGD, as in the seed
REGRESSION_BATCH_SIZE = 32
WIDE, DEEP = slice(0, 5), slice(2, None)  # features 0-4 go wide, 2 to the last go deep (2-7 on housing)
LOSS_WEIGHTS = {"main": 0.9, "aux": 0.1}


# ----------------------------------------------------------------------------------------------
# Part 1: two inputs, two heads, and an Inception-style block


def ink_profile(images):
    """The side input: the share of ink in each of the 28 rows and 28 columns, 56 numbers.

    Derived from the image, so it adds no new information; it stands in for the data that often
    comes next to an image (a scanner's settings, a form's field) and enters the model separately."""
    return np.concatenate([images.mean(axis=(2, 3)), images.mean(axis=(1, 3))], axis=1).astype("float32")


def image_inputs(images) -> dict:
    return {"image": images, "profile": ink_profile(images)}


def image_targets(labels) -> dict:
    return {"digit": labels.astype("int64"), "even": (labels % 2 == 0).astype("float32")}


def build_two_inputs_two_heads(num_classes=10):
    image = keras.Input(shape=(28, 28, 1), name="image")
    profile = keras.Input(shape=(56,), name="profile")
    pixels = keras.layers.Dense(64, activation="relu", name="pixels")(keras.layers.Flatten()(image))
    side = keras.layers.Dense(16, activation="relu", name="side")(profile)
    merged = keras.layers.concatenate([pixels, side], name="merge")  # the two branches join here
    shared = keras.layers.Dense(64, activation="relu", name="shared")(merged)
    digit = keras.layers.Dense(num_classes, activation="softmax", name="digit")(shared)
    even = keras.layers.Dense(1, activation="sigmoid", name="even")(shared)
    return keras.Model(
        inputs={"image": image, "profile": profile}, outputs={"digit": digit, "even": even}, name="two_heads"
    )


def compile_two_heads(model, learning_rate=LEARNING_RATE):
    """One loss and one metric per head; the total that training lowers is their weighted sum."""
    model.compile(
        optimizer=keras.optimizers.Adam(learning_rate),
        loss={"digit": "sparse_categorical_crossentropy", "even": "binary_crossentropy"},
        loss_weights={"digit": 1.0, "even": EVEN_WEIGHT},
        metrics={"digit": ["accuracy"], "even": ["accuracy"]},
    )
    return model


def inception_block(x, filters=8):
    """Four branches look at the same input at different scales; their outputs are stacked."""
    one = keras.layers.Conv2D(filters, 1, padding="same", activation="relu")(x)
    three = keras.layers.Conv2D(filters, 1, padding="same", activation="relu")(x)
    three = keras.layers.Conv2D(filters, 3, padding="same", activation="relu")(three)
    five = keras.layers.Conv2D(filters, 1, padding="same", activation="relu")(x)
    five = keras.layers.Conv2D(filters, 5, padding="same", activation="relu")(five)
    pooled = keras.layers.MaxPooling2D(3, strides=1, padding="same")(x)
    pooled = keras.layers.Conv2D(filters, 1, padding="same", activation="relu")(pooled)
    return keras.layers.concatenate([one, three, five, pooled], axis=-1, name="inception")  # 4 x filters channels


def compile_classifier(model, learning_rate=LEARNING_RATE):
    model.compile(
        optimizer=keras.optimizers.Adam(learning_rate), loss="sparse_categorical_crossentropy", metrics=["accuracy"]
    )
    return model


def build_inception(num_classes=10):
    image = keras.Input(shape=(28, 28, 1), name="image")
    x = keras.layers.Conv2D(16, 3, strides=2, activation="relu", name="stem")(image)  # 13 x 13: keeps CPU time low
    x = keras.layers.MaxPooling2D(2)(inception_block(x))
    x = keras.layers.Flatten()(x)
    outputs = keras.layers.Dense(num_classes, activation="softmax", name="digit")(x)
    return keras.Model(image, outputs, name="inception")


# ----------------------------------------------------------------------------------------------
# Part 2: Wide & Deep on tabular regression data


def deep_path(x, units=UNITS):
    hidden = keras.layers.Dense(units, activation="relu", name="hidden1")(x)
    return keras.layers.Dense(units, activation="relu", name="hidden2")(hidden)


def build_wide_deep(n_features):
    """The input takes two routes to the output: straight (wide) and through two layers (deep)."""
    features = keras.Input(shape=(n_features,), name="features")
    merged = keras.layers.concatenate([features, deep_path(features)], name="wide_and_deep")
    return keras.Model(features, keras.layers.Dense(1, name="output")(merged), name="wide_deep")


def build_two_inputs(n_wide, n_deep, auxiliary=False):
    """Some features go wide, some deep (they may overlap); `auxiliary` adds a head on the deep path."""
    wide = keras.Input(shape=(n_wide,), name="wide")
    deep = keras.Input(shape=(n_deep,), name="deep")
    hidden = deep_path(deep)
    main = keras.layers.Dense(1, name="main")(keras.layers.concatenate([wide, hidden], name="wide_and_deep"))
    if not auxiliary:
        return keras.Model({"wide": wide, "deep": deep}, main, name="two_inputs")
    aux = keras.layers.Dense(1, name="aux")(hidden)
    return keras.Model({"wide": wide, "deep": deep}, {"main": main, "aux": aux}, name="auxiliary")


def split_features(x) -> dict:
    return {"wide": x[:, WIDE], "deep": x[:, DEEP]}


def expected_parameters(n_features, units=UNITS) -> dict:
    """Weights plus biases of each model, from the layer sizes alone (8 features: 1,239, 1,176, 1,207)."""
    n_wide, n_deep = len(range(n_features)[WIDE]), len(range(n_features)[DEEP])
    dense = lambda n_in, n_out: n_in * n_out + n_out  # noqa: E731
    return {
        "wide_deep": dense(n_features, units) + dense(units, units) + dense(n_features + units, 1),
        "two_inputs": dense(n_deep, units) + dense(units, units) + dense(n_wide + units, 1),
        "auxiliary": dense(n_deep, units) + dense(units, units) + dense(n_wide + units, 1) + dense(units, 1),
    }


REGRESSION_MODELS = ("wide_deep", "two_inputs", "auxiliary")


def build_regression_model(name, n_features):
    """One of the three functional regression models, by name."""
    n_wide, n_deep = len(range(n_features)[WIDE]), len(range(n_features)[DEEP])
    if name == "wide_deep":
        return build_wide_deep(n_features)
    return build_two_inputs(n_wide, n_deep, auxiliary=name == "auxiliary")


def regression_models(n_features) -> dict:
    return {name: build_regression_model(name, n_features) for name in REGRESSION_MODELS}


def compile_regression(model, two_heads=False, learning_rate=REGRESSION_LEARNING_RATE):
    """MSE per output, RMSE as a metric; two outputs share the loss 0.9 to 0.1."""
    model.compile(
        optimizer=keras.optimizers.SGD(learning_rate=learning_rate),
        loss={"main": "mse", "aux": "mse"} if two_heads else "mse",
        loss_weights=LOSS_WEIGHTS if two_heads else None,
        metrics={name: [keras.metrics.RootMeanSquaredError(name="rmse")] for name in ("main", "aux")}
        if two_heads
        else [keras.metrics.RootMeanSquaredError(name="rmse")],
    )
    return model


# ----------------------------------------------------------------------------------------------
# Part 3: the Subclassing API. The class is defined on first use, so that TensorFlow loads only
# after the flags are checked: `WideAndDeepModel = define_wide_and_deep()`.


@functools.cache
def define_wide_and_deep():
    @keras.saving.register_keras_serializable(package="lab")  # load_model finds the class by this name
    class WideAndDeepModel(keras.Model):
        """The auxiliary Wide & Deep again: layers made in __init__, wired together in call()."""

        def __init__(self, units=UNITS, activation="relu", **kwargs):
            super().__init__(**kwargs)
            self.units, self.activation = units, activation
            self.hidden1 = keras.layers.Dense(units, activation=activation)
            self.hidden2 = keras.layers.Dense(units, activation=activation)
            self.main_output = keras.layers.Dense(1)
            self.aux_output = keras.layers.Dense(1)

        def call(self, inputs):
            hidden = self.hidden2(self.hidden1(inputs["deep"]))  # ordinary Python: could hold loops or ifs
            main = self.main_output(keras.layers.concatenate([inputs["wide"], hidden]))
            return {"main": main, "aux": self.aux_output(hidden)}

        def get_config(self):  # what a .keras file needs to call __init__ again
            return {**super().get_config(), "units": self.units, "activation": self.activation}

    return WideAndDeepModel


def save_and_reload(model, folder, x) -> dict:
    """Save the whole model and the weights alone, load both back, compare predictions on `x`."""
    whole, weights = folder / "wide_and_deep.keras", folder / "wide_and_deep.weights.h5"
    model.save(whole)
    model.save_weights(weights)
    reloaded = keras.models.load_model(whole)
    twin = define_wide_and_deep()(units=model.units, activation=model.activation)
    twin(x)  # a subclassed model has no weights until it is called once
    twin.load_weights(weights)
    before = model.predict(x, verbose=0)["main"]
    return {
        "reloaded_class": type(reloaded).__name__,
        "reloaded_max_difference": float(np.max(np.abs(reloaded.predict(x, verbose=0)["main"] - before))),
        "weights_only_max_difference": float(np.max(np.abs(twin.predict(x, verbose=0)["main"] - before))),
        "files": [whole.name, weights.name],
    }


# ----------------------------------------------------------------------------------------------
# The three parts


def same(array):
    return array


# name: (build, compile, turn images into the model's inputs, turn labels into its targets)
IMAGE_MODELS = {
    "two_heads": (build_two_inputs_two_heads, compile_two_heads, image_inputs, image_targets),
    "inception": (build_inception, compile_classifier, same, same),
}


def train_topologies(args, *, dataset=None, quiet=False, parent_dir=None) -> RunSet:
    runs = RunSet()
    for name, (build, compile_model, inputs, targets) in IMAGE_MODELS.items():
        keras.backend.clear_session()
        with TrainingSession(__file__, args, tag=name, dataset=dataset, quiet=quiet, parent_dir=parent_dir) as session:
            data = dataset = session.data  # loaded once, shared by the next run
            model = session.model = compile_model(build(data.num_classes), args.learning_rate)
            session.record.add_extra("parameters", model.count_params())
            x_train, x_val = inputs(data.x_train), inputs(data.x_val)
            session.fit(model, x_train=x_train, y_train=targets(data.y_train), x_val=x_val, y_val=targets(data.y_val))
            tested = session.evaluate(model, x_test=inputs(data.x_test), y_test=targets(data.y_test))
            session.say(f"{name}: " + ", ".join(f"test {k} {v:.4f}" for k, v in tested.items()))
        runs.add(name, session)
        if session.status != "finished":
            break
    return runs


def regression_args(args):
    """The seed's regression settings: SGD at 1e-3, batch 32, one pass per epoch."""
    regression = copy.copy(args)
    regression.learning_rate, regression.batch_size = REGRESSION_LEARNING_RATE, REGRESSION_BATCH_SIZE
    regression.epochs, regression.steps_per_epoch = args.regression_epochs, None
    return regression


def load_table(args, quiet=False):
    return load_regression_data(
        limits=training_plan(regression_args(args)).slice, announce=(lambda message: None) if quiet else print
    )


def regression_run(args, name, build, data, *, quiet, parent_dir, after_fit=None):
    """Train one regression model in its own run folder; multi-input models get split features.
    `build()` makes the model inside the session, where the session has seeded Keras and, with
    --distribute, entered the strategy's scope."""
    two_inputs, two_heads = name != "wide_deep", name in ("auxiliary", "subclassed")
    x = split_features if two_inputs else same
    y = (lambda target: {"main": target, "aux": target}) if two_heads else (lambda target: target)
    keras.backend.clear_session()
    with TrainingSession(
        __file__, regression_args(args), tag=name, dataset=data, quiet=quiet, parent_dir=parent_dir
    ) as session:
        model = build()
        session.model = compile_regression(model, two_heads)
        session.fit(model, x_train=x(data.x_train), y_train=y(data.y_train), x_val=x(data.x_val), y_val=y(data.y_val))
        tested = session.evaluate(model, x_test=x(data.x_test), y_test=y(data.y_test))
        mean_only = float(np.mean((data.y_test - data.y_train.mean()) ** 2))
        session.record.add_extra("parameters", model.count_params())
        session.record.add_extra("training_mean_mse", mean_only)
        if two_heads:  # evaluate's three losses: the weighted total, then each head's own MSE
            total, main, aux = (float(tested[k]) for k in ("loss", "main_loss", "aux_loss"))
            weighted = LOSS_WEIGHTS["main"] * main + LOSS_WEIGHTS["aux"] * aux
            session.record.add_extra("losses", {"total": total, "main": main, "aux": aux, "weighted_sum": weighted})
        main_mse = float(tested["main_loss" if two_heads else "loss"])
        session.say(
            f"{name}: {model.count_params():,} parameters, test MSE {main_mse:.4f} (training mean {mean_only:.4f})"
        )
        if after_fit:
            after_fit(session, model, x(data.x_test[:64]))
    return session


def train_wide_deep(args, *, dataset=None, quiet=False, parent_dir=None) -> RunSet:
    data = dataset or load_table(args, quiet)
    runs = RunSet()
    for name in REGRESSION_MODELS:

        def build(name=name):
            return build_regression_model(name, data.num_features)

        session = runs.add(name, regression_run(args, name, build, data, quiet=quiet, parent_dir=parent_dir))
        if session.status != "finished":
            break
    return runs


def train_subclassing(args, *, dataset=None, quiet=False, parent_dir=None) -> TrainingSession:
    data = dataset or load_table(args, quiet)

    def build():
        model = define_wide_and_deep()(units=UNITS, activation="relu", name="wide_and_deep")
        model(split_features(data.x_train[:1]))  # creates the weights: until its first call it has none
        return model

    def save(session, model, x):
        check = save_and_reload(model, session.run_dir, x)
        session.record.add_extra("saving", check)
        session.say(
            f"Saved and reloaded as {check['reloaded_class']}: largest prediction difference "
            f"{check['reloaded_max_difference']:g} (.keras), {check['weights_only_max_difference']:g} (.weights.h5)"
        )

    return regression_run(args, "subclassed", build, data, quiet=quiet, parent_dir=parent_dir, after_fit=save)


# ----------------------------------------------------------------------------------------------
# Command line


def make_parser():
    parser = cli.build_parser(
        __doc__,
        epochs=EPOCHS,
        learning_rate=LEARNING_RATE,
        batch_size=BATCH_SIZE,
        several_runs="one run per model",
    )
    parser.add_argument(
        "--part",
        choices=("all", *PARTS),
        default="all",
        help="run one part only (default: all three); --epochs, --learning-rate, --batch-size and --dataset apply "
        "to the image models of the topologies part",
    )
    parser.add_argument(
        "--regression-epochs",
        type=cli.positive_int,
        default=REGRESSION_EPOCHS,
        help=f"epochs of each Wide & Deep run (default {REGRESSION_EPOCHS}, as in the seed)",
    )
    return parser


def train(args, *, quiet=False, parent_dir=None) -> RunSet:
    """The chosen parts in order; returns a RunSet keyed two_heads, inception, wide_deep,
    two_inputs, auxiliary, subclassed. Ctrl-C ends the part that runs and skips the rest."""
    runs = RunSet()
    wanted = PARTS if args.part == "all" else (args.part,)
    if "topologies" in wanted:
        for name, session in train_topologies(args, quiet=quiet, parent_dir=parent_dir).sessions.items():
            runs.add(name, session)
    table = None
    if "wide-deep" in wanted and not runs.exit_code:
        table = load_table(args, quiet)
        for name, session in train_wide_deep(args, dataset=table, quiet=quiet, parent_dir=parent_dir).sessions.items():
            runs.add(name, session)
    if "subclassing" in wanted and not runs.exit_code:
        runs.add("subclassed", train_subclassing(args, dataset=table, quiet=quiet, parent_dir=parent_dir))
    return runs


def main(argv=None):
    return run_main(train, make_parser, argv)


if __name__ == "__main__":
    raise SystemExit(main())
