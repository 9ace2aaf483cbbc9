"""Lesson 4's server, forecasting: GET /forecast and the /bitcoin page on a real Lesson 2 run.

The server runs as a student starts it (serve.py, a real uvicorn, stopped with Ctrl-C). Every
forecast it gives is computed again here from the run's model.keras and the CSV read with pandas.
"""

import math

import numpy as np
import pandas as pd
import pytest

from labtest import REPO, assert_refused, bitcoin_weeks_by_pandas, only_run, run_json
from webtest import DigitServer, headless_chromium, save_screenshot

pytestmark = pytest.mark.slow

SERVE = "lesson_4/serve/serve.py"
LESSON_2 = "lesson_2/bitcoin_lstm/train_bitcoin.py"
CSV = REPO / "data" / "bitcoin" / "bitcoin_historical_prices.csv"


@pytest.fixture(scope="module")
def forecaster_run(quick_run):
    finished = quick_run(LESSON_2, "--quick")
    assert finished.result.returncode == 0, finished.result.stderr[-3000:]
    return only_run(finished.runs_dir)


@pytest.fixture(scope="module")
def server(forecaster_run, tmp_path_factory):
    """Forecasts only: --forecaster, and a runs root without any Lesson 1 run."""
    with DigitServer(["--forecaster", forecaster_run], tmp_path_factory.mktemp("forecast_runs")) as running:
        yield running
    assert running.exit_code == 0, running.output()
    assert running.output().rstrip().endswith("Server stopped."), running.output()


def pandas_weeks():
    """All complete weeks of the CSV (from 2013): dates and closes, (n, 7) each."""
    _, dates, closes = bitcoin_weeks_by_pandas(start=None)
    return dates, closes


def expected_forecast(run_dir, week: int):
    """The forecast after complete week `week`, from the model file, the pandas weeks and the
    original course's denormalization."""
    import keras

    _, closes = pandas_weeks()
    normalized = closes / closes[:, :1] - 1
    window = normalized[week - 75 : week + 1][None].astype("float32")
    model = keras.models.load_model(run_dir / "model.keras", compile=False)
    return closes[week, -1] * (model.predict(window, verbose=0)[0].astype("float64") + 1)


def test_the_default_forecast_is_the_week_after_the_data_and_matches_lesson_2s(server, forecaster_run):
    answer = server.get_json("/forecast")
    dates, closes = pandas_weeks()
    assert answer["made_on"] == dates[-1, -1] == "2017-11-04" and answer["last_close"] == closes[-1, -1]
    assert [day["date"] for day in answer["forecast"]] == [f"2017-11-{d:02d}" for d in range(5, 12)]
    got = [day["close"] for day in answer["forecast"]]
    assert got == pytest.approx(expected_forecast(forecaster_run, len(dates) - 1).tolist(), abs=0.011)
    # The Lesson 2 page recorded its own forecast for the same week: the server must agree with it.
    assert got == pytest.approx(run_json(forecaster_run)["extra"]["next_week"]["closes"], abs=0.011)
    # 2017-11-05..07 are in the CSV (a week cut short), the rest are the future.
    real = pd.read_csv(CSV).set_index("date").close
    assert [day["close"] for day in answer["actual"]] == [
        real["2017-11-05"],
        real["2017-11-06"],
        real["2017-11-07"],
    ] + [None] * 4
    assert answer["days_scored"] == 3
    assert answer["window"] == {"first": dates[-76, 0], "last": "2017-11-04"}
    assert answer["model"] == server.get_json("/health")["forecaster"]
    assert answer["model"].startswith(f"lesson_2/bitcoin_lstm/{forecaster_run.name}#")


def test_a_past_forecast_is_scored_against_the_real_week(server, forecaster_run):
    dates, closes = pandas_weeks()
    week = int(np.nonzero((dates == "2017-06-01").any(axis=1))[0][0])
    answer = server.get_json("/forecast?date=2017-06-01")
    assert answer["made_on"] == dates[week, -1]
    expected = expected_forecast(forecaster_run, week)
    assert [day["close"] for day in answer["forecast"]] == pytest.approx(expected.tolist(), abs=0.011)
    truth = closes[week + 1]
    assert [day["close"] for day in answer["actual"]] == truth.tolist()
    assert answer["mape_percent"] == pytest.approx(100 * np.mean(np.abs(expected - truth) / truth), rel=1e-4)
    assert [point["date"] for point in answer["history"]][-1] == dates[week, -1] and len(answer["history"]) == 28


