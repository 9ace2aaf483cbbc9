"""Lesson 3, keras-tuner: the seed's space searched by RandomSearch and by Hyperband.

One quick run of the script (both tuners, 3 trials of at most 2 epochs each, on the diabetes set)
answers most claims: each trial has a log folder of its own with exact epoch steps, keras-tuner's
own records agree with the event files, the saved best model scores what run.json says, and a real
TensorBoard server's HParams plugin lists every trial of both searches with its hyperparameters and
losses. `--factor 2` gives the quick Hyperband a second round, so one of its trials continues
another: successive halving, in two epochs.
"""

import json
import math

import numpy as np
import pytest

from labtest import (
    TensorBoardServer,
    assert_refused,
    execute_notebook,
    notebook_has_image,
    notebook_text_outputs,
    page_definitions,
    run_dirs,
    run_in_process,
    run_json,
    run_script,
)

SCRIPT = "lesson_3/tuning/train_keras_tuner.py"
NOTEBOOK = "lesson_3/tuning/train_keras_tuner.ipynb"
QUICK = ("--quick", "--factor", "2", "--dataset", "diabetes")
SPACE = {"n_hidden": (0, 1, 2, 3), "n_neurons": (1, 99), "learning_rate": (3e-4, 3e-2)}

slow = pytest.mark.slow


def diabetes():
    from labkit.tabular import load_regression_data

    return load_regression_data("diabetes", announce=lambda message: None)


def searches_in(runs_root, quick=True) -> dict:
    """{"random": run folder, "hyperband": run folder} under runs/lesson_3/tuning/keras_tuner."""
    folder = runs_root / "lesson_3" / "tuning" / "keras_tuner"
    found = {run_json(run)["tag"]: run for run in run_dirs(folder)}
    assert sorted(found) == ["hyperband", "random"], found
    for tag, run in found.items():
        assert run.parent == folder and run.name.startswith(f"quick-{tag}-" if quick else f"{tag}-"), run
    return found


def oracle_trials(run) -> dict:
    """keras-tuner's own record of each trial (`<run>/tuner/trial_<id>/trial.json`), by trial id."""
    trials = [json.loads(path.read_text()) for path in sorted((run / "tuner").glob("trial_*/trial.json"))]
    return {trial["trial_id"]: trial for trial in trials}


def trial_epochs(trial: dict, epochs: int) -> list[int]:
    """The TensorBoard steps a trial must have logged: Hyperband's own epoch range, else 0..epochs-1."""
    values = trial["hyperparameters"]["values"]
    return list(range(values.get("tuner/initial_epoch", 0), values.get("tuner/epochs", epochs)))


# ---------------------------------------------------------------------------------------------
# The space and the command line, in-process (the page's `build` loaded without running the page)


def test_build_declares_the_seeds_space_and_builds_the_shared_model():
    import keras_tuner

    build = page_definitions(SCRIPT).build
    hp = keras_tuner.HyperParameters()
    model = build(hp, n_features=10)
    space = {p.name: p for p in hp.space}
    assert list(space) == ["n_hidden", "n_neurons", "learning_rate"]
    assert list(space["n_hidden"].values) == [0, 1, 2, 3]
    assert (space["n_neurons"].min_value, space["n_neurons"].max_value) == (1, 99)
    rate = space["learning_rate"]
    assert (rate.min_value, rate.max_value, rate.sampling) == (3e-4, 3e-2, "log")
    # The defaults (0 hidden layers, rate 3e-4): a linear model of 10 weights and a bias.
    assert model.count_params() == 11 and type(model.optimizer).__name__ == "SGD"
    hp.values.update(n_hidden=2, n_neurons=42, learning_rate=0.00336)  # the seed's best
    model = build(hp, n_features=8)
    assert model.count_params() == 8 * 42 + 42 + 42 * 42 + 42 + 42 + 1
    assert float(model.optimizer.learning_rate.numpy()) == pytest.approx(0.00336)


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--tuner", "grid"], "invalid choice: 'grid'"),
        (["--factor", "1"], "must be at least 2"),
        (["--max-trials", "0"], "must be at least 1"),
        (["--learning-rate", "0.01"], "the search draws it from 0.0003 to 0.03 itself"),
        (["--resume", "somewhere"], "--resume continues a single run, and this command trains one model per trial"),
    ],
)
def test_bad_flags_exit_2_with_one_line_and_write_nothing(argv, message, runs_dir, capsys, monkeypatch):
    assert_refused(SCRIPT, *argv, message=message, runs_dir=runs_dir, capsys=capsys, monkeypatch=monkeypatch)


