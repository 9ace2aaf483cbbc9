"""Python itself, the course's packages, `pip check` and labkit.

Versions, specifiers and requirement lines are read by `packaging`, the library pip itself
uses. Without it the doctor still runs, but one row (pkg.packaging) says that the version
checks were skipped, and every other package row reports presence only.
"""

from __future__ import annotations

import importlib.util
import re
from collections.abc import Mapping
from pathlib import Path
from typing import NamedTuple

from .core import (
    COMMAND_TIMEOUT_S,
    FAIL,
    INSTALL_EVERYTHING,
    OK,
    REPO_ROOT,
    WARN,
    Check,
    CommandResult,
    DistInfo,
    canonical,
    one_line,
    quote,
    same_folder,
)

try:
    from packaging.requirements import InvalidRequirement, Requirement
    from packaging.specifiers import InvalidSpecifier, SpecifierSet
    from packaging.version import InvalidVersion, Version

    PACKAGING_PROBLEM = None
except Exception as _error:  # ImportError, or a half-installed packaging
    PACKAGING_PROBLEM = one_line(_error)

# The packages the course uses directly, in the order a student should fix them.
COURSE_PACKAGES = (
    "tensorflow",
    "keras",
    "tensorboard",
    "numpy",
    "pandas",
    "matplotlib",
    "notebook",
    "ipykernel",
    "scikit-learn",
)
# TensorFlow ships under several names. Two of the first group in one environment overwrite
# each other's files; the second group are per-platform halves that the first ones pull in.
TF_MAIN_DISTRIBUTIONS = ("tensorflow", "tensorflow-cpu", "tensorflow-gpu", "tf-nightly", "tf-nightly-cpu")
TF_PLATFORM_DISTRIBUTIONS = (
    "tensorflow-macos",
    "tensorflow-intel",
    "tensorflow-aarch64",
    "tf-nightly-macos",
    "tf-nightly-intel",
)
TF_DISTRIBUTIONS = TF_MAIN_DISTRIBUTIONS + TF_PLATFORM_DISTRIBUTIONS

# Used only when TensorFlow is not installed yet, so its own metadata cannot say which Pythons
# it supports: the range of every release since the one Keras 3 arrived with.
KNOWN_TF_PYTHON_RANGES = (
    ("2.16", (3, 9), (3, 12)),
    ("2.17", (3, 9), (3, 12)),
    ("2.18", (3, 9), (3, 12)),
    ("2.19", (3, 9), (3, 12)),
    ("2.20", (3, 9), (3, 13)),
    ("2.21", (3, 10), (3, 13)),
)


# -- versions, all through packaging ------------------------------------------------------------


def satisfies(version: str, specifier: str) -> bool | None:
    """True or False; None when it cannot be told (packaging missing, or not a version)."""
    if not specifier:
        return True
    if PACKAGING_PROBLEM:
        return None
    try:
        # Pre-releases count: tf-nightly 2.22.0.dev2025 does satisfy tensorflow>=2.16.
        return SpecifierSet(specifier).contains(Version(version), prereleases=True)
    except (InvalidVersion, InvalidSpecifier):
        return None


def is_below(version: str, specifier: str) -> bool:
    """Whether `version` fails because it is too old, rather than too new or excluded."""
    try:
        have = Version(version)
        return any(
            have < Version(spec.version.rstrip(".*"))
            for spec in SpecifierSet(specifier)
            if spec.operator in (">=", ">", "~=", "==")
        )
    except (InvalidVersion, InvalidSpecifier):
        return False


class RequirementLine(NamedTuple):
    name: str
    specifier: str


def parse_requirements(text: str) -> list[RequirementLine]:
    """The package lines of a requirements file; option lines (-e ., -r ...) are skipped."""
    found = []
    for raw in text.splitlines():
        line = re.sub(r"(^|\s)#.*$", "", raw).strip()
        if not line or line.startswith(("-", ".", "/")) or "://" in line:
            continue
        if PACKAGING_PROBLEM:
            # Presence only: the name, and the bound as written for the REQUIRED column. A line
            # with an environment marker cannot be evaluated without packaging, so it is left out.
            match = re.match(r"([A-Za-z0-9][A-Za-z0-9._-]*)\s*(?:\[[^\]]*\])?\s*([^;]*)$", line)
            if match:
                found.append(RequirementLine(canonical(match.group(1)), match.group(2).replace(" ", "")))
            continue
        try:
            requirement = Requirement(line)
        except InvalidRequirement:
            continue
        if requirement.marker is not None and not requirement.marker.evaluate():
            continue
        found.append(RequirementLine(canonical(requirement.name), str(requirement.specifier)))
    return found


def dependency_spec(dist: DistInfo | None, dependency: str) -> str:
    """The specifier `dist` declares for `dependency` (extras excluded), e.g. '>=1.26.0'."""
    if PACKAGING_PROBLEM or dist is None:
        return ""
    for line in dist.requires:
        try:
            requirement = Requirement(line)
        except InvalidRequirement:
            continue
        if requirement.marker is not None and "extra" in str(requirement.marker):
            continue
        if canonical(requirement.name) == dependency:
            return str(requirement.specifier)
    return ""


