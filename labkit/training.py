"""What an activity's Keras code needs from the lab, in a few visible calls:

    data = load_data(config)                       # the arrays, offline fallbacks, quick slice
    run = start_run(config, data)                  # a fresh run folder and its run.json
    tensorboard = keras.callbacks.TensorBoard(log_dir=run.dir)
    model.fit(run.batches(x_train, y_train), epochs=run.epochs, steps_per_epoch=run.steps_per_epoch,
              validation_data=(x_valid, y_valid), callbacks=[tensorboard, *run.callbacks(tensorboard)])
    run.record_test(model.evaluate(x_test, y_test, return_dict=True))
    run.finish(model)                              # model.keras, status "finished"

`start_run` checks the plan against the data (a LabError there means nothing was written yet),
builds the tf.distribute strategy for `--distribute` (before any TensorFlow op) and enters its
scope, seeds every random generator, and claims the run folder. `run.callbacks()` records every
epoch in run.json, writes the HParams summary and the backup that `--resume` continues from.
How a run ends when something goes wrong is labkit.lifecycle's business.
"""

from __future__ import annotations

import time
import warnings
from pathlib import Path

from labkit import LabError
from labkit import data as lab_data
from labkit import distribute as lab_distribute
from labkit.backups import METADATA, BackupError, VerifiedBackup, fresh_start_command, verify_backup
from labkit.backups import refusal as backup_refusal
from labkit.cli import Config
from labkit.figures import save_figures_on_show
from labkit.lifecycle import RunLifecycle, RunWriteError, tensorboard_command, write_failure
from labkit.runs import RunRecord, check_resumable, create_run_dir

save_figures_on_show()
# run.batches() already shuffles, reproducibly; Keras's fit warns that its own shuffle=True is ignored.
warnings.filterwarnings("ignore", message="`shuffle=True` was passed, but will be ignored")

BACKUP_FOLDER = "backup"  # Keras's BackupAndRestore state; removed when a run finishes training
EPOCH_LOG = "epochs.log"  # one line per epoch, whatever the console showed


def load_data(config: Config, *, quiet: bool = False) -> lab_data.Dataset:
    """The activity's dataset as NumPy arrays, cut to the quick slice in quick mode.

    Without `--dataset`, the activity's default, or a labelled real substitute when it cannot be
    had (one line says which and why)."""
    # With --distribute, the devices are set up first, before anything else touches TensorFlow:
    # a page may build and try small models (Lesson 2's anatomy) before its first run starts.
    lab_distribute.start(config, config.plan.batch_size)
    return lab_data.load_dataset(
        config.dataset,
        default=config.default_dataset,
        limits=config.plan.slice,
        announce=(lambda line: None) if quiet else print,
    )


def example_count(x) -> int:
    """Rows in `x`: one array, or the dict or tuple of arrays that a multi-input model takes."""
    if isinstance(x, dict):
        x = next(iter(x.values()))
    elif isinstance(x, (tuple, list)):
        x = x[0]
    return len(x)


def start_run(
    config: Config,
    data: lab_data.Dataset,
    *,
    tag: str | None = None,
    hparams: dict | None = None,
    quiet: bool = False,
    parent_dir: Path | None = None,
) -> KerasRun:
    """A new run of this activity (or the interrupted one `--resume` names), ready to train.

    `tag` names one of the runs an activity trains in one go (a sweep's variant); `hparams` adds
    the activity's own settings to what run.json and the HParams dashboard record."""
    if config.resume:
        check_resume_target(config, tag)
    plan = config.plan
    n_train = example_count(data.x_train)
    if plan.batch_size > n_train:
        where = "the quick slice of " if plan.quick else ""
        what = "images" if getattr(data.x_train, "ndim", 0) >= 3 else "examples"
        raise LabError(
            f"--batch-size {plan.batch_size} is larger than the {n_train:,} training "
            f"{what} of {where}{data.name}; use at most {n_train}"
        )
    distribution = lab_distribute.start(config, plan.batch_size)
    try:
        return KerasRun(config, data, distribution, tag=tag, hparams=hparams, quiet=quiet, parent_dir=parent_dir)
    except BaseException:
        if distribution:  # leave no scope entered and no worker's temporary folder behind
            distribution.leave()
        raise


