"""Run folders, run.json, the shared command line, bad input and Ctrl-C."""

import json
from datetime import datetime

import pytest

from labkit import LabError, runs
from labtest import (
    REPO,
    assert_interrupted_but_readable,
    files_under,
    interrupt_run,
    run_dirs,
    run_in_process,
    run_json,
    run_script,
)

EXERCISE_A = "lesson_1/exercise_a/train_mnist.py"
# Many tiny epochs on the small digits set: a run that cannot finish before a signal arrives.
ENDLESS_RUN = ("--dataset", "digits", "--epochs", "1000", "--steps-per-epoch", "3")

# ---------------------------------------------------------------------------------------------
# Run folders


def test_run_name_carries_hyperparameters_and_time():
    name = runs.run_name(
        {"learning_rate": 1e-4, "batch_size": 100, "epochs": 10, "dataset": "digits"},
        when=datetime(2026, 11, 23, 9, 5, 7),
    )
    assert name == "lr0.0001-bs100-ep10-digits-20261123-090507"


def test_two_runs_in_the_same_second_get_distinct_folders(tmp_path, monkeypatch):
    monkeypatch.setattr(runs, "run_name", lambda hparams, when=None: "same-name-20261123-090507")
    first = runs.create_run_dir(tmp_path / "lesson_1" / "exercise_a", {})
    second = runs.create_run_dir(tmp_path / "lesson_1" / "exercise_a", {})
    third = runs.create_run_dir(tmp_path / "lesson_1" / "exercise_a", {})
    assert len({first, second, third}) == 3
    assert [p.name for p in (first, second, third)] == [
        "same-name-20261123-090507",
        "same-name-20261123-090507-2",
        "same-name-20261123-090507-3",
    ]


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
    record = runs.RunRecord(
        tmp_path,
        lesson="lesson_1",
        activity="exercise_a",
        hparams={"learning_rate": 0.1},
        dataset={"name": "digits"},
        quick=True,
    )
    assert run_json(tmp_path)["status"] == "running"
    record.epoch_done(0, {"loss": 0.5, "accuracy": 0.8, "val_loss": 0.6, "val_accuracy": 0.75, "learning_rate": 0.1})
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
# Crashed runs: a process that died without a word


def test_a_running_run_whose_process_is_gone_reads_as_crashed(tmp_path):
    import subprocess
    import sys

    record = runs.RunRecord(
        tmp_path, lesson="lesson_1", activity="exercise_a", hparams={}, dataset={"name": "mnist_5k"}, quick=True
    )
    assert runs.read_run(tmp_path)["status"] == "running"  # this very process is alive
    assert record.data["process"]["pid"] > 0 and record.data["process"]["host"]
    # Borrow the identity of a real process that has since exited.
    gone = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    record.data["process"] = dict(record.data["process"], pid=int(gone.stdout), started=None)
    record.save()
    assert runs.read_run(tmp_path)["status"] == runs.CRASHED
    assert run_json(tmp_path)["status"] == "running", "read_run reports; it never rewrites the file"


def test_a_reused_pid_does_not_make_a_dead_run_look_alive(tmp_path):
    record = runs.RunRecord(tmp_path, lesson="l", activity="a", hparams={}, dataset={}, quick=True)
    record.data["process"]["started"] -= 3600  # "our" pid, but an hour-older process wrote it
    record.save()
    assert runs.read_run(tmp_path)["status"] == runs.CRASHED


def test_a_run_from_another_host_is_taken_at_its_word(tmp_path):
    record = runs.RunRecord(tmp_path, lesson="l", activity="a", hparams={}, dataset={}, quick=True)
    record.data["process"] = {"pid": 1, "host": "another-machine", "started": 0.0}
    record.save()
    assert runs.read_run(tmp_path)["status"] == "running"


# ---------------------------------------------------------------------------------------------
# The training plan: one rule for epochs, steps, repetition and the slice


def plan_of(quick=False, epochs=10, steps=None, batch_size=100):
    import argparse

    from labkit.plan import training_plan

    return training_plan(argparse.Namespace(quick=quick, epochs=epochs, steps_per_epoch=steps, batch_size=batch_size))


def test_a_refused_flag_is_refused_and_the_activity_keeps_its_own_default(runs_dir, monkeypatch):
    from labkit import cli

    monkeypatch.setenv("LAB_RUNS_DIR", str(runs_dir))
    reason = "every fit here takes all its windows in one step"
    parser = cli.build_parser("a probe", epochs=3, learning_rate=0.1, batch_size=1, not_here={"--batch-size": reason})
    assert cli.parse(parser, []).batch_size == 1  # what start_run checks and run.json records
    with pytest.raises(SystemExit) as refused:
        cli.parse(parser, ["--batch-size", "4"])
    assert refused.value.code == 2


def test_a_full_run_makes_exact_passes_unless_steps_are_fixed():
    plan = plan_of()
    assert (plan.epochs, plan.steps_per_epoch, plan.repeat, plan.slice) == (10, None, False, None)
    assert plan.steps_per_epoch_for(1257) == 13  # the last batch is partial
    fixed = plan_of(steps=200)
    assert (fixed.steps_per_epoch, fixed.repeat, fixed.steps_per_epoch_for(55000)) == (200, True, 200)


