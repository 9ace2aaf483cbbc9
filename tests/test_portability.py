"""What must hold on Windows and macOS too: liveness without signals, Windows paths, certificate failures.

- Liveness: a run's process (labkit.runs), a registered TensorBoard (`lab.py tensorboard` and the
  stack doctor) is alive while a real child process runs and gone once it has exited and been
  reaped, and no lab code sends os.kill to find out: on Windows signal 0 is CTRL_C_EVENT, which
  would interrupt the process it asks about.
- The branches taken where `os.name == "nt"`, seen through the module's own view of `os` (this
  Linux machine cannot take them otherwise; pathlib and the test keep the real `os`).
- A download through a real HTTPS server whose self-signed certificate this Python cannot verify:
  the real ssl.SSLCertVerificationError becomes one line with the fix for this OS.
"""

from __future__ import annotations

import http.server
import importlib.util
import os
import shutil
import socket
import ssl
import subprocess
import sys
import sysconfig
import threading
import types
from pathlib import Path

import psutil
import pytest

import labkit
from labkit import data, data_files, runs
from labkit.certificates import certificate_hint
from labkit.instructor import board
from labtest import REPO
from stack_doctor import tensorboard_jupyter
from tbtest import private_tensorboard_info, register_as_tensorboard


def windows_view() -> types.ModuleType:
    """`os` as a module sees it on Windows: os.name is "nt"; everything else is the real os."""

    class WindowsOs(types.ModuleType):
        def __getattr__(self, attribute):
            return getattr(os, attribute)

    view = WindowsOs("os")
    view.name = "nt"
    return view


@pytest.fixture
def no_signals(monkeypatch):
    """os.kill raises when anything but psutil calls it. psutil's own POSIX pid_exists sends signal 0,
    which is harmless there (on Windows psutil opens the process instead): the lab's code must not."""
    real_kill = os.kill

    def kill(pid, signal_number):
        caller = sys._getframe(1).f_globals.get("__name__", "")
        if caller.split(".")[0] != "psutil":
            raise AssertionError(f"{caller} called os.kill({pid}, {signal_number}) to test liveness")
        return real_kill(pid, signal_number)

    monkeypatch.setattr(os, "kill", kill)


WAIT_ON_STDIN = "import sys; sys.stdin.read()"


def start_child(code: str = WAIT_ON_STDIN, *args: str, **popen) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-c", code, *args], stdin=subprocess.PIPE, text=True, **popen)


def end(process: subprocess.Popen) -> int:
    """Let the child finish, and reap it: its pid no longer names a process, not even a zombie."""
    process.stdin.close()
    process.wait(timeout=60)
    return process.pid


# ---------------------------------------------------------------------------------------------
# Liveness, in the three places that check it


def test_a_run_is_running_while_its_process_lives_and_crashed_once_that_process_is_reaped(tmp_path, no_signals):
    child = start_child()
    try:
        record = runs.RunRecord(tmp_path, lesson="lesson_1", activity="a", hparams={}, dataset={}, quick=True)
        identity = {"pid": child.pid, "host": socket.gethostname(), "started": psutil.Process(child.pid).create_time()}
        record.data["process"] = identity
        record.save()
        assert runs.read_run(tmp_path)["status"] == "running"
    finally:
        end(child)
    assert runs.read_run(tmp_path)["status"] == runs.CRASHED


@pytest.fixture
def registered_tensorboard(tmp_path, monkeypatch):
    """A real child registered as a TensorBoard in a private info folder (TMPDIR, as TensorBoard reads it)."""
    private_tmp = private_tensorboard_info(tmp_path, monkeypatch)
    child = register_as_tensorboard(6006, "runs/lesson_1", tmp_path, stay=True)
    try:
        yield child
    finally:
        if child.poll() is None:
            end(child)
        child.stdout.close()
    assert (private_tmp / ".tensorboard-info" / f"pid-{child.pid}.info").exists(), "left behind, as after a kill"


def test_lab_tensorboard_lists_a_live_tensorboard_with_its_absolute_logdir_and_drops_it_once_gone(
    registered_tensorboard, tmp_path, no_signals
):
    (instance,) = board.running_instances()
    assert instance.pid == registered_tensorboard.pid
    assert instance.logdir == str((tmp_path / "runs" / "lesson_1").resolve())
    end(registered_tensorboard)
    assert board.running_instances() == []


