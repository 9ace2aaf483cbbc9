"""demo_runs/: the recorded runs every lesson's TensorBoard demo opens, and the command that
makes them (`python scripts/lab.py demo-runs`, labkit/instructor/demo_runs.py)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from labkit.instructor.demo_runs import DEMO_JSON, PLAN, SIZE_BUDGET_BYTES
from labkit.tblogs import read_scalars, steps_of
from labtest import REPO, lab_env, run_json

DEMO_RUNS = REPO / "demo_runs"
MODEL_SUFFIXES = (".keras", ".h5", ".card.json")


def demo(lesson: str) -> dict:
    return json.loads((DEMO_RUNS / lesson / DEMO_JSON).read_text())


def shipped_runs(lesson: str) -> dict[str, dict]:
    return {run: run_json(DEMO_RUNS / lesson / run) for run in demo(lesson)["runs"]}


def arguments_without_logdir(command: list[str]) -> list[str]:
    at = command.index("--logdir")
    return command[1:at] + command[at + 2 :]


def test_every_lesson_ships_full_length_runs_made_by_the_plan_within_5_mb():
    total = 0
    for lesson, steps in PLAN.items():
        summary = demo(lesson)
        assert summary["commands"] == [[step.script, *step.args] for step in steps]
        assert summary["quick"] is False and summary["runs"], summary
        shipped = {Path(step.script).name: list(step.args) for step in steps if step.shipped}
        for run, record in shipped_runs(lesson).items():
            assert record["status"] == "finished" and record["quick"] is False, (lesson, run)
            script = record["command"][0]
            assert script in shipped and arguments_without_logdir(record["command"]) == shipped[script], record[
                "command"
            ]
        # Every run folder on disk is listed, and nothing but runs and demo.json is there.
        on_disk = sorted(
            p.parent.relative_to(DEMO_RUNS / lesson).as_posix()
            for p in (DEMO_RUNS / lesson).rglob("run.json")
            if not any(p.parent.relative_to(DEMO_RUNS / lesson).is_relative_to(run) for run in summary["runs"])
        )
        assert on_disk == [], f"{lesson}: run folders not in demo.json: {on_disk}"
        files = [p for p in (DEMO_RUNS / lesson).rglob("*") if p.is_file()]
        assert not [p for p in files if p.name.endswith(MODEL_SUFFIXES)], "demo runs ship no model files"
        assert summary["size_bytes"] == sum(p.stat().st_size for p in files if p.name != DEMO_JSON)
        total += sum(p.stat().st_size for p in files)
    assert total < SIZE_BUDGET_BYTES, f"demo_runs/ weighs {total} bytes"


def test_the_mnist_demos_were_recorded_on_full_mnist():
    """What the class will train on: the 60,000 + 10,000 digits, not the offline subset."""
    for lesson in ("lesson_1", "lesson_2", "lesson_4"):
        for run, record in shipped_runs(lesson).items():
            dataset = record["dataset"]
            assert (dataset["name"], dataset["substitute_for"]) == ("mnist", None), (lesson, run, dataset)
            assert dataset["sizes"] == {"train": 55000, "validation": 5000, "test": 10000}, (lesson, run)


def test_lesson_2_demo_shows_sgd_behind_rmsprop_and_adam_at_one_learning_rate():
    by_optimizer = {record["hparams"]["optimizer"]: record for record in shipped_runs("lesson_2").values()}
    assert set(by_optimizer) == {"sgd", "rmsprop", "adam"}
    assert {record["hparams"]["learning_rate"] for record in by_optimizer.values()} == {0.01}
    accuracy = {name: record["metrics"]["validation"]["accuracy"] for name, record in by_optimizer.items()}
    # Recorded on full MNIST (seed 42): SGD 0.921, RMSprop 0.960, Adam 0.958 after 4,300 steps.
    assert accuracy["rmsprop"] >= 0.95 and accuracy["adam"] >= 0.95, accuracy
    assert accuracy["sgd"] <= min(accuracy["rmsprop"], accuracy["adam"]) - 0.03, accuracy
    scalars = read_scalars(DEMO_RUNS / "lesson_2")
    for run in demo("lesson_2")["runs"]:
        assert steps_of(scalars, "validation", "epoch_accuracy", run=run) == list(range(10)), run


def test_lab_py_demo_runs_replays_the_plan_and_replaces_a_lesson_only_as_a_whole(tmp_path):
    """The regenerate command itself, on Lesson 2's quick slice (seconds): run twice into the
    same folder, the second set replaces the first, with no model files and no staging left."""
    into = tmp_path / "demo"

    def regenerate():
        result = subprocess.run(
            [sys.executable, "scripts/lab.py", "demo-runs", "--lesson", "2", "--quick", "--into", str(into)],
            cwd=REPO,
            env=lab_env(tmp_path / "runs"),
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
        return json.loads((into / "lesson_2" / DEMO_JSON).read_text()), result.stdout

    first, _ = regenerate()
    second, said = regenerate()
    assert (
        first["quick"] is True
        and len(first["runs"]) == 3
        and all(run.startswith("anatomy/quick-") for run in first["runs"])
    )
    assert set(first["runs"]).isdisjoint(second["runs"]), "a new regeneration makes new runs"
    on_disk = sorted(p.parent.relative_to(into / "lesson_2").as_posix() for p in (into / "lesson_2").rglob("run.json"))
    assert on_disk == sorted(second["runs"]), "the first set was replaced, not mixed with the second"
    assert sorted(p.name for p in into.iterdir()) == ["lesson_2"], "no staging folder is left behind"
    assert not [p for p in into.rglob("*") if p.name.endswith(MODEL_SUFFIXES)]
    assert f"[demo-runs] lesson_2: 3 runs, {second['size_bytes'] / 1e6:.2f} MB" in said
    assert not (tmp_path / "runs").exists() or not any((tmp_path / "runs").rglob("run.json")), (
        "nothing in the runs root"
    )


def test_lab_py_demo_runs_refuses_to_record_mnist_demos_without_full_mnist(tmp_path):
    """No cache, no mirror: Lesson 2's demo would fall back to the subset, so it is not recorded."""
    into = tmp_path / "demo"
    environment = lab_env(tmp_path / "runs", LAB_DATA_MIRROR="", KERAS_HOME=str(tmp_path / "empty_keras_home"))
    result = subprocess.run(
        [sys.executable, "scripts/lab.py", "demo-runs", "--lesson", "2", "--into", str(into)],
        cwd=REPO,
        env=environment,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 2, result.stdout + result.stderr
    assert result.stderr.strip() == (
        "lab.py demo-runs: error: the demo runs of lesson_2 are recorded on full MNIST, which is not on this "
        "machine: run `python scripts/fetch_data.py` or point LAB_DATA_MIRROR at a mirror of it "
        "(--quick proves the commands on any data)"
    )
    assert not into.exists() and not (tmp_path / "runs").exists()


def test_lab_py_demo_runs_list_prints_the_plan():
    result = subprocess.run(
        [sys.executable, "scripts/lab.py", "demo-runs", "--list"], cwd=REPO, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0
    assert result.stdout.splitlines() == [
        "lesson_1: python lesson_1/activity_2/train_mnist.py --sweep",
        "lesson_2: python lesson_2/anatomy/train_mnist.py",
        "lesson_3: python lesson_3/tensorboard/train_mnist.py",
        "lesson_3: python lesson_3/tuning/train_keras_tuner.py --tuner random",
        "lesson_4: python lesson_1/exercise_a/train_mnist.py   (needed, not shipped)",
        "lesson_4: python lesson_4/retrain/train_mnist.py",
    ]


def test_lesson_3_demo_pairs_two_learning_rates_fills_every_dashboard_and_ten_tuning_trials():
    runs = shipped_runs("lesson_3")
    regression = {record["hparams"]["learning_rate"]: record for run, record in runs.items() if "/regression-" in run}
    assert set(regression) == {0.001, 0.05}
    # The seed's figure: the larger rate ends with the lower training loss after the same 30 epochs.
    assert regression[0.05]["metrics"]["train"]["loss"] < regression[0.001]["metrics"]["train"]["loss"] - 0.1
    (dashboards,) = [run for run in runs if "/dashboards-" in run]
    assert (
        runs[dashboards]["dataset"]["name"] == "fashion_mnist"
        and runs[dashboards]["metrics"]["test"]["accuracy"] >= 0.8
    )
    folder = DEMO_RUNS / "lesson_3" / dashboards
    for part in ("train", "validation", "graph", "weights", "images"):
        assert list((folder / part).glob("events.out.tfevents.*")), f"no {part} events in {folder}"
    assert {"projector_config.pbtxt", "sprite.png", "metadata.tsv"} <= {
        p.name for p in (folder / "embedding").iterdir()
    }
    (search,) = [run for run in runs if "/keras_tuner/" in run]
    trials = sorted(p.name for p in (DEMO_RUNS / "lesson_3" / search / "trials").iterdir())
    assert trials == [f"{i:02d}" for i in range(10)]
    scalars = read_scalars(DEMO_RUNS / "lesson_3" / search / "trials")
    assert sorted({run.split("/")[0] for run in scalars[scalars.tag == "epoch_loss"].run}) == trials
    # Better than predicting the training mean (validation MSE 0.607 on this split).
    assert runs[search]["metrics"]["validation"]["loss"] < 0.5


def test_lesson_4_demo_shows_the_edge_table_before_and_after_retraining():
    ((run, record),) = shipped_runs("lesson_4").items()
    table = record["extra"]["edge_shift_accuracy"]
    assert table["before"]["10"] <= 0.2 and table["after"]["10"] >= 0.85, table
    assert table["after"]["0"] >= table["before"]["0"] - 0.03, "retraining keeps centred digits"
    scalars = read_scalars(DEMO_RUNS / "lesson_4")
    for side in ("edge_before", "edge_after"):
        assert steps_of(scalars, side, "edge_shift_accuracy", run=run) == [0, 2, 4, 6, 8, 10]
        logged = scalars[(scalars.split == side) & (scalars.tag == "edge_shift_accuracy")]
        # run.json keeps 4 decimals: exact counts out of 10,000 test digits
        assert dict(zip(logged.step.astype(str), logged.value.round(4), strict=True)) == table[side.split("_")[1]]
