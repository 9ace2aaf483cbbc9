"""The doctor's Python, package, pip check and labkit rows (stack_doctor.python_packages)."""

import pytest
from test_test_stack import (
    FAKE_PYTHON,
    HEALTHY_PACKAGES,
    TF_CLASSIFIERS,
    assert_row,
    make_world,
    run_doctor,
)

from stack_doctor import python_packages
from stack_doctor.core import REPO_ROOT, CommandResult, DistInfo, project_requirements

NO_PACKAGING = "ModuleNotFoundError: No module named 'packaging'"


@pytest.fixture
def world(tmp_path, monkeypatch):
    return make_world(tmp_path, monkeypatch)


@pytest.fixture
def without_packaging(monkeypatch):
    """The doctor as it runs in a Python where `packaging` does not import."""
    monkeypatch.setattr(python_packages, "PACKAGING_PROBLEM", NO_PACKAGING)


# ---------------------------------------------------------------------------------------------
# Versions and requirement lines, through packaging


def test_a_missing_package_fails_with_its_install_command(world):
    del world.fake_packages["pandas"]
    code, rows, _ = run_doctor(world)
    assert code == 1
    row = assert_row(rows, "pkg.pandas", "FAIL", "not installed", hint='pip install "pandas>=2.0"')
    assert row["required"] == "pandas>=2.0"


def test_a_version_below_the_bound_fails_although_it_sorts_higher_as_a_string(world):
    # As strings, "1.9.0" > "1.26"; as versions it is far below.
    world.fake_packages["numpy"] = DistInfo("numpy", "1.9.0")
    code, rows, _ = run_doctor(world)
    assert code == 1
    assert_row(rows, "pkg.numpy", "FAIL", "1.9.0", "too old", hint='pip install --upgrade "numpy>=1.26"')


def test_a_version_above_the_bound_passes_although_it_sorts_lower_as_a_string(world):
    # As strings, "3.10.0" < "3.7": the original script would have failed this one.
    world.fake_packages["matplotlib"] = DistInfo("matplotlib", "3.10.0")
    code, rows, _ = run_doctor(world)
    assert code == 0
    assert_row(rows, "pkg.matplotlib", "OK", "3.10.0")


def test_a_version_above_an_upper_bound_fails_without_calling_it_too_old(world):
    world.requirements_text = lambda: "numpy>=1.26,<2.0\n"
    code, rows, _ = run_doctor(world)
    assert code == 1
    row = assert_row(rows, "pkg.numpy", "FAIL", "2.4.6")
    assert "too old" not in row["found"]


def test_a_version_pip_cannot_read_warns(world):
    world.fake_packages["pandas"] = DistInfo("pandas", "not-a-version")
    code, rows, _ = run_doctor(world)
    assert code == 0
    assert_row(rows, "pkg.pandas", "WARN", "not a version number")


@pytest.mark.parametrize(
    "version, specifier, expected",
    [
        ("1.10", ">=1.4", True),
        ("1.4", ">=1.10", False),
        ("2.16.0", ">=2.16", True),
        ("2.15.1", ">=2.16", False),
        ("2.22.0.dev20250101", ">=2.16", True),
        ("1.26.4", ">=1.26.0,<2.2", True),
        ("2.2.0", ">=1.26.0,<2.2", False),
        ("2.1", "", True),
        ("banana", ">=1.0", None),
    ],
)
def test_versions_compare_as_numbers(version, specifier, expected):
    assert python_packages.satisfies(version, specifier) is expected


def test_the_bounds_come_from_the_requirement_lines(world):
    world.requirements_text = lambda: "# a comment\n-e .\nnumpy>=3.0  # future\n--index-url x\n"
    code, rows, _ = run_doctor(world)
    assert code == 1
    assert rows["pkg.numpy"]["status"] == "FAIL"
    assert rows["pkg.numpy"]["required"] == "numpy>=3.0"
    # Without a line of its own, a course package only has to be installed.
    assert rows["pkg.pandas"]["required"] == "installed"


def test_a_platform_cap_joins_the_bound_every_platform_has(world):
    """pyproject.toml caps TensorFlow on Intel Macs in a line of its own; here the marker holds."""
    world.requirements_text = lambda: "tensorflow>=2.16\ntensorflow<2.17; python_version >= '3'\n"
    code, rows, _ = run_doctor(world)
    assert code == 1
    row = assert_row(rows, "pkg.tensorflow", "FAIL", HEALTHY_PACKAGES["tensorflow"].version)
    assert row["required"] == "tensorflow>=2.16,<2.17"


def test_an_unreadable_requirements_file_is_one_fail_row(world):
    def unreadable():
        raise PermissionError("permission denied")

    world.requirements_text = unreadable
    code, rows, _ = run_doctor(world)
    assert code == 1
    assert_row(rows, "pkg.requirements", "FAIL", "cannot read pyproject.toml's dependencies", "PermissionError")


