"""Saved models, each with a JSON model card beside it.

Every Keras run ends by saving what it trained as `<run>/model.keras`, so that any run can be
reloaded, compared or served. Beside every saved model (a `.keras` file, a `.weights.h5` file or
an exported SavedModel folder) lies `<name>.card.json`: where the model came from (run folder,
data and its source), how well it did (the run's metrics), how it was trained (hyperparameters),
with which libraries, and a fingerprint of the saved bytes that names this exact version.

Lesson 4 starts from such files: it saves, serves and retrains the model of a Lesson 1 run, found
here (`find_model`), never by importing Lesson 1's code. `DEFAULT_PORT` is where its prediction
server listens unless told otherwise.

Standard library only at import time: the command lines check a model path before TensorFlow loads.
"""

from __future__ import annotations

import json
import os
import shlex
import stat
import sys
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path

from labkit import LabError, sha256_of
from labkit.runs import RUN_JSON, find_runs, library_versions, read_run

MODEL_FILE = "model.keras"
DEFAULT_PORT = 8000  # lesson_4/serve/serve.py's port on 127.0.0.1 unless --port says otherwise
CARD_SUFFIX = ".card.json"
CARD_SCHEMA = 1


def card_path(model_path: str | os.PathLike) -> Path:
    """`model.keras` -> `model.keras.card.json`; a SavedModel folder `export/` -> `export.card.json`."""
    return Path(str(model_path).rstrip("/\\") + CARD_SUFFIX)


def _files_of(path: Path) -> list[Path]:
    return sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path]


def size_on_disk(path: str | os.PathLike) -> int:
    """Bytes of a file, or of every file in a folder (a SavedModel)."""
    return sum(p.stat().st_size for p in _files_of(Path(path)))


def fingerprint(path: str | os.PathLike) -> str:
    """SHA-256 of the saved bytes (of every file, by relative name, for a folder)."""
    return sha256_of(path)


def describe_model(model) -> dict:
    """Name, size and the shapes a Keras model takes and gives (batch axis left out)."""

    def shapes(tensors):
        return [list(t.shape[1:]) for t in (tensors if isinstance(tensors, (list, tuple)) else [tensors])]

    description = {"name": model.name, "class": type(model).__name__, "parameters": int(model.count_params())}
    try:
        description.update(inputs=shapes(model.inputs), outputs=shapes(model.outputs))
    except (AttributeError, ValueError):  # a subclassed model has no symbolic inputs to show
        pass
    return description


def model_card(model_path, run_dir, *, model=None, saved_as: str, record: dict | None = None, notes=None) -> dict:
    """The card of `model_path`, saved from the run in `run_dir` (whose run.json it summarises)."""
    model_path, run_dir = Path(model_path), Path(run_dir)
    record = record if record is not None else read_run(run_dir)
    digest = fingerprint(model_path)
    card = {
        "schema_version": CARD_SCHEMA,
        "identity": f"{record['lesson']}/{record['activity']}/{record['run_name']}#{digest[:12]}",
        "file": model_path.name,
        "saved_as": saved_as,
        "sha256": digest,
        "size_bytes": size_on_disk(model_path),
        "saved_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "run_dir": str(run_dir.resolve()),
        "lesson": record["lesson"],
        "activity": record["activity"],
        "run_name": record["run_name"],
        "quick": record.get("quick"),
        "data": record.get("dataset"),
        "metrics": record.get("metrics"),
        "hparams": record.get("hparams"),
        "versions": library_versions(),
    }
    if model is not None:
        card["model"] = describe_model(model)
    if notes:
        card["notes"] = notes
    return card


def stored_bytes(path) -> dict:
    """What a saved copy holds, in bytes by top-level name: `layers` and `optimizer` in a Keras
    weights file (inside a .keras zip too), the variable collections in a SavedModel folder."""
    import zipfile

    import h5py
    import numpy as np

    path, groups = Path(path), {}

    def add(name, nbytes):
        top = name.split("/")[0]
        groups[top] = groups.get(top, 0) + int(nbytes)

    if path.is_dir():
        import tensorflow as tf

        reader = tf.train.load_checkpoint(str(path / "variables" / "variables"))
        dtypes = reader.get_variable_to_dtype_map()
        for name, shape in reader.get_variable_to_shape_map().items():
            if not name.startswith("_CHECKPOINTABLE"):  # the object graph, not a weight
                add(name, np.prod(shape) * dtypes[name].size)
        return groups

    def read_h5(handle):
        with h5py.File(handle, "r") as h5:
            h5.visititems(
                lambda name, item: add(name, item.size * item.dtype.itemsize) if hasattr(item, "dtype") else None
            )

    if path.suffix == ".keras":
        with zipfile.ZipFile(path) as archive, archive.open("model.weights.h5") as weights:
            read_h5(weights)
    else:
        read_h5(path)
    return groups


