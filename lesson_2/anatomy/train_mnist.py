"""Lesson 2, anatomy of a Keras model: layers, models, losses and optimizers.

Four pieces make up every Keras training setup:

- Layers turn input tensors into output tensors. Most hold weights. Dense layers work on flat
  (samples, features) data. A stack only works if each layer accepts the shape the layer before
  it returns.
- A model connects layers. The Sequential API stacks them in a line. The Functional API wires
  them as a graph of calls. For a simple stack both give the same network.
- The loss is the number training pushes down, and it has to fit the task and the way the labels
  are written: binary cross-entropy for yes/no, categorical cross-entropy for one-hot labels,
  sparse categorical cross-entropy for integer labels, mean squared error for a real number.
- The optimizer decides how the gradient turns into a weight update. This script trains one
  model (784 -> Dense 32 ReLU -> Dense 10 softmax) three times, with SGD, RMSprop and Adam, each
  in its own run folder, so that TensorBoard draws the three curves on top of each other.

All three optimizers get the same learning rate, so only the update rule changes between the
runs. RMSprop and Adam scale each weight's step by its recent gradients. Plain SGD does not, and
at a step size that suits them it moves slowly.

    python lesson_2/anatomy/train_mnist.py                        # sgd, rmsprop, adam: 10 epochs each
    python lesson_2/anatomy/train_mnist.py --quick                # same code on a small slice, seconds
    python lesson_2/anatomy/train_mnist.py --learning-rate 0.1 --optimizers sgd,adam
"""

import argparse
import re
import warnings

import numpy as np
import pandas as pd

from labkit import cli
from labkit.deferred import keras  # TensorFlow loads on first use, after the flags are checked
from labkit.session import RunSet, TrainingSession, run_main
from lesson_2.hello_keras.train_mnist import flatten_images

HIDDEN_UNITS = 32
EPOCHS = 10
BATCH_SIZE = 128
LEARNING_RATE = 0.01  # shared by all three; see the card for why not RMSprop's usual 1e-3
OPTIMIZERS = ("sgd", "rmsprop", "adam")


# ----------------------------------------------------------------------------------------------
# Models: one network, two ways to write it


def build_sequential(input_dim=784, hidden_units=HIDDEN_UNITS, output_units=10, output_activation="softmax"):
    return keras.Sequential(
        [
            keras.Input(shape=(input_dim,)),
            keras.layers.Dense(hidden_units, activation="relu"),
            keras.layers.Dense(output_units, activation=output_activation),
        ],
        name="sequential_api",
    )


def build_functional(input_dim=784, hidden_units=HIDDEN_UNITS, output_units=10, output_activation="softmax"):
    inputs = keras.Input(shape=(input_dim,))
    hidden = keras.layers.Dense(hidden_units, activation="relu")(inputs)
    outputs = keras.layers.Dense(output_units, activation=output_activation)(hidden)
    return keras.Model(inputs=inputs, outputs=outputs, name="functional_api")


def compare_apis(images, seed=0) -> dict:
    """Build the model both ways, give the Functional one the Sequential one's weights, and
    compare the two on the same images."""
    keras.utils.set_random_seed(seed)
    sequential, functional = build_sequential(), build_functional()
    functional.set_weights(sequential.get_weights())
    return {
        "sequential_parameters": sequential.count_params(),
        "functional_parameters": functional.count_params(),
        "max_output_difference": float(
            np.max(np.abs(sequential.predict(images, verbose=0) - functional.predict(images, verbose=0)))
        ),
    }


# ----------------------------------------------------------------------------------------------
# Losses: which one goes with which task


def ink_percent(images):
    """A real-valued target: how much of the canvas the stroke covers, in percent."""
    return 100 * images.reshape(len(images), -1).mean(axis=1)


