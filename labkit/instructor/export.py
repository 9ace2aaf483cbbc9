"""The run archive: what `lab.py runs --export` writes and `lab.py collect` reads back.

An export is a .zip or .tar.gz of run folders, laid out as under the runs root
(`lesson_1/exercise_a/<run>/run.json`, event files beside it), with a manifest, `lab-export.json`,
as its first member: the format's name and version, the student, and the runs it holds. Saved
models are left out unless asked for, and so is any other file over 10 MB: they make a run folder
big and TensorBoard does not need them.

The walk over a runs folder lives here too, because an archive must hold exactly the runs and
files that `lab.py runs` lists and sizes. Standard library only (no TensorFlow).
"""

from __future__ import annotations

import getpass
import io
import json
import os
import re
import socket
import stat
import tarfile
import zipfile
from datetime import datetime, timezone
from pathlib import Path

from labkit import LabError
from labkit.run_checks import check_name_lengths
from labkit.runs import RUN_JSON

EXPORT_FORMAT = "keras-course-lab-export"
EXPORT_VERSION = 1
MANIFEST = "lab-export.json"
# What an export leaves out: saved models make a run folder big (77 MB for Lesson 1's network).
MODEL_SUFFIXES = (".keras", ".h5", ".hdf5")
MODEL_FOLDERS = ("tuner", "backup")  # keras-tuner's checkpoints, BackupAndRestore's state
LARGE_OTHER_BYTES = 10 * 10**6
WRITTEN_KINDS = ((".zip", "zip"), (".tar.gz", "tar"), (".tgz", "tar"))
READ_SUFFIXES = (".tar.gz", ".tgz", ".tar", ".zip")
# The status `lab.py runs` gives a run whose run.json or folder it cannot read.
UNREADABLE = "unreadable"


# -- run folders ---------------------------------------------------------------------------------


def _is_link(path: Path) -> bool:
    """Path.is_symlink, but False where the path cannot even be looked at (a folder without execute
    permission): os.path.islink's answer, which Python 3.11's pathlib raises PermissionError for."""
    try:
        return path.is_symlink()
    except OSError:
        return False


def walk_runs(root: Path, locked: list | None = None) -> list[Path]:
    """Run folders under `root`, without following a symlink anywhere (one could lead out of it).
    Folders it cannot open go into `locked` as (folder, why): they may hold runs too."""

    def note(error: OSError) -> None:
        if locked is not None:
            locked.append((Path(error.filename), error.strerror or str(error)))

    found = []
    for folder, subfolders, files in os.walk(root, onerror=note, followlinks=False):
        subfolders[:] = sorted(d for d in subfolders if not _is_link(Path(folder, d)))
        if RUN_JSON in files and not _is_link(Path(folder, RUN_JSON)):
            found.append(Path(folder))
    return found


def run_files(run_dir: Path, nested: set[Path] | frozenset[Path] = frozenset()):
    """(path, bytes) of every plain file of a run, leaving out symlinks and the runs in `nested`
    (which may hold every run folder: only those inside `run_dir` matter, found by set lookup)."""
    for folder, subfolders, files in os.walk(run_dir, followlinks=False):
        subfolders[:] = sorted(d for d in subfolders if not _is_link(Path(folder, d)) and Path(folder, d) not in nested)
        for name in sorted(files):
            path = Path(folder, name)
            try:
                info = path.lstat()
            except OSError:  # a folder without execute permission: the listing says the run is unreadable
                continue
            if stat.S_ISREG(info.st_mode):
                yield path, info.st_size


