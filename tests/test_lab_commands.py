"""`lab.py`'s student commands: the refusal of a Python the course cannot run on, `run` and
`notebook` with nothing to activate, the commands `start` leaves behind, and the Windows branch.

The refusals run real interpreters: pyenv's 3.9 where the machine has it (CI's image does), and
this Python told it is 3.14, which no machine here has (TensorFlow has no wheels for it yet)."""

from __future__ import annotations

import importlib.util
import json
import os
import re
import shlex
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from labtest import REPO, lab_env, only_run, run_json

LAB = REPO / "scripts" / "lab.py"
REFUSAL = re.compile(
    r"^\[lab\] the course runs on Python 3\.10 to 3\.13, which TensorFlow has wheels for; this is (\S+)\. (.+)$"
)


def load_lab():
    spec = importlib.util.spec_from_file_location("lab_under_test", LAB)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def old_python() -> Path:
    found = sorted(Path.home().glob(".pyenv/versions/3.9*/bin/python3.9"))
    assert found, "no Python 3.9 under ~/.pyenv: the machine image the course is tested on has one"
    return found[-1]


def assert_refused_in_one_line(result, version: str, repo: Path) -> str:
    assert result.returncode == 2, result.stderr
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and result.stdout == "", (result.stdout, result.stderr)
    match = REFUSAL.match(lines[0])
    assert match and match.group(1) == version, lines[0]
    assert not (repo / ".venv").exists(), "a refused Python must not start a setup"
    return match.group(2)


def test_python_3_9_is_refused_in_one_line_naming_one_that_works(tmp_path):
    (tmp_path / "scripts").mkdir()
    (tmp_path / "scripts" / "lab.py").write_bytes(LAB.read_bytes())
    python = old_python()
    version = subprocess.run(
        [python, "-c", "import platform; print(platform.python_version())"], capture_output=True, text=True
    ).stdout.strip()
    result = subprocess.run(
        [python, tmp_path / "scripts" / "lab.py", "start"], capture_output=True, text=True, timeout=60
    )
    remedy = assert_refused_in_one_line(result, version, tmp_path)
    # The remedy names a supported Python that starts on this machine, and the command to type.
    named = re.match(r"^(python3\.1[0-3]) is on this machine: run `\1 scripts/lab\.py start`$", remedy)
    assert named, remedy
    started = subprocess.run(
        [*named.group(1).split(), "-c", "import sys; print(sys.version_info[:2])"], capture_output=True, text=True
    )
    assert started.returncode == 0, started.stderr


def test_python_3_14_is_refused_before_pip_is_asked(tmp_path):
    (tmp_path / "scripts").mkdir()
    (tmp_path / "scripts" / "lab.py").write_bytes(LAB.read_bytes())
    pretend = (
        "import runpy, sys; sys.version_info = (3, 14, 0, 'final', 0); "
        f"sys.argv = [{str(tmp_path / 'scripts' / 'lab.py')!r}, 'test']; "
        "runpy.run_path(sys.argv[0], run_name='__main__')"
    )
    result = subprocess.run([sys.executable, "-c", pretend], capture_output=True, text=True, timeout=60)
    remedy = assert_refused_in_one_line(result, "3.14.0", tmp_path)
    assert remedy.endswith("scripts/lab.py test`"), remedy


def test_windows_branch_names_the_py_launcher_and_scripts_folder(monkeypatch):
    lab = load_lab()
    monkeypatch.setattr(lab, "on_windows", lambda: True)
    monkeypatch.setattr(lab.shutil, "which", lambda name: None)  # no Python found to name
    monkeypatch.setattr(lab.sys, "version_info", (3, 14, 0, "final", 0))
    assert lab.venv_python() == lab.VENV / "Scripts" / "python.exe"
    assert lab.lab_command() == r"py scripts\lab.py"
    refusal = lab.python_refusal(["start"])
    assert refusal.endswith(r"then run `py -3.13 scripts\lab.py start`"), refusal
    assert lab.venv_environment(launched=True)["LAB_COMMAND"] == r"py scripts\lab.py"


def test_an_intel_mac_is_offered_python_3_12_at_most(monkeypatch):
    lab = load_lab()
    monkeypatch.setattr(lab.sys, "platform", "darwin")
    monkeypatch.setattr(lab.platform, "machine", lambda: "x86_64")
    assert lab.supported_minors() == (10, 11, 12)
    monkeypatch.setattr(lab.sys, "version_info", (3, 13, 0, "final", 0))
    assert "runs on Python 3.10 to 3.12" in lab.python_refusal(["start"])


USAGE = (
    "[lab] usage: python3 scripts/lab.py run SCRIPT [flags], "
    "e.g. python3 scripts/lab.py run lesson_1/exercise_a/train_mnist.py --quick"
)


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (
            [],
            USAGE,
        ),
        (
            ["--quick"],
            USAGE,
        ),
        (["lesson_9/nothing.py"], f"[lab] run: no such script lesson_9/nothing.py (from {REPO})"),
    ],
)
def test_run_refuses_a_missing_script_in_one_line(args, expected, tmp_path):
    result = subprocess.run(
        [sys.executable, LAB, "run", *args], cwd=REPO, env=lab_env(tmp_path), capture_output=True, text=True, timeout=60
    )
    assert (result.returncode, result.stderr.splitlines(), result.stdout) == (2, [expected], "")
    assert list(tmp_path.iterdir()) == []


