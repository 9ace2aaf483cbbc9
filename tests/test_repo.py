"""House rules that keep the course consistent: layout, notebooks, the two commands."""

import json
import re
import sys
from pathlib import Path

import pytest

from labtest import REPO

# Jupyter keeps autosaved copies in .ipynb_checkpoints/ (git ignores them): not course notebooks.
NOTEBOOKS = sorted(p for p in REPO.glob("lesson_*/**/*.ipynb") if ".ipynb_checkpoints" not in p.parts)
# The activity files: one that trains, or in Lesson 4 one that saves or serves a trained model.
SCRIPTS = sorted(REPO.glob("lesson_*/*/train_*.py")) + [
    REPO / "lesson_4" / "save_restore" / "save_restore.py",
    REPO / "lesson_4" / "serve" / "serve.py",
]
CARD_SECTIONS = ("goal", "steps", "expected", "questions")


def test_the_course_has_activities():
    assert len(SCRIPTS) >= 2 and len(NOTEBOOKS) >= 2


@pytest.mark.parametrize("notebook", NOTEBOOKS, ids=lambda p: str(p.relative_to(REPO)))
def test_committed_notebooks_carry_no_outputs(notebook):
    content = json.loads(notebook.read_text())
    for cell in content["cells"]:
        if cell["cell_type"] == "code":
            assert cell["outputs"] == [] and cell["execution_count"] is None, (
                f"{notebook.name} carries outputs: clear them before committing"
            )


def code_cells(notebook: Path) -> str:
    """The source of a notebook's code cells, joined; magics and shell lines left out."""
    cells = [cell for cell in json.loads(notebook.read_text())["cells"] if cell["cell_type"] == "code"]
    lines = "\n".join("".join(cell["source"]) for cell in cells).splitlines()
    return "\n".join(line for line in lines if not line.lstrip().startswith(("%", "!")))


# Pages that train with Keras: every notebook that starts a run and imports keras.
TRAINING_PAGES = [nb for nb in NOTEBOOKS if "start_run(" in code_cells(nb) and "import keras" in code_cells(nb)]
# The lessons about TensorBoard itself.
TENSORBOARD_LESSONS = [
    REPO / "lesson_1" / "exercise_a" / "train_mnist.ipynb",
    REPO / "lesson_1" / "activity_2" / "train_mnist.ipynb",
    REPO / "lesson_3" / "tensorboard" / "train_mnist.ipynb",
]


@pytest.mark.parametrize("script", SCRIPTS, ids=lambda p: str(p.relative_to(REPO)))
def test_every_activity_is_one_file_paired_with_its_notebook_and_has_a_card(script):
    folder = script.parent
    if script.name not in ("serve.py",):  # the digit server is a program; serving.ipynb is its page
        assert JUPYTEXT_HEADER.match(script.read_text(encoding="utf-8")), (
            f"{script.relative_to(REPO)} should be the activity's page: a py:percent file paired with a notebook"
        )
        assert script.with_suffix(".ipynb").is_file(), f"{script.relative_to(REPO)} has no paired notebook"
    card = (folder / "README.md").read_text().lower()
    for section in CARD_SECTIONS:
        assert section in card, f"{folder}/README.md lacks a '{section}' part"
    assert f"python {script.relative_to(REPO).as_posix()}" in card


def test_every_notebook_is_executed_by_a_test():
    """Script and notebook are one file, but only a kernel runs the magics (`%tensorboard`), the
    inline figures and the notebook's own defaults: every notebook runs in CI."""
    tests = "\n".join(path.read_text() for path in (REPO / "tests").glob("test_*.py"))
    missing = [str(nb.relative_to(REPO)) for nb in NOTEBOOKS if nb.relative_to(REPO).as_posix() not in tests]
    assert not missing, f"no test executes {missing}"


def test_the_course_has_keras_training_pages():
    assert len(TRAINING_PAGES) >= 12, [nb.relative_to(REPO) for nb in TRAINING_PAGES]


@pytest.mark.parametrize("notebook", TRAINING_PAGES, ids=lambda p: str(p.relative_to(REPO)))
def test_a_page_that_trains_shows_compile_and_fit_in_its_own_cells(notebook):
    code = code_cells(notebook)
    assert ".compile(" in code, f"{notebook.relative_to(REPO)} trains a Keras model but never shows model.compile("
    assert re.search(r"\.(fit|search)\(", code), (
        f"{notebook.relative_to(REPO)} never shows .fit( (or a search's .search()"
    )


