"""The two commands of the course lab, for any OS with Python 3.10+ (standard library only).

    python3 scripts/lab.py start [train_mnist.py options]   # set up, check, train Lesson 1
    python3 scripts/lab.py test  [pytest options]           # set up, run every test

Both create `.venv` in the repository if it is missing and (re)install requirements.txt when
it changed since the last install, then run inside that venv. `.ci/run` calls `test`.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
VENV = REPO / ".venv"
REQUIREMENTS = REPO / "requirements.txt"
INSTALL_STAMP = VENV / ".lab-installed.sha256"
MAIN_ACTIVITY = REPO / "lesson_1" / "exercise_a" / "train_mnist.py"


def say(message: str) -> None:
    print(f"[lab] {message}", flush=True)


def venv_python() -> Path:
    return VENV / ("Scripts/python.exe" if os.name == "nt" else "bin/python")


def requirements_digest() -> str:
    # pyproject.toml counts too: requirements.txt installs this repo's own packages from it.
    digest = hashlib.sha256()
    for path in (REQUIREMENTS, REPO / "pyproject.toml"):
        digest.update(path.read_bytes())
    return digest.hexdigest()


def venv_bin() -> Path:
    return venv_python().parent


def run(command: list) -> int:
    # Children see the venv's bin folder first on PATH, as if the venv were activated, so that
    # `tensorboard` and `jupyter` resolve to this environment's copies.
    env = dict(os.environ, PATH=os.pathsep.join([str(venv_bin()), os.environ.get("PATH", "")]),
               VIRTUAL_ENV=str(VENV))
    return subprocess.call([str(part) for part in command], cwd=REPO, env=env)


def ensure_venv() -> Path:
    if sys.version_info < (3, 10):
        sys.exit(f"[lab] Python 3.10 or newer is needed, this is {sys.version.split()[0]} ({sys.executable})")
    python = venv_python()
    if not python.exists():
        say(f"creating the virtual environment {VENV}")
        if run([sys.executable, "-m", "venv", VENV]) != 0 or not python.exists():
            sys.exit("[lab] could not create .venv; on Debian/Ubuntu install it with "
                     "`sudo apt install python3-venv`, then run this again")
    digest = requirements_digest()
    if not INSTALL_STAMP.exists() or INSTALL_STAMP.read_text().strip() != digest:
        say("installing requirements.txt into .venv (the first time takes a few minutes)")
        if run([python, "-m", "pip", "install", "--disable-pip-version-check", "-r", REQUIREMENTS]) != 0:
            sys.exit("[lab] pip could not install requirements.txt; the lines above say which package failed")
        INSTALL_STAMP.write_text(digest + "\n")
    else:
        say("requirements already installed in .venv")
    return python


def start(extra: list[str]) -> int:
    python = ensure_venv()
    say("checking the environment: scripts/test_stack.py")
    if run([python, REPO / "scripts" / "test_stack.py"]) == 1:
        say("the environment check found a problem (FAIL rows above); fix it, then run this again")
        return 1
    say("training the Lesson 1 network (Exercise A)")
    status = run([python, MAIN_ACTIVITY, *extra])
    if status == 0 and os.environ.get("VIRTUAL_ENV") != str(VENV):
        activate = (r".venv\Scripts\activate" if os.name == "nt" else "source .venv/bin/activate")
        say(f"tensorboard is installed in .venv: run `{activate}` first, then the command above")
    return status


def test(extra: list[str]) -> int:
    python = ensure_venv()
    return run([python, "-m", "pytest", *extra])


def main(argv: list[str]) -> int:
    commands = {"start": start, "test": test}
    if not argv or argv[0] not in commands:
        print(__doc__.strip(), file=sys.stderr)
        return 2
    return commands[argv[0]](argv[1:])


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