def test_bad_forecast_requests_get_a_4xx_json_error(server):
    dates, _ = pandas_weeks()
    weeks_before = int((dates[:, -1] <= "2014-05-03").sum())  # complete weeks up to 2014-05-01's week
    for query, status, words in [
        ("date=2019-01-01", 404, "unknown date 2019-01-01: the prices run from 2013-04-28 to 2017-11-07"),
        ("date=2013-01-01", 404, "unknown date 2013-01-01"),
        ("date=2017-13-01", 422, "date must be a day as YYYY-MM-DD, got '2017-13-01'"),
        ("date=yesterday", 422, "got 'yesterday'"),
        ("date=2017-11-06", 422, "falls in week 2017-45, of which the data holds only 3 days"),
        ("date=2014-05-01", 422, f"needs the 76 complete weeks up to it, and the data holds {weeks_before}"),
    ]:
        code, answer = server.request(f"/forecast?{query}")
        assert (code, words in answer.get("error", "")) == (status, True), (query, code, answer)
    assert server.get_json("/health")["status"] == "ok"


def test_without_a_digit_model_the_digit_routes_say_so(server):
    code, answer = server.post_json("/predict", {"image": [[0] * 28] * 28})
    assert code == 409 and "no digit model is loaded" in answer["error"]
    code, answer = server.request("/model")
    assert code == 409
    assert server.get_json("/health")["model"] is None


def test_reload_refuses_a_model_that_is_not_a_forecaster_and_keeps_serving(
    server, forecaster_run, exercise_a_quick_run, tmp_path
):
    before = server.get_json("/health")["forecaster"]
    code, answer = server.post_json("/reload", {"forecaster": str(exercise_a_quick_run)})
    assert code == 422 and "is not a forecaster: it was trained on" in answer["error"], answer
    code, answer = server.post_json("/reload", {"forecaster": str(tmp_path / "nothing")})
    assert code == 422 and "no such folder" in answer["error"], answer
    assert server.get_json("/health")["forecaster"] == before
    code, answer = server.post_json("/reload", {"forecaster": str(forecaster_run / "model.keras")})
    assert code == 200 and answer["forecaster"] == before and answer["previous"] == before


def test_a_digit_server_without_a_forecaster_answers_409_until_one_is_loaded(
    exercise_a_quick_run, forecaster_run, tmp_path
):
    with DigitServer(["--run", exercise_a_quick_run], tmp_path) as digits:
        assert "No Bitcoin forecaster yet" in digits.output()
        code, answer = digits.request("/forecast")
        assert code == 409 and "no forecaster is loaded" in answer["error"]
        code, answer = digits.post_json("/reload", {"forecaster": str(forecaster_run)})
        assert code == 200, answer
        assert digits.get_json("/forecast")["model"] == answer["forecaster"]
        assert digits.get_json("/health")["model"].startswith("lesson_1/exercise_a/")
    assert digits.exit_code == 0


def test_a_digit_run_given_as_forecaster_is_refused_in_one_line(exercise_a_quick_run, runs_dir, capsys, monkeypatch):
    assert_refused(
        SERVE,
        "--forecaster",
        str(exercise_a_quick_run),
        message="is not a forecaster: it was trained on",
        runs_dir=runs_dir,
        capsys=capsys,
        monkeypatch=monkeypatch,
    )


def test_the_bitcoin_page_draws_the_forecast_and_shows_errors(server, forecaster_run):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    with headless_chromium() as browser:
        browser.get(server.url + "/bitcoin")
        wait = WebDriverWait(browser, 30)
        wait.until(lambda b: b.find_element(By.ID, "status").text.startswith("Forecast made on"))
        assert browser.find_element(By.ID, "model").text.startswith("Forecaster: lesson_2/bitcoin_lstm/")
        status = browser.find_element(By.ID, "status").text
        assert status.startswith("Forecast made on 2017-11-04, from $7379.95") and "off by" in status
        assert status.endswith("over the 3 real days (MAPE)")  # 2017-11-05..07; the CSV ends there
        points = browser.find_element(By.ID, "forecast").get_attribute("points").split()
        assert len(points) == 8  # the last close, then seven forecast days
        rows = browser.find_elements(By.CSS_SELECTOR, "#table tbody tr")
        assert len(rows) == 7 and rows[-1].text.endswith("not in the data")

        field = browser.find_element(By.ID, "date")
        field.send_keys("2017-06-01\n")
        wait.until(lambda b: "off by" in b.find_element(By.ID, "status").text)
        expected = server.get_json("/forecast?date=2017-06-01")
        assert f"off by {expected['mape_percent']:.2f}%" in browser.find_element(By.ID, "status").text
        cells = [row.text.split() for row in browser.find_elements(By.CSS_SELECTOR, "#table tbody tr")]
        assert [float(row[1]) for row in cells] == pytest.approx([d["close"] for d in expected["forecast"]], abs=0.006)
        screenshot = save_screenshot(browser, "lesson_4_bitcoin_forecast.png")

        field.clear()
        field.send_keys("2019-01-01\n")
        wait.until(lambda b: b.find_element(By.ID, "error").text)
        assert browser.find_element(By.ID, "error").text.startswith("404: unknown date 2019-01-01")
    assert screenshot.stat().st_size > 10_000
    assert math.isfinite(expected["mape_percent"])
