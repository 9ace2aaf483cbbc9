"""Scale-out with tf.distribute: Lesson 1's quick run on two logical CPU replicas and on two
localhost workers, checked against the single-device run; a dying worker; bad flags."""

from __future__ import annotations

import os
import queue
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from labkit.instructor import workers
from labtest import (
    REPO,
    assert_epoch_curves,
    assert_finished_above,
    assert_refused,
    lab_env,
    only_run,
    run_json,
    run_script,
)

EXERCISE_A = "lesson_1/exercise_a/train_mnist.py"
LAB = REPO / "scripts" / "lab.py"
MIRRORED = ("--quick", "--distribute", "mirrored", "--cpu-replicas", "2")
# Every split of the same global batch averages the same per-example gradients over the same
# batches, so the losses match the single-device run up to the order of float sums. Measured on
# mnist_5k's quick slice (seed 42, global batch 100), epoch train losses, validation and test loss:
# two CPU replicas and two workers both differ from one device by at most 6e-8. The same run on
# the same batches in another shuffled order (what distributed training did before the session
# fixed the order) differed by 5e-2, and a split that loses half the global batch (one device on
# batches of 50) by 1.4e-1.
LOSS_TOLERANCE = 1e-3

pytestmark = pytest.mark.slow


def losses(run: Path) -> list[float]:
    """Training loss after each epoch, then validation and test loss, from run.json and TensorBoard."""
    from labkit.tblogs import read_scalars

    scalars = read_scalars(run)
    train = scalars[(scalars.split == "train") & (scalars.tag == "epoch_loss")].sort_values("step").value
    record = run_json(run)
    return [*map(float, train), record["metrics"]["validation"]["loss"], record["metrics"]["test"]["loss"]]


def assert_lesson_1_artefacts(run: Path) -> dict:
    """What test_lesson_1 asserts of the single-device quick run, for a distributed one."""
    from labkit.tblogs import read_scalars, steps_of

    assert run.parent.parent.name == "lesson_1" and run.parent.name == "exercise_a"
    assert_epoch_curves(run, epochs=2)
    # Chance is 10%; an untrained network scores about that, 50 Adam steps pass 70%.
    record = assert_finished_above(run, {"validation.accuracy": 0.7, "test.accuracy": 0.7})
    scalars = read_scalars(run)
    assert steps_of(scalars, "validation", "accuracy_by_step") == [20, 40]
    assert steps_of(scalars, "edge_shift", "edge_shift_accuracy") == [0, 2, 4, 6, 8, 10]
    assert steps_of(scalars, "test", "test_accuracy") == [1]
    # predict() gathers every replica's share of the test set: in the wrong order, the unshifted
    # edge test would no longer score exactly what evaluate() scored on the same digits.
    assert record["extra"]["edge_shift_accuracy"]["0"] == pytest.approx(record["metrics"]["test"]["accuracy"])
    assert (run / "model.keras").is_file()
    return record


@pytest.fixture(scope="module")
def single(quick_run):
    """The single-device quick run (shared with test_lesson_1 when both run in one session)."""
    finished = quick_run(EXERCISE_A, "--quick")
    assert finished.result.returncode == 0, finished.result.stderr
    return only_run(finished.runs_dir)


@pytest.fixture(scope="module")
def mirrored(tmp_path_factory):
    root = tmp_path_factory.mktemp("mirrored") / "runs"
    root.mkdir()
    result = run_script(EXERCISE_A, *MIRRORED, runs_dir=root)
    assert result.returncode == 0, result.stderr
    return result, only_run(root)


