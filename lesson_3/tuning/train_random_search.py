"""Lesson 3, tuning: a randomized search over the depth, width and learning rate of a regression MLP.

How many hidden layers, how many neurons in each, how large a learning rate? Rather than try a
grid of every combination, a random search draws a fixed number of candidates from the space and
keeps the best: 0 to 3 hidden layers, 1 to 99 neurons, and a learning rate between 3e-4 and 3e-2
drawn on a log scale, so that 3e-4..3e-3 is as likely as 3e-3..3e-2.

scikit-learn's RandomizedSearchCV does the drawing and scores every candidate by 3-fold
cross-validation on the training rows: it trains on two folds and scores on the third, three
times. Keras 3's own `keras.wrappers.SKLearnRegressor` makes a Keras model look like a
scikit-learn estimator. Its default score is R²; the seed's wrapper scored with the negated loss,
so the search asks for `neg_mean_squared_error`: higher is better, and -0.3 means an MSE of 0.3.
Each fit runs up to 100 epochs and stops after 10 without a better validation loss; the fixed
validation rows serve early stopping only, the score comes from the held-out fold.

The best candidate is then trained again on all the training rows (its curves in TensorBoard) and
scored once on the test set. The seed's own result, on California housing, is printed beside ours.

    python lesson_3/tuning/train_random_search.py                  # the seed's search: 10 candidates x 3 folds
    python lesson_3/tuning/train_random_search.py --quick          # 3 candidates x 2 folds x 2 epochs: seconds
    python lesson_3/tuning/train_random_search.py --n-iter 20 --seed 7
"""

import argparse
import contextlib
import functools
import logging
import math

import numpy as np
import pandas as pd
from scipy.stats import loguniform  # scipy's name for the seed's `reciprocal` distribution
from sklearn.base import BaseEstimator, clone
from sklearn.model_selection import RandomizedSearchCV, cross_val_score

from labkit import LabError, cli
from labkit.deferred import keras, tf  # TensorFlow loads on first use, after the flags are checked
from labkit.distribute import not_offered
from labkit.plan import training_plan
from labkit.session import TrainingSession, run_main
from labkit.tabular import DATASET_FLAGS
from lesson_3.regression.train_regression import load_data, regression_errors

# The seed's search space: how deep, how wide, and how fast to learn.
HIDDEN_LAYER_CHOICES = (0, 1, 2, 3)
NEURONS_RANGE = (1, 99)  # inclusive bounds, drawn uniformly
LEARNING_RATE_RANGE = (3e-4, 3e-2)  # drawn log-uniformly (scipy's reciprocal / loguniform)

# The seed's own search result, printed beside ours for reference (California housing, cv=3).
SEED_RESULT = {"learning_rate": 0.00336, "n_hidden": 2, "n_neurons": 42, "score": -0.319}

N_ITER = 10  # candidates drawn, as in the seed
CV_FOLDS = 3
EPOCHS = 100  # the most one fit trains, unless early stopping ends it sooner
PATIENCE = 10  # epochs without a better validation loss before a fit stops
BATCH_SIZE = 32
VALIDATION_BATCH_SIZE = 256  # the validation rows are only scored: bigger batches, fewer steps
QUICK_MAX_CANDIDATES = 3  # quick mode: at most 3 candidates, 2 folds, 2 epochs
QUICK_MAX_FOLDS = 2
SCORING = "neg_mean_squared_error"  # the wrapper's own score() would be R²
SEARCH_FOLDER = "random_search"  # runs/lesson_3/tuning/random_search/, apart from the folder's other scripts


