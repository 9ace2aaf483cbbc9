"""`--resume RUN_DIR`: a killed run continues in its own folder, and nothing else can be resumed.

The central test kills a real training process with SIGKILL (no cleanup, no final run.json),
resumes it with the real command line, and checks the result as TensorBoard would read it.
"""

import hashlib
import json
import os
import shutil
import signal
from pathlib import Path

import pytest

from labtest import REPO, interrupt_run, only_run, run_in_process, run_json, run_script

SCRIPT = "lesson_2/hello_keras/train_mnist.py"
# The digits in batches of 8: 158 steps an epoch, about half a second each, so a kill lands mid-run.
LONG_RUN = ("--dataset", "digits", "--epochs", "12", "--batch-size", "8")


def folder_fingerprint(folder):
    """Every file's path and content hash: equal before and after means nothing was touched."""
    return {
        p.relative_to(folder).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


@pytest.fixture(scope="module")
def killed_run(tmp_path_factory):
    """A real run killed with SIGKILL once its backup holds 3 epochs or more, left as it was: each
    test resumes a copy.

    The backup is written only when a save costs at most 2% of the training since the last one
    (labkit.keras_callbacks.BACKUP_SHARE): on these short epochs, the first after 2 s of training
    and then every few epochs, so run.json may count several epochs more than the backup holds.
    The kill waits for the backup, not for run.json."""

    def backup_holds_epoch_3(run):
        metadata = run / "backup" / "training_metadata.json"
        try:
            return json.loads(metadata.read_text())["epoch"] >= 3
        except (OSError, ValueError, KeyError, TypeError):  # not written yet, or mid-rename
            return False

    runs_dir = tmp_path_factory.mktemp("killed")
    killed = interrupt_run(
        SCRIPT, *LONG_RUN, runs_dir=runs_dir, after_epochs=3, signal_number=signal.SIGKILL, ready=backup_holds_epoch_3
    )
    return killed, only_run(runs_dir)


def copy_of(killed_run, runs_dir, name=None):
    """The killed run copied under `runs_dir` (file times kept: the resume compares them)."""
    original = killed_run[1]
    return Path(shutil.copytree(original, runs_dir / "lesson_2" / "hello_keras" / (name or original.name)))


@pytest.fixture(scope="module")
def killed_then_resumed(killed_run, tmp_path_factory):
    runs_dir = tmp_path_factory.mktemp("resume")
    run = copy_of(killed_run, runs_dir)
    killed = killed_run[0]
    before = {
        "returncode": killed.returncode,
        "run_json": run_json(run),
        "backup": json.loads((run / "backup" / "training_metadata.json").read_text()),
    }
    resumed = run_script(SCRIPT, "--resume", str(run), runs_dir=runs_dir)
    return runs_dir, run, before, resumed


@pytest.mark.slow
def test_a_killed_run_resumes_in_its_own_folder_without_duplicate_or_missing_steps(killed_then_resumed):
    from labkit.runs import read_run
    from labkit.tblogs import read_scalars

    runs_dir, run, before, resumed = killed_then_resumed
    assert before["returncode"] == -signal.SIGKILL
    assert before["run_json"]["status"] == "running"  # SIGKILL leaves no chance to write more
    # run.json counts every epoch; the backup only those it was due to save (2% of the training).
    saved_epoch = before["backup"]["epoch"]
    assert 3 <= saved_epoch <= before["run_json"]["epochs_completed"] < 12

    assert resumed.returncode == 0, resumed.stderr
    assert f"Resuming from epoch {saved_epoch + 1} of 12" in resumed.stdout
    assert only_run(runs_dir) == run, "a resume never starts a second folder"
    assert not (run / "backup").exists(), "the backup is removed once training is complete"

    scalars = read_scalars(run)
    for split in ("train", "validation"):
        for tag in ("epoch_loss", "epoch_accuracy"):
            steps = scalars[(scalars.split == split) & (scalars.tag == tag)].step.tolist()
            assert steps == list(range(12)), (split, tag, steps)
    assert scalars[scalars.tag == "test_accuracy"].step.tolist() == [11]

    record = read_run(run)
    assert record["status"] == "finished" and record["epochs_completed"] == 12
    (comeback,) = record["resumes"]
    assert comeback["previous_status"] == "crashed" and comeback["from_epoch"] == saved_epoch
    assert comeback["command"][-2:] == ["--resume", str(run)]
    assert record["metrics"]["test"]["accuracy"] > 0.8  # well above the 0.1 of guessing
    assert record["process"]["pid"] != before["run_json"]["process"]["pid"]


@pytest.mark.slow
def test_resuming_a_finished_run_is_refused_and_changes_nothing(killed_then_resumed, capsys, monkeypatch):
    runs_dir, run, _, _ = killed_then_resumed
    fingerprint = folder_fingerprint(runs_dir)
    with pytest.raises(SystemExit) as exit_info:
        run_in_process(SCRIPT, "--resume", str(run), runs_dir=runs_dir, monkeypatch=monkeypatch)
    assert exit_info.value.code == 2
    error = capsys.readouterr().err.strip()
    assert len(error.splitlines()) == 1 and "that run already finished; start a new run instead" in error
    assert folder_fingerprint(runs_dir) == fingerprint


def interrupted_run(folder, *, lesson="lesson_2", activity="hello_keras", status="interrupted", process=None):
    folder.mkdir(parents=True)
    record = {"lesson": lesson, "activity": activity, "status": status, "quick": True, "hparams": {}}
    if process:
        record["process"] = process
    (folder / "run.json").write_text(json.dumps(record))
    return folder


def refused(tmp_path, capsys, monkeypatch, *args, module=SCRIPT):
    fingerprint = folder_fingerprint(tmp_path)
    with pytest.raises(SystemExit) as exit_info:
        run_in_process(module, *args, runs_dir=tmp_path / "runs", monkeypatch=monkeypatch)
    error = capsys.readouterr().err.strip()
    assert exit_info.value.code == 2 and len(error.splitlines()) == 1, error
    assert folder_fingerprint(tmp_path) == fingerprint, "a refused --resume must not touch anything"
    return error


def test_resume_refuses_what_it_cannot_continue(tmp_path, capsys, monkeypatch):
    from labkit.runs import this_process

    assert "no such folder" in refused(tmp_path, capsys, monkeypatch, "--resume", str(tmp_path / "nowhere"))
    (tmp_path / "plain").mkdir()
    assert "not a run folder (it holds no run.json)" in refused(
        tmp_path, capsys, monkeypatch, "--resume", str(tmp_path / "plain")
    )
    other = interrupted_run(tmp_path / "other", lesson="lesson_1", activity="exercise_a")
    assert "that is a run of lesson_1/exercise_a, not of lesson_2/hello_keras" in refused(
        tmp_path, capsys, monkeypatch, "--resume", str(other)
    )
    alive = interrupted_run(tmp_path / "alive", status="running", process=this_process())
    assert "that run is still running (pid" in refused(tmp_path, capsys, monkeypatch, "--resume", str(alive))
    mine = interrupted_run(tmp_path / "mine")
    assert "--resume continues" in refused(tmp_path, capsys, monkeypatch, "--resume", str(mine), "--epochs", "3")
    assert "this command trains one run per optimizer" in refused(
        tmp_path, capsys, monkeypatch, "--resume", str(mine), module="lesson_2/anatomy/train_mnist.py"
    )


def test_dropping_events_after_a_time_keeps_earlier_steps_and_survives_a_torn_record(tmp_path):
    import time

    import tensorflow as tf

    from labkit.tblogs import drop_events_after, read_scalars

    writer = tf.summary.create_file_writer(str(tmp_path / "train"))
    with writer.as_default():
        for step in range(3):
            tf.summary.scalar("epoch_loss", 1.0 / (step + 1), step=step)
    writer.flush()
    time.sleep(0.05)
    cutoff = time.time()
    time.sleep(0.05)
    with writer.as_default():
        tf.summary.scalar("epoch_loss", 0.1, step=3)  # logged after the "backup": to be dropped
    writer.close()
    (event_file,) = (tmp_path / "train").glob("events.out.tfevents.*")
    with open(event_file, "ab") as handle:
        handle.write(b"\x10\x00\x00")  # the start of a record a kill cut short

    assert drop_events_after(tmp_path, cutoff) == 1
    assert read_scalars(tmp_path).step.tolist() == [0, 1, 2]
    assert drop_events_after(tmp_path, cutoff) == 0


def test_step_validation_of_a_resumed_run_counts_on_from_the_steps_already_taken(tmp_path):
    """A resumed Lesson 1 run logs `accuracy_by_step` after the steps its first process took."""
    import keras
    import numpy as np
    import tensorflow as tf

    from labkit.keras_callbacks import StepValidation
    from labkit.tblogs import read_scalars, steps_of

    class WritesUnderTmp:  # what the callback asks of its run
        distribution = None

        def open_writer(self, split):
            return tf.summary.create_file_writer(str(tmp_path / split))

    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3, activation="softmax")])
    model.compile("sgd", "sparse_categorical_crossentropy")
    x, y = np.random.default_rng(0).normal(size=(40, 4)).astype("float32"), np.arange(40) % 3
    (tmp_path / "run.json").write_text("{}")  # marks tmp_path as the run, so `validation` reads as its split
    callback = StepValidation(WritesUnderTmp(), x, y, every=5, first_step=100)
    model.fit(x, y, batch_size=4, epochs=1, verbose=0, callbacks=[callback])  # 10 steps
    assert steps_of(read_scalars(tmp_path), "validation", "accuracy_by_step") == [105, 110]


