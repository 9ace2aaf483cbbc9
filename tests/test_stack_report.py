"""scripts/stack_report.py: a class's test_stack.py --json reports merged into one table.

The reports are written by the real doctor (stack_doctor, in-process, on the fake machines of
test_test_stack.py), so the two scripts cannot drift apart on the report format.
"""

import csv
import importlib.util
import io
import json
import subprocess
import sys
from pathlib import Path

import pytest
from test_test_stack import FakeWorld

from stack_doctor import runner
from stack_doctor.core import CommandResult

REPO = Path(__file__).resolve().parents[1]
SCRIPT = REPO / "scripts" / "stack_report.py"


def _load_report_script():
    spec = importlib.util.spec_from_file_location("stack_report_script", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


stack_report = _load_report_script()


def write_report(folder: Path, student: str, world) -> Path:
    out = io.StringIO()
    runner.main(["--json"], world=world, stdout=out)
    path = folder / f"{student}.json"
    path.write_text(out.getvalue())
    return path


@pytest.fixture
def classroom(tmp_path, monkeypatch):
    """Four students: two ready, one without pandas, one without pandas or a free port 6006."""
    monkeypatch.setenv("LAB_RUNS_DIR", str(tmp_path / "runs"))
    reports = tmp_path / "reports"
    reports.mkdir()
    for student in ["ada", "bo", "cy", "di"]:
        world = FakeWorld(tmp_path / student)
        if student in ("cy", "di"):
            del world.fake_packages["pandas"]
        if student == "di":
            world.port_free = False
            world.pip_result = CommandResult(1, "tensorflow 2.21.0 requires protobuf, which is not installed.\n")
        write_report(reports, student, world)
    return reports


def run_script(*args):
    return subprocess.run([sys.executable, str(SCRIPT), *map(str, args)], capture_output=True, text=True, timeout=60)


def test_the_table_counts_failures_per_check_worst_first(classroom):
    done = run_script(classroom)
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[0] == "4 report(s): 2 ready, 2 not ready"
    table = {line.split()[0]: line.split()[1:5] for line in lines[3:]}
    assert table["pkg.pandas"] == ["2", "0", "2", "0"]
    assert table["pip_check"] == ["1", "0", "3", "0"]
    assert table["tensorboard.port"] == ["0", "1", "3", "0"]
    assert table["gpu.driver"] == ["0", "4", "0", "0"]
    assert [line.split()[0] for line in lines[3:6]] == ["pkg.pandas", "pip_check", "gpu.driver"]
    assert "not installed" in lines[3]  # the commonest failure of the top row


def test_the_summary_and_student_csv_files(classroom, tmp_path):
    summary_csv, students_csv = tmp_path / "class.csv", tmp_path / "students.csv"
    done = run_script(classroom, "--csv", summary_csv, "--students-csv", students_csv)
    assert done.returncode == 0, done.stderr
    summary = {row["check"]: row for row in csv.DictReader(summary_csv.open())}
    assert (summary["pkg.pandas"]["FAIL"], summary["pkg.pandas"]["top_failure"]) == ("2", "not installed")
    students = {row["student"]: row for row in csv.DictReader(students_csv.open())}
    assert sorted(students) == ["ada", "bo", "cy", "di"]
    assert (students["di"]["verdict"], students["di"]["failed"], students["di"]["pip_check"]) == (
        "not ready",
        "2",
        "FAIL",
    )
    assert (students["ada"]["verdict"], students["ada"]["failed"], students["ada"]["warned"]) == ("ready", "0", "1")


def test_csv_to_stdout_replaces_the_table(classroom):
    done = run_script(classroom, "--csv", "-")
    assert done.stdout.splitlines()[0] == "check,FAIL,WARN,OK,absent,top_failure"


def test_files_that_are_not_reports_are_named_and_skipped(classroom):
    (classroom / "broken.json").write_text("{not json")
    (classroom / "other.json").write_text(json.dumps({"hello": "world"}))
    (classroom / "future.json").write_text(json.dumps({"schema_version": 99, "checks": []}))
    done = run_script(classroom)
    assert done.returncode == 0
    assert done.stdout.splitlines()[0] == "4 report(s): 2 ready, 2 not ready"
    assert "skipped %s: not readable JSON (JSONDecodeError)" % (classroom / "broken.json") in done.stderr
    assert "skipped %s: not a test_stack.py --json report" % (classroom / "other.json") in done.stderr
    assert "skipped %s: schema_version 99, this script reads 1" % (classroom / "future.json") in done.stderr


def test_gpu_layers_missing_from_some_reports_are_counted_as_absent(tmp_path, monkeypatch):
    monkeypatch.setenv("LAB_RUNS_DIR", str(tmp_path / "runs"))
    with_gpu = FakeWorld(tmp_path / "a")
    with_gpu.smi = CommandResult(0, "NVIDIA T4, 535.1, 15360 MiB\n")
    write_report(tmp_path, "gpu-student", with_gpu)
    write_report(tmp_path, "cpu-student", FakeWorld(tmp_path / "b"))
    summary = {row["check"]: row for row in stack_report.summarize(stack_report.load_reports([tmp_path])[0])}
    assert (summary["gpu.tf_build"]["OK"], summary["gpu.tf_build"]["absent"]) == (1, 1)


def test_no_readable_report_is_a_usage_error(tmp_path):
    (tmp_path / "empty.json").write_text("")
    done = run_script(tmp_path / "empty.json")
    assert done.returncode == 2
    assert "no readable reports" in done.stderr
