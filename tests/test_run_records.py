"""run.json as every listing reads it: one checked reader, and what each command does with a run it
cannot read; a listing that grows linearly with the runs; export and long paths.

Every malformed record starts as a real one, written by the real RunRecord, with one field broken
the way the issue found it; every command runs as a student runs it (lab.py, the activity script),
in a subprocess. Folders a student cannot open are made with real modes; as root (CI), the
command runs without the two capabilities that let root ignore modes.
"""

from __future__ import annotations

import ctypes
import json
import os
import shutil
import subprocess
import sys
import tarfile
import time
import zipfile
from pathlib import Path

import pytest

from labkit import runs
from labkit.instructor import catalog, export
from labtest import REPO, files_under, lab_env

LAB = REPO / "scripts" / "lab.py"
EXERCISE_A = REPO / "lesson_1" / "exercise_a" / "train_mnist.py"
SERVE = REPO / "lesson_4" / "serve" / "serve.py"
LONG_NAME = "n" * 300


def run_cli(*args, runs_dir: Path, cwd: Path = REPO, preexec_fn=None) -> subprocess.CompletedProcess:
    """`python ARGS` as a student types it, with $LAB_RUNS_DIR set to `runs_dir`."""
    return subprocess.run(
        [sys.executable, *map(str, args)],
        cwd=cwd,
        env=lab_env(runs_dir),
        capture_output=True,
        text=True,
        timeout=120,
        preexec_fn=preexec_fn,
    )


def one_line_refusal(result: subprocess.CompletedProcess) -> str:
    assert result.returncode == 2, (result.returncode, result.stdout, result.stderr)
    assert "Traceback" not in result.stderr and len(result.stderr.strip().splitlines()) == 1, result.stderr
    return result.stderr.strip()


def real_run(run_dir: Path, status: str = "failed") -> dict:
    """A run folder whose run.json the real RunRecord wrote; returns what it holds."""
    run_dir.mkdir(parents=True)
    record = runs.RunRecord(
        run_dir,
        lesson="lesson_1",
        activity="exercise_a",
        hparams={"learning_rate": 0.001, "batch_size": 100, "epochs": 1, "dataset": "digits", "seed": 42},
        dataset={"name": "digits", "substitute_for": None, "source": "scikit-learn"},
        quick=True,
    )
    record.epoch_done(0, {"loss": 0.5, "accuracy": 0.9, "val_loss": 0.6, "val_accuracy": 0.85})
    if status != "running":
        record.finish(status)
    return json.loads((run_dir / runs.RUN_JSON).read_text())


def broken(record: dict, **changes) -> str:
    return json.dumps(dict(record, **changes), indent=2)


# Each case: how it breaks a real record, and the fault read_run names. The process cases say
# "running": only a running run's process is looked at.
MALFORMED = {
    "a-json-list": (lambda r: "[1, 2]", "it holds [1, 2], not a JSON object"),
    "a-json-string": (lambda r: '"finished"', 'it holds "finished", not a JSON object'),
    "process-is-text": (lambda r: broken(r, status="running", process="abc"), 'process is "abc", not an object'),
    "pid-10-to-the-24": (
        lambda r: broken(r, status="running", process=dict(r["process"], pid=10**24)),
        f"process.pid {10**24} is not a process id",
    ),
    "process-started-is-text": (
        lambda r: broken(r, status="running", process=dict(r["process"], started="yesterday")),
        'process.started is "yesterday", not a number',
    ),
    "started-at-not-a-date": (
        lambda r: broken(r, started_at="last tuesday"),
        "started_at 'last tuesday' is not a date",
    ),
    "started-at-a-number": (lambda r: broken(r, started_at=5), "started_at is 5, not text"),
    "nan": (
        lambda r: broken(r).replace('"wall_time_s": ', '"wall_time_s": NaN, "was": '),
        "not valid JSON: it holds NaN, which JSON does not allow",
    ),
    "infinity": (
        lambda r: broken(r).replace('"loss": 0.5', '"loss": Infinity'),
        "not valid JSON: it holds Infinity, which JSON does not allow",
    ),
}


@pytest.fixture
def malformed_root(tmp_path) -> tuple[Path, Path, dict[str, Path]]:
    """(runs root, its one good run, the malformed runs by case) under lesson_1/exercise_a."""
    root = tmp_path / "runs"
    activity = root / "lesson_1" / "exercise_a"
    good = activity / "good-run"
    record = real_run(good)
    bad = {}
    for case, (breaks, _) in MALFORMED.items():
        bad[case] = activity / case
        real_run(bad[case])
        (bad[case] / runs.RUN_JSON).write_text(breaks(record))
    return root, good, bad