def test_help_hides_the_learning_rate_and_names_the_tuner_flags(runs_dir, capsys, monkeypatch):
    assert run_in_process(SCRIPT, "--help", runs_dir=runs_dir, monkeypatch=monkeypatch) == 0
    usage = " ".join(capsys.readouterr().out.split())
    assert "--learning-rate" not in usage and "--resume" not in usage
    assert "--tuner {random,hyperband,bayesian,both}" in usage and "--hyperband-epochs" in usage and "--factor" in usage


# ---------------------------------------------------------------------------------------------
# One quick run of both searches, asserted many ways


@pytest.fixture(scope="module")
def quick(quick_run):
    finished = quick_run(SCRIPT, *QUICK)
    assert finished.result.returncode == 0, finished.result.stdout[-3000:] + finished.result.stderr[-3000:]
    return finished


@pytest.fixture(scope="module")
def searches(quick) -> dict:
    return searches_in(quick.runs_dir)


@slow
def test_quick_run_records_two_finished_searches_of_three_trials(quick, searches):
    for kind, run in searches.items():
        record = run_json(run)
        assert record["status"] == "finished" and record["quick"] is True
        assert record["dataset"]["name"] == "diabetes" and record["dataset"]["sizes"]["train"] == 248
        assert record["hparams"]["tuner"] == kind and record["hparams"]["epochs"] == 2
        search = record["extra"]["search"]
        assert search["tuner"] == kind and search["trials"] == search["max_trials"] == 3
        assert record["extra"]["trials_done"] == 3
        trained = sum(row["last_step"] - row["first_step"] + 1 for row in search["per_trial"])
        assert record["epochs_completed"] == trained == {"random": 6, "hyperband": 3}[kind]
        assert [hp["kind"] for hp in search["space"]] == ["Choice", "Int", "Float"]
        assert search["space"][2]["sampling"] == "log"
        trials = oracle_trials(run)
        assert sorted(trials) == [row["trial_id"] for row in search["per_trial"]] == ["0", "1", "2"]
        for row in search["per_trial"]:
            assert row["status"] == "COMPLETED"
            assert row["n_hidden"] in SPACE["n_hidden"] and 1 <= row["n_neurons"] <= 99
            assert 3e-4 <= row["learning_rate"] <= 3e-2
            assert trials[row["trial_id"]]["hyperparameters"]["values"]["n_neurons"] == row["n_neurons"]
        assert (run / "tuner" / "oracle.json").is_file() and (run / "best_model.keras").is_file()
    assert quick.result.stdout.count("Run folder:") == 2
    assert quick.result.stdout.count("\ntrial ") == 6


@slow
def test_quick_bayesian_search_starts_at_random_then_lets_the_gaussian_process_choose(quick_run):
    """`--tuner bayesian`, the third tuner the page offers: one run, three trials in the space, each
    logged; half of them (one of three, at least one) drawn at random before the Gaussian process
    takes over, as keras-tuner's own oracle records."""
    finished = quick_run(SCRIPT, "--quick", "--tuner", "bayesian", "--dataset", "diabetes")
    assert finished.result.returncode == 0, finished.result.stdout[-3000:] + finished.result.stderr[-3000:]
    folder = finished.runs_dir / "lesson_3" / "tuning" / "keras_tuner"
    (run,) = run_dirs(folder)
    record = run_json(run)
    assert record["status"] == "finished" and record["tag"] == "bayesian"
    search = record["extra"]["search"]
    assert search["tuner"] == "bayesian" and search["trials"] == search["max_trials"] == 3
    oracle = json.loads((run / "tuner" / "oracle.json").read_text())
    assert oracle["num_initial_points"] == 1 and oracle["end_order"] == ["0", "1", "2"]
    for row in search["per_trial"]:
        assert row["status"] == "COMPLETED" and 3e-4 <= row["learning_rate"] <= 3e-2
        assert (run / "trials" / row["trial_id"] / "execution0" / "validation").is_dir()
    assert (run / "best_model.keras").is_file()


