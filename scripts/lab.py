"""The two commands of the course lab, for any OS with Python 3.10+ (standard library only).

    python3 scripts/lab.py start [train_mnist.py options]   # set up, check, train Lesson 1
    python3 scripts/lab.py test  [pytest options]           # set up, run every test
    python3 scripts/lab.py setup                            # only create or repair .venv
    python3 scripts/lab.py lock                             # refresh requirements-lock.txt

For instructors and students comparing runs (each runs inside .venv; `--help` explains it):

    python3 scripts/lab.py tensorboard [LOGDIR] [--port N] [--bind-all]
    python3 scripts/lab.py runs [DIR] [--json] [--lesson N] [--clean [--yes]] [--export FILE]
    python3 scripts/lab.py collect STUDENT_ARCHIVE... --into DIR
    python3 scripts/lab.py demo-runs [--lesson N]           # regenerate demo_runs/
    python3 scripts/lab.py workers N -- ACTIVITY_COMMAND    # one training job on N local workers

All of them create `.venv` in the repository if it is missing and (re)install requirements.txt when
it or the lock changed since the last install, then run inside that venv. `.ci/run` calls `test`.
A `.venv` whose creation was cut short (Ctrl-C, a closed terminal) is found and rebuilt, and two
commands started at once take turns at the setup instead of building over each other.

The install is pinned by requirements-lock.txt: the exact versions the last green CI used.
`lock` rewrites it from what .venv holds now, and README.md's "Tested with" line with it. Set
LAB_UNLOCKED=1 to install from requirements.txt's lower bounds alone (a platform for which a
pinned version has no wheel, or a check against the newest releases).
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
VENV = REPO / ".venv"
REQUIREMENTS = REPO / "requirements.txt"
LOCK = REPO / "requirements-lock.txt"
README = REPO / "README.md"
UNLOCKED_ENV = "LAB_UNLOCKED"
# The versions README.md names in its "Tested with" line, in this order.
HEADLINE_PACKAGES = ("tensorflow", "keras", "tensorboard", "numpy", "pandas", "scikit-learn", "mlxtend", "jupytext")
INSTALL_STAMP = VENV / ".lab-installed.sha256"
# Written last by a venv creation that ran to the end: a venv without it may lack pip.
VENV_COMPLETE = VENV / ".lab-venv-complete"
# Beside .venv, not in it, so that it survives a rebuild; held while .venv is set up.
SETUP_LOCK = REPO / ".venv.lock"
MAIN_ACTIVITY = REPO / "lesson_1" / "exercise_a" / "train_mnist.py"


def say(message: str) -> None:
    # stderr, so that a command's own output (`runs --json`) stays clean on stdout.
    print(f"[lab] {message}", file=sys.stderr, flush=True)


def venv_python() -> Path:
    return VENV / ("Scripts/python.exe" if os.name == "nt" else "bin/python")


def locked() -> bool:
    return os.environ.get(UNLOCKED_ENV) != "1" and LOCK.is_file()


def requirements_digest() -> str:
    # pyproject.toml counts too: requirements.txt installs this repo's own packages from it.
    digest = hashlib.sha256()
    for path in (REQUIREMENTS, REPO / "pyproject.toml") + ((LOCK,) if locked() else ()):
        digest.update(path.read_bytes())
    return digest.hexdigest()


def install_command(python: Path) -> list:
    # pip byte-compiles at install on purpose: with PYTHONDONTWRITEBYTECODE set (as on CI's
    # machines), Python never caches a compiled module, and every process would compile
    # TensorFlow's Python anew; --no-compile was measured to double the suite's time there.
    command = [python, "-m", "pip", "install", "--disable-pip-version-check", "-r", REQUIREMENTS]
    return command + (["-c", LOCK] if locked() else [])


def venv_bin() -> Path:
    return venv_python().parent


def venv_environment() -> dict:
    # Children see the venv's bin folder first on PATH, as if the venv were activated, so that
    # `tensorboard` and `jupyter` resolve to this environment's copies.
    return dict(os.environ, PATH=os.pathsep.join([str(venv_bin()), os.environ.get("PATH", "")]), VIRTUAL_ENV=str(VENV))


def run(command: list) -> int:
    return subprocess.call([str(part) for part in command], cwd=REPO, env=venv_environment())


def lock_file(handle, wait: bool) -> None:
    """An exclusive lock on an open file, released when the file is closed; OSError if taken
    and not `wait`."""
    try:
        import fcntl
    except ImportError:  # Windows
        import msvcrt

        while True:
            try:
                return msvcrt.locking(handle.fileno(), msvcrt.LK_NBLCK, 1)
            except OSError:
                if not wait:
                    raise
                time.sleep(0.5)
    fcntl.flock(handle, fcntl.LOCK_EX | (0 if wait else fcntl.LOCK_NB))


@contextlib.contextmanager
def setup_lock():
    """One setup of .venv at a time: a second `lab.py` started meanwhile waits for the first."""
    with open(SETUP_LOCK, "a+b") as handle:
        try:
            lock_file(handle, wait=False)
        except OSError:
            say("another lab.py command is setting up .venv; waiting for it to finish")
            lock_file(handle, wait=True)
        yield


def venv_is_complete(python: Path) -> bool:
    """A venv made by this script carries VENV_COMPLETE; one made before it existed is complete
    when its pip runs (and is then marked, so the check runs once)."""
    if VENV_COMPLETE.exists():
        return True
    probe = subprocess.run([str(python), "-m", "pip", "--version"], capture_output=True, cwd=REPO)
    if probe.returncode != 0:
        return False
    VENV_COMPLETE.touch()
    return True


def create_venv(python: Path) -> None:
    if run([sys.executable, "-m", "venv", VENV]) != 0 or not python.exists():
        sys.exit(
            "[lab] could not create .venv; on Debian/Ubuntu install it with "
            "`sudo apt install python3-venv`, then run this again"
        )
    VENV_COMPLETE.touch()


def ensure_venv(quiet: bool = False) -> Path:
    if sys.version_info < (3, 10):
        sys.exit(f"[lab] Python 3.10 or newer is needed, this is {sys.version.split()[0]} ({sys.executable})")
    with setup_lock():
        return _ensure_venv(quiet)


def _ensure_venv(quiet: bool) -> Path:
    python = venv_python()
    if python.exists() and not venv_is_complete(python):
        say(f"{VENV} is incomplete (an earlier setup was cut short); deleting and rebuilding it")
        shutil.rmtree(VENV)
    if not python.exists():
        say(f"creating the virtual environment {VENV}")
        create_venv(python)
    digest = requirements_digest()
    if not INSTALL_STAMP.exists() or INSTALL_STAMP.read_text().strip() != digest:
        pinned = f", pinned by {LOCK.name}" if locked() else ""
        say(f"installing requirements.txt into .venv{pinned} (the first time takes a few minutes)")
        if run(install_command(python)) != 0:
            hint = f"; if a pinned version has no wheel for this machine, try {UNLOCKED_ENV}=1" if locked() else ""
            sys.exit(f"[lab] pip could not install requirements.txt; the lines above say which package failed{hint}")
        INSTALL_STAMP.write_text(digest + "\n")
    elif not quiet:
        say("requirements already installed in .venv")
    return python


def setup(extra: list[str]) -> int:
    ensure_venv()
    return 0


def start(extra: list[str]) -> int:
    python = ensure_venv()
    say("checking the environment: scripts/test_stack.py")
    if run([python, REPO / "scripts" / "test_stack.py"]) == 1:
        say("the environment check found a problem (FAIL rows above); fix it, then run this again")
        return 1
    say("training the Lesson 1 network (Exercise A)")
    status = run([python, MAIN_ACTIVITY, *extra])
    if status == 0 and os.environ.get("VIRTUAL_ENV") != str(VENV):
        activate = r".venv\Scripts\activate" if os.name == "nt" else "source .venv/bin/activate"
        say(f"tensorboard is installed in .venv: run `{activate}` first, then the command above")
    return status


def parallel_options(extra: list[str]) -> list[str]:
    """One pytest worker per core, each taking whole test files so that a file's shared quick runs
    train once; tests/conftest.py hands out each full-length run alone and first. Left out when
    the caller picks its own `-n` or turns xdist off."""
    if "no:xdist" in extra or any(arg.startswith(("-n", "--numprocesses")) for arg in extra):
        return []
    return ["-n", "auto", "--dist", "loadfile", "--no-loadscope-reorder"]


def test(extra: list[str]) -> int:
    python = ensure_venv()
    return run([python, "-m", "pytest", *parallel_options(extra), *extra])


# Commands that run a toolkit module inside .venv. On POSIX the module replaces this process, so
# that Ctrl-C and kill reach it directly (a server must stop cleanly, not through a wrapper).
VENV_MODULES = {
    "tensorboard": "labkit.instructor.board",
    "runs": "labkit.instructor.catalog",
    "collect": "labkit.instructor.collect",
    "demo-runs": "labkit.instructor.demo_runs",
    "workers": "labkit.instructor.workers",
}


def run_module(module: str, extra: list[str]) -> int:
    python = ensure_venv(quiet=True)
    command = [str(python), "-m", module, *extra]
    # The caller's working folder is kept: a relative LOGDIR means what the user typed.
    if os.name != "posix":
        return subprocess.call(command, env=venv_environment())
    sys.stdout.flush()
    os.execve(command[0], command, venv_environment())


def lock_lines(frozen: str) -> list[str]:
    """`pip freeze` output minus this repository's own editable install, sorted by name."""
    pins = [
        line.strip()
        for line in frozen.splitlines()
        if line.strip() and not line.startswith(("-e ", "#")) and "==" in line
    ]
    return sorted(pins, key=lambda line: line.split("==")[0].lower())


