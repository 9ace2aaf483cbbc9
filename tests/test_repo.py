"""House rules that keep the course consistent: layout, notebooks, the two commands."""

import json
import re
from pathlib import Path

import pytest

from labtest import REPO

NOTEBOOKS = sorted(REPO.glob("lesson_*/**/*.ipynb"))
SCRIPTS = sorted(REPO.glob("lesson_*/*/train_mnist.py"))
CARD_SECTIONS = ("goal", "steps", "expected", "questions")


def test_the_course_has_activities():
    assert len(SCRIPTS) >= 2 and len(NOTEBOOKS) >= 2


@pytest.mark.parametrize("notebook", NOTEBOOKS, ids=lambda p: str(p.relative_to(REPO)))
def test_committed_notebooks_carry_no_outputs(notebook):
    content = json.loads(notebook.read_text())
    for cell in content["cells"]:
        if cell["cell_type"] == "code":
            assert cell["outputs"] == [] and cell["execution_count"] is None, \
                f"{notebook.name} carries outputs: clear them before committing"


@pytest.mark.parametrize("script", SCRIPTS, ids=lambda p: str(p.relative_to(REPO)))
def test_every_activity_has_a_notebook_that_imports_its_script_and_a_card(script):
    folder = script.parent
    notebooks = list(folder.glob("*.ipynb"))
    assert notebooks, f"{folder} has no notebook"
    sources = "\n".join("".join(cell["source"]) for nb in notebooks
                        for cell in json.loads(nb.read_text())["cells"] if cell["cell_type"] == "code")
    assert re.search(r"from (train_mnist|lesson_\d\.\w+\.train_mnist) import", sources), \
        f"the notebook in {folder} should import train_mnist's functions, not copy them"
    card = (folder / "README.md").read_text().lower()
    for section in CARD_SECTIONS:
        assert section in card, f"{folder}/README.md lacks a '{section}' part"
    assert f"python {script.relative_to(REPO).as_posix()}" in card


def test_readme_quickstart_matches_ci():
    readme = (REPO / "README.md").read_text()
    ci = (REPO / ".ci" / "run").read_text()
    assert "python3 scripts/lab.py start" in readme
    assert "python3 scripts/lab.py test" in readme
    assert "exec python3 scripts/lab.py test" in ci


def test_requirements_have_lower_bounds():
    lines = [line.strip() for line in (REPO / "requirements.txt").read_text().splitlines()]
    packages = [line for line in lines if line and not line.startswith(("#", "-"))]
    assert packages and all(">=" in line for line in packages), packages
    names = {re.split(r"[<>=\[]", line)[0].lower() for line in packages}
    for needed in ("tensorflow", "tensorboard", "numpy", "pandas", "matplotlib", "scikit-learn",
                   "notebook", "ipykernel", "pytest", "nbclient"):
        assert needed in names


@pytest.mark.slow
def test_command_one_checks_the_machine_trains_and_prints_the_tensorboard_command(runs_dir):
    """README's command one, in quick mode, on the venv that command two already built."""
    from labtest import only_run, run_json, run_script

    result = run_script("scripts/lab.py", "start", "--quick", runs_dir=runs_dir)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert "Verdict: READY" in result.stdout
    run = only_run(runs_dir)
    assert run_json(run)["status"] == "finished"
    assert f'tensorboard --logdir "{run}"' in result.stdout


GENERATORS = sorted(REPO.glob("lesson_*/make_notebooks.py"))


def generated_notebooks():
    import importlib

    for generator in GENERATORS:
        module = importlib.import_module(f"{generator.parent.name}.make_notebooks")
        for folder, cells in module.NOTEBOOKS.items():
            yield generator.parent / folder / f"{folder}.ipynb", folder, cells


def test_every_notebook_has_a_generator():
    assert sorted(path for path, _, _ in generated_notebooks()) == NOTEBOOKS


@pytest.mark.parametrize("path, name, cells", list(generated_notebooks()),
                         ids=lambda value: value.name if isinstance(value, Path) else "")
def test_committed_notebook_matches_its_generator(path, name, cells):
    import nbformat

    from labkit.notebooks import build_notebook

    committed = nbformat.read(path, as_version=4)
    expected = build_notebook(name, cells)
    assert [(c.cell_type, c.source) for c in committed.cells] == \
        [(c.cell_type, c.source) for c in expected.cells], \
        f"{path.name} differs from {path.parent.parent.name}/make_notebooks.py: regenerate it"
