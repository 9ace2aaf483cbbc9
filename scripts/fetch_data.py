"""Get the course datasets ready for an offline classroom, and move them between machines.

    python scripts/fetch_data.py                 # fill the Keras cache (downloads what is missing)
    python scripts/fetch_data.py --check         # only report; no network, writes nothing
    python scripts/fetch_data.py --export DIR    # copy the verified cache into a mirror folder
    python scripts/fetch_data.py --import DIR    # fill the cache from a mirror folder

Every file is verified before it is used or copied: mnist.npz by the sha256 Keras expects,
Fashion-MNIST by the sha256 of its decompressed idx files, MNIST idx files by their headers.
A mirror folder has the cache's layout (mnist.npz, fashion-mnist/*.gz), so students can also
use it directly with LAB_DATA_MIRROR=DIR. scikit-learn's digits ship with scikit-learn.

Exit codes: 0 all datasets ready, 1 some missing (each with a hint), 2 bad usage.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import labkit  # noqa: F401  (quiets TensorFlow if a download needs it)
from labkit import LabError
from labkit.data import DataUnavailable, copy_dataset_files, dataset_files, find_raw, keras_cache_dir, reader_for

FETCHABLE = ("mnist", "fashion_mnist")


def verified_files(name: str, folder: Path) -> list[Path]:
    """The files holding a valid copy of `name` in `folder` (empty if none); raises if corrupt."""
    return dataset_files(name, folder) if reader_for(name)(folder) is not None else []


def fetch(names, *, allow_download: bool) -> int:
    missing = 0
    for name in names:
        try:
            found = find_raw(name, allow_download=allow_download, seed_cache=allow_download)
        except DataUnavailable as error:
            print(f"MISSING {name}: {error}")
            missing += 1
            continue
        print(f"OK      {name}: {found.source}")
        for note in found.notes:
            print(f"        {note}")
    print(f"Keras cache: {keras_cache_dir()}")
    return 1 if missing else 0


def transfer(names, source: Path, target: Path, *, when_missing: str) -> int:
    """Copy each verified dataset from `source` to `target`; 1 if any was missing or corrupt."""
    missing = 0
    for name in names:
        try:
            present = verified_files(name, source)
        except LabError as error:
            print(f"SKIP    {name}: {error}")
            missing += 1
            continue
        if not present:
            print(f"MISSING {name}: {when_missing}")
            missing += 1
            continue
        written = copy_dataset_files(name, source, target)
        print(
            f"OK      {name}: " + (f"copied {len(written)} file(s) to {target}" if written else f"already in {target}")
        )
    return 1 if missing else 0


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    group = parser.add_mutually_exclusive_group()
    group.add_argument("--check", action="store_true", help="report only: no network, no writes")
    group.add_argument("--export", metavar="DIR", type=Path, help="copy the verified cache into DIR")
    group.add_argument("--import", dest="import_dir", metavar="DIR", type=Path, help="fill the Keras cache from DIR")
    parser.add_argument(
        "--dataset", action="append", choices=FETCHABLE, help="limit to this dataset (repeatable; default: all)"
    )
    args = parser.parse_args(argv)
    names = args.dataset or list(FETCHABLE)

    if args.import_dir is not None and not args.import_dir.is_dir():
        parser.exit(2, f"{parser.prog}: error: --import folder {args.import_dir} does not exist\n")
    if args.export is not None and args.export.exists() and not args.export.is_dir():
        parser.exit(2, f"{parser.prog}: error: --export target {args.export} is a file\n")

    cache = keras_cache_dir()
    if args.export is not None:
        status = transfer(
            names,
            cache,
            args.export,
            when_missing=f"not in the Keras cache at {cache}; run this script without --export first",
        )
        print(f"Students can use it with: LAB_DATA_MIRROR={args.export}")
        return status
    if args.import_dir is not None:
        return transfer(names, args.import_dir, cache, when_missing=f"nothing for it in {args.import_dir}")
    return fetch(names, allow_download=not args.check)


if __name__ == "__main__":
    sys.exit(main())
