"""What a run.json must hold before the toolkit trusts it, and names a file system can hold.

Every listing, `--clean`, `--resume` and the digit server read runs through `labkit.runs.read_run`,
which checks the record here: one malformed file (a list, a pid too large for the OS, NaN, a
`started_at` that is not a date) becomes one RunRecordError naming the file and the fault,
instead of a traceback in whatever read it. Standard library only, like labkit.runs.
"""

from __future__ import annotations

import json
import os
from datetime import datetime
from pathlib import Path

from labkit import LabError

NAME_MAX = 255  # bytes in one file or folder name: ext4, XFS, APFS and NTFS alike


def check_name_lengths(path: Path, flag: str = "") -> Path:
    """`path`, or a one-line LabError (its first word `flag`) when a name in it is longer than any
    file system allows: Path.exists() and friends raise ENAMETOOLONG for it rather than answer."""
    for depth, part in enumerate(Path(path).parts):
        if (size := len(os.fsencode(part))) > NAME_MAX:
            where = f" in {Path(*Path(path).parts[:depth])}" if depth else ""
            prefix = f"{flag}: " if flag else ""
            raise LabError(
                f"{prefix}the name '{part[:24]}...'{where} is {size} bytes long; "
                f"a file system allows at most {NAME_MAX} in one name"
            )
    return path


class RunRecordError(LabError, ValueError):
    """A run.json that cannot be read or that the lab did not write; str() = file: `fault`."""

    def __init__(self, path: Path, fault: str):
        super().__init__(f"{path}: {fault}")
        self.path, self.fault = path, fault


def no_json_constant(name: str):
    raise ValueError(f"it holds {name}, which JSON does not allow")


# What each field the toolkit reads must be when present; None stands for "not known".
_NUMBER, _TEXT, _OBJECT = (int, float), (str,), (dict,)
_FIELDS = {
    "lesson": _TEXT,
    "activity": _TEXT,
    "run_name": _TEXT,
    "tag": _TEXT,
    "started_at": _TEXT,
    "finished_at": _TEXT,
    "quick": (bool,),
    "wall_time_s": _NUMBER,
    "epochs_completed": (int,),
    "hparams": _OBJECT,
    "dataset": _OBJECT,
    "metrics": _OBJECT,
    "extra": _OBJECT,
    "process": _OBJECT,
    "resumes": (list,),
}
_NEVER_NULL = ("hparams", "metrics", "extra")  # read as dicts without a check
_KIND_NAMES = {
    _NUMBER: "a number",
    _TEXT: "text",
    _OBJECT: "an object",
    (bool,): "true or false",
    (int,): "a whole number",
    (list,): "a list",
}


def _type_fault(name: str, value, kinds: tuple) -> str | None:
    if value is None:
        return f"{name} is null" if name in _NEVER_NULL else None
    if isinstance(value, kinds) and (bool in kinds or not isinstance(value, bool)):
        return None
    return f"{name} is {json.dumps(value)[:40]}, not {_KIND_NAMES[kinds]}"


def record_fault(record) -> str | None:
    if not isinstance(record, dict):
        return f"it holds {json.dumps(record)[:40]}, not a JSON object"
    if not isinstance(record.get("status"), str):
        return "it has no status" if record.get("status") is None else "its status is not text"
    checks = [(name, record.get(name), kinds) for name, kinds in _FIELDS.items() if name in record]
    checks += [(f"dataset.{k}", (record.get("dataset") or {}).get(k), _TEXT) for k in ("name", "substitute_for")]
    checks += [(f"metrics.{k}", v, _OBJECT) for k, v in (record.get("metrics") or {}).items()]
    process = record.get("process") if isinstance(record.get("process"), dict) else {}
    for key, kinds in (("pid", (int,)), ("host", _TEXT), ("started", _NUMBER)):
        checks.append((f"process.{key}", process.get(key), kinds))
    for name, value, kinds in checks:
        if fault := _type_fault(name, value, kinds):
            return fault
    if not 0 <= (process.get("pid") or 0) < 2**31:
        return f"process.pid {process['pid']} is not a process id"
    for name in ("started_at", "finished_at"):
        try:
            datetime.fromisoformat(record.get(name) or "2000-01-01")
        except ValueError:
            return f"{name} '{record[name][:40]}' is not a date"
    return None