@pytest.fixture(scope="module")
def two_workers(tmp_path_factory):
    """`lab.py workers 2` on the quick run, with a private TMPDIR to see what is left behind."""
    base = tmp_path_factory.mktemp("workers")
    root, tmp = base / "runs", base / "tmp"
    root.mkdir()
    tmp.mkdir()
    result = subprocess.run(
        [sys.executable, str(LAB), "workers", "2", "--", "python", EXERCISE_A, "--quick"],
        cwd=REPO,
        env=lab_env(root, TMPDIR=str(tmp)),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return result, root, tmp


def test_two_cpu_replicas_split_the_global_batch(mirrored):
    result, run = mirrored
    record = assert_lesson_1_artefacts(run)
    distribution = record["extra"]["distribution"]
    assert distribution["strategy"] == "MirroredStrategy"
    assert (distribution["replicas"], distribution["cpu_replicas"], distribution["workers"]) == (2, 2, 1)
    assert (distribution["global_batch"], distribution["per_replica_batch"]) == (100, 50)
    assert [d.rsplit("/", 1)[-1] for d in distribution["devices"]] == ["device:CPU:0", "device:CPU:1"]
    assert distribution["chief"] is True and distribution["task"] is None
    assert record["hparams"]["batch_size"] == 100  # the flag stays the global batch
    lines = result.stdout.splitlines()
    (said,) = [n for n, line in enumerate(lines) if line.startswith("Distribution: ")]  # said once, as the run starts
    assert lines[said].startswith("Distribution: MirroredStrategy over 2 device(s)")
    assert lines[said].endswith("global batch 100 = 2 x 50 per replica")
    assert lines[said + 1].startswith("Note: 2 logical CPU devices:") and "not faster" in lines[said + 1]
    assert lines[said + 2].startswith("Run folder: ")


def test_lesson_4_retrains_the_mirrored_run_on_two_cpu_replicas(mirrored, runs_dir):
    """A model trained on two replicas, saved by the chief, loaded and retrained on two replicas."""
    from labkit.tblogs import read_scalars, steps_of

    baseline = str(mirrored[1])
    argv = ("--quick", "--epochs", "1", "--baseline", baseline, *MIRRORED[1:])
    result = run_script("lesson_4/retrain/train_mnist.py", *argv, runs_dir=runs_dir)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-3000:]
    run = only_run(runs_dir)
    record = assert_finished_above(run, {})
    distribution = record["extra"]["distribution"]
    assert (distribution["replicas"], distribution["global_batch"], distribution["per_replica_batch"]) == (2, 100, 50)
    assert steps_of(read_scalars(run), "train", "epoch_loss") == [0]


def test_two_localhost_workers_train_one_run(two_workers):
    result, root, tmp = two_workers
    run = only_run(root)  # exactly one run folder: worker 1 wrote into a temporary one
    assert [p.name for p in (root / "lesson_1" / "exercise_a").iterdir()] == [run.name]
    record = assert_lesson_1_artefacts(run)
    distribution = record["extra"]["distribution"]
    assert distribution["strategy"] == "MultiWorkerMirroredStrategy"
    assert (distribution["replicas"], distribution["workers"]) == (2, 2)
    assert (distribution["global_batch"], distribution["per_replica_batch"]) == (100, 50)
    assert (distribution["task"], distribution["chief"]) == ("worker:0", True)
    assert len(distribution["cluster"]) == 2 and all(a.startswith("localhost:") for a in distribution["cluster"])
    assert "--distribute" in record["command"] and "multiworker" in record["command"]
    assert list(tmp.iterdir()) == []  # neither the launcher's folder nor a worker's run is left
    out = result.stdout.splitlines()
    assert re.fullmatch(r"lab\.py workers: 2 worker\(s\) on localhost ports \d+, \d+; worker 0 is the chief.*", out[0])
    assert out[-1] == "lab.py workers: all 2 worker(s) finished"
    assert "is not the chief" not in result.stdout  # worker 1's own output is shown only on failure


def test_distributed_losses_match_the_single_device_run(single, mirrored, two_workers):
    expected = losses(single)
    for run in (mirrored[1], only_run(two_workers[1])):
        got = losses(run)
        gaps = [abs(a - b) for a, b in zip(got, expected, strict=True)]
        assert max(gaps) < LOSS_TOLERANCE, (run.name, expected, got)


def read_lines(stream, into: queue.Queue) -> None:
    for line in stream:
        into.put(line)
    into.put(None)