def build_model(n_features, n_hidden=1, n_neurons=30, learning_rate=3e-3):
    """A compiled regression MLP: n_hidden ReLU layers of n_neurons each, one linear output unit,
    MSE loss and plain SGD. With n_hidden=0 it is a linear regression trained by gradient descent."""
    model = keras.Sequential([keras.Input(shape=(n_features,), name="features")], name="searched_mlp")
    for index in range(n_hidden):
        model.add(keras.layers.Dense(n_neurons, activation="relu", name=f"hidden_{index + 1}"))
    model.add(keras.layers.Dense(1, name="prediction"))
    model.compile(optimizer=keras.optimizers.SGD(learning_rate=learning_rate), loss="mse")
    return model


# ----------------------------------------------------------------------------------------------
# The search: this is the part of the lesson to read closely.


def search_space() -> dict:
    """What RandomizedSearchCV draws from: a list is drawn uniformly, a distribution is sampled."""
    low, high = NEURONS_RANGE
    return {
        "n_hidden": list(HIDDEN_LAYER_CHOICES),
        "n_neurons": np.arange(low, high + 1),
        "learning_rate": loguniform(*LEARNING_RATE_RANGE),
    }


@functools.cache
def searchable_mlp():
    """The estimator class the search tunes. It subclasses Keras, so it is made on first use, once
    the flags are checked, rather than when this module is imported."""

    # Why a subclass: the wrapper passes the model's arguments as one dict, `model_kwargs`, and
    # scikit-learn cannot search inside a dict (set_params only reaches into nested estimators).
    # As constructor arguments, the three hyperparameters show in get_params(), and
    # RandomizedSearchCV can set each candidate's values with set_params().
    class SearchableMLP(keras.wrappers.SKLearnRegressor):
        def __init__(
            self, n_hidden=1, n_neurons=30, learning_rate=3e-3, epochs=EPOCHS, batch_size=BATCH_SIZE, patience=PATIENCE
        ):
            super().__init__(model=build_model)
            self.n_hidden = n_hidden
            self.n_neurons = n_neurons
            self.learning_rate = learning_rate
            self.epochs = epochs
            self.batch_size = batch_size
            self.patience = patience

        def _get_model(self, X, y):
            # The hook the wrapper's fit() calls for a fresh model. The sampler hands over NumPy
            # integers, which Keras refuses as a layer's units: hence int().
            return build_model(X.shape[1], int(self.n_hidden), int(self.n_neurons), float(self.learning_rate))

        def fit(self, X, y, validation_data=None, **fit_kwargs):
            # Whatever reaches fit() (here validation_data, from search.fit) goes on to Keras's
            # model.fit, as in the seed. Early stopping is made anew for every fit: one instance
            # shared by 31 fits would be one object carrying state from fit to fit.
            callbacks = [*fit_kwargs.pop("callbacks", []), keras.callbacks.EarlyStopping(patience=self.patience)]
            if isinstance(validation_data, tuple):
                # Keras feeds validation arrays through an indexing input pipeline whose iterator
                # it rebuilds for every epoch's evaluation: on a few hundred rows that costs more
                # than the evaluation itself. A plain tf.data.Dataset of the same rows halves the
                # time of an epoch here.
                validation_data = tf.data.Dataset.from_tensor_slices(validation_data).batch(VALIDATION_BATCH_SIZE)
            fit_kwargs.update(epochs=self.epochs, batch_size=self.batch_size, callbacks=callbacks, verbose=0)
            return super().fit(X, y, validation_data=validation_data, **fit_kwargs)

        # scikit-learn clones the estimator for every fit. The wrapper's own clone rebuilds it
        # from model, warm_start and model_kwargs alone (it even drops fit_kwargs), which would
        # lose every argument above; scikit-learn's standard clone rebuilds it from get_params().
        __sklearn_clone__ = BaseEstimator.__sklearn_clone__

    return SearchableMLP


