"""What every part of the doctor shares: the row type, its statuses, outside-command results.

Annotations are postponed (`from __future__`), so that a Python too old for the course still
loads these modules and the python row can say what is wrong with it.
"""

from __future__ import annotations

import os
import re
import shlex
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

SCRIPTS_DIR = Path(__file__).resolve().parents[1]
REPO_ROOT = SCRIPTS_DIR.parent
ENTRY_SCRIPT = SCRIPTS_DIR / "test_stack.py"
# The course's runtime dependencies and their lower bounds: [project] dependencies.
PYPROJECT = REPO_ROOT / "pyproject.toml"

OK, WARN, FAIL = "OK", "WARN", "FAIL"
STATUSES = (OK, WARN, FAIL)

COMMAND_TIMEOUT_S = 60.0
INSTALL_EVERYTHING = (
    "from the repository root, run: python3 scripts/lab.py setup (in an environment of your own: pip install -e .)"
)
BUG_HINT = (
    "this is a bug in scripts/test_stack.py; send the output of "
    "`python scripts/test_stack.py --json` to your instructor"
)

try:
    from packaging.utils import canonicalize_name
except Exception:  # packaging missing or half-installed; the python_packages rows say so
    canonicalize_name = None


@dataclass
class Check:
    """One row of the report."""

    id: str
    status: str
    found: str
    required: str
    hint: str | None = None

    def to_json(self) -> dict:
        return {"id": self.id, "status": self.status, "found": self.found, "required": self.required, "hint": self.hint}


class CommandResult(NamedTuple):
    """What an outside command did. `error` is "not found", "timeout" or an OSError line."""

    returncode: int | None
    stdout: str = ""
    stderr: str = ""
    error: str | None = None

    @property
    def succeeded(self) -> bool:
        return self.error is None and self.returncode == 0

    def first_line(self) -> str:
        """The line that best says what happened: the last of stderr, else the first of stdout."""
        if self.error:
            return self.error
        complaint = last_meaningful_line(self.stderr)
        if complaint:
            return complaint
        lines = [line.strip() for line in self.stdout.splitlines() if line.strip()]
        return lines[0] if lines else f"exit code {self.returncode}"


class DistInfo(NamedTuple):
    """An installed distribution, as its metadata describes it."""

    name: str
    version: str
    requires_python: str | None = None
    classifiers: tuple[str, ...] = ()
    requires: tuple[str, ...] = ()


def canonical(name: str) -> str:
    """A package name as pip compares it: `Scikit_Learn` and `scikit-learn` are one package."""
    if canonicalize_name is not None:
        return str(canonicalize_name(name))
    return re.sub(r"[-_.]+", "-", name).lower()  # the PEP 503 rule, for when packaging is missing


def one_line(error: BaseException) -> str:
    text = str(error).strip().splitlines()
    return f"{type(error).__name__}: {text[0]}" if text else type(error).__name__


def last_meaningful_line(text: str) -> str | None:
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return lines[-1] if lines else None


def probe_section(function, *args) -> dict:
    """Run one part of a probe; an exception becomes {"error": ...} so the other parts still run."""
    try:
        return function(*args)
    except Exception as error:
        return {"error": one_line(error)}


def same_folder(a, b) -> bool:
    try:
        return Path(a).resolve() == Path(b).resolve()
    except (OSError, ValueError):
        return False


def is_inside(path, parent) -> bool:
    try:
        Path(path).resolve().relative_to(Path(parent).resolve())
        return True
    except ValueError:
        return False


def quote(path: str) -> str:
    """A path ready to paste into this platform's shell."""
    if os.name == "nt":
        return subprocess.list2cmdline([path])
    return shlex.quote(path)


def first_rule(rules, text: str):
    """(match, cause, fix) of the first (pattern, cause, fix) rule whose pattern is in `text`."""
    for pattern, cause, fix in rules:
        match = pattern.search(text)
        if match:
            return match, cause, fix
    return None


def project_requirements(pyproject_text: str) -> str:
    """pyproject.toml's [project] dependencies as requirement lines: the runtime set a student
    installs (the dev extra is the developers')."""
    try:
        import tomllib
    except ModuleNotFoundError:  # Python 3.10: the lab installs tomli there
        try:
            import tomli as tomllib
        except ModuleNotFoundError:
            raise ValueError("Python 3.10 reads TOML with tomli, which is not installed here") from None
    try:
        dependencies = tomllib.loads(pyproject_text)["project"]["dependencies"]
    except (tomllib.TOMLDecodeError, KeyError) as error:
        raise ValueError(f"no [project] dependencies list: {one_line(error)}") from None
    return "\n".join(dependencies) + "\n"
