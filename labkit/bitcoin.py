"""The original course's daily Bitcoin prices, the data of the forecasting thread (Lessons 2-4).

The CSV ships in the repository (`data/bitcoin/`, with its source and licence), so the thread
needs no network. `load_prices()` hands it over as a pandas DataFrame after checking it: the
shipped copy against its SHA-256, and any file (the shipped one, or a student's own through a
page's flag) for what the pages rely on. A file that fails is refused in one line (LabError,
exit code 2) that names the problem and, where there is one, the CSV line; nothing is written.

The weekly normalization and the tensors for the LSTM are lesson material: they live on the
pages, not here.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

from labkit import LabError

SHIPPED_CSV = Path(__file__).resolve().parents[1] / "data" / "bitcoin" / "bitcoin_historical_prices.csv"
SHIPPED_SHA256 = "369548cd09b86d8af12c2283d1bf537f31cc4188361ee0a35d8af20e467945d6"
COLUMNS = ("date", "iso_week", "open", "high", "low", "close", "volume", "market_capitalization")
PRICE_COLUMNS = ("open", "high", "low", "close")
# Empty cells are allowed here: the shipped file has no volume before 2013-12-27.
OPTIONAL_NUMBER_COLUMNS = ("volume", "market_capitalization")


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
