"""Lesson 4, save and restore: Lesson 1's trained network saved three ways, reloaded, compared."""

import json
import shutil
import subprocess
import sys
from types import SimpleNamespace

import pytest

from labtest import (
    REPO,
    assert_refused,
    execute_notebook,
    files_under,
    interrupt_run,
    lab_env,
    notebook_text_outputs,
    only_run,
    run_dirs,
    run_json,
    run_script,
)

SCRIPT = "lesson_4/save_restore/save_restore.py"
FORMATS = {"keras": "model.keras", "weights": "model.weights.h5", "savedmodel": "export"}
ROWS = ["keras", "weights", "savedmodel", "tfsmlayer"]

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def source_run(exercise_a_quick_run):
    """Lesson 1 Exercise A's quick run: the model this activity saves."""
    return exercise_a_quick_run


@pytest.fixture(scope="module")
def saved(source_run, tmp_path_factory):
    """One quick run of the script on that model, for every test below; the source run's files
    and their modification times are taken just before it."""
    before = {path: path.stat().st_mtime_ns for path in files_under(source_run)}
    root = tmp_path_factory.mktemp("save_restore") / "runs"
    root.mkdir()
    result = run_script(SCRIPT, "--run", str(source_run), "--quick", runs_dir=root)
    assert result.returncode == 0, result.stderr
    run = only_run(root)
    return SimpleNamespace(result=result, run=run, record=run_json(run), source=source_run, before=before, root=root)


def assert_saved_three_ways(run, source_run, record):
    """The three copies and their cards, each card naming the source run and these exact bytes."""
    from labkit.saved_models import fingerprint, read_card, size_on_disk

    source = run_json(source_run)
    assert (run / "export" / "saved_model.pb").is_file() and (run / "export" / "variables").is_dir()
    for kind, name in FORMATS.items():
        path = run / name
        card = read_card(path)
        assert card["saved_as"] == kind and card["file"] == name
        assert card["sha256"] == fingerprint(path) and card["size_bytes"] == size_on_disk(path) > 0
        assert card["identity"] == f"lesson_1/exercise_a/{source_run.name}#{card['sha256'][:12]}"
        assert card["run_dir"] == str(source_run.resolve()) and card["saved_by"] == str(run.resolve())
        assert (card["data"], card["metrics"], card["hparams"]) == (
            source["dataset"],
            source["metrics"],
            source["hparams"],
        )
        assert card["versions"]["keras"].startswith("3.") and card["versions"]["tensorflow"]
        assert card["model"]["parameters"] == 6_434_634  # Lesson 1's network
    rows = {row["format"]: row for row in record["extra"]["formats"]}
    assert list(rows) == ROWS
    for kind, name in FORMATS.items():
        assert rows[kind]["size_bytes"] == size_on_disk(run / name)
    return rows


def assert_predict_identically(rows, record):
    for name, row in rows.items():
        assert row["labels_identical"], name
        assert row["max_abs_diff"] < 1e-6 and row["load_s"] > 0, (name, row)
        assert row["accuracy"] == record["extra"]["source"]["original_accuracy"], name
    # The Keras reloads run the same weights through the same kernels: the very same bits.
    assert rows["keras"]["bit_identical"] and rows["weights"]["bit_identical"]
    assert rows["keras"]["max_abs_diff"] == rows["weights"]["max_abs_diff"] == 0.0


def test_quick_run_saves_three_ways_with_a_card_beside_each(saved):
    assert saved.run.parent == saved.root / "lesson_4" / "save_restore"
    assert saved.record["status"] == "finished" and saved.record["quick"] is True
    assert_saved_three_ways(saved.run, saved.source, saved.record)
    assert sorted(p.name for p in saved.run.glob("*.card.json")) == [
        "export.card.json",
        "model.keras.card.json",
        "model.weights.h5.card.json",
    ]


def test_quick_reloads_predict_identically_and_the_table_is_recorded(saved):
    rows = {row["format"]: row for row in saved.record["extra"]["formats"]}
    assert_predict_identically(rows, saved.record)
    assert saved.record["extra"]["source"]["images"] == saved.record["hparams"]["images"] == 200
    assert saved.record["hparams"]["load_repeats"] == 1
    assert rows["keras"]["accuracy"] > 0.7  # a trained network; chance is 0.1
    assert "Predictions on 200 test images" in saved.result.stdout
    assert all(name in saved.result.stdout for name in ROWS)
    refusal = saved.record["extra"]["load_model_on_savedmodel"]
    assert "File format not supported" in refusal and "export" in refusal


