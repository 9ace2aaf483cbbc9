"""Code defined on one page and used again on others, without a second copy.

A page teaches a model or a callback by defining it in a cell, in plain sight. When later pages of
the same lesson train it again, the teaching page marks the definition with a `# @save` line just
above it (d2l marks its reusable helpers the same way), and the lesson's `models.py` takes it from
there with `saved_definitions`: only the page's imports and its definitions are executed, never the
rest of the page (no flags, no data, no run).
"""

from __future__ import annotations

import ast
import types
from pathlib import Path

from labkit import REPO_ROOT

SAVE_MARK = "# @save"


def definitions(page: str | Path, *, saved_only: bool = False, constants: bool = False) -> types.SimpleNamespace:
    """The top-level functions and classes of `page` (a path from the repository root), with the
    page's imports and, with `constants`, its UPPER_CASE assignments. `saved_only` keeps only the
    definitions marked `# @save`."""
    path = Path(REPO_ROOT) / page
    source = path.read_text(encoding="utf-8")
    lines = source.splitlines()
    tree = ast.parse(source, str(path))

    def marked(node) -> bool:
        first = min([node.lineno] + [decorator.lineno for decorator in node.decorator_list])
        return first >= 2 and lines[first - 2].strip() == SAVE_MARK

    def kept(node) -> bool:
        # A lesson's models.py loads saved definitions from its pages, and pages import models.py:
        # saved definitions get the page's other imports only, so that the two never loop.
        if isinstance(node, ast.Import):
            return not (saved_only and any(alias.name.startswith("lesson_") for alias in node.names))
        if isinstance(node, ast.ImportFrom):
            return not (saved_only and (node.module or "").startswith("lesson_"))
        if isinstance(node, (ast.FunctionDef, ast.ClassDef)):
            return marked(node) or not saved_only
        if constants and isinstance(node, ast.Assign):
            return all(isinstance(t, ast.Name) and t.id.isupper() for t in node.targets)
        return False

    module = ast.Module(body=[node for node in tree.body if kept(node)], type_ignores=[])
    namespace = {"__name__": f"page:{Path(page).as_posix()}", "__file__": str(path)}
    # dont_inherit: not this module's `from __future__ import annotations`, which would turn the
    # page's annotations into strings that @dataclass then looks up in a module that is not there.
    exec(compile(module, str(path), "exec", dont_inherit=True), namespace)
    return types.SimpleNamespace(**{name: value for name, value in namespace.items() if not name.startswith("__")})


def saved_definitions(page: str | Path) -> types.SimpleNamespace:
    """What `page` marks `# @save`, ready to use."""
    return definitions(page, saved_only=True)
