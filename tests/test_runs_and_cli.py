"""Run folders, run.json, the shared command line, bad input and Ctrl-C."""

import json
from datetime import datetime

import pytest

from labkit import LabError, runs
from labtest import (REPO, assert_interrupted_but_readable, files_under, interrupt_run, run_dirs,
                     run_json, run_script)

EXERCISE_A = "lesson_1/exercise_a/train_mnist.py"

# ---------------------------------------------------------------------------------------------
# Run folders


def test_run_name_carries_hyperparameters_and_time():
    name = runs.run_name({"learning_rate": 1e-4, "batch_size": 100, "epochs": 10, "dataset": "digits"},
                         when=datetime(2026, 11, 23, 9, 5, 7))
    assert name == "lr0.0001-bs100-ep10-digits-20261123-090507"


def test_two_runs_in_the_same_second_get_distinct_folders(tmp_path, monkeypatch):
    monkeypatch.setattr(runs, "run_name", lambda hparams, when=None: "same-name-20261123-090507")
    first = runs.create_run_dir(tmp_path / "lesson_1" / "exercise_a", {})
    second = runs.create_run_dir(tmp_path / "lesson_1" / "exercise_a", {})
    third = runs.create_run_dir(tmp_path / "lesson_1" / "exercise_a", {})
    assert len({first, second, third}) == 3
    assert [p.name for p in (first, second, third)] == [
        "same-name-20261123-090507", "same-name-20261123-090507-2", "same-name-20261123-090507-3"]


def test_an_existing_run_folder_is_never_reused(tmp_path):
    first = runs.create_run_dir(tmp_path / "lesson_1" / "exercise_a", {"epochs": 1})
    (first / "marker").write_text("earlier run")
    second = runs.create_run_dir(tmp_path / "lesson_1" / "exercise_a", {"epochs": 1})
    assert second != first and not (second / "marker").exists()
    assert (first / "marker").read_text() == "earlier run"


def test_runs_root_precedence(tmp_path, monkeypatch):
    monkeypatch.setenv(runs.RUNS_DIR_ENV, str(tmp_path / "from_env"))
    assert runs.runs_root(tmp_path / "from_flag") == (tmp_path / "from_flag").resolve()
    assert runs.runs_root(None) == (tmp_path / "from_env").resolve()
    monkeypatch.delenv(runs.RUNS_DIR_ENV)
    assert runs.runs_root(None) == REPO / "runs"


def test_logdir_beneath_a_file_is_rejected(tmp_path):
    blocker = tmp_path / "notes.txt"
    blocker.write_text("a file, not a folder")
    with pytest.raises(LabError, match="is a file, not a folder"):
        runs.check_writable(blocker / "runs")


def test_run_record_is_valid_json_at_every_stage(tmp_path):
    record = runs.RunRecord(tmp_path, lesson="lesson_1", activity="exercise_a",
                            hparams={"learning_rate": 0.1}, dataset={"name": "digits"}, quick=True)
    assert run_json(tmp_path)["status"] == "running"
    record.epoch_done(0, {"loss": 0.5, "accuracy": 0.8, "val_loss": 0.6, "val_accuracy": 0.75,
                          "learning_rate": 0.1})
    saved = run_json(tmp_path)
    assert saved["epochs_completed"] == 1
    assert saved["metrics"]["train"] == {"loss": 0.5, "accuracy": 0.8}
    assert saved["metrics"]["validation"] == {"loss": 0.6, "accuracy": 0.75}
    record.finish("finished")
    saved = run_json(tmp_path)
    assert saved["status"] == "finished" and saved["finished_at"]
    assert saved["versions"]["tensorflow"] and saved["versions"]["python"]
    assert not list(tmp_path.glob("*.tmp")), "atomic writes leave no temporary file behind"


# ---------------------------------------------------------------------------------------------
# Bad input: one line on stderr, exit code 2, nothing written, earlier runs untouched.