def write_card(model_path, card: dict) -> Path:
    target = card_path(model_path)
    partial = target.with_name(target.name + ".partial")
    partial.write_text(json.dumps(card, indent=2) + "\n")
    os.replace(partial, target)
    return target


def read_card(model_path) -> dict:
    """The card beside `model_path`; a one-line LabError when it is missing or unreadable."""
    path = card_path(model_path)
    try:
        return json.loads(_regular_file_text(path))
    except FileNotFoundError:
        raise LabError(f"{model_path} has no model card ({path.name} is missing beside it)") from None
    except (OSError, ValueError, RecursionError) as error:
        raise LabError(f"{path} cannot be read: {error}") from None


def _regular_file_text(path: Path) -> str:
    """The text of `path` if it is a regular file. Opened without blocking and checked on the open
    descriptor: a FIFO in a card's place would otherwise hang its reader until something writes to
    it, and a check made before opening could be raced."""
    descriptor = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
    try:
        if not stat.S_ISREG(os.fstat(descriptor).st_mode):
            raise ValueError("not a regular file")
    except BaseException:
        os.close(descriptor)
        raise
    with open(descriptor, "rb") as handle:
        return handle.read().decode()


def save_keras_model(model, path, run_dir, *, record: dict | None = None) -> dict:
    """Save `model` as a `.keras` file with its card, leaving the optimizer's state out; returns
    the card.

    A finished run is loaded to predict, evaluate, serve or train further, none of which needs
    the optimizer's slots, and Adam's two per weight would be two thirds of the file (51 of Lesson
    1's 77 MB). Resuming an unfinished run reads `<run>/backup`, which keeps them.

    Keras writes the zip in place, so a kill mid-save would leave a torn file under the final name.
    It is written beside and renamed over instead: `model.keras` is always whole or absent."""
    path = Path(path)
    partial = path.with_name("partial-" + path.name)
    try:
        with without_optimizer_state(model):
            model.save(partial)
        os.replace(partial, path)
    except BaseException:
        # Ctrl-C or a full disk mid-save: a torn copy is worth nothing, and it is as big as a model.
        partial.unlink(missing_ok=True)
        raise
    card = model_card(path, run_dir, model=model, saved_as="keras", record=record)
    write_card(path, card)
    return card


@contextmanager
def without_optimizer_state(model):
    """While inside, `model.save` writes no optimizer variables but keeps the compile settings:
    `load_model` hands back a model compiled with a fresh optimizer of the same kind and learning
    rate (Keras warns that it skipped the optimizer's variables). Keras 3's `.keras` format has no
    `include_optimizer` switch; its saver walks the model's attributes, so the optimizer is taken
    off the model for the length of the save."""
    optimizer = getattr(model, "optimizer", None)
    if optimizer is None:
        yield
        return
    model.optimizer = None
    try:
        yield
    finally:
        model.optimizer = optimizer


def is_keras_model(candidate) -> bool:
    # A Keras model exists only once keras is imported: a NumPy run ends without loading TensorFlow.
    if "keras" not in sys.modules:
        return False
    import keras

    return isinstance(candidate, keras.Model)


# -- finding a model to load ---------------------------------------------------------------


def train_command(lesson: str, activity: str, *, quick: bool | None = None, flags: dict | None = None) -> list[str]:
    """The command that trains a run of `lesson/activity`: quick unless `quick` is False, with
    `flags` ({"--dataset": "digits"}; None values left out)."""
    given = [str(part) for flag, value in (flags or {}).items() if value is not None for part in (flag, value)]
    return [
        "python",
        f"{lesson}/{activity}/{training_script(lesson, activity)}",
        *([] if quick is False else ["--quick"]),
        *given,
    ]


def training_script(lesson: str, activity: str) -> str:
    """The file name of the activity's training page: its one train_*.py (train_mnist.py, or
    train_bitcoin.py for the Bitcoin thread); train_mnist.py when the folder has none or several."""
    scripts = sorted((Path(__file__).resolve().parents[1] / lesson / activity).glob("train_*.py"))
    return scripts[0].name if len(scripts) == 1 else "train_mnist.py"