def task_targets(labels, images, num_classes=10) -> dict:
    """The same images labelled four ways, one per kind of task."""
    return {
        "binary": (labels >= num_classes // 2).astype("float32"),  # "is it a 5 or more?"
        "integer": labels.astype("int64"),
        "one_hot": keras.utils.to_categorical(labels, num_classes),
        "ink": ink_percent(images).astype("float32"),
    }


# task, target format, last layer (units, activation), loss, metric
LOSS_PAIRINGS = [
    ("yes/no: is the label 5 or more?", "binary", (1, "sigmoid"), "binary_crossentropy", "accuracy"),
    ("10 classes, integer labels", "integer", (10, "softmax"), "sparse_categorical_crossentropy", "accuracy"),
    ("10 classes, one-hot labels (to_categorical)", "one_hot", (10, "softmax"), "categorical_crossentropy", "accuracy"),
    ("regression: ink on the canvas, %", "ink", (1, None), "mse", "mae"),
]


def do_nothing_score(target_kind, train_targets, val_targets) -> float:
    """What a model that ignores the image scores: the majority class, or the mean for a number."""
    if target_kind == "ink":
        return float(np.mean(np.abs(val_targets - train_targets.mean())))
    train_classes = train_targets.argmax(axis=1) if target_kind == "one_hot" else train_targets
    val_classes = val_targets.argmax(axis=1) if target_kind == "one_hot" else val_targets
    majority = np.bincount(train_classes.astype(int)).argmax()
    return float(np.mean(val_classes == majority))


def fit_quietly(model, loss, metric, x, y, epochs, batch_size=BATCH_SIZE, seed=0):
    keras.utils.set_random_seed(seed)
    model.compile(optimizer="rmsprop", loss=loss, metrics=[metric])
    return model.fit(x, y, epochs=epochs, batch_size=batch_size, verbose=0)


def loss_table(data, epochs=5) -> pd.DataFrame:
    """Train one small model per row of LOSS_PAIRINGS and score it on the validation split.

    Every row uses the same body (Dense 32, ReLU); only the last layer and the loss change."""
    x_train, x_val = flatten_images(data.x_train), flatten_images(data.x_val)
    train_targets = task_targets(data.y_train, data.x_train, data.num_classes)
    val_targets = task_targets(data.y_val, data.x_val, data.num_classes)
    rows = []
    for task, kind, (units, activation), loss, metric in LOSS_PAIRINGS:
        model = build_sequential(output_units=units, output_activation=activation)
        fit_quietly(model, loss, metric, x_train, train_targets[kind], epochs)
        score = model.evaluate(x_val, val_targets[kind], verbose=0, return_dict=True)[metric]
        rows.append(
            {
                "task": task,
                "last layer": f"Dense({units}, {activation or 'linear'})",
                "loss": loss,
                "metric": metric,
                "validation": round(score, 4),
                "ignoring the image": round(do_nothing_score(kind, train_targets[kind], val_targets[kind]), 4),
            }
        )
    return pd.DataFrame(rows)


def wrong_pairings(data, epochs=3) -> pd.DataFrame:
    """Four mistakes students make, and what each one looks like from the outside."""
    x_train = flatten_images(data.x_train)
    targets = task_targets(data.y_train, data.x_train, data.num_classes)
    attempts = [
        (
            "integer labels + categorical_crossentropy",
            (10, "softmax"),
            "categorical_crossentropy",
            "accuracy",
            targets["integer"],
        ),
        (
            "one-hot labels + sparse_categorical_crossentropy",
            (10, "softmax"),
            "sparse_categorical_crossentropy",
            "accuracy",
            targets["one_hot"],
        ),
        (
            "yes/no task, Dense(1, softmax) + binary_crossentropy",
            (1, "softmax"),
            "binary_crossentropy",
            "accuracy",
            targets["binary"],
        ),
        ("regression target + categorical_crossentropy", (1, None), "categorical_crossentropy", "mae", targets["ink"]),
    ]
    rows = []
    for pairing, (units, activation), loss, metric, y in attempts:
        model = build_sequential(output_units=units, output_activation=activation)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            try:
                history = fit_quietly(model, loss, metric, x_train, y, epochs).history
            except ValueError as error:
                rows.append({"pairing": pairing, "fails": True, "symptom": f"ValueError: {first_line(error)}"})
                continue
            predictions = model.predict(x_train[:200], verbose=0)
        seen = [
            f"loss by epoch {', '.join(f'{v:.3f}' for v in history['loss'])}",
            f"{metric} {', '.join(f'{v:.3f}' for v in history[metric])}",
            f"predictions from {predictions.min():.3f} to {predictions.max():.3f}",
        ]
        if caught:
            seen.append(f"only a warning: {first_line(caught[0].message)}")
        rows.append({"pairing": pairing, "fails": False, "symptom": "; ".join(seen)})
    return pd.DataFrame(rows)


def first_line(message) -> str:
    """The line of a Keras message that says what is wrong, without its terminal colour codes."""
    lines = [re.sub(r"\x1b\[[0-9;]*m", "", line).strip() for line in str(message).splitlines()]
    lines = [line for line in lines if line and not line.startswith("Exception encountered")]
    return lines[0] if lines else ""


# ----------------------------------------------------------------------------------------------
# Shapes: layers must fit together


def mismatched_stack():
    """A Conv2D wants (batch, height, width, channels) but a Dense layer hands it (batch, 32)."""
    return keras.Sequential(
        [
            keras.Input(shape=(784,)),
            keras.layers.Dense(32, activation="relu"),
            keras.layers.Conv2D(8, 3, activation="relu"),
        ]
    )


def shape_errors(images) -> list[dict]:
    """Two ways to get the shapes wrong, each caught so that the message can be read."""
    cases = []
    try:
        mismatched_stack()
    except ValueError as error:
        cases.append({"mistake": "Conv2D stacked on a Dense layer", "error": first_line(error)})
    try:
        build_sequential().predict(images[:4], verbose=0)  # (4, 28, 28, 1), not flattened
    except ValueError as error:
        cases.append({"mistake": "unflattened images into a (784,) model", "error": first_line(error)})
    return cases


# ----------------------------------------------------------------------------------------------
# Optimizers: one model, three update rules


def make_optimizer(name, learning_rate):
    return {"sgd": keras.optimizers.SGD, "rmsprop": keras.optimizers.RMSprop, "adam": keras.optimizers.Adam}[name](
        learning_rate
    )


def optimizer_list(text: str) -> tuple[str, ...]:
    names = tuple(part.strip().lower() for part in text.split(",") if part.strip())
    unknown = [name for name in names if name not in OPTIMIZERS]
    if not names or unknown:
        raise argparse.ArgumentTypeError(f"expected a comma-separated list from {', '.join(OPTIMIZERS)}, got '{text}'")
    if len(set(names)) != len(names):
        raise argparse.ArgumentTypeError(f"each optimizer once, got '{text}'")
    return names


def make_parser():
    parser = cli.build_parser(
        __doc__,
        epochs=EPOCHS,
        learning_rate=LEARNING_RATE,
        batch_size=BATCH_SIZE,
        several_runs="one run per optimizer",
    )
    parser.add_argument(
        "--optimizers",
        type=optimizer_list,
        default=OPTIMIZERS,
        help=f"which to compare, comma-separated (default {','.join(OPTIMIZERS)})",
    )
    return parser


def train(args, *, dataset=None, quiet=False, parent_dir=None):
    """Train the Sequential model once per optimizer into sibling run folders; returns a RunSet
    keyed by optimizer name."""
    runs = RunSet()
    for name in args.optimizers:
        with TrainingSession(
            __file__,
            args,
            tag=name,
            extra_hparams={"optimizer": name},
            dataset=dataset,
            quiet=quiet,
            parent_dir=parent_dir,
        ) as session:
            runs.add(name, session)
            data = dataset = session.data  # loaded once, shared by the next runs
            if len(runs.sessions) == 1:
                check = compare_apis(flatten_images(data.x_val[:64]))
                session.say(
                    f"Sequential and Functional: {check['sequential_parameters']:,} and "
                    f"{check['functional_parameters']:,} parameters, largest output difference "
                    f"{check['max_output_difference']:g} with the same weights"
                )
            keras.utils.set_random_seed(args.seed)  # the same starting weights for every optimizer
            model = build_sequential(output_units=data.num_classes)
            model.compile(
                optimizer=make_optimizer(name, args.learning_rate),
                loss="sparse_categorical_crossentropy",
                metrics=["accuracy"],
            )
            session.model = model
            session.fit(model, x_train=flatten_images(data.x_train), x_val=flatten_images(data.x_val))
            session.evaluate(model, x_test=flatten_images(data.x_test))
        if session.status != "finished":
            break
    runs.comparison = runs.metrics()
    if len(runs) and not quiet:
        print(
            f"\nSame model, same start, learning rate {args.learning_rate:g}:\n"
            + runs.comparison.to_string(float_format=lambda v: f"{v:.4f}")
        )
    return runs


def main(argv=None):
    return run_main(train, make_parser, argv)


if __name__ == "__main__":
    raise SystemExit(main())
