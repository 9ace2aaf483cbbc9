"""A training session: everything around `model.fit` that every activity needs.

    with TrainingSession(__file__, args) as session:
        model = build_model(...)          # the lesson's code, in the activity script
        session.fit(model)
        session.evaluate(model)

Entering the session loads the data (a LabError here means nothing was written yet), seeds
every random generator, claims a fresh run folder and writes run.json. `fit` adds the TensorBoard,
HParams and run.json callbacks. Leaving the session marks the run finished, failed or, on Ctrl-C,
interrupted, after closing the event writers so that the logs stay readable.
"""

from __future__ import annotations

import signal
import sys
import time
from pathlib import Path

from labkit import LabError, data as lab_data
from labkit.runs import RunRecord, create_run_dir


def steps_per_epoch(args, n_train: int) -> int:
    """Gradient steps in one epoch: --steps-per-epoch if given, else one pass over `n_train`
    examples, capped in quick mode. Models trained outside Keras use it to match Keras's count."""
    if args.steps_per_epoch:
        return args.steps_per_epoch
    full_pass = -(-n_train // args.batch_size)
    if args.quick:
        from labkit.cli import QUICK_MAX_STEPS_PER_EPOCH
        return min(QUICK_MAX_STEPS_PER_EPOCH, full_pass)
    return full_pass


def activity_of(script_file: str) -> tuple[str, str]:
    """`.../lesson_1/exercise_a/train_mnist.py` -> ("lesson_1", "exercise_a")."""
    folder = Path(script_file).resolve().parent
    return folder.parent.name, folder.name


def tensorboard_command(logdir: Path) -> str:
    return f'tensorboard --logdir "{logdir}"'


class TrainingSession:
    def __init__(self, script_file: str, args, *, tag: str | None = None,
                 extra_hparams: dict | None = None, dataset: lab_data.Dataset | None = None,
                 quiet: bool = False, parent_dir: Path | None = None):
        self.lesson, self.activity = activity_of(script_file)
        self.args = args
        self.tag = tag
        self.extra_hparams = dict(extra_hparams or {})
        self.data = dataset
        self.quiet = quiet
        self.parent_dir = parent_dir  # None: <runs root>/<lesson>/<activity>
        self.run_dir: Path | None = None
        self.record: RunRecord | None = None
        self.history = None
        self.status: str | None = None
        self._tensorboard = None
        self.open_writers = []  # summary writers of our own callbacks, closed on Ctrl-C too

    # -- lifecycle -------------------------------------------------------------------------

    def say(self, message: str) -> None:
        if not self.quiet:
            print(message, flush=True)

    def hparams(self) -> dict:
        args = self.args
        values = {"learning_rate": args.learning_rate, "batch_size": args.batch_size,
                  "epochs": args.epochs, "steps_per_epoch": args.steps_per_epoch}
        values.update(self.extra_hparams)
        values.update({"dataset": self.data.name, "seed": args.seed})
        return values

    def __enter__(self) -> "TrainingSession":
        if self.data is None:
            self.data = lab_data.load_dataset(self.args.dataset, quick=self.args.quick, announce=self.say)
        import keras  # tf.keras is Keras 3; importing it after the data keeps bad input fast
        import tensorflow as tf

        keras.utils.set_random_seed(self.args.seed)
        tf.config.experimental.enable_op_determinism()

        tag = "-".join(t for t in ("quick" if self.args.quick else None, self.tag) if t) or None
        parent = Path(self.parent_dir or self.args.runs_root / self.lesson / self.activity)
        self.run_dir = create_run_dir(parent, self.hparams(), tag=tag)
        self.record = RunRecord(self.run_dir, lesson=self.lesson, activity=self.activity,
                                hparams=self.hparams(), dataset=self.data.describe(),
                                quick=self.args.quick)
        sizes = self.data.sizes()
        self.say(f"Run folder: {self.run_dir}")
        self.say(f"Data: {self.data.name} ({sizes['train']} train / {sizes['validation']} validation"
                 f" / {sizes['test']} test) from {self.data.source}")
        self._started = time.monotonic()
        return self

    def __exit__(self, exc_type, exc, tb) -> bool:
        if exc_type is KeyboardInterrupt:
            previous = signal.signal(signal.SIGINT, signal.SIG_IGN)  # a second Ctrl-C must not cut the cleanup short
            try:
                self._close_event_writers()
                self.record.finish("interrupted")
                self.status = "interrupted"
            finally:
                signal.signal(signal.SIGINT, previous)
            self.say(f"\nInterrupted after {self.record.data['epochs_completed']} epoch(s). "
                     f"The logs so far are readable: {tensorboard_command(self.run_dir)}")
            return True
        if exc_type is not None:
            self._close_event_writers()
            self.record.add_extra("error", f"{exc_type.__name__}: {exc}")
            self.record.finish("failed")
            self.status = "failed"
            return False
        self.record.finish("finished")
        self.status = "finished"
        self.say(self.summary_line())
        self.say(f"See it in TensorBoard:  {tensorboard_command(self.run_dir)}")
        self.say(f"Compare with earlier runs:  {tensorboard_command(self.run_dir.parent)}")
        return False

    @property
    def exit_code(self) -> int:
        return 130 if self.status == "interrupted" else 0

    def summary_line(self) -> str:
        metrics = self.record.data["metrics"]
        parts = [f"{split} {name} {value:.4f}" for split in ("validation", "test")
                 for name, value in metrics[split].items() if name in ("accuracy", "loss")]
        data = self.data.name + (f", substitute for {self.data.substitute_for}" if self.data.substitute_for else "")
        return (f"Finished in {self.record.data['wall_time_s']:.1f} s on {data}: "
                + (", ".join(parts) or "no metrics recorded"))

    def _close_event_writers(self) -> None:
        keras_writers = getattr(self._tensorboard, "_writers", {}) if self._tensorboard else {}
        for writer in list(keras_writers.values()) + self.open_writers:
            try:
                writer.close()
            except Exception:  # a writer that cannot flush must not hide the interrupt itself
                pass

    # -- training --------------------------------------------------------------------------

    def callbacks(self) -> list:
        import keras
        from tensorboard.plugins.hparams import api as hp

        record = self.record

        class RecordEpochs(keras.callbacks.Callback):
            def on_epoch_end(self, epoch, logs=None):
                record.epoch_done(epoch, logs)

        # update_freq stays "epoch": with an integer, Keras 3 drops the epoch summaries of any epoch
        # whose step count is not a multiple of it (its record_if closure sees the last batch).
        self._tensorboard = keras.callbacks.TensorBoard(log_dir=str(self.run_dir), update_freq="epoch")
        hparams = {k: v for k, v in self.hparams().items() if v is not None}
        return [self._tensorboard, hp.KerasCallback(str(self.run_dir), hparams, trial_id=self.run_dir.name),
                RecordEpochs()]

    def dataset_pipeline(self, x, y, *, repeat: bool):
        """Shuffled mini-batches; repeated when an 'epoch' is a fixed number of steps."""
        import tensorflow as tf

        pipeline = tf.data.Dataset.from_tensor_slices((x, y)).shuffle(
            len(x), seed=self.args.seed, reshuffle_each_iteration=True)
        if repeat:
            pipeline = pipeline.repeat()
        return pipeline.batch(self.args.batch_size).prefetch(tf.data.AUTOTUNE)

    def fit(self, model, *, x_train=None, y_train=None, x_val=None, y_val=None,
            validate_every_steps=None, extra_callbacks=()):
        """Train `model` (already compiled) on the session's data, logging everything.

        `validate_every_steps=N` also scores a fixed validation sample every N gradient steps
        (tag `accuracy_by_step` in `<run>/validation`), for a curve finer than one point per epoch.
        """
        d = self.data
        x_train = d.x_train if x_train is None else x_train
        y_train = d.y_train if y_train is None else y_train
        x_val = d.x_val if x_val is None else x_val
        y_val = d.y_val if y_val is None else y_val
        # A plain run without --steps-per-epoch makes exact passes over the data; otherwise the
        # pipeline repeats and Keras counts the steps.
        exact_passes = self.args.steps_per_epoch is None and not self.args.quick
        steps = None if exact_passes else steps_per_epoch(self.args, len(x_train))
        step_validation = ([step_validation_callback(self, x_val, y_val, validate_every_steps)]
                           if validate_every_steps else [])
        self.history = model.fit(
            self.dataset_pipeline(x_train, y_train, repeat=not exact_passes),
            epochs=self.args.epochs,
            steps_per_epoch=steps,
            validation_data=(x_val, y_val),
            validation_batch_size=max(self.args.batch_size, 256),
            callbacks=self.callbacks() + step_validation + list(extra_callbacks),
            shuffle=False,  # the pipeline above already shuffles, reproducibly
            verbose=2 if not sys.stdout.isatty() else "auto",
        )
        return self.history

    def evaluate(self, model, *, x_test=None, y_test=None) -> dict:
        """Score on the held-out test set; logged to run.json and to `<run>/test` in TensorBoard."""
        x_test = self.data.x_test if x_test is None else x_test
        y_test = self.data.y_test if y_test is None else y_test
        metrics = model.evaluate(x_test, y_test, batch_size=256, verbose=0, return_dict=True)
        return self.record_test_metrics(metrics)

    def record_test_metrics(self, metrics: dict) -> dict:
        """Put final test metrics in run.json and in `<run>/test`, for any kind of model."""
        import tensorflow as tf

        self.record.set_test_metrics(metrics)
        step = max(self.record.data["epochs_completed"] - 1, 0)
        with tf.summary.create_file_writer(str(self.run_dir / "test")).as_default():
            for name, value in metrics.items():
                tf.summary.scalar(f"test_{name}", value, step=step)
        return metrics


def step_validation_callback(session, x_val, y_val, every, sample=500):
    """A Keras callback that scores the first `sample` validation images every `every` steps."""
    import keras
    import numpy as np
    import tensorflow as tf

    class StepValidation(keras.callbacks.Callback):
        def on_train_begin(self, logs=None):
            self.writer = tf.summary.create_file_writer(str(session.run_dir / "validation"))
            session.open_writers.append(self.writer)
            self.step = 0

        def on_train_batch_end(self, batch, logs=None):
            self.step += 1
            if self.step % every:
                return
            probabilities = self.model.predict_on_batch(x_val[:sample])
            accuracy = float(np.mean(np.argmax(probabilities, axis=1) == y_val[:sample]))
            with self.writer.as_default():
                tf.summary.scalar("accuracy_by_step", accuracy, step=self.step)

        def on_train_end(self, logs=None):
            self.writer.close()

    return StepValidation()


def run_main(train, parser_factory, argv=None) -> int:
    """The body of every script's main(): parse, train, turn LabErrors into exit code 2."""
    from labkit import cli

    parser = parser_factory()
    args = cli.parse(parser, argv)
    try:
        return train(args).exit_code
    except LabError as error:
        cli.fail(error, parser.prog)

