"""A training session: everything around `model.fit` that every activity needs.

    with TrainingSession(__file__, args) as session:
        model = build_model(...)          # the lesson's code, in the activity script
        session.fit(model)
        session.evaluate(model)

Entering the session works out the training plan, loads the data and checks the plan against
it (a LabError there means nothing was written yet), then seeds every random generator, claims
a fresh run folder and writes run.json. `fit` adds the TensorBoard, HParams and run.json
callbacks. Leaving the session marks the run finished, failed or, on Ctrl-C or a kill,
interrupted, after closing the event writers so that the logs stay readable. A disk that fills
up mid-run ends it with one line naming the path and the cause.

With `--distribute`, entering the session first builds the tf.distribute strategy (before any
TensorFlow op), and the session's body runs inside its scope, so that the model the activity
builds there has mirrored variables. Only the chief writes into the runs root: another worker's
run lives in a temporary folder that leaving the session removes (labkit.distribute).
"""

from __future__ import annotations

import argparse
import errno
import json
import os
import signal
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from labkit import LabError
from labkit import data as lab_data
from labkit import distribute as lab_distribute
from labkit.plan import TrainingPlan, training_plan
from labkit.runs import RunRecord, check_resumable, create_run_dir

BACKUP_FOLDER = "backup"  # Keras's BackupAndRestore state; removed when a run finishes training


class RunWriteError(LabError):
    """The run could not write its logs (full disk, read-only folder): not the student's flags."""

    exit_code = 1


class Terminated(BaseException):
    """SIGTERM (a `kill`, a closing terminal) turned into an exception, like Ctrl-C is."""


class SigtermAsException:
    """Between `start()` and `stop()`, SIGTERM raises Terminated in the main thread, so that a
    run stopped by `kill` can still close its logs and say `interrupted`, as after Ctrl-C.
    Signal handlers can only be set from the main thread; elsewhere this does nothing."""

    def __init__(self):
        self._previous = None

    def start(self) -> None:
        if threading.current_thread() is not threading.main_thread():
            return

        def terminated(signum, frame):
            raise Terminated()

        self._previous = signal.signal(signal.SIGTERM, terminated)

    def stop(self) -> None:
        if self._previous is not None:
            signal.signal(signal.SIGTERM, self._previous)
            self._previous = None


def interrupted_exit_code(exc_type) -> int:
    """The shell's convention: 128 + the signal's number (130 after Ctrl-C, 143 after SIGTERM)."""
    return 143 if exc_type is Terminated else 130


# OS errors that mean "the run's files cannot be written", whatever raised them.
WRITE_ERRNOS = {errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EACCES, errno.EPERM, errno.EFBIG, errno.EIO}
WRITE_MESSAGES = (
    "No space left on device",
    "Disk quota exceeded",
    "Read-only file system",
    "Permission denied",
    "File too large",
)


def write_failure(error: BaseException, run_dir: Path | None) -> str | None:
    """One line naming the path and the cause if `error` is a failure to write, else None.

    Python raises OSError; TensorFlow's event writers raise its own error types whose message
    carries the operating system's words."""
    if isinstance(error, OSError) and error.errno in WRITE_ERRNOS:
        path = error.filename or run_dir
        return f"cannot write {path}: {error.strerror or error}"
    message = str(error)
    for cause in WRITE_MESSAGES:
        if cause in message:
            return f"cannot write the run's logs in {run_dir}: {cause}"
    return None


def activity_of(script_file: str) -> tuple[str, str]:
    """`.../lesson_1/exercise_a/train_mnist.py` -> ("lesson_1", "exercise_a")."""
    folder = Path(script_file).resolve().parent
    return folder.parent.name, folder.name


def example_count(x) -> int:
    """Rows in `x`: one array, or the dict or tuple of arrays that a multi-input model takes."""
    if isinstance(x, dict):
        x = next(iter(x.values()))
    elif isinstance(x, (tuple, list)):
        x = x[0]
    return len(x)


def tensorboard_command(logdir: Path) -> str:
    return f'tensorboard --logdir "{logdir}"'