def test_a_dying_worker_fails_the_job_within_a_bounded_time(tmp_path):
    root, tmp = tmp_path / "runs", tmp_path / "tmp"
    root.mkdir()
    tmp.mkdir()
    launcher = subprocess.Popen(
        [sys.executable, "-m", "labkit.instructor.workers", "2", "--", "python", EXERCISE_A, "--quick"],
        cwd=REPO,
        env=lab_env(root, TMPDIR=str(tmp)),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    lines: queue.Queue = queue.Queue()
    threading.Thread(target=read_lines, args=(launcher.stdout, lines), daemon=True).start()
    try:
        pids, said = {}, []
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline:
            line = lines.get(timeout=max(deadline - time.monotonic(), 0.1))
            assert line is not None, ("the job ended before training started", said, launcher.stderr.read())
            said.append(line)
            if found := re.match(r"lab\.py workers: worker (\d) pid (\d+)$", line.strip()):
                pids[int(found[1])] = int(found[2])
            if line.startswith("Epoch 1/"):  # the chief's first epoch: every worker is in the job
                break
        else:
            raise AssertionError(f"training never started: {said}")
        signal_sent = time.monotonic()
        os.kill(pids[1], signal.SIGKILL)
        launcher.wait(timeout=60)
        took = time.monotonic() - signal_sent
    finally:
        if launcher.poll() is None:
            launcher.kill()
    stderr = launcher.stderr.read()
    # Noticing takes a poll (0.1 s); the survivor gets 5 s after SIGTERM before SIGKILL.
    assert took < 10, took
    assert launcher.returncode == 1
    final = stderr.strip().splitlines()[-1]
    expected = f"lab.py workers: error: worker 1 (pid {pids[1]}) was killed by SIGKILL; stopped the other worker(s)"
    assert final == expected
    for pid in pids.values():  # no worker outlives the job
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)
    assert list(tmp.iterdir()) == []
    # The chief was stopped mid-training: by SIGTERM ("interrupted"), by the broken collective
    # ("failed") or, stuck inside it, by SIGKILL (still "running" on disk).
    assert run_json(only_run(root))["status"] in ("interrupted", "failed", "running")


@pytest.mark.parametrize(
    "argv, message",
    [
        (("--cpu-replicas", "2"), "--cpu-replicas splits the CPU for --distribute mirrored"),
        (("--distribute", "mirrored", "--cpu-replicas", "1"), "--cpu-replicas 1 is a single replica"),
        (
            ("--distribute", "mirrored", "--cpu-replicas", "3"),
            "--batch-size 100 is the global batch and must split evenly over the 3 replicas; "
            "use a multiple of 3 (say 99 or 102)",
        ),
        (("--distribute", "multiworker"), "--distribute multiworker needs TF_CONFIG"),
        (("--distribute", "mirrored", "--resume", "."), "--resume continues a run on a single device"),
        (("--distribute", "everywhere"), "invalid choice: 'everywhere'"),
    ],
)
def test_bad_distribution_flags_exit_2(argv, message, runs_dir, capsys, monkeypatch):
    monkeypatch.delenv("TF_CONFIG", raising=False)
    assert_refused(EXERCISE_A, *argv, message=message, runs_dir=runs_dir, capsys=capsys, monkeypatch=monkeypatch)


@pytest.mark.parametrize(
    "config, message",
    [
        ("{oops", "TF_CONFIG is not valid JSON"),
        ('{"cluster": {"worker": ["localhost:1"]}, "task": {"type": "worker", "index": 1}}', "task worker:1 is not in"),
        (
            '{"cluster": {"worker": ["a:1", "b:1", "c:1"]}, "task": {"type": "worker", "index": 0}}',
            "must split evenly over the 3 workers",
        ),
    ],
)
def test_bad_tf_config_exits_2(config, message, runs_dir, capsys, monkeypatch):
    monkeypatch.setenv("TF_CONFIG", config)
    argv = ("--distribute", "multiworker")
    assert_refused(EXERCISE_A, *argv, message=message, runs_dir=runs_dir, capsys=capsys, monkeypatch=monkeypatch)


@pytest.mark.parametrize(
    "argv, message",
    [
        ((), "give the number of workers and the activity command"),
        (("0", "--", "python", EXERCISE_A), "N must be from 1 to 16 workers, got 0"),
        (("two", "--", "python", EXERCISE_A), "N must be a whole number of workers, got 'two'"),
        (("2", "--"), "no activity command after the number of workers"),
        (("2", "--", "ls", "-l"), "'ls' is not a course training script"),
        (("2", "--", "python", "README.md"), "'README.md' is not a course training script"),
        (("2", "--", "python", EXERCISE_A, "--distribute", "mirrored"), "drop --distribute mirrored"),
    ],
)
def test_bad_workers_commands_exit_2(argv, message, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(REPO)
    monkeypatch.setattr("tempfile.tempdir", str(tmp_path))
    assert workers.main(list(argv)) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err.startswith("lab.py workers: error: ") and message in captured.err, captured.err
    assert len(captured.err.strip().splitlines()) == 1
    assert list(tmp_path.iterdir()) == []
