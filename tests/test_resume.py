"""`--resume RUN_DIR`: a killed run continues in its own folder, and nothing else can be resumed.

The central test kills a real training process with SIGKILL (no cleanup, no final run.json),
resumes it with the real command line, and checks the result as TensorBoard would read it.
"""

import hashlib
import json
import signal

import pytest

from labtest import interrupt_run, only_run, run_in_process, run_json, run_script

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
def killed_then_resumed(tmp_path_factory):
    runs_dir = tmp_path_factory.mktemp("resume")
    killed = interrupt_run(SCRIPT, *LONG_RUN, runs_dir=runs_dir, after_epochs=3, signal_number=signal.SIGKILL)
    run = only_run(runs_dir)
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
    # run.json counts an epoch just before the backup saves it: a kill in between leaves one less saved.
    saved_epoch = before["backup"]["epoch"]
    assert saved_epoch in (before["run_json"]["epochs_completed"], before["run_json"]["epochs_completed"] - 1)
    assert saved_epoch >= 2

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
