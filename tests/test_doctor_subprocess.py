"""The real doctor, run as students run it: scripts/test_stack.py and lesson_1/activity_1/test_stack.py.

The slow tests import the real TensorFlow in the doctor's child process: in this environment,
with a fake nvidia-smi on PATH, with a TensorFlow that cannot load a library, and in a venv
without TensorFlow (or anything else) at all.
"""

import json
import os
import subprocess
import sys
from importlib import metadata
from pathlib import Path

import pytest
from test_test_stack import CORE_IDS, PACKAGE_IDS, healthy_probe, verdict_of

from labtest import mirror_holds_full_mnist
from stack_doctor import gpu
from stack_doctor.core import INSTALL_EVERYTHING, CommandResult

REPO = Path(__file__).resolve().parents[1]
SCRIPT = REPO / "scripts" / "test_stack.py"
LESSON_WRAPPER = REPO / "lesson_1" / "activity_1" / "test_stack.py"


def _doctor_env(tmp_path, path_dirs=(), **extra):
    env = {
        key: value
        for key, value in os.environ.items()
        if key not in ("CUDA_VISIBLE_DEVICES", "TF_USE_LEGACY_KERAS", "KERAS_BACKEND", "PYTHONPATH")
    }
    # The venv's bin first, as after `source .venv/bin/activate`.
    env["PATH"] = os.pathsep.join([*map(str, path_dirs), str(Path(sys.executable).parent), env.get("PATH", "")])
    env["LAB_RUNS_DIR"] = str(tmp_path / "runs")
    env.update(extra)
    return env


def _run_script(args, env, python=sys.executable, script=SCRIPT, timeout=300):
    return subprocess.run(
        [str(python), str(script), *args], cwd=REPO, env=env, capture_output=True, text=True, timeout=timeout
    )


def _rows(done):
    return {row["id"]: row for row in json.loads(done.stdout)["checks"]}


@pytest.mark.parametrize("script", [SCRIPT, LESSON_WRAPPER], ids=["scripts", "lesson_1"])
def test_usage_error_exit_code_from_the_command_line(script):
    done = subprocess.run([sys.executable, str(script), "--no-such-option"], capture_output=True, text=True, timeout=60)
    assert done.returncode == 2
    assert "unrecognized arguments: --no-such-option" in done.stderr
    assert "usage: test_stack.py" in done.stderr


@pytest.fixture(scope="module")
def real_report(tmp_path_factory):
    """One real `scripts/test_stack.py --json` in this environment, shared by the tests below."""
    return _run_script(["--json"], _doctor_env(tmp_path_factory.mktemp("real")))


@pytest.mark.slow
def test_real_environment_json_report(real_report):
    assert real_report.returncode == 0, real_report.stdout + real_report.stderr
    report = json.loads(real_report.stdout)
    rows = {row["id"]: row for row in report["checks"]}
    assert CORE_IDS | PACKAGE_IDS <= set(rows)
    # Every row must be OK here but those that depend on the machine rather than the install.
    machine_dependent = {"tensorboard.port", "data.mnist", "data.fashion_mnist", "gpu.driver"}
    for check_id in PACKAGE_IDS | (CORE_IDS - machine_dependent):
        assert rows[check_id]["status"] == "OK", rows[check_id]
    assert rows["tf.import"]["found"].startswith(f"TensorFlow {metadata.version('tensorflow')} imported in")
    assert report["platform"]["executable"] == sys.executable
    if mirror_holds_full_mnist():  # .ci/run's mirror: the doctor verifies full MNIST in it
        assert rows["data.mnist"]["status"] == "OK", rows["data.mnist"]
        assert "60,000 train + 10,000 test images, verified by SHA-256" in rows["data.mnist"]["found"]


@pytest.mark.slow
def test_the_lesson_wrapper_prints_the_table_of_the_same_report(real_report, tmp_path):
    """Seed 000's command, `python3 lesson_1/activity_1/test_stack.py`, in its table form: the same
    rows with the same statuses and the same verdict as scripts/test_stack.py --json."""
    done = _run_script([], _doctor_env(tmp_path), script=LESSON_WRAPPER)
    assert done.returncode == real_report.returncode == 0, done.stdout + done.stderr
    assert "Traceback" not in done.stdout + done.stderr
    assert verdict_of(done.stdout).startswith("Verdict: READY")
    table = {
        line.split()[1]: line.split()[0]
        for line in done.stdout.splitlines()
        if line.startswith(("OK ", "WARN ", "FAIL "))
    }
    theirs = {row["id"]: row["status"] for row in json.loads(real_report.stdout)["checks"]}
    # Only the port can change between two runs: another test may hold 6006 for a moment.
    assert {k: v for k, v in table.items() if k != "tensorboard.port"} == {
        k: v for k, v in theirs.items() if k != "tensorboard.port"
    }


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
    assert "NVIDIA Fake H100, driver 550.54.15, 81559 MiB" in rows["gpu.driver"]["found"]
    assert rows["gpu.tf_build"]["status"] == "OK"  # PyPI's Linux TensorFlow is a CUDA build
    has_cuda_wheels = any((d.metadata["Name"] or "").startswith("nvidia-") for d in metadata.distributions())
    if has_cuda_wheels:  # the libraries load, but there is no real GPU behind the fake nvidia-smi
        assert rows["gpu.tf_devices"]["status"] == "WARN"
    else:
        assert rows["gpu.cuda_libs"]["status"] == "WARN"
        assert "tensorflow[and-cuda]" in rows["gpu.cuda_libs"]["hint"]
    assert "gpu.smoke" not in rows


