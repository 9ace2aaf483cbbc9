"""scripts/test_stack.py, the environment doctor.

Most tests run the doctor in this process against a FakeWorld: a machine whose every outside
fact (installed packages, nvidia-smi, the TensorFlow child's report, ...) is set by the test,
so each failure mode is produced on purpose and its exact row, hint and exit code checked.
The tests marked slow run the real script as a subprocess: in this environment, with a fake
nvidia-smi on PATH, with a TensorFlow that cannot load a library, and in a venv without
TensorFlow at all.
"""

import errno
import importlib.util
import io
import json
import os
import socket
import subprocess
import sys
from importlib import metadata
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SCRIPT = REPO / "scripts" / "test_stack.py"


def _load_doctor():
    spec = importlib.util.spec_from_file_location("test_stack_doctor", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


doctor = _load_doctor()
CommandResult, DistInfo = doctor.CommandResult, doctor.DistInfo

FAKE_PREFIX = "/fake/env"
FAKE_PYTHON = FAKE_PREFIX + "/bin/python"
FAKE_TENSORBOARD = FAKE_PREFIX + "/bin/tensorboard"

TF_CLASSIFIERS = tuple("Programming Language :: Python :: 3.%d" % minor for minor in range(10, 14))
HEALTHY_PACKAGES = {
    "tensorflow": DistInfo("tensorflow", "2.21.0", ">=3.10", TF_CLASSIFIERS,
                           ("numpy>=1.26.0", "protobuf>=5.28.0", 'nvidia-cudnn-cu12; extra == "and-cuda"')),
    "keras": DistInfo("keras", "3.15.1"),
    "tensorboard": DistInfo("tensorboard", "2.21.0"),
    "numpy": DistInfo("numpy", "2.4.6"),
    "pandas": DistInfo("pandas", "3.1.1"),
    "matplotlib": DistInfo("matplotlib", "3.11.2"),
    "scikit-learn": DistInfo("scikit-learn", "1.9.1"),
    "packaging": DistInfo("packaging", "26.3"),
    "notebook": DistInfo("notebook", "7.6.5"),
    "ipykernel": DistInfo("ipykernel", "7.4.0"),
    "pytest": DistInfo("pytest", "9.2.0"),
    "nbclient": DistInfo("nbclient", "0.11.0"),
    "nbformat": DistInfo("nbformat", "5.11.1"),
}
CUDA_WHEELS = {
    "nvidia-cublas-cu12": DistInfo("nvidia-cublas-cu12", "12.5.3.2"),
    "nvidia-cudnn-cu12": DistInfo("nvidia-cudnn-cu12", "9.3.0.75"),
}
DATASETS = {
    "sources": {"mnist": "keras-cache: /home/student/.keras/datasets",
                "fashion_mnist": "system package dataset-fashion-mnist: /usr/share/datasets",
                "digits": "scikit-learn 1.9.1 bundled load_digits()"},
    "hints": {"mnist": "get mnist.npz from the classroom mirror",
              "fashion_mnist": "sudo apt-get install dataset-fashion-mnist"},
}


def healthy_probe(**changes) -> dict:
    """What the TensorFlow child reports on a working CPU-only machine."""
    probe = {
        "import_ok": True, "import_seconds": 3.5, "tf_version": "2.21.0",
        "tf_file": "/fake/env/lib/python3.11/site-packages/tensorflow/__init__.py",
        "keras": {"module": "keras._tf_keras.keras", "version": "3.15.1", "backend": "tensorflow"},
        "build": {"built_with_cuda": True, "cuda_version": "12.5.1", "cudnn_version": "9",
                  "is_rocm_build": False},
        "gpus": {"devices": []},
        "datasets": DATASETS,
        "returncode": 0, "stderr_clues": [],
    }
    probe.update(changes)
    return probe


def failed_import_probe(error: str, returncode: int = 0) -> dict:
    return {"import_ok": False, "import_error": error, "import_traceback": "Traceback ...\n" + error,
            "returncode": returncode, "stderr_clues": []}


ONE_GPU_SMI = CommandResult(0, "NVIDIA GeForce RTX 4090, 550.54.15, 24564 MiB\n")
NO_SMI = CommandResult(None, error="not found")
ONE_TF_GPU = {"devices": [{"name": "/physical_device:GPU:0", "device_name": "NVIDIA GeForce RTX 4090",
                           "compute_capability": [8, 9]}]}
GOOD_SMOKE = {"size": 1024, "gpu_result_device": "/job:localhost/replica:0/task:0/device:GPU:0",
              "cpu_result_device": "/job:localhost/replica:0/task:0/device:CPU:0",
              "max_relative_difference": 2e-4, "gpu_seconds": 0.001, "cpu_seconds": 0.03}


class FakeWorld(doctor.World):
    """A healthy CPU-only student machine; each test breaks the one thing it is about."""

    def __init__(self, tmp_path: Path):
        env = {key: value for key, value in os.environ.items()
               if key not in ("CUDA_VISIBLE_DEVICES", "TF_USE_LEGACY_KERAS", "KERAS_BACKEND", "NO_COLOR")}
        super().__init__(env)
        self.executable, self.prefix, self.in_virtualenv = FAKE_PYTHON, FAKE_PREFIX, True
        self.scripts_dir, self.system = FAKE_PREFIX + "/bin", "Linux"
        self.fake_packages = dict(HEALTHY_PACKAGES)
        self.on_path = {"tensorboard": FAKE_TENSORBOARD}
        self.probe = healthy_probe()
        self.smi = NO_SMI
        self.tensorboard_result = CommandResult(0, "2.21.0\n")
        self.pip_result = CommandResult(0, "No broken requirements found.\n")
        self.port_free = True
        self.instances = []
        self.datasets = DATASETS
        self.download = "URLError: offline"
        self.kernels = tmp_path / "kernels"
        self.register_kernel("course", [FAKE_PYTHON, "-m", "ipykernel_launcher", "-f", "{connection_file}"])

    def register_kernel(self, name, argv, root=None):
        folder = (root or self.kernels) / name
        folder.mkdir(parents=True)
        (folder / "kernel.json").write_text(json.dumps({"argv": argv, "display_name": name}))

    def is_wsl(self):
        return False

    def packages(self):
        return self.fake_packages

    def which(self, name, path=None):
        if path is not None:
            return FAKE_TENSORBOARD if name == "tensorboard" and "tensorboard" in self.fake_packages else None
        return self.on_path.get(name)

    def nvidia_smi(self):
        return self.smi

    def tensorboard_version(self):
        return self.tensorboard_result

    def pip_check(self):
        return self.pip_result

    def tf_probe(self, timeout):
        return self.probe

    def port_is_free(self, port):
        return self.port_free

    def tensorboard_instances(self):
        return self.instances

    def kernel_dirs(self):
        return [self.kernels]

    def dataset_sources(self):
        return self.datasets

    def download_problem(self, timeout=8.0):
        return self.download


@pytest.fixture
def world(tmp_path, monkeypatch):
    # labkit.runs reads LAB_RUNS_DIR from the real environment, so set it there as well.
    monkeypatch.setenv("LAB_RUNS_DIR", str(tmp_path / "runs"))
    return FakeWorld(tmp_path)


def run_doctor(world, *args):
    """(exit code, rows by id, the JSON report) of one in-process run."""
    out = io.StringIO()
    code = doctor.main(["--json", *args], world=world, stdout=out)
    report = json.loads(out.getvalue())
    rows = {row["id"]: row for row in report["checks"]}
    assert len(rows) == len(report["checks"]), "check ids must be unique"
    return code, rows, report


def table_of(world, *args):
    out = io.StringIO()
    code = doctor.main(list(args), world=world, stdout=out)
    return code, out.getvalue()


def verdict_of(text):
    """The closing verdict, unwrapped; it must be the last thing printed."""
    start = text.rindex("Verdict: ")
    assert text[:start].endswith("\n") or start == 0
    return " ".join(text[start:].split())


def statuses(rows, prefix=""):
    return {key: row["status"] for key, row in rows.items() if key.startswith(prefix)}


# ---------------------------------------------------------------------------------------------
# A healthy machine, and the report's shape


CORE_IDS = {"python", "pip_check", "labkit", "tf.import", "keras", "tensorboard", "tensorboard.port",
            "runs_dir", "jupyter.kernel", "data.mnist", "data.fashion_mnist", "data.digits", "gpu.driver"}
PACKAGE_IDS = {"pkg." + name for name in ("tensorflow", "keras", "tensorboard", "numpy", "pandas",
                                          "matplotlib", "notebook", "ipykernel", "scikit-learn", "pytest",
                                          "packaging", "nbclient", "nbformat")}


def test_a_healthy_cpu_machine_is_ready_with_only_the_gpu_warning(world):
    code, rows, report = run_doctor(world)
    assert code == 0
    assert set(rows) == CORE_IDS | PACKAGE_IDS
    assert {key for key, status in statuses(rows).items() if status != "OK"} == {"gpu.driver"}
    assert rows["gpu.driver"]["status"] == "WARN"
    assert rows["gpu.driver"]["hint"] == (
        "no NVIDIA GPU or driver found; the CPU is enough for this course. To use an NVIDIA GPU, "
        "install its driver until `nvidia-smi` lists the card")
    assert report["verdict"] == "ready" and report["exit_code"] == 0
    assert report["summary"] == {"OK": len(rows) - 1, "WARN": 1, "FAIL": 0}


def test_the_json_report_has_the_documented_shape(world):
    _, _, report = run_doctor(world)
    assert report["schema_version"] == 1
    assert {"system", "release", "machine", "python", "executable", "wsl"} <= set(report["platform"])
    for row in report["checks"]:
        assert set(row) == {"id", "status", "found", "required", "hint"}
        assert row["status"] in ("OK", "WARN", "FAIL")
        assert (row["hint"] is None) == (row["status"] == "OK"), row


def test_the_python_row_shows_the_interpreter_and_the_range_tensorflow_supports(world):
    _, rows, _ = run_doctor(world)
    python = "%d.%d.%d" % sys.version_info[:3]
    assert rows["python"]["found"] == "%s, 64-bit, %s" % (python, FAKE_PYTHON)
    assert rows["python"]["required"] == "3.10 to 3.13, 64-bit (tensorflow 2.21.0)"


def test_the_table_ends_with_a_verdict_and_shows_hints_only_for_problems(world):
    code, text = table_of(world, "--no-color")
    assert code == 0
    assert verdict_of(text).startswith("Verdict: READY, with 1 warning(s): gpu.driver.")
    assert text.count("fix: ") == 1
    assert "\033[" not in text


# ---------------------------------------------------------------------------------------------
# Packages


def test_a_missing_package_fails_with_its_install_command(world):
    del world.fake_packages["pandas"]
    code, rows, _ = run_doctor(world)
    assert code == 1
    assert rows["pkg.pandas"]["status"] == "FAIL"
    assert rows["pkg.pandas"]["found"] == "not installed"
    assert rows["pkg.pandas"]["required"] == "pandas>=2.0"
    assert rows["pkg.pandas"]["hint"] == 'pip install "pandas>=2.0"'


def test_a_version_below_the_bound_fails_although_it_sorts_higher_as_a_string(world):
    # As strings, "1.9.0" > "1.26"; as versions it is far below.
    world.fake_packages["numpy"] = DistInfo("numpy", "1.9.0")
    code, rows, _ = run_doctor(world)
    assert code == 1
    assert rows["pkg.numpy"]["status"] == "FAIL"
    assert rows["pkg.numpy"]["found"] == "1.9.0 (too old)"
    assert rows["pkg.numpy"]["hint"] == 'pip install --upgrade "numpy>=1.26"'


def test_a_version_above_the_bound_passes_although_it_sorts_lower_as_a_string(world):
    # As strings, "3.10.0" < "3.7": the original script would have failed this one.
    world.fake_packages["matplotlib"] = DistInfo("matplotlib", "3.10.0")
    code, rows, _ = run_doctor(world)
    assert code == 0
    assert rows["pkg.matplotlib"]["status"] == "OK"


@pytest.mark.parametrize("use_packaging", [True, False], ids=["packaging", "fallback"])
@pytest.mark.parametrize("version, specifier, expected", [
    ("1.10", ">=1.4", True),
    ("1.4", ">=1.10", False),
    ("2.16.0", ">=2.16", True),
    ("2.15.1", ">=2.16", False),
    ("2.22.0.dev20250101", ">=2.16", True),
    ("1.26.4", ">=1.26.0,<2.2", True),
    ("2.2.0", ">=1.26.0,<2.2", False),
])
def test_versions_compare_as_numbers(monkeypatch, use_packaging, version, specifier, expected):
    if not use_packaging:
        monkeypatch.setattr(doctor, "PACKAGING_PROBLEM", "ModuleNotFoundError: No module named 'packaging'")
    assert doctor.satisfies(version, specifier) is expected


def test_the_bounds_come_from_requirements_txt(world):
    world.requirements_text = lambda: "# a comment\n-e .\nnumpy>=3.0  # future\n--index-url x\n"
    code, rows, _ = run_doctor(world)
    assert code == 1
    assert rows["pkg.numpy"]["status"] == "FAIL"
    assert rows["pkg.numpy"]["required"] == "numpy>=3.0"
    # Without a line of its own, a course package only has to be installed.
    assert rows["pkg.pandas"]["required"] == "installed"


def test_requirement_lines_skip_options_comments_and_other_platforms():
    text = ("tensorflow>=2.16\n-e .\n# comment\n\nScikit_Learn >= 1.3  # inline\n"
            'tensorflow-metal>=1.1; sys_platform == "no-such-platform"\n')
    assert doctor.parse_requirements(text) == [("tensorflow", ">=2.16"), ("scikit-learn", ">=1.3")]


def test_tensorflow_installed_under_another_name_counts(world):
    del world.fake_packages["tensorflow"]
    world.fake_packages["tensorflow-cpu"] = DistInfo("tensorflow-cpu", "2.21.0", ">=3.10", TF_CLASSIFIERS)
    code, rows, _ = run_doctor(world)
    assert code == 0
    assert rows["pkg.tensorflow"]["status"] == "OK"
    assert rows["pkg.tensorflow"]["found"] == "tensorflow-cpu 2.21.0"


def test_two_tensorflow_packages_in_one_environment_warn(world):
    world.fake_packages["tf-nightly"] = DistInfo("tf-nightly", "2.22.0.dev20250101")
    code, rows, _ = run_doctor(world)
    assert code == 0
    assert rows["pkg.tensorflow"]["status"] == "WARN"
    assert rows["pkg.tensorflow"]["hint"] == (
        "they overwrite each other's files; keep one: pip uninstall -y tensorflow tf-nightly, then "
        'pip install "tensorflow>=2.16"')


def test_pip_check_failing_on_a_course_package_fails(world):
    world.pip_result = CommandResult(1, "tensorflow 2.21.0 has requirement protobuf>=5.28.0, but you have "
                                        "protobuf 4.25.0.\n")
    code, rows, _ = run_doctor(world)
    assert code == 1
    assert rows["pip_check"]["status"] == "FAIL"
    assert rows["pip_check"]["hint"] == (
        'a course package is missing what it needs: pip install "protobuf>=5.28.0", then run this again')


def test_pip_check_failing_on_a_foreign_package_only_warns(world):
    world.pip_result = CommandResult(1, "oldtool 0.1 requires six, which is not installed.\n")
    code, rows, _ = run_doctor(world)
    assert code == 0
    assert rows["pip_check"]["status"] == "WARN"
    assert rows["pip_check"]["found"] == "1 broken: oldtool 0.1 requires six, which is not installed."


def test_a_python_without_pip_warns_with_ensurepip(world):
    world.pip_result = CommandResult(1, "", "/fake/env/bin/python: No module named pip\n")
    code, rows, _ = run_doctor(world)
    assert code == 0
    assert rows["pip_check"]["status"] == "WARN"
    assert rows["pip_check"]["hint"] == FAKE_PYTHON + " -m ensurepip --upgrade"


# ---------------------------------------------------------------------------------------------
# Python


@pytest.mark.parametrize("version, bits, status", [
    ((3, 11, 7), 64, "OK"),
    ((3, 14, 0), 64, "WARN"),   # newer than TensorFlow lists
    ((3, 9, 18), 64, "FAIL"),   # below its Requires-Python
    ((3, 11, 7), 32, "FAIL"),
])
def test_python_versions_outside_what_tensorflow_supports(version, bits, status):
    row = doctor.check_python(version, "/py", bits, True, HEALTHY_PACKAGES, ">=2.16")
    assert row.status == status


def test_without_tensorflow_the_python_range_comes_from_the_known_releases():
    # No TensorFlow wheel exists for this Python yet, so pip could not even install it.
    row = doctor.check_python((3, 14, 0), "/py", 64, True, {}, ">=2.16")
    assert (row.status, row.required) == ("FAIL", "3.9 to 3.13, 64-bit (tensorflow>=2.16)")
    assert row.hint == ("install Python 3.13 (python.org or your package manager) and recreate .venv with it: "
                        "python3.13 -m venv .venv (Windows: py -3.13 -m venv .venv)")
    assert doctor.check_python((3, 12, 1), "/py", 64, True, {}, ">=2.16").status == "OK"


# ---------------------------------------------------------------------------------------------
# The TensorFlow import


def test_tensorflow_failing_to_load_a_cuda_library_shows_the_cause_in_one_line(world):
    world.probe = failed_import_probe(
        "ImportError: libcudnn.so.9: cannot open shared object file: No such file or directory")
    code, rows, _ = run_doctor(world)
    assert code == 1
    row = rows["tf.import"]
    assert row["status"] == "FAIL"
    assert row["found"] == "TensorFlow does not import: missing shared library libcudnn.so.9 (a CUDA library)"
    assert row["hint"] == ('pip install "tensorflow[and-cuda]>=2.16" for the GPU, or '
                           'pip install "tensorflow-cpu>=2.16" to use the CPU only')
    # What depends on TensorFlow says so instead of guessing.
    assert rows["keras"]["status"] == "WARN" and rows["keras"]["hint"] == "fix the tf.import row first"
    # The data rows still come, from the parent process this time.
    assert statuses(rows, "data.") == {"data.mnist": "OK", "data.fashion_mnist": "OK", "data.digits": "OK"}


@pytest.mark.parametrize("error, returncode, cause, hint", [
    ("ModuleNotFoundError: No module named 'tensorflow'", 0,
     "TensorFlow is not installed in this Python", doctor.INSTALL_EVERYTHING),
    ("ImportError: DLL load failed while importing _pywrap_tensorflow_internal: The specified module "
     "could not be found.", 0,
     "a DLL is missing (ImportError: DLL load failed while importing _pywrap_tensorflow_internal: The "
     "specified module could not be found.)",
     "install the Microsoft Visual C++ Redistributable 2015-2022 (x64) from "
     "https://aka.ms/vs/17/release/vc_redist.x64.exe, then "
     'pip install --force-reinstall "tensorflow>=2.16"'),
    ("ImportError: dlopen(/x/_pywrap.so, 0x0002): tried: '/x/_pywrap.so' (mach-o file, but is an "
     "incompatible architecture (have 'x86_64', need 'arm64'))", 0, None,
     "install a native 64-bit Python for this machine (on Apple Silicon: not an x86_64 Python under "
     "Rosetta), recreate .venv with it, then " + doctor.INSTALL_EVERYTHING),
    ("TypeError: Descriptors cannot be created directly.", 0, None, 'pip install "protobuf>=5.28.0"'),
    ("ImportError: numpy.core.multiarray failed to import", 0, None, 'pip install "numpy>=1.26.0"'),
    (None, -4, "the process died with an illegal instruction: this CPU lacks the AVX instructions "
               "TensorFlow's wheels need",
     "use a newer computer, or a hosted notebook such as Google Colab"),
])
def test_import_failures_are_explained(error, returncode, cause, hint):
    probe = failed_import_probe(error, returncode) if error else {"import_ok": False, "returncode": returncode}
    found_cause, found_hint = doctor.explain_import_failure(probe, HEALTHY_PACKAGES["tensorflow"], "Linux")
    if cause is not None:
        assert found_cause == cause
    assert found_hint == hint


def test_a_crashed_child_without_a_report_still_gives_a_reason():
    probe = doctor.parse_probe_output(-4, "", "Illegal instruction (core dumped)\n")
    assert probe["import_ok"] is False and probe["returncode"] == -4
    assert probe["import_error"] == "Illegal instruction (core dumped)"


def test_the_probe_report_is_found_among_other_stdout_and_stderr_clues_are_kept():
    report = json.dumps({"import_ok": True, "tf_version": "2.21.0"})
    stderr = "W0000 00:00:1712 99 gpu_device.cc:2344] Cannot dlopen some GPU libraries.\n"
    probe = doctor.parse_probe_output(0, "noise\n" + doctor.PROBE_MARKER + report + "\n", stderr)
    assert probe["tf_version"] == "2.21.0"
    assert probe["stderr_clues"] == ["Cannot dlopen some GPU libraries."]


def test_a_hanging_import_is_a_fail_with_a_timeout_hint(world):
    world.probe = {"timeout": True, "timeout_s": 120}
    code, rows, _ = run_doctor(world)
    assert code == 1
    assert rows["tf.import"]["status"] == "FAIL"
    assert rows["tf.import"]["found"] == "the import did not finish within 120 s"


def test_a_tensorflow_folder_shadowing_the_package_warns(world):
    world.probe = healthy_probe(tf_file="/home/student/lab/tensorflow/__init__.py")
    code, rows, _ = run_doctor(world)
    assert code == 0
    assert rows["tf.import"]["status"] == "WARN"
    assert rows["tf.import"]["hint"] == ("that is not the installed package: a file or folder named "
                                         "`tensorflow` next to your code hides it; rename it")


# ---------------------------------------------------------------------------------------------
# Keras flavour


def test_legacy_keras_requested_by_the_environment_fails(world):
    world.env["TF_USE_LEGACY_KERAS"] = "1"
    world.probe = healthy_probe(keras={"error": "ImportError: Keras cannot be imported. Check that it is installed."})
    code, rows, _ = run_doctor(world)
    assert code == 1
    assert rows["keras"]["status"] == "FAIL"
    assert rows["keras"]["found"] == ("tf.keras does not import (ImportError: Keras cannot be imported. Check "
                                      "that it is installed.); TF_USE_LEGACY_KERAS=1, KERAS_BACKEND=unset")
    assert rows["keras"]["hint"].startswith("unset TF_USE_LEGACY_KERAS (it asks for Keras 2")


def test_keras_2_through_tf_keras_fails(world):
    world.env["TF_USE_LEGACY_KERAS"] = "true"
    world.probe = healthy_probe(keras={"module": "tf_keras.api._v2.keras", "version": "2.17.0",
                                       "backend": "tensorflow"})
    code, rows, _ = run_doctor(world)
    assert code == 1
    assert rows["keras"]["found"].startswith("Keras 2 (2.17.0) as tf.keras from tf_keras.api._v2.keras")


def test_another_keras_backend_fails(world):
    world.env["KERAS_BACKEND"] = "jax"
    world.probe = healthy_probe(keras={"module": "keras._tf_keras.keras", "version": "3.15.1", "backend": "jax"})
    code, rows, _ = run_doctor(world)
    assert code == 1
    assert rows["keras"]["status"] == "FAIL"
    assert rows["keras"]["hint"] == ("unset KERAS_BACKEND or set it to tensorflow, and make sure "
                                     "~/.keras/keras.json does not choose another backend")


def test_the_keras_row_reports_keras_3_and_both_settings(world):
    _, rows, _ = run_doctor(world)
    assert rows["keras"]["found"] == ("Keras 3 (3.15.1) as tf.keras from keras._tf_keras.keras, backend "
                                      "tensorflow; TF_USE_LEGACY_KERAS=unset, KERAS_BACKEND=unset")


# ---------------------------------------------------------------------------------------------
# TensorBoard, the port and the runs folder


def test_tensorboard_missing_from_path_warns_with_the_activation_command(world):
    world.on_path = {}
    code, rows, _ = run_doctor(world)
    assert code == 0
    assert rows["tensorboard"]["status"] == "WARN"
    assert rows["tensorboard"]["hint"] == "activate the environment first: source /fake/env/bin/activate"


def test_tensorboard_on_path_from_another_environment_warns(world):
    world.on_path = {"tensorboard": "/usr/bin/tensorboard"}
    code, rows, _ = run_doctor(world)
    assert code == 0
    assert rows["tensorboard"]["status"] == "WARN"
    assert rows["tensorboard"]["found"].startswith("`tensorboard` on PATH is /usr/bin/tensorboard, from another")


def test_a_tensorboard_command_that_cannot_start_fails(world):
    world.tensorboard_result = CommandResult(None, error="not found")  # the file is there, its Python is not
    code, rows, _ = run_doctor(world)
    assert code == 1
    assert rows["tensorboard"]["status"] == "FAIL"
    assert rows["tensorboard"]["hint"] == ("the environment was moved or its Python removed: recreate .venv, "
                                           "then " + doctor.INSTALL_EVERYTHING)


def test_the_real_tensorboard_command_runs_with_tensorflow_kept_out():
    result = doctor.World().tensorboard_version()
    assert result.succeeded, result
    assert result.stdout.strip() == metadata.version("tensorboard")


def _occupy(port):
    """A listening socket on localhost:port, or None when something else already holds it."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        sock.bind(("127.0.0.1", port))
    except OSError as error:
        sock.close()
        assert error.errno == errno.EADDRINUSE, error
        return None  # busy already, which is the situation under test
    sock.listen(1)
    return sock


def test_port_6006_busy_warns_and_names_a_way_out(world):
    world.port_is_free = lambda port: doctor.World.port_is_free(world, port)  # the real check
    blocker = _occupy(6006)
    try:
        code, rows, _ = run_doctor(world)
    finally:
        if blocker:
            blocker.close()
    assert code == 0
    row = rows["tensorboard.port"]
    assert row["status"] == "WARN"
    assert row["found"] == "port 6006 on localhost is in use"
    assert row["hint"] == (
        "A new TensorBoard would quietly move to port 6007 or higher while http://localhost:6006 keeps "
        "showing the old one. Stop the old instance (Ctrl+C in its terminal), or choose a port yourself: "
        "tensorboard --logdir runs --port 6007")


def test_a_free_port_is_seen_as_free():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    assert doctor.World().port_is_free(port) is True


def test_a_stale_tensorboard_holding_the_port_is_named(world):
    world.port_free = False
    world.instances = [{"port": 6006, "pid": 4242, "logdir": "runs"}]
    _, rows, _ = run_doctor(world)
    assert rows["tensorboard.port"]["found"] == "port 6006 on localhost is in use by TensorBoard pid 4242 (logdir runs)"
    assert "kill 4242" in rows["tensorboard.port"]["hint"]


def test_a_runs_dir_beneath_a_regular_file_fails(world, tmp_path, monkeypatch):
    blocker = tmp_path / "notes.txt"
    blocker.write_text("a file, not a folder")
    monkeypatch.setenv("LAB_RUNS_DIR", str(blocker / "runs"))
    world.env["LAB_RUNS_DIR"] = str(blocker / "runs")
    code, rows, _ = run_doctor(world)
    assert code == 1
    row = rows["runs_dir"]
    assert row["status"] == "FAIL"
    assert row["found"] == ("logdir %s cannot be created: %s is a file, not a folder (from LAB_RUNS_DIR)"
                            % (blocker / "runs", blocker))
    assert row["hint"] == ("set LAB_RUNS_DIR to a folder you can write to, or unset it to use runs/ in the "
                           "repository")


def test_a_runs_dir_without_write_permission_fails(world, tmp_path, monkeypatch):
    # Tests run as root, for whom chmod changes nothing; os.access is what labkit asks.
    runs = tmp_path / "runs"
    monkeypatch.setattr(os, "access", lambda path, mode: False)
    code, rows, _ = run_doctor(world)
    assert code == 1
    assert rows["runs_dir"]["status"] == "FAIL"
    assert rows["runs_dir"]["found"] == ("logdir %s is not writable (no write permission on %s) (from LAB_RUNS_DIR)"
                                         % (runs, tmp_path))


# ---------------------------------------------------------------------------------------------
# Jupyter and data


def test_no_kernel_for_this_python_prints_the_exact_install_line(world, tmp_path):
    world.kernels = tmp_path / "other-kernels"
    world.register_kernel("python3", ["/usr/bin/python3", "-m", "ipykernel_launcher"])
    code, rows, _ = run_doctor(world)
    assert code == 0
    row = rows["jupyter.kernel"]
    assert row["status"] == "WARN"
    assert row["found"] == "no kernel runs this Python (kernels found: python3)"
    assert row["hint"] == ('/fake/env/bin/python -m ipykernel install --user --name keras-course-lab '
                           '--display-name "Python (keras-course-lab)"')


def test_the_default_kernel_inside_this_environment_counts(world, tmp_path):
    # ipykernel's own kernel.json says just "python"; Jupyter runs it with its own interpreter.
    prefix = tmp_path / "env"
    world.prefix = str(prefix)
    world.kernels = prefix / "share" / "jupyter" / "kernels"
    world.register_kernel("python3", ["python", "-m", "ipykernel_launcher", "-f", "{connection_file}"])
    _, rows, _ = run_doctor(world)
    assert rows["jupyter.kernel"]["status"] == "OK"
    assert rows["jupyter.kernel"]["found"] == "kernel python3 runs this Python"


def test_missing_datasets_warn_with_labkits_hint_and_digits_must_exist(world):
    world.probe = healthy_probe(datasets={"sources": {"mnist": None, "fashion_mnist": None, "digits": None},
                                          "hints": DATASETS["hints"]})
    code, rows, _ = run_doctor(world)
    assert code == 1
    assert (rows["data.mnist"]["status"], rows["data.mnist"]["hint"]) == (
        "WARN", "get mnist.npz from the classroom mirror")
    assert rows["data.fashion_mnist"]["status"] == "WARN"
    assert (rows["data.digits"]["status"], rows["data.digits"]["hint"]) == (
        "FAIL", 'pip install "scikit-learn>=1.3"')


def test_the_network_is_only_touched_with_online(world):
    def no_network(timeout=8.0):
        raise AssertionError("the doctor went online without --online")

    world.download_problem = no_network
    _, rows, _ = run_doctor(world)
    assert "data.download" not in rows

    world.download_problem = lambda timeout=8.0: None
    world.probe = healthy_probe(datasets={"sources": dict(DATASETS["sources"], mnist=None), "hints": {}})
    _, rows, _ = run_doctor(world, "--online")
    assert rows["data.download"]["status"] == "OK"
    assert rows["data.mnist"] == dict(rows["data.mnist"], status="OK",
                                      found="not on disk; Keras will download it on first use")


# ---------------------------------------------------------------------------------------------
# GPU: each layer of the diagnosis


def gpu_world(world, *, devices=None, smoke=None, wheels=True):
    """nvidia-smi lists one GPU and TensorFlow is a CUDA build; the rest is up to the test."""
    world.smi = ONE_GPU_SMI
    if wheels:
        world.fake_packages.update(CUDA_WHEELS)
    changes = {"gpus": devices or {"devices": []}}
    if smoke is not None:
        changes["smoke"] = smoke
    world.probe = healthy_probe(**changes)
    return world


def test_no_gpu_with_require_gpu_fails(world):
    code, rows, _ = run_doctor(world, "--require-gpu")
    assert code == 1
    assert rows["gpu.driver"]["status"] == "FAIL"
    assert rows["gpu.driver"]["required"] == "an NVIDIA GPU and driver (--require-gpu)"
    assert rows["gpu.driver"]["hint"] == (
        "no NVIDIA GPU or driver found; the CPU is enough for this course. To use an NVIDIA GPU, "
        "install its driver until `nvidia-smi` lists the card")


def test_cuda_visible_devices_minus_one_hides_the_gpu(world):
    gpu_world(world)
    world.env["CUDA_VISIBLE_DEVICES"] = "-1"
    code, rows, _ = run_doctor(world)
    assert code == 0
    assert statuses(rows, "gpu.") == {"gpu.driver": "OK", "gpu.tf_build": "OK", "gpu.cuda_libs": "OK",
                                      "gpu.visible_devices": "WARN"}
    row = rows["gpu.visible_devices"]
    assert row["found"] == "CUDA_VISIBLE_DEVICES='-1' hides every GPU from TensorFlow"
    assert row["hint"] == ("unset CUDA_VISIBLE_DEVICES (`unset CUDA_VISIBLE_DEVICES`, Windows: "
                           "`set CUDA_VISIBLE_DEVICES=`), or list GPU indexes from 0 to 0")


@pytest.mark.parametrize("value, status", [("", "WARN"), ("3", "WARN"), ("0", "OK"), ("GPU-8a1b-22", "OK")])
def test_cuda_visible_devices_values(world, value, status):
    gpu_world(world, devices=ONE_TF_GPU, smoke=GOOD_SMOKE)
    world.env["CUDA_VISIBLE_DEVICES"] = value
    _, rows, _ = run_doctor(world)
    assert rows["gpu.visible_devices"]["status"] == status


def test_nvidia_smi_sees_a_gpu_that_tensorflow_does_not(world):
    gpu_world(world)
    world.probe["stderr_clues"] = ["failed call to cuInit: CUDA_ERROR_NO_DEVICE"]
    code, rows, _ = run_doctor(world)
    assert code == 0
    assert statuses(rows, "gpu.") == {"gpu.driver": "OK", "gpu.tf_build": "OK", "gpu.cuda_libs": "OK",
                                      "gpu.visible_devices": "OK", "gpu.tf_devices": "WARN"}
    row = rows["gpu.tf_devices"]
    assert row["found"] == ("nvidia-smi lists 1 GPU(s) but TensorFlow lists none (TensorFlow says: failed "
                            "call to cuInit: CUDA_ERROR_NO_DEVICE)")
    assert row["hint"] == (
        "nvidia-smi sees the card but TensorFlow does not: the driver may be too old for CUDA 12.5.1 "
        "(update it), or the GPU too old for this build. Look for the first error in: "
        "TF_CPP_MIN_LOG_LEVEL=0 python -c \"import tensorflow as tf; "
        "print(tf.config.list_physical_devices('GPU'))\"")


def test_a_gpu_without_cuda_wheels_gets_the_and_cuda_hint(world):
    gpu_world(world, wheels=False)
    code, rows, _ = run_doctor(world)
    assert code == 0
    assert rows["gpu.cuda_libs"]["status"] == "WARN"
    assert rows["gpu.cuda_libs"]["hint"] == 'on Linux: pip install "tensorflow[and-cuda]>=2.16"'
    assert "gpu.visible_devices" not in rows  # the diagnosis stops at the first failing layer


def test_a_cpu_only_tensorflow_build_on_native_windows_points_to_wsl2(world):
    gpu_world(world)
    world.system = "Windows"
    world.probe["build"] = {"built_with_cuda": False, "cuda_version": None, "cudnn_version": None}
    _, rows, _ = run_doctor(world)
    assert rows["gpu.tf_build"]["status"] == "WARN"
    assert rows["gpu.tf_build"]["hint"] == (
        "native Windows has no TensorFlow GPU build after 2.10: install WSL2, and "
        'pip install "tensorflow[and-cuda]>=2.16" inside it')


def test_wsl2_without_a_driver_points_to_the_windows_side(world):
    world.is_wsl = lambda: True
    _, rows, _ = run_doctor(world)
    assert rows["gpu.driver"]["hint"] == (
        "in WSL2 the NVIDIA driver is installed on the Windows side (the ordinary Windows driver), "
        "never inside Linux; after that, nvidia-smi works here")


def test_macos_without_tensorflow_metal_warns(world):
    world.system = "Darwin"
    code, rows, _ = run_doctor(world)
    assert code == 0
    assert statuses(rows, "gpu.") == {"gpu.metal": "WARN"}
    assert rows["gpu.metal"]["hint"].startswith("on an Apple Silicon Mac: pip install tensorflow-metal")


def test_a_fake_gpu_that_passes_the_smoke_operation(world):
    gpu_world(world, devices=ONE_TF_GPU, smoke=GOOD_SMOKE)
    code, rows, _ = run_doctor(world, "--require-gpu")
    assert code == 0
    assert set(statuses(rows, "gpu.").values()) == {"OK"}
    assert list(statuses(rows, "gpu.")) == ["gpu.driver", "gpu.tf_build", "gpu.cuda_libs", "gpu.visible_devices",
                                            "gpu.tf_devices", "gpu.smoke"]
    assert rows["gpu.driver"]["found"] == "1 GPU(s): NVIDIA GeForce RTX 4090, driver 550.54.15, 24564 MiB"
    assert rows["gpu.tf_devices"]["found"] == "1 GPU(s): GPU:0 (NVIDIA GeForce RTX 4090)"
    assert rows["gpu.smoke"]["found"] == ("1024x1024 matmul ran on GPU:0 and matches the CPU (difference 0.0002); "
                                          "GPU 1.00 ms, CPU 30.00 ms: 30.0x speed-up")
    assert rows["gpu.smoke"]["hint"] is None


def test_a_smoke_operation_that_lands_on_the_cpu_fails_even_without_require_gpu(world):
    gpu_world(world, devices=ONE_TF_GPU,
              smoke=dict(GOOD_SMOKE, gpu_result_device="/job:localhost/replica:0/task:0/device:CPU:0"))
    code, rows, _ = run_doctor(world)
    assert code == 1
    assert rows["gpu.smoke"]["status"] == "FAIL"
    assert rows["gpu.smoke"]["hint"] == (
        "TensorFlow cannot place work on the GPU; until it is fixed, hide the GPU and train on the CPU: "
        "CUDA_VISIBLE_DEVICES=-1 (Windows: set CUDA_VISIBLE_DEVICES=-1)")


def test_a_gpu_computing_wrong_numbers_fails(world):
    gpu_world(world, devices=ONE_TF_GPU, smoke=dict(GOOD_SMOKE, max_relative_difference=0.5))
    code, rows, _ = run_doctor(world)
    assert code == 1
    assert rows["gpu.smoke"]["found"] == "the GPU result differs from the CPU by 0.5 (relative)"


def test_tensorflow_listing_fewer_gpus_than_nvidia_smi_warns_and_goes_on(world):
    gpu_world(world, devices=ONE_TF_GPU, smoke=GOOD_SMOKE)
    world.smi = CommandResult(0, ONE_GPU_SMI.stdout * 2)
    _, rows, _ = run_doctor(world)
    assert rows["gpu.tf_devices"]["status"] == "WARN"
    assert rows["gpu.smoke"]["status"] == "OK"


def test_a_broken_driver_is_reported_from_nvidia_smi(world):
    world.smi = CommandResult(9, "NVIDIA-SMI has failed because it couldn't communicate with the NVIDIA "
                                 "driver. Make sure that the latest NVIDIA driver is installed and running.\n")
    _, rows, _ = run_doctor(world)
    assert rows["gpu.driver"]["status"] == "WARN"
    assert rows["gpu.driver"]["found"].startswith("nvidia-smi failed: NVIDIA-SMI has failed")


# ---------------------------------------------------------------------------------------------
# Exit codes, robustness and output options


def test_strict_counts_warnings_as_failures(world):
    code, rows, report = run_doctor(world, "--strict")
    assert code == 1
    assert report["verdict"] == "not ready"
    assert rows["gpu.driver"]["status"] == "WARN"


def test_a_check_that_crashes_becomes_a_fail_row(world):
    def broken():
        raise RuntimeError("kernel folder exploded\nsecond line")

    world.kernel_dirs = broken
    code, rows, _ = run_doctor(world)
    assert code == 1
    assert rows["jupyter.kernel"]["status"] == "FAIL"
    assert rows["jupyter.kernel"]["found"] == "the check itself failed: RuntimeError: kernel folder exploded"
    assert rows["jupyter.kernel"]["hint"] == doctor.BUG_HINT
    assert rows["runs_dir"]["status"] == "OK"  # the rows after it are still there


def test_a_background_task_that_crashes_becomes_a_fail_row(world):
    def broken():
        raise OSError("no such thing")

    world.pip_check = broken
    code, rows, _ = run_doctor(world)
    assert code == 1
    assert rows["pip_check"]["found"] == "the check itself failed: OSError: no such thing"


def test_quiet_prints_only_the_failures_and_the_verdict(world):
    del world.fake_packages["pandas"]
    code, text = table_of(world, "-q", "--no-color")
    assert code == 1
    lines = text.strip().splitlines()
    assert [line.split()[0] for line in lines if line.startswith(("OK", "WARN", "FAIL"))] == ["FAIL"]
    assert "pkg.pandas" in text and "gpu.driver" not in text.split("Verdict")[0]
    assert verdict_of(text).startswith("Verdict: NOT READY. 1 check(s) failed: pkg.pandas.")


def test_quiet_with_nothing_failing_prints_just_the_verdict(world):
    code, text = table_of(world, "-q")
    assert code == 0
    assert text.startswith("Verdict: READY")


def test_colour_only_on_a_terminal_and_never_with_no_color():
    class Terminal(io.StringIO):
        def isatty(self):
            return True

    assert doctor.use_color(None, Terminal(), {}, "Linux") is True
    assert doctor.use_color(None, io.StringIO(), {}, "Linux") is False
    assert doctor.use_color(None, Terminal(), {"NO_COLOR": "1"}, "Linux") is False
    assert doctor.use_color(False, Terminal(), {}, "Linux") is False
    rows = [doctor.Check("x", "FAIL", "found", "required", "hint")]
    assert "\033[31mFAIL" in doctor.render_table(rows, True, False, False)


def test_long_paths_stay_whole_in_the_table():
    path = "/home/student/projects/keras-course-lab/.venv/lib/python3.11/site-packages/tensorflow"
    rows = [doctor.Check("tf.import", "OK", "TensorFlow 2.21.0 imported in 3.9 s from " + path,
                         "imports within 120 s")]
    text = doctor.render_table(rows, False, False, False, width=80)
    assert path in text.splitlines()[2]
    assert "imports within 120 s" in text.splitlines()[1]


@pytest.mark.parametrize("args", [["--bogus"], ["--timeout", "-3"], ["--timeout", "soon"]])
def test_usage_errors_exit_2(world, args, capsys):
    assert doctor.main(args, world=world) == 2
    assert "usage: test_stack.py" in capsys.readouterr().err


def test_usage_error_exit_code_from_the_command_line():
    done = subprocess.run([sys.executable, str(SCRIPT), "--no-such-option"], capture_output=True, text=True,
                          timeout=60)
    assert done.returncode == 2
    assert "unrecognized arguments: --no-such-option" in done.stderr


# ---------------------------------------------------------------------------------------------
# The real script, as a subprocess


def _doctor_env(tmp_path, path_dirs=(), **extra):
    env = {key: value for key, value in os.environ.items()
           if key not in ("CUDA_VISIBLE_DEVICES", "TF_USE_LEGACY_KERAS", "KERAS_BACKEND", "PYTHONPATH")}
    # The venv's bin first, as after `source .venv/bin/activate`.
    env["PATH"] = os.pathsep.join([*map(str, path_dirs), str(Path(sys.executable).parent), env.get("PATH", "")])
    env["LAB_RUNS_DIR"] = str(tmp_path / "runs")
    env.update(extra)
    return env


def _run_script(args, env, python=sys.executable, timeout=300):
    return subprocess.run([str(python), str(SCRIPT), *args], cwd=REPO, env=env, capture_output=True,
                          text=True, timeout=timeout)


def _rows(done):
    return {row["id"]: row for row in json.loads(done.stdout)["checks"]}


@pytest.mark.slow
def test_real_environment_json_report(tmp_path):
    done = _run_script(["--json"], _doctor_env(tmp_path))
    assert done.returncode == 0, done.stdout + done.stderr
    report = json.loads(done.stdout)
    rows = {row["id"]: row for row in report["checks"]}
    assert CORE_IDS | PACKAGE_IDS <= set(rows)
    for check_id in PACKAGE_IDS | {"python", "pip_check", "labkit", "tf.import", "keras", "tensorboard",
                                   "runs_dir", "jupyter.kernel", "data.digits"}:
        assert rows[check_id]["status"] == "OK", rows[check_id]
    assert rows["tf.import"]["found"].startswith("TensorFlow %s imported in" % metadata.version("tensorflow"))
    assert report["platform"]["executable"] == sys.executable


@pytest.mark.slow
def test_real_environment_table_ends_with_a_verdict(tmp_path):
    done = _run_script([], _doctor_env(tmp_path))
    assert done.returncode == 0, done.stdout + done.stderr
    assert verdict_of(done.stdout).startswith("Verdict: READY")
    assert "Traceback" not in done.stdout + done.stderr


@pytest.mark.slow
def test_real_tensorflow_with_a_fake_nvidia_smi_on_path(tmp_path):
    fake_bin = tmp_path / "bin"
    fake_bin.mkdir()
    smi = fake_bin / "nvidia-smi"
    smi.write_text("#!/bin/sh\necho 'NVIDIA Fake H100, 550.54.15, 81559 MiB'\n")
    smi.chmod(0o755)
    done = _run_script(["--json"], _doctor_env(tmp_path, [fake_bin]))
    assert done.returncode == 0, done.stdout + done.stderr
    rows = _rows(done)
    assert rows["gpu.driver"]["status"] == "OK"
    assert rows["gpu.driver"]["found"] == "1 GPU(s): NVIDIA Fake H100, driver 550.54.15, 81559 MiB"
    assert rows["gpu.tf_build"]["status"] == "OK"  # PyPI's Linux TensorFlow is a CUDA build
    has_cuda_wheels = any((d.metadata["Name"] or "").startswith("nvidia-") for d in metadata.distributions())
    if has_cuda_wheels:  # the libraries load, but there is no real GPU behind the fake nvidia-smi
        assert rows["gpu.tf_devices"]["status"] == "WARN"
    else:
        assert rows["gpu.cuda_libs"]["status"] == "WARN"
        assert rows["gpu.cuda_libs"]["hint"] == 'on Linux: pip install "tensorflow[and-cuda]>=2.16"'
    assert "gpu.smoke" not in rows


@pytest.mark.slow
def test_a_tensorflow_that_cannot_load_its_library_as_a_subprocess(tmp_path):
    shadow = tmp_path / "shadow" / "tensorflow"
    shadow.mkdir(parents=True)
    (shadow / "__init__.py").write_text(
        "raise ImportError('libcudart.so.12: cannot open shared object file: No such file or directory')\n")
    done = _run_script(["--json"], _doctor_env(tmp_path, PYTHONPATH=str(shadow.parent)))
    assert done.returncode == 1, done.stdout + done.stderr
    rows = _rows(done)
    assert rows["tf.import"]["status"] == "FAIL"
    assert rows["tf.import"]["found"] == "TensorFlow does not import: missing shared library libcudart.so.12 (a CUDA library)"
    assert rows["tf.import"]["hint"] == ('pip install "tensorflow[and-cuda]>=2.16" for the GPU, or '
                                         'pip install "tensorflow-cpu>=2.16" to use the CPU only')
    assert "Traceback" not in done.stderr


@pytest.mark.slow
def test_a_venv_without_tensorflow_gets_fail_rows_with_install_hints(tmp_path):
    venv = tmp_path / "bare-venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True, timeout=120)
    python = venv / ("Scripts/python.exe" if os.name == "nt" else "bin/python")
    env = _doctor_env(tmp_path)
    env["PATH"] = os.pathsep.join([str(python.parent), "/usr/bin", "/bin"])
    done = _run_script(["--json"], env, python=python)
    assert done.returncode == 1, done.stdout + done.stderr
    assert "Traceback" not in done.stdout + done.stderr
    rows = _rows(done)
    assert rows["pkg.tensorflow"] == {"id": "pkg.tensorflow", "status": "FAIL", "found": "not installed",
                                      "required": "tensorflow>=2.16", "hint": 'pip install "tensorflow>=2.16"'}
    assert (rows["pkg.packaging"]["status"], rows["pkg.packaging"]["hint"]) == ("FAIL", 'pip install "packaging>=23.0"')
    assert (rows["tf.import"]["status"], rows["tf.import"]["found"], rows["tf.import"]["hint"]) == (
        "FAIL", "TensorFlow does not import: TensorFlow is not installed in this Python",
        "from the repository root, run: pip install -r requirements.txt")
    assert rows["labkit"]["status"] == "FAIL"
    assert rows["pip_check"]["status"] == "WARN"  # --without-pip
    assert rows["runs_dir"]["status"] == "OK"
    assert rows["runs_dir"]["found"].endswith("(labkit's rules read from the repository: labkit is not installed here)")
    assert rows["data.digits"]["status"] == "FAIL"

    table = _run_script([], env, python=python)
    assert table.returncode == 1
    verdict = verdict_of(table.stdout)
    assert verdict.startswith("Verdict: NOT READY.")
    assert verdict.endswith("Several packages are missing or too old; one command installs them all: from the "
                            "repository root, run: pip install -r requirements.txt. Then run this again.")
    assert "Traceback" not in table.stdout + table.stderr


@pytest.mark.slow
def test_the_smoke_operation_code_runs_against_real_tensorflow():
    # No GPU here: TensorFlow's soft placement runs the "/GPU:0" matmul on the CPU, which is
    # exactly what the smoke layer must catch, and it exercises the real probe code.
    code = ("import json, sys; sys.path.insert(0, %r); import test_stack, tensorflow as tf; "
            "print(json.dumps(test_stack._probe_smoke(tf, size=64, repeats=2)))" % str(SCRIPT.parent))
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    smoke = json.loads(done.stdout.strip().splitlines()[-1])
    assert smoke["gpu_result_device"].endswith("device:CPU:0")
    assert smoke["max_relative_difference"] < 1e-5 and smoke["size"] == 64
    rows = doctor.diagnose_gpu(doctor.GpuFacts(
        ONE_GPU_SMI, healthy_probe(gpus=ONE_TF_GPU, smoke=smoke), ["nvidia-cudnn-cu12 9.3.0.75"], None, {},
        "Linux", False, False))
    assert (rows[-1].id, rows[-1].status) == ("gpu.smoke", "FAIL")
    assert rows[-1].found == "the matmul pinned to /GPU:0 ran on " + smoke["gpu_result_device"]
