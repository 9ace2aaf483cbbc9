"""Lesson 2, Keras hello world: two Dense layers learn to read handwritten digits.

This is the classic first Keras program. Each 28x28 image becomes a flat row of 784 pixel
values in [0, 1]; a Dense layer of 512 ReLU units turns the row into a new representation, and a
10-way softmax layer turns that into ten class probabilities that sum to 1. Compiling the model
fixes the three things training needs: an optimizer (RMSprop), a loss (sparse categorical
cross-entropy, because the labels are plain integers 0-9) and a metric to watch (accuracy).
Training runs 5 epochs over mini-batches of 128 images.

On MNIST this reaches about 97.8% test accuracy while training accuracy climbs near 99%: the
difference is overfitting, so the run records both accuracies and the gap between them.

    python lesson_2/hello_keras/train_mnist.py            # full run: 5 epochs
    python lesson_2/hello_keras/train_mnist.py --quick    # same code on a small slice, seconds
    python lesson_2/hello_keras/train_mnist.py --dataset fashion_mnist
"""

import numpy as np
import pandas as pd

from labkit import cli
from labkit.deferred import keras  # TensorFlow loads on first use, after the flags are checked
from labkit.session import TrainingSession, run_main

HIDDEN_UNITS = 512
EPOCHS = 5
BATCH_SIZE = 128
LEARNING_RATE = 1e-3  # what compile(optimizer="rmsprop") would use


# ----------------------------------------------------------------------------------------------
# The model: this is the part of the lesson to read closely.


def flatten_images(images):
    """(n, 28, 28, 1) images -> (n, 784) rows. A Dense layer reads one flat vector per sample,
    so the 2-D layout of the pixels is thrown away here (Lesson 3's convolutions keep it)."""
    return images.reshape(len(images), -1)


def build_model(input_dim=784, hidden_units=HIDDEN_UNITS, num_classes=10, activation="relu"):
    return keras.Sequential(
        [
            keras.Input(shape=(input_dim,), name="pixels"),
            keras.layers.Dense(hidden_units, activation=activation, name="hidden"),
            keras.layers.Dense(num_classes, activation="softmax", name="class_probabilities"),
        ],
        name="hello_world_mlp",
    )


def compile_model(model, learning_rate=LEARNING_RATE):
    model.compile(
        optimizer=keras.optimizers.RMSprop(learning_rate), loss="sparse_categorical_crossentropy", metrics=["accuracy"]
    )
    return model


# ----------------------------------------------------------------------------------------------
# Reading the trained model


def overfitting_gap(model, x_train, y_train, x_test, y_test) -> dict:
    """Accuracy on the images the model trained on vs. on images it never saw.

    The training accuracy Keras prints during fit() is averaged over an epoch while the weights
    were still moving; scoring the finished model on the training set is the fair comparison.
    """
    train_accuracy = model.evaluate(x_train, y_train, batch_size=512, verbose=0, return_dict=True)["accuracy"]
    test_accuracy = model.evaluate(x_test, y_test, batch_size=512, verbose=0, return_dict=True)["accuracy"]
    return {
        "train_accuracy": float(train_accuracy),
        "test_accuracy": float(test_accuracy),
        "gap": float(train_accuracy - test_accuracy),
    }


def first_predictions(model, images, labels, class_names=None, count=10) -> pd.DataFrame:
    """The model's verdict on the first `count` images: argmax class, its probability, the label."""
    probabilities = model.predict(images[:count], verbose=0)
    predicted = probabilities.argmax(axis=1)
    names = class_names or [str(i) for i in range(probabilities.shape[1])]
    return pd.DataFrame(
        {
            "label": [names[i] for i in labels[:count]],
            "predicted": [names[i] for i in predicted],
            "probability": probabilities[np.arange(len(predicted)), predicted].round(4),
            "correct": predicted == labels[:count],
        }
    )


# ----------------------------------------------------------------------------------------------
# Command line


def make_parser():
    return cli.build_parser(__doc__, epochs=EPOCHS, learning_rate=LEARNING_RATE, batch_size=BATCH_SIZE)


def train(args, *, dataset=None, quiet=False, parent_dir=None):
    """Train, evaluate on the test set and record the train/test gap; returns the session."""
    with TrainingSession(__file__, args, dataset=dataset, quiet=quiet, parent_dir=parent_dir) as session:
        data = session.data
        model = compile_model(build_model(num_classes=data.num_classes), args.learning_rate)
        session.model = model
        session.fit(model, x_train=flatten_images(data.x_train), x_val=flatten_images(data.x_val))
        session.evaluate(model, x_test=flatten_images(data.x_test))
        gap = overfitting_gap(
            model, flatten_images(data.x_train), data.y_train, flatten_images(data.x_test), data.y_test
        )
        session.record.add_extra("overfitting", gap)
        session.say(
            f"Overfitting: train accuracy {gap['train_accuracy']:.4f} vs test "
            f"{gap['test_accuracy']:.4f}, a gap of {100 * gap['gap']:.1f} points"
        )
    return session


def main(argv=None):
    return run_main(train, make_parser, argv)


if __name__ == "__main__":
    raise SystemExit(main())
