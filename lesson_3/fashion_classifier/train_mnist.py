"""Lesson 3, activity 1: an image classifier for Fashion-MNIST, built with the Sequential API.

Fashion-MNIST has the shape of MNIST (28x28 grey images, ten classes, 60,000 for training and
10,000 for testing) but shows clothes and shoes instead of digits, and it is harder: a linear
model reaches about 92% on MNIST and only about 83% here. The first 5,000 training images are
held out for validation and the pixels are scaled to [0, 1] (labkit.data does both).

The network flattens each image into 784 values and passes them through two hidden Dense
layers, 300 and 100 ReLU units, to a 10-way softmax. It trains with plain SGD at a learning
rate of 0.01 for 30 epochs in batches of 32, which reaches about 88.5% test accuracy.

    python lesson_3/fashion_classifier/train_mnist.py                     # full run: 30 epochs
    python lesson_3/fashion_classifier/train_mnist.py --quick             # same code, seconds
    python lesson_3/fashion_classifier/train_mnist.py --linear-baseline   # linear model, Fashion vs MNIST
"""

import argparse

import numpy as np
import pandas as pd

from labkit import LabError, cli
from labkit import data as lab_data
from labkit.deferred import keras  # TensorFlow loads on first use, after the flags are checked
from labkit.distribute import clear_session
from labkit.plan import training_plan
from labkit.session import RunSet, TrainingSession, run_main

EPOCHS = 30
BATCH_SIZE = 32  # what fit() uses when it is not told
LEARNING_RATE = 0.01  # what compile(optimizer="sgd") would use
# A softmax regression has a convex loss and settles much sooner than the MLP: with the same SGD
# steps, validation accuracy gains under 0.2 points between epochs 8 and 10 on Fashion-MNIST.
LINEAR_EPOCHS = 10
# The class-weight demonstration starves two classes that look like other clothes.
RARE_CLASSES = (2, 6)  # Pullover and Shirt
RARE_FRACTION = 0.05


# ----------------------------------------------------------------------------------------------
# The model: this is the part of the lesson to read closely.


def build_model(num_classes=10):
    # A fresh Keras session restarts layer naming, so the first hidden layer is called "dense"
    # however many models the process built before. (labkit's clear_session is Keras's, and keeps
    # a --distribute run's strategy scope, which Keras's alone would drop.)
    clear_session()
    return keras.Sequential(
        [
            keras.Input(shape=(28, 28, 1)),  # Keras 3 wants an Input; input_shape= on a layer only warns
            keras.layers.Flatten(),  # (28, 28, 1) -> 784: Dense layers read flat vectors
            keras.layers.Dense(300, activation="relu"),
            keras.layers.Dense(100, activation="relu"),
            keras.layers.Dense(num_classes, activation="softmax"),
        ]
    )


def compile_model(model, learning_rate=LEARNING_RATE):
    """Sparse categorical cross-entropy, because each label is one integer 0-9, not a one-hot row.

    The optimizer's argument is `learning_rate`: Keras 3 rejects the old spelling `SGD(lr=...)`.
    """
    model.compile(
        optimizer=keras.optimizers.SGD(learning_rate=learning_rate),
        loss="sparse_categorical_crossentropy",
        metrics=["accuracy"],
    )
    return model


def build_linear_model(num_classes=10):
    """Softmax regression: the same input and output as the MLP, with no hidden layer at all."""
    clear_session()
    return keras.Sequential(
        [
            keras.Input(shape=(28, 28, 1)),
            keras.layers.Flatten(),
            keras.layers.Dense(num_classes, activation="softmax"),
        ]
    )


# ----------------------------------------------------------------------------------------------
# Looking inside the model and at what it learned


def layer_parameters(model) -> pd.DataFrame:
    """Name, output shape and parameter count of each layer, as summary() prints them."""
    return pd.DataFrame(
        {
            "layer": [layer.name for layer in model.layers],
            "output_shape": [tuple(layer.output.shape) for layer in model.layers],
            "parameters": [layer.count_params() for layer in model.layers],
        }
    )


def first_hidden_layer(model) -> dict:
    """What `get_layer` hands back, and the state of its weights before any training."""
    hidden = model.layers[1]
    weights, biases = hidden.get_weights()
    return {
        "name": hidden.name,
        "same_object_by_name": model.get_layer(hidden.name) is hidden,
        "weights_shape": weights.shape,
        "biases_shape": biases.shape,
        # Random weights break the symmetry between units; the biases may start at zero.
        "weights_std": float(weights.std()),
        "biases_all_zero": bool(np.all(biases == 0)),
    }