# -- a backup that cannot be trusted -------------------------------------------------------------


def files_and_times(folder):
    """Every file's content hash and modification time, and every folder: equal before and after
    means nothing was written, renamed or touched."""
    return {
        p.relative_to(folder).as_posix(): (hashlib.sha256(p.read_bytes()).hexdigest(), p.stat().st_mtime_ns)
        if p.is_file()
        else "folder"
        for p in sorted(folder.rglob("*"))
    }


def scramble_weights(backup):
    """4 KiB of random bytes in the middle of the weights file, its size unchanged: the HDF5
    structure still opens, and Keras loads NaN weights from it."""
    weights = backup / "latest.weights.h5"
    with open(weights, "r+b") as handle:
        handle.seek(weights.stat().st_size // 2)
        handle.write(os.urandom(4096))


def write_metadata(text):
    return lambda backup: (backup / "training_metadata.json").write_text(text)


CORRUPTIONS = {
    "random bytes in the weights": (scramble_weights, "latest.weights.h5 does not match its checksum"),
    "weights deleted": (
        lambda backup: (backup / "latest.weights.h5").unlink(),
        "training_metadata.json counts {saved} epoch(s) done, but latest.weights.h5 is missing",
    ),
    "metadata empty": (write_metadata(""), "training_metadata.json cannot be read: it is empty"),
    "metadata half-written": (
        write_metadata('{"epoch": 3, "ba'),
        "training_metadata.json cannot be read: it is not readable JSON",
    ),
    "metadata a list": (write_metadata("[3]"), "training_metadata.json is not a JSON object with an integer 'epoch'"),
    "epoch 99": (
        write_metadata('{"epoch": 99, "batch": 0}'),
        "training_metadata.json counts 99 epoch(s) done, outside the run's 1 to 12",
    ),
    "epoch -5": (
        write_metadata('{"epoch": -5, "batch": 0}'),
        "training_metadata.json counts -5 epoch(s) done, outside the run's 1 to 12",
    ),
    # The previous epoch with the newer weights is what a kill between the two renames leaves: accepted.
    "an epoch the backup never saved": (
        write_metadata('{"epoch": 1, "batch": 0}'),
        "training_metadata.json counts 1 epoch(s) done, but latest.weights.h5 was saved after epoch {saved}",
    ),
}


def refused_resume(run, capsys, monkeypatch):
    """Resume `run` as `python train_mnist.py --resume RUN` would; the one line it refused with."""
    with pytest.raises(SystemExit) as exit_info:
        run_in_process(SCRIPT, "--resume", str(run), runs_dir=run.parents[2], monkeypatch=monkeypatch)
    error = capsys.readouterr().err.strip()
    assert exit_info.value.code == 2 and len(error.splitlines()) == 1, error
    return error


@pytest.mark.slow
@pytest.mark.parametrize("corruption", CORRUPTIONS)
def test_a_damaged_backup_is_refused_before_anything_is_written(corruption, killed_run, tmp_path, capsys, monkeypatch):
    damage, problem = CORRUPTIONS[corruption]
    run = copy_of(killed_run, tmp_path / "runs")
    saved = json.loads((run / "backup" / "training_metadata.json").read_text())["epoch"]
    assert saved >= 3
    problem = problem.format(saved=saved)
    damage(run / "backup")
    before = files_and_times(tmp_path)

    error = refused_resume(run, capsys, monkeypatch)
    assert f"--resume {run}: its backup {run / 'backup'} cannot be trusted: {problem}" in error, error
    fresh = f"start a new run instead: python {REPO / SCRIPT} --dataset digits --epochs 12 --batch-size 8"
    assert error.endswith(fresh), error
    assert files_and_times(tmp_path) == before, "a refused resume writes nothing, run.json included"

    assert refused_resume(run, capsys, monkeypatch) == error, "a second try is refused the same way"
    assert files_and_times(tmp_path) == before


@pytest.mark.slow
def test_a_backup_from_before_checksums_resumes_with_a_warning(killed_run, tmp_path, capsys, monkeypatch):
    run = copy_of(killed_run, tmp_path / "runs")
    saved = json.loads((run / "backup" / "training_metadata.json").read_text())["epoch"]
    (run / "backup" / "manifest.json").unlink()
    run_in_process(SCRIPT, "--resume", str(run), runs_dir=tmp_path / "runs", monkeypatch=monkeypatch)
    said = capsys.readouterr().out
    assert "Warning: this backup predates checksums (it has no manifest.json)" in said
    assert f"Resuming from epoch {saved + 1} of 12" in said
    record = run_json(run)
    assert record["status"] == "finished" and record["metrics"]["test"]["accuracy"] > 0.8


@pytest.mark.slow
def test_a_run_killed_before_its_first_backup_starts_again_from_epoch_1(killed_run, tmp_path, capsys, monkeypatch):
    run = copy_of(killed_run, tmp_path / "runs")
    shutil.rmtree(run / "backup")
    run_in_process(SCRIPT, "--resume", str(run), runs_dir=tmp_path / "runs", monkeypatch=monkeypatch)
    said = capsys.readouterr().out
    assert "Resuming from epoch 1 of 12" in said and "Warning" not in said
    assert run_json(run)["status"] == "finished"


def test_the_backup_is_written_when_it_costs_at_most_2_percent_of_the_training_since_the_last(tmp_path, monkeypatch):
    """A real fit on a clock the test moves: each epoch trains 0.5 s, each save takes 0.05 s.
    The first save waits for 2 s of training (epoch 4); after it, a save of 0.05 s is due once
    0.05 <= 2% of (training + 0.05), after 2.45 s: every 5th epoch. run.json counts each one."""
    import keras
    import numpy as np

    from labkit import keras_callbacks
    from labkit.keras_callbacks import FlushThenBackup

    now = [0.0]
    monkeypatch.setattr(keras_callbacks.time, "perf_counter", lambda: now[0])

    class SlowWriters:  # the save's flush stands for the save's whole cost
        def flush_event_writers(self):
            now[0] += 0.05

    class Train(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            now[0] += 0.5

    saved_after = []

    class Watch(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            metadata = tmp_path / "backup" / "training_metadata.json"
            saved_after.append(json.loads(metadata.read_text())["epoch"] if metadata.exists() else 0)

    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3, activation="softmax")])
    model.compile("sgd", "sparse_categorical_crossentropy")
    backup = FlushThenBackup(SlowWriters(), str(tmp_path / "backup"))
    x, y = np.ones((8, 4), "float32"), np.arange(8) % 3
    model.fit(x, y, epochs=20, verbose=0, callbacks=[Train(), backup, Watch()])

    assert saved_after == [0] * 3 + [4] * 5 + [9] * 5 + [14] * 5 + [19] * 2
    assert backup.seconds == pytest.approx([0.05] * 4) and backup.skipped == 16
    every_epoch = FlushThenBackup(SlowWriters(), str(tmp_path / "every"), max_share=None)
    model.fit(x, y, epochs=3, verbose=0, callbacks=[Train(), every_epoch])
    assert len(every_epoch.seconds) == 3 and every_epoch.skipped == 0


