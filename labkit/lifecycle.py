"""A run's life, whatever it trains: its folder, run.json, its status, signals and event writers.

A run starts `running` and must end `finished`, `failed` or `interrupted`, whichever way its
program stops. Activity files are plain top-level code (a script, or a notebook's cells), so
there is no `with` block to end a run in; instead:
- the activity calls `finish()` when it is done;
- in a script, an uncaught exception reaches `sys.excepthook`, which ends every open run first:
  Ctrl-C and `kill` (SIGTERM, turned into `Terminated`) say `interrupted` and exit 130 / 143; a
  LabError or a full disk says one line and exits 2 / 1; anything else says `failed` and shows
  its traceback. A script that exits with a run still open marks it `failed`;
- in a notebook, a cell that raises or is interrupted ends every open run the same way, after the
  cell (IPython's `post_run_cell` event), so no run says `running` for as long as the kernel lives.

Keras-free: the Keras parts (callbacks, resume, distribution) live in labkit.training.
"""

from __future__ import annotations

import atexit
import contextlib
import errno
import os
import signal
import sys
import threading
from pathlib import Path

from labkit import LabError, in_notebook
from labkit.runs import RunRecord


class RunWriteError(LabError):
    """The run could not write its logs (full disk, read-only folder): not the student's flags."""

    exit_code = 1


class Terminated(BaseException):
    """SIGTERM (a `kill`, a closing terminal) turned into an exception, like Ctrl-C is."""


INTERRUPTIONS = (KeyboardInterrupt, Terminated)

# OS errors that mean "the run's files cannot be written", whatever raised them.
WRITE_ERRNOS = {errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EACCES, errno.EPERM, errno.EFBIG, errno.EIO}
WRITE_MESSAGES = (
    "No space left on device",
    "Disk quota exceeded",
    "Read-only file system",
    "Permission denied",
    "File too large",
)


def write_failure(error: BaseException, run_dir: Path | None) -> str | None:
    """One line naming the path and the cause if `error` is a failure to write, else None.

    Python raises OSError; TensorFlow's event writers raise its own error types whose message
    carries the operating system's words."""
    if isinstance(error, RunWriteError):
        return str(error)
    if isinstance(error, OSError) and error.errno in WRITE_ERRNOS:
        path = error.filename or run_dir
        return f"cannot write {path}: {error.strerror or error}"
    message = str(error)
    for cause in WRITE_MESSAGES:
        if cause in message:
            return f"cannot write the run's logs in {run_dir}: {cause}"
    return None


def interrupted_exit_code(error: BaseException) -> int:
    """The shell's convention: 128 + the signal's number (130 after Ctrl-C, 143 after SIGTERM)."""
    return 143 if isinstance(error, Terminated) else 130


# Set by `lab.py start`, `run` and `notebook` (its value is how to call lab.py): their runs' own
# `tensorboard` is not on the student's PATH, so a run names the lab's command instead.
LAUNCHER_ENV = "LAB_COMMAND"


def tensorboard_command(logdir: Path) -> str:
    launcher = os.environ.get(LAUNCHER_ENV)
    return f'{launcher} tensorboard "{logdir}"' if launcher else f'tensorboard --logdir "{logdir}"'


class RunLifecycle:
    """One run folder with its run.json, from `running` to the status that says how it ended."""

    def __init__(self, run_dir: Path, record: RunRecord, *, quiet: bool = False):
        self.dir = Path(run_dir)
        self.record = record
        self.quiet = quiet
        self.status: str | None = None  # finished, failed or interrupted once ended
        self.writers: list = []  # event writers closed when the run ends, however it ends
        self.on_end: list = []  # callables run once the run has ended (leave a tf.distribute scope)
        _open_runs.append(self)
        install_error_hooks()
        _catch_sigterm()

    @property
    def ended(self) -> bool:
        return self.status is not None

    def say(self, message: str) -> None:
        if not self.quiet:
            print(message, flush=True)

    def open_writer(self, split: str):
        """A summary writer for `<run>/<split>`, closed with the run (on Ctrl-C too)."""
        import tensorflow as tf

        writer = tf.summary.create_file_writer(str(self.dir / split))
        self.writers.append(writer)
        return writer

    def flush_writers(self) -> None:
        for writer in self.writers:
            writer.flush()

    def close_writers(self) -> None:
        for writer in self.writers:
            try:
                writer.close()
            except Exception:  # a writer that cannot flush must not hide how the run ended
                pass

    def end(self, status: str, error: str | None = None) -> None:
        """Close the event writers, then record the status; a second call changes nothing.

        Ctrl-C and SIGTERM wait until the status is on disk: an interruption that cut this short
        would leave a run that says `running` (in a notebook, for as long as the kernel lives)."""
        if self.ended:
            return
        with _interruptions_held():
            self.status = status
            try:
                self.close_writers()
            finally:
                try:
                    self.record.finish(status, error)
                except OSError:
                    pass  # nowhere left to write; read_run will report the dead process as crashed
                if self in _open_runs:
                    _open_runs.remove(self)
            for hook in self.on_end:
                hook()
            if not _open_runs:
                _restore_sigterm()

    def end_after(self, error: BaseException) -> str | None:
        """End the run after `error` escaped the activity's code. Returns the one line to show
        instead of a traceback (an interruption, a full disk), or None to show the traceback."""
        if isinstance(error, INTERRUPTIONS):
            previous = signal.signal(signal.SIGINT, signal.SIG_IGN) if _on_main_thread() else None
            try:  # the student has already asked to stop: a second Ctrl-C asks nothing new
                self.end("interrupted")
            finally:
                if previous is not None:
                    signal.signal(signal.SIGINT, previous)
            return (
                f"Interrupted after {self.record.data['epochs_completed']} epoch(s). "
                f"The logs so far are readable: {tensorboard_command(self.dir)}"
            )
        cause = write_failure(error, self.dir)
        self.end("failed", f"{type(error).__name__}: {error}")
        return cause