def snapshot(root: Path) -> dict[Path, bytes]:
    return {path: path.read_bytes() for path in files_under(root)}


# ---------------------------------------------------------------------------------------------
# One checked reader


@pytest.mark.parametrize("case", list(MALFORMED))
def test_read_run_names_the_file_and_the_fault(malformed_root, case):
    _, good, bad = malformed_root
    with pytest.raises(runs.RunRecordError) as error:
        runs.read_run(bad[case])
    assert error.value.fault == MALFORMED[case][1]
    assert str(error.value) == f"{bad[case] / runs.RUN_JSON}: {MALFORMED[case][1]}"
    assert isinstance(error.value, ValueError) and error.value.exit_code == 2  # LabError too
    assert runs.read_run(good)["status"] == "failed"


def test_lab_py_runs_lists_each_malformed_run_as_one_unreadable_row(malformed_root):
    root, good, bad = malformed_root
    result = run_cli(LAB, "runs", root, runs_dir=root)
    assert (result.returncode, result.stderr) == (0, ""), result.stderr
    lines = result.stdout.splitlines()
    for case, (_, fault) in MALFORMED.items():
        details = lines[lines.index(f"  {bad[case].relative_to(root).as_posix()}") + 1].split(None, 1)
        assert details[0] == "unreadable" and details[1].endswith(f"run.json: {fault}"), details
    assert lines[-1].startswith(f"{len(MALFORMED) + 1} runs, ")

    result = run_cli(LAB, "runs", root, "--json", runs_dir=root)
    assert (result.returncode, result.stderr) == (0, ""), result.stderr
    rows = {row["run"]: row for row in json.loads(result.stdout)}
    assert rows["good-run"]["status"] == "failed" and rows["good-run"]["metrics"]["accuracy"] == 0.85
    for case, (_, fault) in MALFORMED.items():
        assert (rows[case]["status"], rows[case]["error"]) == ("unreadable", f"run.json: {fault}")


def test_clean_keeps_every_run_it_cannot_read_and_says_so(malformed_root):
    root, good, bad = malformed_root
    kept = {path: data for path, data in snapshot(root).items() if good not in path.parents}
    result = run_cli(LAB, "runs", root, "--clean", "--yes", runs_dir=root)
    assert (result.returncode, result.stderr) == (0, ""), result.stderr
    lines = result.stdout.splitlines()
    assert lines[0] == f"Keeping {len(MALFORMED)} unreadable run(s): what cannot be read is never removed"
    for case, (_, fault) in MALFORMED.items():
        assert f"  {bad[case].relative_to(root).as_posix()}  run.json: {fault}" in lines
    assert lines[-1].startswith("Removed 1 run, ") and not good.exists()
    assert snapshot(root) == kept

    named = run_cli(LAB, "runs", root, "--clean", bad["a-json-list"], "--yes", runs_dir=root)
    assert one_line_refusal(named).endswith(
        "run.json: it holds [1, 2], not a JSON object; what cannot be read is never removed (remove it by hand)"
    )
    assert snapshot(root) == kept


def test_export_leaves_out_what_it_cannot_read_and_says_so(malformed_root, tmp_path):
    root, good, bad = malformed_root
    target = tmp_path / "alice.zip"
    result = run_cli(LAB, "runs", root, "--export", target, "--student", "alice", runs_dir=root)
    assert (result.returncode, result.stderr) == (0, ""), result.stderr
    assert result.stdout.splitlines()[0].startswith(f"Wrote {target}: 1 run, ")
    for case, (_, fault) in MALFORMED.items():
        assert f"Left out {bad[case].relative_to(root).as_posix()}: run.json: {fault}" in result.stdout
    with zipfile.ZipFile(target) as archive:
        assert sorted(archive.namelist()) == ["lab-export.json", "lesson_1/exercise_a/good-run/run.json"]
        assert [run["path"] for run in json.loads(archive.read("lab-export.json"))["runs"]] == [
            "lesson_1/exercise_a/good-run"
        ]


@pytest.mark.parametrize("case", list(MALFORMED))
def test_resume_of_a_malformed_run_is_one_line_and_exit_2(malformed_root, case):
    root, _, bad = malformed_root
    before = snapshot(root)
    line = one_line_refusal(run_cli(EXERCISE_A, "--resume", bad[case], runs_dir=root))
    assert line == f"train_mnist.py: error: --resume {bad[case]}: its run.json cannot be used ({MALFORMED[case][1]})"
    assert snapshot(root) == before