@pytest.mark.slow
def test_run_trains_an_activity_inside_the_venv_and_names_commands_that_work(tmp_path):
    """From another folder, with a PATH that has no .venv on it: what a student types."""
    env = lab_env(tmp_path / "runs")
    env.pop("VIRTUAL_ENV", None)
    env["PATH"] = "/usr/bin:/bin"
    args = ["run", "lesson_1/exercise_a/train_mnist.py", "--quick", "--epochs", "1", "--steps-per-epoch", "3"]
    result = subprocess.run(
        [sys.executable, LAB, *args], cwd=REPO, env=env, capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0, result.stderr[-3000:]
    run = only_run(tmp_path / "runs")
    assert run_json(run)["status"] == "finished"
    printed = re.search(r"See it in TensorBoard:\s+(.+)$", result.stdout, re.M).group(1)
    assert printed == f'python3 scripts/lab.py tensorboard "{run}"'
    # The printed command, run as printed: lab.py's TensorBoard serves that run.
    board_env = dict(env, TMPDIR=str(tmp_path))  # TensorBoard's own registry of servers, private
    command = [sys.executable, LAB, *shlex.split(printed)[2:], "--port", str(free_port())]
    board = subprocess.Popen(
        command, cwd=REPO, env=board_env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    try:
        output = read_until(board, "Open: http", timeout=120)
        assert f"serves {run}" in output, output
        address = re.search(r"Open: (http://\S+/)", output).group(1)
        served = json.loads(urllib.request.urlopen(address + "data/runs", timeout=30).read())
        written = sorted({str(p.parent.relative_to(run)) for p in run.rglob("events.out.tfevents.*")})
        assert sorted(served) == written and {"train", "validation"} <= set(served), (served, written)
    finally:
        board.send_signal(signal.SIGINT)
        board.wait(timeout=30)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def read_until(process: subprocess.Popen, marker: str, timeout: float) -> str:
    """What the process printed until `marker`; fails if it exits or stays silent past `timeout`."""
    import selectors

    # Read the pipe's bytes as they come: a readline() would pull every line that arrived together
    # into the file object's buffer, where the selector, which watches the descriptor, never sees
    # them (TensorBoard prints its address in the same write as the line before it).
    output, deadline, descriptor = "", time.monotonic() + timeout, process.stdout.fileno()
    selector = selectors.DefaultSelector()
    selector.register(descriptor, selectors.EVENT_READ)
    while marker not in output:
        if time.monotonic() > deadline or (process.poll() is not None and not selector.select(0)):
            raise AssertionError(f"no {marker!r} within {timeout} s (exit {process.poll()}): {output[-3000:]}")
        if selector.select(0.5):
            chunk = os.read(descriptor, 65536)
            if not chunk:
                raise AssertionError(f"no {marker!r} before the output ended (exit {process.poll()}): {output[-3000:]}")
            output += chunk.decode("utf-8", errors="replace")
    return output


@pytest.mark.slow
def test_notebook_serves_the_lessons_and_a_browser_sees_the_first_heading(tmp_path):
    from webtest import headless_chromium, save_screenshot

    env = lab_env(tmp_path / "runs", JUPYTER_RUNTIME_DIR=str(tmp_path / "jupyter"), HOME=str(tmp_path))
    command = [sys.executable, LAB, "notebook", "--no-browser", f"--port={free_port()}", "--ServerApp.ip=127.0.0.1"]
    server = subprocess.Popen(
        command, cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    try:
        output = read_until(server, "?token=", timeout=120)
        assert "[lab] starting JupyterLab on the repository" in output
        url = re.search(r"(http://127\.0\.0\.1:\d+/lab\?token=\w+)", output).group(1)
        page = url.replace("/lab?", "/lab/tree/lesson_1/exercise_a/train_mnist.ipynb?")
        with headless_chromium() as driver:
            from selenium.webdriver.common.by import By
            from selenium.webdriver.support import expected_conditions
            from selenium.webdriver.support.ui import WebDriverWait

            driver.get(page)
            heading = WebDriverWait(driver, 90).until(
                expected_conditions.visibility_of_element_located((By.CSS_SELECTOR, ".jp-RenderedMarkdown h1"))
            )
            save_screenshot(driver, "lab_notebook_lesson_1.png")
            assert heading.text.startswith("Lesson 1, Exercise A: your first convolutional network"), heading.text
    finally:
        server.send_signal(signal.SIGTERM)
        server.wait(timeout=30)


@pytest.mark.slow
@pytest.mark.parametrize(
    "words, full_tests_selected",
    [((), False), (("--full",), True), (("-m", "full"), True)],
    ids=["default", "--full", "-m full"],
)
def test_command_two_leaves_the_full_length_runs_out_unless_asked(words, full_tests_selected):
    """README's command two runs every test but the `full` marker's; `--full` adds them, and an
    explicit `-m` is the caller's own. Collected by the real command, through the real venv."""
    result = subprocess.run(
        [sys.executable, str(LAB), "test", *words, "--collect-only", "-q", "-p", "no:xdist", "tests/test_lesson_1.py"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    collected = [line for line in result.stdout.splitlines() if line.startswith("tests/test_lesson_1.py::")]
    full = [line for line in collected if "::test_full_" in line]
    assert collected and bool(full) == full_tests_selected
    assert all("::test_full_" in line for line in collected) == (words == ("-m", "full"))
