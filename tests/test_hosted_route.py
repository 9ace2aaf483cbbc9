"""The first code cell of every page (scripts/lab_bootstrap.py's PAGE_CELL) and the routes it takes.

Inside the lab's environment it does nothing (every other page test runs there). A Python without
the lab gets one line naming the command that runs the page inside it. A hosted kernel (Colab, or
LAB_HOSTED=1) gets the lab installed from the checkout by pip and imports it without a restart:
Colab cannot be reached from where the course is tested, so that route runs in a scratch venv on
a copy of the repository, through a real kernel.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

import lab_bootstrap
from labtest import REPO

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    import tomli as tomllib

REPOSITORY = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))["project"]["urls"]["Repository"]
PAGE_CELL = lab_bootstrap.page_cell(REPOSITORY)
NOTEBOOKS = sorted(
    subprocess.run(
        ["git", "ls-files", "lesson_*/*/*.ipynb"], cwd=REPO, capture_output=True, text=True, check=True
    ).stdout.split()
)
COLAB_BADGE = "https://colab.research.google.com/assets/colab-badge.svg"
# The dev extra's own tools: none may reach a student's (or Colab's) install.
DEV_ONLY = {"pytest", "pytest-xdist", "selenium", "ruff", "uv"}


def base_python() -> Path:
    """The interpreter .venv was made from: a Python that has never had the lab installed."""
    executable = getattr(sys, "_base_executable", None)
    if executable and Path(executable).exists() and Path(executable).resolve() != Path(sys.executable).resolve():
        return Path(executable)
    return Path(sys.base_prefix) / ("python.exe" if os.name == "nt" else "bin/python3")


def environment_without_the_lab(**extra: str) -> dict:
    """This process's environment without what points Python at .venv or at the lab."""
    env = {key: value for key, value in os.environ.items() if key not in ("VIRTUAL_ENV", "PYTHONPATH", "PYTHONHOME")}
    env.pop(lab_bootstrap.HOSTED_ENV, None)
    env.pop(lab_bootstrap.SOURCE_ENV, None)
    env.update(extra)
    return env


def colab_address(notebook: str) -> str:
    return f"https://colab.research.google.com/github/{REPOSITORY.removeprefix('https://github.com/')}/blob/main/{notebook}"


# --- the cell itself -----------------------------------------------------------------------


def test_the_page_cell_is_short_marked_extra_and_clones_the_published_repository():
    lines = PAGE_CELL.splitlines()
    # Counted as the duplicates tool counts: imports, comments and blank lines pass over.
    code = [line for line in lines if line.strip() and not line.lstrip().startswith(("#", "import ", "from "))]
    assert lines[0].startswith("# extra code")
    assert len(code) <= 5, code
    assert max(len(line) for line in lines) <= 120
    assert f"git clone -q {REPOSITORY}" in PAGE_CELL
    assert code[0] == 'if importlib.util.find_spec("labkit") is None:'  # all the rest is inside
    assert all(line.startswith("    ") for line in code[1:])


@pytest.mark.parametrize("notebook", NOTEBOOKS)
def test_every_page_opens_with_the_bootstrap_cell(notebook):
    """Right after the title, in the notebook and in its .py twin alike."""
    import jupytext

    cells = json.loads((REPO / notebook).read_text(encoding="utf-8"))["cells"]
    assert cells[0]["cell_type"] == "markdown"
    assert cells[1]["cell_type"] == "code"
    assert "".join(cells[1]["source"]) == PAGE_CELL, f"{notebook}: its first code cell is not lab_bootstrap.PAGE_CELL"
    twin = jupytext.read(REPO / notebook.replace(".ipynb", ".py")).cells
    assert [cell.cell_type for cell in twin[:2]] == ["markdown", "code"]
    assert twin[1].source == PAGE_CELL


@pytest.mark.parametrize("notebook", NOTEBOOKS)
def test_every_notebook_has_a_colab_badge_in_its_lesson_readme(notebook):
    readme = (REPO / notebook.split("/")[0] / "README.md").read_text(encoding="utf-8")
    assert f"[![Open in Colab]({COLAB_BADGE})]({colab_address(notebook)})" in readme
    assert "placeholder until the course is published" in readme


# --- outside the lab's environment -----------------------------------------------------------