def make_search(n_iter, cv, plan, *, patience, seed, verbose=0) -> RandomizedSearchCV:
    """The seed's RandomizedSearchCV: n_iter candidates, each scored by cv-fold cross-validation."""
    estimator = searchable_mlp()(epochs=plan.epochs, batch_size=plan.batch_size, patience=patience)
    return RandomizedSearchCV(
        estimator,
        search_space(),
        n_iter=n_iter,
        cv=cv,
        scoring=SCORING,
        random_state=seed,  # the same candidates every run with the same --seed
        refit=False,  # the best is refitted below, by hand, so that its one fit logs to TensorBoard
        verbose=verbose,  # 3: one line per fit, with its score
    )


@contextlib.contextmanager
def keras_silenced():
    """No progress bar from the wrapper's predict() (one per fold otherwise), and no warning that a
    new model retraces its functions: every candidate is a new model, so that is expected."""
    interactive = keras.config.is_interactive_logging_enabled()
    tf_logger = logging.getLogger("tensorflow")
    level = tf_logger.level
    keras.config.disable_interactive_logging()
    tf_logger.setLevel(logging.ERROR)
    try:
        yield
    finally:
        tf_logger.setLevel(level)
        if interactive:
            keras.config.enable_interactive_logging()


# ----------------------------------------------------------------------------------------------
# Reading the results


def finite_or_none(value):
    value = float(value)
    return value if math.isfinite(value) else None  # a candidate whose fits failed scores NaN


def candidates_of(search) -> list[dict]:
    """Every candidate, in the order drawn: its values, its fold scores, their mean and spread."""
    results = search.cv_results_
    folds = search.n_splits_
    return [
        {
            "candidate": index + 1,
            "n_hidden": int(params["n_hidden"]),
            "n_neurons": int(params["n_neurons"]),
            "learning_rate": float(params["learning_rate"]),
            "mean_score": finite_or_none(results["mean_test_score"][index]),
            "std_score": finite_or_none(results["std_test_score"][index]),
            "fold_scores": [finite_or_none(results[f"split{fold}_test_score"][index]) for fold in range(folds)],
            "mean_fit_time_s": float(results["mean_fit_time"][index]),
            "rank": int(results["rank_test_score"][index]),
        }
        for index, params in enumerate(results["params"])
    ]


def candidates_table(candidates: list[dict]) -> pd.DataFrame:
    """The candidates best first, as printed at the end of a run (also from run.json's list)."""
    table = pd.DataFrame(candidates).sort_values(["rank", "candidate"]).set_index("rank")
    table = table[["candidate", "n_hidden", "n_neurons", "learning_rate", "mean_score", "std_score", "mean_fit_time_s"]]
    return table.rename(columns={"mean_score": "score (-MSE)", "std_score": "± std", "mean_fit_time_s": "fit s"})


def baseline_scores(data, cv) -> dict:
    """The same cross-validation for two models without a network: the training mean (a model
    that ignores the features) and a least-squares line. A search should beat the first."""
    from sklearn.dummy import DummyRegressor
    from sklearn.linear_model import LinearRegression

    return {
        name: float(cross_val_score(model, data.x_train, data.y_train, cv=cv, scoring=SCORING).mean())
        for name, model in (("training_mean", DummyRegressor()), ("linear_regression", LinearRegression()))
    }


def seed_candidate(candidates) -> int | None:
    """The number of our candidate that has the seed's best values, if we drew it too."""
    seed = (SEED_RESULT["n_hidden"], SEED_RESULT["n_neurons"], f"{SEED_RESULT['learning_rate']:.3g}")
    found = (
        row["candidate"]
        for row in candidates
        if (row["n_hidden"], row["n_neurons"], f"{row['learning_rate']:.3g}") == seed
    )
    return next(found, None)


def seed_reference_line() -> str:
    seed = SEED_RESULT
    return (
        f"Seed's result (California housing, n_iter=10, cv=3): learning_rate {seed['learning_rate']:.3g}, "
        f"n_hidden {seed['n_hidden']}, n_neurons {seed['n_neurons']}, score {seed['score']:.3f}"
    )


