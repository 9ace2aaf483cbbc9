"""The toolkit's shape: no import cycle among labkit's modules, none of them over 400 lines, and
students' code (labkit outside labkit/instructor, and the lessons) never importing the
instructor's tools.

The sources are read with `ast`, never imported, so this takes a fraction of a second and needs
no TensorFlow. Imports inside functions count like those at the top: one moved into a function
still runs, so it hides a cycle without breaking it.
"""

from __future__ import annotations

import ast
from pathlib import Path

from labtest import REPO

LABKIT = REPO / "labkit"
INSTRUCTOR = "labkit.instructor"
MAX_LINES = 400


def python_files(folder: Path) -> list[Path]:
    return sorted(
        path for path in folder.rglob("*.py") if not any(part.startswith(".") for part in path.relative_to(REPO).parts)
    )


def module_name(path: Path, root: Path = REPO) -> str:
    parts = path.relative_to(root).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imported_names(path: Path, root: Path = REPO) -> set[str]:
    """Every absolute name a file imports, anywhere in it. `from package import name` gives both
    `package` and `package.name`, since the name may be a module; `a.b.c` also gives its parent
    packages `a` and `a.b`, whose __init__ runs first."""
    module = module_name(path, root).split(".")
    package = module if path.name == "__init__.py" else module[:-1]
    names = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = package[: len(package) - node.level + 1] if node.level else []
            origin = ".".join(base + ([node.module] if node.module else []))
            names.add(origin)
            names.update(f"{origin}.{alias.name}" for alias in node.names)
    parents = {".".join(name.split(".")[:i]) for name in names for i in range(1, name.count(".") + 1)}
    return names | parents


def labkit_import_graph() -> dict[str, set[str]]:
    """labkit module -> the labkit modules it imports (itself left out)."""
    files = {module_name(path): path for path in python_files(LABKIT)}
    return {name: (imported_names(path) & files.keys()) - {name} for name, path in files.items()}


def tangles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected groups of more than one module (Tarjan's algorithm): each is a cycle."""
    index, low, stack, on_stack, groups = {}, {}, [], set(), []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for target in sorted(graph[node]):
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in on_stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            group = []
            while not group or group[-1] != node:
                group.append(stack.pop())
                on_stack.discard(group[-1])
            if len(group) > 1:
                groups.append(sorted(group))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return groups


def one_cycle(graph: dict[str, set[str]], group: list[str]) -> list[str]:
    """A shortest path from the group's first module back to itself, inside the group."""
    start, inside = group[0], set(group)
    paths = {start: [start]}
    frontier = [start]
    while frontier:
        following = []
        for node in frontier:
            for target in sorted(graph[node] & inside):
                if target == start:
                    return paths[node] + [start]
                if target not in paths:
                    paths[target] = paths[node] + [target]
                    following.append(target)
        frontier = following
    raise AssertionError(f"{group} is not a cycle")


def test_the_import_reader_sees_imports_inside_functions_and_relative_ones(tmp_path):
    package = tmp_path / "labkit" / "instructor"
    package.mkdir(parents=True)
    source = package / "tool.py"
    source.write_text("import os\n\ndef later():\n    from labkit.runs import RUN_JSON\n    from . import export\n")
    found = imported_names(source, root=tmp_path)
    assert {"os", "labkit", "labkit.runs", "labkit.instructor", "labkit.instructor.export"} <= found


def test_labkit_has_no_import_cycle():
    graph = labkit_import_graph()
    assert "labkit.instructor.export" in graph["labkit.instructor.catalog"], "the reader lost an import"
    cycles = [" -> ".join(one_cycle(graph, group)) for group in tangles(graph)]
    assert not cycles, "import cycles among labkit's modules:\n  " + "\n  ".join(cycles)


def test_no_labkit_module_is_over_400_lines():
    too_long = [
        f"{path.relative_to(REPO)}: {count} lines"
        for path in python_files(LABKIT)
        if (count := len(path.read_text(encoding="utf-8").splitlines())) > MAX_LINES
    ]
    assert not too_long, f"labkit modules over {MAX_LINES} lines (split them):\n  " + "\n  ".join(too_long)


def test_students_code_never_imports_the_instructor_tools():
    students = [path for path in python_files(LABKIT) if not module_name(path).startswith(INSTRUCTOR)]
    for lesson in sorted(REPO.glob("lesson_*")):
        students += python_files(lesson)
    offenders = [
        f"{path.relative_to(REPO)} imports {name}"
        for path in students
        for name in sorted(imported_names(path))
        if name == INSTRUCTOR or name.startswith(INSTRUCTOR + ".")
    ]
    assert not offenders, "students' code must not depend on labkit.instructor:\n  " + "\n  ".join(offenders)