@pytest.mark.parametrize("notebook", TENSORBOARD_LESSONS, ids=lambda p: str(p.relative_to(REPO)))
def test_a_tensorboard_lesson_shows_the_tensorboard_callback(notebook):
    assert "keras.callbacks.TensorBoard(" in code_cells(notebook), notebook.relative_to(REPO)


@pytest.mark.parametrize("notebook", NOTEBOOKS, ids=lambda p: str(p.relative_to(REPO)))
def test_run_callbacks_come_after_a_visible_tensorboard_callback(notebook):
    """The lab's callbacks do not write TensorBoard's curves: a page that uses them shows the
    callback that does."""
    code = code_cells(notebook)
    if "run.callbacks(" in code:
        assert "keras.callbacks.TensorBoard(" in code, notebook.relative_to(REPO)


LESSON_FILES = sorted(p for p in REPO.glob("lesson_*/**/*.py") if ".ipynb_checkpoints" not in p.parts)


def imported_modules(tree) -> list[str]:
    import ast

    names = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.append(node.module)
            names += [f"{node.module}.{alias.name}" for alias in node.names]
    return names


@pytest.mark.parametrize("path", LESSON_FILES, ids=lambda p: str(p.relative_to(REPO)))
def test_lesson_code_imports_keras_plainly_and_no_other_activity(path):
    import ast

    tree = ast.parse(path.read_text(encoding="utf-8"))
    relative = path.relative_to(REPO)
    lesson = relative.parts[0]
    own_folder = ".".join(relative.parts[:2]) if len(relative.parts) > 2 else None
    for module in imported_modules(tree):
        assert not module.startswith(("labkit.deferred", "labkit.session")), f"{relative} imports {module}"
        parts = module.split(".")
        if parts[0].startswith("lesson_") and len(parts) >= 2 and parts[1] != "models":
            assert ".".join(parts[:2]) == own_folder, f"{relative} imports another activity: {module}"
        if parts[0].startswith("lesson_") and len(parts) >= 2 and parts[1] == "models":
            assert parts[0] == lesson, f"{relative} imports another lesson's models: {module}"


@pytest.mark.parametrize("path", LESSON_FILES, ids=lambda p: str(p.relative_to(REPO)))
def test_keras_subclasses_in_lesson_code_are_top_level_classes(path):
    import ast

    tree = ast.parse(path.read_text(encoding="utf-8"))
    for function in (n for n in ast.walk(tree) if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef))):
        nested = [n.name for n in ast.walk(function) if isinstance(n, ast.ClassDef)]
        assert not nested, f"{path.relative_to(REPO)}: class {nested} is defined inside {function.name}()"


def test_readme_quickstart_matches_ci():
    readme = (REPO / "README.md").read_text()
    ci = (REPO / ".ci" / "run").read_text()
    assert "python3 scripts/lab.py start" in readme
    assert "python3 scripts/lab.py test" in readme
    assert "exec python3 scripts/lab.py test" in ci


def test_pyproject_declares_the_runtime_set_with_lower_bounds_and_a_dev_extra():
    tomllib = pytest.importorskip("tomllib" if sys.version_info >= (3, 11) else "tomli")

    from stack_doctor.core import project_requirements

    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    runtime = [line for line in project_requirements((REPO / "pyproject.toml").read_text()).splitlines() if line]
    assert runtime and all(">=" in line or "<" in line for line in runtime), runtime
    names = {re.split(r"[<>=\[;]", line)[0].strip().lower() for line in runtime}
    assert {"tensorflow", "keras", "tensorboard", "numpy", "pandas", "matplotlib", "scikit-learn"} <= names
    assert {"jupyterlab", "notebook", "ipykernel", "jupytext", "psutil"} <= names
    dev = {re.split(r"[<>=\[;]", line)[0].strip().lower() for line in project["optional-dependencies"]["dev"]}
    assert {"pytest", "pytest-xdist", "nbclient", "selenium", "ruff", "uv"} <= dev
    assert not dev & names, "a package is either a student's or a developer's"
    assert not (REPO / "requirements.txt").exists(), "pyproject.toml is the one list of dependencies"