@slow
def test_every_trial_logs_to_a_folder_of_its_own_with_exact_epoch_steps(searches):
    from labkit.tblogs import read_scalars, steps_of

    for kind, run in searches.items():
        scalars = read_scalars(run)
        rows = {row["trial_id"]: row for row in run_json(run)["extra"]["search"]["per_trial"]}
        for trial_id, trial in oracle_trials(run).items():
            expected = trial_epochs(trial, epochs=2)
            assert (run / "trials" / trial_id / "execution0").is_dir()
            for split in ("train", "validation"):
                steps = steps_of(scalars, f"trials/{trial_id}/execution0/{split}", "epoch_loss")
                assert steps == expected, (kind, trial_id, split, steps)
            assert (rows[trial_id]["first_step"], rows[trial_id]["last_step"]) == (expected[0], expected[-1])
        if kind == "random":
            assert all((row["first_step"], row["last_step"]) == (0, 1) for row in rows.values())
    # Hyperband, factor 2, 2 epochs: two settings get 1 epoch, the better one a second.
    hyperband = {row["trial_id"]: row for row in run_json(searches["hyperband"])["extra"]["search"]["per_trial"]}
    assert [(row["first_step"], row["last_step"]) for row in hyperband.values()] == [(0, 0), (0, 0), (1, 1)]
    first_round = {key: hyperband[key]["best_val_loss"] for key in ("0", "1")}
    continued = hyperband["2"]["continues_trial"]
    assert continued == min(first_round, key=first_round.get)
    assert (hyperband["2"]["n_hidden"], hyperband["2"]["n_neurons"]) == (
        hyperband[continued]["n_hidden"],
        hyperband[continued]["n_neurons"],
    )


@slow
def test_the_best_score_is_what_the_best_trials_own_event_files_say(searches):
    from labkit.tblogs import read_scalars

    for kind, run in searches.items():
        search = run_json(run)["extra"]["search"]
        trials = oracle_trials(run)
        scores = {trial_id: trial["score"] for trial_id, trial in trials.items()}
        best = search["best_trial_id"]
        assert best == min(scores, key=scores.get), (kind, scores)
        assert search["best_val_loss"] == scores[best] == run_json(run)["metrics"]["validation"]["loss"]
        scalars = read_scalars(run)
        logged = scalars[(scalars.split == f"trials/{best}/execution0/validation") & (scalars.tag == "epoch_loss")]
        assert len(logged) == len(trial_epochs(trials[best], epochs=2))
        assert logged.value.min() == pytest.approx(search["best_val_loss"], rel=1e-6), kind
        best_row = next(row for row in search["per_trial"] if row["trial_id"] == best)
        assert logged.step.iloc[int(np.argmin(logged.value))] == best_row["best_step"]


@slow
def test_the_saved_best_model_loads_and_scores_what_run_json_says(searches):
    import keras

    data = diabetes()
    # An untrained network outputs about 0: a validation MSE near the mean square of the targets.
    zero_floor = float(np.mean(data.y_val.astype("float64") ** 2))
    for kind, run in searches.items():
        record = run_json(run)
        search = record["extra"]["search"]
        model = keras.saving.load_model(run / "best_model.keras")
        best = search["best_hyperparameters"]
        *hidden, output = model.layers
        assert len(hidden) == best["n_hidden"] and all(layer.units == best["n_neurons"] for layer in hidden)
        assert output.units == 1

        def mse(x, y, model=model):
            return float(np.mean((model.predict(x, verbose=0).reshape(-1).astype("float64") - y) ** 2))

        assert mse(data.x_test, data.y_test) == pytest.approx(record["metrics"]["test"]["loss"], rel=1e-5)
        assert record["metrics"]["test"]["rmse"] == pytest.approx(math.sqrt(record["metrics"]["test"]["loss"]))
        # The weights are those of the best epoch: they score the best validation loss again.
        assert mse(data.x_val, data.y_val) == pytest.approx(search["best_val_loss"], rel=1e-4)
        # 16 SGD steps at the rates drawn measured 1.15 (seed 42); an untrained model scores 3.28.
        assert zero_floor > 3 and search["best_val_loss"] < zero_floor / 2, (kind, search["best_val_loss"])


@pytest.fixture(scope="module")
def board(quick, searches):
    """One TensorBoard on the folder holding both searches, shared by the tests below, always stopped."""
    with TensorBoardServer(quick.runs_dir / "lesson_3" / "tuning" / "keras_tuner") as server:
        server.wait_until(lambda: last_steps_shown(server) == last_steps_logged(searches), "every trial's last epoch")
        yield server


def last_steps_logged(searches) -> dict:
    """{HParams session group name: the step of the trial's last epoch}, from run.json."""
    return {
        f"{run.name}/{row['trial_id']}": row["last_step"]
        for run in searches.values()
        for row in run_json(run)["extra"]["search"]["per_trial"]
    }


def last_steps_shown(board) -> dict:
    """The same, as the HParams plugin reports it: the step of each group's validation epoch_loss."""
    return {
        group["name"]: metric.get("trainingStep", 0)
        for group in session_groups(board)["sessionGroups"]
        for metric in group["metricValues"]
        if (metric["name"]["group"], metric["name"]["tag"]) == ("validation", "epoch_loss")
    }


