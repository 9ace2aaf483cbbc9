"""`lab.py runs`: the table and --json of real runs in every status, filters, --clean and --export.

Three real processes make five runs, each status by the means that causes it for a student:
Activity 2 sweeps of two variants on the small digits set, where the second variant is stopped
by Ctrl-C (SIGINT: a finished and an interrupted full run) or killed (SIGKILL: a finished quick
run and a crashed one), and Exercise A under a 1 MB file-size limit, whose 26 MB model file
cannot be written (EFBIG: a failed run). Tests that remove or change files work on hard-linked copies.
"""

from __future__ import annotations

import json
import os
import re
import resource
import shutil
import signal
import subprocess
import sys
import tarfile
import time
import zipfile
from pathlib import Path

import pytest

from labkit import runs
from labkit.instructor import catalog
from labtest import REPO, lab_env, run_dirs, run_json

LAB = REPO / "scripts" / "lab.py"
SWEEP = "lesson_1/activity_2/train_mnist.py"
EXERCISE_A = "lesson_1/exercise_a/train_mnist.py"


def stop_second_variant(root: Path, args: tuple[str, ...], signal_number: int) -> subprocess.CompletedProcess:
    """Run a two-variant sweep and send `signal_number` once the second variant has logged an epoch."""
    process = subprocess.Popen(
        [sys.executable, str(REPO / SWEEP), *args],
        cwd=REPO,
        env=lab_env(root),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline:
            found = run_dirs(root)
            if len(found) == 2 and all(run_json(run).get("epochs_completed", 0) >= 1 for run in found):
                break
            assert process.poll() is None, process.communicate()
            time.sleep(0.05)
        else:
            raise AssertionError("the second variant never completed an epoch")
        process.send_signal(signal_number)
        stdout, stderr = process.communicate(timeout=60)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    return subprocess.CompletedProcess(process.args, process.returncode, stdout, stderr)


def limit_file_size() -> None:
    resource.setrlimit(resource.RLIMIT_FSIZE, (1 << 20, 1 << 20))  # Python ignores SIGXFSZ: writes fail EFBIG


@pytest.fixture(scope="module")
def real_runs(tmp_path_factory) -> dict[str, Path]:
    """One runs root holding five real runs, keyed by what they are."""
    base = tmp_path_factory.mktemp("catalog")
    root = base / "runs"
    sources = {name: base / name for name in ("interrupted", "crashed", "failed")}
    full_sweep = ("--sweep", "1e-3@10,1e-3@100", "--dataset", "digits")
    result = stop_second_variant(sources["interrupted"], full_sweep, signal.SIGINT)
    assert result.returncode == 130, result.stderr
    quick_sweep = ("--quick", "--sweep", "1e-3@10,1e-3@250", "--dataset", "digits")
    result = stop_second_variant(sources["crashed"], quick_sweep, signal.SIGKILL)
    assert result.returncode == -signal.SIGKILL, result.stderr
    result = subprocess.run(
        [sys.executable, str(REPO / EXERCISE_A), "--dataset", "digits", "--epochs", "1", "--steps-per-epoch", "3"],
        cwd=REPO,
        env=lab_env(sources["failed"]),
        capture_output=True,
        text=True,
        timeout=180,
        preexec_fn=limit_file_size,
    )
    assert result.returncode == 1 and "File too large" in result.stderr, result.stderr
    found = {}
    for source in sources.values():
        for run in run_dirs(source):
            target = root / run.relative_to(source)
            target.parent.mkdir(parents=True, exist_ok=True)
            run.rename(target)
            found[label(target)] = target
    assert sorted(found) == ["crashed", "failed", "finished-full", "finished-quick", "interrupted"], found
    return found


def label(run: Path) -> str:
    record = runs.read_run(run)
    if record["status"] == "finished":
        return "finished-quick" if record["quick"] else "finished-full"
    return record["status"]


def root_of(real_runs) -> Path:
    return real_runs["failed"].parents[2]


def linked_copy(real_runs, tmp_path) -> tuple[Path, dict[str, Path]]:
    """The runs root again, its files hard-linked: removing one leaves the shared root whole."""
    root = root_of(real_runs)
    copy = tmp_path / "runs"
    shutil.copytree(root, copy, copy_function=os.link)
    return copy, {name: copy / run.relative_to(root) for name, run in real_runs.items()}


def bytes_on_disk(folder: Path) -> int:
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())