@pytest.mark.slow
def test_command_one_checks_the_machine_trains_and_prints_the_tensorboard_command(runs_dir):
    """README's command one, in quick mode, on the venv that command two already built."""
    from labtest import only_run, run_json, run_script

    short = ("--quick", "--epochs", "1", "--steps-per-epoch", "5")  # a few steps: the command is under test
    result = run_script("scripts/lab.py", "start", *short, runs_dir=runs_dir)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert "Verdict: READY" in result.stdout
    run = only_run(runs_dir)
    assert run_json(run)["status"] == "finished"
    # Started through lab.py, the run names lab.py's TensorBoard command (nothing to activate),
    # and `start` ends with the commands that work as printed (tests/test_lab_commands.py runs them).
    assert f'python3 scripts/lab.py tensorboard "{run}"' in result.stdout
    closing = result.stderr.splitlines()[-4:]
    assert closing[0] == "[lab] what next, with nothing to activate:", closing
    assert [line.split("#")[0].split()[1:] for line in closing[1:]] == [
        ["python3", "scripts/lab.py", "tensorboard"],
        ["python3", "scripts/lab.py", "notebook"],
        ["python3", "scripts/lab.py", "run", "lesson_1/activity_2/train_mnist.py"],
    ]


# ---------------------------------------------------------------------------------------------
# Notebooks and their py:percent twins (jupytext.toml pairs them; see README.md)

JUPYTEXT_HEADER = re.compile(r"\A# ---\n# jupyter:\n(?:#.*\n)*?#\s+format_name: (\w+)\n")


def twin_of(notebook: Path) -> Path:
    return notebook.with_suffix(".py")


def text_notebooks(root: Path) -> list[Path]:
    """The .py files under lesson_*/ that carry a jupytext header, i.e. the notebooks' twins."""
    return sorted(
        p
        for p in root.glob("lesson_*/**/*.py")
        if ".ipynb_checkpoints" not in p.parts and JUPYTEXT_HEADER.match(p.read_text(encoding="utf-8"))
    )


def cell_differences(notebook: Path) -> list[str]:
    """How the cells of `notebook` and of its twin differ (type and source), read both with jupytext."""
    import jupytext

    ipynb = [(cell.cell_type, cell.source) for cell in jupytext.read(notebook).cells]
    text = [(cell.cell_type, cell.source) for cell in jupytext.read(twin_of(notebook)).cells]
    differences = [] if len(ipynb) == len(text) else [f"{len(ipynb)} cells in the .ipynb, {len(text)} in the .py"]
    for number, (left, right) in enumerate(zip(ipynb, text, strict=False)):
        if left != right:
            differences.append(
                f"cell {number}: {left[0]} {left[1][:60]!r} in the .ipynb, {right[0]} {right[1][:60]!r} in the .py"
            )
    return differences


def test_every_notebook_has_its_py_percent_twin_and_every_twin_its_notebook():
    from jupytext.config import find_jupytext_configuration_file, load_jupytext_config
    from jupytext.paired_paths import paired_paths

    assert sorted(twin_of(notebook) for notebook in NOTEBOOKS) == text_notebooks(REPO), (
        "each lesson_*/**/NAME.ipynb needs a NAME.py twin and vice versa: `jupytext --sync NAME.ipynb`"
    )
    for notebook in NOTEBOOKS:
        twin = twin_of(notebook)
        assert JUPYTEXT_HEADER.match(twin.read_text(encoding="utf-8")).group(1) == "percent", twin
        # The repository's jupytext.toml is what pairs them, for Jupyter and `jupytext --sync` alike.
        assert find_jupytext_configuration_file(str(notebook.parent)) == str(REPO / "jupytext.toml")
        formats = load_jupytext_config(str(notebook.parent)).default_formats(str(notebook))
        paired = {Path(path): fmt.get("format_name") for path, fmt in paired_paths(str(notebook), "ipynb", formats)}
        assert paired == {notebook: None, twin: "percent"}, paired