def learning_curves(history) -> pd.DataFrame:
    """History.history as a table, one row per epoch, numbered from 1.

    Validation is scored once at the END of each epoch; the training figures are averages over
    the epoch while the weights were still improving, so they describe the model as it was half
    an epoch earlier. Plot the training columns at `epoch - 0.5` to compare like with like.
    """
    curves = pd.DataFrame(history.history)
    curves = curves.drop(columns=[c for c in curves.columns if c.endswith("learning_rate")])
    curves.index = pd.RangeIndex(1, len(curves) + 1, name="epoch")
    return curves


def first_predictions(model, images, class_names, count=3) -> dict:
    """Class probabilities of the first `count` images, then the most likely class of each.

    Keras 3 has no `predict_classes()`: the class is the argmax of what predict() returns.
    """
    probabilities = model.predict(images[:count], verbose=0)
    classes = probabilities.argmax(axis=-1)
    return {
        "probabilities": probabilities.astype(float).round(2).tolist(),  # float64: 0.02, not 0.0199999995
        "classes": classes.tolist(),
        "names": [class_names[i] for i in classes],
    }


# ----------------------------------------------------------------------------------------------
# Class weights: what to do when some classes are rare


def imbalanced_slice(images, labels, rare_classes=RARE_CLASSES, keep_fraction=RARE_FRACTION):
    """All images of the common classes, and only the first `keep_fraction` of each rare one."""
    keep = np.ones(len(labels), dtype=bool)
    for rare in rare_classes:
        positions = np.flatnonzero(labels == rare)
        keep[positions[int(np.ceil(keep_fraction * len(positions))) :]] = False
    return images[keep], labels[keep]


def balanced_class_weights(labels, num_classes=10) -> dict:
    """n / (k * n_c) for each class c: every class then weighs the same in the total loss."""
    counts = np.bincount(labels, minlength=num_classes)
    return {c: float(len(labels) / (num_classes * counts[c])) for c in range(num_classes) if counts[c]}


def per_class_recall(model, images, labels, num_classes=10) -> np.ndarray:
    # A direct call instead of predict(): no new tf.function to trace for each of the three models.
    predicted = np.asarray(model(images, training=False)).argmax(axis=-1)
    return np.array([np.mean(predicted[labels == c] == c) for c in range(num_classes)])


def class_weight_comparison(data, *, train_size=5000, epochs=5, seed=42, learning_rate=LEARNING_RATE) -> dict:
    """Train the MLP three times on a deliberately imbalanced slice and score each on the full,
    balanced validation set: without weights, with `class_weight`, with `sample_weight`.

    All three start from the same weights and see the same batches. `sample_weight` here holds
    each image's class weight, so it must give the same model as `class_weight` (Keras refuses
    both at once); its real use is weighting single images, such as labels checked by an expert.
    """
    images, labels = imbalanced_slice(data.x_train[:train_size], data.y_train[:train_size])
    weights = balanced_class_weights(labels, data.num_classes)
    options = {
        "no weights": {},
        "class_weight": {"class_weight": weights},
        "sample_weight": {"sample_weight": np.array([weights[c] for c in labels])},
    }
    recall = {}
    for name, weighting in options.items():
        keras.utils.set_random_seed(seed)
        model = compile_model(build_model(data.num_classes), learning_rate)
        model.fit(images, labels, epochs=epochs, batch_size=BATCH_SIZE, verbose=0, **weighting)
        recall[name] = per_class_recall(model, data.x_val, data.y_val, data.num_classes)
    table = pd.DataFrame(recall, index=pd.Index(data.class_names, name="class"))
    table.loc["mean, rare classes"] = table.iloc[list(RARE_CLASSES)].mean()
    table.loc["mean, all classes"] = table.iloc[: data.num_classes].mean()
    return {
        "recall": table,
        "counts": np.bincount(labels, minlength=data.num_classes).tolist(),
        "class_weight": weights,
        "rare_classes": [data.class_names[c] for c in RARE_CLASSES],
    }


# ----------------------------------------------------------------------------------------------
# Command line


def make_parser():
    parser = cli.build_parser(
        __doc__,
        epochs=EPOCHS,
        learning_rate=LEARNING_RATE,
        batch_size=BATCH_SIZE,
        default_dataset="fashion_mnist",
    )
    parser.add_argument(
        "--linear-baseline",
        action="store_true",
        help="instead of the MLP, train a softmax regression on Fashion-MNIST and on MNIST (its labelled "
        f"substitute where MNIST is missing) and compare them; {LINEAR_EPOCHS} epochs unless --epochs is given",
    )
    # None until train() knows which model it trains: 30 epochs for the MLP, 10 for the linear runs.
    parser.set_defaults(epochs=None)
    return parser


def with_epochs(args) -> argparse.Namespace:
    """A copy of the flags with the epoch count filled in for the chosen model."""
    args = argparse.Namespace(**vars(args))
    if args.epochs is None:
        args.epochs = LINEAR_EPOCHS if getattr(args, "linear_baseline", False) else EPOCHS
    return args


