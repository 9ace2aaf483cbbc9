"""Run directories and run.json.

Every run gets a fresh folder `runs/lesson_N/<activity>/<run-name>`; the name carries the key
hyperparameters and a timestamp, and a counter keeps it unique when two runs start in the same
second. Folders are claimed with an atomic `mkdir`, so a run can never write into, or mix its
events with, an earlier run.

`run.json` sits beside the event files. It is rewritten atomically (write, then rename) at the
start, after every epoch and at the end, so a crash or Ctrl-C always leaves a readable file whose
`status` says how the run ended. It also names the process that wrote it (pid, host, start
time): a run whose process died without a word (SIGKILL, a segfault, a power cut) still says
`running` on disk, and `read_run` reports it as `crashed` once that process is gone.
"""

from __future__ import annotations

import json
import math
import os
import platform
import socket
import sys
import time
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path

from labkit import REPO_ROOT, LabError
from labkit.run_checks import RunRecordError, check_name_lengths, no_json_constant, record_fault

RUNS_DIR_ENV = "LAB_RUNS_DIR"
RUN_JSON = "run.json"
STATUSES = ("running", "finished", "interrupted", "failed")
# Never written: what `read_run` reports for a "running" run whose process is gone.
CRASHED = "crashed"


def runs_root(logdir: str | os.PathLike | None = None, flag: str = "") -> Path:
    """--logdir wins, then $LAB_RUNS_DIR, then `runs/` at the top of the repository. `flag` names
    `logdir` in the one-line LabError for a name too long to exist."""
    chosen = logdir or os.environ.get(RUNS_DIR_ENV) or REPO_ROOT / "runs"
    label = flag if logdir else f"${RUNS_DIR_ENV}" if os.environ.get(RUNS_DIR_ENV) else ""
    return check_name_lengths(Path(chosen).expanduser(), label).resolve()


def check_writable(root: Path) -> None:
    """Fail early, before anything is written, when `root` could never hold a run."""
    probe = root
    try:
        while not probe.exists():
            if probe.parent == probe:
                break
            probe = probe.parent
    except OSError as error:  # a folder on the way that the student may not open
        raise LabError(f"logdir {root} cannot be checked: {error.filename}: {error.strerror}") from None
    if not probe.is_dir():
        raise LabError(f"logdir {root} cannot be created: {probe} is a file, not a folder")
    if not os.access(probe, os.W_OK | os.X_OK):
        raise LabError(f"logdir {root} is not writable (no write permission on {probe})")


def _format_value(value) -> str:
    if isinstance(value, float):
        return f"{value:g}"
    # Both separators, whatever this OS uses: a run folder may be copied to Windows, where "/" and "\\" split a name.
    return str(value).replace("/", "-").replace("\\", "-").replace(" ", "")


def run_name(hparams: dict, when: datetime | None = None) -> str:
    """e.g. `lr0.0001-bs100-ep10-digits-20261123-101500`. Keys are abbreviated, order kept."""
    short = {
        "learning_rate": "lr",
        "batch_size": "bs",
        "epochs": "ep",
        "optimizer": "opt",
        "steps_per_epoch": "spe",
        "dataset": "",
        "seed": "seed",
    }
    parts = []
    for key, value in hparams.items():
        if value is None or key not in short:
            continue
        parts.append(f"{short[key]}{_format_value(value)}")
    stamp = (when or datetime.now()).strftime("%Y%m%d-%H%M%S")
    return "-".join(parts + [stamp])


def create_run_dir(parent: Path, hparams: dict, tag: str | None = None) -> Path:
    """Claim a brand-new folder for one run inside `parent` and return it."""
    parent.mkdir(parents=True, exist_ok=True)
    base = run_name(hparams)
    if tag:
        base = f"{tag}-{base}"
    for attempt in range(1, 1000):
        candidate = parent / (base if attempt == 1 else f"{base}-{attempt}")
        try:
            candidate.mkdir()
        except FileExistsError:
            continue
        return candidate
    raise LabError(f"could not find a free run folder name under {parent}")


