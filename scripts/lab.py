"""The two commands of the course lab, for any OS with Python 3.10 to 3.13 (standard library only).

    python3 scripts/lab.py start [train_mnist.py options]   # set up, check, train Lesson 1
    python3 scripts/lab.py test  [--full] [pytest options]  # set up with the dev tools, run the tests
    python3 scripts/lab.py setup [--dev]                    # only create or repair .venv
    python3 scripts/lab.py lock                             # regenerate requirements-lock.txt (uv)

For students, with nothing to activate:

    python3 scripts/lab.py notebook [jupyter lab options]   # JupyterLab on the repository
    python3 scripts/lab.py run SCRIPT [flags]               # an activity, inside .venv

For instructors and students comparing runs (each runs inside .venv; `--help` explains it):

    python3 scripts/lab.py tensorboard [LOGDIR] [--port N] [--bind-all]
    python3 scripts/lab.py runs [DIR] [--json] [--lesson N] [--clean [--yes]] [--export FILE]
    python3 scripts/lab.py collect STUDENT_ARCHIVE... --into DIR
    python3 scripts/lab.py demo-runs [--lesson N]           # regenerate demo_runs/
    python3 scripts/lab.py workers N -- ACTIVITY_COMMAND    # one training job on N local workers

All of them create `.venv` in the repository if it is missing and (re)install the lab when
pyproject.toml or the lock changed since the last install, then run inside that venv. A student's
commands install the runtime set (pyproject.toml's dependencies); `test` and `lock` add the `dev`
extra (pytest, Selenium, ruff, uv). `.ci/run` calls `test`. A `.venv` whose creation was cut short
(Ctrl-C, a closed terminal) is found and rebuilt, and two commands started at once take turns at
the setup instead of building over each other.

The install is pinned by requirements-lock.txt, a universal lock that uv resolved for every
platform and supported Python at once (markers pick each machine's lines). `lock` regenerates it
from pyproject.toml, and README.md's "Tested with" line with it. Set LAB_UNLOCKED=1 to install
from pyproject.toml's lower bounds alone (a check against the newest releases).
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import platform
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
VENV = REPO / ".venv"
PYPROJECT = REPO / "pyproject.toml"
LOCK = REPO / "requirements-lock.txt"
README = REPO / "README.md"
UNLOCKED_ENV = "LAB_UNLOCKED"
# The versions README.md names in its "Tested with" line, in this order.
HEADLINE_PACKAGES = {
    shown.lower(): shown for shown in "TensorFlow Keras TensorBoard NumPy pandas scikit-learn mlxtend jupytext".split()
}
INSTALL_STAMP = VENV / ".lab-installed.sha256"
# Written last by a venv creation that ran to the end: a venv without it may lack pip.
VENV_COMPLETE = VENV / ".lab-venv-complete"
# Beside .venv, not in it, so that it survives a rebuild; held while .venv is set up.
SETUP_LOCK = REPO / ".venv.lock"
MAIN_ACTIVITY = REPO / "lesson_1" / "exercise_a" / "train_mnist.py"
NEXT_ACTIVITY = Path("lesson_1") / "activity_2" / "train_mnist.py"
# The two install sets: a student's, and a developer's (the `dev` extra on top).
RUNTIME, DEV = "runtime", "dev"
# The Pythons TensorFlow publishes wheels for; pyproject.toml's requires-python says the same.
SUPPORTED_MINORS = (10, 11, 12, 13)
# TensorFlow's last Intel Mac release (2.16) has wheels up to Python 3.12.
INTEL_MAC_LAST_MINOR = 12
# Set for the activities that `start`, `run` and `notebook` launch, so that the commands a run
# prints at its end are the ones that work without activating .venv.
LAUNCHER_ENV = "LAB_COMMAND"


def on_windows() -> bool:
    return os.name == "nt"


def lab_command() -> str:
    return r"py scripts\lab.py" if on_windows() else "python3 scripts/lab.py"


def say(message: str) -> None:
    # stderr, so that a command's own output (`runs --json`) stays clean on stdout.
    print(f"[lab] {message}", file=sys.stderr, flush=True)


def venv_python() -> Path:
    return VENV / ("Scripts/python.exe" if on_windows() else "bin/python")


def supported_minors() -> tuple:
    intel_mac = sys.platform == "darwin" and platform.machine() == "x86_64"
    return tuple(m for m in SUPPORTED_MINORS if not intel_mac or m <= INTEL_MAC_LAST_MINOR)


def pythons_on_this_machine(minors: tuple) -> list[str]:
    """The supported Pythons that start here, newest first, as the user would type them. A name on
    PATH is tried, not trusted: pyenv puts shims there that fail for versions not selected."""
    names = [f"py -3.{m}" for m in minors] if on_windows() else [f"python3.{m}" for m in minors]
    working = []
    for name in reversed(names):
        if not shutil.which(name.split()[0]):
            continue
        try:
            probe = subprocess.run([*name.split(), "-c", "pass"], capture_output=True, timeout=10)
        except (OSError, subprocess.TimeoutExpired):
            continue
        if probe.returncode == 0:
            working.append(name)
    return working


def python_refusal(argv: list[str]) -> str | None:
    """One line for a Python the course cannot run on, naming the versions that work."""
    minors = supported_minors()
    if sys.version_info[0] == 3 and sys.version_info[1] in minors:
        return None
    version = ".".join(map(str, sys.version_info[:3]))
    command = " ".join([r"scripts\lab.py" if on_windows() else "scripts/lab.py", *argv[:1]])
    found = pythons_on_this_machine(minors)
    newest = f"py -3.{minors[-1]}" if on_windows() else f"python3.{minors[-1]}"
    if found:
        remedy = f"{found[0]} is on this machine: run `{found[0]} {command}`"
    else:
        remedy = f"install one (python.org, or `uv python install 3.{minors[-1]}`), then run `{newest} {command}`"
    span = f"3.{minors[0]} to 3.{minors[-1]}"
    return f"[lab] the course runs on Python {span}, which TensorFlow has wheels for; this is {version}. {remedy}"


def locked() -> bool:
    return os.environ.get(UNLOCKED_ENV) != "1" and LOCK.is_file()


def requirements_digest() -> str:
    digest = hashlib.sha256()
    for path in (PYPROJECT,) + ((LOCK,) if locked() else ()):
        digest.update(path.read_bytes())
    return digest.hexdigest()


def install_command(python: Path, install_set: str) -> list:
    # pip byte-compiles at install on purpose: with PYTHONDONTWRITEBYTECODE set (as on CI's
    # machines), Python never caches a compiled module, and every process would compile
    # TensorFlow's Python anew; --no-compile was measured to double the suite's time there.
    target = ".[dev]" if install_set == DEV else "."
    command = [python, "-m", "pip", "install", "--disable-pip-version-check", "--editable", target]
    return command + (["--constraint", LOCK] if locked() else [])


def installed_set(digest: str) -> str | None:
    """The set the last install put in .venv, if it was made from these very files."""
    if not INSTALL_STAMP.exists():
        return None
    words = INSTALL_STAMP.read_text().split()
    return words[1] if len(words) == 2 and words[0] == digest else None


def venv_bin() -> Path:
    return venv_python().parent


def venv_environment(launched: bool = False) -> dict:
    # Children see the venv's bin folder first on PATH, as if the venv were activated, so that
    # `tensorboard` and `jupyter` resolve to this environment's copies.
    path = os.pathsep.join([str(venv_bin()), os.environ.get("PATH", "")])
    environment = dict(os.environ, PATH=path, VIRTUAL_ENV=str(VENV))
    if launched:
        environment[LAUNCHER_ENV] = lab_command()
    return environment


def run(command: list, launched: bool = False) -> int:
    return subprocess.call([str(part) for part in command], cwd=REPO, env=venv_environment(launched))


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


def ensure_venv(quiet: bool = False, install_set: str = RUNTIME) -> Path:
    with setup_lock():
        return _ensure_venv(quiet, install_set)


def _ensure_venv(quiet: bool, install_set: str) -> Path:
    python = venv_python()
    if python.exists() and not venv_is_complete(python):
        say(f"{VENV} is incomplete (an earlier setup was cut short); deleting and rebuilding it")
        shutil.rmtree(VENV)
    if not python.exists():
        say(f"creating the virtual environment {VENV}")
        create_venv(python)
    digest = requirements_digest()
    have = installed_set(digest)
    if have == DEV or have == install_set:
        if not quiet:
            say("the lab is already installed in .venv")
        return python
    what = "the lab with its dev tools" if install_set == DEV else "the lab"
    pinned = f", pinned by {LOCK.name}" if locked() else ""
    say(f"installing {what} into .venv from pyproject.toml{pinned} (the first time takes a few minutes)")
    if run(install_command(python, install_set)) != 0:
        hint = f"; to try the newest releases instead of the pins, set {UNLOCKED_ENV}=1" if locked() else ""
        sys.exit(f"[lab] pip could not install the lab; the lines above say which package failed{hint}")
    INSTALL_STAMP.write_text(f"{digest} {install_set}\n")
    return python


def setup(extra: list[str]) -> int:
    if extra not in ([], ["--dev"]):
        say(f"setup takes only --dev, not {' '.join(extra)}")
        return 2
    ensure_venv(install_set=DEV if extra else RUNTIME)
    return 0


def start(extra: list[str]) -> int:
    python = ensure_venv()
    say("checking the environment: scripts/test_stack.py")
    if run([python, REPO / "scripts" / "test_stack.py"]) == 1:
        say("the environment check found a problem (FAIL rows above); fix it, then run this again")
        return 1
    say("training the Lesson 1 network (Exercise A)")
    status = run([python, MAIN_ACTIVITY, *extra], launched=True)
    if status == 0:
        say("what next, with nothing to activate:")
        say(f"  {lab_command()} tensorboard         # every run so far in TensorBoard")
        say(f"  {lab_command()} notebook            # the lessons as notebooks, in JupyterLab")
        say(f"  {lab_command()} run {NEXT_ACTIVITY.as_posix()}   # the next activity")
    return status


def parallel_options(extra: list[str]) -> list[str]:
    """One pytest worker per core, each taking whole test files so that a file's shared quick runs
    train once; tests/conftest.py hands out each full-length run alone and first. Left out when
    the caller picks its own `-n` or turns xdist off."""
    if "no:xdist" in extra or any(arg.startswith(("-n", "--numprocesses")) for arg in extra):
        return []
    return ["-n", "auto", "--dist", "loadfile", "--no-loadscope-reorder"]


def test(extra: list[str]) -> int:
    """Every test but the full-length figure checks and the minutes-long ones (markers `full` and
    `long`, about 40 minutes more on two cores), unless `--full` asks for those too or `-m` picks a
    marker expression of its own."""
    python = ensure_venv(install_set=DEV)
    if "--full" in extra:
        extra = [arg for arg in extra if arg != "--full"]
    elif not any(arg.startswith("-m") for arg in extra):
        extra = ["-m", "not full and not long", *extra]
    return run([python, "-m", "pytest", *parallel_options(extra), *extra])


def replace_process(command: list, launched: bool = False) -> int:
    """Run a command in .venv's environment in the caller's working folder. On POSIX it replaces
    this process, so that Ctrl-C and kill reach it directly (a server must stop cleanly, not
    through a wrapper)."""
    command = [str(part) for part in command]
    if os.name != "posix":
        return subprocess.call(command, env=venv_environment(launched))
    sys.stdout.flush()
    sys.stderr.flush()
    os.execve(command[0], command, venv_environment(launched))


def notebook(extra: list[str]) -> int:
    python = ensure_venv(quiet=True)
    say("starting JupyterLab on the repository: open the address it prints below (token included); Ctrl-C stops it")
    options = [f"--ServerApp.root_dir={REPO}"]
    # Jupyter refuses root unless told; a container (Docker, a CI runner) often has no other user.
    if hasattr(os, "geteuid") and os.geteuid() == 0 and "--allow-root" not in extra:
        say("running as root, as in a container: passing --allow-root to Jupyter")
        options.append("--allow-root")
    return replace_process([python, "-m", "jupyterlab", *options, *extra], launched=True)


def run_activity(extra: list[str]) -> int:
    if not extra or extra[0].startswith("-"):
        example = MAIN_ACTIVITY.relative_to(REPO).as_posix()
        say(f"usage: {lab_command()} run SCRIPT [flags], e.g. {lab_command()} run {example} --quick")
        return 2
    script = Path(extra[0])
    if not script.is_file():
        say(f"run: no such script {script} (from {Path.cwd()})")
        return 2
    python = ensure_venv(quiet=True)
    return replace_process([python, script, *extra[1:]], launched=True)


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
    # The caller's working folder is kept: a relative LOGDIR means what the user typed.
    return replace_process([python, "-m", module, *extra])


def lock_lines(frozen: str) -> list[str]:
    """`pip freeze` output minus this repository's own editable install, sorted by name: the
    versions README.md's "Tested with" line names."""
    pins = [
        line.strip()
        for line in frozen.splitlines()
        if line.strip() and not line.startswith(("-e ", "#")) and "==" in line
    ]
    return sorted(pins, key=lambda line: line.split("==")[0].lower())