def comparability_note(data, quick) -> str:
    if data.name != "california_housing":
        return (
            f"Not comparable: this search ran on {data.name}, a substitute with another target "
            f"({data.target_unit}), so its scores cannot be set against the seed's housing score."
        )
    if quick:
        return "Quick run: a few candidates of 2 epochs each; run without --quick to compare with the seed."
    return "Same data as the seed: the scores are comparable, up to the seed's randomness and library versions."


def log_search(session, candidates) -> None:
    """TensorBoard, `<run>/search`: each candidate's cross-validated MSE and the best so far, by
    candidate number: how much does one more candidate buy?"""
    writer = session.open_writer("search")
    best = math.inf
    with writer.as_default():
        for row in candidates:
            if row["mean_score"] is None:
                continue
            mse = -row["mean_score"]
            best = min(best, mse)
            tf.summary.scalar("cv_mse", mse, step=row["candidate"])
            tf.summary.scalar("best_cv_mse_so_far", best, step=row["candidate"])
    writer.close()


# ----------------------------------------------------------------------------------------------
# The run


def refit_and_test(session, search, values, epochs) -> dict:
    """What refit=True would do, by hand: a fresh clone with the best values, trained on all the
    training rows. Done here so that this one fit logs its curves and values to TensorBoard."""
    data = session.data
    session.extra_hparams.update(values)
    refitted = clone(search.estimator).set_params(**values)
    with keras_silenced():
        refitted.fit(
            data.x_train, data.y_train, validation_data=(data.x_val, data.y_val), callbacks=session.callbacks()
        )
        predicted = refitted.predict(data.x_test)
    session.model = refitted.model_
    tested = regression_errors(predicted, data.y_test)
    mean_only = regression_errors(np.full(len(data.y_test), data.y_train.mean()), data.y_test)
    session.record_test_metrics({"loss": tested["mse"], "rmse": tested["rmse"]})
    epochs_run = session.record.data["epochs_completed"]
    return {
        **values,
        "epochs_run": epochs_run,
        "stopped_early": epochs_run < epochs,
        "test_mse": tested["mse"],
        "test_rmse": tested["rmse"],
        "training_mean_test_rmse": mean_only["rmse"],
        "target_unit": data.target_unit,
    }


def report(session, candidates, best, baselines, refit, folds) -> None:
    data, extra = session.data, session.record.data["extra"]
    session.say(
        f"\n{len(candidates)} candidates, best first ({folds}-fold cross-validation on "
        f"{len(data.y_train)} training rows of {data.name}; score = -MSE, higher is better):\n"
        + candidates_table(candidates).to_string(float_format="{:.4g}".format)
    )
    session.say(
        f"Same folds without a network: the training mean scores {baselines['training_mean']:.3f}, "
        f"a least-squares line {baselines['linear_regression']:.3f}."
    )
    session.say(
        f"\nThis run's best: learning_rate {best['learning_rate']:.3g}, n_hidden {best['n_hidden']}, "
        f"n_neurons {best['n_neurons']}, score {best['score']:.3f} ({data.name})"
    )
    session.say(seed_reference_line())
    session.say(comparability_note(data, session.plan.quick))
    if extra["seed_result"]["drawn_as_candidate"]:
        number = extra["seed_result"]["drawn_as_candidate"]
        session.say(f"Candidate {number} has the seed's best values: the same sampler and seed draw the same values.")
    stopped = " (stopped early)" if refit["stopped_early"] else ""
    session.say(
        f"\nThe best candidate, trained again on all {len(data.y_train)} training rows for {refit['epochs_run']} "
        f"epoch(s){stopped}: test MSE {refit['test_mse']:.4f}, RMSE {refit['test_rmse']:.4f} ({data.target_unit}); "
        f"predicting the training mean: RMSE {refit['training_mean_test_rmse']:.4f}."
    )