def lab_runs(capsys, *args) -> tuple[int, str, str]:
    """`lab.py runs ARGS` in this process: (exit code, stdout, stderr); argparse's exits included."""
    try:
        code = catalog.main([str(arg) for arg in args])
    except SystemExit as exit_info:
        code = exit_info.code
    out, err = capsys.readouterr()
    return code, out, err


# ---------------------------------------------------------------------------------------------
# The listing


@pytest.mark.slow
def test_json_rows_are_run_json_and_bytes_on_disk(real_runs, capsys):
    root = root_of(real_runs)
    code, out, err = lab_runs(capsys, root, "--json")
    assert code == 0 and err == ""
    rows = {row["path"]: row for row in json.loads(out)}
    assert sorted(rows) == sorted(run.relative_to(root).as_posix() for run in real_runs.values())
    for name, run in real_runs.items():
        row, record = rows[run.relative_to(root).as_posix()], run_json(run)
        expected_status = {"finished-full": "finished", "finished-quick": "finished"}.get(name, name)
        assert row["status"] == expected_status
        assert (row["lesson"], row["activity"], row["run"]) == ("lesson_1", record["activity"], run.name)
        assert (row["dataset"], row["substitute_for"]) == ("digits", None)
        assert row["source"] == record["dataset"]["source"]
        assert row["quick"] is record["quick"] and row["wall_time_s"] == record["wall_time_s"]
        assert row["size_bytes"] == bytes_on_disk(run)
        split = "test" if record["metrics"]["test"] else "validation"
        assert row["metrics_split"] == split
        assert row["metrics"] == {k: record["metrics"][split][k] for k in ("accuracy", "loss")}
    assert rows[real_runs["finished-full"].relative_to(root).as_posix()]["metrics_split"] == "test"
    assert rows[real_runs["interrupted"].relative_to(root).as_posix()]["metrics_split"] == "validation"
    assert run_json(real_runs["crashed"])["status"] == "running", "the killed process left that; read_run says crashed"
    # Sorted by lesson, activity, then start time: the sweeps' runs in the order they trained.
    ordered = [row["path"] for row in json.loads(out)]
    activity_2 = [p for p in ordered if "/activity_2/" in p]
    starts = [run_json(root / p)["started_at"] for p in activity_2]
    assert starts == sorted(starts) and ordered[-1].startswith("lesson_1/exercise_a/")


def expected_size(size: int) -> str:
    return f"{size / 1e6:.1f} MB" if size >= 1e6 else f"{size / 1e3:.1f} kB"


def expected_time(seconds: float) -> str:
    return f"{seconds:.1f}s" if seconds < 10 else f"{round(seconds)}s"


@pytest.mark.slow
def test_table_rows_show_each_run_and_a_total(real_runs, capsys, monkeypatch):
    root = root_of(real_runs)
    code, out, err = lab_runs(capsys, root)
    assert code == 0 and err == ""
    lines = out.splitlines()
    assert all(len(line) <= 100 for line in lines), max(lines, key=len)
    for name, run in real_runs.items():
        record = run_json(run)
        details = re.split(r"\s{2,}", lines[lines.index(f"  {run.name}") + 1].strip())
        split = "test" if record["metrics"]["test"] else "val"
        metrics = record["metrics"]["test" if split == "test" else "validation"]
        assert details == [
            {"finished-full": "finished", "finished-quick": "finished"}.get(name, name),
            "quick" if record["quick"] else "full",
            expected_time(record["wall_time_s"]),
            expected_size(bytes_on_disk(run)),
            f"{split} acc {metrics['accuracy']:.4g}, loss {metrics['loss']:.4g}",
            "digits",
        ]
    assert "lesson_1/activity_2" in lines and "lesson_1/exercise_a" in lines
    total = sum(bytes_on_disk(run) for run in real_runs.values())
    assert lines[-1] == f"5 runs, {expected_size(total)} under {root}"


