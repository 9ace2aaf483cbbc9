"""Lesson 3, callbacks: the checkpoint, early stopping and the val/train ratio, checked on their artefacts.

Resuming (`--resume`), which every activity shares, has its own tests in test_resume.py; here a
killed run of this page is resumed once, to show the page's own callbacks survive it.
"""

import re
import signal

import numpy as np
import pytest

from labtest import (
    REPO,
    assert_epoch_curves,
    assert_refused,
    interrupt_run,
    notebook_text_outputs,
    only_run,
    run_json,
    run_script,
)

SCRIPT = "lesson_3/callbacks/train_with_callbacks.py"
NOTEBOOK = "lesson_3/callbacks/train_with_callbacks.ipynb"
LONG_RUN = ("--epochs", "40", "--patience", "40")  # no early stop: time for a kill to land mid-run
RATIO_LINE = re.compile(r"epoch (\d+): val/train loss ratio (\d+\.\d\d)")

slow = pytest.mark.slow


def untrained_floor(record) -> float:
    """The validation MSE of a model that always answers 0, which is where a fresh network starts."""
    from labkit.tabular import load_regression_data

    data = load_regression_data(record["dataset"]["name"], announce=lambda message: None)
    return float(np.mean(data.y_val.astype("float64") ** 2))


def assert_callbacks_kept_their_promises(run, record):
    check = record["extra"]["callbacks"]
    # The restored weights and the saved file score exactly the best loss the log recorded.
    assert check["restored_model_val_loss"] == pytest.approx(check["best_val_loss_logged"], rel=1e-5)
    assert check["checkpoint_val_loss"] == pytest.approx(check["best_val_loss_logged"], rel=1e-5)
    assert (run / "checkpoints" / "best.keras").is_file()
    assert not (run / "backup").exists(), "BackupAndRestore's state is removed when training completes"
    return check


def test_bad_patience_exits_2_with_one_line(runs_dir, capsys, monkeypatch):
    assert_refused(
        SCRIPT, "--patience", "0", message="--patience", runs_dir=runs_dir, capsys=capsys, monkeypatch=monkeypatch
    )


def test_the_ratio_callback_prints_and_remembers_val_over_train():
    from lesson_3.models import ValTrainRatio

    printed = []
    callback = ValTrainRatio(echo=printed.append)
    callback.on_epoch_end(0, {"loss": 0.5, "val_loss": 0.6})
    callback.on_epoch_end(1, {"loss": 0.4, "val_loss": 0.6})
    assert printed == ["epoch 1: val/train loss ratio 1.20", "epoch 2: val/train loss ratio 1.50"]
    assert callback.ratios == pytest.approx([1.2, 1.5])


@pytest.fixture(scope="module")
def finished(quick_notebook):
    """The page's quick run: its notebook, executed once through a Jupyter kernel."""
    return quick_notebook(NOTEBOOK)


@slow
def test_quick_run_saves_the_best_model_and_logs_the_ratio(finished):
    from labkit.tblogs import read_scalars, steps_of

    result, runs_dir = finished.result, finished.runs_dir
    run = only_run(runs_dir)
    assert run.parent == runs_dir / "lesson_3" / "callbacks" and run.name.startswith("quick-")
    assert_epoch_curves(run, epochs=2, tags=("epoch_loss", "epoch_rmse"))
    assert steps_of(read_scalars(run), "train", "val_train_loss_ratio") == [0, 1]
    record = run_json(run)
    assert record["status"] == "finished"
    assert record["hparams"]["patience"] == 10 and record["hparams"]["learning_rate"] == 0.05
    assert record["dataset"]["name"] in ("california_housing", "diabetes")
    if record["dataset"]["name"] == "diabetes":
        assert record["dataset"]["substitute_for"] == "california_housing"
        assert "data: California housing is not on this machine" in result.stdout
    check = assert_callbacks_kept_their_promises(run, record)
    assert check["epochs_run"] == 2 and check["best_epoch"] in (1, 2)
    # Two epochs of SGD already take the error well below a network that has learned nothing.
    assert record["metrics"]["validation"]["loss"] < 0.5 * untrained_floor(record)
    assert [epoch for epoch, _ in RATIO_LINE.findall(result.stdout)] == ["1", "2"]
    # The page defines its callback in plain sight, marked for the deep MLP page to reuse.
    assert "# @save\nclass ValTrainRatio(keras.callbacks.Callback):" in (REPO / SCRIPT).read_text()
    assert "Traceback" not in result.stderr