def newest_run_model(
    root: Path, lesson: str, activity: str, *, quick: bool | None = None, flags: dict | None = None
) -> Path:
    """`model.keras` of the newest finished run of `lesson/activity` under the runs root `root`
    (only quick ones, or only full-length ones, when `quick` says so). When there is none, a
    one-line LabError names the command that trains one (with `flags` added)."""
    folder = Path(root) / lesson / activity
    candidates = []
    for run_dir in find_runs(folder) if folder.is_dir() else []:
        try:
            record = read_run(run_dir)
        except (OSError, ValueError):
            continue
        if record.get("status") != "finished" or not (run_dir / MODEL_FILE).is_file():
            continue
        if quick is not None and bool(record.get("quick")) != quick:
            continue
        candidates.append((record.get("finished_at") or "", run_dir.name, run_dir))
    if not candidates:
        kind = "" if quick is None else f" (a {'quick' if quick else 'full-length'} one is needed)"
        raise LabError(
            f"no finished {lesson}/{activity} run with a {MODEL_FILE} under {folder}{kind}; "
            f"train one first: {shlex.join(train_command(lesson, activity, quick=quick, flags=flags))}"
        )
    return max(candidates)[2] / MODEL_FILE


def model_in_run(run_dir, flag: str = "--run") -> Path:
    """`<run>/model.keras`, checked: a one-line LabError, naming `flag`, says what is wrong."""
    try:
        return _model_in_run(Path(run_dir), flag)
    except OSError as error:  # a name over 255 bytes, a folder the student may not open
        raise LabError(f"{flag} {run_dir}: {error.strerror or error}") from None


def _model_in_run(run_dir: Path, flag: str) -> Path:
    if not run_dir.is_dir():
        raise LabError(f"{flag} {run_dir}: no such folder")
    if not (run_dir / RUN_JSON).is_file():
        raise LabError(f"{flag} {run_dir}: not a run folder (it holds no {RUN_JSON})")
    path = run_dir / MODEL_FILE
    if not path.is_file():
        try:
            status = read_run(run_dir).get("status")
        except ValueError as error:
            raise LabError(f"{flag} {run_dir}: {error}") from None
        raise LabError(
            f"{flag} {run_dir}: it holds no {MODEL_FILE} (its status is '{status}'; only finished runs save one)"
        )
    return path


def check_model_file(path) -> Path:
    """A `.keras` file that exists and has its card beside it."""
    path = Path(path)
    try:
        if not path.is_file():
            raise LabError(f"--model {path}: no such file")
    except OSError as error:  # a name over 255 bytes, a folder the student may not open
        raise LabError(f"--model {path}: {error.strerror or error}") from None
    if path.suffix != ".keras":
        raise LabError(f"--model {path}: not a .keras file")
    read_card(path)
    return path


def run_of(model_path) -> dict:
    """The run.json of the run that saved `model_path`; a one-line LabError when it cannot be read."""
    run_dir = Path(model_path).parent
    try:
        return read_run(run_dir)
    except ValueError as error:  # labkit.runs.RunRecordError: the file and what is wrong with it
        raise LabError(f"its run.json cannot be used: {error}") from None


def find_model(
    root: Path,
    lesson: str,
    activity: str,
    *,
    run_dir=None,
    flag: str = "--run",
    quick: bool | None = None,
    only_that_activity: bool = False,
    flags: dict | None = None,
) -> tuple[Path, dict]:
    """The `model.keras` an activity starts from, and the run.json of the run that saved it.

    `run_dir` (given with `flag`) when set: a finished run holding its model, and with
    `only_that_activity` a run of `lesson/activity`. Otherwise the newest finished run of
    `lesson/activity` under `root` (see newest_run_model). When there is none, a LabError names
    the command that trains one: a page never trains another lesson's model behind the student's
    back. Whatever is wrong is one line, before TensorFlow loads and before anything is written."""
    if run_dir:
        path = model_in_run(run_dir, flag=flag)
    else:
        try:
            path = newest_run_model(root, lesson, activity, quick=quick, flags=flags)
        except LabError as missing:
            raise LabError(f"{missing} (or name one with {flag} RUN_DIR)") from None
    record = run_of(path)
    owner = (record.get("lesson"), record.get("activity"))
    if only_that_activity and owner != (lesson, activity):
        raise LabError(f"{flag} {run_dir}: that is a run of {owner[0]}/{owner[1]}; give it a {lesson}/{activity} run")
    return path, record
