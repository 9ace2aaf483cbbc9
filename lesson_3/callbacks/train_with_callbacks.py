"""Lesson 3, callbacks: keep the best model, stop when it stops improving, watch overfitting live.

`fit` calls back into objects you hand it at fixed moments: when training starts and ends, when
each epoch and each batch starts and ends (and likewise inside `evaluate` and `predict`). Keras
ships callbacks for the common jobs, and a callback of your own is a small class.

This activity trains Lesson 3's regression MLP for up to 100 epochs with three of them:
- ModelCheckpoint saves the model to `<run>/checkpoints/best.keras` whenever the validation loss
  beats its best so far (`save_best_only`), so the file always holds the best model seen;
- EarlyStopping ends training once the validation loss has not improved for 10 epochs, and puts
  the best weights back (`restore_best_weights`), so you can ask for many epochs without risk;
- ValTrainRatio, written here, prints validation loss / training loss after every epoch and logs
  it to TensorBoard. Far above 1 means the model is fitting noise in the training rows.

The run then checks the callbacks did what they promised: the restored model and the checkpoint
file both score the best validation loss that the log recorded.

Every Keras activity of the course can also be resumed after a crash: `--resume RUN_DIR` (see
this folder's README.md) continues from the last completed epoch, through Keras's
BackupAndRestore callback that the toolkit adds to every run.

    python lesson_3/callbacks/train_with_callbacks.py            # up to 100 epochs, stops early
    python lesson_3/callbacks/train_with_callbacks.py --quick    # same code, 2 epochs, seconds
    python lesson_3/callbacks/train_with_callbacks.py --resume runs/lesson_3/callbacks/<run>
"""

import numpy as np
import pandas as pd

from labkit import cli
from labkit.deferred import keras, tf  # TensorFlow loads on first use, after the flags are checked
from labkit.session import TrainingSession, run_main
from labkit.tabular import DATASET_FLAGS
from lesson_3.regression.train_regression import build_model, compile_model, load_data

EPOCHS = 100  # an upper bound: early stopping decides
PATIENCE = 10  # epochs without a better validation loss before training stops
BATCH_SIZE = 32
# The faster of the two rates the chapter compares in TensorBoard. At the regression activity's
# 0.01, the small diabetes set is still improving after 100 epochs and early stopping never acts.
LEARNING_RATE = 0.05
CHECKPOINT = "checkpoints/best.keras"  # Keras 3 saves whole models as .keras, not the old .h5


# ----------------------------------------------------------------------------------------------
# The callbacks: this is the part of the lesson to read closely.


def make_val_train_ratio(writer=None, echo=print):
    """A callback of our own: validation loss over training loss after every epoch.

    Keras passes `on_epoch_end` the epoch's logs, which hold `loss` (averaged over the epoch's
    batches) and `val_loss` (scored at its end). A class that needs `keras` is built inside a
    function here so that the module loads without TensorFlow; in your own code a plain
    `class ValTrainRatio(keras.callbacks.Callback)` at the top level is the usual form."""

    class ValTrainRatio(keras.callbacks.Callback):
        def __init__(self):
            super().__init__()
            self.ratios = []

        def on_epoch_end(self, epoch, logs=None):
            ratio = logs["val_loss"] / logs["loss"]
            self.ratios.append(float(ratio))
            echo(f"epoch {epoch + 1}: val/train loss ratio {ratio:.2f}")
            if writer is not None:
                with writer.as_default():
                    tf.summary.scalar("val_train_loss_ratio", ratio, step=epoch)

    return ValTrainRatio()


def lesson_callbacks(run_dir, patience=PATIENCE, writer=None, echo=print):
    """The checkpoint, early stopping and ratio callbacks, in the order fit should call them."""
    checkpoint = keras.callbacks.ModelCheckpoint(str(run_dir / CHECKPOINT), monitor="val_loss", save_best_only=True)
    early_stopping = keras.callbacks.EarlyStopping(monitor="val_loss", patience=patience, restore_best_weights=True)
    return checkpoint, early_stopping, make_val_train_ratio(writer, echo)


# ----------------------------------------------------------------------------------------------
# Checking what the callbacks promised


def best_model_check(model, history, run_dir, x_val, y_val) -> dict:
    """The best validation loss in the log, next to what the restored model and the checkpoint
    file score on the same validation rows, in the same batches as fit used."""
    logged = history.history["val_loss"]
    best_index = int(np.argmin(logged))
    first_epoch = history.epoch[0]  # above 0 when the run was resumed
    restored = model.evaluate(x_val, y_val, batch_size=256, verbose=0, return_dict=True)["loss"]
    from_file = keras.models.load_model(run_dir / CHECKPOINT)
    reloaded = from_file.evaluate(x_val, y_val, batch_size=256, verbose=0, return_dict=True)["loss"]
    return {
        "best_epoch": first_epoch + best_index + 1,  # counted from 1, as the progress lines do
        "epochs_run": first_epoch + len(logged),
        "best_val_loss_logged": float(logged[best_index]),
        "restored_model_val_loss": float(restored),
        "checkpoint_val_loss": float(reloaded),
    }


def learning_curves(history) -> pd.DataFrame:
    """Training and validation loss per epoch (from 1), with the ratio the callback printed."""
    frame = pd.DataFrame(history.history, index=pd.Index([e + 1 for e in history.epoch], name="epoch"))
    frame["val/train"] = frame["val_loss"] / frame["loss"]
    return frame[["loss", "val_loss", "val/train"]]


# ----------------------------------------------------------------------------------------------
# Command line


def make_parser():
    parser = cli.build_parser(
        __doc__,
        epochs=EPOCHS,
        learning_rate=LEARNING_RATE,
        batch_size=BATCH_SIZE,
        **DATASET_FLAGS,
    )
    parser.add_argument(
        "--patience",
        type=cli.positive_int,
        default=PATIENCE,
        help=f"epochs without a better validation loss before early stopping (default {PATIENCE})",
    )
    return parser


def train(args, *, dataset=None, quiet=False, parent_dir=None):
    """Train with the three callbacks, then check the restored and saved models; returns the session."""
    if dataset is None:
        dataset = load_data(args, announce=(lambda message: None) if quiet else print)
    with TrainingSession(
        __file__, args, dataset=dataset, quiet=quiet, parent_dir=parent_dir, extra_hparams={"patience": args.patience}
    ) as session:
        data = session.data
        model = compile_model(build_model(data.num_features), args.learning_rate)
        session.model = model
        callbacks = lesson_callbacks(session.run_dir, args.patience, session.open_writer("train"), session.say)
        session.fit(model, extra_callbacks=callbacks)
        check = best_model_check(model, session.history, session.run_dir, data.x_val, data.y_val)
        session.record.add_extra("callbacks", check)
        session.evaluate(model)
        stopped = check["epochs_run"] < session.plan.epochs
        session.say(
            (f"Early stopping ended training after epoch {check['epochs_run']}" if stopped else "Ran every epoch")
            + f"; the best was epoch {check['best_epoch']} with validation loss {check['best_val_loss_logged']:.4f}."
            f" Restored model: {check['restored_model_val_loss']:.4f}; {CHECKPOINT}: {check['checkpoint_val_loss']:.4f}"
        )
    return session


def main(argv=None):
    return run_main(train, make_parser, argv)


if __name__ == "__main__":
    raise SystemExit(main())