def test_the_requirement_lines_are_pyprojects_runtime_dependencies():
    text = (REPO_ROOT / "pyproject.toml").read_text()
    lines = python_packages.parse_requirements(project_requirements(text))
    names = [line.name for line in lines]
    assert ("tensorflow", ">=2.16") in lines and "keras" in names and "jupyterlab" in names
    # The dev extra is the developers', not a student's: the doctor does not ask for it.
    assert not {"pytest", "selenium", "ruff", "uv"} & set(names)


def test_a_pyproject_without_dependencies_is_one_fail_row(world):
    world.requirements_text = lambda: project_requirements('[project]\nname = "x"\n')
    code, rows, _ = run_doctor(world)
    assert code == 1
    assert_row(rows, "pkg.requirements", "FAIL", "no [project] dependencies list", "KeyError")


def test_requirement_lines_skip_options_comments_and_other_platforms():
    text = (
        "tensorflow>=2.16\n-e .\n# comment\n\nScikit_Learn >= 1.3  # inline\n"
        'tensorflow-metal>=1.1; sys_platform == "no-such-platform"\n'
    )
    assert python_packages.parse_requirements(text) == [("tensorflow", ">=2.16"), ("scikit-learn", ">=1.3")]


def test_tensorflow_installed_under_another_name_counts(world):
    del world.fake_packages["tensorflow"]
    world.fake_packages["tensorflow-cpu"] = DistInfo("tensorflow-cpu", "2.21.0", ">=3.10", TF_CLASSIFIERS)
    code, rows, _ = run_doctor(world)
    assert code == 0
    assert_row(rows, "pkg.tensorflow", "OK", "tensorflow-cpu 2.21.0")


def test_two_tensorflow_packages_in_one_environment_warn(world):
    world.fake_packages["tf-nightly"] = DistInfo("tf-nightly", "2.22.0.dev20250101")
    code, rows, _ = run_doctor(world)
    assert code == 0
    assert_row(
        rows,
        "pkg.tensorflow",
        "WARN",
        "tensorflow 2.21.0 and tf-nightly",
        "both installed",
        hint="pip uninstall -y tensorflow tf-nightly",
    )


def test_keras_missing_is_installed_through_tensorflow(world):
    del world.fake_packages["keras"]
    _, rows, _ = run_doctor(world)
    assert_row(rows, "pkg.keras", "FAIL", "not installed", hint='pip install "tensorflow>=2.16" (it brings Keras 3)')


# ---------------------------------------------------------------------------------------------
# Without packaging: one row says so, and the version comparisons are skipped


def test_without_packaging_one_row_says_so_and_versions_are_not_compared(world, without_packaging):
    del world.fake_packages["packaging"]
    world.fake_packages["numpy"] = DistInfo("numpy", "1.9.0")  # far too old, but not compared now
    code, rows, _ = run_doctor(world)
    assert code == 1  # pyproject.toml lists packaging, so the course needs it
    assert_row(
        rows, "pkg.packaging", "FAIL", "not installed", "version checks skipped", hint='pip install "packaging>=23.0"'
    )
    assert_row(rows, "pkg.numpy", "OK", "1.9.0")
    skipped = [row_id for row_id, row in rows.items() if "skipped" in row["found"]]
    assert skipped == ["pkg.packaging"]
    assert [row_id for row_id in rows if row_id == "pkg.packaging"] == ["pkg.packaging"]


def test_without_packaging_a_missing_package_still_fails(world, without_packaging):
    del world.fake_packages["packaging"]
    del world.fake_packages["pandas"]
    _, rows, _ = run_doctor(world)
    assert_row(rows, "pkg.pandas", "FAIL", "not installed", hint='pip install "pandas>=2.0"')


def test_a_packaging_that_is_installed_but_does_not_import_is_reinstalled(world, without_packaging):
    _, rows, _ = run_doctor(world)
    assert_row(
        rows,
        "pkg.packaging",
        "FAIL",
        "cannot be imported",
        NO_PACKAGING,
        hint='pip install --force-reinstall "packaging>=23.0"',
    )


def test_without_packaging_and_not_required_the_row_only_warns(world, without_packaging):
    del world.fake_packages["packaging"]
    world.requirements_text = lambda: "numpy>=1.26\n"
    code, rows, _ = run_doctor(world)
    assert code == 0
    assert_row(rows, "pkg.packaging", "WARN", "version checks skipped", hint='pip install "packaging"')