class TrainingSession:
    lesson: str
    activity: str
    args: argparse.Namespace
    plan: TrainingPlan
    data: lab_data.Dataset | None  # loaded on entry, unless the caller shares one
    model: Any  # what this run trained: a Keras model, or the NumPy weights; set by the script
    run_dir: Path | None
    record: RunRecord | None
    history: Any  # Keras's History of the last fit
    epoch_seconds: list[float]  # wall time of each epoch of the last fit
    status: str | None  # finished, failed or interrupted once the session has ended
    resumed_from_epoch: int | None  # the epoch a --resume run continued from
    exit_code: int  # 0, or 130 after Ctrl-C and 143 after SIGTERM
    distribution: lab_distribute.Distribution | None  # the tf.distribute strategy; None on one device

    def __init__(
        self,
        script_file: str,
        args: argparse.Namespace,
        *,
        tag: str | None = None,
        extra_hparams: dict | None = None,
        dataset: lab_data.Dataset | None = None,
        quiet: bool = False,
        parent_dir: Path | None = None,
        save_model: bool = True,
    ):
        self.lesson, self.activity = activity_of(script_file)
        self.args = args
        self.plan = training_plan(args)
        self.tag = tag
        self.extra_hparams = dict(extra_hparams or {})
        self.data = dataset
        self.quiet = quiet
        self.parent_dir = parent_dir  # None: <runs root>/<lesson>/<activity>
        self.save_model = save_model  # False where the model is thrown away (scripts/bench.py's rounds)
        self.model = None
        self.run_dir = None
        self.record = None
        self.history = None
        self.epoch_seconds = []
        self.status = None
        self.exit_code = 0
        self.resumed_from_epoch = None  # set by fit() when it continues an earlier process's run
        self._tensorboard = None
        self._open_writers = []  # summary writers of our own callbacks, closed on Ctrl-C too
        self._sigterm = SigtermAsException()
        self.distribution = None

    def say(self, message: str) -> None:
        if not self.quiet:
            print(message, flush=True)

    def hparams(self) -> dict:
        values = {
            "learning_rate": self.args.learning_rate,
            "batch_size": self.plan.batch_size,
            "epochs": self.plan.epochs,
            "steps_per_epoch": self.plan.steps_per_epoch,
        }
        values.update(self.extra_hparams)
        values.update({"dataset": self.data.name, "seed": self.args.seed})
        return values

    # -- lifecycle -------------------------------------------------------------------------

    def __enter__(self) -> TrainingSession:
        try:
            return self._begin()
        except BaseException:
            if self.distribution:  # leave no scope entered and no worker's temporary folder behind
                self.distribution.leave()
            raise

    def _begin(self) -> TrainingSession:
        resume = getattr(self.args, "resume", None)
        if resume:
            self.check_resume_target(Path(resume))
        self.distribution = lab_distribute.start(self.args, self.plan.batch_size)
        for line in self.distribution.lines() if self.distribution else ():
            self.say(line)
        if self.data is None:
            self.data = lab_data.load_dataset(
                self.args.dataset,
                default=getattr(self.args, "default_dataset", lab_data.DEFAULT_DATASET),
                limits=self.plan.slice,
                announce=self.say,
            )
        self.check_plan_fits_data()
        from labkit.deferred import keras, tf

        keras.utils.set_random_seed(self.args.seed)
        tf.config.experimental.enable_op_determinism()

        tag = "-".join(t for t in ("quick" if self.plan.quick else None, self.tag) if t) or None
        parent = Path(self.parent_dir or self.args.runs_root / self.lesson / self.activity)
        if self.distribution and not self.distribution.chief:
            parent = self.distribution.scratch_folder()
        try:
            if resume:
                self.run_dir = Path(resume)
                self.record = RunRecord.reopen(self.run_dir)
            else:
                self.run_dir = create_run_dir(parent, self.hparams(), tag=tag)
                self.record = RunRecord(
                    self.run_dir,
                    lesson=self.lesson,
                    activity=self.activity,
                    hparams=self.hparams(),
                    dataset=self.data.describe(),
                    quick=self.plan.quick,
                    tag=self.tag,
                )
        except OSError as error:
            raise RunWriteError(write_failure(error, self.run_dir or parent) or str(error)) from None
        if self.distribution:
            self.record.add_extra("distribution", self.distribution.record())
            self.distribution.enter_scope()
        self._sigterm.start()
        sizes = self.data.sizes()
        self.say(f"Run folder: {self.run_dir}")
        self.say(
            f"Data: {self.data.name} ({sizes['train']} train / {sizes['validation']} validation"
            f" / {sizes['test']} test) from {self.data.source}"
        )
        return self

    def check_resume_target(self, run_dir: Path) -> None:
        """Only this activity's own single runs can be resumed; checked before anything is loaded."""
        record = check_resumable(run_dir)
        owner = (record.get("lesson"), record.get("activity"))
        if owner != (self.lesson, self.activity):
            raise LabError(
                f"--resume {run_dir}: that is a run of {owner[0]}/{owner[1]}, not of {self.lesson}/{self.activity}"
            )
        if record.get("tag") != self.tag:
            # One of the runs a multi-run command trains (a linear baseline, a NumPy/Keras pair):
            # its settings alone cannot say how this command would continue it.
            raise LabError(
                f"--resume {run_dir}: that is the '{record.get('tag')}' run of a command that trains several; "
                "run that command again instead"
            )

    def check_plan_fits_data(self) -> None:
        n_train = len(self.data.x_train)
        if self.plan.batch_size > n_train:
            where = "the quick slice of " if self.plan.quick else ""
            raise LabError(
                f"--batch-size {self.plan.batch_size} is larger than the {n_train:,} training "
                f"images of {where}{self.data.name}; use at most {n_train}"
            )

    def __exit__(self, exc_type, exc, tb) -> bool:
        try:
            return self._end(exc_type, exc)
        finally:
            if self.distribution:
                self.distribution.leave()

    def _end(self, exc_type, exc) -> bool:
        self._sigterm.stop()
        if exc_type in (KeyboardInterrupt, Terminated):
            previous = signal.signal(signal.SIGINT, signal.SIG_IGN)  # a second Ctrl-C must not cut the cleanup short
            try:
                self._close_event_writers()
                self._finish("interrupted")
            finally:
                signal.signal(signal.SIGINT, previous)
            self.exit_code = interrupted_exit_code(exc_type)
            self.say(
                f"\nInterrupted after {self.record.data['epochs_completed']} epoch(s). "
                f"The logs so far are readable: {tensorboard_command(self.run_dir)}"
            )
            return True
        if exc_type is not None:
            self._close_event_writers()
            self._finish("failed", f"{exc_type.__name__}: {exc}")
            cause = write_failure(exc, self.run_dir)
            if cause:
                raise RunWriteError(cause) from None
            return False
        try:
            self.save_final_model()
        except Exception as error:
            cause = write_failure(error, self.run_dir)
            self._finish("failed", f"{type(error).__name__}: {error}")
            if cause:
                raise RunWriteError(cause) from None
            raise
        self._finish("finished")
        self.say(self.summary_line())
        if self.distribution and not self.distribution.chief:
            self.say(self.distribution.not_chief_line())
            return False
        self.say(f"See it in TensorBoard:  {tensorboard_command(self.run_dir)}")
        self.say(f"Compare with earlier runs:  {tensorboard_command(self.run_dir.parent)}")
        return False

    def save_final_model(self) -> None:
        """`<run>/model.keras` and its card, for a run that trained a Keras model, so that any
        run can be reloaded or served (lesson 4). NumPy weights and scikit-learn models are not saved."""
        from labkit.saved_models import MODEL_FILE, is_keras_model, save_keras_model

        if not self.save_model or not is_keras_model(self.model):
            return
        # A non-chief worker saves too, into its temporary folder: under MultiWorkerMirroredStrategy
        # saving broadcasts values between workers, and a worker that skipped it would leave the
        # chief waiting for it.
        card = save_keras_model(self.model, self.run_dir / MODEL_FILE, self.run_dir, record=self.record.data)
        self.record.add_extra(
            "model", {"file": MODEL_FILE, "identity": card["identity"], "size_bytes": card["size_bytes"]}
        )
        self.say(f"Model saved: {self.run_dir / MODEL_FILE} ({card['size_bytes'] / 1e6:.1f} MB)")

    def _finish(self, status: str, error: str | None = None) -> None:
        self.status = status
        try:
            self.record.finish(status, error)
        except OSError:
            pass  # nowhere left to write; read_run will report the dead process as crashed

    def summary_line(self) -> str:
        metrics = self.record.data["metrics"]
        parts = [
            f"{split} {name} {value:.4f}"
            for split in ("validation", "test")
            for name, value in metrics[split].items()
            if name in ("accuracy", "loss")
        ]
        data = self.data.name + (f", substitute for {self.data.substitute_for}" if self.data.substitute_for else "")
        return f"Finished in {self.record.data['wall_time_s']:.1f} s on {data}: " + (
            ", ".join(parts) or "no metrics recorded"
        )

    def _close_event_writers(self) -> None:
        keras_writers = getattr(self._tensorboard, "_writers", {}) if self._tensorboard else {}
        for writer in list(keras_writers.values()) + self._open_writers:
            try:
                writer.close()
            except Exception:  # a writer that cannot flush must not hide the interrupt itself
                pass

    def open_writer(self, split: str):
        """A summary writer for `<run>/<split>` that the session closes on Ctrl-C as well."""
        from labkit.deferred import tf

        writer = tf.summary.create_file_writer(str(self.run_dir / split))
        self._open_writers.append(writer)
        return writer

    # -- training --------------------------------------------------------------------------

    def callbacks(self) -> list:
        from tensorboard.plugins.hparams import api as hp

        from labkit.deferred import keras

        session = self

        class RecordEpochs(keras.callbacks.Callback):
            def on_epoch_begin(self, epoch, logs=None):
                self.started = time.perf_counter()

            def on_epoch_end(self, epoch, logs=None):
                session.epoch_seconds.append(time.perf_counter() - self.started)
                session.record.epoch_done(epoch, logs)

        # update_freq stays "epoch": with an integer, Keras 3 drops the epoch summaries of any epoch
        # whose step count is not a multiple of it (its record_if closure sees the last batch).
        # A resumed run keeps the model summary (tag "keras", step 0) its first process wrote.
        self._tensorboard = keras.callbacks.TensorBoard(
            log_dir=str(self.run_dir), update_freq="epoch", write_graph=not self.resumed_from_epoch
        )
        hparams = {k: v for k, v in self.hparams().items() if v is not None}
        self.epoch_seconds = []
        # A resumed run already logged its hyperparameters when it started; twice would duplicate them.
        hparams_callbacks = (
            []
            if self.resumed_from_epoch
            else [hp.KerasCallback(str(self.run_dir), hparams, trial_id=self.run_dir.name)]
        )
        return [self._tensorboard, *hparams_callbacks, RecordEpochs()]

    def dataset_pipeline(self, x, y):
        """Shuffled mini-batches; repeated when the plan fixes the steps of an epoch."""
        from labkit.deferred import tf

        n = example_count(x)
        if self.distribution and self.plan.repeat:
            # The very batches of the one-device run, in the same order (see batches_in_order).
            steps = self.plan.epochs * self.plan.steps_per_epoch_for(n)
            return self.distribution.batches_in_order(self._shuffled(tf.data.Dataset.range(n), n), x, y, steps)
        pipeline = self._shuffled(tf.data.Dataset.from_tensor_slices((x, y)), n)
        pipeline = pipeline.batch(self.plan.batch_size).prefetch(tf.data.AUTOTUNE)
        return self.distribution.shard_by_data(pipeline) if self.distribution else pipeline

    def _shuffled(self, dataset, n: int):
        dataset = dataset.shuffle(n, seed=self.args.seed, reshuffle_each_iteration=True)
        return dataset.repeat() if self.plan.repeat else dataset

    def fit(
        self,
        model,
        *,
        x_train=None,
        y_train=None,
        x_val=None,
        y_val=None,
        validate_every_steps=None,
        extra_callbacks=(),
    ):
        """Train `model` (already compiled) on the session's data, logging everything.

        `validate_every_steps=N` also scores a fixed validation sample every N gradient steps
        (tag `accuracy_by_step` in `<run>/validation`), for a curve finer than one point per epoch.
        """
        d = self.data
        x_train = d.x_train if x_train is None else x_train
        y_train = d.y_train if y_train is None else y_train
        x_val = d.x_val if x_val is None else x_val
        y_val = d.y_val if y_val is None else y_val
        if self.distribution:
            self.distribution.check_model(model)
        steps = self.plan.steps_per_epoch_for(example_count(x_train)) if self.plan.repeat else None
        if getattr(self.args, "resume", None):
            self.prepare_resume()
        steps_done = (self.resumed_from_epoch or 0) * self.plan.steps_per_epoch_for(example_count(x_train))
        step_validation = (
            [step_validation_callback(self, x_val, y_val, validate_every_steps, first_step=steps_done)]
            if validate_every_steps
            else []
        )
        self.history = model.fit(
            self.dataset_pipeline(x_train, y_train),
            epochs=self.plan.epochs,
            steps_per_epoch=steps,
            validation_data=(x_val, y_val),
            validation_batch_size=max(self.plan.batch_size, 256),
            # The backup comes last, so that everything an epoch logged is on disk before the
            # epoch counts as saved: a run killed in between repeats that epoch, never skips it.
            callbacks=self.callbacks() + step_validation + list(extra_callbacks) + [self.backup_callback()],
            shuffle=False,  # the pipeline above already shuffles, reproducibly
            verbose=0 if self.quiet else 2 if not sys.stdout.isatty() else "auto",
        )
        return self.history

    # -- resuming ---------------------------------------------------------------------------

    @property
    def backup_dir(self) -> Path:
        return self.run_dir / BACKUP_FOLDER

    def backup_callback(self):
        """Keras's BackupAndRestore in `<run>/backup`, flushing every event writer first."""
        from labkit.deferred import keras

        session = self

        class FlushThenBackup(keras.callbacks.BackupAndRestore):
            def on_epoch_end(self, epoch, logs=None):
                session.flush_event_writers()
                super().on_epoch_end(epoch, logs)

            def _save_model(self):
                # Keras writes both files in place, so a kill mid-write leaves an empty metadata
                # file or a torn weights file, and the run can no longer resume. Write them beside
                # and rename them over: a rename is atomic, so the backup is always a whole epoch.
                # Weights first: a kill between the two renames repeats one epoch, never skips one.
                final = (self._weights_path, self._training_metadata_path)
                partial = (str(Path(final[0]).with_name("partial.weights.h5")), final[1] + ".partial")
                self._weights_path, self._training_metadata_path = partial
                try:
                    super()._save_model()
                finally:
                    self._weights_path, self._training_metadata_path = final
                for written, target in zip(partial, final, strict=True):
                    os.replace(written, target)

        return FlushThenBackup(str(self.backup_dir))

    def flush_event_writers(self) -> None:
        keras_writers = getattr(self._tensorboard, "_writers", {}) if self._tensorboard else {}
        for writer in list(keras_writers.values()) + self._open_writers:
            writer.flush()

    def prepare_resume(self) -> None:
        """Find the last saved epoch, and drop what the dead process logged after saving it.

        An epoch is saved only after its logs are flushed, so events newer than the backup belong
        to the epoch that is about to run again: dropping them keeps every step list free of
        duplicates, and keeping the rest leaves no gaps."""
        from labkit.tblogs import drop_events_after

        metadata = self.backup_dir / "training_metadata.json"
        if metadata.is_file():
            self.resumed_from_epoch = int(json.loads(metadata.read_text())["epoch"])
            cutoff = metadata.stat().st_mtime
        else:  # killed before its first epoch ended: start again, in the same folder
            self.resumed_from_epoch = 0
            cutoff = float("-inf")
        dropped = drop_events_after(self.run_dir, cutoff)
        self.record.data["resumes"][-1].update(from_epoch=self.resumed_from_epoch, events_dropped=dropped)
        self.record.data["epochs_completed"] = self.resumed_from_epoch
        self.record.save()
        self.say(
            f"Resuming from epoch {self.resumed_from_epoch + 1} of {self.plan.epochs}"
            + (f" ({dropped} event(s) logged after the last backup dropped)" if dropped else "")
        )

    def evaluate(self, model, *, x_test=None, y_test=None) -> dict:
        """Score on the held-out test set; logged to run.json and to `<run>/test` in TensorBoard."""
        x_test = self.data.x_test if x_test is None else x_test
        y_test = self.data.y_test if y_test is None else y_test
        metrics = model.evaluate(x_test, y_test, batch_size=256, verbose=0, return_dict=True)
        return self.record_test_metrics(metrics)

    def record_test_metrics(self, metrics: dict) -> dict:
        """Put final test metrics in run.json and in `<run>/test`, for any kind of model."""
        from labkit.deferred import tf

        self.record.set_test_metrics(metrics)
        step = max(self.record.data["epochs_completed"] - 1, 0)
        writer = self.open_writer("test")
        with writer.as_default():
            for name, value in metrics.items():
                tf.summary.scalar(f"test_{name}", value, step=step)
        writer.close()
        return metrics


