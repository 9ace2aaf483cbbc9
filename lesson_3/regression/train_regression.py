"""Lesson 3, a regression MLP: predicting the median house value of California districts.

Regression asks for a number, not a class, so the network ends in a single unit with no
activation: whatever value it computes is the prediction. In between sits one hidden layer of 30
ReLU units. The loss is the mean squared error (MSE), and plain SGD minimises it for 20 epochs.
The features arrive standardised (zero mean, unit variance on the training rows), which SGD needs
to train stably with one learning rate for all of them.

A loss value means little alone, so the test set is scored two ways: the MSE, and its square root
(RMSE) in the target's own units, here $100,000 of house value. Next to it stands a plain linear
regression fitted on the same training rows: a network that cannot beat a straight line is not
worth its extra weights. The run ends by predicting a few test districts it never saw.

    python lesson_3/regression/train_regression.py              # full run: 20 epochs
    python lesson_3/regression/train_regression.py --quick      # same code, seconds
    python lesson_3/regression/train_regression.py --dataset diabetes
"""

import numpy as np
import pandas as pd

from labkit import cli
from labkit.deferred import keras  # TensorFlow loads on first use, after the flags are checked
from labkit.plan import training_plan
from labkit.session import TrainingSession, run_main
from labkit.tabular import DATASET_FLAGS, load_regression_data

HIDDEN_UNITS = 30
EPOCHS = 20
BATCH_SIZE = 32  # fit()'s default, which the lesson keeps
LEARNING_RATE = 1e-2  # what compile(optimizer="sgd") means
NEW_ROWS = 3  # test rows predicted at the end, standing in for new districts


# ----------------------------------------------------------------------------------------------
# The model: this is the part of the lesson to read closely.


def build_model(n_features, hidden_units=HIDDEN_UNITS):
    """Uncompiled: n_features -> Dense(hidden_units, ReLU) -> Dense(1), a linear output.

    8 housing features give 8 * 30 + 30 + 30 + 1 = 301 weights."""
    return keras.Sequential(
        [
            keras.Input(shape=(n_features,), name="features"),
            keras.layers.Dense(hidden_units, activation="relu", name="hidden"),
            keras.layers.Dense(1, name="prediction"),  # no activation: any real value can come out
        ],
        name="regression_mlp",
    )


def compile_model(model, learning_rate=LEARNING_RATE):
    """MSE loss, plain SGD, and RMSE as a metric (the error in the target's own units).

    Keras 3 spells the step size `SGD(learning_rate=...)`; the `lr=` of older code is an error now."""
    model.compile(
        optimizer=keras.optimizers.SGD(learning_rate=learning_rate),
        loss="mse",
        metrics=[keras.metrics.RootMeanSquaredError(name="rmse")],
    )
    return model


# ----------------------------------------------------------------------------------------------
# Judging the model


def regression_errors(predicted, true) -> dict:
    """MSE and RMSE of a set of predictions, computed in float64 outside Keras."""
    residual = np.asarray(predicted, dtype="float64").reshape(-1) - np.asarray(true, dtype="float64").reshape(-1)
    mse = float(np.mean(residual**2))
    return {"mse": mse, "rmse": float(np.sqrt(mse))}


def linear_baseline(data):
    """A least-squares line fitted on the same standardised training rows as the network."""
    from sklearn.linear_model import LinearRegression

    return LinearRegression().fit(data.x_train, data.y_train)


def comparison_table(mlp: dict, baseline: dict, data) -> pd.DataFrame:
    """Test errors side by side, with what predicting the training mean would score as a floor."""
    mean_only = regression_errors(np.full(len(data.y_test), data.y_train.mean()), data.y_test)
    rows = {"MLP (Dense 30 + 1)": mlp, "linear regression": baseline, "training mean (no model)": mean_only}
    table = pd.DataFrame.from_dict(rows, orient="index")[["mse", "rmse"]]
    table.columns = ["test MSE", f"test RMSE ({data.target_unit})"]
    return table


def predict_new_rows(model, baseline, data, count=NEW_ROWS) -> pd.DataFrame:
    """The first `count` test rows, as if they were new districts: both models' guesses and the truth."""
    rows = data.x_test[:count]
    return pd.DataFrame(
        {
            "MLP": model.predict(rows, verbose=0).reshape(-1),
            "linear regression": baseline.predict(rows),
            "true value": data.y_test[:count],
        }
    ).astype("float64")


# ----------------------------------------------------------------------------------------------
# Command line


def make_parser():
    return cli.build_parser(
        __doc__,
        epochs=EPOCHS,
        learning_rate=LEARNING_RATE,
        batch_size=BATCH_SIZE,
        **DATASET_FLAGS,
    )


def load_data(args, *, announce=print):
    """The data named by `--dataset` (default: housing, or diabetes with a notice), split and scaled
    by labkit.tabular, and cut to quick mode's slice when `--quick` is on."""
    return load_regression_data(args.dataset, limits=training_plan(args).slice, announce=announce)


def train(args, *, dataset=None, quiet=False, parent_dir=None):
    """Train, score on the test set next to a linear regression, predict a few rows; returns the session."""
    if dataset is None:
        dataset = load_data(args, announce=(lambda message: None) if quiet else print)
    extra_hparams = {"hidden_units": HIDDEN_UNITS}
    with TrainingSession(
        __file__, args, dataset=dataset, quiet=quiet, parent_dir=parent_dir, extra_hparams=extra_hparams
    ) as session:
        data = session.data
        model = compile_model(build_model(data.num_features), args.learning_rate)
        session.model = model
        session.fit(model)
        tested = session.evaluate(model)  # Keras's own MSE ("loss") and RMSE, in <run>/test too
        mlp = {"mse": float(tested["loss"]), "rmse": float(tested["rmse"])}
        baseline = linear_baseline(data)
        base = regression_errors(baseline.predict(data.x_test), data.y_test)
        table = comparison_table(mlp, base, data)
        session.record.add_extra(
            "evaluation",
            {
                "target_unit": data.target_unit,
                "mlp": mlp,
                "linear_regression": base,
                "training_mean": dict(zip(("mse", "rmse"), table.iloc[2].tolist(), strict=True)),
                "mlp_beats_baseline": mlp["mse"] < base["mse"],
            },
        )
        predictions = predict_new_rows(model, baseline, data)
        session.record.add_extra(
            "predictions",
            [
                {"mlp": row[0], "linear_regression": row[1], "true": row[2]}
                for row in predictions.itertuples(index=False)
            ],
        )
        session.say("\nTest set, " + f"{len(data.y_test)} rows:\n" + table.to_string(float_format="{:.4f}".format))
        session.say(
            f"\nThe first {len(predictions)} test rows, as new data ({data.target_unit}):\n"
            + predictions.to_string(float_format="{:.3f}".format)
        )
    return session


def main(argv=None):
    return run_main(train, make_parser, argv)


if __name__ == "__main__":
    raise SystemExit(main())
