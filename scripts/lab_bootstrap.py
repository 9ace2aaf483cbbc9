"""What a lesson page runs when it cannot import `labkit`, from its first code cell (PAGE_CELL).

Inside the lab's environment (.venv, or Jupyter started by `lab.py notebook`) that cell finds
`labkit` and does nothing else. Anywhere else it imports this file, from the checkout's scripts/
folder (in Colab, from the clone the cell has just made), and main() takes one of three roads:

- a hosted notebook kernel (Colab, or LAB_HOSTED=1 for Kaggle, Binder and the tests) installs the
  lab from its checkout with pip: pyproject.toml's runtime packages, never the lock, which pins
  versions a hosted image's own TensorFlow would fight. The kernel then imports it without a
  restart;
- a page run as a script by a Python outside the lab's environment prints one line naming the
  command that runs it inside, and stops with exit code 2 before it writes anything;
- a notebook kernel of the student's own, outside the lab's environment, stops with one line
  saying how to start Jupyter inside it.

Standard library only, and importable on Python 3.8: it runs before anything is installed, on
whichever Python the student has (scripts/lab.py then refuses an unsupported one in its own line).
"""

from __future__ import annotations

import importlib
import os
import shlex
import subprocess
import sys
import time
from pathlib import Path, PurePosixPath, PureWindowsPath

CHECKOUT = Path(__file__).resolve().parent.parent
HOSTED_ENV = "LAB_HOSTED"  # "1": install the lab into this kernel, as in Colab
SOURCE_ENV = "LAB_SOURCE"  # the checkout to install from, when it is not the one this file sits in

# The first code cell of every lesson page, identical everywhere (tests/test_hosted_route.py
# checks it). {repository} is pyproject.toml's [project.urls] Repository, which `git clone` names
# {folder} by its last part. Five lines of code besides imports at most: a longer block repeated on
# 26 pages is flagged as duplicated code. Colab opens a notebook without its repository, hence the
# clone; a script's globals hold __file__, a notebook's do not.
PAGE_CELL = """\
# extra code: lets this page run outside the lab's environment (scripts/lab_bootstrap.py). With the
# lab installed it does nothing. In Colab, which opens a notebook alone, it clones the lab and installs
# it (a few minutes, once per session); anywhere else it says in one line how to run this page.
import importlib.util
import os
import sys
from pathlib import Path

if importlib.util.find_spec("labkit") is None:
    if "google.colab" in sys.modules and not Path("{folder}").is_dir():
        os.system("git clone -q {repository}")
    # A script knows its own file; a notebook runs in its own folder.
    sys.path += [str(Path(globals().get("__file__", ".")).parent / "../../scripts"), "{folder}/scripts"]
    import lab_bootstrap

    lab_bootstrap.main()"""


def page_cell(repository: str) -> str:
    """PAGE_CELL for the repository at `repository` (an https address, as pyproject.toml gives it)."""
    folder = repository.rstrip("/").rsplit("/", 1)[-1]
    if folder.endswith(".git"):
        folder = folder[: -len(".git")]
    return PAGE_CELL.replace("{repository}", repository).replace("{folder}", folder)


def lab_command(windows: bool) -> str:
    return r"py scripts\lab.py" if windows else "python3 scripts/lab.py"


def script_refusal(page: Path, flags: list[str], windows: bool = os.name == "nt") -> str:
    """The line a page run as a script outside the lab's environment prints: the same run, inside."""
    try:
        relative = PurePosixPath(page.resolve().relative_to(CHECKOUT).as_posix())
        shown = str(PureWindowsPath(relative)) if windows else str(relative)
    except ValueError:  # a page outside this checkout: lab.py run takes its full path as well
        shown = str(page)
    command = [shown, *flags]
    typed = subprocess.list2cmdline(command) if windows else " ".join(shlex.quote(part) for part in command)
    return (
        f"[lab] this page needs the course's packages: from the repository root run "
        f"{lab_command(windows)} run {typed} (or activate .venv first)"
    )


def notebook_refusal(windows: bool = os.name == "nt") -> str:
    return (
        f"[lab] this notebook needs the course's packages: start Jupyter from the repository root with "
        f"{lab_command(windows)} notebook (or choose .venv's Python as this notebook's kernel)"
    )


def hosted() -> bool:
    return "google.colab" in sys.modules or os.environ.get(HOSTED_ENV) == "1"


def running_script() -> Path | None:
    """The page file Python was started on, or None in a notebook kernel (whose __main__ has no file)."""
    main_file = getattr(sys.modules.get("__main__"), "__file__", None)
    return Path(main_file) if main_file else None


def duration(seconds: float) -> str:
    minutes, rest = divmod(round(seconds), 60)
    return f"{minutes} min {rest} s" if minutes else f"{rest} s"


def installed_distributions() -> set:
    from importlib import metadata

    importlib.invalidate_caches()
    return {dist.metadata["Name"].lower() for dist in metadata.distributions() if dist.metadata["Name"]}


def install_into_this_kernel(checkout: Path) -> None:
    """pip-install the checkout (editable, pyproject.toml's runtime packages) into the running
    Python, then make it importable here. One line of output, completed when pip is done."""
    print(
        f"[lab] installing the lab from {checkout} with pip, pyproject.toml's runtime packages only (a few minutes)...",
        end=" ",
        flush=True,
    )
    before = installed_distributions()
    started = time.monotonic()
    # Captured: pip's own notices would break the line above; they are shown if it fails.
    result = subprocess.run(
        [sys.executable, "-m", "pip", "install", "--quiet", "--editable", str(checkout)],
        capture_output=True,
        text=True,
    )
    if result.returncode != 0:
        print("failed", flush=True)
        sys.stderr.write(result.stdout + result.stderr)
        raise SystemExit(f"[lab] pip could not install the lab from {checkout}; its messages are above")
    # An editable install reaches sys.path through a .pth file, which Python reads only at
    # start-up: this kernel takes the checkout directly, and rescans site-packages.
    if str(checkout) not in sys.path:
        sys.path.insert(0, str(checkout))
    importlib.invalidate_caches()
    added = len(installed_distributions() - before)
    print(f"added {added} packages in {duration(time.monotonic() - started)}", flush=True)


def main() -> None:
    """Called by PAGE_CELL when `labkit` cannot be imported."""
    if hosted():
        install_into_this_kernel(Path(os.environ.get(SOURCE_ENV) or CHECKOUT).resolve())
        return
    page = running_script()
    if page is None:
        raise SystemExit(notebook_refusal())
    print(script_refusal(page, sys.argv[1:]), file=sys.stderr, flush=True)
    raise SystemExit(2)