def test_the_base_python_has_neither_the_lab_nor_keras(tmp_path):
    """What the refusal tests below rely on (run from an empty folder: the repository root would
    put the labkit folder itself on the path)."""
    probe = "import importlib.util as u; print([u.find_spec(name) is None for name in ('labkit', 'keras')])"
    result = subprocess.run(
        [base_python(), "-c", probe], cwd=tmp_path, env=environment_without_the_lab(), capture_output=True, text=True
    )
    assert result.stdout.strip() == "[True, True]", result


def run_page_outside_the_lab(python: Path, page: str, flags: list[str], tmp_path: Path) -> subprocess.CompletedProcess:
    folder = tmp_path / "cwd"
    folder.mkdir()
    env = environment_without_the_lab(LAB_RUNS_DIR=str(tmp_path / "runs"))
    return subprocess.run(
        [python, REPO / page, *flags], cwd=folder, env=env, capture_output=True, text=True, timeout=60
    )


@pytest.mark.parametrize(
    "page, flags, typed",
    [
        ("lesson_1/exercise_a/train_mnist.py", [], "lesson_1/exercise_a/train_mnist.py"),
        ("lesson_2/hello_keras/train_mnist.py", ["--quick"], "lesson_2/hello_keras/train_mnist.py --quick"),
        # The flags come back as a shell would need them typed.
        (
            "lesson_4/save_restore/save_restore.py",
            ["--logdir", "my runs"],
            "lesson_4/save_restore/save_restore.py --logdir 'my runs'",
        ),
        # Lesson 4's server and load check are scripts, not pages: the same line, from their guard.
        ("lesson_4/serve/serve.py", ["--port", "8000"], "lesson_4/serve/serve.py --port 8000"),
        ("lesson_4/serve/load_check.py", [], "lesson_4/serve/load_check.py"),
    ],
)
def test_a_page_run_by_a_python_without_the_lab_names_the_command_that_runs_it(page, flags, typed, tmp_path):
    result = run_page_outside_the_lab(base_python(), page, flags, tmp_path)
    assert result.returncode == 2
    assert result.stdout == ""
    assert result.stderr.splitlines() == [
        f"[lab] this page needs the course's packages: from the repository root run "
        f"python3 scripts/lab.py run {typed} (or activate .venv first)"
    ]
    assert [path.name for path in tmp_path.rglob("*")] == ["cwd"]  # wrote nothing: no runs/, no file


def python_3_8() -> Path | None:
    """A Python 3.8 on this machine, if there is one: the oldest the bootstrap promises to run on."""
    candidates = [shutil.which("python3.8"), *sorted(Path.home().glob(".pyenv/versions/3.8*/bin/python3.8"))]
    for candidate in filter(None, candidates):
        probe = subprocess.run(
            [candidate, "-c", "import sys; print(sys.version_info[:2])"], capture_output=True, text=True
        )
        if probe.returncode == 0 and probe.stdout.strip() == "(3, 8)":
            return Path(candidate)
    return None


def test_the_refusal_works_on_python_3_8(tmp_path):
    """A student's old Python gets the same line (and lab.py, when run, refuses it in its own)."""
    python = python_3_8()
    if python is None:
        pytest.skip("no Python 3.8 on this machine")
    result = run_page_outside_the_lab(python, "lesson_3/regression/train_regression.py", [], tmp_path)
    assert result.returncode == 2, result.stderr
    assert result.stderr.splitlines() == [
        lab_bootstrap.script_refusal(REPO / "lesson_3/regression/train_regression.py", [])
    ]


def test_the_lines_name_windows_commands_on_windows():
    """Simulated: this branch only runs on Windows, where the launcher is `py` and paths use \\."""
    page = REPO / "lesson_1" / "exercise_a" / "train_mnist.py"
    line = lab_bootstrap.script_refusal(page, ["--quick", "my run"], windows=True)
    assert r'run py scripts\lab.py run lesson_1\exercise_a\train_mnist.py --quick "my run" (or' in line
    assert r"with py scripts\lab.py notebook (" in lab_bootstrap.notebook_refusal(windows=True)


# --- a hosted kernel: the lab installed into a scratch venv, from a copy of the repository -----


def copy_of_the_checkout(destination: Path) -> Path:
    """The files a clone would hold (and this checkout's uncommitted ones), without .venv or runs."""
    listed = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split("\0")
    for name in filter(None, listed):
        source = REPO / name
        if source.is_file():  # a tracked file deleted in the working tree is not copied
            (destination / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, destination / name)
    return destination