def session_groups(board) -> dict:
    request = {
        "experimentName": "",
        "allowedStatuses": ["STATUS_UNKNOWN", "STATUS_SUCCESS", "STATUS_FAILURE", "STATUS_RUNNING"],
        "colParams": [],
        "startIndex": 0,
        "sliceSize": 100,
    }
    return board.get_json("/data/plugin/hparams/session_groups", request=json.dumps(request))


@slow
def test_hparams_plugin_lists_every_trial_of_both_searches_with_its_values_and_losses(board, searches):
    from labkit.tblogs import read_scalars

    experiment = board.get_json("/data/plugin/hparams/experiment", request=json.dumps({"experimentName": ""}))
    assert {info["name"] for info in experiment["hparamInfos"]} == set(SPACE)
    metrics = {(m["name"]["group"], m["name"]["tag"]) for m in experiment["metricInfos"]}
    assert {("train", "epoch_loss"), ("validation", "epoch_loss")} <= metrics

    groups = {group["name"]: group for group in session_groups(board)["sessionGroups"]}
    # keras-tuner names trials 0, 1, 2 in both searches; same-named groups would be merged into one row.
    expected = {f"{run.name}/{trial_id}" for run in searches.values() for trial_id in ("0", "1", "2")}
    assert set(groups) == expected
    for run in searches.values():
        scalars = read_scalars(run)
        for row in run_json(run)["extra"]["search"]["per_trial"]:
            group = groups[f"{run.name}/{row['trial_id']}"]
            (session,) = group["sessions"]
            assert session["name"] == f"{run.name}/{row['logs']}" and session["status"] == "STATUS_SUCCESS"
            assert group["hparams"]["n_hidden"] == row["n_hidden"]
            assert group["hparams"]["n_neurons"] == row["n_neurons"]
            assert group["hparams"]["learning_rate"] == pytest.approx(row["learning_rate"])
            # The plugin shows the loss of the trial's last epoch, as its event file holds it.
            shown = {(m["name"]["group"], m["name"]["tag"]): m["value"] for m in group["metricValues"]}
            logged = scalars[(scalars.split == f"{row['logs']}/validation") & (scalars.tag == "epoch_loss")]
            assert shown[("validation", "epoch_loss")] == pytest.approx(logged.value.iloc[-1], rel=1e-6)


@slow
def test_scalars_dashboard_shows_each_trial_as_a_run(board, searches):
    runs = set(board.get_json("/data/runs"))
    for run in searches.values():
        for trial_id in ("0", "1", "2"):
            for split in ("train", "validation"):
                assert f"{run.name}/trials/{trial_id}/execution0/{split}" in runs


# ---------------------------------------------------------------------------------------------
# The notebook, and a full-length search


@slow
def test_notebook_runs_both_searches_and_reads_them_back(runs_dir):
    notebook = execute_notebook(NOTEBOOK, runs_dir)
    text = notebook_text_outputs(notebook)
    assert "n_hidden {'name': 'n_hidden'" in text and "'sampling': 'log'" in text
    assert "best validation MSE" in text and "The seed's search on California housing" in text
    assert notebook_has_image(notebook)
    for run in searches_in(runs_dir).values():
        record = run_json(run)
        assert record["status"] == "finished" and record["extra"]["search"]["trials"] >= 2


@slow
@pytest.mark.full
def test_full_searches_beat_the_training_mean_on_the_diabetes_set(runs_dir):
    """Random search, 10 trials of up to 30 epochs, and Hyperband up to 9 epochs (23 trials in its
    schedule) on the whole diabetes set. Both must beat predicting the training mean (0.607)."""
    result = run_script(SCRIPT, "--dataset", "diabetes", "--epochs", "30", "--hyperband-epochs", "9", runs_dir=runs_dir)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    searches = searches_in(runs_dir, quick=False)
    counts = {}
    for kind, run in searches.items():
        record = run_json(run)
        search = record["extra"]["search"]
        assert record["status"] == "finished" and record["dataset"]["sizes"]["train"] == 248
        assert all(row["status"] == "COMPLETED" for row in search["per_trial"])
        counts[kind] = search["trials"]
        assert search["training_mean_val_loss"] == pytest.approx(0.607, abs=0.001)
        assert search["best_val_loss"] < 0.9 * search["training_mean_val_loss"], (kind, search["best_val_loss"])
        assert record["metrics"]["test"]["loss"] < 0.9 * search["training_mean_val_loss"]
    assert counts == {"random": 10, "hyperband": 23}
