"""The Bitcoin prices of the forecasting thread (Lessons 2-4): the shipped copy and its checks.

The shipped CSV is read as it is in the repository, and every refusal is made on a real copy of it
spoilt one way (cut short, a column renamed, a price that is not a number, rows out of order): one
line, LabError (exit code 2), and the spoilt file is left as it was."""

import hashlib
import re

import numpy as np
import pytest

from labkit import LabError
from labkit.bitcoin import COLUMNS, SHIPPED_CSV, SHIPPED_SHA256, load_prices
from labtest import REPO

CSV_LINES = SHIPPED_CSV.read_text().splitlines()


def test_the_shipped_copy_is_the_original_courses_file_with_its_provenance():
    assert SHIPPED_CSV == REPO / "data" / "bitcoin" / "bitcoin_historical_prices.csv"
    assert hashlib.sha256(SHIPPED_CSV.read_bytes()).hexdigest() == SHIPPED_SHA256
    card = (SHIPPED_CSV.parent / "README.md").read_text()
    assert SHIPPED_SHA256 in card and "MIT" in card and "CoinMarketCap" in card
    assert "Copyright (c) 2018 Training By Packt" in (SHIPPED_CSV.parent / "LICENSE").read_text()


def test_the_shipped_prices_load_as_1655_days_oldest_first():
    prices = load_prices()
    assert tuple(prices.columns) == COLUMNS and len(prices) == len(CSV_LINES) - 1 == 1655
    assert str(prices.date.iloc[0].date()) == "2013-04-28" and str(prices.date.iloc[-1].date()) == "2017-11-07"
    assert (prices.date.diff().dt.days.iloc[1:] == 1).all(), "one row per day, none missing"
    assert (prices[["open", "high", "low", "close"]] > 0).all().all()
    assert (prices.low <= prices.close).all() and (prices.close <= prices.high).all()
    # The volume is empty before 2013-12-27, as the data's card says.
    assert str(prices.date[prices.volume.notna()].iloc[0].date()) == "2013-12-27"
    assert prices.close.iloc[-1] == float(CSV_LINES[-1].split(",")[5]) == 7144.38


def spoilt_copy(tmp_path, lines):
    path = tmp_path / "prices.csv"
    path.write_text("\n".join(lines) + "\n")
    return path


def with_cell(line: str, column: str, value: str) -> str:
    cells = line.split(",")
    cells[COLUMNS.index(column)] = value
    return ",".join(cells)


@pytest.mark.parametrize(
    "spoil, message",
    [
        (lambda lines: lines[:1], r"has a header and no rows"),
        (lambda lines: [lines[0].replace("close", "closing")] + lines[1:], r"lacks the column\(s\) close"),
        (
            lambda lines: lines[:3] + [with_cell(lines[3], "close", "n/a")] + lines[4:],
            r"line 4: close is not a number \('n/a'\)",
        ),
        (
            lambda lines: lines[:5] + [with_cell(lines[5], "open", "-3")] + lines[6:],
            r"line 6: open is not positive",
        ),
        (
            lambda lines: lines[:2] + [with_cell(lines[2], "date", "28/04/2013")] + lines[3:],
            r"line 3: a date that is not",
        ),
        (lambda lines: [lines[0], lines[2], lines[1]] + lines[3:], r"line 3: a date not after the one before it"),
        # cut in the middle of a row: the last row stops inside its low price
        (
            lambda lines: lines[:-1] + [lines[-1][: lines[-1].index(",", 30)]],
            r"line 1656: low is not a number \(empty\)",
        ),
    ],
    ids=["no rows", "renamed column", "non-numeric price", "negative price", "bad date", "out of order", "cut short"],
)
def test_a_spoilt_copy_is_refused_in_one_line_and_left_as_it_was(tmp_path, spoil, message):
    path = spoilt_copy(tmp_path, spoil(list(CSV_LINES)))
    before = path.read_bytes()
    with pytest.raises(LabError) as refused:
        load_prices(path)
    text = str(refused.value)
    assert "\n" not in text and text.startswith(f"data: {path}") and re.search(message, text), text
    assert path.read_bytes() == before and sorted(tmp_path.iterdir()) == [path]