def run_cells(python: Path, folder: Path, cells: list[str], env: dict, kernels: Path):
    """Execute `cells` in a real kernel of `python` whose working folder is `folder`, as Jupyter
    runs a notebook. Returns the executed notebook; raises nbclient's CellExecutionError."""
    import nbclient
    import nbformat
    from jupyter_client.kernelspec import KernelSpecManager
    from jupyter_client.manager import AsyncKernelManager

    spec = kernels / "scratch"
    spec.mkdir(parents=True, exist_ok=True)
    argv = [str(python), "-m", "ipykernel_launcher", "-f", "{connection_file}"]
    (spec / "kernel.json").write_text(json.dumps({"argv": argv, "display_name": "scratch", "language": "python"}))
    notebook = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(source) for source in cells])
    manager = AsyncKernelManager(
        kernel_name="scratch", kernel_spec_manager=KernelSpecManager(kernel_dirs=[str(kernels)])
    )
    client = nbclient.NotebookClient(
        notebook, km=manager, kernel_name="scratch", timeout=1800, resources={"metadata": {"path": str(folder)}}
    )
    with client.setup_kernel(env=env, cleanup_kc=True):
        client.execute()
    return notebook


def pip_list(python: Path) -> dict:
    listed = subprocess.run(
        [python, "-m", "pip", "list", "--format=json"], capture_output=True, text=True, check=True
    ).stdout
    return {package["name"].lower(): package for package in json.loads(listed)}


@pytest.mark.slow
@pytest.mark.long  # pip downloads and installs TensorFlow (572 MB) into a scratch venv: 2-3 minutes
def test_a_hosted_kernel_installs_the_runtime_set_and_imports_the_lab_without_a_restart(tmp_path):
    import nbclient.exceptions
    import nbformat

    checkout = copy_of_the_checkout(tmp_path / "keras-course-lab")
    # Pins nobody can install: a bootstrap that read the lock (-r or -c) would fail on them.
    (checkout / "requirements-lock.txt").write_text("keras==0.0.0.dev0\ntensorflow==0.0.0.dev0\n")
    venv = tmp_path / "venv"
    subprocess.run([base_python(), "-m", "venv", venv], check=True, timeout=300)
    python = venv / "bin" / "python"
    # A kernel is what Colab has before the lab: ipykernel, nothing of the course.
    subprocess.run([python, "-m", "pip", "install", "--quiet", "ipykernel"], check=True, timeout=900)
    assert "keras" not in pip_list(python)
    page_folder = checkout / "lesson_1" / "exercise_a"
    env = environment_without_the_lab(PATH=f"{venv / 'bin'}{os.pathsep}{os.environ['PATH']}")
    after = "from labkit import cli\nimport keras\nprint('imported', cli.__name__, keras.__version__)"

    # Not hosted: a notebook kernel of the student's own stops at the cell, with one line.
    with pytest.raises(nbclient.exceptions.CellExecutionError) as stopped:
        run_cells(python, page_folder, [PAGE_CELL, after], env, tmp_path / "kernels")
    assert (stopped.value.ename, stopped.value.evalue) == ("SystemExit", lab_bootstrap.notebook_refusal())
    assert "keras-course-lab" not in pip_list(python)

    # Hosted: the same cell installs the lab into the running kernel; the next cell imports it.
    started = time.monotonic()
    notebook = run_cells(python, page_folder, [PAGE_CELL, after], {**env, "LAB_HOSTED": "1"}, tmp_path / "kernels")
    seconds = time.monotonic() - started
    printed = [nbformat.from_dict(output) for output in notebook.cells[0].outputs]
    # One line, though in two writes: the start, then the outcome once pip is done.
    assert {(output.output_type, output.get("name")) for output in printed} == {("stream", "stdout")}, printed
    line = "".join(output.text for output in printed)
    expected = (
        rf"\[lab\] installing the lab from {re.escape(str(checkout.resolve()))} with pip, pyproject\.toml's runtime "
        rf"packages only \(a few minutes\)\.\.\. added (\d+) packages in (\d+ min )?\d+ s\n"
    )
    assert re.fullmatch(expected, line), line
    assert int(re.fullmatch(expected, line).group(1)) > 50  # TensorFlow, Keras, Jupyter and theirs
    assert notebook.cells[1].outputs[0].text.startswith("imported labkit.cli 3."), notebook.cells[1].outputs

    installed = pip_list(python)
    assert installed["keras-course-lab"]["editable_project_location"] == str(checkout.resolve())
    assert {"tensorflow", "keras", "jupyterlab", "keras-tuner"} <= set(installed)
    assert not DEV_ONLY & set(installed), DEV_ONLY & set(installed)
    print(f"hosted install and imports: {seconds:.0f} s ({line.strip()})")
