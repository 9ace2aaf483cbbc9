"""`python scripts/lab.py collect STUDENT_ARCHIVE... --into DIR`: a class's runs in one logdir.

Each input (a .zip/.tar/.tar.gz made by `lab.py runs --export`, any archive of a runs folder, or
a folder) lands in `DIR/<student>/`, so that every run keeps its own event files and TensorBoard
shows `alice/lesson_1/...` beside `bob/lesson_1/...`. An archive is checked member by member
before anything is written: one absolute path, `..`, drive letter, link or device refuses the
whole archive. It is unpacked into a hidden staging folder inside DIR and renamed into place
only when complete, so a corrupt upload leaves nothing behind. `DIR/collected.json` remembers
each input's SHA-256, so collecting the same upload twice is a no-op.

The archive format itself is defined in labkit.instructor.export. No TensorFlow import.
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import json
import os
import re
import shutil
import stat
import sys
import tarfile
import tempfile
import zipfile
from datetime import datetime, timezone
from pathlib import Path

from labkit import LabError, sha256_of
from labkit.cli import OneLineParser
from labkit.instructor.export import MANIFEST, input_stem, manifest_student
from labkit.runs import RUN_JSON

PROG = "lab.py collect"
LEDGER = "collected.json"
STAGING_PREFIX = ".incoming-"
# Against zip bombs and runaway uploads: a class's runs without models are a few MB per student.
MAX_TOTAL_BYTES = 2 * 10**9
MAX_MEMBERS = 100_000
MAX_MANIFEST_BYTES = 1 << 20


class Refused(Exception):
    """One input cannot be collected; the message says why, in a few words."""


def sanitise(name: str) -> str:
    cleaned = re.sub(r"[^A-Za-z0-9._-]", "_", name.strip()).lstrip(".-")[:64]
    return cleaned or "student"


# -- reading archives safely ----------------------------------------------------------------------


def one_line(error: BaseException) -> str:
    return (str(error).strip().splitlines() or [type(error).__name__])[0].rstrip(":")


def safe_name(name: str) -> str:
    """The member's path inside the archive, normalised, or Refused when it could land elsewhere."""
    if "\x00" in name:
        raise Refused(f"member {name!r} has a NUL byte in its name")
    if name.startswith(("/", "\\")):
        raise Refused(f"member {name!r} has an absolute path")
    if re.match(r"^[A-Za-z]:", name):
        raise Refused(f"member {name!r} has a drive letter")
    parts = [part for part in re.split(r"[/\\]", name) if part not in ("", ".")]
    if ".." in parts:
        raise Refused(f"member {name!r} climbs out with '..'")
    return "/".join(parts)


def check_members(entries: list) -> list:
    """entries: (name, kind 'file' or 'dir', size, opener). Refuses the input as a whole on any bad
    one, before anything is written; returns them with normalised names."""
    if len(entries) > MAX_MEMBERS:
        raise Refused(f"{len(entries)} members, more than the {MAX_MEMBERS} allowed")
    total = sum(size for _, kind, size, _ in entries if kind == "file")
    if total > MAX_TOTAL_BYTES:
        raise Refused(f"would unpack to {total:,} bytes, more than the {MAX_TOTAL_BYTES:,} allowed")
    files, checked = set(), []
    for name, kind, size, opener in entries:
        clean = safe_name(name)
        if clean and kind == "file":
            if clean in files:
                raise Refused(f"member {clean!r} appears twice")
            files.add(clean)
        if clean:
            checked.append((clean, kind, size, opener))
    for clean in files:
        parts = clean.split("/")
        if any("/".join(parts[:i]) in files for i in range(1, len(parts))):
            raise Refused(f"member {clean!r} sits under a member that is a file")
    if not any(clean.rsplit("/", 1)[-1] == RUN_JSON for clean in files):
        raise Refused(f"no {RUN_JSON} inside: not an archive of runs")
    return checked


def zip_entries(archive: zipfile.ZipFile) -> list:
    entries = []
    for info in archive.infolist():
        mode = info.external_attr >> 16
        if stat.S_ISLNK(mode):
            raise Refused(f"member {info.filename!r} is a symlink")
        if stat.S_IFMT(mode) not in (0, stat.S_IFREG, stat.S_IFDIR):
            raise Refused(f"member {info.filename!r} is a device or fifo")
        if info.flag_bits & 0x1:
            raise Refused(f"member {info.filename!r} is encrypted")
        kind = "dir" if info.is_dir() else "file"
        entries.append((info.filename, kind, info.file_size, functools.partial(archive.open, info)))
    return entries