def test_quick_mode_caps_the_same_plan_and_slices_the_data():
    from labkit.plan import QUICK_SLICE

    plan = plan_of(quick=True, steps=200)
    assert (plan.epochs, plan.steps_per_epoch, plan.repeat) == (2, 25, True)
    assert plan.slice == QUICK_SLICE and plan.epochs * plan.steps_per_epoch_for(2000) == 50
    short = plan_of(quick=True, epochs=1, steps=7)
    assert (short.epochs, short.steps_per_epoch) == (1, 7)  # caps, never raises
    unfixed = plan_of(quick=True, batch_size=32)
    assert unfixed.repeat and unfixed.steps_per_epoch_for(1257) == 25


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
    "negative seed": (["--seed", "-1"], "--seed: must be between 0 and 4294967295"),
    "seed past 2**32": (["--seed", str(2**32)], "--seed: must be between 0 and 4294967295"),
    "text seed": (["--seed", "lucky"], "--seed: expected a whole number, got 'lucky'"),
    "zero steps per epoch": (["--steps-per-epoch", "0"], "--steps-per-epoch: must be at least 1"),
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


@pytest.mark.parametrize("case", list(BAD_INPUTS), ids=list(BAD_INPUTS))
def test_bad_input_exits_2_with_one_line_and_writes_nothing(case, runs_dir, tmp_path, earlier_run, capsys, monkeypatch):
    argv, expected = BAD_INPUTS[case]
    blocker = tmp_path / "blocker"
    blocker.write_text("file")
    argv = [arg.replace("{blocker}", str(blocker)) for arg in argv]
    with pytest.raises(SystemExit) as exit_info:
        run_in_process(EXERCISE_A, "--quick", *argv, runs_dir=runs_dir, monkeypatch=monkeypatch)
    assert exit_info.value.code == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1, lines
    assert lines[0].startswith("train_mnist.py: error: ") and expected in lines[0]
    assert {p: p.read_bytes() for p in files_under(runs_dir)} == earlier_run
    assert not (blocker.parent / "blocker" / "runs").exists()


@pytest.mark.parametrize(
    "argv, expected",
    [
        (["--quick", "--batch-size", "100000"], "larger than the 2,000 training images of the quick slice of mnist_5k"),
        (["--batch-size", "4001"], "larger than the 4,000 training images of mnist_5k; use at most 4000"),
    ],
    ids=["quick slice", "whole set"],
)
def test_a_batch_larger_than_the_data_exits_2_before_anything_is_written(
    argv, expected, runs_dir, earlier_run, capsys, monkeypatch
):
    with pytest.raises(SystemExit) as exit_info:
        run_in_process(EXERCISE_A, "--dataset", "mnist_5k", *argv, runs_dir=runs_dir, monkeypatch=monkeypatch)
    assert exit_info.value.code == 2
    (line,) = capsys.readouterr().err.strip().splitlines()
    assert line.startswith("train_mnist.py: error: --batch-size ") and expected in line, line
    assert {p: p.read_bytes() for p in files_under(runs_dir)} == earlier_run


@pytest.mark.slow
def test_a_bad_flag_exits_2_at_once_without_loading_tensorflow(runs_dir):
    """The subprocess smoke test of the matrix above: a real interpreter, the real script."""
    probe = (
        "import runpy, sys\n"
        f"sys.argv = [{EXERCISE_A!r}, '--seed', '-1']\n"
        "try:\n    runpy.run_path(sys.argv[0], run_name='__main__')\n"
        "except SystemExit as done:\n"
        "    print('exit', done.code, 'tensorflow' in sys.modules, 'keras' in sys.modules)\n"
    )
    import subprocess
    import sys

    from labtest import lab_env

    checked = subprocess.run(
        [sys.executable, "-c", probe], cwd=REPO, env=lab_env(runs_dir), capture_output=True, text=True, timeout=60
    )
    assert checked.stdout.strip() == "exit 2 False False", checked.stdout + checked.stderr
    result = run_script(EXERCISE_A, "--seed", "-1", runs_dir=runs_dir)
    assert result.returncode == 2 and result.stdout == ""
    (line,) = result.stderr.strip().splitlines()
    assert line == "train_mnist.py: error: argument --seed: must be between 0 and 4294967295 (2**32 - 1), got -1"
    assert files_under(runs_dir) == []


@pytest.mark.slow
def test_explicit_dataset_that_is_missing_exits_2_and_says_how_to_get_it(runs_dir, tmp_path):
    no_mnist = {"KERAS_HOME": str(tmp_path / "empty_keras_home"), "LAB_DATA_MIRROR": ""}
    result = run_script(EXERCISE_A, "--quick", "--dataset", "mnist", runs_dir=runs_dir, **no_mnist)
    assert result.returncode == 2
    (line,) = result.stderr.strip().splitlines()
    assert "dataset 'mnist' is not available offline" in line
    assert "scripts/fetch_data.py" in line and "LAB_DATA_MIRROR" in line
    assert files_under(runs_dir) == []