def test_the_doctor_lists_a_live_tensorboard_and_drops_it_once_gone(registered_tensorboard, no_signals):
    instances, problem = tensorboard_jupyter.running_tensorboards()
    assert problem is None
    assert [instance["pid"] for instance in instances] == [registered_tensorboard.pid]
    end(registered_tensorboard)
    assert tensorboard_jupyter.running_tensorboards() == ([], None)


def test_the_doctor_without_psutil_on_posix_still_tells_a_live_process_from_a_reaped_one(monkeypatch):
    monkeypatch.setitem(sys.modules, "psutil", None)  # an environment the lab is not installed in yet
    child = start_child()
    try:
        assert tensorboard_jupyter.pid_alive(child.pid) is True
    finally:
        gone = end(child)
    assert tensorboard_jupyter.pid_alive(gone) is False


def test_the_doctor_without_psutil_on_windows_sends_no_signal(monkeypatch, no_signals):
    monkeypatch.setitem(sys.modules, "psutil", None)
    monkeypatch.setattr(tensorboard_jupyter, "os", windows_view())
    gone = end(start_child())
    # No way to ask without a signal, so even a finished process counts as alive there.
    assert tensorboard_jupyter.pid_alive(gone) is True
    assert tensorboard_jupyter.pid_alive(os.getpid()) is True


# ---------------------------------------------------------------------------------------------
# labkit's TensorBoard for notebooks, and names that stay one folder


def test_importing_labkit_points_the_notebook_magic_at_this_environments_tensorboard():
    env = {key: value for key, value in os.environ.items() if key != "TENSORBOARD_BINARY"}
    shown = subprocess.run(
        [sys.executable, "-c", "import os, labkit; print(os.environ.get('TENSORBOARD_BINARY'))"],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert shown.returncode == 0, shown.stderr
    assert shown.stdout.strip() == str(Path(sysconfig.get_path("scripts"), "tensorboard"))


@pytest.mark.parametrize("seen_as", ["posix", "nt"])
def test_the_tensorboard_command_is_the_exe_on_windows_and_the_script_elsewhere(tmp_path, monkeypatch, seen_as):
    scripts = tmp_path / "Scripts"
    scripts.mkdir()
    if seen_as == "nt":
        monkeypatch.setattr(labkit, "os", windows_view())
    ours, theirs = ("tensorboard.exe", "tensorboard") if seen_as == "nt" else ("tensorboard", "tensorboard.exe")
    (scripts / theirs).write_bytes(b"")
    assert labkit.own_tensorboard(scripts) is None
    (scripts / ours).write_bytes(b"")
    assert labkit.own_tensorboard(scripts) == scripts / ours


def test_a_hyperparameter_with_either_separator_stays_in_one_run_folder_name():
    name = runs.run_name({"optimizer": "keras/adam", "dataset": "data\\mnist"})
    assert name.startswith("optkeras-adam-data-mnist-") and "/" not in name and "\\" not in name


# ---------------------------------------------------------------------------------------------
# A server certificate this Python cannot verify


class SelfSignedServer:
    """A real HTTPS server on loopback with a throwaway self-signed certificate (made by the
    openssl command). It answers GET with 501; `handshakes` counts the connections it accepted."""

    def __init__(self, folder: Path):
        self.certificate, key = folder / "cert.pem", folder / "key.pem"
        subprocess.run(
            ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]
            + ["-keyout", str(key), "-out", str(self.certificate), "-days", "1", "-subj", "/CN=127.0.0.1"]
            + ["-addext", "subjectAltName=IP:127.0.0.1"],
            check=True,
            capture_output=True,
            timeout=60,
        )
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(self.certificate, key)
        self.handshakes = 0
        counter = self

        class Server(http.server.ThreadingHTTPServer):
            def get_request(self):
                counter.handshakes += 1
                return super().get_request()  # the TLS handshake happens in accept()

        class Quiet(http.server.BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

        self.server = Server(("127.0.0.1", 0), Quiet)
        self.server.socket = context.wrap_socket(self.server.socket, server_side=True)
        self.url = f"https://127.0.0.1:{self.server.server_address[1]}/"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def untrusted_server(tmp_path, monkeypatch):
    """The Keras dataset server replaced by a self-signed one (DOWNLOAD_BASE, the seam the data
    tests use), with empty caches, no mirror and the network allowed."""
    if shutil.which("openssl") is None:
        pytest.skip("needs the openssl command to make a certificate")
    server = SelfSignedServer(tmp_path)
    monkeypatch.setattr(data_files, "DOWNLOAD_BASE", server.url)
    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "keras_home"))
    monkeypatch.setenv("SCIKIT_LEARN_DATA", str(tmp_path / "sklearn_home"))
    monkeypatch.setenv(data_files.SYSTEM_DIR_ENV, str(tmp_path / "no_system_data"))
    monkeypatch.delenv(data_files.MIRROR_ENV, raising=False)
    monkeypatch.delenv(data_files.OFFLINE_ENV, raising=False)
    monkeypatch.delenv("SSL_CERT_FILE", raising=False)
    yield server
    server.close()


