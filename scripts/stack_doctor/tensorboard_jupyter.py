"""TensorBoard (its command, port 6006, the runs folder it reads) and the Jupyter kernel.

Running TensorBoards are listed by `tensorboard.manager.get_all()`, and kernels by
`jupyter_client`'s KernelSpecManager: the code those projects use themselves, so the doctor
reads their files exactly as they write them. Both are imported in this process, not in the
TensorFlow child, because neither imports TensorFlow (tensorboard.manager needs only the
standard library and two small tensorboard modules, about 50 ms; jupyter_client about 150 ms,
spent in a background thread while TensorFlow imports), and both are asked only when needed.
An import that fails is caught: the row then says what could not be checked.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import NamedTuple

from .core import (
    FAIL,
    INSTALL_EVERYTHING,
    OK,
    WARN,
    Check,
    CommandResult,
    DistInfo,
    is_inside,
    last_meaningful_line,
    one_line,
    quote,
    same_folder,
)

TENSORBOARD_PORT = 6006
KERNEL_NAME = "keras-course-lab"


# -- the tensorboard command -------------------------------------------------------------------


def activation_hint(prefix: str, in_virtualenv: bool, system: str, scripts_dir: str) -> str:
    if not in_virtualenv:
        return f"add {scripts_dir} to PATH (or activate the environment this Python belongs to)"
    if system == "Windows":
        return f"activate the environment first: {prefix}\\Scripts\\activate (or use py scripts\\lab.py tensorboard)"
    activate = f"source {quote(prefix)}/bin/activate"
    return f"activate the environment first: {activate} (or use python3 scripts/lab.py tensorboard)"


def check_tensorboard_command(
    own: str | None, on_path: str | None, version: CommandResult, packages: Mapping[str, DistInfo], activate: str
) -> Check:
    required = "this environment's, on PATH, runs"
    if own is None:
        if "tensorboard" in packages:
            return Check(
                "tensorboard",
                FAIL,
                "the tensorboard package is installed but its command is missing",
                required,
                'pip install --force-reinstall "tensorboard>=2.16"',
            )
        return Check("tensorboard", FAIL, "TensorBoard is not installed", required, 'pip install "tensorboard>=2.16"')
    if version.error == "not found":  # the file exists, so its interpreter line is broken
        return Check(
            "tensorboard",
            FAIL,
            f"{own} cannot start (its Python is gone)",
            required,
            "the environment was moved or its Python removed: recreate .venv, then " + INSTALL_EVERYTHING,
        )
    if not version.succeeded:
        return Check(
            "tensorboard",
            FAIL,
            f"`tensorboard --version` failed: {version.first_line()}",
            required,
            'pip install --force-reinstall "tensorboard>=2.16"',
        )
    number = last_meaningful_line(version.stdout) or "?"
    if on_path is None:
        return Check(
            "tensorboard",
            WARN,
            f"tensorboard {number} works at {own}, but `tensorboard` is not on PATH",
            required,
            activate,
        )
    if not same_folder(Path(on_path).parent, Path(own).parent):
        return Check(
            "tensorboard",
            WARN,
            f"`tensorboard` on PATH is {on_path}, from another environment; this environment's is {own} ({number})",
            required,
            activate,
        )
    return Check("tensorboard", OK, f"tensorboard {number} at {on_path}", required)


# -- port 6006 and the TensorBoards already running ----------------------------------------------


def pid_alive(pid: int) -> bool:
    try:
        import psutil
    except ImportError:  # the doctor also checks environments the lab's packages are not in yet
        if os.name == "nt":
            # No signal here: on Windows os.kill(pid, 0) sends CTRL_C_EVENT, which would stop that
            # TensorBoard. Without psutil there is no cheap test, so the process counts as alive
            # (TensorBoard removes its info file when it exits cleanly).
            return True
        try:
            os.kill(pid, 0)  # on POSIX, signal 0 only asks whether the pid exists
        except ProcessLookupError:
            return False
        except PermissionError:  # alive, but another user's
            return True
        return True
    return psutil.pid_exists(pid)


def running_tensorboards() -> tuple[list[dict], str | None]:
    """(the TensorBoards still running, why they could not be listed or None).

    tensorboard.manager keeps one info file per TensorBoard it starts, in the temp folder. A
    TensorBoard that was killed leaves its file behind, so get_all() lists it too: such stale
    entries, whose process is gone, are dropped here.
    """
    try:
        from tensorboard import manager

        instances = manager.get_all()
    except Exception as error:  # not installed, half-installed, or an unreadable info folder
        return [], one_line(error)
    return [
        {"pid": info.pid, "port": info.port, "logdir": info.logdir or info.db}
        for info in instances
        if pid_alive(info.pid)
    ], None


def check_port(port: int, is_free: bool, instances: list[dict], listing_problem: str | None = None) -> Check:
    required = f"port {port} free"
    if is_free:
        return Check("tensorboard.port", OK, f"port {port} on localhost is free", required)
    holder = next((info for info in instances if info.get("port") == port), None)
    found = f"port {port} on localhost is in use"
    stop = "Stop the old instance (Ctrl+C in its terminal)"
    if holder:
        found += f" by TensorBoard pid {holder.get('pid')} (logdir {holder.get('logdir')})"
        stop = f"Stop the old instance (Ctrl+C in its terminal, or kill {holder.get('pid')})"
    elif listing_problem:
        found += f" (running TensorBoards not listed: {listing_problem})"
    hint = (
        f"A new TensorBoard would quietly move to port {port + 1} or higher while http://localhost:{port} "
        f"keeps showing the old one. {stop}, or choose a port yourself: "
        f"tensorboard --logdir runs --port {port + 1}"
    )
    return Check("tensorboard.port", WARN, found, required, hint)


def check_runs_dir(root: Path, problem: str | None, from_env: bool, labkit_installed: bool) -> Check:
    required = "a writable runs folder"
    source = " (from LAB_RUNS_DIR)" if from_env else ""
    if problem:
        hint = (
            "set LAB_RUNS_DIR to a folder you can write to, or unset it to use runs/ in the repository"
            if from_env
            else f"make {root} writable, or set LAB_RUNS_DIR to a folder you can write to"
        )
        return Check("runs_dir", FAIL, problem + source, required, hint)
    found = f"{root} is writable{source}"
    if not labkit_installed:
        found += " (labkit's rules read from the repository: labkit is not installed here)"
    return Check("runs_dir", OK, found, required)


# -- the Jupyter kernel --------------------------------------------------------------------------


class KernelSpec(NamedTuple):
    name: str
    folder: Path
    argv: list[str]


def list_kernel_specs(kernel_dirs: list[str] | None = None) -> list[KernelSpec] | None:
    """Every kernelspec Jupyter offers, by jupyter_client's own search; None without jupyter_client.

    `kernel_dirs` replaces Jupyter's search path (tests use it). The kernel ipykernel would add
    on the fly for the doctor's own interpreter is left out (ensure_native_kernel=False): only
    kernels written to disk are ones a notebook server started elsewhere can offer.
    """
    try:
        from jupyter_client.kernelspec import KernelSpecManager
    except ImportError:  # not installed, or a dependency of it (pyzmq, traitlets) is broken
        return None
    options = {"ensure_native_kernel": False}
    if kernel_dirs is not None:
        options["kernel_dirs"] = [str(folder) for folder in kernel_dirs]
    specs = KernelSpecManager(**options).get_all_specs()
    return [
        KernelSpec(name, Path(entry["resource_dir"]), [str(part) for part in entry["spec"].get("argv") or []])
        for name, entry in sorted(specs.items())
    ]


def kernel_uses_this_python(kernel: KernelSpec, executable: str, prefix: str) -> bool:
    if not kernel.argv:
        return False
    program = Path(kernel.argv[0])
    if re.fullmatch(r"python(\d(\.\d+)?)?(\.exe)?", program.name) and program.name == kernel.argv[0]:
        # Jupyter runs a bare "python" with its own interpreter, and only this environment's
        # Jupyter sees the kernels under this environment's prefix.
        return is_inside(kernel.folder, Path(prefix))
    return same_folder(program.parent, Path(executable).parent)


def check_jupyter_kernel(kernels: list[KernelSpec] | None, executable: str, prefix: str, has_ipykernel: bool) -> Check:
    required = "a kernel that runs this Python"
    if kernels is None:
        return Check(
            "jupyter.kernel",
            WARN,
            "jupyter_client is not installed (or does not import): kernels not checked",
            required,
            'pip install --upgrade "notebook>=7.0" "ipykernel>=6.25" (they bring jupyter_client)',
        )
    ours = [kernel.name for kernel in kernels if kernel_uses_this_python(kernel, executable, prefix)]
    if ours:
        return Check("jupyter.kernel", OK, f"kernel {', '.join(ours)} runs this Python", required)
    others = ", ".join(kernel.name for kernel in kernels) or "none"
    install = (
        f'{quote(executable)} -m ipykernel install --user --name {KERNEL_NAME} --display-name "Python ({KERNEL_NAME})"'
    )
    if not has_ipykernel:
        install = 'pip install "ipykernel>=6.25", then ' + install
    return Check("jupyter.kernel", WARN, f"no kernel runs this Python (kernels found: {others})", required, install)