def tar_entries(archive: tarfile.TarFile, into: Path) -> list:
    data_filter = getattr(tarfile, "data_filter", None)  # Python 3.12, 3.11.4, 3.10.12 and later
    entries = []
    for member in archive.getmembers():
        if member.issym() or member.islnk():
            raise Refused(f"member {member.name!r} is a {'symlink' if member.issym() else 'hard link'}")
        if not (member.isfile() or member.isdir()):
            raise Refused(f"member {member.name!r} is a device or fifo")
        safe_name(member.name)  # ours first, for its plainer words
        if data_filter is not None:
            data_filter(member, str(into / STAGING_PREFIX))  # a second opinion; raises tarfile.FilterError
        kind = "dir" if member.isdir() else "file"
        entries.append((member.name, kind, member.size, functools.partial(archive.extractfile, member)))
    return entries


def folder_entries(path: Path, into: Path) -> list:
    resolved = path.resolve()
    if resolved == into or resolved in into.parents or into in resolved.parents:
        raise Refused(f"it overlaps --into {into}")
    entries = []
    for folder, subfolders, files in os.walk(path, followlinks=False):
        for name in subfolders + files:
            full = Path(folder, name)
            info = full.lstat()
            if stat.S_ISLNK(info.st_mode):
                raise Refused(f"{full} is a symlink")
            if not (stat.S_ISREG(info.st_mode) or stat.S_ISDIR(info.st_mode)):
                raise Refused(f"{full} is a device or fifo")
            kind = "dir" if stat.S_ISDIR(info.st_mode) else "file"
            entries.append((full.relative_to(path).as_posix(), kind, info.st_size, functools.partial(open, full, "rb")))
    return entries


def members_of(source: Path, into: Path, stack: contextlib.ExitStack) -> list:
    """The checked members of a folder or an archive (which `stack` keeps open)."""
    if source.is_dir():
        return check_members(folder_entries(source, into))
    try:
        if zipfile.is_zipfile(source):
            entries = zip_entries(stack.enter_context(zipfile.ZipFile(source)))
        else:
            entries = tar_entries(stack.enter_context(tarfile.open(source, "r:*")), into)
    except tarfile.FilterError as error:
        raise Refused(f"refused by tarfile's data filter ({error})") from None
    except (tarfile.TarError, zipfile.BadZipFile, EOFError, OSError, ValueError) as error:
        if not source.name.lower().endswith((".zip", ".tar", ".gz", ".tgz")):
            raise Refused("not a zip or tar archive") from None
        raise Refused(f"a truncated or corrupt archive ({one_line(error)})") from None
    return check_members(entries)


def student_of(members: list) -> str | None:
    """The student an export's manifest names, if the input has a readable one."""
    for name, kind, _, opener in members:
        if name == MANIFEST and kind == "file":
            with opener() as handle:
                return manifest_student(handle.read(MAX_MANIFEST_BYTES))
    return None


def unpack(members: list, staging: Path) -> None:
    budget = MAX_TOTAL_BYTES  # the sizes were checked already; this catches a member that lied
    for name, kind, _, opener in members:
        destination = staging / name
        if kind == "dir":
            destination.mkdir(parents=True, exist_ok=True)
            continue
        destination.parent.mkdir(parents=True, exist_ok=True)
        with opener() as source, open(destination, "xb") as out:
            for block in iter(lambda: source.read(1 << 20), b""):  # noqa: B023 (used at once)
                budget -= len(block)
                if budget < 0:
                    raise Refused(f"unpacks to more than the {MAX_TOTAL_BYTES:,} bytes allowed")
                out.write(block)


def digest(path: Path) -> str:
    """SHA-256 of an archive's bytes, or of a folder's relative names and contents."""
    return sha256_of(path)


# -- collecting ----------------------------------------------------------------------------------


def read_ledger(into: Path) -> dict:
    path = into / LEDGER
    if not path.exists():
        return {"format": "keras-course-lab-collected", "version": 1, "inputs": []}
    try:
        ledger = json.loads(path.read_text())
        if not isinstance(ledger, dict) or not isinstance(ledger.get("inputs"), list):
            raise ValueError("no list of inputs")
    except (OSError, ValueError) as error:
        raise LabError(f"{path} cannot be read ({error}); move it aside to start a fresh ledger") from None
    return ledger


