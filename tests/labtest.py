"""Shared test helpers: run an activity for real, find its run folder, check its logs.

Every activity test goes through these, so that each lesson's tests read as a list of claims
about artifacts (event tags, exact step lists, run.json metrics) rather than plumbing.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
ACTIVITY_TIMEOUT_S = 300


def lab_env(runs_dir: Path, **extra: str) -> dict:
    """The environment every activity test runs in: its own runs root, and no network attempt
    (classrooms and CI are offline; the download source is the one link we cannot exercise)."""
    env = dict(os.environ)
    env.update({"LAB_RUNS_DIR": str(runs_dir), "LAB_OFFLINE": "1", "PYTHONUNBUFFERED": "1"})
    env.pop("LAB_QUICK", None)
    env.update(extra)
    return env


def mirror_holds_full_mnist() -> bool:
    """Whether $LAB_DATA_MIRROR names a folder with MNIST in it, as .ci/run sets it when the full
    MNIST mirror sits beside the clone. Then every default MNIST run must train on full MNIST:
    falling back to a substitute there is a fault, not a choice."""
    mirror = os.environ.get("LAB_DATA_MIRROR")
    return bool(mirror) and ((Path(mirror) / "mnist").is_dir() or (Path(mirror) / "mnist.npz").is_file())


def run_script(
    script: str | Path, *args: str, runs_dir: Path, timeout: float = ACTIVITY_TIMEOUT_S, **env: str
) -> subprocess.CompletedProcess:
    """Run a lab script with its real CLI, as a student would, and capture what it printed."""
    return subprocess.run(
        [sys.executable, str(REPO / script), *args],
        cwd=REPO,
        env=lab_env(runs_dir, **env),
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def run_in_process(script: str | Path, *args: str, runs_dir: Path, monkeypatch, **env: str) -> int:
    """Run an activity file top to bottom inside the test process, as `python script args` would,
    with the environment run_script gives a subprocess; returns the exit code. For what needs no
    fresh interpreter: it skips the 4-5 s TensorFlow import. A non-zero exit raises SystemExit, as
    from the script; an error that escapes the activity is first reported as the script's own
    excepthook would (one line and SystemExit(2) for a LabError)."""
    import runpy

    from labkit.lifecycle import report_uncaught

    for name, value in lab_env(runs_dir, **env).items():
        if os.environ.get(name) != value:
            monkeypatch.setenv(name, value)
    monkeypatch.delenv("LAB_QUICK", raising=False)
    path = REPO / script
    monkeypatch.setattr(sys, "argv", [str(path), *args])
    try:
        runpy.run_path(str(path), run_name="__main__")
    except SystemExit as exit_:
        if exit_.code not in (0, None):
            raise
    except BaseException as error:
        code = report_uncaught(error)
        if code is None:
            raise
        raise SystemExit(code) from None
    finally:
        import matplotlib.pyplot as plt

        plt.close("all")
    return 0


def assert_refused(script: str, *args: str, message: str, runs_dir: Path, capsys, monkeypatch) -> str:
    """Bad input to an activity: it exits 2 with one line that says `message`, and writes
    nothing under runs_dir. Returns the line."""
    import pytest

    with pytest.raises(SystemExit) as exit_info:
        run_in_process(script, *args, runs_dir=runs_dir, monkeypatch=monkeypatch)
    assert exit_info.value.code == 2
    error = capsys.readouterr().err
    assert len(error.strip().splitlines()) == 1 and message in error, error
    assert not any(Path(runs_dir).iterdir())
    return error


def run_dirs(root: Path) -> list[Path]:
    return sorted(p.parent for p in Path(root).rglob("run.json"))


def only_run(root: Path) -> Path:
    found = run_dirs(root)
    assert len(found) == 1, f"expected exactly one run under {root}, found {found}"
    return found[0]


def run_json(run_dir: Path) -> dict:
    return json.loads((run_dir / "run.json").read_text())


def files_under(root: Path) -> list[Path]:
    return sorted(p for p in Path(root).rglob("*") if p.is_file()) if Path(root).exists() else []


def assert_epoch_curves(run_dir: Path, epochs: int, tags=("epoch_loss", "epoch_accuracy")) -> None:
    """Keras wrote exactly one point per epoch, steps 0..epochs-1, in train/ and validation/."""
    from labkit.tblogs import read_scalars, steps_of

    scalars = read_scalars(run_dir)
    for split in ("train", "validation"):
        for tag in tags:
            assert steps_of(scalars, split, tag) == list(range(epochs)), (split, tag)


def assert_finished_above(run_dir: Path, floors: dict[str, float]) -> dict:
    """run.json says finished, and each `split.metric` beats its floor. Returns run.json."""
    record = run_json(run_dir)
    assert record["status"] == "finished", record["status"]
    for key, floor in floors.items():
        split, metric = key.split(".")
        value = record["metrics"][split][metric]
        assert value >= floor, f"{key} = {value:.4f}, below the floor {floor}"
    return record


def execute_notebook(
    path: str | Path,
    runs_dir: Path,
    timeout: float = ACTIVITY_TIMEOUT_S,
    check_tensorboard: bool | None = None,
    while_running=None,
    **extra_env: str,
):
    """Execute a committed notebook through a real Jupyter kernel in quick mode.

    The kernel is this interpreter, described by a kernel.json in a private JUPYTER_PATH, so the
    test cannot pick up some other Python's "python3" kernel from the user's machine. Its
    environment (quick mode, this test's runs root, offline, this interpreter's scripts folder
    first on PATH as in an activated venv, so that `%tensorboard` finds this environment's
    tensorboard) goes to the kernel alone: the test process's os.environ is never changed.

    A notebook with a `%tensorboard` cell (or any notebook, with check_tensorboard=True) must
    have started a TensorBoard on a folder under `runs_dir`: after the last cell, while the kernel
    still runs, `check_and_stop_notebook_tensorboard` checks that it answers and stops it. (It
    cannot be checked later: the kernel stops its child processes when it shuts down.)
    """
    import nbclient
    import nbformat
    from jupyter_client.kernelspec import KernelSpecManager
    from jupyter_client.manager import AsyncKernelManager

    path = REPO / path
    jupyter_path = runs_dir.parent / "jupyter"
    kernel_dir = jupyter_path / "kernels" / "lab-test"
    kernel_dir.mkdir(parents=True, exist_ok=True)
    (kernel_dir / "kernel.json").write_text(
        json.dumps(
            {
                "argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
                "display_name": "lab test kernel",
                "language": "python",
            }
        )
    )
    env = lab_env(runs_dir, LAB_QUICK="1", JUPYTER_PATH=str(jupyter_path), **extra_env)
    env["PATH"] = os.pathsep.join(p for p in (str(Path(sys.executable).parent), env.get("PATH")) if p)
    # MPLBACKEND must stay unset: ipykernel then selects the inline backend, whose PNG outputs
    # the tests look for.
    env.pop("MPLBACKEND", None)
    # The kernel is looked up here, in the test process, so the private kernels folder is handed
    # to the kernel manager directly rather than through this process's JUPYTER_PATH.
    kernel_manager = AsyncKernelManager(
        kernel_name="lab-test", kernel_spec_manager=KernelSpecManager(kernel_dirs=[str(jupyter_path / "kernels")])
    )
    notebook = nbformat.read(path, as_version=4)
    if check_tensorboard is None:
        check_tensorboard = any(
            line.lstrip().startswith("%tensorboard")
            for cell in notebook.cells
            if cell.cell_type == "code"
            for line in cell.source.splitlines()
        )
    client = nbclient.NotebookClient(
        notebook,
        km=kernel_manager,
        kernel_name="lab-test",
        timeout=timeout,
        resources={"metadata": {"path": str(path.parent)}},
    )
    # setup_kernel forwards env to the kernel manager's start_kernel(env=...) and, with
    # cleanup_kc, shuts the kernel down on leaving the block, as nbclient does for a kernel
    # manager of its own; execute() inside it runs the cells in that kernel.
    with client.setup_kernel(env=env, cleanup_kc=True):
        client.execute()
        if while_running is not None:  # e.g. open the notebook's TensorBoard frame in a browser
            while_running(notebook)
        if check_tensorboard:
            check_and_stop_notebook_tensorboard(runs_dir, notebook)
    return notebook


def check_and_stop_notebook_tensorboard(runs_dir: Path, notebook=None, timeout: float = 30):
    """Find the TensorBoard that a notebook's `%tensorboard` magic started on a folder under
    `runs_dir`, assert that it answers HTTP 200 at its root, then stop it. Returns its
    `tensorboard.manager.TensorBoardInfo`. Pass the executed notebook to see its TensorBoard
    cells' output when none is found.
    """
    import urllib.request

    found = _tensorboards_under(Path(runs_dir))
    if len(found) != 1 and notebook is not None:
        said = [
            output.get("text") or output.get("data", {}).get("text/plain")
            for cell in notebook.cells
            if "%tensorboard" in cell.source
            for output in cell.get("outputs", [])
        ]
    else:
        said = None
    assert len(found) == 1, (
        f"expected one TensorBoard on a folder under {runs_dir}, found {found}; its cell said {said}"
    )
    info = found[0]
    try:
        # A local request must not go through an HTTP proxy that the environment may name.
        opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
        with opener.open(f"http://localhost:{info.port}{info.path_prefix}/", timeout=timeout) as response:
            assert response.status == 200, f"TensorBoard on port {info.port} answered {response.status}"
    finally:
        _stop_tensorboard(info, timeout)
    return info


def _tensorboards_under(runs_dir: Path) -> list:
    """TensorBoards registered with tensorboard.manager whose logdir lies inside `runs_dir`."""
    from tensorboard import manager

    root = runs_dir.resolve()
    return [
        info
        for info in manager.get_all()
        if info.logdir and Path(info.logdir).expanduser().resolve().is_relative_to(root)
    ]


def _stop_tensorboard(info, timeout: float = 30) -> None:
    """Stop the TensorBoard described by `info` (SIGTERM, then SIGKILL) and drop its info file.

    It is the kernel's child, not this process's, so it cannot be waited for: poll until it has
    exited (or is a zombie left for its parent to reap).
    """
    import time

    import psutil
    from tensorboard import manager

    try:
        process = psutil.Process(info.pid)
        is_tensorboard = any("tensorboard" in part for part in process.cmdline())
    except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
        is_tensorboard = False

    def gone() -> bool:
        try:
            return process.status() == psutil.STATUS_ZOMBIE
        except psutil.NoSuchProcess:
            return True

    if is_tensorboard:  # never signal a process that merely reused the pid
        process.terminate()  # TensorBoard removes its own info file on SIGTERM
        deadline = time.monotonic() + timeout
        while not gone() and time.monotonic() < deadline:
            time.sleep(0.1)
        if not gone():
            process.kill()
    # After a SIGKILL, or a TensorBoard that died earlier, the info file stays behind and
    # manager.get_all() would go on listing it.
    Path(manager._get_info_dir(), f"pid-{info.pid}.info").unlink(missing_ok=True)


def notebook_text_outputs(notebook) -> str:
    """All stream and text/plain outputs of an executed notebook, joined (for assertions)."""
    chunks = []
    for cell in notebook.cells:
        for output in cell.get("outputs", []):
            if output.get("output_type") == "stream":
                chunks.append(output.get("text", ""))
            elif "data" in output and "text/plain" in output["data"]:
                chunks.append(output["data"]["text/plain"])
    return "\n".join(chunks)


def notebook_as_process(path: str | Path, notebook) -> subprocess.CompletedProcess:
    """An executed notebook seen as a finished script run: exit code 0 (a failing cell raises in
    execute_notebook instead), its stdout streams and text results as stdout, its stderr streams as
    stderr, so that tests written against a script's output read a notebook's the same way."""
    stdout, stderr = [], []
    for cell in notebook.cells:
        for output in cell.get("outputs", []):
            if output.get("output_type") == "stream":
                (stderr if output.get("name") == "stderr" else stdout).append(output.get("text", ""))
            elif "text/plain" in output.get("data", {}):
                stdout.append(output["data"]["text/plain"] + "\n")
    return subprocess.CompletedProcess([str(path)], 0, "".join(stdout), "".join(stderr))


def notebook_has_image(notebook) -> bool:
    return notebook_image_count(notebook) > 0


def notebook_image_count(notebook) -> int:
    """PNG images under the cells: in a notebook, each `plt.show()` figure that a script would save
    as `<run>/figures/figure_N.png` (labkit.figures)."""
    return sum("image/png" in output.get("data", {}) for cell in notebook.cells for output in cell.get("outputs", []))


def interrupt_run(
    script: str | Path,
    *args: str,
    runs_dir: Path,
    after_epochs: int = 2,
    timeout: float = 120,
    signal_number: int | None = None,
    ready=None,
) -> subprocess.CompletedProcess:
    """Start a real run, wait until its run.json counts `after_epochs` epochs (or until
    `ready(run_dir)` holds, for a test that needs more than run.json, such as the backup), then send
    it `signal_number` (default SIGINT, which is what Ctrl-C sends)."""
    import signal
    import time

    command = [sys.executable, str(REPO / script), *args]
    process = subprocess.Popen(
        command, cwd=REPO, env=lab_env(runs_dir), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    try:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            found = run_dirs(runs_dir)
            if found and run_json(found[0]).get("epochs_completed", 0) >= after_epochs:
                if ready is None or ready(found[0]):
                    break
            assert process.poll() is None, process.communicate()
            time.sleep(0.2)
        else:
            raise AssertionError(f"the run never completed {after_epochs} epochs")
        process.send_signal(signal.SIGINT if signal_number is None else signal_number)
        # Stopping takes a second on a quiet machine; 13 s was measured with the cores oversubscribed
        # (NumPy's BLAS threads spin against other jobs), and a loaded CI worker once passed 60 s.
        stdout, stderr = process.communicate(timeout=180)
    finally:
        if process.poll() is None:
            process.kill()
    return subprocess.CompletedProcess(command, process.returncode, stdout, stderr)


def assert_interrupted_but_readable(
    result: subprocess.CompletedProcess, run_dir: Path, after_epochs: int, tag: str = "epoch_loss", exit_code: int = 130
) -> dict:
    """Exit 130 (143 for SIGTERM), no traceback, run.json says interrupted, and the curves so
    far read back whole."""
    from labkit.tblogs import read_scalars, steps_of

    assert result.returncode == exit_code, result.stderr
    assert "Traceback" not in result.stderr and "Interrupted after" in result.stdout
    record = run_json(run_dir)
    assert record["status"] == "interrupted"
    completed = record["epochs_completed"]
    assert completed >= after_epochs
    scalars = read_scalars(run_dir)
    for split in ("train", "validation"):
        steps = steps_of(scalars, split, tag)
        # The signal may land between an epoch's TensorBoard points and its run.json update.
        assert steps == list(range(len(steps))) and len(steps) in (completed, completed + 1), steps
    return record


# ---------------------------------------------------------------------------------------------
# A real TensorBoard server, for asserting on what its dashboards serve


class TensorBoardServer:
    """This venv's `tensorboard` on `logdir`, localhost only, on a port the OS picks.

        with TensorBoardServer(runs_dir) as board:
            board.wait_for_runs(["lr0.001/train"])
            tags = board.get_json("/data/plugin/scalars/tags")

    Every wait is bounded, and leaving the block always stops the server (SIGTERM, then SIGKILL)
    together with the data server it may have started.
    """

    def __init__(self, logdir: Path, start_timeout: float = 60, extra_args: tuple[str, ...] = ()):
        self.logdir = Path(logdir).resolve()
        self.start_timeout = start_timeout
        self.extra_args = tuple(extra_args)
        self.process = None
        self.port = None
        self._log = None

    def __enter__(self) -> TensorBoardServer:
        import tempfile

        binary = Path(sys.executable).parent / ("tensorboard.exe" if os.name == "nt" else "tensorboard")
        self._log = tempfile.TemporaryFile(mode="w+")
        # --port 0: the OS picks a free port and TensorBoard records it in its info file, so two
        # test sessions can never race for the same port.
        command = [str(binary), "--logdir", str(self.logdir), "--host", "localhost", "--port", "0", *self.extra_args]
        self.process = subprocess.Popen(command, stdout=self._log, stderr=subprocess.STDOUT, env=dict(os.environ))
        try:
            self.port = self._wait_for_port()
            self.wait_until(lambda: self.get_json("/data/environment") is not None, "it answers HTTP")
        except BaseException:
            self.__exit__(None, None, None)
            raise
        return self

    def _wait_for_port(self) -> int:
        import time

        from tensorboard import manager

        deadline = time.monotonic() + self.start_timeout
        while time.monotonic() < deadline:
            assert self.process.poll() is None, f"tensorboard exited with {self.process.returncode}: {self.output()}"
            for info in manager.get_all():
                if info.pid == self.process.pid:
                    return info.port
            time.sleep(0.2)
        raise AssertionError(f"tensorboard announced no port within {self.start_timeout} s: {self.output()}")

    def output(self) -> str:
        if self._log is None:
            return ""
        self._log.seek(0)
        return self._log.read()[-3000:]

    def url(self, path: str) -> str:
        return f"http://localhost:{self.port}{path}"

    def get(self, path: str, timeout: float = 30) -> bytes:
        import urllib.request

        opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # never through a proxy
        with opener.open(self.url(path), timeout=timeout) as response:
            return response.read()

    def get_json(self, path: str, **query: str):
        import urllib.parse

        suffix = ("?" + urllib.parse.urlencode(query)) if query else ""
        return json.loads(self.get(path + suffix))

    def wait_until(self, condition, what: str, timeout: float = 60):
        """Poll `condition()` until it returns something truthy (HTTP errors count as not yet)."""
        import time
        import urllib.error

        deadline = time.monotonic() + timeout
        last_error = None
        while time.monotonic() < deadline:
            try:
                value = condition()
                if value:
                    return value
            except (urllib.error.URLError, ConnectionError, OSError, ValueError) as error:
                last_error = error
            assert self.process.poll() is None, f"tensorboard exited with {self.process.returncode}: {self.output()}"
            time.sleep(0.3)
        raise AssertionError(f"TensorBoard: {what} not within {timeout} s (last error: {last_error}); {self.output()}")

    def wait_for_runs(self, runs, timeout: float = 60) -> list[str]:
        """Wait until every run in `runs` is listed at /data/runs; returns the listing."""
        wanted = set(runs)
        return self.wait_until(
            lambda: (listed := self.get_json("/data/runs")) and wanted <= set(listed) and listed,
            f"runs {sorted(wanted)} listed",
            timeout,
        )

    def active_plugins(self) -> set[str]:
        return {name for name, entry in self.get_json("/data/plugins_listing").items() if entry.get("enabled")}

    def wait_for_plugins(self, plugins, timeout: float = 60) -> set[str]:
        """Some plugins (the projector) decide in a background thread: ask until they say yes."""
        wanted = set(plugins)
        return self.wait_until(
            lambda: wanted <= (active := self.active_plugins()) and active, f"plugins {sorted(wanted)} active", timeout
        )

    def __exit__(self, exc_type, exc, tb) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()  # TensorBoard stops its data server and drops its info file
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=20)
        if self.process is not None:
            from tensorboard import manager

            Path(manager._get_info_dir(), f"pid-{self.process.pid}.info").unlink(missing_ok=True)
        if self._log is not None:
            self._log.close()
            self._log = None


# ---------------------------------------------------------------------------------------------
# The functions an activity page defines, for tests of the code the student reads


def page_definitions(script: str | Path):
    """The functions, classes and UPPER_CASE constants that an activity file defines at its top
    level, with the imports they need, executed without the rest of the page (no flags parsed, no
    data loaded, no run started). Tests call them to check the very code the page shows:

        page = page_definitions("lesson_2/numpy_from_scratch/train_mnist.py")
        page.mlp_gradients(params, x, labels)

    The functions share one namespace, so `monkeypatch.setitem(page.SOME_TABLE, ...)` reaches them."""
    from labkit.pages import definitions

    return definitions(script, constants=True)


def bitcoin_weeks_by_pandas(start: str | None = "2016-01-01"):
    """The shipped prices' complete weeks from `start` (all of them for None), by pandas alone and
    not by labkit.bitcoin, so that the Bitcoin tests check the toolkit and the pages independently:
    (labels, dates as "YYYY-MM-DD" strings (weeks, 7), closes (weeks, 7))."""
    import pandas as pd

    frame = pd.read_csv(REPO / "data" / "bitcoin" / "bitcoin_historical_prices.csv", parse_dates=["date"])
    if start:
        frame = frame[frame.date >= start]
    days = frame.groupby("iso_week").size()
    frame = frame[frame.iso_week.isin(days[days == 7].index)]
    dates = frame.date.dt.strftime("%Y-%m-%d").to_numpy().reshape(-1, 7)
    return list(frame.iso_week.drop_duplicates()), dates, frame.close.to_numpy(dtype="float64").reshape(-1, 7)