@pytest.mark.slow
@pytest.mark.parametrize(
    "flags, expected",
    [
        (("--lesson", "1"), {"finished-full", "finished-quick", "interrupted", "crashed", "failed"}),
        (("--lesson", "lesson_1", "--activity", "activity_2"), {"finished-full", "finished-quick", "interrupted",
                                                                 "crashed"}),
        (("--activity", "exercise_a"), {"failed"}),
        (("--lesson", "2"), set()),
    ],
    ids=["lesson-number", "lesson-name-and-activity", "activity", "no-match"],
)  # fmt: skip
def test_filters(real_runs, capsys, flags, expected):
    root = root_of(real_runs)
    code, out, _ = lab_runs(capsys, root, *flags, "--json")
    assert code == 0
    assert {row["run"] for row in json.loads(out)} == {real_runs[name].name for name in expected}
    code, out, _ = lab_runs(capsys, root, *flags)
    assert code == 0
    if not expected:
        assert out == f"no lesson_2 runs under {root} yet; {catalog.HINT}\n"


@pytest.mark.slow
def test_an_unreadable_run_json_is_listed_as_such(real_runs, tmp_path, capsys):
    root, copies = linked_copy(real_runs, tmp_path)
    record = copies["failed"] / "run.json"
    record.unlink()  # a hard link: replace it, never write through it into the shared run
    record.write_text('{"status": "finis')
    code, out, err = lab_runs(capsys, root, "--json")
    assert code == 0 and err == ""
    (row,) = [row for row in json.loads(out) if row["path"].endswith(copies["failed"].name)]
    assert row["status"] == "unreadable" and row["error"].startswith("run.json: not valid JSON: ")
    code, out, err = lab_runs(capsys, root)
    assert code == 0 and "Traceback" not in out + err
    lines = out.splitlines()
    path_line = lines.index(f"  {copies['failed'].relative_to(root).as_posix()}")
    assert lines[path_line + 1].split()[0] == "unreadable"


def test_an_empty_folder_says_so_and_a_missing_one_exits_2(tmp_path, capsys):
    empty = tmp_path / "runs"
    empty.mkdir()
    assert lab_runs(capsys, empty) == (0, f"no runs under {empty} yet; {catalog.HINT}\n", "")
    assert lab_runs(capsys, empty, "--json") == (0, "[]\n", "")
    missing = tmp_path / "nowhere"
    code, out, err = lab_runs(capsys, missing)
    assert (code, out) == (2, "")
    assert (
        err == f"lab.py runs: error: {missing} does not exist; {catalog.HINT}, or give the folder that holds the runs\n"
    )
    assert not missing.exists()


def test_before_the_first_run_the_default_runs_root_is_simply_empty(tmp_path, capsys, monkeypatch):
    """A student's first `lab.py runs`: runs/ appears with the first run, so its absence is no error."""
    not_yet = tmp_path / "runs"
    monkeypatch.setenv("LAB_RUNS_DIR", str(not_yet))
    assert lab_runs(capsys) == (0, f"no runs under {not_yet} yet; {catalog.HINT}\n", "")
    assert lab_runs(capsys, "--json") == (0, "[]\n", "")
    assert lab_runs(capsys, "--clean", "--yes")[:2] == (
        0,
        f"nothing to clean under {not_yet}: no failed, crashed or quick runs (name a finished full run to remove it)\n",
    )
    code, _, err = lab_runs(capsys, "--clean", not_yet / "lesson_1" / "exercise_a" / "some-run")
    assert code == 2 and "does not exist" in err
    assert not not_yet.exists()


