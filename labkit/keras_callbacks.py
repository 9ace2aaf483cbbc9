"""The Keras callbacks behind `run.callbacks()` (labkit.training): run.json after every epoch,
the HParams summary, a validation point every N steps, and the backup `--resume` restarts from."""

from __future__ import annotations

import os
import time
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf
from tensorboard.plugins.hparams import api as hp

from labkit import backups, sha256_of


class RecordEpochs(keras.callbacks.Callback):
    """Each epoch's metrics and wall time into run.json and epochs.log, as soon as it ends."""

    def __init__(self, run):
        super().__init__()
        self.run = run

    def on_train_begin(self, logs=None):
        if self.run.distribution:
            self.run.distribution.check_model(self.model)

    def on_epoch_begin(self, epoch, logs=None):
        self.run.epoch_started()

    def on_epoch_end(self, epoch, logs=None):
        self.run.epoch_ended(epoch, logs)


class HParamsOnce(hp.KerasCallback):
    """The run's hyperparameters for TensorBoard's HParams dashboard, one session per run folder."""

    def __init__(self, run):
        hparams = {name: value for name, value in run.hparams.items() if value is not None}
        super().__init__(str(run.dir), hparams, trial_id=run.dir.name)


class StepValidation(keras.callbacks.Callback):
    """Scores the first `sample` validation examples every `every` steps (tag `accuracy_by_step`
    in `<run>/validation`), for a curve finer than one point per epoch. Counts from `first_step`,
    the steps a resumed run had already taken."""

    def __init__(self, run, x_val, y_val, every: int, sample: int = 500, first_step: int = 0):
        super().__init__()
        self.run, self.every, self.first_step = run, every, first_step
        self.x_val, self.y_val = x_val[:sample], y_val[:sample]

    def on_train_begin(self, logs=None):
        self.writer = self.run.open_writer("validation")
        self.step = self.first_step

    def on_train_batch_end(self, batch, logs=None):
        self.step += 1
        if self.step % self.every:
            return
        if self.run.distribution:
            # predict_on_batch would run the whole sample on every replica and concatenate the
            # copies; a plain call reads the mirrored weights once, with no collective.
            probabilities = keras.ops.convert_to_numpy(self.model(self.x_val, training=False))
        else:
            probabilities = self.model.predict_on_batch(self.x_val)
        accuracy = float(np.mean(np.argmax(probabilities, axis=1) == self.y_val))
        with self.writer.as_default():
            tf.summary.scalar("accuracy_by_step", accuracy, step=self.step)

    def on_train_end(self, logs=None):
        self.writer.flush()


# Saving a backup costs a tiny model 25-50 ms, mostly Keras walking the model's attributes, so
# saving after every epoch of a fifth of a second spent 15% of the training on it. A save is
# written only once it costs at most this share of the training since the previous one: a killed
# run then repeats its last epoch plus at most 49 saves' worth of training (seconds on a small
# model; Lesson 1, whose 77 MB save takes 0.4 s, saves after every epoch or every other one).
BACKUP_SHARE = 0.02
# Before the first save no cost is known: a run whose first epochs end sooner writes its first
# backup after this much training, and a run shorter than it writes none.
FIRST_BACKUP_AFTER_S = 2.0


class FlushThenBackup(keras.callbacks.BackupAndRestore):
    """Keras's BackupAndRestore in `<run>/backup`, flushing every event writer first, writing
    each backup whole, with a manifest that a resume checks it against (labkit.backups). It comes
    last among the callbacks, so that everything an epoch logged is on disk before the epoch
    counts as saved: a run killed in between repeats that epoch, never skips it.

    An epoch's end is saved when the save is due under `max_share` (see BACKUP_SHARE); None saves
    after every epoch."""

    def __init__(self, run, backup_dir: str, max_share: float | None = BACKUP_SHARE):
        super().__init__(backup_dir)
        self.run = run
        self.max_share = max_share
        self._on_disk: backups.BackupState | None = None  # what the folder holds, once known
        self.seconds: list[float] = []  # each backup's flush and write: run.json reports their cost
        self.skipped = 0  # epoch ends left unsaved because a save was not yet due
        self._last_saved_at = time.perf_counter()

    def on_train_begin(self, logs=None):
        super().on_train_begin(logs)
        self._last_saved_at = time.perf_counter()

    def save_due(self) -> bool:
        if self.max_share is None:
            return True
        trained = time.perf_counter() - self._last_saved_at
        if not self.seconds:
            return trained >= FIRST_BACKUP_AFTER_S
        cost = self.seconds[-1]
        return cost <= self.max_share * (trained + cost)

    def on_epoch_end(self, epoch, logs=None):
        if not self.save_due():
            self.skipped += 1
            return
        started = time.perf_counter()
        self.run.flush_event_writers()
        super().on_epoch_end(epoch, logs)
        self._last_saved_at = time.perf_counter()
        self.seconds.append(self._last_saved_at - started)

    def _save_model(self):
        # Keras writes both files in place, so a kill mid-write leaves an empty metadata file or a
        # torn weights file, and the run can no longer resume. Write them beside and rename them
        # over: a rename is atomic, so each file is always whole. Weights first: a kill between
        # the two renames repeats one epoch, never skips one. The manifest goes in before either
        # rename and names the folder's state before and after them, so that every state a kill
        # can leave is one it vouches for, and its checksum is of the very file renamed in.
        if self._on_disk is None:  # a resumed run replaces the backup it started from
            self._on_disk = backups.state_on_disk(self.backup_dir)
        final = (self._weights_path, self._training_metadata_path)
        partial = (str(Path(final[0]).with_name("partial.weights.h5")), final[1] + ".partial")
        self._weights_path, self._training_metadata_path = partial
        try:
            super()._save_model()
        finally:
            self._weights_path, self._training_metadata_path = final
        saving = backups.BackupState(backups.read_epoch(Path(partial[1])), sha256_of(partial[0]))
        backups.write_manifest(self.backup_dir, saving, replacing=self._on_disk)
        for written, target in zip(partial, final, strict=True):
            os.replace(written, target)
        self._on_disk = saving
