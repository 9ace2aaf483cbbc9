"""The Bitcoin thread's forecaster, served by Lesson 4's server beside the digit reader.

    GET /forecast?date=YYYY-MM-DD   the next 7 daily closes after the complete week holding DATE
                                    (no date: after the last complete week in the data, the future)
    GET /bitcoin                    a page that draws the forecast over the real prices

A forecaster is a run of the thread (Lesson 2's bitcoin_lstm, Lesson 3's bitcoin_evaluation or
Lesson 4's bitcoin_walk_forward): its model card names the "bitcoin" data, and its model takes 76
weeks of 7 normalized closes and gives 7. The forecast is made the way the pages make it: the 76
complete weeks up to DATE's week, each relative to its first day, and the answer turned back into
dollars from the last close of that week.
"""

from __future__ import annotations

import datetime
import functools
import threading
import time
from pathlib import Path

import numpy as np

from labkit import LabError
from labkit.bitcoin import (
    DAYS_PER_WEEK,
    WINDOW_WEEKS,
    complete_weeks,
    forecaster_mismatch,
    load_prices,
    to_dollars,
)
from labkit.saved_models import check_model_file, model_in_run, newest_run_model, read_card
from labkit.web_guard import Refused

PAGE = Path(__file__).with_name("forecast.html")
FORECAST_DATA = "bitcoin"
# Where a server without --forecaster looks, newest finished run first: Lesson 4's kept-current
# model, then Lesson 3's, then Lesson 2's.
FORECAST_ACTIVITIES = (
    ("lesson_4", "bitcoin_walk_forward"),
    ("lesson_3", "bitcoin_evaluation"),
    ("lesson_2", "bitcoin_lstm"),
)
HISTORY_DAYS = 28  # the real closes before a forecast that the page draws beside it
NO_FORECASTER = (
    "no forecaster is loaded: train one (python lesson_2/bitcoin_lstm/train_bitcoin.py), then start the "
    'server with --forecaster RUN_DIR or POST /reload {"forecaster": RUN_DIR}'
)


def forecaster_card(model_path: Path) -> dict:
    """The model card, if it names the Bitcoin data; a one-line LabError otherwise."""
    card = read_card(model_path)
    data = card.get("data") if isinstance(card, dict) else None
    name = data.get("name") if isinstance(data, dict) else None
    if name != FORECAST_DATA or not isinstance(card.get("identity"), str):
        trained_on = f"was trained on {name}" if isinstance(name, str) else "has a card that names no dataset"
        raise LabError(
            f"{model_path} is not a forecaster: it {trained_on}; serve a run of the Bitcoin thread "
            f"({', '.join('/'.join(pair) for pair in FORECAST_ACTIVITIES)})"
        )
    return card


def checked_forecaster(kind: str, path: str) -> Path:
    """The model.keras of a run folder (kind "run") or a .keras file, checked as a forecaster."""
    model_path = model_in_run(path, "--forecaster") if kind == "run" else check_model_file(path)
    forecaster_card(model_path)
    return model_path


def forecaster_from_flag(value: str) -> Path:
    """--forecaster names a run folder or a .keras file."""
    return checked_forecaster("model" if value.endswith(".keras") else "run", value)


def newest_forecaster(root: Path) -> Path | None:
    """The newest finished run's model among the thread's activities, or None if there is none."""
    found = []
    for lesson, activity in FORECAST_ACTIVITIES:
        try:
            path = newest_run_model(root, lesson, activity)
        except LabError:
            continue
        found.append((path.stat().st_mtime, path))
    return max(found)[1] if found else None


