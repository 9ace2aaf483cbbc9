"""Lesson 3, tuning: the seed's random search, through Keras 3's scikit-learn wrapper.

The space, the sampler, the wrapper and the flags are checked without training: the page's own
definitions are loaded without running it (labtest.page_definitions). One quick search (3
candidates, 2 folds, 2 epochs) runs as a real subprocess and is asserted many ways; it runs on
the diabetes substitute on purpose (an empty scikit-learn data home), as on CI. The full-length
search runs on whatever data the machine has.
"""

import functools
import math
import sys

import numpy as np
import pytest

from labtest import (
    assert_epoch_curves,
    assert_refused,
    notebook_has_image,
    notebook_text_outputs,
    only_run,
    page_definitions,
    run_in_process,
    run_json,
    run_script,
)

SCRIPT = "lesson_3/tuning/train_random_search.py"
NOTEBOOK = "lesson_3/tuning/train_random_search.ipynb"
SEED_LINE = (
    "Seed's result (California housing, n_iter=10, cv=3): learning_rate 0.00336, n_hidden 2, n_neurons 42, score -0.319"
)

slow = pytest.mark.slow


@functools.cache
def page():
    """The functions, classes and constants the page defines, without running it."""
    return page_definitions(SCRIPT)


def diabetes():
    from labkit.tabular import load_regression_data

    return load_regression_data("diabetes", announce=lambda message: None)


def drawn(n_iter, seed=42) -> list[tuple]:
    """What RandomizedSearchCV's sampler draws from the space, no training needed."""
    from sklearn.model_selection import ParameterSampler

    return [
        (int(p["n_hidden"]), int(p["n_neurons"]), float(p["learning_rate"]))
        for p in ParameterSampler(page().SEARCH_SPACE, n_iter=n_iter, random_state=seed)
    ]


def assert_inside_the_space(candidate: dict) -> None:
    assert candidate["n_hidden"] in (0, 1, 2, 3), candidate
    assert 1 <= candidate["n_neurons"] <= 99 and isinstance(candidate["n_neurons"], int), candidate
    assert 3e-4 <= candidate["learning_rate"] <= 3e-2, candidate


# ---------------------------------------------------------------------------------------------
# The space and the sampler, without training


def test_the_space_is_the_seeds_with_a_log_uniform_learning_rate():
    import scipy.stats

    space = page().SEARCH_SPACE
    assert space["n_hidden"] == [0, 1, 2, 3]
    assert space["n_neurons"].tolist() == list(range(1, 100))
    rate = space["learning_rate"]
    assert type(rate.dist) is type(scipy.stats.reciprocal)  # loguniform is reciprocal's modern name
    assert rate.support() == pytest.approx((3e-4, 3e-2))
    # Log-uniform: each decade is equally likely, so half the draws fall below 3e-3.
    draws = rate.rvs(size=20000, random_state=np.random.default_rng(0))
    assert np.mean(draws < 3e-3) == pytest.approx(0.5, abs=0.02)


def test_seed_42_draws_the_seeds_best_candidate_tenth():
    """scikit-learn's sampler with random_state=42 draws the values the seed found best (2 hidden
    layers of 42 neurons, learning rate 0.0033626) as its tenth candidate, out of ten."""
    seed_candidate = page().seed_candidate
    candidates = drawn(10)
    assert candidates[9][:2] == (2, 42) and candidates[9][2] == pytest.approx(0.0033625641, rel=1e-6)
    rows = [
        {"candidate": i + 1, "n_hidden": h, "n_neurons": n, "learning_rate": r}
        for i, (h, n, r) in enumerate(candidates)
    ]
    assert seed_candidate(rows) == 10 and seed_candidate(rows[:9]) is None
    for h, n, r in candidates:
        assert_inside_the_space({"n_hidden": h, "n_neurons": n, "learning_rate": r})
    assert drawn(10, seed=7) != candidates