def test_the_servers_default_model_lookup_passes_over_malformed_runs(malformed_root):
    """serve.py without --model looks for the newest finished Lesson 1 run: the malformed ones are
    skipped (there is no finished one here), where a JSON list used to end it with a traceback."""
    root, good, _ = malformed_root
    shutil.rmtree(good)
    line = one_line_refusal(run_cli(SERVE, "--logdir", root, "--port", "0", runs_dir=root))
    assert "no finished lesson_1/exercise_a run with a model.keras under " in line


# ---------------------------------------------------------------------------------------------
# Folders a student cannot open


def obeying_modes() -> None:
    """preexec_fn: root opens any folder whatever its mode. Dropping CAP_DAC_OVERRIDE (1) and
    CAP_DAC_READ_SEARCH (2) from the bounding set before exec makes the command obey modes as
    a student's account does; for anyone else there is nothing to drop."""
    if os.geteuid() != 0:
        return
    libc = ctypes.CDLL(None, use_errno=True)
    for capability in (1, 2):
        if libc.prctl(24, capability, 0, 0, 0) != 0:  # PR_CAPBSET_DROP
            raise OSError(ctypes.get_errno(), "prctl(PR_CAPBSET_DROP)")


def root_with_a_locked_run(tmp_path: Path, mode: int) -> tuple[Path, Path]:
    """(runs root, its run folder with `mode`); the root also holds a failed run a clean removes."""
    root = tmp_path / "runs"
    real_run(root / "lesson_1" / "exercise_a" / "good-run")
    locked = root / "lesson_1" / "exercise_a" / "locked-run"
    real_run(locked)
    locked.chmod(mode)
    return root, locked


def assert_listed_as_unreadable_and_kept(root: Path, error: str) -> None:
    result = run_cli(LAB, "runs", root, "--json", runs_dir=root, preexec_fn=obeying_modes)
    assert (result.returncode, result.stderr) == (0, ""), result.stderr
    rows = {row["run"]: row for row in json.loads(result.stdout)}
    assert rows["good-run"]["status"] == "failed"
    assert (rows["locked-run"]["status"], rows["locked-run"]["error"]) == ("unreadable", error)
    result = run_cli(LAB, "runs", root, runs_dir=root, preexec_fn=obeying_modes)
    assert (result.returncode, result.stderr) == (0, ""), result.stderr
    lines = result.stdout.splitlines()
    detail = lines[lines.index("  lesson_1/exercise_a/locked-run") + 1]
    assert detail.split()[0] == "unreadable" and detail.endswith(error), detail

    result = run_cli(LAB, "runs", root, "--clean", "--yes", runs_dir=root, preexec_fn=obeying_modes)
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines()[:2] == [
        "Keeping 1 unreadable run(s): what cannot be read is never removed",
        f"  lesson_1/exercise_a/locked-run  {error}",
    ]
    assert (root / "lesson_1" / "exercise_a" / "locked-run").exists()
    assert not (root / "lesson_1" / "exercise_a" / "good-run").exists()


def test_a_run_folder_without_execute_permission_is_listed_as_unreadable(tmp_path):
    root, locked = root_with_a_locked_run(tmp_path, 0o644)  # its names can be listed, not opened
    try:
        assert_listed_as_unreadable_and_kept(root, "run.json: cannot be read: Permission denied")
        result = run_cli(EXERCISE_A, "--resume", locked, runs_dir=root, preexec_fn=obeying_modes)
        line = one_line_refusal(result)
        assert line == f"train_mnist.py: error: --resume {locked}: cannot look inside it (Permission denied)"
    finally:
        locked.chmod(0o755)


def test_a_run_folder_with_mode_000_is_listed_as_unreadable_not_hidden(tmp_path):
    root, locked = root_with_a_locked_run(tmp_path, 0o000)
    try:
        assert_listed_as_unreadable_and_kept(root, "cannot open this folder (Permission denied)")
    finally:
        locked.chmod(0o755)


# ---------------------------------------------------------------------------------------------
# A class's worth of runs


def link_or_copy(source: str, target: str) -> None:
    try:
        os.link(source, target)
    except OSError:  # the repository and the test's folder on different file systems
        shutil.copy2(source, target)


def many_runs(root: Path, count: int) -> None:
    """`count` run folders, each a copy of one real recorded run: its run.json and event files."""
    source = runs.find_runs(REPO / "demo_runs" / "lesson_1")[0]
    for index in range(count):
        target = root / "lesson_1" / f"activity_{index % 5}" / f"{source.name}-{index}"
        shutil.copytree(source, target, copy_function=link_or_copy)


