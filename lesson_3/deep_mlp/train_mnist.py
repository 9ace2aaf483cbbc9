"""Lesson 3, exercise: a deep MLP that reads MNIST digits better than 98% of the time.

Everything this lesson built comes together in one run:
1. the learning-rate finder sweeps the rate of the untrained network from 1e-5 up to 10 over one
   pass of the training images, puts the weights back, and suggests a rate ten times below the
   point where the loss turned up (the sweep and its plot land in the run's TensorBoard folder
   and in `lr_finder.png`);
2. plain SGD then trains at that rate for up to 100 epochs; ModelCheckpoint keeps the best
   model seen in `checkpoints/best.keras`, and EarlyStopping ends training once the validation
   loss has not improved for 10 epochs and puts the best weights back;
3. the restored best model is scored on the test set, and TensorBoard holds every curve.

The network is a pyramid of three ReLU layers (300, 200, 100 units) with He initialisation, and a
10-way softmax. Two hidden layers are enough for about 98% on full MNIST; the third costs little.

`--learning-rate` skips the finder and `--hidden-units` changes the layers, which is how the
notebook trains the runs that fall short, next to the good one.

    python lesson_3/deep_mlp/train_mnist.py                          # finder, then up to 100 epochs
    python lesson_3/deep_mlp/train_mnist.py --quick                  # same code on a slice, seconds
    python lesson_3/deep_mlp/train_mnist.py --learning-rate 5        # no finder: a rate that diverges
    python lesson_3/deep_mlp/train_mnist.py --hidden-units 16        # one narrow layer
    tensorboard --logdir runs/lesson_3/deep_mlp
"""

import argparse
import copy
import math

import pandas as pd

from labkit import LabError, cli
from labkit.deferred import keras  # TensorFlow loads on first use, after the flags are checked
from labkit.lr_finder import find_learning_rate, save_sweep_figure
from labkit.session import TrainingSession, run_main
from lesson_3.callbacks.train_with_callbacks import CHECKPOINT, best_model_check, lesson_callbacks

HIDDEN_UNITS = "300,200,100"  # the pyramid: each layer narrower than the one before
EPOCHS = 100  # an upper bound: early stopping decides
PATIENCE = 10
BATCH_SIZE = 32
FINDER_FOLDER = "lr_finder"  # the sweep's TensorBoard folder inside the run
FINDER_PLOT = "lr_finder.png"


# ----------------------------------------------------------------------------------------------
# The model: this is the part of the lesson to read closely.


def build_model(hidden_units=(300, 200, 100), num_classes=10):
    layers = [keras.Input(shape=(28, 28, 1), name="image"), keras.layers.Flatten(name="pixels")]
    for number, units in enumerate(hidden_units, start=1):
        # He initialisation draws each layer's weights with a variance of 2 / inputs, which keeps the
        # signal from fading or growing as it passes through stacked ReLU layers.
        layers.append(
            keras.layers.Dense(units, activation="relu", kernel_initializer="he_normal", name=f"hidden{number}")
        )
    layers.append(keras.layers.Dense(num_classes, activation="softmax", name="digit_probabilities"))
    return keras.Sequential(layers, name="deep_mlp")


def compile_model(model, learning_rate):
    """Plain SGD, as in the chapter: the rate is the only knob, so the finder's choice shows."""
    model.compile(
        optimizer=keras.optimizers.SGD(learning_rate=learning_rate),
        loss="sparse_categorical_crossentropy",
        metrics=["accuracy"],
    )
    return model


def run_finder(session, model, x, y):
    """Sweep the rate over one pass of (x, y) and keep the sweep in the run: scalars and the plot
    in `<run>/lr_finder`, the plot in `lr_finder.png`, the reading in run.json."""
    writer = session.open_writer(FINDER_FOLDER)
    try:
        result = find_learning_rate(model, x, y, batch_size=session.plan.batch_size, writer=writer)
    except ValueError as error:  # a batch size so large that the pass holds one or two batches
        raise LabError(
            f"the learning-rate finder could not read its sweep ({error}): use a smaller --batch-size, "
            "or give --learning-rate"
        ) from None
    save_sweep_figure(result, session.run_dir / FINDER_PLOT, writer=writer)
    session.record.add_extra("lr_finder", result.describe())
    session.say(f"Learning-rate finder, {len(result.rates)} batches: {result.how}")
    for note in result.notes:
        session.say(f"  note: {note}")
    return result


def training_callbacks(session, patience):
    """The best-model checkpoint and early stopping of the callbacks activity, and a stop at the
    first NaN loss: a diverged run has nothing left to learn."""
    checkpoint, early_stopping, _ = lesson_callbacks(session.run_dir, patience)
    return [checkpoint, early_stopping, keras.callbacks.TerminateOnNaN()]


# ----------------------------------------------------------------------------------------------
# Reading the runs