@pytest.mark.parametrize(
    "flags, message",
    [
        (("--lesson", "one"), "argument --lesson: expected a lesson number such as 1 or lesson_1, got 'one'"),
        (("--yes",), "--yes answers --clean's question; it means nothing without --clean"),
        (("--json", "--clean"), "--json lists runs; it cannot be combined with --clean or --export"),
        (("--export", "a.rar"), "give a file name ending in .zip, .tar.gz or .tgz"),
        (("--with-models",), "--student and --with-models go with --export FILE"),
    ],
)
def test_bad_flags_exit_2_with_one_line_and_touch_nothing(tmp_path, capsys, monkeypatch, flags, message):
    root = tmp_path / "runs"
    (root / "lesson_1" / "exercise_a" / "some-run").mkdir(parents=True)
    (root / "lesson_1" / "exercise_a" / "some-run" / "run.json").write_text('{"status": "failed", "quick": true}')
    monkeypatch.chdir(tmp_path)
    before = sorted(tmp_path.rglob("*"))
    code, out, err = lab_runs(capsys, root, *flags)
    assert code == 2 and out == "" and len(err.splitlines()) == 1 and message in err, err
    assert sorted(tmp_path.rglob("*")) == before


# ---------------------------------------------------------------------------------------------
# --clean


@pytest.mark.slow
def test_clean_yes_removes_exactly_failed_crashed_and_quick_runs(real_runs, tmp_path, capsys):
    root, copies = linked_copy(real_runs, tmp_path)
    code, out, err = lab_runs(capsys, root, "--clean", "--yes")
    assert code == 0 and err == ""
    gone = ("failed", "crashed", "finished-quick")
    for name in gone:
        reason = {"finished-quick": "quick"}.get(name, name)
        size = expected_size(bytes_on_disk(real_runs[name]))
        assert f"  {copies[name].relative_to(root).as_posix()}  [{reason}]  {size}\n" in out
        assert not copies[name].exists()
    for kept in ("finished-full", "interrupted"):  # a finished full run, and a full one that can resume
        assert sorted(p.relative_to(copies[kept]) for p in copies[kept].rglob("*")) == sorted(
            p.relative_to(real_runs[kept]) for p in real_runs[kept].rglob("*")
        )
    freed = sum(bytes_on_disk(real_runs[name]) for name in gone)
    assert out.splitlines()[-1] == f"Removed 3 runs, {expected_size(freed)} freed."
    assert not (root / "lesson_1" / "exercise_a").exists(), "an activity folder left empty is pruned"
    code, out, _ = lab_runs(capsys, root, "--clean")
    assert code == 0 and out.startswith(f"nothing to clean under {root}: ")


@pytest.mark.slow
def test_clean_through_lab_py_without_an_answer_removes_nothing(real_runs, tmp_path):
    root, _ = linked_copy(real_runs, tmp_path)
    before = sorted(root.rglob("*"))
    result = subprocess.run(
        [sys.executable, str(LAB), "runs", str(root), "--clean"],
        cwd=tmp_path,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 1, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0] == f"Would remove 3 runs under {root}:" and len(lines) == 5
    assert lines[-1] == "Nothing removed (stdin is not a terminal: add --yes to remove without asking)."
    assert sorted(root.rglob("*")) == before


@pytest.mark.slow
@pytest.mark.parametrize(
    "answer, removed", [("y\n", True), ("\n", False), ("\x04", False)], ids=["y", "enter", "ctrl-d"]
)
def test_clean_asks_on_a_terminal(real_runs, tmp_path, capsys, monkeypatch, answer, removed):
    root, copies = linked_copy(real_runs, tmp_path)
    main_end, terminal_end = os.openpty()
    os.write(main_end, answer.encode())  # Ctrl-D (EOT) on a terminal: the read sees end of file
    with open(terminal_end, encoding="utf-8", closefd=True) as terminal:
        monkeypatch.setattr(sys, "stdin", terminal)
        code, out, _ = lab_runs(capsys, root, "--clean")
    os.close(main_end)
    total = sum(bytes_on_disk(real_runs[name]) for name in ("failed", "crashed", "finished-quick"))
    assert f"Remove 3 runs ({expected_size(total)})? [y/N]" in out
    assert code == (0 if removed else 1)
    assert copies["failed"].exists() is not removed and copies["finished-full"].exists()
    if not removed:
        assert out.splitlines()[-1].endswith("Nothing removed.")