@slow
def test_notebook_shows_the_three_losses_agree(finished):
    text = notebook_text_outputs(finished.notebook)
    for key in ("best_val_loss_logged", "restored_model_val_loss", "checkpoint_val_loss"):
        assert key in text
    run = only_run(finished.runs_dir)
    assert_callbacks_kept_their_promises(run, run_json(run))


@slow
def test_a_killed_run_resumes_with_its_callbacks(runs_dir, no_housing, monkeypatch):
    """`--epochs 40 --patience 40` keeps all 40 short epochs, so that the kill lands mid-run. The resumed
    process continues in the same folder: every curve, the page's ratio included, has each epoch
    once, and the checkpoint and the restored weights still agree with the log."""
    from labkit.tblogs import read_scalars, steps_of

    for name, value in no_housing.items():  # the diabetes substitute: 40 epochs of 8 steps
        monkeypatch.setenv(name, value)
    # The first backup comes after 2 s of training (labkit.keras_callbacks): the kill waits for it.
    killed = interrupt_run(
        SCRIPT,
        *LONG_RUN,
        runs_dir=runs_dir,
        after_epochs=3,
        signal_number=signal.SIGKILL,
        ready=lambda run: (run / "backup" / "training_metadata.json").is_file(),
    )
    assert killed.returncode == -signal.SIGKILL
    run = only_run(runs_dir)
    assert run_json(run)["status"] == "running" and (run / "backup").is_dir()
    resumed = run_script(SCRIPT, "--resume", str(run), runs_dir=runs_dir)
    assert resumed.returncode == 0, resumed.stdout[-3000:] + resumed.stderr[-3000:]
    assert re.search(r"Resuming from epoch \d+ of 40", resumed.stdout), resumed.stdout[-3000:]
    assert only_run(runs_dir) == run, "a resume never starts a second folder"
    record = run_json(run)
    assert record["status"] == "finished" and record["epochs_completed"] == 40
    assert record["hparams"]["patience"] == 40 and len(record["resumes"]) == 1
    check = assert_callbacks_kept_their_promises(run, record)
    assert check["epochs_run"] == 40
    scalars = read_scalars(run)
    for split in ("train", "validation"):
        assert steps_of(scalars, split, "epoch_loss") == list(range(40)), split
    assert steps_of(scalars, "train", "val_train_loss_ratio") == list(range(40))


@slow
@pytest.mark.full
def test_full_run_stops_early_and_restores_the_best_epoch(runs_dir):
    """Up to 100 epochs with patience 10: measured on the diabetes substitute, training stops after
    epoch 43 with the best validation loss at epoch 33 (0.378, i.e. an RMSE of 61 score points)."""
    from labkit.tblogs import read_scalars, steps_of

    result = run_script(SCRIPT, runs_dir=runs_dir)
    assert result.returncode == 0, result.stderr
    run = only_run(runs_dir)
    record = run_json(run)
    check = assert_callbacks_kept_their_promises(run, record)
    assert check["epochs_run"] < 100, "early stopping should end the run before the 100-epoch cap"
    assert check["best_epoch"] == check["epochs_run"] - 10  # patience: ten epochs without a better one
    scalars = read_scalars(run)
    for split in ("train", "validation"):
        assert steps_of(scalars, split, "epoch_loss") == list(range(check["epochs_run"]))
    assert record["metrics"]["test"]["loss"] < 0.2 * untrained_floor(record)
    assert "Early stopping ended training after epoch" in result.stdout