_open_runs: list[RunLifecycle] = []
_hooks_installed = False
_previous_sigterm = None


def open_runs() -> list[RunLifecycle]:
    return list(_open_runs)


def end_open_runs(error: BaseException) -> list[str]:
    """End every open run after `error`; the lines to show the student."""
    return [line for run in list(_open_runs) if (line := run.end_after(error))]


def _on_main_thread() -> bool:
    return threading.current_thread() is threading.main_thread()


@contextlib.contextmanager
def _interruptions_held():
    """Hold Ctrl-C and SIGTERM back while a run records how it ended; they arrive right after.
    Where signals cannot be blocked (Windows), a Ctrl-C in that moment is ignored instead."""
    if not _on_main_thread():
        yield
        return
    if hasattr(signal, "pthread_sigmask"):
        held = {signal.SIGINT, signal.SIGTERM}
        previous = signal.pthread_sigmask(signal.SIG_BLOCK, held)
        try:
            yield
        finally:
            signal.pthread_sigmask(signal.SIG_SETMASK, previous)
        return
    previous_handler = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous_handler)


def install_error_hooks() -> None:
    """Once per process (labkit.cli.parse calls it): the hook that ends open runs, and turns a
    LabError into one line, when an error escapes the activity's code."""
    global _hooks_installed
    if _hooks_installed:
        return
    _hooks_installed = True
    if in_notebook():
        from IPython import get_ipython

        get_ipython().events.register("post_run_cell", _after_notebook_cell)
    else:
        sys.excepthook = _script_excepthook(sys.excepthook)
        atexit.register(_exiting_with_runs_open)


def _catch_sigterm() -> None:
    """While a run is open, SIGTERM raises Terminated in the main thread, so that a run stopped by
    `kill` can still close its logs and say `interrupted`, as after Ctrl-C."""
    global _previous_sigterm
    if _on_main_thread() and _previous_sigterm is None:

        def terminated(signum, frame):
            raise Terminated()

        _previous_sigterm = signal.signal(signal.SIGTERM, terminated)


def _restore_sigterm() -> None:
    global _previous_sigterm
    if _previous_sigterm is not None and _on_main_thread():
        signal.signal(signal.SIGTERM, _previous_sigterm)
        _previous_sigterm = None


def _after_notebook_cell(result) -> None:
    error = getattr(result, "error_in_exec", None)
    if error is None or not _open_runs:
        return
    for line in end_open_runs(error):
        print(line, flush=True)
    status = "interrupted" if isinstance(error, INTERRUPTIONS) else "failed"
    print(f"The run was marked {status}. Run the notebook again from the top for a new run.", flush=True)


def report_uncaught(error: BaseException) -> int | None:
    """End every open run after `error` escaped an activity, say so in one line where one line
    says it all, and return the exit code; None means "show the traceback" (a bug, not a state)."""
    lines = end_open_runs(error)
    if isinstance(error, INTERRUPTIONS):
        print("\n" + "\n".join(lines), flush=True)
        return interrupted_exit_code(error)
    if isinstance(error, LabError) or lines:
        prog = Path(sys.argv[0]).name if sys.argv and sys.argv[0] else "python"
        print(f"{prog}: error: {lines[0] if lines else error}", file=sys.stderr, flush=True)
        return RunWriteError.exit_code if lines else error.exit_code
    return None


def _script_excepthook(previous):
    def excepthook(exc_type, error, tb):
        code = report_uncaught(error)
        if code is None:
            previous(exc_type, error, tb)
        else:
            _exit_now(code)

    return excepthook


def _exit_now(code: int) -> None:
    """Exit with `code` from inside the excepthook, where SystemExit is not honoured."""
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


def _exiting_with_runs_open() -> None:
    for run in list(_open_runs):
        run.end("failed", "the program ended before the run finished")
