"""World: every fact the doctor gathers from the machine, in one replaceable place.

The checks themselves take plain values and touch nothing. Everything that does touch the
machine (installed packages, outside commands, the TensorFlow child, sockets, files) is a
method here, so that a test can replace one of them at a time: an nvidia-smi that finds a GPU,
a TensorFlow child that fails to import, a port that is taken.
"""

from __future__ import annotations

import os
import platform
import shutil
import socket
import subprocess
import sys
import sysconfig
import tempfile
from collections.abc import Mapping
from importlib import metadata
from pathlib import Path

from . import data, tensorboard_jupyter
from .core import (
    COMMAND_TIMEOUT_S,
    ENTRY_SCRIPT,
    PYPROJECT,
    REPO_ROOT,
    CommandResult,
    DistInfo,
    canonical,
    one_line,
    probe_section,
    project_requirements,
)
from .gpu import NVIDIA_SMI_QUERY
from .tensorflow_keras import PROBE_FLAG, parse_probe_output


class World:
    """The real machine."""

    def __init__(self, env: Mapping | None = None):
        self.env = os.environ if env is None else env
        self.executable = sys.executable
        self.prefix = sys.prefix
        self.in_virtualenv = sys.prefix != getattr(sys, "base_prefix", sys.prefix)
        self.scripts_dir = sysconfig.get_path("scripts")
        self.system = platform.system()
        self._packages = None

    # -- this interpreter and OS ---------------------------------------------------------------

    def is_wsl(self) -> bool:
        if self.system != "Linux":
            return False
        try:
            return "microsoft" in Path("/proc/version").read_text().lower()
        except OSError:
            return False

    def platform_info(self) -> dict:
        return {
            "system": self.system,
            "release": platform.release(),
            "machine": platform.machine(),
            "wsl": self.is_wsl(),
            "python": platform.python_version(),
            "implementation": platform.python_implementation(),
            "executable": self.executable,
            "virtual_environment": self.in_virtualenv,
        }

    def packages(self) -> dict[str, DistInfo]:
        """Every installed distribution by canonical name, read once from its metadata."""
        if self._packages is None:
            found = {}
            for dist in metadata.distributions():
                try:
                    meta = dist.metadata
                    name = meta["Name"]
                    if not name or canonical(name) in found:
                        continue  # the first on sys.path is the one Python imports
                    found[canonical(name)] = DistInfo(
                        name,
                        dist.version,
                        meta.get("Requires-Python"),
                        tuple(meta.get_all("Classifier") or ()),
                        tuple(dist.requires or ()),
                    )
                except Exception:  # one broken dist-info folder must not hide the others
                    continue
            self._packages = found
        return self._packages

    def cpu_flags(self) -> set[str] | None:
        """The CPU's feature flags as Linux names them (x86 `flags`, Arm `Features` in
        /proc/cpuinfo); on a Mac, `bf16` when sysctl reports FEAT_BF16. None where neither can be
        read (Windows, a locked-down container)."""
        if self.system == "Linux":
            try:
                text = Path("/proc/cpuinfo").read_text(encoding="utf-8", errors="replace")
            except OSError:
                return None
            for line in text.splitlines():
                name, _, value = line.partition(":")
                if name.strip() in ("flags", "Features"):
                    return set(value.split())
            return None
        if self.system == "Darwin":
            answer = self.run(["sysctl", "-n", "hw.optional.arm.FEAT_BF16"])
            return {"bf16"} if answer.returncode == 0 and answer.stdout.strip() == "1" else set()
        return None

    def requirements_text(self) -> str:
        return project_requirements(PYPROJECT.read_text(encoding="utf-8"))

    def which(self, name: str, path: str | None = None) -> str | None:
        return shutil.which(name, path=path if path is not None else self.env.get("PATH"))

    # -- outside commands ----------------------------------------------------------------------

    def run(self, argv: list[str], timeout: float = COMMAND_TIMEOUT_S, env: Mapping | None = None) -> CommandResult:
        try:
            done = subprocess.run(
                argv,
                stdin=subprocess.DEVNULL,
                capture_output=True,
                text=True,
                encoding="utf-8",
                errors="replace",
                timeout=timeout,
                env=dict(self.env if env is None else env),
            )
        except FileNotFoundError:
            return CommandResult(None, error="not found")
        except subprocess.TimeoutExpired:
            return CommandResult(None, error="timeout")
        except OSError as error:
            return CommandResult(None, error=one_line(error))
        return CommandResult(done.returncode, done.stdout, done.stderr)

    def nvidia_smi(self) -> CommandResult:
        command = self.which("nvidia-smi")
        wsl_copy = "/usr/lib/wsl/lib/nvidia-smi"  # WSL2 keeps it off the default PATH
        if command is None and self.is_wsl() and Path(wsl_copy).exists():
            command = wsl_copy
        if command is None:
            return CommandResult(None, error="not found")
        return self.run([command, *NVIDIA_SMI_QUERY], timeout=30)

    def own_tensorboard(self) -> str | None:
        return self.which("tensorboard", path=self.scripts_dir or "")

    def tensorboard_version(self) -> CommandResult:
        """Run this environment's `tensorboard --version`, with TensorFlow kept out of it.

        TensorBoard imports all of TensorFlow at start-up, even to print its version, which
        would double the doctor's run time. The tf.import row already checks TensorFlow, so a
        stand-in package that refuses to import hides it here; TensorBoard then starts in its
        reduced mode, which still proves that the command and its own packages work.
        """
        command = self.own_tensorboard()
        if command is None:
            return CommandResult(None, error="not found")
        with tempfile.TemporaryDirectory(prefix="test_stack-") as folder:
            stand_in = Path(folder) / "tensorflow"
            stand_in.mkdir()
            (stand_in / "__init__.py").write_text(
                "raise ImportError('hidden by scripts/test_stack.py while it runs tensorboard --version')\n"
            )
            env = dict(self.env)
            env["PYTHONPATH"] = os.pathsep.join(p for p in (folder, env.get("PYTHONPATH")) if p)
            return self.run([command, "--version"], env=env)

    def pip_check(self) -> CommandResult:
        return self.run([self.executable, "-m", "pip", "check", "--disable-pip-version-check"])

    def tf_probe(self, timeout: float) -> dict:
        """The TensorFlow child's report (see tensorflow_keras.run_tf_probe)."""
        env = dict(self.env)
        env["TF_CPP_MIN_LOG_LEVEL"] = "1"  # keep TF's warnings: they name missing CUDA libraries
        env["PYTHONIOENCODING"] = "utf-8"
        done = self.run([self.executable, str(ENTRY_SCRIPT), PROBE_FLAG], timeout=timeout, env=env)
        if done.error == "timeout":
            return {"timeout": True, "timeout_s": timeout}
        if done.error:
            return {"import_ok": False, "import_error": done.error}
        return parse_probe_output(done.returncode, done.stdout, done.stderr)

    # -- local resources -----------------------------------------------------------------------

    def port_is_free(self, port: int) -> bool:
        """Whether TensorBoard could bind `port` on localhost (IPv4, and IPv6 where it exists)."""
        for family, host in ((socket.AF_INET, "127.0.0.1"), (socket.AF_INET6, "::1")):
            try:
                sock = socket.socket(family, socket.SOCK_STREAM)
            except OSError:
                continue  # no IPv6 on this machine
            try:
                if os.name != "nt":  # as TensorBoard's server does; on Windows it would steal
                    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                sock.bind((host, port))
            except OSError as error:
                if family == socket.AF_INET6 and not _is_address_in_use(error):
                    continue
                return False
            finally:
                sock.close()
        return True

    def tensorboard_instances(self) -> tuple[list[dict], str | None]:
        """The TensorBoards running now, from tensorboard.manager (see running_tensorboards)."""
        return tensorboard_jupyter.running_tensorboards()

    def kernel_dirs(self) -> list[str] | None:
        """Where to look for kernelspecs; None: wherever Jupyter itself looks."""
        return None

    def kernel_specs(self) -> list[tensorboard_jupyter.KernelSpec] | None:
        return tensorboard_jupyter.list_kernel_specs(self.kernel_dirs())

    def dataset_sources(self) -> dict:
        """Used when the TensorFlow child could not report the datasets itself."""
        return probe_section(data.probe_datasets)

    def runs_dir_status(self) -> tuple[Path, str | None, bool]:
        """(runs root, why it is unusable or None, whether labkit is installed in this Python)."""
        runs, installed = repository_runs_rules()
        chosen = self.env.get("LAB_RUNS_DIR")
        try:
            root = runs.runs_root(chosen, "LAB_RUNS_DIR")
            runs.check_writable(root)
        except runs.LabError as error:  # a name too long to exist, an unwritable folder
            return Path(chosen or "runs"), str(error), installed
        return root, None, installed

    def download_problem(self, timeout: float = 8.0) -> str | None:
        """None when the Keras dataset server answers, else why not (only with --online)."""
        import urllib.request

        request = urllib.request.Request(data.DOWNLOAD_PROBE_URL, method="HEAD")
        try:
            with urllib.request.urlopen(request, timeout=timeout) as response:
                return None if response.status < 400 else f"HTTP {response.status}"
        except Exception as error:
            return one_line(error)


def _is_address_in_use(error: OSError) -> bool:
    return getattr(error, "errno", None) in (98, 48, 10048)  # EADDRINUSE: Linux, macOS, Windows


def repository_runs_rules():
    """labkit.runs, the one definition of where runs go and when that folder is usable.

    It needs only the standard library, so when labkit is not installed in this Python it is
    read straight from this repository, and removed from sys.modules again so that the checks
    after this one still see labkit as not installed. Returns (module, installed).
    """
    try:
        from labkit import runs

        return runs, True
    except ImportError:
        pass
    before = set(sys.modules)
    sys.path.insert(0, str(REPO_ROOT))
    try:
        from labkit import runs

        return runs, False
    finally:
        sys.path.remove(str(REPO_ROOT))
        for name in set(sys.modules) - before:
            if name == "labkit" or name.startswith("labkit."):
                del sys.modules[name]