def train(args, *, dataset=None, quiet=False, parent_dir=None) -> TrainingSession:
    """Search, refit the best candidate, score it on the test set; returns the session."""
    plan = training_plan(args)
    n_iter = min(args.n_iter, QUICK_MAX_CANDIDATES) if plan.quick else args.n_iter
    folds = min(args.cv, QUICK_MAX_FOLDS) if plan.quick else args.cv
    if dataset is None:
        dataset = load_data(args, announce=(lambda message: None) if quiet else print)
    if folds > len(dataset.y_train):
        raise LabError(f"--cv {folds}: more folds than the {len(dataset.y_train)} training rows of {dataset.name}")
    settings = {"n_iter": n_iter, "cv": folds, "patience": args.patience}
    parent_dir = parent_dir or args.runs_root / "lesson_3" / "tuning" / SEARCH_FOLDER
    with TrainingSession(
        __file__, args, dataset=dataset, quiet=quiet, parent_dir=parent_dir, extra_hparams=settings
    ) as session:
        data, record = session.data, session.record
        search = make_search(n_iter, folds, plan, patience=args.patience, seed=args.seed, verbose=0 if quiet else 3)
        with keras_silenced():
            search.fit(data.x_train, data.y_train, validation_data=(data.x_val, data.y_val))
        candidates = candidates_of(search)
        if all(row["mean_score"] is None for row in candidates):
            raise RuntimeError("every candidate failed to train; scikit-learn's warnings above say why")
        top = candidates[search.best_index_]
        values = {key: top[key] for key in ("n_hidden", "n_neurons", "learning_rate")}
        best = {"candidate": top["candidate"], **values, "score": float(search.best_score_)}
        baselines = baseline_scores(data, folds)
        record.add_extra("search", {**settings, "scoring": SCORING, "epochs": plan.epochs, "seed": args.seed})
        record.add_extra("candidates", candidates)
        record.add_extra("best", best)
        record.add_extra("cv_baselines", baselines)
        comparable = data.name == "california_housing"
        seed = {**SEED_RESULT, "dataset": "california_housing", "comparable": comparable}
        record.add_extra("seed_result", {**seed, "drawn_as_candidate": seed_candidate(candidates)})
        log_search(session, candidates)
        refit = refit_and_test(session, search, values, plan.epochs)
        record.add_extra("refit", refit)
        report(session, candidates, best, baselines, refit, folds)
    return session


# ----------------------------------------------------------------------------------------------
# Command line


def fold_count(text: str) -> int:
    value = cli.positive_int(text)
    if value < 2:
        raise argparse.ArgumentTypeError(
            f"must be at least 2 (cross-validation trains on some folds, scores on one), got {value}"
        )
    return value


def make_parser():
    parser = cli.build_parser(
        __doc__,
        epochs=EPOCHS,
        learning_rate=None,
        batch_size=BATCH_SIZE,
        several_runs="one model per candidate and fold",
        not_here={
            "--learning-rate": "the search draws it from {:g} to {:g} itself".format(*LEARNING_RATE_RANGE),
            "--steps-per-epoch": "every epoch of a fit is one pass over its folds",
            **not_offered("scikit-learn's search trains its models itself"),
        },
        **DATASET_FLAGS,
    )
    parser.add_argument(
        "--n-iter",
        type=cli.positive_int,
        default=N_ITER,
        help=f"candidates to draw (default {N_ITER}, as in the seed; quick mode: at most {QUICK_MAX_CANDIDATES})",
    )
    parser.add_argument(
        "--cv",
        type=fold_count,
        default=CV_FOLDS,
        help=f"cross-validation folds, at least 2 (default {CV_FOLDS}; quick mode: at most {QUICK_MAX_FOLDS})",
    )
    parser.add_argument(
        "--patience",
        type=cli.positive_int,
        default=PATIENCE,
        help=f"epochs without a better validation loss before a fit stops (default {PATIENCE})",
    )
    return parser


def main(argv=None):
    return run_main(train, make_parser, argv)


if __name__ == "__main__":
    raise SystemExit(main())