def test_the_wrapper_subclass_exposes_the_three_hyperparameters_to_scikit_learn():
    """get_params names them, set_params and clone keep them, and the model built for a fit has them."""
    from sklearn.base import clone

    estimator = page().SearchableMLP(epochs=7, patience=3)
    assert {"n_hidden", "n_neurons", "learning_rate", "epochs", "batch_size", "patience"} <= set(estimator.get_params())
    estimator.set_params(n_hidden=np.int64(2), n_neurons=np.int64(42), learning_rate=0.00336)
    copy = clone(estimator)
    assert copy is not estimator
    assert {k: copy.get_params()[k] for k in ("n_hidden", "n_neurons", "learning_rate", "epochs", "patience")} == {
        "n_hidden": 2,
        "n_neurons": 42,
        "learning_rate": 0.00336,
        "epochs": 7,
        "patience": 3,
    }
    model = copy._get_model(np.zeros((4, 10), dtype="float32"), None)
    assert [layer.units for layer in model.layers] == [42, 42, 1]
    assert model.count_params() == 10 * 42 + 42 + 42 * 42 + 42 + 42 + 1
    assert float(model.optimizer.learning_rate.numpy()) == pytest.approx(0.00336)


# ---------------------------------------------------------------------------------------------
# Flags: one line, exit 2, nothing written, Keras never touched


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--n-iter", "0"], "argument --n-iter: must be at least 1, got 0"),
        (["--cv", "1"], "argument --cv: must be at least 2"),
        (["--patience", "0"], "argument --patience: must be at least 1"),
        (["--learning-rate", "0.01"], "--learning-rate: the search draws it from 0.0003 to 0.03 itself"),
        (["--steps-per-epoch", "5"], "--steps-per-epoch: every epoch of a fit is one pass over its folds"),
        (["--resume", "somewhere"], "--resume continues a single run"),
    ],
)
def test_bad_flags_exit_2_with_one_line_before_keras_loads(argv, message, runs_dir, capsys, monkeypatch):
    # Any use of Keras or TensorFlow would now raise ImportError instead of exiting 2.
    monkeypatch.setitem(sys.modules, "keras", None)
    monkeypatch.setitem(sys.modules, "tensorflow", None)
    argv = ["--dataset", "diabetes", *argv]
    error = assert_refused(SCRIPT, *argv, message=message, runs_dir=runs_dir, capsys=capsys, monkeypatch=monkeypatch)
    assert error.startswith("train_random_search.py: error: ")


def test_more_folds_than_training_rows_exits_2_with_one_line_before_anything_is_written(runs_dir, capsys, monkeypatch):
    """Checked once the data is loaded (the page's data cell, after its imports cell): Keras has
    loaded by then, but no run folder exists yet."""
    argv = ["--dataset", "diabetes", "--cv", "1000"]
    message = "--cv 1000: more folds than the 248 training rows of diabetes"
    error = assert_refused(SCRIPT, *argv, message=message, runs_dir=runs_dir, capsys=capsys, monkeypatch=monkeypatch)
    assert error.startswith("train_random_search.py: error: ")


def test_help_hides_the_flags_that_do_not_apply(runs_dir, capsys, monkeypatch):
    assert run_in_process(SCRIPT, "--help", runs_dir=runs_dir, monkeypatch=monkeypatch) == 0
    usage = " ".join(capsys.readouterr().out.split())
    assert "--n-iter N_ITER" in usage and "--cv CV" in usage and "--patience PATIENCE" in usage
    assert "--learning-rate" not in usage and "--steps-per-epoch" not in usage and "--resume" not in usage


# ---------------------------------------------------------------------------------------------
# One quick search, asserted many ways


@pytest.fixture
def finished(quick_notebook, no_housing):
    """The page's quick search: its notebook, executed once through a Jupyter kernel."""
    return quick_notebook(NOTEBOOK, **no_housing)