@pytest.mark.parametrize("notebook", NOTEBOOKS, ids=lambda p: str(p.relative_to(REPO)))
def test_each_notebook_and_its_twin_hold_the_same_cells(notebook):
    differences = cell_differences(notebook)
    assert not differences, (
        f"{notebook.relative_to(REPO)} and its .py twin disagree (one was edited outside Jupyter): "
        f"keep the edited one, then run `jupytext --sync {notebook.relative_to(REPO).as_posix()}`\n"
        + "\n".join(differences)
    )


def copy_with_twin(notebook: Path, root: Path) -> Path:
    """Copy jupytext.toml and one notebook pair under `root`, at the same relative paths."""
    import shutil

    copy = root / notebook.relative_to(REPO)
    copy.parent.mkdir(parents=True)
    shutil.copyfile(REPO / "jupytext.toml", root / "jupytext.toml")
    shutil.copyfile(notebook, copy)
    shutil.copyfile(twin_of(notebook), twin_of(copy))
    return copy


def without_jupytext_version(text: str) -> str:
    """The twin minus the header line naming the jupytext release that wrote it."""
    return re.sub(r"(?m)^#\s+jupytext_version: .*\n", "", text)


@pytest.mark.parametrize("notebook", NOTEBOOKS, ids=lambda p: str(p.relative_to(REPO)))
def test_a_notebook_saved_in_jupyter_updates_its_twin(notebook, tmp_path):
    """Jupyter (Notebook 7 or JupyterLab) saves through the contents manager that jupytext's server
    extension derives from jupyter_server's default one; save an edit through that same class."""
    import asyncio

    import nbformat
    from jupyter_server.services.contents.largefilemanager import AsyncLargeFileManager
    from jupytext import build_async_jupytext_contents_manager_class

    copy = copy_with_twin(notebook, tmp_path)
    twin_before = twin_of(copy).read_text(encoding="utf-8")
    edited = nbformat.read(copy, as_version=4)
    number, cell = next((n, c) for n, c in enumerate(edited.cells) if c.cell_type == "markdown")
    cell.source += "\n\nA sentence added in Jupyter."
    # What the browser sends: the notebook as JSON, each cell's source one string.
    model = {"type": "notebook", "format": "json", "content": json.loads(json.dumps(edited))}
    contents_manager = build_async_jupytext_contents_manager_class(AsyncLargeFileManager)(root_dir=str(tmp_path))
    asyncio.run(contents_manager.save(model, copy.relative_to(tmp_path).as_posix()))

    twin_after = twin_of(copy).read_text(encoding="utf-8")
    assert "# A sentence added in Jupyter." in twin_after
    assert not cell_differences(copy)
    # The save changed that one cell and nothing else, in either file: the committed files are
    # exactly what Jupyter writes, so a save never churns them.
    saved = nbformat.read(copy, as_version=4)
    original = nbformat.read(notebook, as_version=4)
    original.cells[number].source = cell.source
    assert saved == original
    changed = [
        line
        for line in without_jupytext_version(twin_after).splitlines()
        if line not in without_jupytext_version(twin_before).splitlines()
    ]
    assert changed == ["# A sentence added in Jupyter."]
    assert all(not cell.get("outputs") for cell in saved.cells)


def test_an_edited_twin_fails_the_pairing_until_jupytext_sync(tmp_path):
    """The other workflow: edit the .py twin in an editor, then `jupytext --sync`."""
    import os

    import nbformat
    from jupytext.cli import jupytext as jupytext_cli

    copy = copy_with_twin(NOTEBOOKS[0], tmp_path)
    twin = twin_of(copy)
    text = twin.read_text(encoding="utf-8")
    cells = text.split("\n# %%\n")
    cells[1] = "print('edited in the .py twin')\n" + cells[1]
    twin.write_text("\n# %%\n".join(cells), encoding="utf-8")
    stamp = twin.stat().st_mtime
    os.utime(copy, (stamp - 10, stamp - 10))  # the twin is the newer file: --sync reads it

    assert cell_differences(copy), "the pairing test must fail while the two files disagree"
    jupytext_cli(["--sync", str(copy)])
    assert not cell_differences(copy)
    code = [cell.source for cell in nbformat.read(copy, as_version=4).cells if cell.cell_type == "code"]
    assert code[0].startswith("print('edited in the .py twin')\n")