def step_validation_callback(
    session: TrainingSession, x_val, y_val, every: int, sample: int = 500, first_step: int = 0
):
    """A Keras callback that scores the first `sample` validation images every `every` steps,
    counting from `first_step` (the steps a resumed run had already taken)."""
    import numpy as np

    from labkit.deferred import keras, tf

    class StepValidation(keras.callbacks.Callback):
        def on_train_begin(self, logs=None):
            self.writer = session.open_writer("validation")
            self.step = first_step

        def on_train_batch_end(self, batch, logs=None):
            self.step += 1
            if self.step % every:
                return
            if getattr(session, "distribution", None):
                # predict_on_batch would run the whole sample on every replica and concatenate
                # the copies; a plain call reads the mirrored weights once, with no collective.
                probabilities = keras.ops.convert_to_numpy(self.model(x_val[:sample], training=False))
            else:
                probabilities = self.model.predict_on_batch(x_val[:sample])
            accuracy = float(np.mean(np.argmax(probabilities, axis=1) == y_val[:sample]))
            with self.writer.as_default():
                tf.summary.scalar("accuracy_by_step", accuracy, step=self.step)

        def on_train_end(self, logs=None):
            self.writer.close()

    return StepValidation()


@dataclass
class RunSet:
    """What an activity that trains several runs in one go returns: its sessions by name, in the
    order they ran (a sweep's variants, one run per optimizer, a NumPy run and its Keras twin)."""

    sessions: dict[str, TrainingSession] = field(default_factory=dict)
    comparison: Any = None  # a table the activity built across its runs, if any

    def __getitem__(self, name: str) -> TrainingSession:
        return self.sessions[name]

    def __len__(self) -> int:
        return len(self.sessions)

    def add(self, name: str, session: TrainingSession) -> TrainingSession:
        self.sessions[name] = session
        return session

    @property
    def last(self) -> TrainingSession | None:
        return next(reversed(self.sessions.values()), None)

    @property
    def exit_code(self) -> int:
        return max((s.exit_code for s in self.sessions.values()), default=0)

    def metrics(self):
        """Validation and test accuracy of every run, one row per run name."""
        import pandas as pd

        rows = {
            name: {
                "validation_accuracy": s.record.data["metrics"]["validation"].get("accuracy"),
                "test_accuracy": s.record.data["metrics"]["test"].get("accuracy"),
            }
            for name, s in self.sessions.items()
            if s.record is not None
        }
        return pd.DataFrame.from_dict(rows, orient="index")


def run_main(train, parser_factory, argv=None) -> int:
    """The body of every script's main(): parse, train, turn LabErrors into one line."""
    from labkit import cli

    parser = parser_factory()
    args = cli.parse(parser, argv)
    try:
        return train(args).exit_code
    except LabError as error:
        cli.fail(error, parser.prog)
