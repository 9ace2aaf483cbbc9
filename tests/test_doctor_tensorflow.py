"""The doctor's TensorFlow import and Keras rows, and the child probe's report (stack_doctor.tensorflow_keras)."""

import json

import pytest
from test_test_stack import (
    HEALTHY_PACKAGES,
    assert_row,
    failed_import_probe,
    healthy_probe,
    make_world,
    run_doctor,
    statuses,
)

from stack_doctor import tensorflow_keras
from stack_doctor.core import INSTALL_EVERYTHING, DistInfo

CUDA_OR_CPU = 'pip install "tensorflow[and-cuda]>=2.16" for the GPU'


@pytest.fixture
def world(tmp_path, monkeypatch):
    return make_world(tmp_path, monkeypatch)


# ---------------------------------------------------------------------------------------------
# The import


def test_tensorflow_failing_to_load_a_cuda_library_shows_the_cause_in_one_line(world):
    world.probe = failed_import_probe(
        "ImportError: libcudnn.so.9: cannot open shared object file: No such file or directory"
    )
    code, rows, _ = run_doctor(world)
    assert code == 1
    assert_row(
        rows,
        "tf.import",
        "FAIL",
        "does not import",
        "libcudnn.so.9 (a CUDA library)",
        hint=(CUDA_OR_CPU, "tensorflow-cpu"),
    )
    # What depends on TensorFlow says so instead of guessing.
    assert_row(rows, "keras", "WARN", "not checked", hint="fix the tf.import row first")
    assert_row(rows, "gpu.driver", "WARN", "nvidia-smi not found")
    # The data rows still come, from the parent process this time.
    assert set(statuses(rows, "data.").values()) == {"OK"}


# (error, exit status, a fragment of the cause, a fragment of the fix): one case per rule.
IMPORT_FAILURES = [
    ("ModuleNotFoundError: No module named 'tensorflow'", 0, "not installed in this Python", INSTALL_EVERYTHING),
    (
        "ImportError: DLL load failed while importing _pywrap_tensorflow_internal: The specified module "
        "could not be found.",
        0,
        "a DLL is missing (ImportError: DLL load failed",
        "vc_redist.x64.exe",
    ),
    (
        "ImportError: dlopen(/x/_pywrap.so, 0x0002): tried: '/x/_pywrap.so' (mach-o file, but is an "
        "incompatible architecture (have 'x86_64', need 'arm64'))",
        0,
        "wrong architecture",
        "not an x86_64 Python under Rosetta",
    ),
    (
        "ImportError: /lib/x86_64-linux-gnu/libc.so.6: version `GLIBC_2.28' not found",
        0,
        "GLIBC_2.28 not found",
        "newer Linux",
    ),
    (
        "ImportError: libcudart.so.12: cannot open shared object file: No such file or directory",
        0,
        "libcudart.so.12 (a CUDA library)",
        CUDA_OR_CPU,
    ),
    (
        "ImportError: libgomp.so.1: cannot open shared object file: No such file or directory",
        0,
        "missing shared library libgomp.so.1",
        'pip install --force-reinstall "tensorflow>=2.16"',
    ),
    ("TypeError: Descriptors cannot be created directly.", 0, "protobuf clash", 'pip install "protobuf>=5.28.0"'),
    ("ImportError: numpy.core.multiarray failed to import", 0, "NumPy clash", 'pip install "numpy>=1.26.0"'),
    (None, -4, "illegal instruction", "Google Colab"),
    (None, -11, "segmentation fault", "run `pip check`"),
    (
        "RuntimeError: something nobody has seen",
        0,
        "RuntimeError: something nobody has seen",
        'python -c "import tensorflow"',
    ),
]


def _probe_of(error, returncode):
    return failed_import_probe(error, returncode) if error else {"import_ok": False, "returncode": returncode}


@pytest.mark.parametrize("error, returncode, cause, hint", IMPORT_FAILURES)
def test_import_failures_are_explained(error, returncode, cause, hint):
    found_cause, found_hint = tensorflow_keras.explain_import_failure(
        _probe_of(error, returncode), HEALTHY_PACKAGES["tensorflow"]
    )
    assert cause in found_cause
    assert hint in found_hint


def test_every_import_failure_rule_has_a_case_above():
    rules = tensorflow_keras.IMPORT_FAILURE_RULES
    used = set()
    for error, returncode, _, _ in IMPORT_FAILURES:
        text = tensorflow_keras._failure_text(_probe_of(error, returncode), HEALTHY_PACKAGES["tensorflow"])
        used.add(next(index for index, (pattern, _, _) in enumerate(rules) if pattern.search(text)))
    assert used == set(range(len(rules)))


def test_an_uninstalled_tensorflow_is_named_before_the_error_is_read():
    probe = failed_import_probe("ImportError: numpy.core.multiarray failed to import")
    cause, hint = tensorflow_keras.explain_import_failure(probe, None)
    assert "not installed" in cause and hint == INSTALL_EVERYTHING


def test_a_numpy_clash_without_a_declared_bound_upgrades_both():
    tf = DistInfo("tensorflow", "2.21.0")  # metadata without Requires-Dist
    _, hint = tensorflow_keras.explain_import_failure(failed_import_probe("ImportError: _ARRAY_API not found"), tf)
    assert hint == 'pip install --upgrade "tensorflow>=2.16" numpy'