# -- Python ------------------------------------------------------------------------------------


def tf_distributions(packages: Mapping[str, DistInfo]) -> list[DistInfo]:
    return [packages[name] for name in TF_DISTRIBUTIONS if name in packages]


def tensorflow_dist(packages: Mapping[str, DistInfo]) -> DistInfo | None:
    found = tf_distributions(packages)
    return found[0] if found else None


def _listed_pythons(tf: DistInfo) -> list[tuple[int, int]]:
    """The Python 3.x releases TensorFlow's classifiers name, oldest first."""
    pattern = re.compile(r"Programming Language :: Python :: 3\.(\d+)$")
    return sorted((3, int(m.group(1))) for m in map(pattern.match, tf.classifiers) if m)


def _lowest_python(tf: DistInfo) -> tuple[int, int]:
    """The oldest Python TensorFlow's Requires-Python admits (else its classifiers say)."""
    bounds = []
    if not PACKAGING_PROBLEM:
        try:
            bounds = [
                (Version(spec.version).release + (0,))[:2]
                for spec in SpecifierSet(tf.requires_python or "")
                if spec.operator in (">=", ">", "~=", "==")
            ]
        except (InvalidVersion, InvalidSpecifier):
            bounds = []
    listed = _listed_pythons(tf)
    return tuple(max(bounds)) if bounds else listed[0] if listed else (3, 0)


def _dotted(release: tuple[int, ...]) -> str:
    return ".".join(str(part) for part in release)


def check_python(
    version_info, executable: str, bits: int, in_virtualenv: bool, packages: Mapping[str, DistInfo], tf_specifier: str
) -> Check:
    version = _dotted(tuple(version_info[:3]))
    found = f"{version}, {bits}-bit, {executable}" + ("" if in_virtualenv else " (not a virtual environment)")
    minor = tuple(version_info[:2])
    tf = tensorflow_dist(packages)
    if tf is not None:
        lowest, listed = _lowest_python(tf), _listed_pythons(tf)
        highest = listed[-1] if listed else None
        label = f"{tf.name} {tf.version}"
        declared_ok = satisfies(version, tf.requires_python or "")
    else:
        ranges = [
            (low, high)
            for release, low, high in KNOWN_TF_PYTHON_RANGES
            if satisfies(release + ".0", tf_specifier) is not False
        ]
        ranges = ranges or [(low, high) for _, low, high in KNOWN_TF_PYTHON_RANGES]
        lowest, highest = min(low for low, _ in ranges), max(high for _, high in ranges)
        label = "tensorflow" + (tf_specifier or "")
        declared_ok = lowest <= minor <= highest  # outside it, pip finds no TensorFlow to install
    span = _dotted(lowest) + (" to " + _dotted(highest) if highest else " or newer")
    required = f"{span}, 64-bit ({label})"
    good = _dotted(highest or lowest)
    recreate = (
        f"install Python {good} (python.org or your package manager) and recreate .venv with "
        f"it: python{good} -m venv .venv (Windows: py -{good} -m venv .venv)"
    )
    if bits != 64:
        return Check("python", FAIL, found, required, "TensorFlow has 64-bit builds only: " + recreate)
    if declared_ok is False or minor < lowest:
        return Check("python", FAIL, found, required, recreate)
    if highest and minor > highest:
        return Check(
            "python",
            WARN,
            found,
            required,
            "this Python is newer than the ones TensorFlow lists; if anything breaks, " + recreate,
        )
    return Check("python", OK, found, required)


# -- packages ----------------------------------------------------------------------------------


def _package_row(name: str, specifier: str, packages: Mapping[str, DistInfo], tf_bound: str) -> Check:
    required = name + specifier if specifier else "comes with tensorflow" if name == "keras" else "installed"
    install = (
        f'pip install --upgrade "tensorflow{tf_bound}" (it brings Keras 3)'
        if name == "keras"
        else f'pip install --upgrade "{name}{specifier}"'
    )
    candidates = tf_distributions(packages) if name == "tensorflow" else []
    dist = (candidates[0] if candidates else None) if name == "tensorflow" else packages.get(name)
    if dist is None:
        return Check("pkg." + name, FAIL, "not installed", required, install.replace("--upgrade ", ""))
    label = dist.version if canonical(dist.name) == name else f"{dist.name} {dist.version}"
    if PACKAGING_PROBLEM:
        return Check("pkg." + name, OK, label, required)  # presence only; pkg.packaging says why
    verdict = satisfies(dist.version, specifier)
    if verdict is None:
        return Check("pkg." + name, WARN, label + " (not a version number pip understands)", required, install)
    if not verdict:
        return Check(
            "pkg." + name, FAIL, label + (" (too old)" if is_below(dist.version, specifier) else ""), required, install
        )
    clashing = [d for d in candidates if canonical(d.name) in TF_MAIN_DISTRIBUTIONS]
    if len(clashing) > 1:
        both = " and ".join(f"{d.name} {d.version}" for d in clashing)
        names = " ".join(d.name for d in clashing)
        return Check(
            "pkg." + name,
            WARN,
            both + " are both installed",
            required,
            f"they overwrite each other's files; keep one: pip uninstall -y {names}, then "
            f'pip install "tensorflow{specifier}"',
        )
    return Check("pkg." + name, OK, label, required)


