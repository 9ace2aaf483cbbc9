"""Lesson 3's models and callback that more than one activity uses, written once.

Each is taught on its own page first; the other pages import it from here instead of copying it:
- `fashion_mlp`: the Fashion-MNIST classifier of `fashion_classifier/train_mnist.py` (seed 001's
  300-100 MLP), used again by `tensorboard/` and `tuning/train_lr_finder.py`;
- `regression_mlp`: the housing regression MLP of `regression/train_regression.py`, used again by
  `callbacks/`, `tensorboard/` and `tuning/`;
- `searched_mlp`: the regression MLP of any depth and width that the two searches of `tuning/`
  build for each candidate (`train_random_search.py` explains it, `train_keras_tuner.py` uses it
  again); each page compiles it with the learning rate it drew;
- `ValTrainRatio`: the custom callback of `callbacks/train_with_callbacks.py`, used again by
  `deep_mlp/`.
- `best_model_check`: how `callbacks/train_with_callbacks.py` checks that ModelCheckpoint and
  EarlyStopping kept the best epoch, used again by `deep_mlp/`.
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


def searched_mlp(n_features: int, n_hidden: int = 1, n_neurons: int = 30) -> keras.Sequential:
    """n_features -> n_hidden Dense(n_neurons, ReLU) layers -> Dense(1), a linear output; uncompiled.
    With n_hidden=0 it is a linear regression (and n_neurons goes unused)."""
    model = keras.Sequential([keras.Input(shape=(n_features,), name="features")], name="searched_mlp")
    for index in range(n_hidden):
        model.add(keras.layers.Dense(n_neurons, activation="relu", name=f"hidden_{index + 1}"))
    model.add(keras.layers.Dense(1, name="prediction"))
    return model


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


def best_model_check(model, history, checkpoint_path, x_val, y_val) -> dict:
    """The best validation loss that `history` logged, next to what the model after training (with
    EarlyStopping's restored weights) and the model saved at `checkpoint_path` (ModelCheckpoint's
    `save_best_only` file) score on the same validation rows. All three should agree."""
    import numpy as np

    logged = history.history["val_loss"]
    best_index = int(np.argmin(logged))  # a NaN counts as the lowest: a diverged run has no best epoch
    first_epoch = history.epoch[0]  # above 0 when the run was resumed
    restored = model.evaluate(x_val, y_val, verbose=0, return_dict=True)["loss"]
    saved = keras.models.load_model(checkpoint_path).evaluate(x_val, y_val, verbose=0, return_dict=True)["loss"]
    return {
        "best_epoch": first_epoch + best_index + 1,  # counted from 1, as the progress lines do
        "epochs_run": first_epoch + len(logged),
        "best_val_loss_logged": float(logged[best_index]),
        "restored_model_val_loss": float(restored),
        "checkpoint_val_loss": float(saved),
    }
