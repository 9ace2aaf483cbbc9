"""Get the course datasets ready for an offline classroom, and move them between machines.

    python scripts/fetch_data.py                 # fill the caches (downloads what is missing)
    python scripts/fetch_data.py --check         # only report; no network, writes nothing
    python scripts/fetch_data.py --export DIR    # copy the verified caches into a mirror folder
    python scripts/fetch_data.py --import DIR    # fill the caches from a mirror folder

MNIST and Fashion-MNIST live in the Keras cache; California housing (Lesson 3's regression data)
in scikit-learn's data home ($SCIKIT_LEARN_DATA, else ~/scikit_learn_data) as cal_housing_py3.pkz.
Every file is verified before it is used or copied: mnist.npz by the sha256 Keras expects,
MNIST and Fashion-MNIST idx files by the sha256 of their decompressed content (any gzip will do),
the housing file by loading it through scikit-learn and checking its 20,640 rows of 8 features.
A mirror folder has the caches' layout (mnist.npz, fashion-mnist/*.gz, cal_housing_py3.pkz at its
top), so students can also use it directly with LAB_DATA_MIRROR=DIR. scikit-learn's digits and
diabetes sets ship with scikit-learn.

Exit codes: 0 all datasets ready, 1 some missing (each with a hint), 2 bad usage. A download that
fails because this Python cannot verify the server's certificate (a python.org Python on macOS
before its "Install Certificates.command" ran) is one MISSING line with the fix, and no further
download is tried: each would fail the same way.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import labkit  # noqa: F401  (quiets TensorFlow if a download needs it)
from labkit import LabError
from labkit.data_files import (
    BAD_FILE_NOTE,
    CertificateUnverified,
    DataUnavailable,
    copy_dataset_files,
    dataset_files,
    find_raw,
    keras_cache_dir,
    mirror_dir,
    reader_for,
)
from labkit.tabular import HOUSING_FILE, copy_housing, find_housing, read_housing, sklearn_data_home

HOUSING = "california_housing"
FETCHABLE = ("mnist", "fashion_mnist", HOUSING)


def home_of(name: str) -> Path:
    """The cache a dataset lives in on a student's machine."""
    return sklearn_data_home() if name == HOUSING else keras_cache_dir()


def where(name: str) -> str:
    return "scikit-learn's data home" if name == HOUSING else "the Keras cache"


def verified_files(name: str, folder: Path) -> list[Path]:
    """The files holding a valid copy of `name` in `folder` (empty if none); raises if corrupt."""
    if name == HOUSING:
        return [folder / HOUSING_FILE] if read_housing(folder) is not None else []
    return dataset_files(name, folder) if reader_for(name)(folder) is not None else []


def copy_files(name: str, source: Path, target: Path) -> list[Path]:
    return copy_housing(source, target) if name == HOUSING else copy_dataset_files(name, source, target)


def find(name: str, *, allow_download: bool, write: bool):
    """(source, notes) of the first good copy of `name`; DataUnavailable (with its notes) if none.

    Found in the mirror only, housing is also copied into scikit-learn's data home, as the image
    sets are into the Keras cache, when `write` (not a --check)."""
    if name != HOUSING:
        found = find_raw(name, allow_download=allow_download, seed_cache=write)
        return found.verified_summary, found.notes
    _, source, notes = find_housing(allow_download=allow_download)
    home, mirror = sklearn_data_home(), mirror_dir()
    # The chain reads the data home first and downloads into it, so a good copy that is not there came from the mirror.
    if write and mirror is not None and not (home / HOUSING_FILE).exists():
        try:
            if copy_housing(mirror, home):
                notes.append(f"copied {HOUSING_FILE} into scikit-learn's data home at {home}")
        except OSError as error:  # a read-only home: the mirror still serves every run
            notes.append(f"could not copy it into {home}: {error.strerror or error}")
    return source, notes


def fetch(names, *, allow_download: bool) -> int:
    missing = 0
    certificate_failed = False
    for name in names:
        try:
            source, notes = find(name, allow_download=allow_download and not certificate_failed, write=allow_download)
        except CertificateUnverified as error:
            print(f"MISSING {name}: {error}")
            for note in error.notes:
                if note.startswith(BAD_FILE_NOTE):
                    print(f"        {note}")
            certificate_failed = True
            missing += 1
            continue
        except DataUnavailable as error:
            if certificate_failed:
                print(f"MISSING {name}: no download tried after the certificate failure above")
                missing += 1
                continue
            print(f"MISSING {name}: {error}")
            # find_raw folds its notes into the message; the housing chain keeps them apart.
            for note in error.notes if name == HOUSING else ():
                print(f"        {note}")
            missing += 1
            continue
        print(f"OK      {name}: {source}")
        for note in notes:
            print(f"        {note}")
    if set(names) - {HOUSING}:
        print(f"Keras cache: {keras_cache_dir()}")
    if HOUSING in names:
        print(f"scikit-learn data home: {sklearn_data_home()}")
    return 1 if missing else 0


def transfer(names, *, export: Path | None = None, import_dir: Path | None = None) -> int:
    """Copy each verified dataset between its cache and a mirror folder; 1 if any was missing or corrupt."""
    missing = 0
    for name in names:
        source, target = (home_of(name), export) if export is not None else (import_dir, home_of(name))
        try:
            present = verified_files(name, source)
        except LabError as error:
            print(f"SKIP    {name}: {error}")
            missing += 1
            continue
        if not present:
            hint = (
                f"not in {where(name)} at {source}; run this script without --export first"
                if export is not None
                else f"nothing for it in {source}"
            )
            print(f"MISSING {name}: {hint}")
            missing += 1
            continue
        written = copy_files(name, source, target)
        print(
            f"OK      {name}: " + (f"copied {len(written)} file(s) to {target}" if written else f"already in {target}")
        )
    return 1 if missing else 0


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    group = parser.add_mutually_exclusive_group()
    group.add_argument("--check", action="store_true", help="report only: no network, no writes")
    group.add_argument("--export", metavar="DIR", type=Path, help="copy the verified caches into DIR")
    group.add_argument("--import", dest="import_dir", metavar="DIR", type=Path, help="fill the caches from DIR")
    parser.add_argument(
        "--dataset", action="append", choices=FETCHABLE, help="limit to this dataset (repeatable; default: all)"
    )
    args = parser.parse_args(argv)
    names = args.dataset or list(FETCHABLE)

    if args.import_dir is not None and not args.import_dir.is_dir():
        parser.exit(2, f"{parser.prog}: error: --import folder {args.import_dir} does not exist\n")
    if args.export is not None and args.export.exists() and not args.export.is_dir():
        parser.exit(2, f"{parser.prog}: error: --export target {args.export} is a file\n")

    if args.export is not None:
        status = transfer(names, export=args.export)
        print(f"Students can use it with: LAB_DATA_MIRROR={args.export}")
        return status
    if args.import_dir is not None:
        return transfer(names, import_dir=args.import_dir)
    return fetch(names, allow_download=not args.check)


if __name__ == "__main__":
    sys.exit(main())
