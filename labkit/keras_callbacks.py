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


class FlushThenBackup(keras.callbacks.BackupAndRestore):
    """Keras's BackupAndRestore in `<run>/backup`, flushing every event writer first, writing
    each backup whole, with a manifest that a resume checks it against (labkit.backups). It comes
    last among the callbacks, so that everything an epoch logged is on disk before the epoch
    counts as saved: a run killed in between repeats that epoch, never skips it."""

    def __init__(self, run, backup_dir: str):
        super().__init__(backup_dir)
        self.run = run
        self._on_disk: backups.BackupState | None = None  # what the folder holds, once known
        self.seconds: list[float] = []  # each backup's flush and write: run.json reports their cost

    def on_epoch_end(self, epoch, logs=None):
        started = time.perf_counter()
        self.run.flush_event_writers()
        super().on_epoch_end(epoch, logs)
        self.seconds.append(time.perf_counter() - started)

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