def fatten(model_path: Path):
    """Save the run's model again the way the lab saved every run before issue 26: compiled, with
    its optimizer's variables. The hard link is broken first, so the shared run stays as it was.
    Returns the model Keras loaded from the slim file, for its predictions."""
    import keras

    from labkit.saved_models import fingerprint, read_card, size_on_disk, write_card

    model = keras.models.load_model(model_path)  # compiled again, with a built, fresh optimizer
    model_path.unlink()
    model.save(model_path)
    card = read_card(model_path)
    card.update(sha256=fingerprint(model_path), size_bytes=size_on_disk(model_path))
    write_card(model_path, card)
    return model


@pytest.mark.slow
def test_clean_slims_a_kept_model_file_saved_with_its_optimizer(real_runs, tmp_path, capsys):
    import keras
    import numpy as np

    from labkit.saved_models import fingerprint, read_card, size_on_disk, stored_bytes

    root, copies = linked_copy(real_runs, tmp_path)
    shared = real_runs["finished-full"] / "model.keras"
    assert "optimizer" not in stored_bytes(shared), "the lab saves a finished run without its optimizer"
    shared_digest = fingerprint(shared)
    model_path = copies["finished-full"] / "model.keras"
    model = fatten(model_path)
    fat = stored_bytes(model_path)
    assert fat["optimizer"] > fat["layers"]  # Adam: two slots per weight
    fat_size = size_on_disk(model_path)

    # Without an answer, nothing changes: the question is asked after the removals' own.
    before = fingerprint(model_path)
    code, out, _ = lab_runs(capsys, root, "--clean")
    assert code == 1 and "1 kept run(s) save their optimizer's state in model.keras" in out
    assert out.splitlines()[-1] == "Model files left as they are." and fingerprint(model_path) == before

    code, out, err = lab_runs(capsys, root, "--clean", "--yes")
    assert code == 0 and err == "", err
    freed = fat_size - size_on_disk(model_path)
    assert out.splitlines()[-1] == f"Slimmed 1 model file(s), {expected_size(freed)} freed."
    assert set(stored_bytes(model_path)) == {"layers"} and freed >= fat["optimizer"]
    card = read_card(model_path)
    assert card["sha256"] == fingerprint(model_path) and card["size_bytes"] == size_on_disk(model_path)
    assert card["identity"].endswith("#" + card["sha256"][:12])
    slim = keras.models.load_model(model_path)
    images = np.random.default_rng(0).random((32, *model.inputs[0].shape[1:]), dtype=np.float32)
    np.testing.assert_array_equal(slim.predict(images, verbose=0), model.predict(images, verbose=0))
    assert type(slim.optimizer) is type(model.optimizer)  # the compile settings stay
    assert fingerprint(shared) == shared_digest, "the hard-linked original is untouched"
    code, out, _ = lab_runs(capsys, root, "--clean", "--yes")  # nothing left to slim: no question
    assert code == 0 and "optimizer" not in out


@pytest.mark.slow
def test_clean_named_runs_removes_only_those_finished_full_included(real_runs, tmp_path, capsys):
    root, copies = linked_copy(real_runs, tmp_path)
    code, out, _ = lab_runs(capsys, root, "--clean", copies["finished-full"], "--yes")
    assert code == 0 and "[named]" in out
    assert not copies["finished-full"].exists()
    assert all(copies[name].exists() for name in ("finished-quick", "interrupted", "crashed", "failed"))