def test_without_packaging_requirement_lines_are_still_read(without_packaging):
    text = 'Scikit_Learn >= 1.3\ntensorflow[and-cuda]>=2.16\nmetal>=1; sys_platform == "darwin"\n'
    assert python_packages.parse_requirements(text) == [("scikit-learn", ">=1.3"), ("tensorflow", ">=2.16")]
    assert python_packages.satisfies("1.0", ">=2.0") is None
    assert python_packages.dependency_spec(HEALTHY_PACKAGES["tensorflow"], "numpy") == ""


# ---------------------------------------------------------------------------------------------
# pip check


def test_pip_check_failing_on_a_course_package_fails(world):
    world.pip_result = CommandResult(
        1, "tensorflow 2.21.0 has requirement protobuf>=5.28.0, but you have protobuf 4.25.0.\n"
    )
    code, rows, _ = run_doctor(world)
    assert code == 1
    assert_row(rows, "pip_check", "FAIL", "1 broken", hint='pip install "protobuf>=5.28.0"')


def test_pip_check_failing_on_a_foreign_package_only_warns(world):
    world.pip_result = CommandResult(1, "oldtool 0.1 requires six, which is not installed.\n")
    code, rows, _ = run_doctor(world)
    assert code == 0
    assert_row(rows, "pip_check", "WARN", "oldtool 0.1 requires six", hint="outside the course")


def test_a_python_without_pip_warns_with_ensurepip(world):
    world.pip_result = CommandResult(1, "", "/fake/env/bin/python: No module named pip\n")
    code, rows, _ = run_doctor(world)
    assert code == 0
    assert_row(rows, "pip_check", "WARN", "pip is not available", hint=FAKE_PYTHON + " -m ensurepip")


def test_pip_check_that_hangs_or_says_nothing_warns(world):
    world.pip_result = CommandResult(None, error="timeout")
    _, rows, _ = run_doctor(world)
    assert_row(rows, "pip_check", "WARN", "did not finish")
    world.pip_result = CommandResult(2, "", "")
    _, rows, _ = run_doctor(world)
    assert_row(rows, "pip_check", "WARN", "pip check failed: exit code 2")


# ---------------------------------------------------------------------------------------------
# Python


@pytest.mark.parametrize(
    "version, bits, status",
    [
        ((3, 11, 7), 64, "OK"),
        ((3, 14, 0), 64, "WARN"),  # newer than TensorFlow lists
        ((3, 9, 18), 64, "FAIL"),  # below its Requires-Python
        ((3, 11, 7), 32, "FAIL"),
    ],
)
def test_python_versions_outside_what_tensorflow_supports(version, bits, status):
    row = python_packages.check_python(version, "/py", bits, True, HEALTHY_PACKAGES, ">=2.16")
    assert row.status == status
    assert row.required == "3.10 to 3.13, 64-bit (tensorflow 2.21.0)"


def test_the_python_row_shows_the_interpreter_and_whether_it_is_a_virtual_environment():
    row = python_packages.check_python((3, 11, 7), "/usr/bin/python3", 64, False, HEALTHY_PACKAGES, ">=2.16")
    assert "3.11.7, 64-bit, /usr/bin/python3" in row.found
    assert "not a virtual environment" in row.found


def test_without_tensorflow_the_python_range_comes_from_the_known_releases():
    # No TensorFlow wheel exists for this Python yet, so pip could not even install it.
    row = python_packages.check_python((3, 14, 0), "/py", 64, True, {}, ">=2.16")
    assert (row.status, row.required) == ("FAIL", "3.9 to 3.13, 64-bit (tensorflow>=2.16)")
    assert "install Python 3.13" in row.hint and "python3.13 -m venv .venv" in row.hint
    assert python_packages.check_python((3, 12, 1), "/py", 64, True, {}, ">=2.16").status == "OK"
    # A bound that rules out the older releases narrows the range.
    assert python_packages.check_python((3, 9, 1), "/py", 64, True, {}, ">=2.21").status == "FAIL"


def test_without_packaging_the_python_range_still_comes_from_the_classifiers(without_packaging):
    assert python_packages.check_python((3, 11, 7), "/py", 64, True, HEALTHY_PACKAGES, ">=2.16").status == "OK"
    assert python_packages.check_python((3, 9, 18), "/py", 64, True, HEALTHY_PACKAGES, ">=2.16").status == "FAIL"


# ---------------------------------------------------------------------------------------------
# labkit


def test_labkit_from_this_repository_is_ok(world):
    _, rows, _ = run_doctor(world)
    assert_row(rows, "labkit", "OK", str(REPO_ROOT / "labkit"))


def test_labkit_missing_or_from_elsewhere(tmp_path):
    assert python_packages.check_labkit(None, "ModuleNotFoundError: labkit").status == "FAIL"
    elsewhere = python_packages.check_labkit(str(tmp_path / "labkit" / "__init__.py"))
    assert elsewhere.status == "WARN" and "not from this repository" in elsewhere.found
    assert "pip install -e ." in elsewhere.hint