def fetch_data_main():
    spec = importlib.util.spec_from_file_location("fetch_data", REPO / "scripts" / "fetch_data.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.main


def certificate_line(dataset: str) -> str:
    return (
        f"MISSING {dataset}: dataset '{dataset}' could not be downloaded: this Python could not verify the "
        f"certificate of 127.0.0.1 (self-signed certificate); {certificate_hint()}, then try again"
    )


def test_fetch_data_reports_an_unverified_certificate_in_one_line_with_the_fix(untrusted_server, tmp_path, capsys):
    main = fetch_data_main()
    assert main(["--dataset", "mnist", "--dataset", "fashion_mnist", "--dataset", "california_housing"]) == 1
    assert capsys.readouterr().out.splitlines() == [
        certificate_line("mnist"),
        "MISSING fashion_mnist: no download tried after the certificate failure above",
        "MISSING california_housing: no download tried after the certificate failure above",
        f"Keras cache: {tmp_path / 'keras_home' / 'datasets'}",
        f"scikit-learn data home: {tmp_path / 'sklearn_home'}",
    ]
    assert untrusted_server.handshakes == 1, "one refused certificate is enough: no download after it"
    assert not (tmp_path / "keras_home").exists() and not (tmp_path / "sklearn_home").exists(), "nothing partial"


def test_a_trusted_certificate_gets_past_the_check_and_other_failures_read_as_before(
    untrusted_server, tmp_path, monkeypatch
):
    """The same server, its certificate trusted: the failure is the server's 501, reported as any
    failed download always was, which shows the check above met a certificate and nothing else."""
    monkeypatch.setenv("SSL_CERT_FILE", str(untrusted_server.certificate))
    with pytest.raises(data_files.DataUnavailable) as refused:
        data_files.find_raw("mnist")
    assert not isinstance(refused.value, data_files.CertificateUnverified)
    assert refused.value.notes == ["download failed: HTTPError: HTTP Error 501: Unsupported method ('GET')"]
    assert not (tmp_path / "keras_home").exists()


def test_a_default_run_falls_back_to_its_substitute_and_says_why_with_the_fix(untrusted_server):
    said = []
    dataset = data.load_dataset(announce=said.append)
    assert dataset.name == "mnist_5k" and dataset.substitute_for == "mnist"
    (line,) = said
    assert line.startswith(
        "data: full MNIST is not on this machine (download failed: this Python could not verify the certificate of "
        f"127.0.0.1 (self-signed certificate); {certificate_hint()}, then try again), so this run uses a labelled "
        "substitute: 5,000 real MNIST digits"
    ), line


def test_the_hint_names_the_installer_script_of_the_running_python_on_macos():
    version = f"{sys.version_info.major}.{sys.version_info.minor}"
    assert certificate_hint("darwin") == (
        f'run "/Applications/Python {version}/Install Certificates.command", which python.org\'s installer puts there'
    )
    assert "ca-certificates" in certificate_hint("linux") and "pip install --upgrade certifi" in certificate_hint(
        "win32"
    )