@pytest.mark.slow
def test_clean_refuses_a_named_path_that_is_not_a_run_before_removing_any(real_runs, tmp_path, capsys):
    root, copies = linked_copy(real_runs, tmp_path)
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    (outside / "run.json").write_text("{}")
    before = sorted(root.rglob("*"))
    for bad, message in [
        (root / "lesson_1", f"--clean {root / 'lesson_1'}: not a run folder (it holds no run.json)"),
        (outside, f"--clean {outside}: not under {root}; only runs in that folder can be removed"),
        (tmp_path / "missing", f"--clean {tmp_path / 'missing'}: no such folder"),
    ]:
        code, out, err = lab_runs(capsys, root, "--clean", copies["failed"], bad, "--yes")
        assert (code, out, err) == (2, "", f"lab.py runs: error: {message}\n")
    assert sorted(root.rglob("*")) == before and (outside / "run.json").exists()


# ---------------------------------------------------------------------------------------------
# --export


@pytest.mark.slow
def test_export_packs_logs_and_manifest_but_no_models(real_runs, tmp_path, capsys):
    root = root_of(real_runs)
    target = tmp_path / "alice.tar.gz"
    code, out, err = lab_runs(capsys, root, "--export", target, "--student", "alice", "--lesson", "1")
    assert code == 0 and err == ""
    with tarfile.open(target) as archive:
        names = set(archive.getnames())
        manifest = json.load(archive.extractfile("lab-export.json"))
    expected, models = {"lab-export.json"}, []
    for run in real_runs.values():
        for path in run.rglob("*"):
            if path.is_file():
                name = path.relative_to(root).as_posix()
                is_model = path.suffix in (".keras", ".h5") or "backup" in path.relative_to(run).parts
                if is_model:
                    models.append(name)
                else:
                    expected.add(name)
    assert names == expected
    assert any(name.endswith("/model.keras") for name in models) and not any(n.endswith(".keras") for n in names)
    model_bytes = sum((root / name).stat().st_size for name in models)
    assert out.splitlines() == [
        f"Wrote {target}: 5 runs, {expected_size(target.stat().st_size)}",
        f"Left out {len(models)} model file(s), {expected_size(model_bytes)}: add --with-models to include them",
    ]
    assert (manifest["format"], manifest["version"], manifest["student"]) == ("keras-course-lab-export", 1, "alice")
    assert sorted(entry["path"] for entry in manifest["runs"]) == sorted(
        run.relative_to(root).as_posix() for run in real_runs.values()
    )
    assert [p.name for p in tmp_path.iterdir()] == ["alice.tar.gz"], "no partial file is left beside it"


@pytest.mark.slow
def test_export_with_models_and_filters_through_lab_py(real_runs, tmp_path):
    """Activity 2's four runs (Exercise A's failed run left out by the filter), with every file,
    the finished runs' model.keras included."""
    root = root_of(real_runs)
    chosen = [run for name, run in real_runs.items() if name != "failed"]
    target = tmp_path / "bob.zip"
    result = subprocess.run(
        [
            sys.executable,
            str(LAB),
            "runs",
            str(root),
            "--activity",
            "activity_2",
            "--with-models",
            "--export",
            "bob.zip",
        ],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == [f"Wrote {target}: 4 runs, {expected_size(target.stat().st_size)}"]
    crashed = real_runs["crashed"]
    with zipfile.ZipFile(target) as archive:
        names = set(archive.namelist())
        assert archive.read(f"{crashed.relative_to(root).as_posix()}/run.json") == (crashed / "run.json").read_bytes()
    files = {p.relative_to(root).as_posix() for run in chosen for p in run.rglob("*") if p.is_file()}
    assert names == files | {"lab-export.json"}
    models = {name for name in names if name.endswith("/model.keras")}
    assert {name.split("/")[-2] for name in models} == {real_runs[k].name for k in ("finished-full", "finished-quick")}
