"""The project's own tooling: the universal lock as this machine reads it, README's "Tested with" line, and ruff."""

import subprocess
import sys
from importlib import metadata

import lab  # scripts/lab.py: pytest's pythonpath includes scripts/
import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from labtest import REPO


def lock_requirements() -> list:
    """The lock's pins: one `name==version` requirement a line, with a marker where it forks."""
    lines = [line for line in lab.LOCK.read_text().splitlines() if line and not line.startswith(("#", " "))]
    return [Requirement(line) for line in lines]


def locked_versions() -> dict[str, str]:
    """The pins that apply to this machine and Python, their markers evaluated here."""
    found = {}
    for requirement in lock_requirements():
        if requirement.marker is None or requirement.marker.evaluate():
            name = canonicalize_name(requirement.name)
            assert name not in found, f"two pins apply to {name} here"
            (pin,) = requirement.specifier
            found[name] = pin.version
    return found


def test_the_lock_pins_every_package_exactly_and_skips_the_repository_itself():
    requirements = lock_requirements()
    assert requirements and all(
        len(r.specifier) == 1 and next(iter(r.specifier)).operator == "==" for r in requirements
    )
    versions = locked_versions()
    for needed in ("tensorflow", "keras", "tensorboard", "numpy", "mlxtend", "jupytext", "psutil", "ruff", "uv"):
        assert needed in versions, needed
    assert "keras-course-lab" not in {canonicalize_name(r.name) for r in requirements}


def test_this_environment_was_installed_from_the_lock():
    """What the tests run on is what the lock says for this machine: the pins are the versions CI used."""
    versions = locked_versions()
    for name in lab.HEADLINE_PACKAGES:
        assert metadata.version(name) == versions[name], name


def test_readme_tested_with_line_comes_from_the_lock():
    expected = lab.tested_with_line([f"{name}=={version}" for name, version in locked_versions().items()])
    readme_lines = (REPO / "README.md").read_text().splitlines()
    assert expected in readme_lines, "run `python3 scripts/lab.py lock` to refresh README.md"


def test_lock_lines_drop_editable_installs_and_sort_by_name():
    frozen = "Zeta==1.0\n-e git+file:///work/main#egg=keras-course-lab\nalpha==2.0\n# comment\n"
    assert lab.lock_lines(frozen) == ["alpha==2.0", "Zeta==1.0"]


def test_installs_use_the_lock_unless_told_otherwise(monkeypatch):
    monkeypatch.delenv(lab.UNLOCKED_ENV, raising=False)
    assert lab.install_command("python", lab.RUNTIME)[-4:] == ["--editable", ".", "--constraint", lab.LOCK]
    assert lab.install_command("python", lab.DEV)[-4:] == ["--editable", ".[dev]", "--constraint", lab.LOCK]
    monkeypatch.setenv(lab.UNLOCKED_ENV, "1")
    assert "--constraint" not in lab.install_command("python", lab.RUNTIME)


@pytest.mark.parametrize("command", [["check", "."], ["format", "--check", "."]], ids=["lint", "format"])
def test_ruff_is_clean(command):
    """Lint (with import order) and formatting, over scripts, tests, the toolkit and the notebooks."""
    result = subprocess.run([sys.executable, "-m", "ruff", *command], cwd=REPO, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-2000:]