def test_a_crashed_child_without_a_report_still_gives_a_reason():
    probe = tensorflow_keras.parse_probe_output(-4, "", "Illegal instruction (core dumped)\n")
    assert probe["import_ok"] is False and probe["returncode"] == -4
    assert probe["import_error"] == "Illegal instruction (core dumped)"


def test_the_probe_report_is_found_among_other_stdout_and_stderr_clues_are_kept():
    report = json.dumps({"import_ok": True, "tf_version": "2.21.0"})
    stderr = (
        "W0000 00:00:1712 99 gpu_device.cc:2344] Cannot dlopen some GPU libraries.\n"
        "I0000 00:00:1712 99 other.cc:1] nothing to see here\n"
    )
    stdout = "noise\n" + tensorflow_keras.PROBE_MARKER + "{broken\n" + tensorflow_keras.PROBE_MARKER + report + "\n"
    probe = tensorflow_keras.parse_probe_output(0, stdout, stderr)
    assert probe["tf_version"] == "2.21.0"
    assert probe["stderr_clues"] == ["Cannot dlopen some GPU libraries."]


def test_a_hanging_import_is_a_fail_with_a_timeout_hint(world):
    world.probe = {"timeout": True, "timeout_s": 120}
    code, rows, _ = run_doctor(world)
    assert code == 1
    assert_row(rows, "tf.import", "FAIL", "did not finish within 120 s", hint="--timeout 600")


def test_a_tensorflow_folder_shadowing_the_package_warns(world):
    world.probe = healthy_probe(tf_file="/home/student/lab/tensorflow/__init__.py")
    code, rows, _ = run_doctor(world)
    assert code == 0
    assert_row(rows, "tf.import", "WARN", "/home/student/lab/tensorflow", hint="rename it")


def test_a_healthy_import_reports_version_time_and_place(world):
    _, rows, _ = run_doctor(world)
    assert_row(rows, "tf.import", "OK", "TensorFlow 2.21.0", "3.5 s", "site-packages/tensorflow")


# ---------------------------------------------------------------------------------------------
# Keras flavour


def test_legacy_keras_requested_by_the_environment_fails(world):
    world.env["TF_USE_LEGACY_KERAS"] = "1"
    world.probe = healthy_probe(keras={"error": "ImportError: Keras cannot be imported. Check that it is installed."})
    code, rows, _ = run_doctor(world)
    assert code == 1
    assert_row(
        rows, "keras", "FAIL", "tf.keras does not import", "TF_USE_LEGACY_KERAS=1", hint="unset TF_USE_LEGACY_KERAS"
    )


def test_keras_2_through_tf_keras_fails(world):
    world.env["TF_USE_LEGACY_KERAS"] = "true"
    world.probe = healthy_probe(
        keras={"module": "tf_keras.api._v2.keras", "version": "2.17.0", "backend": "tensorflow"}
    )
    code, rows, _ = run_doctor(world)
    assert code == 1
    assert_row(rows, "keras", "FAIL", "Keras 2 (2.17.0)", "tf_keras.api._v2.keras", hint="unset TF_USE_LEGACY_KERAS")


def test_keras_2_without_the_legacy_switch_is_upgraded(world):
    world.probe = healthy_probe(keras={"module": "keras.api._v2.keras", "version": "2.15.0", "backend": "tensorflow"})
    _, rows, _ = run_doctor(world)
    assert_row(rows, "keras", "FAIL", "Keras 2 (2.15.0)", hint="it brings Keras 3")


def test_another_keras_backend_fails(world):
    world.env["KERAS_BACKEND"] = "jax"
    world.probe = healthy_probe(keras={"module": "keras._tf_keras.keras", "version": "3.15.1", "backend": "jax"})
    code, rows, _ = run_doctor(world)
    assert code == 1
    assert_row(rows, "keras", "FAIL", "backend jax", "KERAS_BACKEND=jax", hint="keras.json")


def test_the_keras_row_reports_keras_3_and_both_settings(world):
    _, rows, _ = run_doctor(world)
    assert_row(
        rows,
        "keras",
        "OK",
        "Keras 3 (3.15.1)",
        "backend tensorflow",
        "TF_USE_LEGACY_KERAS=unset",
        "KERAS_BACKEND=unset",
    )


@pytest.mark.parametrize(
    "keras, env, status, hint",
    [
        (None, {}, "FAIL", "it brings Keras 3"),  # not installed at all
        ("2.15.0", {}, "FAIL", "it brings Keras 3"),  # too old to be Keras 3
        ("3.15.1", {"TF_USE_LEGACY_KERAS": "1"}, "FAIL", "unset TF_USE_LEGACY_KERAS"),
        ("3.15.1", {"KERAS_BACKEND": "torch"}, "FAIL", "unset KERAS_BACKEND"),
        ("3.15.1", {}, "WARN", "fix the tf.import row first"),
    ],
)
def test_without_tensorflow_keras_is_judged_from_its_package(keras, env, status, hint):
    packages = {"keras": DistInfo("keras", keras)} if keras else {}
    row = tensorflow_keras.check_keras(failed_import_probe("ImportError: x"), env, packages)
    assert row.status == status and hint in row.hint
