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


def run_script(script: str | Path, *args: str, runs_dir: Path, timeout: float = ACTIVITY_TIMEOUT_S,
               **env: str) -> subprocess.CompletedProcess:
    """Run a lab script with its real CLI, as a student would, and capture what it printed."""
    return subprocess.run([sys.executable, str(REPO / script), *args], cwd=REPO,
                          env=lab_env(runs_dir, **env), capture_output=True, text=True,
                          timeout=timeout)


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


def execute_notebook(path: str | Path, runs_dir: Path, timeout: float = ACTIVITY_TIMEOUT_S):
    """Execute a committed notebook through a real Jupyter kernel in quick mode.

    The kernel is this interpreter (a kernelspec written to a private JUPYTER_PATH), so the test
    cannot pick up some other Python's "python3" kernel from the user's machine.
    """
    import nbclient
    import nbformat

    path = REPO / path
    kernels = runs_dir.parent / "jupyter" / "kernels" / "lab-test"
    kernels.mkdir(parents=True, exist_ok=True)
    (kernels / "kernel.json").write_text(json.dumps({
        "argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
        "display_name": "lab test kernel", "language": "python"}))
    notebook = nbformat.read(path, as_version=4)
    saved = dict(os.environ)
    # MPLBACKEND must stay unset: ipykernel then selects the inline backend, whose PNG outputs
    # the tests look for.
    os.environ.update(lab_env(runs_dir, LAB_QUICK="1", JUPYTER_PATH=str(kernels.parent.parent)))
    os.environ.pop("MPLBACKEND", None)
    try:
        client = nbclient.NotebookClient(notebook, timeout=timeout, kernel_name="lab-test",
                                         resources={"metadata": {"path": str(path.parent)}})
        client.execute()
    finally:
        os.environ.clear()
        os.environ.update(saved)
    return notebook


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


def notebook_has_image(notebook) -> bool:
    return any("image/png" in output.get("data", {})
               for cell in notebook.cells for output in cell.get("outputs", []))


def interrupt_run(script: str | Path, *args: str, runs_dir: Path, after_epochs: int = 2,
                  timeout: float = 120) -> subprocess.CompletedProcess:
    """Start a real run, wait until its run.json counts `after_epochs` epochs, press Ctrl-C."""
    import signal
    import time

    command = [sys.executable, str(REPO / script), *args]
    process = subprocess.Popen(command, cwd=REPO, env=lab_env(runs_dir), stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            found = run_dirs(runs_dir)
            if found and run_json(found[0]).get("epochs_completed", 0) >= after_epochs:
                break
            assert process.poll() is None, process.communicate()
            time.sleep(0.2)
        else:
            raise AssertionError(f"the run never completed {after_epochs} epochs")
        process.send_signal(signal.SIGINT)
        stdout, stderr = process.communicate(timeout=60)
    finally:
        if process.poll() is None:
            process.kill()
    return subprocess.CompletedProcess(command, process.returncode, stdout, stderr)


def assert_interrupted_but_readable(result: subprocess.CompletedProcess, run_dir: Path,
                                    after_epochs: int, tag: str = "epoch_loss") -> dict:
    """Exit 130, no traceback, run.json says interrupted, and the curves so far read back whole."""
    from labkit.tblogs import read_scalars, steps_of

    assert result.returncode == 130, result.stderr
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