@slow
def test_quick_search_records_every_candidate_inside_the_space(finished):
    run = only_run(finished.runs_dir)
    assert run.parent == finished.runs_dir / "lesson_3" / "tuning" / "random_search" and run.name.startswith("quick-")
    record = run_json(run)
    assert record["status"] == "finished" and record["quick"] is True
    assert record["dataset"]["name"] == "diabetes" and record["dataset"]["substitute_for"] == "california_housing"
    hparams = record["hparams"]
    assert (hparams["n_iter"], hparams["cv"], hparams["epochs"], hparams["learning_rate"]) == (3, 2, 2, None)
    extra = record["extra"]
    assert extra["search"]["scoring"] == "neg_mean_squared_error"
    candidates = extra["candidates"]
    # The same --seed draws the same candidates: the sampler's first three draws, in order.
    assert [(c["n_hidden"], c["n_neurons"], c["learning_rate"]) for c in candidates] == drawn(3)
    for candidate in candidates:
        assert_inside_the_space(candidate)
        folds = candidate["fold_scores"]
        assert len(folds) == 2 and all(math.isfinite(score) and score < 0 for score in folds), candidate
        assert candidate["mean_score"] == pytest.approx(np.mean(folds), rel=1e-6)
        assert candidate["std_score"] == pytest.approx(np.std(folds), rel=1e-4)
    assert sorted(c["rank"] for c in candidates) == [1, 2, 3]
    best = extra["best"]
    top = max(candidates, key=lambda c: c["mean_score"])
    assert best["score"] == top["mean_score"] and top["rank"] == 1 and best["candidate"] == top["candidate"]
    assert (best["n_hidden"], best["n_neurons"], best["learning_rate"]) == (
        top["n_hidden"],
        top["n_neurons"],
        top["learning_rate"],
    )


@slow
def test_quick_search_scores_the_baselines_on_the_same_folds(finished):
    from sklearn.dummy import DummyRegressor
    from sklearn.linear_model import LinearRegression
    from sklearn.model_selection import cross_val_score

    data = diabetes()
    baselines = run_json(only_run(finished.runs_dir))["extra"]["cv_baselines"]
    for name, model in (("training_mean", DummyRegressor()), ("linear_regression", LinearRegression())):
        expected = cross_val_score(model, data.x_train, data.y_train, cv=2, scoring="neg_mean_squared_error").mean()
        assert baselines[name] == pytest.approx(expected, rel=1e-5), name
    assert baselines["linear_regression"] > baselines["training_mean"]


@slow
def test_quick_search_refits_the_best_and_tests_it(finished):
    from labkit.tblogs import read_scalars, steps_of

    data = diabetes()
    run = only_run(finished.runs_dir)
    record = run_json(run)
    best, refit = record["extra"]["best"], record["extra"]["refit"]
    assert {k: refit[k] for k in ("n_hidden", "n_neurons", "learning_rate")} == {
        k: best[k] for k in ("n_hidden", "n_neurons", "learning_rate")
    }
    assert record["epochs_completed"] == refit["epochs_run"] == 2 and refit["stopped_early"] is False
    assert math.isfinite(refit["test_mse"]) and refit["test_mse"] > 0
    assert record["metrics"]["test"] == {"loss": refit["test_mse"], "rmse": refit["test_rmse"]}
    assert refit["test_rmse"] == pytest.approx(math.sqrt(refit["test_mse"]))
    mean_only = np.sqrt(np.mean((data.y_test.astype("float64") - data.y_train.mean()) ** 2))
    assert refit["training_mean_test_rmse"] == pytest.approx(mean_only, rel=1e-6)
    assert refit["target_unit"] == "100 score points"
    # The refit learned: its validation loss fell, below what predicting 0 scores (an untrained
    # network's outputs sit near 0; 3.28 on these rows). Measured: 2.95, then 2.66.
    assert_epoch_curves(run, epochs=2, tags=("epoch_loss",))
    scalars = read_scalars(run)
    validation = scalars[(scalars.split == "validation") & (scalars.tag == "epoch_loss")].value.tolist()
    zero_floor = float(np.mean(data.y_val.astype("float64") ** 2))
    assert validation[1] < validation[0] and validation[1] < zero_floor - 0.3, (validation, zero_floor)
    assert steps_of(scalars, "test", "test_loss") == [1] and steps_of(scalars, "test", "test_rmse") == [1]


@slow
def test_quick_search_logs_each_candidate_and_the_best_so_far(finished):
    from labkit.tblogs import read_scalars, steps_of

    run = only_run(finished.runs_dir)
    candidates = run_json(run)["extra"]["candidates"]
    scalars = read_scalars(run)
    assert steps_of(scalars, "search", "cv_mse") == [1, 2, 3]
    assert steps_of(scalars, "search", "best_cv_mse_so_far") == [1, 2, 3]
    logged = scalars[(scalars.split == "search") & (scalars.tag == "cv_mse")].value.tolist()
    assert logged == pytest.approx([-c["mean_score"] for c in candidates], rel=1e-6)
    best_so_far = scalars[(scalars.split == "search") & (scalars.tag == "best_cv_mse_so_far")].value.tolist()
    assert best_so_far == pytest.approx(np.minimum.accumulate(logged).tolist(), rel=1e-6)