def library_versions() -> dict[str, str | None]:
    versions = {"python": platform.python_version()}
    for dist in ("tensorflow", "keras", "tensorboard", "numpy", "scikit-learn"):
        try:
            versions[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            versions[dist] = None
    return versions


def _json_safe(value):
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {str(k): _json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_safe(v) for v in value]
    if hasattr(value, "item"):  # numpy scalars
        return _json_safe(value.item())
    return value


class RunRecord:
    """The contents of run.json, kept in memory and saved atomically on every change."""

    def __init__(
        self,
        run_dir: Path,
        *,
        lesson: str,
        activity: str,
        hparams: dict,
        dataset: dict,
        quick: bool,
        tag: str | None = None,
        argv: list[str] | None = None,
    ):
        self.path = Path(run_dir) / RUN_JSON
        self._started = time.monotonic()
        self.data = {
            "schema_version": 1,
            "lesson": lesson,
            "activity": activity,
            "run_name": Path(run_dir).name,
            "tag": tag,  # which of the runs a multi-run command trains (None: the command's only run)
            "status": "running",
            "quick": quick,
            "hparams": dict(hparams),
            "dataset": dataset,
            "epochs_completed": 0,
            "metrics": {"train": {}, "validation": {}, "test": {}},
            "extra": {},
            "started_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "finished_at": None,
            "wall_time_s": 0.0,
            "versions": library_versions(),
            "command": [Path(sys.argv[0]).name] + list(argv if argv is not None else sys.argv[1:]),
            "process": this_process(),
        }
        self.save()

    @classmethod
    def reopen(cls, run_dir: Path, argv: list[str] | None = None) -> RunRecord:
        """The record of an interrupted or crashed run, taken over by this process to resume it.

        Its wall time keeps counting from where it stopped; `resumes` lists every comeback."""
        record = cls.__new__(cls)
        record.path = Path(run_dir) / RUN_JSON
        record.data = json.loads(record.path.read_text())
        record._started = time.monotonic() - float(record.data.get("wall_time_s") or 0.0)
        previous = read_run(run_dir)["status"]
        record.data.setdefault("resumes", []).append(
            {
                "at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
                "previous_status": previous,
                "epochs_completed_before": record.data.get("epochs_completed", 0),
                "command": [Path(sys.argv[0]).name] + list(argv if argv is not None else sys.argv[1:]),
            }
        )
        record.data.update(status="running", finished_at=None, process=this_process())
        record.data["extra"].pop("error", None)
        record.save()
        return record

    def _text(self) -> str:
        return json.dumps(_json_safe(self.data), indent=2) + "\n"

    def save(self) -> None:
        self.data["wall_time_s"] = round(time.monotonic() - self._started, 3)
        tmp = self.path.with_name(self.path.name + ".tmp")
        try:
            tmp.write_text(self._text())
            os.replace(tmp, self.path)
        except OSError:
            tmp.unlink(missing_ok=True)
            raise

    def save_in_place(self) -> None:
        """Last resort when the disk is full: overwrite run.json where it stands, so that it
        reuses the file's own space instead of needing room for a second copy. Not atomic, so
        only for the final status of a run that is failing anyway."""
        self.data["wall_time_s"] = round(time.monotonic() - self._started, 3)
        with open(self.path, "r+", encoding="utf-8") as handle:
            handle.write(self._text())
            handle.truncate()

    def epoch_done(self, epoch: int, logs: dict) -> None:
        self.data["epochs_completed"] = epoch + 1
        for key, value in (logs or {}).items():
            split, name = ("validation", key[4:]) if key.startswith("val_") else ("train", key)
            if name == "learning_rate":
                continue
            self.data["metrics"][split][name] = float(value)
        self.save()

    def set_hparams(self, hparams: dict) -> None:
        """Replace the recorded hyperparameters: a run that chose one itself (a learning rate
        from the finder) records the value it trained with."""
        self.data["hparams"] = _json_safe(hparams)
        self.save()

    def set_validation_metrics(self, metrics: dict) -> None:
        """For runs that never call fit() themselves (a search keeps its best trial's score)."""
        self.data["metrics"]["validation"] = {k: float(v) for k, v in metrics.items()}

    def set_test_metrics(self, metrics: dict) -> None:
        self.data["metrics"]["test"] = {k: float(v) for k, v in metrics.items()}
        self.save()

    def add_extra(self, key: str, value) -> None:
        """Activity-specific results (a train/test gap, an edge-shift table, ...)."""
        self.data["extra"][key] = value
        self.save()

    def finish(self, status: str, error: str | None = None) -> None:
        assert status in STATUSES
        self.data["status"] = status
        self.data["finished_at"] = datetime.now(timezone.utc).isoformat(timespec="seconds")
        if error:
            self.data["extra"]["error"] = error
        try:
            self.save()
        except OSError:
            if status == "running":
                raise
            self.save_in_place()


def _process_start_time(pid: int) -> float | None:
    # psutil is imported where it is used: the stack doctor imports this module (for runs_root and
    # check_writable) in Pythons that may not have the lab's packages yet.
    import psutil

    try:
        return psutil.Process(pid).create_time()
    except (psutil.NoSuchProcess, psutil.AccessDenied):
        return None


def this_process() -> dict:
    return {"pid": os.getpid(), "host": socket.gethostname(), "started": _process_start_time(os.getpid())}


def _pid_exists(pid: int) -> bool:
    """psutil, not os.kill(pid, 0): on Windows signal 0 is CTRL_C_EVENT, which would interrupt the run."""
    import psutil

    return psutil.pid_exists(pid)


def process_is_alive(process: dict | None) -> bool | None:
    """Whether the process that wrote a run.json (as `read_run` checked it) still runs; None when
    this host cannot tell."""
    if not process or process.get("host") != socket.gethostname() or not process.get("pid"):
        return None
    pid = process["pid"]
    if not _pid_exists(pid):
        return False
    recorded, actual = process.get("started"), _process_start_time(pid)
    if recorded is not None and actual is not None and abs(recorded - actual) > 1.0:
        return False  # the pid was reused by a newer process
    return True


def read_run(run_dir: str | os.PathLike) -> dict:
    """run.json with every field the toolkit reads checked (else RunRecordError), and `status`
    "crashed" for a "running" run whose process is gone (the file itself is left as it is)."""
    path = Path(run_dir) / RUN_JSON
    try:
        record = json.loads(path.read_bytes(), parse_constant=no_json_constant)
    except OSError as error:
        raise RunRecordError(path, f"cannot be read: {error.strerror or error}") from None
    except (ValueError, RecursionError) as error:  # UnicodeDecodeError included
        raise RunRecordError(path, f"not valid JSON: {str(error)[:80] or 'it is nested too deep'}") from None
    if fault := record_fault(record):
        raise RunRecordError(path, fault)
    if record["status"] == "running" and process_is_alive(record.get("process")) is False:
        record["status"] = CRASHED
    return record


RESUMABLE = ("interrupted", CRASHED, "failed")


def check_resumable(run_dir: str | os.PathLike) -> dict:
    """run.json of a run that `--resume` may continue; a one-line LabError otherwise. Standard
    library only, so the command line can refuse before TensorFlow loads."""
    folder = check_name_lengths(Path(run_dir), "--resume")
    try:
        if not folder.is_dir():
            raise LabError(f"--resume {run_dir}: no such folder")
        if not (folder / RUN_JSON).is_file():
            raise LabError(f"--resume {run_dir}: not a run folder (it holds no {RUN_JSON})")
    except OSError as error:  # a folder without execute permission, say
        raise LabError(f"--resume {run_dir}: cannot look inside it ({error.strerror or error})") from None
    try:
        record = read_run(folder)
    except RunRecordError as error:
        raise LabError(f"--resume {run_dir}: its {RUN_JSON} cannot be used ({error.fault})") from None
    status = record.get("status")
    if status == "finished":
        raise LabError(f"--resume {run_dir}: that run already finished; start a new run instead")
    if status == "running":
        pid = (record.get("process") or {}).get("pid")
        raise LabError(f"--resume {run_dir}: that run is still running (pid {pid}); stop it first")
    if status not in RESUMABLE:
        raise LabError(f"--resume {run_dir}: its {RUN_JSON} has status '{status}', which cannot be resumed")
    return record


def find_runs(root: str | os.PathLike) -> list[Path]:
    """Every run folder (one holding run.json) at or below `root`, oldest name first."""
    return sorted(p.parent for p in Path(root).rglob(RUN_JSON))