def _packaging_row(bound: str, installed: bool, required_by_course: bool) -> Check:
    """The one row that says the version checks were skipped, and how to get them back."""
    if installed:
        found = f"installed but cannot be imported ({PACKAGING_PROBLEM}): version checks skipped"
        fix = f'pip install --force-reinstall "packaging{bound}"'
    else:
        found = "packaging is not installed: version checks skipped, only presence is checked"
        fix = f'pip install "packaging{bound}"'
    return Check("pkg.packaging", FAIL if required_by_course or installed else WARN, found, "packaging" + bound, fix)


def check_packages(
    requirements: list[RequirementLine], packages: Mapping[str, DistInfo], requirements_problem: str | None = None
) -> list[Check]:
    bounds = {}
    for req in requirements:  # a package may have a line for every platform plus a cap for one
        bounds[req.name] = ",".join(filter(None, (bounds.get(req.name), req.specifier)))
    names = list(COURSE_PACKAGES) + [name for name in bounds if name not in COURSE_PACKAGES]
    rows = []
    if requirements_problem:
        rows.append(
            Check(
                "pkg.requirements",
                FAIL,
                requirements_problem,
                "pyproject.toml at the repository root, read with tomllib (or tomli on 3.10)",
                "run this script from a complete copy of the course repository",
            )
        )
    rows += [_package_row(name, bounds.get(name, ""), packages, bounds.get("tensorflow", "")) for name in names]
    if PACKAGING_PROBLEM:
        replacement = _packaging_row(bounds.get("packaging", ""), "packaging" in packages, "packaging" in bounds)
        rows = [row for row in rows if row.id != replacement.id] + [replacement]
    return rows


# -- pip check ---------------------------------------------------------------------------------

# pip check lines: "X 1.0 requires Y, which is not installed." and
# "X 1.0 has requirement Y>=2, but you have Y 1.0."
_PIP_BROKEN = re.compile(
    r"^(?P<owner>\S+) \S+ (?:requires (?P<missing>[^,\s]+), which is not installed|"
    r"has requirement (?P<wanted>.+?), but you have (?P<have>\S+) (?P<have_version>\S+?))\.?$"
)


def check_pip(result: CommandResult, executable: str) -> Check:
    required = "no broken requirements"
    if result.error == "timeout":
        return Check(
            "pip_check",
            WARN,
            f"pip check did not finish within {COMMAND_TIMEOUT_S:.0f} s",
            required,
            "run `python -m pip check` yourself to see the broken requirements",
        )
    if result.error or "No module named pip" in result.stderr:
        return Check(
            "pip_check",
            WARN,
            f"pip is not available in this Python ({result.first_line()})",
            required,
            f"{quote(executable)} -m ensurepip --upgrade",
        )
    if result.returncode == 0:
        return Check("pip_check", OK, "no broken requirements", required)
    lines = [line.strip() for line in result.stdout.splitlines() if line.strip()]
    if not lines:
        return Check(
            "pip_check",
            WARN,
            "pip check failed: " + result.first_line(),
            required,
            "run `python -m pip check` yourself and read its message",
        )
    found = f"{len(lines)} broken: " + "; ".join(lines[:3]) + ("; ..." if len(lines) > 3 else "")
    course = set(COURSE_PACKAGES) | set(TF_DISTRIBUTIONS)
    ours = [m for m in map(_PIP_BROKEN.match, lines) if m and canonical(m.group("owner")) in course]
    if ours:
        needed = ours[0].group("missing") or ours[0].group("wanted")
        return Check(
            "pip_check",
            FAIL,
            found,
            required,
            f'a course package is missing what it needs: pip install "{needed}", then run this again',
        )
    return Check(
        "pip_check",
        WARN,
        found,
        required,
        "only packages outside the course are affected; upgrade or uninstall them "
        "(pip uninstall NAME) if you do not need them",
    )


# -- labkit ------------------------------------------------------------------------------------


def find_labkit() -> tuple[str | None, str | None]:
    """(where labkit would be imported from, or None; why it cannot be, or None)."""
    try:
        spec = importlib.util.find_spec("labkit")
    except Exception as error:
        return None, one_line(error)
    return (spec.origin if spec and spec.origin else None), None


def check_labkit(spec_origin: str | None, problem: str | None = None) -> Check:
    required = "importable from this repository"
    if spec_origin is None:
        return Check(
            "labkit",
            FAIL,
            "labkit is not importable" + (f" ({problem})" if problem else ""),
            required,
            INSTALL_EVERYTHING + " (it installs labkit in editable mode)",
        )
    location = Path(spec_origin).parent
    if not same_folder(location, REPO_ROOT / "labkit"):
        return Check(
            "labkit",
            WARN,
            f"labkit comes from {location}, not from this repository",
            required,
            f"run `pip install -e .` in {REPO_ROOT}, so that edits here take effect",
        )
    return Check("labkit", OK, f"labkit from {location}", required)