def test_a_missing_file_and_a_binary_file_are_refused_in_one_line(tmp_path):
    with pytest.raises(LabError, match=r"^data: no Bitcoin price file at .*nowhere\.csv$"):
        load_prices(tmp_path / "nowhere.csv")
    binary = tmp_path / "prices.csv"
    binary.write_bytes(b"\xff\xfe\x00\x01" * 100)
    with pytest.raises(LabError) as refused:
        load_prices(binary)
    assert "\n" not in str(refused.value) and str(refused.value).startswith(f"data: {binary}")


def test_a_changed_shipped_copy_is_refused_by_its_checksum(tmp_path, monkeypatch):
    import labkit.bitcoin

    changed = spoilt_copy(tmp_path, list(CSV_LINES[:-1]) + [with_cell(CSV_LINES[-1], "close", "7144.39")])
    monkeypatch.setattr(labkit.bitcoin, "SHIPPED_CSV", changed)
    with pytest.raises(LabError, match=r"differs from the shipped Bitcoin prices .*git checkout -- data/bitcoin/"):
        load_prices()
    # The same file named explicitly is a student's own CSV: checked for its contents, not its digest.
    assert load_prices(changed).close.iloc[-1] == 7144.39


# ---------------------------------------------------------------------------------------------
# Weeks, the split and the scores


def test_weeks_needed_is_the_smallest_range_with_a_training_sequence_and_a_held_out_week():
    import math

    from labkit.bitcoin import WINDOW_WEEKS, weeks_needed

    n = weeks_needed()
    assert n == 96
    assert math.ceil(0.8 * n) == WINDOW_WEEKS + 1 and n - math.ceil(0.8 * n) >= 1
    assert math.ceil(0.8 * (n - 1)) < WINDOW_WEEKS + 1


def test_complete_weeks_drop_weeks_cut_short_or_with_a_missing_day():
    from labkit.bitcoin import complete_weeks, load_prices

    prices = load_prices()
    weeks = complete_weeks(prices, "2016-01-01")
    assert (len(weeks), weeks.labels[0], weeks.labels[-1]) == (96, "2016-01", "2017-44")
    assert str(weeks.dates[0, 0]) == "2016-01-03" and str(weeks.dates[-1, -1]) == "2017-11-04"
    gap = prices.drop(index=prices.index[prices.date == "2016-05-11"])  # a Wednesday goes missing
    assert "2016-19" not in complete_weeks(gap, "2016-01-01").labels
    assert weeks.index_of("2016-01-05") == 0
    with pytest.raises(KeyError):
        weeks.index_of("2016-01-01")  # a Friday in a week cut short


def test_scores_of_a_forecast_by_hand():
    from labkit.bitcoin import forecast_scores

    # Two weeks, last closes 100 and 200; forecasts +10% and 0%; truths 110 and 190 every day.
    predicted = np.array([[0.1] * 7, [0.0] * 7])
    truth = np.array([[110.0] * 7, [190.0] * 7])
    scores = forecast_scores(predicted, np.array([[0.05] * 7, [0.0] * 7]), [100.0, 200.0], truth)
    assert scores["mse"] == pytest.approx((0.05**2) / 2)
    assert scores["rmse_usd"] == pytest.approx(np.sqrt((0 + 10**2) / 2))
    assert scores["mape_percent"] == pytest.approx(100 * (0 + 10 / 190) / 2)


def test_a_forecaster_is_told_from_other_models_by_its_shapes():
    import keras

    from labkit.bitcoin import forecaster_mismatch

    v0 = keras.Sequential([keras.Input((76, 7)), keras.layers.LSTM(7), keras.layers.Dense(7)])
    assert forecaster_mismatch(v0) is None
    digits = keras.Sequential([keras.Input((28, 28)), keras.layers.Flatten(), keras.layers.Dense(10)])
    assert forecaster_mismatch(digits) == "it takes (28, 28) and gives (10,), not 76 weeks of 7 days in and 7 days out"
    short = keras.Sequential([keras.Input((52, 7)), keras.layers.LSTM(7), keras.layers.Dense(7)])
    assert forecaster_mismatch(short).startswith("it takes (52, 7) and gives (7,)")
