"""Tabular regression data for Lesson 3: California housing, or a labelled real substitute.

    data = load_regression_data()                 # housing if it is here, else diabetes, said in one line
    data = load_regression_data("california_housing")   # exactly that, or an error that says how to get it

Seed 001 fits its regression MLPs on California housing (20,640 districts, 8 features, the median
house value in units of $100,000). scikit-learn downloads it on first use, so it works offline only
from scikit-learn's data home or from a classroom mirror folder (`$LAB_DATA_MIRROR`, filled by
`scripts/fetch_data.py --export`). Without it, a default run uses scikit-learn's bundled diabetes
set: 442 real patients, 10 features, a disease-progression score a year later. Nothing here is
ever generated.

The split is the seed's: one `train_test_split` takes a test quarter, a second takes a validation
quarter of the rest, then a `StandardScaler` fitted on the training rows alone scales all three.
"""

from __future__ import annotations

import os
import shutil
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from labkit import LabError
from labkit.data import (
    BAD_FILE_NOTE,
    MIRROR_ENV,
    OFFLINE_ENV,
    Dataset,
    DataUnavailable,
    mirror_dir,
    run_bounded,
    sliced,
)

REGRESSION_SETS = ("california_housing", "diabetes")
DEFAULT_REGRESSION_SET = "california_housing"
HOUSING_FILE = "cal_housing_py3.pkz"  # the name scikit-learn caches the data under
HOUSING_SHAPE = (20640, 8)  # districts, features
SKLEARN_DATA_ENV = "SCIKIT_LEARN_DATA"
SPLIT_SEED = 42  # the seed's random_state for both splits

# The diabetes score runs from 25 to 346. Divided by 100 it sits in the same range as housing's
# values in $100,000, so the seed's SGD learning rates stay stable on either set.
DIABETES_TARGET_SCALE = 100.0

# What build_parser needs to offer these sets as --dataset: `cli.build_parser(..., **DATASET_FLAGS)`.
DATASET_FLAGS = {
    "datasets": REGRESSION_SETS,
    "default_dataset": DEFAULT_REGRESSION_SET,
    "dataset_help": "data to train on (default: California housing, falling back with a notice to "
    "scikit-learn's bundled diabetes set when it is not here; scripts/fetch_data.py gets it)",
}

HOUSING_HINT = (
    "run `python scripts/fetch_data.py` on a machine with internet (it needs scikit-learn's "
    f"{HOUSING_FILE}), or point {MIRROR_ENV} at a classroom mirror folder that holds it"
)


@dataclass
class TabularDataset:
    """Features scaled to zero mean and unit variance on the training rows; float32 throughout."""

    name: str
    source: str
    x_train: np.ndarray
    y_train: np.ndarray
    x_val: np.ndarray
    y_val: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    feature_names: tuple[str, ...]
    target_name: str
    target_unit: str  # what one unit of y means: RMSE is reported in it
    substitute_for: str | None = None
    notes: list[str] = field(default_factory=list)
    scaler: object = None  # the fitted StandardScaler, to scale new rows the same way

    @property
    def num_features(self) -> int:
        return self.x_train.shape[1]

    sizes = Dataset.sizes

    def describe(self) -> dict:
        """What run.json records about the data a run saw: the image sets' fields, plus the columns."""
        return {
            **Dataset.describe(self),
            "features": list(self.feature_names),
            "target": f"{self.target_name} ({self.target_unit})",
        }


def split_and_scale(name, source, features, target, feature_names, target_name, target_unit) -> TabularDataset:
    """The seed's two splits and a scaler fitted on the training rows only."""
    from sklearn.model_selection import train_test_split
    from sklearn.preprocessing import StandardScaler

    x_full, x_test, y_full, y_test = train_test_split(features, target, random_state=SPLIT_SEED)
    x_train, x_val, y_train, y_val = train_test_split(x_full, y_full, random_state=SPLIT_SEED)
    scaler = StandardScaler().fit(x_train)

    def as_float(x):
        return np.asarray(x, dtype="float32")

    return TabularDataset(
        name=name,
        source=source,
        x_train=as_float(scaler.transform(x_train)),
        y_train=as_float(y_train),
        x_val=as_float(scaler.transform(x_val)),
        y_val=as_float(y_val),
        x_test=as_float(scaler.transform(x_test)),
        y_test=as_float(y_test),
        feature_names=tuple(feature_names),
        target_name=target_name,
        target_unit=target_unit,
        scaler=scaler,
    )


# ---------------------------------------------------------------------------------------------
# California housing: scikit-learn's data home, then the classroom mirror, then a bounded download


def sklearn_data_home() -> Path:
    """Where scikit-learn caches downloads: $SCIKIT_LEARN_DATA, else ~/scikit_learn_data.

    Worked out as scikit-learn's get_data_home does, minus the mkdir it does too: looking (a
    `--check`, a run that falls back to diabetes) must not write anything."""
    return Path(os.environ.get(SKLEARN_DATA_ENV) or Path("~", "scikit_learn_data")).expanduser()


def read_housing(folder: Path):
    """The Bunch from `folder`, None when the file is absent; CorruptDataFile when unreadable.

    scikit-learn checks the archive it downloads by sha256, but the .pkz it then writes is a
    joblib dump whose bytes vary with library versions, so a copy is judged by its contents:
    it must load, and hold 20,640 districts of 8 finite features."""
    from sklearn.datasets import fetch_california_housing

    from labkit.data import CorruptDataFile

    path = folder / HOUSING_FILE
    if not path.is_file():
        return None
    try:
        bunch = fetch_california_housing(data_home=str(folder), download_if_missing=False)
    except Exception as error:
        raise CorruptDataFile(f"{path}: {type(error).__name__}: {str(error)[:160]}") from None
    data, target = np.asarray(bunch.data), np.asarray(bunch.target)
    if data.shape != HOUSING_SHAPE or target.shape != HOUSING_SHAPE[:1] or not np.isfinite(data).all():
        raise CorruptDataFile(f"{path}: holds {data.shape} features and {target.shape} targets, not {HOUSING_SHAPE}")
    return bunch