@pytest.mark.slow
def test_a_tensorflow_that_cannot_load_its_library_as_a_subprocess(tmp_path):
    shadow = tmp_path / "shadow" / "tensorflow"
    shadow.mkdir(parents=True)
    (shadow / "__init__.py").write_text(
        "raise ImportError('libcudart.so.12: cannot open shared object file: No such file or directory')\n"
    )
    done = _run_script(["--json"], _doctor_env(tmp_path, PYTHONPATH=str(shadow.parent)))
    assert done.returncode == 1, done.stdout + done.stderr
    row = _rows(done)["tf.import"]
    assert row["status"] == "FAIL"
    assert "libcudart.so.12 (a CUDA library)" in row["found"]
    assert "tensorflow[and-cuda]" in row["hint"] and "tensorflow-cpu" in row["hint"]
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
    assert rows["pkg.tensorflow"] == {
        "id": "pkg.tensorflow",
        "status": "FAIL",
        "found": "not installed",
        "required": "tensorflow>=2.16",
        "hint": 'pip install "tensorflow>=2.16"',
    }
    # No packaging here: one row says the version checks were skipped.
    packaging_row = rows["pkg.packaging"]
    assert (packaging_row["status"], packaging_row["hint"]) == ("FAIL", 'pip install "packaging>=23.0"')
    assert "version checks skipped" in packaging_row["found"]
    assert [row_id for row_id, row in rows.items() if "skipped" in row["found"]] == ["pkg.packaging"]
    assert rows["tf.import"]["status"] == "FAIL" and "not installed in this Python" in rows["tf.import"]["found"]
    assert rows["tf.import"]["hint"] == INSTALL_EVERYTHING
    assert rows["labkit"]["status"] == "FAIL"
    assert rows["pip_check"]["status"] == "WARN"  # --without-pip
    assert rows["runs_dir"]["status"] == "OK"
    assert "labkit is not installed here" in rows["runs_dir"]["found"]
    assert rows["jupyter.kernel"]["status"] == "WARN" and "jupyter_client" in rows["jupyter.kernel"]["found"]
    assert rows["tensorboard"]["status"] == "FAIL" and "not installed" in rows["tensorboard"]["found"]
    assert rows["data.digits"]["status"] == "FAIL"

    table = _run_script([], env, python=python)
    assert table.returncode == 1
    verdict = verdict_of(table.stdout)
    assert verdict.startswith("Verdict: NOT READY.")
    assert "Several packages are missing or too old" in verdict and "python3 scripts/lab.py setup" in verdict
    assert "Traceback" not in table.stdout + table.stderr


@pytest.mark.slow
def test_the_smoke_operation_code_runs_against_real_tensorflow():
    # No GPU here: TensorFlow's soft placement runs the "/GPU:0" matmul on the CPU, which is
    # exactly what the smoke layer must catch, and it exercises the real probe code.
    import tensorflow as tf

    from stack_doctor import gpu_probe

    smoke = gpu_probe.probe_smoke(tf, size=64, repeats=2)
    assert smoke["gpu_result_device"].endswith("device:CPU:0")
    assert smoke["max_relative_difference"] < 1e-5 and smoke["size"] == 64
    devices = {"devices": [{"name": "/physical_device:GPU:0", "device_name": "Fake"}]}
    facts = gpu.GpuFacts(
        CommandResult(0, "NVIDIA Fake H100, 550.54.15, 81559 MiB\n"),
        healthy_probe(gpus=devices, smoke=smoke),
        ["nvidia-cudnn-cu12 9.3.0.75"],
        None,
        {},
        "Linux",
        False,
        False,
    )
    rows = gpu.diagnose_gpu(facts)
    assert (rows[-1].id, rows[-1].status) == ("gpu.smoke", "FAIL")
    assert "ran on " + smoke["gpu_result_device"] in rows[-1].found