def best_of_two(action):
    """(the shorter of two timed calls, in seconds; what the call returned)."""
    times = []
    for _ in range(2):
        start = time.perf_counter()
        answer = action()
        times.append(time.perf_counter() - start)
    return min(times), answer


def test_listing_and_exporting_grow_linearly_with_the_runs(tmp_path):
    """The issue measured 6.6 s for 500 runs and 58 s for 2,000 (four times the runs, nine times
    the time and rising): every run was compared with every other. Now 2,000 runs list through
    lab.py within seconds, and four times the runs take about four times as long, with a wide
    margin for a shared machine (quadratic growth would take sixteen)."""
    roots = {count: tmp_path / f"runs-{count}" for count in (500, 2000)}
    for count, root in roots.items():
        many_runs(root, count)

    start = time.perf_counter()
    result = run_cli(LAB, "runs", roots[2000], "--json", runs_dir=roots[2000])
    elapsed = time.perf_counter() - start
    assert result.returncode == 0, result.stderr
    assert len(json.loads(result.stdout)) == 2000
    assert elapsed < 15, f"lab.py runs took {elapsed:.1f} s for 2,000 runs"

    listing, planning = {}, {}
    for count, root in roots.items():
        listing[count], rows = best_of_two(lambda root=root: catalog.catalog(root))
        assert len(rows) == count and {row["status"] for row in rows} == {"finished"}
        planning[count], _ = best_of_two(lambda root=root, rows=rows: export.export_plan(root, rows, False))
    assert listing[2000] < 8 * listing[500], listing
    assert planning[2000] < 8 * planning[500], planning


# ---------------------------------------------------------------------------------------------
# Export: a read-only destination, a date zip cannot hold, a name that is not UTF-8