def copy_housing(source: Path, target: Path) -> list[Path]:
    """Copy `source`'s housing file into `target`, keeping one already there; returns what was written.

    Written under a temporary name, then renamed, so an interrupted copy never leaves a truncated
    file under the real name. The caller verifies `source` first (read_housing)."""
    dest = target / HOUSING_FILE
    if dest.exists():
        return []
    target.mkdir(parents=True, exist_ok=True)
    partial = dest.with_name(dest.name + ".partial")
    shutil.copyfile(source / HOUSING_FILE, partial)
    os.replace(partial, dest)
    return [dest]


def _download_housing(target: Path) -> None:
    """scikit-learn's own download, bounded in time like the image downloads in labkit.data."""
    from sklearn.datasets import fetch_california_housing

    def fetch():
        with warnings.catch_warnings():  # scikit-learn warns on each retry; the caller says it in one line
            warnings.simplefilter("ignore")
            fetch_california_housing(data_home=str(target), download_if_missing=True, n_retries=1, delay=0.1)

    run_bounded(fetch, "download-california-housing", "scikit-learn's data server")


def housing_sources() -> list[tuple[str, Path]]:
    sources = [("scikit-learn data home", sklearn_data_home())]
    if mirror_dir() is not None:
        sources.append(("mirror", mirror_dir()))
    return sources


def find_housing(*, allow_download: bool = True):
    """(bunch, source, notes) from the first source that has a good copy; DataUnavailable if none."""
    from labkit.certificates import certificate_failure, certificate_problem
    from labkit.data import CorruptDataFile
    from labkit.data_files import CertificateUnverified

    notes: list[str] = []
    for label, folder in housing_sources():
        try:
            bunch = read_housing(folder)
        except CorruptDataFile as error:
            notes.append(f"{BAD_FILE_NOTE}{error}")
            continue
        if bunch is not None:
            return bunch, f"{label} {folder / HOUSING_FILE}", notes
    if allow_download and os.environ.get(OFFLINE_ENV) == "1":
        notes.append(f"{OFFLINE_ENV}=1: no download tried")
    elif allow_download:
        try:
            _download_housing(sklearn_data_home())
            return read_housing(sklearn_data_home()), f"downloaded to {sklearn_data_home() / HOUSING_FILE}", notes
        except Exception as error:
            if (failure := certificate_failure(error)) is not None:  # the network is there: say how to fix it
                problem = certificate_problem(failure, "https://ndownloader.figshare.com/")
                raise CertificateUnverified(f"California housing could not be downloaded: {problem}", notes) from None
            notes.append(f"download failed: {type(error).__name__}: {str(error).splitlines()[0] if str(error) else ''}")
    raise DataUnavailable(f"California housing is not on this machine; {HOUSING_HINT}", notes)


def load_housing(*, allow_download: bool = True) -> TabularDataset:
    bunch, source, notes = find_housing(allow_download=allow_download)
    dataset = split_and_scale(
        "california_housing",
        f"scikit-learn fetch_california_housing, {source}",
        bunch.data,
        bunch.target,
        bunch.feature_names,
        "median house value",
        "$100,000",
    )
    dataset.notes = notes
    return dataset


def load_diabetes_substitute() -> TabularDataset:
    from sklearn.datasets import load_diabetes

    bunch = load_diabetes()  # bundled with scikit-learn: no download
    return split_and_scale(
        "diabetes",
        "scikit-learn load_diabetes (bundled, 442 patients)",
        bunch.data,
        bunch.target / DIABETES_TARGET_SCALE,
        bunch.feature_names,
        "disease progression after one year",
        f"{DIABETES_TARGET_SCALE:g} score points",
    )


# ---------------------------------------------------------------------------------------------
# The one entry point


def load_regression_data(
    name: str | None = None, *, limits: dict[str, int] | None = None, announce=print
) -> TabularDataset:
    """California housing, or (only when no name was given) the diabetes set, said in one line."""
    explicit = name is not None
    name = name or DEFAULT_REGRESSION_SET
    if name not in REGRESSION_SETS:
        raise LabError(f"unknown regression dataset '{name}'; choose one of {', '.join(REGRESSION_SETS)}")
    if name == "diabetes":
        return sliced(load_diabetes_substitute(), limits)
    try:
        dataset = load_housing()
    except DataUnavailable as error:
        if explicit:
            raise
        reasons = [note for note in error.notes if not note.startswith(BAD_FILE_NOTE)]
        for note in error.notes:
            if note.startswith(BAD_FILE_NOTE):
                announce(f"data: {note}")
        dataset = load_diabetes_substitute()
        dataset.substitute_for = "california_housing"
        dataset.notes = list(error.notes)
        sizes = dataset.sizes()
        announce(
            f"data: California housing is not on this machine ({'; '.join(reasons) or 'no source'}), so this "
            f"run uses a labelled substitute: scikit-learn's bundled diabetes set, target divided by "
            f"{DIABETES_TARGET_SCALE:g} ({sizes['train']} train / {sizes['validation']} validation / "
            f"{sizes['test']} test); scripts/fetch_data.py gets California housing"
        )
    else:
        for note in dataset.notes:
            announce(f"data: {note}")
    return sliced(dataset, limits)
