"""The original course's daily Bitcoin prices, the data of the forecasting thread (Lessons 2-4).

The CSV ships in the repository (`data/bitcoin/`, with its source and licence), so the thread
needs no network. `load_prices()` hands it over as a pandas DataFrame after checking it: the
shipped copy against its SHA-256, and any file (the shipped one, or a student's own through a
page's flag) for what the pages rely on. A file that fails is refused in one line (LabError,
exit code 2) that names the problem and, where there is one, the CSV line; nothing is written.

`weekly_split()` turns the prices into what the thread's three lessons all use: complete weeks of
seven daily closes, each week normalized to its first day (`close / first_close - 1`), the
`(samples, timesteps, features)` tensors of the LSTM, and the scores of a forecast in dollars.
Lesson 2's page derives the normalization and the tensors step by step with pandas and NumPy,
then checks its own numbers against these.
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from labkit import LabError

SHIPPED_CSV = Path(__file__).resolve().parents[1] / "data" / "bitcoin" / "bitcoin_historical_prices.csv"
SHIPPED_SHA256 = "369548cd09b86d8af12c2283d1bf537f31cc4188361ee0a35d8af20e467945d6"
COLUMNS = ("date", "iso_week", "open", "high", "low", "close", "volume", "market_capitalization")
PRICE_COLUMNS = ("open", "high", "low", "close")
# Empty cells are allowed here: the shipped file has no volume before 2013-12-27.
OPTIONAL_NUMBER_COLUMNS = ("volume", "market_capitalization")
DEFAULT_START = "2016-01-01"  # the original course keeps 2016-2017


# What every page of the thread passes to `cli.build_parser(..., **PARSER_SETTINGS)`: the one
# dataset, and the shared flags that mean nothing for a model trained on one sequence.
PARSER_SETTINGS = {
    "datasets": ("bitcoin",),
    "default_dataset": "bitcoin",
    "dataset_help": "the original course's daily Bitcoin prices, shipped in data/bitcoin/ (the only choice; "
    "--csv reads another file with the same columns)",
    "not_here": {
        "--resume": "a forecasting run takes seconds to a few minutes; run it again instead",
        "--distribute": "one training sequence cannot be split over devices",
        "--cpu-replicas": "one training sequence cannot be split over devices",
        "--steps-per-epoch": "an epoch here is one step on the one training sequence",
    },
}


def add_price_flags(parser) -> None:
    """--csv, --start and --end: which prices a page reads, checked before anything is written."""
    from labkit.cli import iso_date

    parser.add_argument(
        "--csv", metavar="PATH", help="a CSV with the shipped file's columns (default: the shipped prices)"
    )
    parser.add_argument(
        "--start", type=iso_date, default=DEFAULT_START, help=f"first day, YYYY-MM-DD (default {DEFAULT_START})"
    )
    parser.add_argument(
        "--end", type=iso_date, default=None, help="last day, YYYY-MM-DD (default: the last in the file)"
    )


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as stream:
        for block in iter(lambda: stream.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def load_prices(path: str | Path | None = None):
    """The daily prices, oldest first, with `date` parsed; `path` None means the shipped copy."""
    import pandas as pd

    csv = SHIPPED_CSV if path is None else Path(path)
    if not csv.is_file():
        raise LabError(f"data: no Bitcoin price file at {csv}")
    if path is None and (digest := sha256_of(csv)) != SHIPPED_SHA256:
        raise LabError(
            f"data: {csv} differs from the shipped Bitcoin prices (SHA-256 {digest[:12]}..., expected "
            f"{SHIPPED_SHA256[:12]}...); restore it with: git checkout -- data/bitcoin/{csv.name}"
        )
    try:
        # Every cell as the text in the file (no "n/a" turned into NaN), so a refusal can quote it.
        frame = pd.read_csv(csv, dtype=str, keep_default_na=False)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError, ValueError) as error:
        reason = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise LabError(f"data: {csv} is not a readable CSV: {reason}") from None
    missing = [column for column in COLUMNS if column not in frame.columns]
    if missing:
        raise LabError(f"data: {csv} lacks the column(s) {', '.join(missing)}; expected {', '.join(COLUMNS)}")
    if frame.empty:
        raise LabError(f"data: {csv} has a header and no rows")

    frame = frame.fillna("")  # a row cut short has no cells at its end
    dates = pd.to_datetime(frame["date"], format="%Y-%m-%d", errors="coerce")
    _refuse_bad_rows(csv, dates.isna(), "a date that is not YYYY-MM-DD", frame["date"])
    _refuse_bad_rows(csv, frame["iso_week"].str.strip() == "", "no iso_week", frame["iso_week"])
    for column in PRICE_COLUMNS + OPTIONAL_NUMBER_COLUMNS:
        empty = frame[column].str.strip() == ""
        values = pd.to_numeric(frame[column].where(~empty), errors="coerce")
        unreadable = values.isna() & (~empty | (column in PRICE_COLUMNS))
        _refuse_bad_rows(csv, unreadable, f"{column} is not a number", frame[column])
        _refuse_bad_rows(csv, values <= 0, f"{column} is not positive", frame[column])
        frame[column] = values.astype("float64")
    not_later = (dates.diff().dt.days <= 0).fillna(False)  # the first row has no row before it
    _refuse_bad_rows(csv, not_later, "a date not after the one before it", frame["date"])
    frame["date"] = dates
    return frame


def _refuse_bad_rows(csv: Path, bad, what: str, values) -> None:
    """One line naming the first bad row as the CSV line a text editor shows (the header is line 1)."""
    if bad.any():
        first = int(bad.to_numpy().nonzero()[0][0])
        count = int(bad.sum())
        more = f" ({count} rows in all)" if count > 1 else ""
        value = str(values.iloc[first])
        shown = repr(value) if value.strip() else "empty"
        raise LabError(f"data: {csv}, line {first + 2}: {what} ({shown}){more}")


# ---------------------------------------------------------------------------------------------
# Weeks, the LSTM's tensors, and a forecast's scores

DAYS_PER_WEEK = 7
WINDOW_WEEKS = 76  # the original course's input: 76 weeks of 7 days
TRAIN_SHARE = 0.8  # the first 80% of the weeks train, the last 20% are held out


@dataclass(frozen=True)
class Weeks:
    """Complete weeks (7 days, by the CSV's `iso_week`), oldest first: labels, dates and closes."""

    labels: tuple[str, ...]
    dates: np.ndarray  # datetime64[D], (n_weeks, 7)
    closes: np.ndarray  # float64 dollars, (n_weeks, 7)

    def __len__(self) -> int:
        return len(self.labels)

    @property
    def normalized(self) -> np.ndarray:
        """Each week relative to its first day: 0 on the first day, +0.05 for a close 5% above it."""
        return self.closes / self.closes[:, :1] - 1.0

    def windows(self, targets) -> np.ndarray:
        """For each target week index t, the WINDOW_WEEKS normalized weeks before it: (n, 76, 7)."""
        normalized = self.normalized.astype("float32")
        return np.stack([normalized[t - WINDOW_WEEKS : t] for t in targets])

    def index_of(self, day) -> int:
        """The index of the complete week holding `day`; KeyError if no complete week does."""
        day = np.datetime64(day, "D")
        found = np.nonzero((self.dates == day).any(axis=1))[0]
        if not len(found):
            raise KeyError(str(day))
        return int(found[0])


def complete_weeks(prices, start: str | None = DEFAULT_START, end: str | None = None) -> Weeks:
    """The weeks of `prices` between `start` and `end` (inclusive) that hold all seven days; the
    cut-off first and last weeks of a range are dropped, never padded."""
    rows = prices
    if start:
        rows = rows[rows["date"] >= start]
    if end:
        rows = rows[rows["date"] <= end]
    labels, dates, closes = [], [], []
    for label, week in rows.groupby("iso_week", sort=False):
        days = week["date"].to_numpy().astype("datetime64[D]")
        if len(week) == DAYS_PER_WEEK and (np.diff(days) == np.timedelta64(1, "D")).all():
            labels.append(label)
            dates.append(days)
            closes.append(week["close"].to_numpy(dtype="float64"))
    if not labels:
        return Weeks((), np.empty((0, DAYS_PER_WEEK), "datetime64[D]"), np.empty((0, DAYS_PER_WEEK)))
    return Weeks(tuple(labels), np.stack(dates), np.stack(closes))


def weeks_needed(train_share: float = TRAIN_SHARE) -> int:
    """The fewest complete weeks that give one training sequence (76 weeks and the 77th as its
    target) inside the first `train_share`, and at least one held-out week after it: 96 at 80%."""
    n = WINDOW_WEEKS + 2
    while math.ceil(train_share * n) < WINDOW_WEEKS + 1 or n - math.ceil(train_share * n) < 1:
        n += 1
    return n


@dataclass
class BitcoinWeeks:
    """The thread's data as a lab dataset: one training sequence, and the held-out weeks.

    x_train (1, 76, 7): the 76 weeks before the last training week, y_train (1, 7) that week.
    x_test (n, 76, 7): for each held-out week, the 76 weeks before it (known when it is forecast),
    y_test (n, 7) the week itself; every week is normalized to its own first day. The held-out
    weeks are also the validation data, so that TensorBoard draws their loss after every epoch.
    """

    weeks: Weeks
    n_train_weeks: int
    csv: str
    name: str = "bitcoin"
    substitute_for: str | None = None
    notes: list[str] = field(default_factory=list)

    def __post_init__(self):
        self.train_targets = np.array([self.n_train_weeks - 1])
        self.test_targets = np.arange(self.n_train_weeks, len(self.weeks))
        normalized = self.weeks.normalized.astype("float32")
        self.x_train, self.y_train = self.weeks.windows(self.train_targets), normalized[self.train_targets]
        self.x_test, self.y_test = self.weeks.windows(self.test_targets), normalized[self.test_targets]
        self.x_val, self.y_val = self.x_test, self.y_test

    @property
    def source(self) -> str:
        first, last = self.weeks.dates[0, 0], self.weeks.dates[-1, -1]
        return f"{self.csv}, {len(self.weeks)} complete weeks {first} to {last}"

    def sizes(self) -> dict[str, int]:
        from labkit.data import Dataset

        return Dataset.sizes(self)

    def describe(self) -> dict:
        """What run.json records: the image sets' fields, plus the weeks and the split."""
        from labkit.data import Dataset

        held_out = self.test_targets
        return {
            **Dataset.describe(self),
            "weeks": len(self.weeks),
            "train_weeks": [self.weeks.labels[0], self.weeks.labels[self.n_train_weeks - 1]],
            "held_out_weeks": [self.weeks.labels[held_out[0]], self.weeks.labels[held_out[-1]]],
            "window_weeks": WINDOW_WEEKS,
            "validation": "the held-out weeks (the same as test)",
        }

    def last_closes(self, targets) -> np.ndarray:
        """The close on the day before each target week: what a forecast is denormalized with."""
        return self.weeks.closes[np.asarray(targets) - 1, -1]


def weekly_split(
    csv: str | Path | None = None, start: str | None = DEFAULT_START, end: str | None = None
) -> BitcoinWeeks:
    """The shipped prices (or `csv`), cut to [start, end], as complete weeks split 80/20; a one-line
    LabError if the range holds too few weeks for one 76-week training sequence and a held-out week."""
    prices = load_prices(csv)
    weeks = complete_weeks(prices, start, end)
    needed = weeks_needed()
    if len(weeks) < needed:
        span = f"{start or 'the first day'} to {end or 'the last day'}"
        raise LabError(
            f"data: {span} holds {len(weeks)} complete weeks; the LSTM needs {needed} "
            f"({WINDOW_WEEKS} weeks of input, the week after them to train on, and 20% held out): "
            "start earlier or end later"
        )
    return BitcoinWeeks(weeks, math.ceil(TRAIN_SHARE * len(weeks)), str(csv or SHIPPED_CSV.name))


def forecaster_mismatch(model) -> str | None:
    """None if `model` takes 76 weeks of 7 normalized days and gives 7; otherwise what it takes
    and gives instead, for a one-line refusal (the walk-forward's --baseline, the server)."""
    inputs, outputs = model.inputs, model.outputs
    takes = tuple(inputs[0].shape[1:]) if len(inputs) == 1 else f"{len(inputs)} inputs"
    gives = tuple(outputs[0].shape[1:]) if len(outputs) == 1 else f"{len(outputs)} outputs"
    if takes == (WINDOW_WEEKS, DAYS_PER_WEEK) and gives == (DAYS_PER_WEEK,):
        return None
    wanted = f"{WINDOW_WEEKS} weeks of {DAYS_PER_WEEK} days in and {DAYS_PER_WEEK} days out"
    return f"it takes {takes} and gives {gives}, not {wanted}"


def to_dollars(normalized, last_close) -> np.ndarray:
    """The original course's denormalization: `last_close * (y + 1)`, one last close per week."""
    return np.asarray(last_close, dtype="float64")[:, None] * (np.asarray(normalized, dtype="float64") + 1.0)


def baseline_forecasts(x) -> dict[str, np.ndarray]:
    """Two forecasts that learn nothing, as normalized weeks like the model's output.

    persistence: every day of next week at this week's last close (y = 0 after denormalizing);
    repeat_week: next week moves as this week did, from this week's last close."""
    x = np.asarray(x, dtype="float64")
    return {"persistence": np.zeros_like(x[:, -1, :]), "repeat_week": x[:, -1, :]}


def forecast_scores(predicted, true_normalized, last_close, true_closes) -> dict[str, float]:
    """MSE on the normalized weeks, RMSE in dollars and MAPE in percent, over every forecast day."""
    predicted = np.asarray(predicted, dtype="float64")
    dollars = to_dollars(predicted, last_close)
    true_closes = np.asarray(true_closes, dtype="float64")
    return {
        "mse": float(np.mean((predicted - np.asarray(true_normalized, dtype="float64")) ** 2)),
        "rmse_usd": float(np.sqrt(np.mean((dollars - true_closes) ** 2))),
        "mape_percent": float(100 * np.mean(np.abs(dollars - true_closes) / true_closes)),
    }
