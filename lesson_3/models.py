"""Lesson 3's models and callback that more than one activity uses, written once.

Each is taught on its own page first; the other pages import it from here instead of copying it:
- `fashion_mlp`: the Fashion-MNIST classifier of `fashion_classifier/train_mnist.py` (seed 001's
  300-100 MLP), used again by `tensorboard/` and `tuning/train_lr_finder.py`;
- `regression_mlp`: the housing regression MLP of `regression/train_regression.py`, used again by
  `callbacks/`, `tensorboard/` and `tuning/`;
- `ValTrainRatio`: the custom callback of `callbacks/train_with_callbacks.py`, used again by
  `deep_mlp/`.
"""

import keras


def fashion_mlp(num_classes: int = 10) -> keras.Sequential:
    """28x28 images -> Flatten -> Dense(300, ReLU) -> Dense(100, ReLU) -> softmax over the classes."""
    return keras.Sequential(
        [
            keras.Input(shape=(28, 28, 1)),  # Keras 3 wants an Input; input_shape= on a layer only warns
            keras.layers.Flatten(),  # (28, 28, 1) -> 784: Dense layers read flat vectors
            keras.layers.Dense(300, activation="relu"),
            keras.layers.Dense(100, activation="relu"),
            keras.layers.Dense(num_classes, activation="softmax"),
        ]
    )


def regression_mlp(n_features: int, hidden_units: int = 30) -> keras.Sequential:
    """n_features -> Dense(hidden_units, ReLU) -> Dense(1), a linear output: any real value can
    come out. 8 housing features give 8 * 30 + 30 + 30 + 1 = 301 weights."""
    return keras.Sequential(
        [
            keras.Input(shape=(n_features,), name="features"),
            keras.layers.Dense(hidden_units, activation="relu", name="hidden"),
            keras.layers.Dense(1, name="prediction"),
        ],
        name="regression_mlp",
    )


class ValTrainRatio(keras.callbacks.Callback):
    """Validation loss over training loss after every epoch: a ratio that climbs well above 1 says
    the model has started to overfit. Keras passes `on_epoch_end` the epoch's logs, which hold
    `loss` (averaged over the epoch's batches) and `val_loss` (scored at its end)."""

    def __init__(self, writer=None, echo=print):
        super().__init__()
        self.writer, self.echo = writer, echo
        self.ratios = []

    def on_epoch_end(self, epoch, logs=None):
        import tensorflow as tf

        ratio = logs["val_loss"] / logs["loss"]
        self.ratios.append(float(ratio))
        self.echo(f"epoch {epoch + 1}: val/train loss ratio {ratio:.2f}")
        if self.writer is not None:
            with self.writer.as_default():
                tf.summary.scalar("val_train_loss_ratio", ratio, step=epoch)
