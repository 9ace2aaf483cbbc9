"""Lesson 2, the Bitcoin thread's first page: prices -> weekly tensors -> LSTM -> forecast.

The weeks, the split and the dollars are derived here again with pandas straight from the CSV,
independently of labkit.bitcoin and of the page, and compared with what the run printed and
recorded. The model's recorded scores are recomputed from the model.keras it saved.
"""

import math
import re

import numpy as np
import pandas as pd
import pytest

from labtest import (
    REPO,
    assert_epoch_curves,
    assert_finished_above,
    assert_refused,
    bitcoin_weeks_by_pandas,
    notebook_has_image,
    notebook_image_count,
    notebook_text_outputs,
    only_run,
    run_dirs,
    run_json,
    run_script,
)

SCRIPT = "lesson_2/bitcoin_lstm/train_bitcoin.py"
NOTEBOOK = "lesson_2/bitcoin_lstm/train_bitcoin.ipynb"
CSV = REPO / "data" / "bitcoin" / "bitcoin_historical_prices.csv"

slow = pytest.mark.slow


def weeks_from_csv(start="2016-01-01"):
    """Complete weeks from the CSV by pandas alone: closes (n, 7), labels, and the 80% cut."""
    labels, _, closes = bitcoin_weeks_by_pandas(start)
    return closes, labels, math.ceil(0.8 * len(labels))


def held_out_windows(closes, n_train, window=76):
    normalized = closes / closes[:, :1] - 1
    x = np.stack([normalized[t - window : t] for t in range(n_train, len(closes))]).astype("float32")
    return x, normalized[n_train:]


# ---------------------------------------------------------------------------------------------
# Bad input: one line, exit 2, nothing written


def cut_short(tmp_path):
    lines = CSV.read_text().splitlines()
    path = tmp_path / "truncated.csv"
    path.write_text("\n".join(lines[:900]) + "\n" + lines[900][:15] + "\n")  # a download cut mid-row
    return path, 901


def wrong_columns(tmp_path):
    path = tmp_path / "columns.csv"
    path.write_text(CSV.read_text().replace("close,volume", "price,volume", 1))
    return path, None


def not_a_number(tmp_path):
    lines = CSV.read_text().splitlines()
    cells = lines[1200].split(",")
    cells[5] = "n/a"
    lines[1200] = ",".join(cells)
    path = tmp_path / "text.csv"
    path.write_text("\n".join(lines) + "\n")
    return path, 1201


@pytest.mark.parametrize(
    "make, message",
    [
        (cut_short, ": open is not a number (empty)"),
        (wrong_columns, "lacks the column(s) close"),
        (not_a_number, "close is not a number ('n/a')"),
    ],
    ids=["truncated", "wrong-columns", "not-a-number"],
)
def test_a_corrupt_csv_is_refused_in_one_line_naming_its_line(make, message, tmp_path, runs_dir, capsys, monkeypatch):
    path, line = make(tmp_path)
    error = assert_refused(
        SCRIPT, "--csv", str(path), message=message, runs_dir=runs_dir, capsys=capsys, monkeypatch=monkeypatch
    )
    if line:
        assert f"{path}, line {line}: " in error


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--csv", "no/such/prices.csv"], "data: no Bitcoin price file at no/such/prices.csv"),
        (["--start", "2017-01-01"], "holds 44 complete weeks; the LSTM needs 96"),
        (["--end", "2017-06-30"], "holds 77 complete weeks; the LSTM needs 96"),
        (["--start", "2017-02-30"], "expected a date as YYYY-MM-DD, got '2017-02-30'"),
        (["--resume", "runs/x"], "--resume: a forecasting run takes seconds to a few minutes"),
        (["--distribute", "mirrored"], "--distribute: one training sequence cannot be split over devices"),
        (["--steps-per-epoch", "5"], "--steps-per-epoch: an epoch here is one step"),
        (["--batch-size", "2"], "--batch-size 2 is larger than the 1 training"),
        (["--dataset", "mnist"], "invalid choice: 'mnist'"),
    ],
)
def test_bad_flags_and_ranges_exit_2_with_one_line_and_write_nothing(argv, message, runs_dir, capsys, monkeypatch):
    assert_refused(SCRIPT, *argv, message=message, runs_dir=runs_dir, capsys=capsys, monkeypatch=monkeypatch)


def test_the_refused_ranges_really_hold_that_many_weeks():
    """The week counts in the refusals above, derived with pandas."""
    frame = pd.read_csv(CSV, parse_dates=["date"])
    for start, end, expected in [("2017-01-01", None, 44), ("2016-01-01", "2017-06-30", 77)]:
        rows = frame[(frame.date >= start) & (frame.date <= (end or "2099-01-01"))]
        sizes = rows.groupby("iso_week").size()
        assert int((sizes == 7).sum()) == expected


# ---------------------------------------------------------------------------------------------
# One quick run, asserted many ways


@pytest.fixture(scope="module")
def finished(quick_notebook):
    """The page's quick run: its notebook, executed once through a Jupyter kernel."""
    return quick_notebook(NOTEBOOK)


