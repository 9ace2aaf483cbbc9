"""The backup `--resume` continues from (`<run>/backup`), and the manifest that vouches for it.

Keras's BackupAndRestore keeps two files there: `latest.weights.h5` and `training_metadata.json`,
whose `epoch` counts the epochs completed (1 after the first). Keras loads whatever it finds:
torn weights train on as NaN, a missing weights file trains from new weights under an old epoch
count. So each save also writes `manifest.json`, and a resume checks the folder against it before
Keras reads anything.

The callback renames the two files into place one after the other (weights first), so a kill can
leave the folder between two saves. The manifest is therefore written, atomically, *before* the
renames, and names both states: `saving` (the epoch and the SHA-256 of the weights file about to
be renamed into place, hashed on disk) and `replacing` (what the folder held until then). The
states a kill can leave are exactly:

- `replacing` as a whole: killed before the weights' rename; the last epoch is repeated;
- `saving`'s weights with `replacing`'s epoch: killed between the renames; one epoch is repeated
  on the newer weights, as before there was a manifest;
- `saving` as a whole.

Anything else (bytes that match neither checksum, an epoch the manifest never saved, a metadata
file without its weights) was changed after it was saved, and is refused. The metadata file
carries no checksum of its own: Keras reads nothing from it but `epoch`, which must be an integer
the manifest saved. Standard library only, so that it checks before TensorFlow loads.
"""

from __future__ import annotations

import json
import os
import shlex
import sys
from dataclasses import asdict, dataclass
from pathlib import Path

from labkit import LabError, sha256_of

WEIGHTS = "latest.weights.h5"  # the names Keras's BackupAndRestore reads
METADATA = "training_metadata.json"
MANIFEST = "manifest.json"
MANIFEST_FORMAT = 1
HDF5_SIGNATURE = b"\x89HDF\r\n\x1a\n"


class BackupError(LabError):
    """What is wrong with a backup, in a few words; the caller says which run and what to do."""


@dataclass(frozen=True)
class BackupState:
    """What a backup folder holds: the epochs its metadata counts and its weights' SHA-256
    (None where the file is absent: a run killed before its first save has neither)."""

    epoch: int | None
    weights_sha256: str | None


@dataclass(frozen=True)
class VerifiedBackup:
    """A backup a resume may load: `epoch` epochs are done (0: start again from the first), and
    `warning`, if any, is a line to show (a backup written before manifests existed)."""

    epoch: int
    warning: str | None = None


def read_epoch(path: Path) -> int | None:
    """The `epoch` of a metadata file, None if there is no such file; BackupError if it is not
    a JSON object with an integer epoch."""
    if not path.exists():
        return None
    try:
        metadata = json.loads(path.read_text(encoding="utf-8"))
    except OSError as error:
        raise BackupError(f"{METADATA} cannot be read ({error.strerror})") from None
    except (UnicodeDecodeError, ValueError) as error:
        reason = "it is empty" if _is_empty(path) else f"it is not readable JSON ({type(error).__name__})"
        raise BackupError(f"{METADATA} cannot be read: {reason}") from None
    epoch = metadata.get("epoch") if isinstance(metadata, dict) else None
    if type(epoch) is not int:  # bool is an int to isinstance, and Keras never writes one
        raise BackupError(f"{METADATA} is not a JSON object with an integer 'epoch'")
    return epoch


def _is_empty(path: Path) -> bool:
    try:
        return path.stat().st_size == 0
    except OSError:
        return False


def state_on_disk(backup_dir: str | os.PathLike) -> BackupState:
    """What the folder holds now, as the callback records it before replacing it."""
    folder = Path(backup_dir)
    weights = folder / WEIGHTS
    try:
        epoch = read_epoch(folder / METADATA)
    except BackupError:
        epoch = None
    return BackupState(epoch, sha256_of(weights) if weights.is_file() else None)


def write_manifest(backup_dir: str | os.PathLike, saving: BackupState, replacing: BackupState) -> None:
    """Write the manifest beside and rename it over, so that it is always whole."""
    path = Path(backup_dir) / MANIFEST
    partial = path.with_name(MANIFEST + ".partial")
    text = json.dumps({"format": MANIFEST_FORMAT, "saving": asdict(saving), "replacing": asdict(replacing)})
    partial.write_text(text + "\n", encoding="utf-8")
    os.replace(partial, path)