def assert_trains_further(record, source_run, images):
    """The source run's model.keras holds no optimizer state, so the .keras copy's Adam starts at
    step 0, like the weights copy's, compiled afresh. Saved and loaded again, the trained .keras
    copy's Adam is back where fit left it, every slot equal. Both train: the loss over the short
    epoch is below chance (ln 10 = 2.30)."""
    further = record["extra"]["train_further"]
    steps = -(-images // further["batch_size"])
    assert further["images"] == images
    assert further["keras_steps_before"] == 0
    assert further["keras_steps_after"] == further["keras_steps_reloaded"] == steps
    assert further["adam_state_reloaded"] is True
    assert further["weights_steps_after"] == steps
    assert 0 < further["keras_loss"] < 2.3 and 0 < further["weights_loss"] < 2.3, further


def test_quick_run_trains_further_from_each_keras_copy(saved):
    assert_trains_further(saved.record, saved.source, images=500)
    assert "Adam's step counter, .keras copy:" in saved.result.stdout


def test_the_keras_file_carries_adams_two_slots_per_weight(saved):
    stored = saved.record["extra"]["stored_bytes"]
    weights = stored["weights"]["layers"]
    assert set(stored["weights"]) == {"layers"}, "the weights file holds no optimizer state"
    assert stored["keras"]["layers"] == weights == 6_434_634 * 4
    # m and v for every weight, plus Adam's step counter (int64) and learning rate (float32).
    assert stored["keras"]["optimizer"] == 2 * weights + 8 + 4
    rows = {row["format"]: row for row in saved.record["extra"]["formats"]}
    assert rows["keras"]["size_bytes"] > 2.9 * rows["weights"]["size_bytes"]
    assert sum(stored["savedmodel"].values()) == 2 * weights  # the export keeps each weight twice
    assert "Adam keeps two moment slots" in json.dumps(json.loads((saved.run / "model.keras.card.json").read_text()))
    # The lab's own run saved its model.keras without Adam: the layers alone, the same bytes.
    assert saved.record["extra"]["source_stored_bytes"] == {"layers": weights}


def test_the_source_run_is_left_untouched(saved):
    after = {path: path.stat().st_mtime_ns for path in files_under(saved.source)}
    assert after == saved.before


# ---------------------------------------------------------------------------------------------
# Bad input: one line, exit 2, nothing written


def test_refuses_a_missing_folder(runs_dir, tmp_path, capsys, monkeypatch):
    missing = tmp_path / "elsewhere" / "no-such-run"
    assert_refused(
        SCRIPT,
        "--run",
        str(missing),
        message="no such folder",
        runs_dir=runs_dir,
        capsys=capsys,
        monkeypatch=monkeypatch,
    )


def test_refuses_a_folder_without_run_json(runs_dir, tmp_path, capsys, monkeypatch):
    folder = tmp_path / "elsewhere"
    folder.mkdir()
    assert_refused(
        SCRIPT,
        "--run",
        str(folder),
        message="not a run folder",
        runs_dir=runs_dir,
        capsys=capsys,
        monkeypatch=monkeypatch,
    )


def test_refuses_a_run_without_a_model(source_run, runs_dir, tmp_path, capsys, monkeypatch):
    failed = tmp_path / "elsewhere" / source_run.name
    failed.mkdir(parents=True)
    record = run_json(source_run) | {"status": "failed"}
    (failed / "run.json").write_text(json.dumps(record))
    line = assert_refused(
        SCRIPT,
        "--run",
        str(failed),
        message="holds no model.keras",
        runs_dir=runs_dir,
        capsys=capsys,
        monkeypatch=monkeypatch,
    )
    assert "'failed'" in line


def test_with_no_lesson_1_run_it_names_the_command_that_trains_one(runs_dir, capsys, monkeypatch):
    assert_refused(
        SCRIPT,
        message="python lesson_1/exercise_a/train_mnist.py --quick",
        runs_dir=runs_dir,
        capsys=capsys,
        monkeypatch=monkeypatch,
    )


def test_a_refusal_comes_before_tensorflow_loads(runs_dir, tmp_path):
    """The file run as `python save_restore.py --run <nothing>` would, in a fresh interpreter that
    then says whether TensorFlow was imported."""
    code = (
        "import runpy, sys\n"
        "from labkit import LabError\n"
        f"sys.argv = [{str(REPO / SCRIPT)!r}, *sys.argv[1:]]\n"
        "try:\n    runpy.run_path(sys.argv[0], run_name='__main__')\n"
        "except SystemExit as end:\n    print(end.code, 'tensorflow' in sys.modules)\n"
        "except LabError as error:\n    print(error.exit_code, 'tensorflow' in sys.modules)\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code, "--run", str(tmp_path / "nothing")],
        cwd=REPO,
        env=lab_env(runs_dir),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.stdout.split() == ["2", "False"], result.stdout + result.stderr
    assert not any(runs_dir.iterdir())


def test_ctrl_c_leaves_run_json_saying_interrupted(source_run, runs_dir):
    """Ctrl-C once the run folder exists (while the copies are saved and loaded): exit 130, no
    traceback, and run.json says interrupted."""
    result = interrupt_run(SCRIPT, "--run", str(source_run), "--quick", runs_dir=runs_dir, after_epochs=0)
    assert result.returncode == 130, result.stdout[-2000:] + result.stderr[-2000:]
    assert "Traceback" not in result.stderr
    record = run_json(only_run(runs_dir))
    assert record["status"] == "interrupted" and record["lesson"] == "lesson_4" and record["quick"] is True


# ---------------------------------------------------------------------------------------------
# The notebook, and the full-length figures


def test_notebook_saves_the_newest_lesson_1_model_three_ways(source_run, runs_dir):
    # Lesson 1's real quick run in the notebook's runs root: the page starts from its model.keras.
    copied = (runs_dir / "lesson_1" / "exercise_a" / source_run.name).resolve()
    shutil.copytree(source_run, copied)
    notebook = execute_notebook("lesson_4/save_restore/save_restore.ipynb", runs_dir)
    text = notebook_text_outputs(notebook)
    assert f"Model to save: {copied / 'model.keras'}" in text
    assert "Every copy predicts the same labels" in text
    compiled, twin = (
        float(line.split(":")[1].split()[0]) for line in text.splitlines() if "save_weights on the" in line
    )
    assert compiled > 2.9 * twin, (compiled, twin)
    runs = {run.parent.name: run_json(run) for run in run_dirs(runs_dir)}
    assert set(runs) == {"exercise_a", "save_restore"}
    assert all(record["status"] == "finished" and record["quick"] for record in runs.values())
    assert [row["format"] for row in runs["save_restore"]["extra"]["formats"]] == ROWS
    assert_trains_further(runs["save_restore"], copied, images=500)


@pytest.mark.full
def test_full_exercise_a_saved_three_ways_predicts_identically(exercise_a_full_run, runs_dir):
    """Lesson 1's full-length network, saved three ways: every copy scores exactly the test accuracy
    that the Lesson 1 run recorded, on all of its test images."""
    assert exercise_a_full_run.result.returncode == 0, exercise_a_full_run.result.stderr
    source = only_run(exercise_a_full_run.runs_dir)
    result = run_script(SCRIPT, "--run", str(source), runs_dir=runs_dir)
    assert result.returncode == 0, result.stderr
    assert "retracing" not in result.stderr  # each reloaded model traces predict anew: expected, so not shown
    run = only_run(runs_dir)
    record = run_json(run)
    assert record["status"] == "finished" and record["quick"] is False
    assert record["hparams"]["load_repeats"] == 3
    rows = assert_saved_three_ways(run, source, record)
    assert_predict_identically(rows, record)
    trained = run_json(source)
    assert record["extra"]["source"]["images"] == trained["dataset"]["sizes"]["test"]
    for name, row in rows.items():
        assert row["accuracy"] == pytest.approx(trained["metrics"]["test"]["accuracy"], abs=1e-6), name
    assert rows["keras"]["accuracy"] >= 0.945
    assert rows["keras"]["size_bytes"] > 2.9 * rows["weights"]["size_bytes"]
    assert_trains_further(record, source, images=min(5000, trained["dataset"]["sizes"]["train"]))