@slow
def test_quick_run_prints_the_tensors_of_the_split(finished):
    closes, labels, n_train = weeks_from_csv()
    n_test = len(labels) - n_train
    assert (len(labels), n_train, n_test) == (96, 77, 19)
    out = finished.result.stdout
    assert f"{len(labels)} complete weeks, {7 * len(labels)} days" in out
    assert f"weekly: ({len(labels)}, 7) | {n_train} training weeks, {n_test} held out" in out
    assert "x_train: (1, 76, 7) y_train: (1, 7)" in out
    assert f"x_test:  ({n_test}, 76, 7) y_test:  ({n_test}, 7)" in out
    assert f"train ['{labels[0]}', '{labels[n_train - 1]}'] held out ['{labels[n_train]}', '{labels[-1]}']" in out


@slow
def test_quick_run_logs_two_epochs_and_records_the_data(finished):
    from labkit.tblogs import read_scalars, steps_of

    run = only_run(finished.runs_dir)
    assert run.parent == finished.runs_dir / "lesson_2" / "bitcoin_lstm" and run.name.startswith("quick-")
    assert_epoch_curves(run, epochs=2, tags=("epoch_loss",))
    assert steps_of(read_scalars(run), "test", "test_loss") == [1]
    record = assert_finished_above(run, {})
    assert record["quick"] is True and record["epochs_completed"] == 2
    _, labels, n_train = weeks_from_csv()
    dataset = record["dataset"]
    assert dataset["sizes"] == {"train": 1, "validation": 19, "test": 19}
    assert dataset["train_weeks"] == [labels[0], labels[n_train - 1]]
    assert dataset["held_out_weeks"] == [labels[n_train], labels[-1]]
    hparams = record["hparams"]
    assert (hparams["learning_rate"], hparams["batch_size"], hparams["lstm_units"], hparams["window_weeks"]) == (
        0.001,
        1,
        7,
        76,
    )
    assert notebook_image_count(finished.notebook) == 4  # a script saves them in <run>/figures


@slow
def test_the_saved_model_is_the_pages_v0_and_its_recorded_forecast_is_its_own(finished):
    import keras

    run = only_run(finished.runs_dir)
    model = keras.models.load_model(run / "model.keras")
    assert [type(layer).__name__ for layer in model.layers] == ["LSTM", "Dense"]
    assert model.layers[0].units == 7 and model.layers[1].units == 7
    assert model.layers[1].activation.__name__ == "linear"
    assert model.count_params() == 4 * (7 * 7 + 7 * 7 + 7) + 7 * 7 + 7 == 476
    assert type(model.optimizer).__name__ == "RMSprop" and model.loss == "mse"

    closes, labels, n_train = weeks_from_csv()
    x_test, y_test = held_out_windows(closes, n_train)
    predicted = model.predict(x_test, verbose=0).astype("float64")
    record = run_json(run)
    assert record["metrics"]["test"]["loss"] == pytest.approx(float(np.mean((predicted - y_test) ** 2)), rel=1e-4)
    dollars = closes[n_train - 1 : -1, -1][:, None] * (predicted + 1)
    true = closes[n_train:]
    forecast = record["extra"]["forecast"]
    assert forecast["mape_percent"] == pytest.approx(100 * np.mean(np.abs(dollars - true) / true), rel=1e-4)
    assert forecast["rmse_usd"] == pytest.approx(np.sqrt(np.mean((dollars - true) ** 2)), rel=1e-4)
    assert f"MAPE {forecast['mape_percent']:.2f}%" in finished.result.stdout

    # The week after the data: from the last 76 complete weeks and the last close, 2017-11-04.
    normalized = closes / closes[:, :1] - 1
    expected = closes[-1, -1] * (model.predict(normalized[-76:][None].astype("float32"), verbose=0)[0] + 1)
    next_week = record["extra"]["next_week"]
    assert next_week["first_day"] == "2017-11-05"
    assert next_week["closes"] == pytest.approx(expected.tolist(), abs=0.011)


@slow
def test_bitcoin_notebook_shows_the_tensors_the_forecast_and_its_figure(finished):
    notebook, runs_dir = finished.notebook, finished.runs_dir
    text = notebook_text_outputs(notebook)
    assert "x_train: (1, 76, 7) y_train: (1, 7)" in text and "476 weights" in text
    assert "the same tensors as weekly_split()" in text
    mape = re.search(r"MAPE (\d+\.\d\d)%", text)
    record = run_json(only_run(runs_dir))
    assert record["status"] == "finished" and record["quick"] is True
    assert mape and float(mape.group(1)) == pytest.approx(record["extra"]["forecast"]["mape_percent"], abs=0.006)
    assert notebook_has_image(notebook)


@slow
@pytest.mark.full
def test_full_runs_for_three_seeds_land_near_the_original_courses_error(runs_dir):
    """100 epochs, as in the original. Measured on seeds 42, 1 and 2: held-out MAPE 7.56-7.75%
    (the original course reported about 8.4%) and a training loss that reaches ~1e-10, since the
    network can fit its one training sequence exactly."""
    for seed in ("42", "1", "2"):
        result = run_script(SCRIPT, "--seed", seed, runs_dir=runs_dir)
        assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    runs = run_dirs(runs_dir)
    assert len(runs) == 3
    for run in runs:
        assert_epoch_curves(run, epochs=100, tags=("epoch_loss",))
        record = assert_finished_above(run, {})
        assert 6.5 <= record["extra"]["forecast"]["mape_percent"] <= 9.0, record["extra"]["forecast"]
        assert record["metrics"]["train"]["loss"] < 1e-4
        assert 0.008 <= record["metrics"]["test"]["loss"] <= 0.014