class ServedForecaster:
    """A loaded forecaster and the complete weeks of the shipped prices it forecasts from."""

    def __init__(self, path: Path):
        import keras
        import tensorflow as tf

        self.path = Path(path).resolve()
        self.card = forecaster_card(self.path)
        self.model = model = keras.models.load_model(self.path, compile=False)
        if mismatch := forecaster_mismatch(model):
            raise LabError(f"{self.path} is not a forecaster: {mismatch}")
        self.prices = load_prices()
        self.weeks = complete_weeks(self.prices, start=None)
        self._forward = tf.function(
            functools.partial(_call, model),
            input_signature=[tf.TensorSpec((1, WINDOW_WEEKS, DAYS_PER_WEEK), tf.float32)],
        )
        self._lock = threading.Lock()
        self.loaded_at = time.time()

    @property
    def identity(self) -> str:
        return self.card["identity"]

    def week_for(self, date: str | None) -> int:
        """The index of the complete week a forecast starts after; a Refused (4xx) for a bad date."""
        if date is None:
            return len(self.weeks) - 1
        try:
            day = datetime.date.fromisoformat(date)
        except ValueError:
            raise Refused(422, f"date must be a day as YYYY-MM-DD, got '{date[:40]}'") from None
        first, last = self.prices.date.iloc[0].date(), self.prices.date.iloc[-1].date()
        if not first <= day <= last:
            raise Refused(404, f"unknown date {day}: the prices run from {first} to {last}")
        try:
            week = self.weeks.index_of(day)
        except KeyError:
            label = self.prices.iso_week[self.prices.date.dt.date == day].iloc[0]
            days = int((self.prices.iso_week == label).sum())
            raise Refused(
                422, f"{day} falls in week {label}, of which the data holds only {days} days: pick a day of a full week"
            ) from None
        if week + 1 < WINDOW_WEEKS:
            earliest = self.weeks.dates[WINDOW_WEEKS - 1, 0]
            raise Refused(
                422,
                f"a forecast from {day} needs the {WINDOW_WEEKS} complete weeks up to it, and the data holds "
                f"{week + 1}: the window would start before the data; pick a day from {earliest} on",
            )
        return week

    def forecast(self, date: str | None = None) -> dict:
        week = self.week_for(date)
        window = self.weeks.windows([week + 1])  # the 76 weeks up to and including `week`
        with self._lock:
            normalized = np.asarray(self._forward(window), dtype="float64")
        last_close = self.weeks.closes[week, -1]
        closes = to_dollars(normalized, [last_close])[0]
        made_on = self.weeks.dates[week, -1]
        days = [made_on + np.timedelta64(k, "D") for k in range(1, DAYS_PER_WEEK + 1)]
        known = self.prices.set_index(self.prices.date.dt.date).close
        actual = [float(known[d.astype(object)]) if d.astype(object) in known.index else None for d in days]
        history = self.prices[self.prices.date <= str(made_on)].tail(HISTORY_DAYS)
        scored = [(c, a) for c, a in zip(closes, actual, strict=True) if a is not None]
        return {
            "model": self.identity,
            "made_on": str(made_on),
            "last_close": float(last_close),
            "window": {"first": str(self.weeks.dates[week + 1 - WINDOW_WEEKS, 0]), "last": str(made_on)},
            "forecast": [{"date": str(d), "close": round(float(c), 2)} for d, c in zip(days, closes, strict=True)],
            "actual": [{"date": str(d), "close": a} for d, a in zip(days, actual, strict=True)],
            "mape_percent": float(100 * np.mean([abs(c - a) / a for c, a in scored])) if scored else None,
            "days_scored": len(scored),
            "history": [
                {"date": str(d.date()), "close": float(c)} for d, c in zip(history.date, history.close, strict=True)
            ],
        }


def _call(model, batch):
    return model(batch, training=False)


def add_forecast_routes(app, state: dict) -> None:
    """GET /forecast and GET /bitcoin on the server's app; `state["forecaster"]` may be None."""
    from fastapi.concurrency import run_in_threadpool
    from fastapi.responses import HTMLResponse

    @app.get("/forecast")
    async def forecast(date: str | None = None):
        forecaster = state.get("forecaster")
        if forecaster is None:
            raise Refused(409, NO_FORECASTER)
        answer = await run_in_threadpool(forecaster.forecast, date)
        state["forecasts"] = state.get("forecasts", 0) + 1
        return answer

    @app.get("/bitcoin", response_class=HTMLResponse)
    def forecast_page():
        return PAGE.read_text(encoding="utf-8")