def tested_with_line(pins: list[str]) -> str:
    versions = {line.split("==")[0].lower().replace("_", "-"): line.split("==")[1] for line in pins}
    parts = [f"{shown} {versions[name]}" for name, shown in HEADLINE_PACKAGES.items() if name in versions]
    python = ".".join(map(str, sys.version_info[:3]))
    return f"Tested with Python {python}, " + ", ".join(parts) + f" (all pins: `{LOCK.name}`)."


def lock_command(python: Path, output: Path) -> list:
    """uv's universal resolution: one file whose markers give every platform and supported Python
    its own pins. uv needs to be told the oldest Python; it does not read requires-python here."""
    oldest = f"3.{SUPPORTED_MINORS[0]}"
    compile_ = f"-m uv pip compile {PYPROJECT.name} --extra dev --universal --python-version {oldest} --quiet".split()
    return [python, *compile_, "--custom-compile-command", "python3 scripts/lab.py lock", "--output-file", output]


def lock(extra: list[str]) -> int:
    python = ensure_venv(install_set=DEV)
    say("resolving pyproject.toml with uv for every platform and supported Python (it needs the package index)")
    if run(lock_command(python, LOCK)) != 0:
        say("uv could not resolve pyproject.toml; the lines above say why")
        return 1
    # .venv follows the new pins before the README names them.
    python = ensure_venv(quiet=True, install_set=DEV)
    frozen = subprocess.run(
        [str(python), "-m", "pip", "freeze", "--disable-pip-version-check"],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    readme = README.read_text()
    updated = re.sub(r"^Tested with Python .*$", tested_with_line(lock_lines(frozen)), readme, count=1, flags=re.M)
    README.write_text(updated)
    pins = [line for line in LOCK.read_text().splitlines() if "==" in line and not line.startswith("#")]
    say(f"wrote {len(pins)} pins to {LOCK.name}" + ("" if updated == readme else "; updated README.md's Tested with"))
    return 0


def main(argv: list[str]) -> int:
    refusal = python_refusal(argv)
    if refusal:
        print(refusal, file=sys.stderr)
        return 2
    commands = {"start": start, "test": test, "setup": setup, "lock": lock, "notebook": notebook, "run": run_activity}
    if argv and argv[0] in VENV_MODULES:
        return run_module(VENV_MODULES[argv[0]], argv[1:])
    if not argv or argv[0] not in commands:
        print(__doc__.strip(), file=sys.stderr)
        return 2
    return commands[argv[0]](argv[1:])


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