BAD_INPUTS = {
    "zero epochs": (["--epochs", "0"], "--epochs: must be at least 1"),
    "negative epochs": (["--epochs", "-3"], "--epochs: must be at least 1"),
    "text epochs": (["--epochs", "ten"], "--epochs: expected a whole number, got 'ten'"),
    "zero learning rate": (["--learning-rate", "0"], "--learning-rate: must be a finite number above 0"),
    "negative learning rate": (["--learning-rate", "-0.1"], "--learning-rate: must be a finite number above 0"),
    "NaN learning rate": (["--learning-rate", "nan"], "--learning-rate: must be a finite number above 0"),
    "text learning rate": (["--learning-rate", "fast"], "--learning-rate: expected a number, got 'fast'"),
    "zero batch size": (["--batch-size", "0"], "--batch-size: must be at least 1"),
    "unknown dataset": (["--dataset", "cifar10"], "argument --dataset: invalid choice: 'cifar10'"),
    "logdir under a file": (["--logdir", "{blocker}/runs"], "is a file, not a folder"),
}


@pytest.fixture
def earlier_run(runs_dir):
    """A finished-looking earlier run whose bytes must survive any bad invocation."""
    run = runs_dir / "lesson_1" / "exercise_a" / "lr0.0001-earlier"
    run.mkdir(parents=True)
    (run / "run.json").write_text(json.dumps({"status": "finished"}))
    (run / "events.out.tfevents.0.v2").write_bytes(b"\x00" * 64)
    return {p: p.read_bytes() for p in files_under(runs_dir)}


@pytest.mark.slow
@pytest.mark.parametrize("case", list(BAD_INPUTS), ids=list(BAD_INPUTS))
def test_bad_input_exits_2_with_one_line_and_writes_nothing(case, runs_dir, tmp_path, earlier_run):
    argv, expected = BAD_INPUTS[case]
    blocker = tmp_path / "blocker"
    blocker.write_text("file")
    argv = [arg.replace("{blocker}", str(blocker)) for arg in argv]
    result = run_script(EXERCISE_A, "--quick", *argv, runs_dir=runs_dir)
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("train_mnist.py: error: ") and expected in lines[0]
    assert "Traceback" not in result.stdout + result.stderr
    assert {p: p.read_bytes() for p in files_under(runs_dir)} == earlier_run
    assert not (blocker.parent / "blocker" / "runs").exists()


@pytest.mark.slow
def test_explicit_dataset_that_is_missing_exits_2_and_says_how_to_get_it(runs_dir, tmp_path):
    result = run_script(EXERCISE_A, "--quick", "--dataset", "mnist", runs_dir=runs_dir,
                        KERAS_HOME=str(tmp_path / "empty_keras_home"))
    assert result.returncode == 2
    (line,) = result.stderr.strip().splitlines()
    assert "dataset 'mnist' is not available offline" in line
    assert "scripts/fetch_data.py" in line and "LAB_DATA_MIRROR" in line
    assert files_under(runs_dir) == []


@pytest.mark.slow
def test_corrupt_cached_mnist_is_reported_kept_and_replaced_by_the_substitute(runs_dir, tmp_path):
    cache = tmp_path / "keras_home" / "datasets"
    cache.mkdir(parents=True)
    (cache / "mnist.npz").write_bytes(b"PK\x03\x04 cut short by a dropped connection")
    result = run_script(EXERCISE_A, "--quick", runs_dir=runs_dir, KERAS_HOME=str(cache.parent))
    assert result.returncode == 0, result.stderr
    assert "mnist.npz is not the real mnist.npz" in result.stdout
    assert "labelled substitute" in result.stdout
    assert (cache / "mnist.npz").exists()
    (run,) = run_dirs(runs_dir)
    assert run_json(run)["dataset"]["substitute_for"] == "mnist"


@pytest.mark.slow
def test_same_seed_same_numbers(runs_dir):
    for _ in range(2):
        assert run_script(EXERCISE_A, "--quick", "--seed", "7", runs_dir=runs_dir).returncode == 0
    first, second = (run_json(run) for run in run_dirs(runs_dir))
    assert first["run_name"] != second["run_name"]
    assert first["metrics"] == second["metrics"]


# ---------------------------------------------------------------------------------------------
# Ctrl-C


@pytest.mark.slow
def test_ctrl_c_leaves_readable_logs_and_marks_the_run_interrupted(runs_dir):
    # Many tiny epochs: the run cannot finish before the signal arrives.
    result = interrupt_run(EXERCISE_A, "--dataset", "digits", "--epochs", "1000",
                           "--steps-per-epoch", "3", runs_dir=runs_dir, after_epochs=2)
    (run,) = run_dirs(runs_dir)
    assert_interrupted_but_readable(result, run, after_epochs=2)