@slow
def test_quick_search_prints_the_table_and_the_seeds_result_beside_ours(finished):
    record = run_json(only_run(finished.runs_dir))
    stdout = finished.result.stdout
    assert "data: California housing is not on this machine" in stdout
    assert "3 candidates, best first (2-fold cross-validation on 248 training rows of diabetes" in stdout
    assert "score (-MSE)" in stdout and "Same folds without a network: the training mean scores" in stdout
    best = record["extra"]["best"]
    assert f"This run's best: learning_rate {best['learning_rate']:.3g}, n_hidden {best['n_hidden']}," in stdout
    assert SEED_LINE in stdout.splitlines()
    assert "Not comparable: this search ran on diabetes" in stdout
    assert record["extra"]["seed_result"] == {
        "learning_rate": 0.00336,
        "n_hidden": 2,
        "n_neurons": 42,
        "score": -0.319,
        "dataset": "california_housing",
        "comparable": False,
        "drawn_as_candidate": None,
    }
    # The table lists the candidates best first: their ranks in order, one row each.
    rows = [line.split() for line in stdout.splitlines() if line[:1].isdigit() and len(line.split()) == 8]
    assert [int(row[0]) for row in rows] == [1, 2, 3]
    assert "Traceback" not in finished.result.stderr


# ---------------------------------------------------------------------------------------------
# The notebook, and the full-length search


@slow
def test_random_search_notebook_shows_the_search_and_its_figures(finished):
    notebook, runs_dir = finished.notebook, finished.runs_dir
    text = notebook_text_outputs(notebook)
    record = run_json(only_run(runs_dir))
    assert record["status"] == "finished" and record["quick"] is True and len(record["extra"]["candidates"]) == 3
    assert "SearchableMLP(learning_rate=0.00336, n_hidden=2, n_neurons=42)" in text
    assert "score (-MSE)" in text and "Same folds without a network" in text and "fold 2" in text
    assert SEED_LINE in text
    assert notebook_has_image(notebook)


@slow
@pytest.mark.full
def test_full_search_of_ten_candidates_beats_the_training_mean(runs_dir):
    """The seed's n_iter=10 and cv=3, with early stopping, but 50 epochs per fit instead of 100: the
    31 fits of 100 epochs took 125-150 s of CPU here, over this test's budget (see the card).

    Measured on diabetes (seeds 42, 1, 2): best cross-validated scores -0.315, -0.305, -0.339,
    against -0.621 for the training mean and -0.302 for a least-squares line on the same folds;
    the refitted best tested at an RMSE of 0.533 each time (training mean: 0.746)."""
    result = run_script(SCRIPT, "--epochs", "50", runs_dir=runs_dir)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    run = only_run(runs_dir)
    record = run_json(run)
    assert record["status"] == "finished" and record["quick"] is False
    extra = record["extra"]
    assert (extra["search"]["n_iter"], extra["search"]["cv"], extra["search"]["epochs"]) == (10, 3, 50)
    candidates = extra["candidates"]
    assert [(c["n_hidden"], c["n_neurons"], c["learning_rate"]) for c in candidates] == drawn(10)
    assert all(len(c["fold_scores"]) == 3 and c["mean_score"] < 0 for c in candidates)
    assert extra["seed_result"]["drawn_as_candidate"] == 10
    best, baselines, refit = extra["best"], extra["cv_baselines"], extra["refit"]
    assert best["score"] == max(c["mean_score"] for c in candidates)
    assert best["score"] > baselines["training_mean"] + 0.15, (best, baselines)
    assert refit["test_rmse"] < refit["training_mean_test_rmse"] - 0.1, refit
    assert refit["epochs_run"] <= 50 and record["epochs_completed"] == refit["epochs_run"]
    assert SEED_LINE in result.stdout.splitlines()
    if record["dataset"]["name"] == "california_housing":
        assert extra["seed_result"]["comparable"] is True
    else:
        assert extra["seed_result"]["comparable"] is False and "Not comparable" in result.stdout
        assert -0.38 <= best["score"] <= -0.28, best
        assert baselines["training_mean"] == pytest.approx(-0.621, abs=0.002)
        assert 0.50 <= refit["test_rmse"] <= 0.58, refit