def tested_with_line(pins: list[str]) -> str:
    versions = {line.split("==")[0].lower().replace("_", "-"): line.split("==")[1] for line in pins}
    names = {
        "tensorflow": "TensorFlow",
        "keras": "Keras",
        "tensorboard": "TensorBoard",
        "numpy": "NumPy",
        "pandas": "pandas",
        "scikit-learn": "scikit-learn",
        "mlxtend": "mlxtend",
        "jupytext": "jupytext",
    }
    parts = [f"{names[name]} {versions[name]}" for name in HEADLINE_PACKAGES if name in versions]
    python = ".".join(map(str, sys.version_info[:3]))
    return f"Tested with Python {python}, " + ", ".join(parts) + f" (all pins: `{LOCK.name}`)."


def lock(extra: list[str]) -> int:
    python = ensure_venv()
    frozen = subprocess.run(
        [str(python), "-m", "pip", "freeze", "--disable-pip-version-check"],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    pins = lock_lines(frozen)
    header = (
        "# The exact versions the course was last tested with (CI installs with them).\n"
        "# Generated by `python3 scripts/lab.py lock` from .venv; do not edit by hand.\n"
        f"# Python {'.'.join(map(str, sys.version_info[:3]))} on {sys.platform}.\n"
    )
    LOCK.write_text(header + "\n".join(pins) + "\n")
    readme = README.read_text()
    updated = re.sub(r"^Tested with Python .*$", tested_with_line(pins), readme, count=1, flags=re.M)
    README.write_text(updated)
    say(f"wrote {len(pins)} pins to {LOCK.name}" + ("" if updated == readme else "; updated README.md's Tested with"))
    # The stamp must follow the lock just written, or the next command would reinstall for nothing.
    INSTALL_STAMP.write_text(requirements_digest() + "\n")
    return 0


def main(argv: list[str]) -> int:
    commands = {"start": start, "test": test, "setup": setup, "lock": lock}
    if argv and argv[0] in VENV_MODULES:
        return run_module(VENV_MODULES[argv[0]], argv[1:])
    if not argv or argv[0] not in commands:
        print(__doc__.strip(), file=sys.stderr)
        return 2
    return commands[argv[0]](argv[1:])


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