@pytest.mark.slow
def test_corrupt_cached_mnist_is_reported_kept_and_replaced_by_the_substitute(runs_dir, tmp_path, monkeypatch, capsys):
    cache = tmp_path / "keras_home" / "datasets"
    cache.mkdir(parents=True)
    (cache / "mnist.npz").write_bytes(b"PK\x03\x04 cut short by a dropped connection")
    argv = ("--quick", "--epochs", "1", "--steps-per-epoch", "2")
    no_mirror = {"KERAS_HOME": str(cache.parent), "LAB_DATA_MIRROR": ""}
    code = run_in_process(EXERCISE_A, *argv, runs_dir=runs_dir, monkeypatch=monkeypatch, **no_mirror)
    assert code == 0
    said = capsys.readouterr().out
    assert "mnist.npz is not the real mnist.npz" in said and "labelled substitute" in said
    assert (cache / "mnist.npz").exists()
    (run,) = run_dirs(runs_dir)
    assert run_json(run)["dataset"]["substitute_for"] == "mnist"


@pytest.mark.slow
def test_same_seed_same_numbers(runs_dir, monkeypatch):
    argv = ("--quick", "--dataset", "digits", "--epochs", "1", "--steps-per-epoch", "5", "--seed", "7")
    for _ in range(2):
        assert run_in_process(EXERCISE_A, *argv, runs_dir=runs_dir, monkeypatch=monkeypatch) == 0
    first, second = (run_json(run) for run in run_dirs(runs_dir))
    assert first["run_name"] != second["run_name"]
    assert first["metrics"] == second["metrics"]
    assert first["metrics"]["test"]["accuracy"] > 0.2  # it did learn something, identically twice


# ---------------------------------------------------------------------------------------------
# Ctrl-C, a kill, a full disk: the logs stay readable and run.json tells the truth


@pytest.mark.slow
@pytest.mark.parametrize("signal_name, exit_code", [("SIGINT", 130), ("SIGTERM", 143)], ids=["ctrl-c", "kill"])
def test_ctrl_c_or_a_kill_leaves_readable_logs_and_marks_the_run_interrupted(signal_name, exit_code, runs_dir):
    import signal

    number = getattr(signal, signal_name)
    result = interrupt_run(EXERCISE_A, *ENDLESS_RUN, runs_dir=runs_dir, after_epochs=2, signal_number=number)
    (run,) = run_dirs(runs_dir)
    assert_interrupted_but_readable(result, run, after_epochs=2, exit_code=exit_code)


@pytest.mark.slow
def test_a_killed_run_is_reported_crashed_and_its_logs_read_back(runs_dir):
    import signal

    from labkit.tblogs import read_scalars, steps_of

    result = interrupt_run(
        EXERCISE_A,
        *ENDLESS_RUN,
        runs_dir=runs_dir,
        after_epochs=2,
        signal_number=signal.SIGKILL,
    )
    assert result.returncode == -signal.SIGKILL
    (run,) = run_dirs(runs_dir)
    assert run_json(run)["status"] == "running"  # what the dead process left on disk
    record = runs.read_run(run)
    assert record["status"] == runs.CRASHED
    steps = steps_of(read_scalars(run), "train", "epoch_loss")
    assert steps == list(range(len(steps))) and len(steps) >= 2


@pytest.fixture
def full_disk(tmp_path):
    """A 16 KB tmpfs: room for an earlier run and a new run's run.json, not for its training logs."""
    import subprocess

    mount_point = tmp_path / "tiny_disk"
    mount_point.mkdir()
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=16k", "tmpfs", str(mount_point)], capture_output=True, text=True
    )
    assert mounted.returncode == 0, (
        "this test mounts a 16 KB tmpfs and needs root (CI runs as root): " + mounted.stderr.strip()
    )
    yield mount_point
    subprocess.run(["umount", "-l", str(mount_point)], check=False)


@pytest.mark.slow
def test_a_full_disk_ends_the_run_with_one_line_and_a_failed_status(full_disk, runs_dir):
    earlier = full_disk / "runs" / "lesson_1" / "exercise_a" / "lr0.0001-earlier"
    earlier.mkdir(parents=True)
    (earlier / "run.json").write_text('{"status": "finished"}')
    result = run_script(EXERCISE_A, "--quick", "--logdir", str(full_disk / "runs"), runs_dir=runs_dir)
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    (line,) = result.stderr.strip().splitlines()
    assert line.startswith("train_mnist.py: error: cannot write ") and "No space left on device" in line
    (run,) = [found for found in run_dirs(full_disk / "runs") if found != earlier]
    assert str(run) in line
    record = runs.read_run(run)
    assert record["status"] == "failed" and "No space left" in record["extra"]["error"]
    assert (earlier / "run.json").read_text() == '{"status": "finished"}', "the earlier run on that disk is untouched"
