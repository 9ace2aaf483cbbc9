"""labkit: what every course page shares, so that the page itself can show its Keras.

A page (an activity file, script and notebook at once) reads its flags with `labkit.cli`, loads
its arrays with `labkit.training.load_data`, claims a run folder with `labkit.training.start_run`
and hands `run.callbacks()` to `model.fit`; `labkit.lifecycle` keeps the run's status true however
the page stops. `labkit.tblogs` turns TensorBoard logs into pandas. The instructor's tools live
apart, in `labkit.instructor`.

Importing labkit also turns down TensorFlow's C++ INFO/WARNING chatter, because students
otherwise meet a wall of CUDA and oneDNN notices before their first epoch. Pass --verbose to
any activity, or set LAB_VERBOSE=1, to see it again.
"""

import importlib.abc
import importlib.util
import os
import re
import sys
import sysconfig
import tempfile
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent


def _wants_verbose() -> bool:
    return os.environ.get("LAB_VERBOSE") == "1" or "--verbose" in sys.argv


# Lines TensorFlow prints on every start-up that tell a student nothing actionable. They come
# from C++ before absl logging is configured, so TF_CPP_MIN_LOG_LEVEL cannot silence them.
_STARTUP_NOISE = re.compile(
    r"^(WARNING: All log messages before absl::InitializeLog|[IW]\d{4} |"
    r"To enable the following instructions|This TensorFlow binary is optimized)"
)


class _QuietTensorFlowImport(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    """Runs the first `import tensorflow` with C-level stderr captured, then replays every
    captured line that is not start-up noise. A failing import replays everything."""

    def find_spec(self, name, path=None, target=None):
        if name != "tensorflow":
            return None
        sys.meta_path.remove(self)  # one shot: later imports are ordinary
        spec = importlib.util.find_spec(name)
        if spec is None or spec.loader is None:
            return spec
        self._inner = spec.loader
        spec.loader = self
        return spec

    def create_module(self, spec):
        return self._inner.create_module(spec)

    def exec_module(self, module):
        sys.stderr.flush()
        saved = os.dup(2)
        with tempfile.TemporaryFile(mode="w+b") as captured:
            os.dup2(captured.fileno(), 2)
            failed = True
            try:
                self._inner.exec_module(module)
                failed = False
            finally:
                sys.stderr.flush()
                os.dup2(saved, 2)
                os.close(saved)
                captured.seek(0)
                text = captured.read().decode("utf-8", "replace")
                kept = [line for line in text.splitlines() if failed or not _STARTUP_NOISE.match(line)]
                if kept:
                    sys.stderr.write("\n".join(kept) + "\n")


if not _wants_verbose():
    # Must happen before TensorFlow is imported anywhere in the process. Level 3 also drops
    # C++ ERROR lines such as "failed call to cuInit" on machines without a GPU; Python
    # exceptions still carry the real errors, and --verbose brings every line back.
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    if "tensorflow" not in sys.modules:
        sys.meta_path.insert(0, _QuietTensorFlowImport())


def own_tensorboard(scripts_dir: str | os.PathLike | None = None) -> Path | None:
    """This environment's `tensorboard` command, or None when it is not installed.

    pip puts console scripts in sysconfig's "scripts" folder (the stack doctor looks there too):
    beside python in a venv, but in Scripts\\ next to a python.org install's python.exe on Windows,
    where the command is an .exe."""
    command = "tensorboard.exe" if os.name == "nt" else "tensorboard"
    path = Path(scripts_dir or sysconfig.get_path("scripts"), command)
    return path if path.is_file() else None


# `%tensorboard` in a notebook starts the `tensorboard` found on PATH; a Jupyter started without
# activating the venv would miss this environment's copy, so point the magic at it directly.
_OWN_TENSORBOARD = own_tensorboard()
if _OWN_TENSORBOARD is not None:
    os.environ.setdefault("TENSORBOARD_BINARY", str(_OWN_TENSORBOARD))


class LabError(Exception):
    """A problem the student can fix; reported as one line and exit code 2."""

    exit_code = 2


def in_notebook() -> bool:
    """True inside a Jupyter kernel (where sys.argv holds the kernel's own arguments)."""
    ipython = sys.modules.get("IPython")
    shell = ipython.get_ipython() if ipython is not None else None
    return shell is not None and type(shell).__name__ == "ZMQInteractiveShell"


def sha256_of(path: str | os.PathLike) -> str:
    """SHA-256 of a file's bytes, or of a folder's files (by relative name, then content), read
    in blocks so that a model of any size hashes in little memory."""
    import hashlib

    path = Path(path)
    digest = hashlib.sha256()
    files = [path] if not path.is_dir() else sorted(p for p in path.rglob("*") if p.is_file() and not p.is_symlink())
    for file in files:
        if file != path:
            digest.update(file.relative_to(path).as_posix().encode() + b"\0")
        with open(file, "rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                digest.update(block)
    return digest.hexdigest()