def human_size(size: int) -> str:
    for unit, scale in (("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if size >= scale:
            return f"{size / scale:.1f} {unit}"
    return f"{size} B"


# -- what goes in --------------------------------------------------------------------------------


def is_model_file(relative: Path, saved_models: set[Path]) -> bool:
    return (
        relative.name.lower().endswith(MODEL_SUFFIXES)
        or any(part in MODEL_FOLDERS for part in relative.parts[:-1])
        or any(folder in relative.parents for folder in saved_models)
    )


def export_plan(root: Path, rows: list[dict], with_models: bool):
    """(files to pack as (path, name in the archive), models left out, others left out), the
    last two as (count, bytes)."""
    every_run = frozenset(walk_runs(root))
    packed, models, others = [], [0, 0], [0, 0]
    for row in rows:
        run_dir = root / row["path"]
        files = list(run_files(run_dir, every_run))
        saved_models = {path.parent.relative_to(run_dir) for path, _ in files if path.name == "saved_model.pb"}
        for path, size in files:
            relative = path.relative_to(run_dir)
            event_or_record = relative.name == RUN_JSON or relative.name.startswith("events.out.tfevents.")
            if is_model_file(relative, saved_models) and not with_models:
                models[0], models[1] = models[0] + 1, models[1] + size
            elif not event_or_record and not is_model_file(relative, saved_models) and size > LARGE_OTHER_BYTES:
                others[0], others[1] = others[0] + 1, others[1] + size
            else:
                packed.append((path, path.relative_to(root).as_posix()))
    return packed, tuple(models), tuple(others)


# -- names ---------------------------------------------------------------------------------------


def names_someone(student: str) -> bool:
    """A student's name must hold a letter or a digit: both sides refuse one that does not."""
    return bool(re.search(r"[A-Za-z0-9]", student))


def archive_kind(target: Path) -> str:
    name = target.name.lower()
    for suffix, kind in WRITTEN_KINDS:
        if name.endswith(suffix) and len(name) > len(suffix):
            return kind
    raise LabError(f"--export {target}: give a file name ending in .zip, .tar.gz or .tgz")


def input_stem(path: Path) -> str:
    """An archive's or folder's name without its archive suffix: the student it stands for."""
    name = path.name
    for suffix in READ_SUFFIXES:
        if name.lower().endswith(suffix) and len(name) > len(suffix):
            return name[: -len(suffix)]
    return path.stem if path.is_file() else name


def manifest_student(manifest_bytes: bytes) -> str | None:
    """The student an export's manifest names, or None for one that is unreadable or foreign."""
    try:
        manifest = json.loads(manifest_bytes.decode("utf-8"))
    except ValueError:  # UnicodeDecodeError included: a manifest it cannot read names no one
        return None
    if isinstance(manifest, dict) and manifest.get("format") == EXPORT_FORMAT:
        student = manifest.get("student")
        return student if isinstance(student, str) and names_someone(student) else None
    return None


# -- writing -------------------------------------------------------------------------------------


def export_runs(root: Path, rows: list[dict], target: Path, *, student: str | None, with_models: bool) -> int:
    kind = archive_kind(target)
    target = check_name_lengths(target.expanduser().absolute(), "--export")
    try:
        if target.exists() or target.is_symlink():
            raise LabError(f"--export {target}: that file already exists; choose another name or remove it first")
        if not target.parent.is_dir():
            raise LabError(f"--export {target}: the folder {target.parent} does not exist")
    except OSError as error:  # a folder on the way without execute permission, say
        raise LabError(f"--export {target}: cannot look there ({error.strerror or error})") from None
    if student is not None and not names_someone(student):
        raise LabError(f"--student '{student}': give a name with letters or digits")
    # A run it cannot read would reach the instructor as a run that `lab.py runs` cannot read either.
    unreadable = [row for row in rows if row["status"] == UNREADABLE]
    rows = [row for row in rows if row["status"] != UNREADABLE]
    if not rows:
        which = "readable " if unreadable else ""
        raise LabError(f"no {which}runs to export under {root} (with these filters)")
    if student is None:
        try:
            student = getpass.getuser()
        except (KeyError, OSError):  # no login name (some containers): the archive's name will do
            student = input_stem(target)
    packed, models, others = export_plan(root, rows, with_models)
    escaped = zip_safe_names(packed) if kind == "zip" else []
    manifest = {
        "format": EXPORT_FORMAT,
        "version": EXPORT_VERSION,
        "student": student,
        "created_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "host": socket.gethostname(),
        "with_models": with_models,
        "runs": [
            {key: row[key] for key in ("path", "lesson", "activity", "run", "status", "quick", "size_bytes")}
            | ({"path": zip_name(row["path"])} if kind == "zip" else {})
            for row in rows
        ],
    }
    manifest_bytes = (json.dumps(manifest, indent=2) + "\n").encode()
    partial = target.with_name(f".{target.name}.{os.getpid()}.partial")
    try:
        write_archive(partial, kind, manifest_bytes, packed)
        publish(partial, target)
    except OSError as error:
        raise LabError(f"--export {target}: cannot write it ({error.strerror or error})") from None
    finally:
        try:
            partial.unlink(missing_ok=True)
        except OSError:  # a read-only file system, say, where the partial file never came to be
            pass
    count = len(rows)
    print(f"Wrote {target}: {count} run{'s' if count != 1 else ''}, {human_size(target.stat().st_size)}")
    for row in unreadable:
        print(f"Left out {row['path']}: {row['error']}")
    if escaped:
        print(
            f"Renamed {len(escaped)} file(s) whose names are not UTF-8, which a .zip cannot hold: each odd byte "
            f"became %XX, as in {escaped[0]} (a .tar.gz keeps such names as they are)"
        )
    if models[0]:
        print(f"Left out {models[0]} model file(s), {human_size(models[1])}: add --with-models to include them")
    if others[0]:
        print(f"Left out {others[0]} other file(s) over {human_size(LARGE_OTHER_BYTES)}, {human_size(others[1])}")
    return 0


def zip_name(name: str) -> str:
    """`name` with each byte that is not UTF-8 as %XX: a Linux file name need not be UTF-8
    (os.fsdecode keeps such bytes as lone surrogates), and a .zip stores only UTF-8 names."""
    return "".join(f"%{ord(c) - 0xDC00:02X}" if "\udc80" <= c <= "\udcff" else c for c in name)


def zip_safe_names(packed: list) -> list[str]:
    """Give, in place, every archive name in `packed` that needs it its zip_name; returns those."""
    escaped = []
    for index, (file, name) in enumerate(packed):
        if (safe := zip_name(name)) != name:
            packed[index] = (file, safe)
            escaped.append(safe)
    return escaped


def write_archive(path: Path, kind: str, manifest: bytes, packed: list) -> None:
    if kind == "zip":
        # strict_timestamps=False: a file dated before 1980 (or after 2107), which the zip format
        # cannot date, is stored with the nearest date it can.
        with zipfile.ZipFile(path, "x", compression=zipfile.ZIP_DEFLATED, strict_timestamps=False) as archive:
            archive.writestr(MANIFEST, manifest)
            for file, name in packed:
                archive.write(file, name)
        return

    def anonymous(info: tarfile.TarInfo) -> tarfile.TarInfo:
        info.uid = info.gid = 0
        info.uname = info.gname = ""
        return info

    with tarfile.open(path, "x:gz") as archive:
        info = tarfile.TarInfo(MANIFEST)
        info.size, info.mtime, info.mode = len(manifest), int(datetime.now().timestamp()), 0o644
        archive.addfile(info, io.BytesIO(manifest))  # first, so a reader finds it without unpacking
        for file, name in packed:
            archive.add(file, name, recursive=False, filter=anonymous)


def publish(partial: Path, target: Path) -> None:
    """Give the finished archive its name, never replacing a file that appeared meanwhile."""
    try:
        os.link(partial, target)
    except FileExistsError:
        raise LabError(f"--export {target}: that file appeared while writing; nothing replaced") from None
    except OSError:  # a file system without hard links
        if target.exists():
            raise LabError(f"--export {target}: that file appeared while writing; nothing replaced") from None
        os.replace(partial, target)