def write_ledger(into: Path, ledger: dict) -> None:
    partial = into / f".{LEDGER}.{os.getpid()}.partial"
    partial.write_text(json.dumps(ledger, indent=2) + "\n")
    os.replace(partial, into / LEDGER)


def free_name(into: Path, wanted: str) -> str:
    name, counter = wanted, 1
    while (into / name).exists() or (into / name).is_symlink():
        counter += 1
        name = f"{wanted}-{counter}"
    return name


def collect_one(source: Path, into: Path, ledger: dict) -> tuple[str, str, int]:
    """('collected' or 'already', student folder, runs); Refused when the input is skipped."""
    if not source.exists():
        raise Refused("no such file or folder")
    try:
        sha = digest(source)
    except OSError as error:
        raise Refused(f"cannot be read ({error.strerror or error})") from None
    for entry in ledger["inputs"]:
        if entry.get("sha256") == sha:
            return "already", entry.get("student", "?"), entry.get("runs", 0)
    with contextlib.ExitStack() as stack:
        members = members_of(source, into, stack)
        student = student_of(members)
        into.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=STAGING_PREFIX, dir=into))
        try:
            unpack(members, staging)
            name = free_name(into, sanitise(student or input_stem(source)))
            os.rename(staging, into / name)
        except (tarfile.TarError, zipfile.BadZipFile, EOFError, ValueError) as error:
            raise Refused(f"a truncated or corrupt archive ({one_line(error)})") from None
        except OSError as error:
            raise Refused(f"cannot be unpacked ({error.strerror or error})") from None
        finally:
            shutil.rmtree(staging, ignore_errors=True)
    runs = sum(1 for name, kind, _, _ in members if kind == "file" and name.rsplit("/", 1)[-1] == RUN_JSON)
    ledger["inputs"].append(
        {
            "sha256": sha,
            "source": str(source.absolute()),
            "student": name,
            "runs": runs,
            "collected_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        }
    )
    write_ledger(into, ledger)
    return "collected", name, runs


def make_parser() -> argparse.ArgumentParser:
    parser = OneLineParser(
        prog=PROG,
        description="Merge students' run archives (or folders) into one TensorBoard logdir, one folder each.",
        epilog="Archives: .zip, .tar, .tar.gz/.tgz, as `lab.py runs --export` writes them or any archive of runs.",
    )
    parser.add_argument("inputs", nargs="*", metavar="STUDENT_ARCHIVE", help="archives or folders of runs")
    parser.add_argument("--into", required=True, metavar="DIR", help="the class's logdir (created if missing)")
    return parser


def run(args) -> int:
    if not args.inputs:
        raise LabError("give at least one student archive or folder to collect")
    into = Path(args.into).expanduser().absolute()
    if into.exists() and not into.is_dir():
        raise LabError(f"--into {into} is a file, not a folder")
    created = not into.exists()
    ledger = read_ledger(into)
    done, skipped = [], 0
    for given in args.inputs:
        source = Path(given).expanduser()
        try:
            outcome, student, runs = collect_one(source, into, ledger)
        except Refused as why:
            print(f"{PROG}: skipped {given}: {why}", file=sys.stderr)
            skipped += 1
            continue
        if outcome == "already":
            print(f"{given}: already collected as {student}, skipped")
        done.append((student, runs, given, outcome))
    if created and into.is_dir() and not any(into.iterdir()):
        into.rmdir()  # made for inputs that all turned out unusable
    if not done:
        print(f"{PROG}: error: nothing collected from {len(args.inputs)} input(s)", file=sys.stderr)
        return 2
    width = max(len("STUDENT"), *(len(student) for student, *_ in done))
    print(f"{'STUDENT'.ljust(width)}  {'RUNS':>4}  SOURCE")
    for student, runs, given, outcome in done:
        note = "  (collected earlier)" if outcome == "already" else ""
        print(f"{student.ljust(width)}  {runs:>4}  {given}{note}")
    print(f"\nView them: python scripts/lab.py tensorboard {into}")
    return 1 if skipped else 0


def main(argv: list[str] | None = None) -> int:
    args = make_parser().parse_args(argv)
    try:
        return run(args)
    except LabError as error:
        print(f"{PROG}: error: {error}", file=sys.stderr)
        return error.exit_code


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