def train(args, *, dataset=None, quiet=False, parent_dir=None):
    """Train the MLP and return its session, or with --linear-baseline the two linear runs as a RunSet."""
    args = with_epochs(args)
    if getattr(args, "linear_baseline", False):
        return train_linear_baseline(args, quiet=quiet, parent_dir=parent_dir)
    with TrainingSession(
        __file__, args, extra_hparams={"model": "mlp"}, dataset=dataset, quiet=quiet, parent_dir=parent_dir
    ) as session:
        data = session.data
        first = data.class_names[data.y_train[0]]
        session.say(f"Classes: {', '.join(data.class_names)}. The first training image shows: {first}")
        model = compile_model(build_model(data.num_classes), args.learning_rate)
        session.model = model
        session.record.add_extra("parameters", {layer.name: layer.count_params() for layer in model.layers})
        session.fit(model)
        session.evaluate(model)
        predictions = first_predictions(model, data.x_test, data.class_names)
        session.record.add_extra("first_predictions", predictions)
        session.say(f"First three test images: {', '.join(predictions['names'])}")
    return session


def train_linear_baseline(args, *, quiet=False, parent_dir=None) -> RunSet:
    """Softmax regression on Fashion-MNIST, then on MNIST, with the same optimizer and steps.

    The 4,000 training digits of the MNIST substitute make an epoch 14 times shorter than
    Fashion-MNIST's; each of its epochs therefore runs as many steps as a Fashion-MNIST epoch,
    so that neither model stops short of where it would settle.
    """
    if args.dataset is not None:
        raise LabError("--linear-baseline trains on Fashion-MNIST and on MNIST itself; leave out --dataset")
    say = (lambda message: None) if quiet else (lambda message: print(message, flush=True))
    limits = training_plan(args).slice
    # Fashion-MNIST by name, before anything is written: the comparison means nothing on a
    # stand-in. MNIST by default: where it is missing, its labelled real substitute, with a
    # one-line notice that says so.
    fashion = lab_data.load_dataset("fashion_mnist", limits=limits, announce=say)
    runs = RunSet()
    first = runs.add("linear_fashion", train_linear_run("linear_fashion", args, fashion, quiet, parent_dir))
    if first.status != "finished":
        return runs
    mnist = lab_data.load_dataset(None, default="mnist", limits=limits, announce=say)
    same_steps = args.steps_per_epoch or first.plan.steps_per_epoch_for(len(fashion.x_train))
    mnist_args = argparse.Namespace(**{**vars(args), "steps_per_epoch": same_steps})
    second = runs.add("linear_mnist", train_linear_run("linear_mnist", mnist_args, mnist, quiet, parent_dir))
    if second.status != "finished":
        return runs
    runs.comparison = linear_comparison(runs)
    gap = runs.comparison.at["linear_mnist", "test_accuracy"] - runs.comparison.at["linear_fashion", "test_accuracy"]
    runs.last.record.add_extra("linear_baseline", runs.comparison.reset_index().to_dict(orient="records"))
    runs.last.record.add_extra("mnist_minus_fashion", float(gap))
    caveat = " (a quick run: too few steps for the models to settle)" if args.quick else ""
    say(
        "\nThe same linear model on both data sets:\n"
        + runs.comparison.to_string(float_format=lambda v: f"{v:.4f}")
        + f"\nTest accuracy, MNIST minus Fashion-MNIST: {100 * gap:+.1f} points{caveat}"
    )
    return runs


def train_linear_run(tag, args, data, quiet, parent_dir) -> TrainingSession:
    with TrainingSession(
        __file__, args, tag=tag, extra_hparams={"model": "linear"}, dataset=data, quiet=quiet, parent_dir=parent_dir
    ) as session:
        model = compile_model(build_linear_model(data.num_classes), args.learning_rate)
        session.model = model
        session.fit(model)
        session.evaluate(model)
    return session


def linear_comparison(runs: RunSet) -> pd.DataFrame:
    rows = {}
    for tag, session in runs.sessions.items():
        record = session.record.data
        dataset = record["dataset"]
        rows[tag] = {
            "dataset": dataset["name"] + (f" (for {dataset['substitute_for']})" if dataset["substitute_for"] else ""),
            "train_images": dataset["sizes"]["train"],
            "epochs": record["epochs_completed"],
            "steps": record["epochs_completed"] * session.plan.steps_per_epoch_for(dataset["sizes"]["train"]),
            "validation_accuracy": record["metrics"]["validation"]["accuracy"],
            "test_accuracy": record["metrics"]["test"]["accuracy"],
        }
    return pd.DataFrame.from_dict(rows, orient="index").rename_axis("run")


def main(argv=None):
    return run_main(train, make_parser, argv)


if __name__ == "__main__":
    raise SystemExit(main())
