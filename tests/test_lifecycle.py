"""A run's status tells the truth however its program stops: a notebook cell that raises or is
interrupted, a script that crashes or ends without finishing its run."""

import subprocess
import sys
import threading
import time

import nbformat
import pytest

from labtest import execute_notebook, lab_env, run_dirs, run_json

pytestmark = pytest.mark.slow

FLAGS_CELL = (
    "from labkit import cli\n"
    'parser = cli.build_parser("a probe", epochs=1, learning_rate=0.1, batch_size=10)\n'
    'config = cli.parse(parser, ["--dataset", "digits", "--quick"])'
)
RUN_CELL = (
    "from labkit.training import load_data, start_run\n"
    "data = load_data(config)\n"
    "run = start_run(config, data)\n"
    "print('run folder', run.dir)"
)


def probe_notebook(folder, *cells):
    """A notebook in `<folder>/lesson_9/probe/`, so that its runs land in `<runs>/lesson_9/probe`."""
    path = folder / "lesson_9" / "probe" / "probe.ipynb"
    path.parent.mkdir(parents=True)
    notebook = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(source) for source in cells])
    nbformat.write(notebook, path)
    return path


def test_a_notebook_cell_that_raises_marks_the_run_failed(runs_dir, tmp_path):
    from nbclient.exceptions import CellExecutionError

    notebook = probe_notebook(tmp_path, FLAGS_CELL, RUN_CELL, 'raise RuntimeError("a bug in a cell")')
    with pytest.raises(CellExecutionError, match="a bug in a cell"):
        execute_notebook(notebook, runs_dir, check_tensorboard=False)
    (run,) = run_dirs(runs_dir)
    assert run.parent == runs_dir / "lesson_9" / "probe"
    record = run_json(run)
    assert record["status"] == "failed", record["status"]
    assert record["extra"]["error"] == "RuntimeError: a bug in a cell"


def test_an_interrupted_notebook_cell_marks_the_run_interrupted(runs_dir, tmp_path):
    """The kernel is interrupted (SIGINT, as Jupyter's stop button sends) while a cell runs."""
    import psutil
    from nbclient.exceptions import CellExecutionError

    notebook = probe_notebook(tmp_path, FLAGS_CELL, RUN_CELL, "import time\ntime.sleep(120)")

    def interrupt_when_the_run_exists():
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and not run_dirs(runs_dir):
            time.sleep(0.2)
        time.sleep(2)  # the sleeping cell has started by now
        for child in psutil.Process().children(recursive=True):
            if any("ipykernel_launcher" in part for part in child.cmdline()):
                child.send_signal(2)

    interrupter = threading.Thread(target=interrupt_when_the_run_exists, daemon=True)
    interrupter.start()
    with pytest.raises(CellExecutionError, match="KeyboardInterrupt"):
        execute_notebook(notebook, runs_dir, check_tensorboard=False)
    interrupter.join(timeout=10)
    (run,) = run_dirs(runs_dir)
    assert run_json(run)["status"] == "interrupted"


def run_probe_script(runs_dir, ending: str) -> subprocess.CompletedProcess:
    code = f"{FLAGS_CELL}\n{RUN_CELL}\n{ending}\n"
    folder = runs_dir.parent / "lesson_9" / "probe"
    folder.mkdir(parents=True, exist_ok=True)
    script = folder / "probe.py"
    script.write_text(code)
    return subprocess.run(
        [sys.executable, str(script)], env=lab_env(runs_dir), capture_output=True, text=True, timeout=300
    )


def test_a_script_that_crashes_shows_its_traceback_and_marks_the_run_failed(runs_dir):
    result = run_probe_script(runs_dir, 'raise ValueError("wrong shape")')
    assert result.returncode == 1
    assert "Traceback" in result.stderr and "ValueError: wrong shape" in result.stderr
    (run,) = run_dirs(runs_dir)
    record = run_json(run)
    assert record["status"] == "failed" and record["extra"]["error"] == "ValueError: wrong shape"


def test_a_script_that_ends_without_finishing_its_run_marks_it_failed(runs_dir):
    result = run_probe_script(runs_dir, "print('done, but run.finish() was never called')")
    assert result.returncode == 0, result.stderr
    (run,) = run_dirs(runs_dir)
    record = run_json(run)
    assert record["status"] == "failed"
    assert record["extra"]["error"] == "the program ended before the run finished"


def test_a_finished_run_refuses_more_training(runs_dir):
    result = run_probe_script(runs_dir, "run.finish()\nrun.callbacks()")
    assert result.returncode == 2, result.stderr
    (line,) = result.stderr.strip().splitlines()
    assert line.startswith("probe.py: error: this run has ended (finished)")
    (run,) = run_dirs(runs_dir)
    assert run_json(run)["status"] == "finished"


# A layer whose weights take a Ctrl-C to save: the SIGINT is real and lands inside Keras's own
# saving code, the moment `partial-model.keras` is being written, every time.
INTERRUPTED_SAVE = """
import os, signal, time
import keras

@keras.saving.register_keras_serializable(package="probe")
class InterruptedWhileSaved(keras.layers.Dense):
    def save_own_variables(self, store):
        super().save_own_variables(store)
        os.kill(os.getpid(), signal.SIGINT)
        time.sleep(30)

model = keras.Sequential([keras.Input((4,)), InterruptedWhileSaved(2)])
run.finish(model)
"""


def assert_interrupted_during_the_save(run):
    record = run_json(run)
    assert record["status"] == "interrupted", record["status"]
    assert record["finished_at"]
    leftovers = sorted(
        path.name for path in run.iterdir() if path.name.startswith("partial") or path.suffix == ".keras"
    )
    assert leftovers == [], leftovers


def test_ctrl_c_during_the_final_save_says_interrupted_and_leaves_no_partial_model(runs_dir):
    result = run_probe_script(runs_dir, INTERRUPTED_SAVE)
    assert result.returncode == 130, result.stderr
    assert "Traceback" not in result.stderr, result.stderr
    assert "Interrupted" in result.stdout, result.stdout
    (run,) = run_dirs(runs_dir)
    assert_interrupted_during_the_save(run)


def test_an_interrupted_notebook_save_says_interrupted_and_leaves_no_partial_model(runs_dir, tmp_path):
    from nbclient.exceptions import CellExecutionError

    notebook = probe_notebook(tmp_path, FLAGS_CELL, RUN_CELL, INTERRUPTED_SAVE)
    with pytest.raises(CellExecutionError, match="KeyboardInterrupt"):
        execute_notebook(notebook, runs_dir, check_tensorboard=False)
    (run,) = run_dirs(runs_dir)
    assert_interrupted_during_the_save(run)


def test_ctrl_c_while_a_finished_run_closes_its_logs_still_records_finished(runs_dir):
    """The SIGINT lands while `finish()` closes the event writers; the status still reaches disk."""
    ending = """
import os, signal, time

class InterruptedWhileClosed:
    def flush(self):
        pass

    def close(self):
        os.kill(os.getpid(), signal.SIGINT)
        time.sleep(1)

run.life.writers.append(InterruptedWhileClosed())
run.finish()
"""
    result = run_probe_script(runs_dir, ending)
    assert result.returncode == 130, result.stderr
    (run,) = run_dirs(runs_dir)
    assert run_json(run)["status"] == "finished"
