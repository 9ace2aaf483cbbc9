"""Lesson 1 activities, run for real in quick mode on real data."""

import signal
import subprocess
import sys
import time

import pytest

from labtest import (REPO, assert_epoch_curves, assert_finished_above, execute_notebook, lab_env,
                     notebook_has_image, notebook_text_outputs, only_run, run_json, run_script)

EXERCISE_A = "lesson_1/exercise_a/train_mnist.py"

pytestmark = pytest.mark.slow


def test_exercise_a_quick_run_learns_and_logs_every_epoch(runs_dir):
    result = run_script(EXERCISE_A, "--quick", runs_dir=runs_dir)
    assert result.returncode == 0, result.stderr
    run = only_run(runs_dir)
    assert run.parent == runs_dir / "lesson_1" / "exercise_a"
    assert_epoch_curves(run, epochs=2)
    # Chance is 10%; 50 Adam steps at lr 1e-4 reliably pass 75% on these digits.
    record = assert_finished_above(run, {"validation.accuracy": 0.75, "test.accuracy": 0.75})
    assert record["hparams"]["learning_rate"] == 1e-4
    assert record["hparams"]["steps_per_epoch"] == 25  # quick mode caps the 200-step epochs
    assert record["quick"] is True
    # The default run announces and records the substitute when MNIST is not on the machine.
    if record["dataset"]["name"] == "digits":
        assert record["dataset"]["substitute_for"] == "mnist"
        assert "labelled substitute" in result.stdout
    shifted = record["extra"]["edge_shift_accuracy"]
    assert list(shifted) == ["0", "2", "4", "6", "8", "10"]
    assert shifted["10"] < shifted["0"] - 0.3, "digits at the edge should be much harder"
    assert f'tensorboard --logdir "{run}"' in result.stdout


def test_exercise_a_writes_step_level_curve_and_edge_scalars(runs_dir):
    from labkit.tblogs import read_scalars, steps_of

    assert run_script(EXERCISE_A, "--quick", runs_dir=runs_dir).returncode == 0
    scalars = read_scalars(only_run(runs_dir))
    # A validation score every 20 of the 2 x 25 quick steps: global steps 20 and 40.
    assert steps_of(scalars, "validation", "accuracy_by_step") == [20, 40]
    assert steps_of(scalars, "edge_shift", "edge_shift_accuracy") == [0, 2, 4, 6, 8, 10]
    assert steps_of(scalars, "test", "test_accuracy") == [1]


def test_exercise_a_notebook_executes(runs_dir):
    notebook = execute_notebook("lesson_1/exercise_a/exercise_a.ipynb", runs_dir)
    text = notebook_text_outputs(notebook)
    assert "Edge test" in text
    assert notebook_has_image(notebook)
    record = run_json(only_run(runs_dir))
    assert record["status"] == "finished" and record["quick"] is True