class Killed(BaseException):
    """Stands for a SIGKILL: nothing after it runs."""


def test_a_kill_at_any_point_of_a_backup_leaves_one_that_verifies_and_skips_no_epoch(tmp_path, monkeypatch):
    """A real save of a small model, cut off before each of its renames in turn: whatever the cut
    leaves, the check accepts it, and the weights it vouches for are those of its epoch or of the
    epoch after (repeated, never skipped). A cut-off save followed by the next process's save
    verifies too."""
    import keras
    import numpy as np

    from labkit.backups import BackupState, state_on_disk, verify_backup
    from labkit.keras_callbacks import FlushThenBackup

    class NoWriters:  # what the callback asks of its run
        def flush_event_writers(self):
            pass

    x, y = np.random.default_rng(0).normal(size=(32, 4)).astype("float32"), np.arange(32) % 3

    def model():
        built = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3, activation="softmax")])
        built.compile("sgd", "sparse_categorical_crossentropy")
        return built

    def weights_after_each_epoch(epochs, backup, kill_at_rename=None, initial_epoch=0):
        """Train, backing up into `backup`; with kill_at_rename, stop before that os.replace."""
        trained, seen, renames = model(), [], []
        real_replace = os.replace

        def replace(source, target):
            renames.append(target)
            if len(renames) == kill_at_rename:
                raise Killed
            real_replace(source, target)

        class Remember(keras.callbacks.Callback):
            def on_epoch_end(self, epoch, logs=None):
                seen.append(trained.get_weights())

            def on_train_end(self, logs=None):
                raise Killed  # after the last backup, before Keras removes it

        monkeypatch.setattr(os, "replace", replace)
        try:
            trained.fit(
                x,
                y,
                epochs=epochs,
                initial_epoch=initial_epoch,
                verbose=0,
                callbacks=[Remember(), FlushThenBackup(NoWriters(), str(backup), max_share=None)],
            )
        except Killed:
            pass
        finally:
            monkeypatch.setattr(os, "replace", real_replace)
        return seen

    def loaded(backup):
        restored = model()
        restored.load_weights(backup / "latest.weights.h5")
        return restored.get_weights()

    def same(a, b):
        return all(np.array_equal(u, v) for u, v in zip(a, b, strict=True))

    # Each save renames the manifest, then the weights, then the metadata: the 4th to 6th renames
    # belong to the second epoch's save.
    for kill_at, expected_epoch, weights_of_epoch in ((4, 1, 1), (5, 1, 1), (6, 1, 2), (None, 2, 2)):
        backup = tmp_path / f"kill-at-{kill_at}"
        seen = weights_after_each_epoch(2, backup, kill_at)
        assert verify_backup(backup, epochs=2).epoch == expected_epoch, kill_at
        assert same(loaded(backup), seen[weights_of_epoch - 1]), kill_at

    # Between the renames, resumed, and cut off again right after its next manifest: the manifest
    # vouches for what the resume started from.
    mixed = tmp_path / "kill-at-6"
    saved = json.loads((mixed / "manifest.json").read_text())["saving"]
    assert saved["epoch"] == 2 and state_on_disk(mixed) == BackupState(1, saved["weights_sha256"])
    weights_after_each_epoch(3, mixed, kill_at_rename=2, initial_epoch=1)
    assert verify_backup(mixed, epochs=3).epoch == 1

    # The one state no kill can leave: older weights under a newer epoch, which would skip one.
    skipped = tmp_path / "kill-at-5"
    os.replace(skipped / "training_metadata.json.partial", skipped / "training_metadata.json")
    from labkit import LabError

    with pytest.raises(LabError, match=r"counts 2 epoch\(s\) done, but latest.weights.h5 was saved after epoch 1"):
        verify_backup(skipped, epochs=2)