def check_resume_target(config: Config, tag: str | None) -> None:
    """Only this activity's own single runs can be resumed; checked before anything is written."""
    record = check_resumable(config.resume)
    owner = (record.get("lesson"), record.get("activity"))
    if owner != (config.lesson, config.activity):
        raise LabError(
            f"--resume {config.resume}: that is a run of {owner[0]}/{owner[1]}, "
            f"not of {config.lesson}/{config.activity}"
        )
    if record.get("tag") != tag:
        raise LabError(
            f"--resume {config.resume}: that is the '{record.get('tag')}' run of a command that trains several; "
            "run that command again instead"
        )
    verified_backup(config.resume, config.plan.epochs, record)


def verified_backup(run_dir: Path, epochs: int, record: dict) -> VerifiedBackup:
    """The run's backup, checked against its manifest before Keras loads anything from it; a
    one-line refusal, with the command that starts afresh, if it cannot be trusted."""
    try:
        return verify_backup(Path(run_dir) / BACKUP_FOLDER, epochs)
    except BackupError as error:
        raise backup_refusal(run_dir, Path(run_dir) / BACKUP_FOLDER, record, error) from None


class KerasRun:
    """A run that trains a Keras model: its lifecycle plus the Keras specifics (pipeline,
    callbacks, resume, distribution, the saved model)."""

    def __init__(self, config, data, distribution, *, tag, hparams, quiet, parent_dir):
        import keras
        import tensorflow as tf

        self.config = config
        self.data = data
        self.distribution = distribution
        self.tag = tag
        self.plan = config.plan
        self.n_train = example_count(data.x_train)
        self.epochs = self.plan.epochs
        self.steps_per_epoch = self.plan.steps_per_epoch_for(self.n_train) if self.plan.repeat else None
        self.hparams = {
            "learning_rate": config.learning_rate,
            "batch_size": self.plan.batch_size,
            "epochs": self.plan.epochs,
            "steps_per_epoch": self.plan.steps_per_epoch,
            **(hparams or {}),
            "dataset": data.name,
            "seed": config.seed,
        }
        self.epoch_seconds: list[float] = []
        self.backup_callbacks: list = []  # each fit's FlushThenBackup, which times its saves
        self.resumed_from_epoch: int | None = None
        for line in distribution.lines() if distribution and not quiet else ():
            print(line, flush=True)

        keras.utils.set_random_seed(config.seed)
        tf.config.experimental.enable_op_determinism()

        parent = Path(parent_dir or config.runs_root / config.lesson / config.activity)
        if distribution and not distribution.chief:
            parent = distribution.scratch_folder()
        run_dir = None
        try:
            if config.resume:
                run_dir = Path(config.resume)
                record = RunRecord.reopen(run_dir)
            else:
                label = "-".join(t for t in ("quick" if self.plan.quick else None, tag) if t) or None
                run_dir = create_run_dir(parent, self.hparams, tag=label)
                record = RunRecord(
                    run_dir,
                    lesson=config.lesson,
                    activity=config.activity,
                    hparams=self.hparams,
                    dataset=data.describe(),
                    quick=self.plan.quick,
                    tag=tag,
                )
        except OSError as error:
            raise RunWriteError(write_failure(error, run_dir or parent) or str(error)) from None
        self.life = RunLifecycle(run_dir, record, quiet=quiet)
        if distribution:
            record.add_extra("distribution", distribution.record())
            distribution.enter_scope()
            self.life.on_end.append(distribution.leave)
        sizes = data.sizes()
        self.say(f"Run folder: {run_dir}")
        self.say(
            f"Data: {data.name} ({sizes['train']} train / {sizes['validation']} validation"
            f" / {sizes['test']} test) from {data.source}"
        )

    # -- what the lesson sees ---------------------------------------------------------------

    @property
    def dir(self) -> Path:
        return self.life.dir

    @property
    def record(self) -> RunRecord:
        return self.life.record

    @property
    def status(self) -> str | None:
        return self.life.status

    def say(self, message: str) -> None:
        self.life.say(message)

    def batches(self, x, y):
        """Shuffled (seeded) mini-batches of the run's batch size; endless when an epoch is a
        fixed number of steps. Under --distribute, the very batches of the one-device run."""
        import tensorflow as tf

        n = example_count(x)
        if self.distribution and self.plan.repeat:
            steps = self.plan.epochs * self.plan.steps_per_epoch_for(n)
            return self.distribution.batches_in_order(self._shuffled(tf.data.Dataset.range(n), n), x, y, steps)
        pipeline = self._shuffled(tf.data.Dataset.from_tensor_slices((x, y)), n)
        pipeline = pipeline.batch(self.plan.batch_size).prefetch(tf.data.AUTOTUNE)
        return self.distribution.shard_by_data(pipeline) if self.distribution else pipeline

    def _shuffled(self, dataset, n: int):
        dataset = dataset.shuffle(n, seed=self.config.seed, reshuffle_each_iteration=True)
        return dataset.repeat() if self.plan.repeat else dataset

    def callbacks(self, tensorboard=None, *, validate_every: int | None = None, validation_data=None) -> list:
        """The lab's callbacks, to put after the lesson's own in `model.fit(callbacks=[...])`:
        run.json after every epoch (and a line in epochs.log), the HParams summary, a validation
        point every `validate_every` steps if asked, and last the backup `--resume` restarts from.

        Pass the lesson's TensorBoard callback so that its logs are flushed before each backup:
        a run killed later then never loses an epoch it had already logged."""
        from labkit.keras_callbacks import FlushThenBackup, HParamsOnce, RecordEpochs, StepValidation

        self._check_open()
        if tensorboard is not None and all(getattr(w, "callback", None) is not tensorboard for w in self.life.writers):
            self.life.writers.insert(0, KerasWriters(tensorboard))
        if self.config.resume and self.resumed_from_epoch is None:
            self.prepare_resume()
        steps_done = (self.resumed_from_epoch or 0) * self.plan.steps_per_epoch_for(self.n_train)
        chosen = [RecordEpochs(self)]
        if not self.resumed_from_epoch:  # a resumed run logged its hyperparameters when it started
            chosen.append(HParamsOnce(self))
        if validate_every:
            x_val, y_val = validation_data if validation_data is not None else (self.data.x_val, self.data.y_val)
            chosen.append(StepValidation(self, x_val, y_val, validate_every, first_step=steps_done))
        chosen.append(FlushThenBackup(self, str(self.backup_dir)))
        self.backup_callbacks.append(chosen[-1])
        return chosen

    def record_test(self, metrics: dict) -> dict:
        """Put the final test metrics in run.json and in `<run>/test` for TensorBoard."""
        import tensorflow as tf

        self._check_open()
        self.record.set_test_metrics(metrics)
        step = max(self.record.data["epochs_completed"] - 1, 0)
        writer = self.open_writer("test")
        with writer.as_default():
            for name, value in metrics.items():
                tf.summary.scalar(f"test_{name}", value, step=step)
        writer.flush()
        return metrics

    def open_writer(self, split: str):
        """A summary writer for `<run>/<split>` (an extra chart), closed with the run."""
        return self.life.open_writer(split)

    def finish(self, model=None) -> None:
        """Save `<run>/model.keras` with its card (for a Keras model), mark the run finished and
        print where to see it. Ctrl-C during the save leaves the run `interrupted`, not running."""
        self._check_open()
        if self.backup_callbacks:
            saves = [seconds for callback in self.backup_callbacks for seconds in callback.seconds]
            spent = sum(saves)  # what --resume's safety cost this run, beside its training time
            share = spent / (spent + sum(self.epoch_seconds)) if self.epoch_seconds else 0.0
            skipped = sum(callback.skipped for callback in self.backup_callbacks)
            self.record.add_extra("backup", {"saves": len(saves), "skipped": skipped, "seconds": spent, "share": share})
        if model is not None:
            self.save_model(model)
        self.life.end("finished")
        self.say(self.summary_line())
        if self.distribution and not self.distribution.chief:
            self.say(self.distribution.not_chief_line())
            return
        self.say(f"See it in TensorBoard:  {tensorboard_command(self.dir)}")
        self.say(f"Compare with earlier runs:  {tensorboard_command(self.dir.parent)}")

    def save_model(self, model) -> None:
        from labkit.saved_models import MODEL_FILE, is_keras_model, save_keras_model

        if not is_keras_model(model):
            return
        # A non-chief worker saves too, into its temporary folder: under MultiWorkerMirroredStrategy
        # saving broadcasts values between workers, and a worker that skipped it would leave the
        # chief waiting for it.
        card = save_keras_model(model, self.dir / MODEL_FILE, self.dir, record=self.record.data)
        self.record.add_extra(
            "model", {"file": MODEL_FILE, "identity": card["identity"], "size_bytes": card["size_bytes"]}
        )
        self.say(f"Model saved: {self.dir / MODEL_FILE} ({card['size_bytes'] / 1e6:.1f} MB)")

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

    def _check_open(self) -> None:
        if self.life.ended:
            raise LabError(
                f"this run has ended ({self.life.status}): {self.dir}; start a new one with start_run "
                "(in a notebook, run it again from the top)"
            )

    # -- writers, backups and --resume ------------------------------------------------------

    def flush_event_writers(self) -> None:
        self.life.flush_writers()

    @property
    def backup_dir(self) -> Path:
        return self.dir / BACKUP_FOLDER

    def prepare_resume(self) -> None:
        """Find the last saved epoch, and drop what the dead process logged after saving it.

        An epoch is saved only after its logs are flushed, so events newer than the backup belong
        to the epochs that are about to run again (every one since the last save): dropping them
        keeps every step list free of duplicates, and keeping the rest leaves no gaps. The backup
        was verified before the run was reopened; it is verified again here, just before Keras
        loads it, since a notebook may leave any time between the two (a refusal now ends the run
        `failed`, saying why)."""
        from labkit.tblogs import drop_events_after

        backup = verified_backup(self.dir, self.plan.epochs, self.record.data)
        if backup.warning:
            fresh = fresh_start_command(self.record.data)
            self.say(f"Warning: {backup.warning}; if the run looks wrong, start a new one: {fresh}")
        self.resumed_from_epoch = backup.epoch
        # Killed before its first epoch was saved: start again, in the same folder, without its events.
        cutoff = (self.backup_dir / METADATA).stat().st_mtime if backup.epoch else float("-inf")
        dropped = drop_events_after(self.dir, cutoff)
        self.record.data["resumes"][-1].update(from_epoch=self.resumed_from_epoch, events_dropped=dropped)
        self.record.data["epochs_completed"] = self.resumed_from_epoch
        self.record.save()
        done = self.resumed_from_epoch == self.plan.epochs  # killed after its last backup, before the end
        self.say(
            (
                f"All {self.plan.epochs} epochs were saved; finishing the run"
                if done
                else f"Resuming from epoch {self.resumed_from_epoch + 1} of {self.plan.epochs}"
            )
            + (f" ({dropped} event(s) logged after the last backup dropped)" if dropped else "")
        )

    def epoch_started(self) -> None:
        self._epoch_started = time.perf_counter()

    def epoch_ended(self, epoch: int, logs: dict | None) -> None:
        self.epoch_seconds.append(time.perf_counter() - self._epoch_started)
        self.record.epoch_done(epoch, logs)
        shown = ", ".join(f"{name} {float(value):.4f}" for name, value in (logs or {}).items())
        with open(self.dir / EPOCH_LOG, "a", encoding="utf-8") as log:
            log.write(f"epoch {epoch + 1}/{self.epochs} ({self.epoch_seconds[-1]:.1f} s): {shown}\n")


class KerasWriters:
    """The event writers of a Keras TensorBoard callback (it opens them lazily, one per split),
    flushed before each backup and closed with the run like the run's own writers."""

    def __init__(self, callback):
        self.callback = callback

    def _writers(self):
        return list(getattr(self.callback, "_writers", {}).values())

    def flush(self) -> None:
        for writer in self._writers():
            writer.flush()

    def close(self) -> None:
        for writer in self._writers():
            writer.close()
