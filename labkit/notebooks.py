"""Write course notebooks from cells kept in Python, without outputs.

Each lesson keeps its notebooks' cells in `lesson_N/make_notebooks.py`, so a change to a notebook
is a reviewable diff of Python strings rather than of .ipynb JSON. Cell ids are derived from the
notebook name and position, so regenerating an unchanged notebook rewrites identical bytes, and
tests/test_repo.py checks that every committed notebook matches its generator.
"""

from __future__ import annotations

from pathlib import Path

Cells = list[tuple[str, str]]  # ("md" | "code", source)


def build_notebook(name: str, cells: Cells):
    import nbformat

    notebook = nbformat.v4.new_notebook()
    notebook.metadata["kernelspec"] = {"display_name": "Python 3", "language": "python", "name": "python3"}
    notebook.metadata["language_info"] = {"name": "python"}
    for number, (kind, source) in enumerate(cells):
        source = source.strip("\n")
        cell = nbformat.v4.new_markdown_cell(source) if kind == "md" else nbformat.v4.new_code_cell(source)
        cell.id = f"{name}-{number:02d}"
        notebook.cells.append(cell)
    nbformat.validate(notebook)
    return notebook


def write_notebooks(lesson_dir: Path, notebooks: dict[str, Cells]) -> list[Path]:
    """Write `<lesson_dir>/<folder>/<folder>.ipynb` for each folder name in `notebooks`."""
    import nbformat

    written = []
    for folder, cells in notebooks.items():
        path = Path(lesson_dir) / folder / f"{folder}.ipynb"
        nbformat.write(build_notebook(folder, cells), path)
        print(f"wrote {path}")
        written.append(path)
    return written