def test_export_into_a_read_only_file_system_is_one_line(tmp_path):
    """A tmpfs mounted read-only in a mount namespace of the command's own (unshare), so that
    nothing outside it sees the mount."""
    root = tmp_path / "runs"
    real_run(root / "lesson_1" / "exercise_a" / "good-run")
    read_only = tmp_path / "read-only"
    read_only.mkdir()
    target = read_only / "alice.zip"
    mount = f'mount -t tmpfs -o ro tmpfs {read_only} && exec "$@"'
    result = subprocess.run(
        ["unshare", "--mount", "--map-root-user", "sh", "-c", mount, "sh", sys.executable, LAB, "runs", root,
         "--export", target],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    line = one_line_refusal(result)
    assert line == f"lab.py runs: error: --export {target}: cannot write it (Read-only file system)"
    assert result.stdout == "" and list(read_only.iterdir()) == []


def test_zip_export_of_a_file_dated_before_1980_stores_the_earliest_date_zip_has(tmp_path):
    root = tmp_path / "runs"
    run = root / "lesson_1" / "exercise_a" / "good-run"
    real_run(run)
    os.utime(run / runs.RUN_JSON, (86400, 86400))  # 2 January 1970
    target = tmp_path / "alice.zip"
    result = run_cli(LAB, "runs", root, "--export", target, "--student", "alice", runs_dir=root)
    assert (result.returncode, result.stderr) == (0, ""), result.stderr
    assert result.stdout.splitlines() == [f"Wrote {target}: 1 run, {catalog.human_size(target.stat().st_size)}"]
    with zipfile.ZipFile(target) as archive:
        info = archive.getinfo("lesson_1/exercise_a/good-run/run.json")
        assert info.date_time == (1980, 1, 1, 0, 0, 0)
        assert archive.read(info) == (run / runs.RUN_JSON).read_bytes()


def test_export_of_a_name_that_is_not_utf8_is_collected_from_zip_and_tar(tmp_path):
    """Linux names are bytes. A .zip holds UTF-8 names only, so the odd byte is written as %FF
    (and said so); a .tar.gz keeps the bytes. `lab.py collect` unpacks both."""
    root = tmp_path / "runs"
    run = root / "lesson_1" / "exercise_a" / "good-run"
    real_run(run)
    odd = Path(os.fsdecode(bytes(run / "notes-") + b"\xff.txt"))  # Latin-1 "ÿ": not UTF-8
    odd.write_text("a student's notes")

    target = tmp_path / "alice.zip"
    result = run_cli(LAB, "runs", root, "--export", target, "--student", "alice", runs_dir=root)
    assert (result.returncode, result.stderr) == (0, ""), result.stderr
    assert result.stdout.splitlines()[1] == (
        "Renamed 1 file(s) whose names are not UTF-8, which a .zip cannot hold: each odd byte became %XX, "
        "as in lesson_1/exercise_a/good-run/notes-%FF.txt (a .tar.gz keeps such names as they are)"
    )
    with zipfile.ZipFile(target) as archive:
        assert archive.read("lesson_1/exercise_a/good-run/notes-%FF.txt") == b"a student's notes"

    tar_target = tmp_path / "alice.tar.gz"
    result = run_cli(LAB, "runs", root, "--export", tar_target, "--student", "alice", runs_dir=root)
    assert result.returncode == 0 and len(result.stdout.splitlines()) == 1, result.stdout + result.stderr
    with tarfile.open(tar_target) as archive:
        assert archive.getmember(f"lesson_1/exercise_a/good-run/{odd.name}").size == len("a student's notes")

    for given, name in ((target, "notes-%FF.txt"), (tar_target, odd.name)):
        into = tmp_path / f"class{given.suffix}"
        collected = run_cli(LAB, "collect", given, "--into", into, runs_dir=root)
        assert collected.returncode == 0, collected.stderr
        notes = into / "alice" / "lesson_1" / "exercise_a" / "good-run" / name
        assert notes.read_text() == "a student's notes"
        assert (notes.parent / runs.RUN_JSON).read_bytes() == (run / runs.RUN_JSON).read_bytes()


# ---------------------------------------------------------------------------------------------
# A name longer than any file system allows (255 bytes): one line, where each command meets it


@pytest.mark.parametrize(
    "command, flag",
    [
        ((LAB, "runs", "{long}"), ""),
        ((LAB, "runs", "{long}/lesson_1", "--json"), ""),
        ((LAB, "tensorboard", "{long}"), ""),
        ((LAB, "runs", "{root}", "--clean", "{long}"), "--clean: "),
        ((LAB, "runs", "{root}", "--export", "{long}.zip"), "--export: "),
        ((EXERCISE_A, "--quick", "--logdir", "{long}"), "--logdir: "),
        ((EXERCISE_A, "--resume", "{long}/run"), "--resume: "),
    ],
    ids=["runs", "runs-json", "tensorboard", "clean", "export", "logdir", "resume"],
)
def test_a_name_over_255_bytes_is_one_line_and_exit_2(tmp_path, command, flag):
    root = tmp_path / "runs"
    real_run(root / "lesson_1" / "exercise_a" / "good-run")
    before = snapshot(tmp_path)
    args = [str(part).format(long=tmp_path / LONG_NAME, root=root) for part in command]
    line = one_line_refusal(run_cli(*args, cwd=tmp_path, runs_dir=root))
    assert f"error: {flag}the name '{'n' * 24}...' in {tmp_path} is 30" in line, line
    assert line.endswith("bytes long; a file system allows at most 255 in one name")
    assert snapshot(tmp_path) == before


def test_a_runs_dir_variable_over_255_bytes_names_the_variable(tmp_path):
    line = one_line_refusal(run_cli(LAB, "runs", cwd=tmp_path, runs_dir=tmp_path / LONG_NAME))
    assert line.startswith(f"lab.py runs: error: $LAB_RUNS_DIR: the name '{'n' * 24}...' in {tmp_path} is 300 bytes")


def test_a_logdir_under_a_folder_that_cannot_be_opened_is_one_line(tmp_path):
    locked = tmp_path / "locked"
    locked.mkdir(mode=0o600)
    logdir = locked / "inside" / "runs"
    result = run_cli(EXERCISE_A, "--quick", "--logdir", logdir, runs_dir=tmp_path / "runs", preexec_fn=obeying_modes)
    line = one_line_refusal(result)
    assert line == f"train_mnist.py: error: logdir {logdir} cannot be checked: {logdir}: Permission denied"
    assert sorted(path.name for path in tmp_path.iterdir()) == ["locked"]


def test_a_baseline_with_a_name_over_255_bytes_is_one_line(tmp_path):
    """Lesson 4's retraining finds its Lesson 1 model through labkit.saved_models, as the pages do."""
    root = tmp_path / "runs"
    long = tmp_path / LONG_NAME / "run"
    result = run_cli(REPO / "lesson_4" / "retrain" / "train_mnist.py", "--quick", "--baseline", long, runs_dir=root)
    assert one_line_refusal(result) == f"train_mnist.py: error: --baseline {long}: File name too long"
    assert not root.exists()