def report_best_model(session, model) -> None:
    """Check that the checkpoint and the restored weights are the best epoch, or say that there
    was no best epoch: a diverged run logs NaN losses, and Keras saves its first epoch anyway."""
    data = session.data
    check = best_model_check(model, session.history, session.run_dir, data.x_val, data.y_val)
    check["diverged"] = not math.isfinite(check["best_val_loss_logged"])
    session.record.add_extra("callbacks", check)
    if check["diverged"]:
        session.say(
            f"Diverged: the loss became NaN in epoch {check['epochs_run']} and training stopped there;"
            f" {CHECKPOINT} holds NaN weights."
        )
    else:
        session.say(
            f"Best epoch {check['best_epoch']} of {check['epochs_run']} (validation loss"
            f" {check['best_val_loss_logged']:.4f}): restored, and saved in {CHECKPOINT}."
        )


def compare_runs(sessions: dict) -> pd.DataFrame:
    """One row per run: how it was set up, how long it trained, and how well it ended."""
    rows = {}
    for name, session in sessions.items():
        record = session.record.data
        check = record["extra"].get("callbacks", {})
        rows[name] = {
            "hidden_units": record["hparams"]["hidden_units"],
            "learning_rate": record["hparams"]["learning_rate"],
            "rate_from": record["hparams"]["rate_from"],
            "epochs_run": check.get("epochs_run"),
            "best_epoch": None if check.get("diverged") else check.get("best_epoch"),
            "validation_accuracy": record["metrics"]["validation"].get("accuracy"),
            "test_accuracy": record["metrics"]["test"].get("accuracy"),
        }
    return pd.DataFrame.from_dict(rows, orient="index")


def with_changes(args, **changes) -> argparse.Namespace:
    """A copy of the flags with some of them changed, as the command line would give them."""
    return argparse.Namespace(**{**vars(args), **changes})


# ----------------------------------------------------------------------------------------------
# Command line


def layer_sizes(text: str) -> str:
    """`--hidden-units 300,200,100`: one or more positive widths, kept as text (run.json and the
    HParams dashboard take it as it is; a resumed run reads it back from there)."""
    parts = [part.strip() for part in str(text).split(",")]
    try:
        sizes = [cli.positive_int(part) for part in parts]
    except argparse.ArgumentTypeError as error:
        raise argparse.ArgumentTypeError(f"expected widths such as 300,200,100: {error}") from None
    return ",".join(str(size) for size in sizes)


def hidden_units_of(args) -> tuple[int, ...]:
    return tuple(int(part) for part in layer_sizes(args.hidden_units).split(","))


def make_parser():
    # No fixed rate: unless the flag gives one, the finder picks it for this network and data.
    parser = cli.build_parser(
        __doc__,
        epochs=EPOCHS,
        learning_rate=None,
        batch_size=BATCH_SIZE,
        learning_rate_help="SGD step size; skips the learning-rate finder (default: the rate the finder suggests)",
    )
    parser.add_argument(
        "--hidden-units",
        type=layer_sizes,
        default=HIDDEN_UNITS,
        help=f"widths of the hidden ReLU layers, comma-separated (default {HIDDEN_UNITS})",
    )
    parser.add_argument(
        "--patience",
        type=cli.positive_int,
        default=PATIENCE,
        help=f"epochs without a better validation loss before early stopping (default {PATIENCE})",
    )
    return parser


def train(args, *, dataset=None, quiet=False, parent_dir=None, tag=None):
    """Finder (unless --learning-rate), training with checkpoint and early stopping, then the test
    set; returns the session. `tag` names a run in the notebook's comparison ("too-fast", ...)."""
    args = copy.copy(args)  # the chosen rate is written into this run's copy of the flags only
    units = hidden_units_of(args)
    hparams = {"hidden_units": args.hidden_units, "patience": args.patience}
    hparams["rate_from"] = "finder" if args.learning_rate is None else "--learning-rate"
    with TrainingSession(
        __file__, args, tag=tag, extra_hparams=hparams, dataset=dataset, quiet=quiet, parent_dir=parent_dir
    ) as session:
        data = session.data
        model = build_model(units, data.num_classes)
        session.model = model
        if args.learning_rate is None:
            # The sweep moves the optimizer; the finder puts the weights back, and compiling again
            # below gives training a fresh optimizer at the chosen rate.
            compile_model(model, learning_rate=1e-3)
            args.learning_rate = run_finder(session, model, data.x_train, data.y_train).suggested_rate
            session.record.set_hparams(session.hparams())  # run.json records the rate trained with
        elif not getattr(args, "resume", None):  # a resumed run keeps the rate it started with
            session.say(f"Learning rate {args.learning_rate:g} from --learning-rate: the finder was skipped.")
        compile_model(model, args.learning_rate)
        session.fit(model, extra_callbacks=training_callbacks(session, args.patience))
        report_best_model(session, model)
        metrics = session.evaluate(model)
        session.say(f"Test accuracy of the restored best model: {metrics['accuracy']:.4f}")
    return session


def main(argv=None):
    return run_main(train, make_parser, argv)


if __name__ == "__main__":
    raise SystemExit(main())