def _read_manifest(path: Path) -> tuple[BackupState, BackupState]:
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
        if manifest.get("format") != MANIFEST_FORMAT:
            raise ValueError
        states = tuple(BackupState(**manifest[key]) for key in ("saving", "replacing"))
        for state in states:
            if not (state.epoch is None or type(state.epoch) is int):
                raise ValueError
            if not (state.weights_sha256 is None or isinstance(state.weights_sha256, str)):
                raise ValueError
    except (OSError, UnicodeDecodeError, ValueError, AttributeError, KeyError, TypeError):
        raise BackupError(f"its {MANIFEST} cannot be read") from None
    return states


def verify_backup(backup_dir: str | os.PathLike, epochs: int) -> VerifiedBackup:
    """Check the backup of a run of `epochs` epochs before Keras loads it: the epochs it lets the
    run skip, or a BackupError that says what is wrong. Reads, never writes."""
    folder = Path(backup_dir)
    if not folder.exists():
        return VerifiedBackup(0)  # killed before its first epoch ended: nothing was saved
    if not folder.is_dir():
        raise BackupError("it is not a folder")
    weights, manifest = folder / WEIGHTS, folder / MANIFEST
    epoch = read_epoch(folder / METADATA)
    if epoch is not None and not 1 <= epoch <= epochs:
        raise BackupError(f"{METADATA} counts {epoch} epoch(s) done, outside the run's 1 to {epochs}")
    has_weights = weights.is_file()
    if epoch is not None and not has_weights:
        raise BackupError(f"{METADATA} counts {epoch} epoch(s) done, but {WEIGHTS} is missing")
    if not manifest.exists():
        if epoch is None and not has_weights:
            return VerifiedBackup(0)
        return _verified_without_manifest(weights, epoch)
    saving, replacing = _read_manifest(manifest)
    try:
        found = BackupState(epoch, sha256_of(weights) if has_weights else None)
    except OSError as error:
        raise BackupError(f"{WEIGHTS} cannot be read ({error.strerror})") from None
    if found in (replacing, saving, BackupState(replacing.epoch, saving.weights_sha256)):
        return VerifiedBackup(epoch or 0)
    if found.weights_sha256 == saving.weights_sha256:
        weights_epoch = saving.epoch
    elif found.weights_sha256 == replacing.weights_sha256:
        weights_epoch = replacing.epoch
    else:
        what = "is missing" if found.weights_sha256 is None else "does not match its checksum"
        raise BackupError(f"{WEIGHTS} {what} (saved after epoch {saving.epoch})")
    said = "is missing" if epoch is None else f"counts {epoch} epoch(s) done"
    when = "before any epoch count" if weights_epoch is None else f"after epoch {weights_epoch}"
    raise BackupError(f"{METADATA} {said}, but {WEIGHTS} was saved {when}")


def _verified_without_manifest(weights: Path, epoch: int | None) -> VerifiedBackup:
    """A backup from before manifests: what can still be checked is its shape, so a whole one
    resumes with a warning rather than being refused for its age."""
    try:
        with open(weights, "rb") as handle:
            signature = handle.read(len(HDF5_SIGNATURE))
    except OSError as error:
        raise BackupError(f"{WEIGHTS} cannot be read ({error.strerror})") from None
    if signature != HDF5_SIGNATURE:
        raise BackupError(f"{WEIGHTS} is not an HDF5 weights file")
    return VerifiedBackup(
        epoch or 0,
        warning=f"this backup predates checksums (it has no {MANIFEST}), so its weights cannot be verified",
    )


def fresh_start_command(record: dict) -> str:
    """The command that starts this activity afresh, with the flags the run started with."""
    script = sys.argv[0] if sys.argv and sys.argv[0] else "the activity's script"
    recorded = list(record.get("command") or [])
    if recorded and recorded[0] == Path(script).name:
        flags = recorded[1:]
    else:  # the run was started some other way (a notebook): this command, less its --resume
        flags = list(sys.argv[1:])
        if "--resume" in flags:
            at = flags.index("--resume")
            del flags[at : at + 2]
        flags = [flag for flag in flags if not flag.startswith("--resume=")]
    return "python " + shlex.join([script, *flags])


def refusal(run_dir: str | os.PathLike, backup_dir: Path, record: dict, error: BackupError) -> LabError:
    """The one line a resume of a run with a bad backup says: which backup, what is wrong, and
    how to start afresh. The run folder is left as it is, for the student to look at or delete."""
    return LabError(
        f"--resume {run_dir}: its backup {backup_dir} cannot be trusted: {error}; "
        f"start a new run instead: {fresh_start_command(record)}"
    )
