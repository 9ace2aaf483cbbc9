#!/usr/bin/env python3
"""Environment doctor for the course lab: the first thing to run, before any lesson.

    python scripts/test_stack.py                 # a table of checks, ending with a verdict
    python scripts/test_stack.py --json          # the same report for a machine to read
    python scripts/test_stack.py -q              # failures only, then the verdict
    python scripts/test_stack.py --require-gpu   # no usable GPU becomes a failure

Every check is one row: OK, WARN or FAIL, what was found, what the course requires, and a fix
when the row is not OK. Exit codes: 0 ready (warnings allowed), 1 a required check failed,
2 the command line was wrong. --strict counts warnings as failures.

The script itself needs only the standard library (`packaging` and `labkit` are used when they
are there), so it can diagnose an environment in which nothing is installed yet. TensorFlow is
imported once, in a child process with a timeout, so a broken or hanging TensorFlow becomes a
FAIL row instead of a crash; the other slow outside commands (nvidia-smi, tensorboard
--version, pip check) run at the same time.
"""

import sys

if sys.version_info < (3, 8):  # the rest of the file needs 3.8; say so instead of a SyntaxError
    sys.stdout.write(
        "FAIL  python  %s at %s; the course needs Python 3.10 or newer\n"
        "Verdict: NOT READY\n" % (sys.version.split()[0], sys.executable)
    )
    sys.exit(1)

import argparse
import concurrent.futures
import importlib.util
import json
import os
import platform
import re
import shlex
import shutil
import socket
import subprocess
import sysconfig
import tempfile
import textwrap
import threading
import time
import traceback
from dataclasses import dataclass
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path
from typing import Callable, Dict, List, Mapping, NamedTuple, Optional, Tuple

try:
    from packaging.requirements import InvalidRequirement, Requirement
    from packaging.specifiers import InvalidSpecifier, SpecifierSet
    from packaging.version import InvalidVersion, Version

    PACKAGING_PROBLEM = None
except Exception as _error:  # ImportError, or a half-installed packaging
    PACKAGING_PROBLEM = "%s: %s" % (type(_error).__name__, _error)

REPO_ROOT = Path(__file__).resolve().parents[1]
REQUIREMENTS = REPO_ROOT / "requirements.txt"
SCHEMA_VERSION = 1

OK, WARN, FAIL = "OK", "WARN", "FAIL"
STATUSES = (OK, WARN, FAIL)

# The packages the course uses directly, in the order a student should fix them.
COURSE_PACKAGES = ("tensorflow", "keras", "tensorboard", "numpy", "pandas", "matplotlib",
                   "notebook", "ipykernel", "scikit-learn", "pytest")
# TensorFlow ships under several names. Two of the first group in one environment overwrite
# each other's files; the second group are per-platform halves that the first ones pull in.
TF_MAIN_DISTRIBUTIONS = ("tensorflow", "tensorflow-cpu", "tensorflow-gpu", "tf-nightly",
                         "tf-nightly-cpu")
TF_PLATFORM_DISTRIBUTIONS = ("tensorflow-macos", "tensorflow-intel", "tensorflow-aarch64",
                             "tf-nightly-macos", "tf-nightly-intel")
TF_DISTRIBUTIONS = TF_MAIN_DISTRIBUTIONS + TF_PLATFORM_DISTRIBUTIONS

# Used only when TensorFlow is not installed yet, so its own metadata cannot say which Pythons
# it supports: the range of every release since the one Keras 3 arrived with.
KNOWN_TF_PYTHON_RANGES = (
    ("2.16", (3, 9), (3, 12)),
    ("2.17", (3, 9), (3, 12)),
    ("2.18", (3, 9), (3, 12)),
    ("2.19", (3, 9), (3, 12)),
    ("2.20", (3, 9), (3, 13)),
    ("2.21", (3, 10), (3, 13)),
)

TENSORBOARD_PORT = 6006
PROBE_FLAG = "--tf-probe"
PROBE_MARKER = "@@test_stack-probe@@"
DEFAULT_TF_TIMEOUT_S = 120.0
COMMAND_TIMEOUT_S = 60.0
NVIDIA_SMI_QUERY = ["--query-gpu=name,driver_version,memory.total", "--format=csv,noheader"]
DOWNLOAD_PROBE_URL = "https://storage.googleapis.com/tensorflow/tf-keras-datasets/mnist.npz"
KERNEL_NAME = "keras-course-lab"
INSTALL_EVERYTHING = "from the repository root, run: pip install -r requirements.txt"
BUG_HINT = ("this is a bug in scripts/test_stack.py; send the output of "
            "`python scripts/test_stack.py --json` to your instructor")

# Lines in TensorFlow's stderr that explain why it sees no GPU.
GPU_STDERR_CLUES = re.compile(
    r"Cannot dlopen|Could not load dynamic library|failed call to cuInit|driver version is "
    r"insufficient|no kernel image is available|Could not find cuda drivers"
)


@dataclass
class Check:
    id: str
    status: str
    found: str
    required: str
    hint: Optional[str] = None

    def to_json(self) -> dict:
        return {"id": self.id, "status": self.status, "found": self.found,
                "required": self.required, "hint": self.hint}


class CommandResult(NamedTuple):
    """What an outside command did. `error` is "not found", "timeout" or an OSError line."""

    returncode: Optional[int]
    stdout: str = ""
    stderr: str = ""
    error: Optional[str] = None

    @property
    def succeeded(self) -> bool:
        return self.error is None and self.returncode == 0

    def first_line(self) -> str:
        if self.error:
            return self.error
        for text in (self.stderr, self.stdout):
            lines = [line.strip() for line in text.splitlines() if line.strip()]
            if lines:
                return lines[-1] if text is self.stderr else lines[0]
        return "exit code %s" % self.returncode


class DistInfo(NamedTuple):
    name: str
    version: str
    requires_python: Optional[str] = None
    classifiers: Tuple[str, ...] = ()
    requires: Tuple[str, ...] = ()


def canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def one_line(error: BaseException) -> str:
    text = str(error).strip().splitlines()
    return "%s: %s" % (type(error).__name__, text[0]) if text else type(error).__name__


# ---------------------------------------------------------------------------------------------
# Versions. packaging does the comparing when it is installed; the fallback compares release
# numbers as integers, so 1.10 > 1.4 holds either way.


def _release(version: str) -> Optional[Tuple[int, ...]]:
    match = re.match(r"\s*v?(\d+(?:\.\d+)*)", version)
    return tuple(int(part) for part in match.group(1).split(".")) if match else None


def _padded(a: Tuple[int, ...], b: Tuple[int, ...]):
    width = max(len(a), len(b))
    return a + (0,) * (width - len(a)), b + (0,) * (width - len(b))


def _fallback_satisfies(version: str, specifier: str) -> Optional[bool]:
    have = _release(version)
    if have is None:
        return None
    for operator, wanted in re.findall(r"(~=|===|==|!=|<=|>=|<|>)\s*([^,\s]+)", specifier):
        if wanted.endswith(".*"):
            prefix = _release(wanted[:-2]) or ()
            same = have[:len(prefix)] == prefix
            if (operator == "==" and not same) or (operator == "!=" and same):
                return False
            continue
        want = _release(wanted)
        if want is None:
            return None
        a, b = _padded(have, want)
        if operator == "~=":
            if a < b or have[:max(len(want) - 1, 1)] != want[:max(len(want) - 1, 1)]:
                return False
            continue
        outcome = {"==": a == b, "===": a == b, "!=": a != b, "<=": a <= b, ">=": a >= b,
                   "<": a < b, ">": a > b}[operator]
        if not outcome:
            return False
    return True


def satisfies(version: str, specifier: str) -> Optional[bool]:
    """True/False, or None when `version` cannot be read as a version at all."""
    if not specifier:
        return True
    if PACKAGING_PROBLEM is None:
        try:
            # Pre-releases count: tf-nightly 2.22.0.dev2025 does satisfy tensorflow>=2.16.
            return SpecifierSet(specifier).contains(Version(version), prereleases=True)
        except (InvalidVersion, InvalidSpecifier):
            return None
    return _fallback_satisfies(version, specifier)


class RequirementLine(NamedTuple):
    name: str
    specifier: str


def parse_requirements(text: str) -> List[RequirementLine]:
    """The package lines of a requirements file; option lines (-e ., -r ...) are skipped."""
    found = []
    for raw in text.splitlines():
        line = re.sub(r"(^|\s)#.*$", "", raw).strip()
        if not line or line.startswith("-") or "://" in line or line.startswith((".", "/")):
            continue
        if PACKAGING_PROBLEM is None:
            try:
                requirement = Requirement(line)
            except InvalidRequirement:
                continue
            if requirement.marker is not None and not requirement.marker.evaluate():
                continue
            found.append(RequirementLine(canonical(requirement.name), str(requirement.specifier)))
            continue
        match = re.match(r"([A-Za-z0-9][A-Za-z0-9._-]*)\s*(?:\[[^\]]*\])?\s*([^;]*)", line)
        if match:
            found.append(RequirementLine(canonical(match.group(1)), match.group(2).replace(" ", "")))
    return found


def dependency_spec(dist: Optional[DistInfo], dependency: str) -> str:
    """The specifier `dist` declares for `dependency` (extras excluded), e.g. '>=1.26.0'."""
    for line in (dist.requires if dist else ()):
        if "extra ==" in line:
            continue
        match = re.match(r"\s*([A-Za-z0-9][A-Za-z0-9._-]*)\s*(?:\[[^\]]*\])?\s*\(?([^;)]*)", line)
        if match and canonical(match.group(1)) == dependency:
            return match.group(2).replace(" ", "")
    return ""


# ---------------------------------------------------------------------------------------------
# Everything that touches the machine goes through World, so that tests can replace one piece
# at a time (an nvidia-smi that finds a GPU, a TensorFlow child that fails to import, ...).


def _same_folder(a, b) -> bool:
    try:
        return os.path.realpath(str(a)) == os.path.realpath(str(b))
    except (OSError, ValueError):
        return False


class World:
    """The real machine."""

    def __init__(self, env: Optional[Mapping] = None):
        self.env = os.environ if env is None else env
        self.executable = sys.executable
        self.prefix = sys.prefix
        self.in_virtualenv = sys.prefix != getattr(sys, "base_prefix", sys.prefix)
        self.scripts_dir = sysconfig.get_path("scripts")
        self.system = platform.system()
        self._packages = None

    # -- facts about this interpreter and OS --------------------------------------------------

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

    def packages(self) -> Dict[str, DistInfo]:
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
                        name, dist.version, meta.get("Requires-Python"),
                        tuple(meta.get_all("Classifier") or ()), tuple(dist.requires or ()))
                except Exception:  # one broken dist-info folder must not hide the others
                    continue
            self._packages = found
        return self._packages

    def requirements_text(self) -> str:
        return REQUIREMENTS.read_text(encoding="utf-8")

    def which(self, name: str, path: Optional[str] = None) -> Optional[str]:
        return shutil.which(name, path=path if path is not None else self.env.get("PATH"))

    # -- outside commands ---------------------------------------------------------------------

    def run(self, argv: List[str], timeout: float = COMMAND_TIMEOUT_S,
            env: Optional[Mapping] = None) -> CommandResult:
        try:
            done = subprocess.run(argv, stdin=subprocess.DEVNULL, capture_output=True,
                                  text=True, encoding="utf-8", errors="replace",
                                  timeout=timeout, env=dict(self.env if env is None else env))
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
        if command is None and self.is_wsl() and os.path.exists(wsl_copy):
            command = wsl_copy
        if command is None:
            return CommandResult(None, error="not found")
        return self.run([command] + NVIDIA_SMI_QUERY, timeout=30)

    def own_tensorboard(self) -> Optional[str]:
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
                "raise ImportError('hidden by scripts/test_stack.py while it runs tensorboard --version')\n")
            env = dict(self.env)
            env["PYTHONPATH"] = os.pathsep.join(p for p in (folder, env.get("PYTHONPATH")) if p)
            return self.run([command, "--version"], env=env)

    def pip_check(self) -> CommandResult:
        return self.run([self.executable, "-m", "pip", "check", "--disable-pip-version-check"])

    def tf_probe(self, timeout: float) -> dict:
        env = dict(self.env)
        env["TF_CPP_MIN_LOG_LEVEL"] = "1"  # keep TF's warnings: they name missing CUDA libraries
        env["PYTHONIOENCODING"] = "utf-8"
        command = [self.executable, str(Path(__file__).resolve()), PROBE_FLAG]
        try:
            done = subprocess.run(command, stdin=subprocess.DEVNULL, capture_output=True,
                                  text=True, encoding="utf-8", errors="replace",
                                  timeout=timeout, env=env)
        except subprocess.TimeoutExpired:
            return {"timeout": True, "timeout_s": timeout}
        except OSError as error:
            return {"import_ok": False, "import_error": one_line(error)}
        return parse_probe_output(done.returncode, done.stdout, done.stderr)

    # -- local resources ----------------------------------------------------------------------

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

    def tensorboard_instances(self) -> List[dict]:
        """TensorBoards that recorded themselves in TensorBoard's own info folder."""
        folder = Path(tempfile.gettempdir()) / ".tensorboard-info"
        found = []
        for path in sorted(folder.glob("pid-*.info")) if folder.is_dir() else []:
            try:
                info = json.loads(path.read_text())
                if _pid_alive(int(info["pid"])):
                    found.append(info)
            except (OSError, ValueError, KeyError, TypeError):
                continue
        return found

    def kernel_dirs(self) -> List[Path]:
        """Where Jupyter looks for kernels, in its own order."""
        try:
            from jupyter_core.paths import jupyter_path

            return [Path(p) / "kernels" for p in jupyter_path()]
        except Exception:  # jupyter_core missing or broken: the documented default places
            pass
        env = self.env
        home = Path.home()
        places = [Path(p) for p in env.get("JUPYTER_PATH", "").split(os.pathsep) if p]
        if env.get("JUPYTER_DATA_DIR"):
            places.append(Path(env["JUPYTER_DATA_DIR"]))
        elif self.system == "Windows":
            places.append(Path(env.get("APPDATA", str(home))) / "jupyter")
        elif self.system == "Darwin":
            places.append(home / "Library" / "Jupyter")
        else:
            places.append(Path(env.get("XDG_DATA_HOME") or str(home / ".local" / "share")) / "jupyter")
        places.append(Path(self.prefix) / "share" / "jupyter")
        if self.system == "Windows":
            places.append(Path(env.get("PROGRAMDATA", "C:\\ProgramData")) / "jupyter")
        else:
            places += [Path("/usr/local/share/jupyter"), Path("/usr/share/jupyter")]
        return [place / "kernels" for place in places]

    def dataset_sources(self) -> dict:
        """Used when the TensorFlow child could not report the datasets itself."""
        return _probe_section(_probe_datasets)

    def runs_dir_status(self) -> Tuple[Path, Optional[str], bool]:
        """(runs root, why it is unusable or None, whether labkit is installed in this Python)."""
        runs, installed = repository_runs_rules()
        root = runs.runs_root(self.env.get("LAB_RUNS_DIR"))
        try:
            runs.check_writable(root)
        except runs.LabError as error:
            return root, str(error), installed
        return root, None, installed

    def download_problem(self, timeout: float = 8.0) -> Optional[str]:
        """None when the Keras dataset server answers, else why not (only with --online)."""
        import urllib.request

        request = urllib.request.Request(DOWNLOAD_PROBE_URL, method="HEAD")
        try:
            with urllib.request.urlopen(request, timeout=timeout) as response:
                return None if response.status < 400 else "HTTP %s" % response.status
        except Exception as error:
            return one_line(error)


def _is_address_in_use(error: OSError) -> bool:
    return getattr(error, "errno", None) in (98, 48, 10048)  # EADDRINUSE: Linux, macOS, Windows


def _pid_alive(pid: int) -> bool:
    if os.name == "nt":
        return True  # no cheap portable test; TensorBoard removes its file when it exits cleanly
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def repository_runs_rules():
    """labkit.runs, the one definition of where runs go and when that folder is usable.

    It needs only the standard library, so when labkit is not installed in this Python it is
    read straight from this repository, and removed from sys.modules again so that the checks
    after this one still see labkit as not installed. Returns (module, installed)."""
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


# ---------------------------------------------------------------------------------------------
# The TensorFlow child process. Everything that needs TensorFlow happens here, after a single
# import, and comes back to the parent as one JSON line.


def parse_probe_output(returncode: int, stdout: str, stderr: str) -> dict:
    for line in reversed(stdout.splitlines()):
        if line.startswith(PROBE_MARKER):
            try:
                probe = json.loads(line[len(PROBE_MARKER):])
                break
            except ValueError:
                continue
    else:
        # No report at all: the interpreter died inside the import (a signal, an abort).
        probe = {"import_ok": False, "import_error": _last_meaningful_line(stderr),
                 "import_traceback": stderr[-6000:]}
    probe["returncode"] = returncode
    probe["stderr_clues"] = [_strip_log_prefix(line) for line in stderr.splitlines()
                             if GPU_STDERR_CLUES.search(line)][:4]
    return probe


def _last_meaningful_line(text: str) -> Optional[str]:
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return lines[-1] if lines else None


def _strip_log_prefix(line: str) -> str:
    # "W0000 00:00:1712 123 file.cc:42] message" -> "message"
    return re.sub(r"^[IWEF]\d{4} [\d:.]+\s+\d+\s+\S+:\d+\]\s*", "", line.strip())


def _probe_section(function, *args) -> dict:
    try:
        return function(*args)
    except Exception as error:
        return {"error": one_line(error)}


def _probe_keras(tf) -> dict:
    keras_module = tf.keras
    section = {"module": getattr(keras_module, "__name__", None),
               "version": str(getattr(keras_module, "__version__", "") or "") or None}
    try:
        import keras

        config = getattr(keras, "config", None)
        section["backend"] = (config.backend() if config is not None and hasattr(config, "backend")
                              else keras.backend.backend())
    except Exception as error:
        section["backend_error"] = one_line(error)
    return section


def _probe_build(tf) -> dict:
    info = dict(tf.sysconfig.get_build_info()) if hasattr(tf.sysconfig, "get_build_info") else {}
    return {"built_with_cuda": bool(tf.test.is_built_with_cuda()),
            "cuda_version": info.get("cuda_version"), "cudnn_version": info.get("cudnn_version"),
            "is_rocm_build": bool(info.get("is_rocm_build", False))}


def _probe_gpus(tf) -> dict:
    devices = []
    for device in tf.config.list_physical_devices("GPU"):
        entry = {"name": device.name}
        try:
            details = tf.config.experimental.get_device_details(device)
            entry["device_name"] = details.get("device_name")
            capability = details.get("compute_capability")
            entry["compute_capability"] = list(capability) if capability else None
        except Exception:
            pass
        devices.append(entry)
    return {"devices": devices}


def _probe_smoke(tf, size: int = 1024, repeats: int = 10) -> dict:
    import numpy as np

    rng = np.random.default_rng(0)
    left = rng.standard_normal((size, size), dtype=np.float32)
    right = rng.standard_normal((size, size), dtype=np.float32)

    def timed(device: str):
        with tf.device(device):
            a, b = tf.constant(left), tf.constant(right)
            result = tf.matmul(a, b)
            result.numpy()  # warm-up: kernel selection and the first transfer are not timed
            started = time.perf_counter()
            for _ in range(repeats):
                result = tf.matmul(a, b)
            values = result.numpy()  # waits for the queued GPU work to finish
            return result.device, values, (time.perf_counter() - started) / repeats

    gpu_device, gpu_values, gpu_seconds = timed("/GPU:0")
    cpu_device, cpu_values, cpu_seconds = timed("/CPU:0")
    scale = float(np.abs(cpu_values).max()) or 1.0
    return {"size": size, "gpu_result_device": gpu_device, "cpu_result_device": cpu_device,
            "max_relative_difference": float(np.abs(gpu_values - cpu_values).max()) / scale,
            "gpu_seconds": gpu_seconds, "cpu_seconds": cpu_seconds}


def _probe_datasets() -> dict:
    from labkit import data

    return {"sources": data.offline_availability(), "hints": dict(getattr(data, "INSTALL_HINTS", {}))}


def run_tf_probe() -> dict:
    report = {"python": sys.executable}
    started = time.perf_counter()
    try:
        import tensorflow as tf
    except BaseException as error:  # SystemExit and friends from a broken build, too
        report.update(import_ok=False, import_error=one_line(error),
                      import_traceback=traceback.format_exc()[-6000:])
        return report
    report.update(import_ok=True, import_seconds=round(time.perf_counter() - started, 2),
                  tf_version=str(getattr(tf, "__version__", "unknown")),
                  tf_file=getattr(tf, "__file__", None))
    # The data check runs here, beside the GPU probing, because TensorFlow has just imported
    # numpy and scikit-learn, which the parent would otherwise spend seconds importing again.
    datasets = {}
    data_thread = threading.Thread(target=lambda: datasets.update(_probe_section(_probe_datasets)))
    data_thread.start()
    report["keras"] = _probe_section(_probe_keras, tf)
    report["build"] = _probe_section(_probe_build, tf)
    report["gpus"] = _probe_section(_probe_gpus, tf)
    data_thread.join()  # before the smoke test, whose CPU timing it would disturb
    report["datasets"] = datasets
    if report["gpus"].get("devices"):
        report["smoke"] = _probe_section(_probe_smoke, tf)
    return report


def probe_main() -> int:
    report = run_tf_probe()
    sys.stdout.write("\n" + PROBE_MARKER + json.dumps(report) + "\n")
    sys.stdout.flush()
    return 0


# ---------------------------------------------------------------------------------------------
# Checks. Each takes plain inputs and returns rows; none of them touches the machine itself.


def _tf_distributions(packages: Mapping[str, DistInfo]) -> List[DistInfo]:
    return [packages[name] for name in TF_DISTRIBUTIONS if name in packages]


def tensorflow_dist(packages: Mapping[str, DistInfo]) -> Optional[DistInfo]:
    found = _tf_distributions(packages)
    return found[0] if found else None


def check_python(version_info, executable: str, bits: int, in_virtualenv: bool,
                 packages: Mapping[str, DistInfo], tf_specifier: str) -> Check:
    version = ".".join(str(part) for part in version_info[:3])
    found = "%s, %d-bit, %s%s" % (version, bits, executable,
                                  "" if in_virtualenv else " (not a virtual environment)")
    minor = tuple(version_info[:2])
    tf = tensorflow_dist(packages)
    if tf is not None:
        lowest = _release((tf.requires_python or "").lstrip("><=~! ")) or (3, 0)
        listed = [_release(c.split("::")[-1].strip()) for c in tf.classifiers
                  if re.match(r"Programming Language :: Python :: 3\.\d+$", c)]
        highest = max((v for v in listed if v), default=None)
        label = "%s %s" % (tf.name, tf.version)
        declared_ok = satisfies(version, tf.requires_python or "")
    else:
        ranges = [(low, high) for release, low, high in KNOWN_TF_PYTHON_RANGES
                  if satisfies(release + ".0", tf_specifier) is not False]
        ranges = ranges or [(low, high) for _, low, high in KNOWN_TF_PYTHON_RANGES]
        lowest, highest = min(low for low, _ in ranges), max(high for _, high in ranges)
        label = "tensorflow%s" % (tf_specifier or "")
        declared_ok = lowest[:2] <= minor <= highest
    span = "%d.%d" % tuple(lowest[:2]) + (" to %d.%d" % highest if highest else " or newer")
    required = "%s, 64-bit (%s)" % (span, label)
    good = "%d.%d" % highest if highest else "%d.%d" % tuple(lowest[:2])
    recreate = ("install Python %s (python.org or your package manager) and recreate .venv with "
                "it: python%s -m venv .venv (Windows: py -%s -m venv .venv)" % (good, good, good))
    if bits != 64:
        return Check("python", FAIL, found, required,
                     "TensorFlow has 64-bit builds only: " + recreate)
    if declared_ok is False or minor < tuple(lowest[:2]):
        return Check("python", FAIL, found, required, recreate)
    if highest and minor > highest:
        return Check("python", WARN, found, required,
                     "this Python is newer than the ones TensorFlow lists; if anything breaks, "
                     + recreate)
    return Check("python", OK, found, required)


def check_packages(requirements: List[RequirementLine], packages: Mapping[str, DistInfo],
                   requirements_problem: Optional[str] = None) -> List[Check]:
    bounds = {req.name: req.specifier for req in requirements}
    names = list(COURSE_PACKAGES) + [name for name in bounds if name not in COURSE_PACKAGES]
    rows = []
    if requirements_problem:
        rows.append(Check("pkg.requirements", FAIL, requirements_problem,
                          "requirements.txt at the repository root",
                          "run this script from a complete copy of the course repository"))
    for name in names:
        specifier = bounds.get(name, "")
        if specifier:
            required = name + specifier
        elif name == "keras":
            required = "comes with tensorflow"
        else:
            required = "installed"
        install = ('pip install --upgrade "tensorflow%s" (it brings Keras 3)' % bounds.get("tensorflow", "")
                   if name == "keras" else 'pip install --upgrade "%s%s"' % (name, specifier))
        if name == "tensorflow":
            candidates = _tf_distributions(packages)
            dist = candidates[0] if candidates else None
        else:
            candidates, dist = [], packages.get(name)
        if dist is None:
            rows.append(Check("pkg." + name, FAIL, "not installed", required,
                              install.replace("--upgrade ", "")))
            continue
        label = dist.version if canonical(dist.name) == name else "%s %s" % (dist.name, dist.version)
        verdict = satisfies(dist.version, specifier)
        if verdict is None:
            rows.append(Check("pkg." + name, WARN, label + " (not a version number pip understands)",
                              required, install))
        elif not verdict:
            rows.append(Check("pkg." + name, FAIL, label + " (too old)" if _is_below(dist.version, specifier)
                              else label, required, install))
        else:
            clashing = [d for d in candidates if canonical(d.name) in TF_MAIN_DISTRIBUTIONS]
            if len(clashing) > 1:
                both = " and ".join("%s %s" % (d.name, d.version) for d in clashing)
                rows.append(Check("pkg." + name, WARN, both + " are both installed", required,
                                  "they overwrite each other's files; keep one: pip uninstall -y %s, then "
                                  'pip install "tensorflow%s"' % (" ".join(d.name for d in clashing), specifier)))
            else:
                rows.append(Check("pkg." + name, OK, label, required))
    # This script compares versions without packaging too, but the course itself needs it.
    listed = [row for row in rows if row.id == "pkg.packaging"]
    if PACKAGING_PROBLEM and not (listed and listed[0].status == FAIL):
        rows = [row for row in rows if row.id != "pkg.packaging"]
        rows.append(Check("pkg.packaging", FAIL, "installed but cannot be imported (%s)" % PACKAGING_PROBLEM,
                          "packaging" + bounds.get("packaging", ""),
                          'pip install --force-reinstall "packaging%s"' % bounds.get("packaging", "")))
    return rows


def _is_below(version: str, specifier: str) -> bool:
    lower_bounds = re.findall(r"(?:>=|>|~=|==)\s*([^,\s]+)", specifier)
    return any(satisfies(version, ">=" + bound.rstrip(".*")) is False for bound in lower_bounds)


# pip check lines: "X 1.0 requires Y, which is not installed." and
# "X 1.0 has requirement Y>=2, but you have Y 1.0."
_PIP_BROKEN = re.compile(
    r"^(?P<owner>\S+) \S+ (?:requires (?P<missing>[^,\s]+), which is not installed|"
    r"has requirement (?P<wanted>.+?), but you have (?P<have>\S+) (?P<have_version>\S+?))\.?$"
)


def check_pip(result: CommandResult, executable: str) -> Check:
    required = "no broken requirements"
    if result.error == "timeout":
        return Check("pip_check", WARN, "pip check did not finish within %d s" % COMMAND_TIMEOUT_S,
                     required, "run `python -m pip check` yourself to see the broken requirements")
    if result.error or "No module named pip" in result.stderr:
        return Check("pip_check", WARN, "pip is not available in this Python (%s)" % result.first_line(),
                     required, "%s -m ensurepip --upgrade" % _quote(executable))
    if result.returncode == 0:
        return Check("pip_check", OK, "no broken requirements", required)
    lines = [line.strip() for line in result.stdout.splitlines() if line.strip()]
    course = set(COURSE_PACKAGES) | set(TF_DISTRIBUTIONS)
    ours = [m for m in (_PIP_BROKEN.match(line) for line in lines) if m and canonical(m.group("owner")) in course]
    found = "%d broken: %s" % (len(lines), "; ".join(lines[:3]) + ("; ..." if len(lines) > 3 else ""))
    if not lines:
        return Check("pip_check", WARN, "pip check failed: " + result.first_line(), required,
                     "run `python -m pip check` yourself and read its message")
    if ours:
        first = ours[0]
        needed = first.group("missing") or first.group("wanted")
        return Check("pip_check", FAIL, found, required,
                     'a course package is missing what it needs: pip install "%s", then run this again' % needed)
    return Check("pip_check", WARN, found, required,
                 "only packages outside the course are affected; upgrade or uninstall them "
                 "(pip uninstall NAME) if you do not need them")


def check_labkit(spec_origin: Optional[str], problem: Optional[str] = None) -> Check:
    required = "importable from this repository"
    if spec_origin is None:
        return Check("labkit", FAIL, "labkit is not importable" + (" (%s)" % problem if problem else ""),
                     required, INSTALL_EVERYTHING + " (it installs labkit in editable mode)")
    location = Path(spec_origin).parent
    if not _same_folder(location, REPO_ROOT / "labkit"):
        return Check("labkit", WARN, "labkit comes from %s, not from this repository" % location,
                     required, "run `pip install -e .` in %s, so that edits here take effect" % REPO_ROOT)
    return Check("labkit", OK, "labkit from %s" % location, required)


def find_labkit() -> Tuple[Optional[str], Optional[str]]:
    try:
        spec = importlib.util.find_spec("labkit")
    except Exception as error:
        return None, one_line(error)
    return (spec.origin if spec and spec.origin else None), None


# -- TensorFlow import -----------------------------------------------------------------------

_LIBRARY_MISSING = (
    re.compile(r"(?P<lib>[\w.+-]+\.so(?:\.[\w.]+)?): cannot open shared object file"),
    re.compile(r"Library not loaded: (?P<lib>\S+)"),
    re.compile(r"DLL load failed(?: while importing (?P<lib>\w+))?"),
    re.compile(r"Could not find module '(?P<lib>[^']+)'"),
)
_WRONG_ARCHITECTURE = re.compile(
    r"wrong ELF class|incompatible architecture|not a valid Win32 application|"
    r"cannot execute binary file|have '(x86_64|arm64)', need|mach-o file, but is an incompatible"
)
_PROTOBUF = re.compile(r"Descriptors cannot be created directly|google\.protobuf|protobuf", re.I)
_NUMPY = re.compile(
    r"compiled using NumPy 1\.x cannot be run|numpy\.core\.multiarray failed to import|"
    r"_ARRAY_API not found|numpy\.dtype size changed|module compiled against (ABI|API) version|"
    r"No module named 'numpy"
)
_GLIBC = re.compile(r"(GLIBC\w*_[\d.]+)' not found")


def explain_import_failure(probe: dict, tf: Optional[DistInfo], system: str) -> Tuple[str, str]:
    """(the cause in one line, how to fix it) for a TensorFlow import that failed."""
    text = "\n".join(str(probe.get(key) or "") for key in ("import_error", "import_traceback"))
    summary = probe.get("import_error") or "the import failed with no message"
    returncode = probe.get("returncode")
    tf_pin = 'pip install --force-reinstall "tensorflow>=2.16"'
    if returncode in (-4, 132, 3221225501):  # SIGILL / Windows STATUS_ILLEGAL_INSTRUCTION
        return ("the process died with an illegal instruction: this CPU lacks the AVX "
                "instructions TensorFlow's wheels need",
                "use a newer computer, or a hosted notebook such as Google Colab")
    if returncode in (-11, 139, 3221225477):
        return ("the import crashed (segmentation fault)",
                "two packages probably disagree: run `pip check`, then " + tf_pin)
    if tf is None or re.search(r"No module named '?tensorflow'?$", summary):
        return ("TensorFlow is not installed in this Python", INSTALL_EVERYTHING)
    glibc = _GLIBC.search(text)
    if glibc:
        return ("the system C library is too old (%s not found)" % glibc.group(1),
                "TensorFlow needs a newer Linux (glibc 2.17+ for pip wheels): upgrade the OS, "
                "or use a container or WSL2 with a current Ubuntu")
    if _WRONG_ARCHITECTURE.search(text):
        return ("wrong architecture: this Python and the TensorFlow binaries are built for "
                "different CPUs (%s)" % summary,
                "install a native 64-bit Python for this machine (on Apple Silicon: not an x86_64 "
                "Python under Rosetta), recreate .venv with it, then " + INSTALL_EVERYTHING)
    for pattern in _LIBRARY_MISSING:
        match = pattern.search(text)
        if not match:
            continue
        library = match.groupdict().get("lib") or "a DLL"
        if system == "Windows" or "DLL load failed" in match.group(0):
            return ("a DLL is missing (%s)" % summary,
                    "install the Microsoft Visual C++ Redistributable 2015-2022 (x64) from "
                    "https://aka.ms/vs/17/release/vc_redist.x64.exe, then " + tf_pin)
        if re.search(r"cud|cublas|cufft|curand|cusolver|cusparse|nccl|nvrtc|nvjitlink", library, re.I):
            return ("missing shared library %s (a CUDA library)" % library,
                    'pip install "tensorflow[and-cuda]>=2.16" for the GPU, or '
                    'pip install "tensorflow-cpu>=2.16" to use the CPU only')
        return ("missing shared library %s" % library, tf_pin)
    if _NUMPY.search(text):
        spec = dependency_spec(tf, "numpy")
        return ("a NumPy clash: this TensorFlow was built against another NumPy (%s)" % summary,
                'pip install "numpy%s"' % spec if spec else 'pip install --upgrade "tensorflow>=2.16" numpy')
    if _PROTOBUF.search(text):
        spec = dependency_spec(tf, "protobuf")
        return ("a protobuf clash: another package installed a protobuf TensorFlow cannot use (%s)" % summary,
                'pip install "protobuf%s"' % spec if spec else tf_pin)
    return (summary, "read the full error with: python -c \"import tensorflow\"; if it names a "
            "package, reinstall that package; otherwise " + tf_pin)


def check_tf_import(probe: dict, packages: Mapping[str, DistInfo], system: str,
                    timeout: float) -> Check:
    required = "imports within %d s" % timeout
    if probe.get("timeout"):
        return Check("tf.import", FAIL, "the import did not finish within %d s" % probe.get("timeout_s", timeout),
                     required, "the first import after installing can be slow (antivirus scans): run "
                     "this again with --timeout 600; if it still hangs, watch `python -c \"import tensorflow\"`")
    if not probe.get("import_ok"):
        cause, hint = explain_import_failure(probe, tensorflow_dist(packages), system)
        return Check("tf.import", FAIL, "TensorFlow does not import: " + cause, required, hint)
    location = probe.get("tf_file") or ""
    found = "TensorFlow %s imported in %.1f s from %s" % (
        probe.get("tf_version"), probe.get("import_seconds") or 0.0, os.path.dirname(location))
    if location and not re.search(r"[\\/](site|dist)-packages[\\/]", location):
        return Check("tf.import", WARN, found, required,
                     "that is not the installed package: a file or folder named `tensorflow` next to "
                     "your code hides it; rename it")
    return Check("tf.import", OK, found, required)


# -- Keras -----------------------------------------------------------------------------------

LEGACY_KERAS_VALUES = ("1", "true", "True")  # the values TensorFlow itself treats as "on"


def check_keras(probe: dict, env: Mapping, packages: Mapping[str, DistInfo]) -> Check:
    legacy = env.get("TF_USE_LEGACY_KERAS")
    backend_env = env.get("KERAS_BACKEND")
    settings = "TF_USE_LEGACY_KERAS=%s, KERAS_BACKEND=%s" % (
        legacy if legacy is not None else "unset", backend_env if backend_env is not None else "unset")
    required = "Keras 3 as tf.keras, backend tensorflow"
    unset_legacy = ("unset TF_USE_LEGACY_KERAS (it asks for Keras 2; the course is written for "
                    "Keras 3): `unset TF_USE_LEGACY_KERAS`, Windows: `set TF_USE_LEGACY_KERAS=`")
    fix_backend = ("unset KERAS_BACKEND or set it to tensorflow, and make sure ~/.keras/keras.json "
                   "does not choose another backend")
    upgrade = 'pip install --upgrade "tensorflow>=2.16" (it brings Keras 3 as tf.keras)'
    legacy_on = legacy in LEGACY_KERAS_VALUES
    section = probe.get("keras") if probe.get("import_ok") else None

    if section is None:  # TensorFlow did not import: judge what can be judged without it
        dist = packages.get("keras")
        if dist is None:
            return Check("keras", FAIL, "Keras is not installed; " + settings, required, upgrade)
        major = (_release(dist.version) or (0,))[0]
        found = "Keras %s installed; tf.keras not checked because TensorFlow does not import; %s" % (
            dist.version, settings)
        if major < 3:
            return Check("keras", FAIL, found, required, upgrade)
        if legacy_on:
            return Check("keras", FAIL, found, required, unset_legacy)
        if backend_env and backend_env != "tensorflow":
            return Check("keras", FAIL, found, required, fix_backend)
        return Check("keras", WARN, found, required, "fix the tf.import row first")

    if section.get("error"):
        found = "tf.keras does not import (%s); %s" % (section["error"], settings)
        if legacy_on:
            return Check("keras", FAIL, found, required, unset_legacy)
        if backend_env and backend_env != "tensorflow":
            return Check("keras", FAIL, found, required, fix_backend)
        return Check("keras", FAIL, found, required, upgrade)

    version = section.get("version") or "unknown"
    major = (_release(version) or (0,))[0]
    backend = section.get("backend") or "unknown (%s)" % section.get("backend_error", "?")
    flavour = "Keras 3" if major >= 3 else "Keras 2" if major == 2 else "Keras of unknown major version"
    found = "%s (%s) as tf.keras from %s, backend %s; %s" % (
        flavour, version, section.get("module"), backend, settings)
    if legacy_on or major < 3:
        return Check("keras", FAIL, found, required, unset_legacy if legacy_on else upgrade)
    if backend != "tensorflow":
        return Check("keras", FAIL, found, required, fix_backend)
    return Check("keras", OK, found, required)


# -- TensorBoard ---------------------------------------------------------------------------


def activation_hint(prefix: str, in_virtualenv: bool, system: str, scripts_dir: str) -> str:
    if not in_virtualenv:
        return "add %s to PATH (or activate the environment this Python belongs to)" % scripts_dir
    if system == "Windows":
        return "activate the environment first: %s\\Scripts\\activate" % prefix
    return "activate the environment first: source %s/bin/activate" % _quote(prefix)


def check_tensorboard_command(own: Optional[str], on_path: Optional[str], version: CommandResult,
                              packages: Mapping[str, DistInfo], activate: str) -> Check:
    required = "this environment's, on PATH, runs"
    if own is None:
        if "tensorboard" in packages:
            return Check("tensorboard", FAIL, "the tensorboard package is installed but its command is missing",
                         required, 'pip install --force-reinstall "tensorboard>=2.16"')
        return Check("tensorboard", FAIL, "TensorBoard is not installed", required,
                     'pip install "tensorboard>=2.16"')
    if version.error == "not found":  # the file exists, so its interpreter line is broken
        return Check("tensorboard", FAIL, "%s cannot start (its Python is gone)" % own, required,
                     "the environment was moved or its Python removed: recreate .venv, then "
                     + INSTALL_EVERYTHING)
    if not version.succeeded:
        return Check("tensorboard", FAIL, "`tensorboard --version` failed: %s" % version.first_line(),
                     required, 'pip install --force-reinstall "tensorboard>=2.16"')
    number = _last_meaningful_line(version.stdout) or "?"
    if on_path is None:
        return Check("tensorboard", WARN, "tensorboard %s works at %s, but `tensorboard` is not on PATH"
                     % (number, own), required, activate)
    if not _same_folder(os.path.dirname(on_path), os.path.dirname(own)):
        return Check("tensorboard", WARN, "`tensorboard` on PATH is %s, from another environment; "
                     "this environment's is %s (%s)" % (on_path, own, number), required, activate)
    return Check("tensorboard", OK, "tensorboard %s at %s" % (number, on_path), required)


def check_port(port: int, is_free: bool, instances: List[dict]) -> Check:
    required = "port %d free" % port
    if is_free:
        return Check("tensorboard.port", OK, "port %d on localhost is free" % port, required)
    holder = next((info for info in instances if info.get("port") == port), None)
    found = "port %d on localhost is in use" % port
    stop = "Stop the old instance (Ctrl+C in its terminal)"
    if holder:
        found += " by TensorBoard pid %s (logdir %s)" % (holder.get("pid"), holder.get("logdir"))
        stop = "Stop the old instance (Ctrl+C in its terminal, or kill %s)" % holder.get("pid")
    hint = ("A new TensorBoard would quietly move to port %d or higher while http://localhost:%d "
            "keeps showing the old one. %s, or choose a port yourself: "
            "tensorboard --logdir runs --port %d" % (port + 1, port, stop, port + 1))
    return Check("tensorboard.port", WARN, found, required, hint)


def check_runs_dir(root: Path, problem: Optional[str], from_env: bool, labkit_installed: bool) -> Check:
    required = "a writable runs folder"
    source = " (from LAB_RUNS_DIR)" if from_env else ""
    if problem:
        hint = ("set LAB_RUNS_DIR to a folder you can write to, or unset it to use runs/ in the repository"
                if from_env else "make %s writable, or set LAB_RUNS_DIR to a folder you can write to" % root)
        return Check("runs_dir", FAIL, problem + source, required, hint)
    found = "%s is writable%s" % (root, source)
    if not labkit_installed:
        found += " (labkit's rules read from the repository: labkit is not installed here)"
    return Check("runs_dir", OK, found, required)


# -- Jupyter ------------------------------------------------------------------------------


def read_kernels(kernel_dirs: List[Path]) -> List[Tuple[str, Path, List[str]]]:
    """(name, folder, argv) of every kernelspec, the first of each name winning as in Jupyter."""
    seen, kernels = set(), []
    for folder in kernel_dirs:
        try:
            entries = sorted(folder.iterdir()) if folder.is_dir() else []
        except OSError:
            continue
        for entry in entries:
            name = entry.name.lower()
            if name in seen:
                continue
            try:
                spec = json.loads((entry / "kernel.json").read_text(encoding="utf-8"))
            except (OSError, ValueError):
                continue
            seen.add(name)
            kernels.append((entry.name, entry, [str(part) for part in spec.get("argv") or []]))
    return kernels


def kernel_uses_this_python(argv: List[str], folder: Path, executable: str, prefix: str) -> bool:
    if not argv:
        return False
    program = argv[0]
    if re.fullmatch(r"python(\d(\.\d+)?)?(\.exe)?", os.path.basename(program)) and not os.path.dirname(program):
        # Jupyter runs a bare "python" with its own interpreter, and only this environment's
        # Jupyter sees the kernels under this environment's prefix.
        return _is_inside(folder, Path(prefix))
    return _same_folder(os.path.dirname(program), os.path.dirname(executable))


def _is_inside(path: Path, parent: Path) -> bool:
    try:
        Path(os.path.realpath(str(path))).relative_to(os.path.realpath(str(parent)))
        return True
    except ValueError:
        return False


def check_jupyter_kernel(kernel_dirs: List[Path], executable: str, prefix: str,
                         has_ipykernel: bool) -> Check:
    required = "a kernel that runs this Python"
    kernels = read_kernels(kernel_dirs)
    ours = [name for name, folder, argv in kernels if kernel_uses_this_python(argv, folder, executable, prefix)]
    if ours:
        return Check("jupyter.kernel", OK, "kernel %s runs this Python" % ", ".join(ours), required)
    others = ", ".join(name for name, _, _ in kernels) or "none"
    install = '%s -m ipykernel install --user --name %s --display-name "Python (%s)"' % (
        _quote(executable), KERNEL_NAME, KERNEL_NAME)
    if not has_ipykernel:
        install = 'pip install "ipykernel>=6.25", then ' + install
    return Check("jupyter.kernel", WARN, "no kernel runs this Python (kernels found: %s)" % others,
                 required, install)


def _quote(path: str) -> str:
    if os.name == "nt":
        return subprocess.list2cmdline([path])
    return shlex.quote(path)


# -- Data ---------------------------------------------------------------------------------

DATASET_ROWS = (
    ("mnist", "on disk (else the digits substitute)"),
    ("fashion_mnist", "on disk (Lesson 2 trains on it)"),
    ("digits", "bundled with scikit-learn"),
)


def check_data(result: dict, download_problem: Optional[str], online: bool) -> List[Check]:
    """`result` is {"sources": ..., "hints": ...} from labkit.data, or {"error": ...}."""
    if result.get("error"):
        return [Check("data." + name, FAIL, "not checked: labkit.data does not import (%s)" % result["error"],
                      required, "fix the labkit and pkg rows first; " + INSTALL_EVERYTHING)
                for name, required in DATASET_ROWS]
    sources, hints = result.get("sources") or {}, result.get("hints") or {}
    rows = []
    for name, required in DATASET_ROWS:
        source = sources.get(name)
        if source:
            rows.append(Check("data." + name, OK, "available offline from " + source, required))
        elif name == "digits":
            rows.append(Check("data.digits", FAIL, "not available (scikit-learn is missing)", required,
                              'pip install "scikit-learn>=1.3"'))
        elif online and download_problem is None:
            rows.append(Check("data." + name, OK, "not on disk; Keras will download it on first use", required))
        else:
            rows.append(Check("data." + name, WARN, "not available offline", required,
                              hints.get(name) or "ask your instructor for the dataset files"))
    if online:
        required = "the Keras dataset server answers"
        if download_problem is None:
            rows.append(Check("data.download", OK, "reachable", required))
        else:
            rows.append(Check("data.download", WARN, "cannot reach it: " + download_problem, required,
                              "work offline: the rows above say which datasets are already here"))
    return rows


# -- GPU: six layers, stopping at the first that fails ------------------------------------

class GpuFacts(NamedTuple):
    nvidia_smi: CommandResult
    probe: dict
    cuda_wheels: List[str]
    metal: Optional[str]
    env: Mapping
    system: str
    wsl: bool
    require_gpu: bool


def parse_nvidia_smi(stdout: str) -> List[Dict[str, str]]:
    gpus = []
    for line in stdout.splitlines():
        parts = [part.strip() for part in line.split(",")]
        if len(parts) >= 3 and parts[0]:
            gpus.append({"name": parts[0], "driver": parts[1], "memory": parts[2]})
    return gpus


def visible_device_count(value: str, physical: int) -> Tuple[int, Optional[str]]:
    """How many GPUs CUDA_VISIBLE_DEVICES leaves visible, and the first bad entry if any.

    CUDA reads the list left to right and ignores everything from the first invalid entry on.
    """
    count = 0
    for entry in value.split(","):
        entry = entry.strip()
        if re.fullmatch(r"(GPU|MIG)-[\w-]+", entry):
            count += 1
            continue
        if not re.fullmatch(r"\d+", entry) or int(entry) >= physical:
            return count, entry
        count += 1
    return count, None


def diagnose_gpu(facts: GpuFacts) -> List[Check]:
    no_gpu = FAIL if facts.require_gpu else WARN
    optional = " (optional)" if not facts.require_gpu else " (--require-gpu)"
    rows = []
    probe = facts.probe or {}
    tf_ok = bool(probe.get("import_ok"))

    if facts.system == "Darwin":
        required = "tensorflow-metal matched to TF" + optional
        if not facts.metal:
            return [Check("gpu.metal", no_gpu, "tensorflow-metal is not installed", required,
                          "on an Apple Silicon Mac: pip install tensorflow-metal, choosing the release "
                          "Apple lists for your TensorFlow version; without it TensorFlow uses the CPU")]
        rows.append(Check("gpu.metal", OK, "tensorflow-metal %s" % facts.metal, required))
        smi_count = None
    else:
        # Layer 1: hardware and driver.
        required = "an NVIDIA GPU and driver" + optional
        smi = facts.nvidia_smi
        gpus = parse_nvidia_smi(smi.stdout) if smi.succeeded else []
        if smi.error == "not found" or (smi.succeeded and not gpus):
            if facts.wsl:
                hint = ("in WSL2 the NVIDIA driver is installed on the Windows side (the ordinary "
                        "Windows driver), never inside Linux; after that, nvidia-smi works here")
            elif facts.system == "Windows":
                hint = ("no NVIDIA driver found; the CPU is enough for this course. A GPU needs an "
                        "NVIDIA card and driver, and WSL2, because native Windows has no TensorFlow "
                        "GPU build after 2.10")
            else:
                hint = ("no NVIDIA GPU or driver found; the CPU is enough for this course. To use an "
                        "NVIDIA GPU, install its driver until `nvidia-smi` lists the card")
            return [Check("gpu.driver", no_gpu, "nvidia-smi not found or lists no GPU: no NVIDIA driver",
                          required, hint)]
        if not smi.succeeded:
            return [Check("gpu.driver", no_gpu, "nvidia-smi failed: %s" % smi.first_line(), required,
                          "the driver is installed but not working: reboot (needed after a driver or "
                          "kernel update), or reinstall the NVIDIA driver")]
        smi_count = len(gpus)
        listed = "; ".join("%s, driver %s, %s" % (g["name"], g["driver"], g["memory"]) for g in gpus)
        rows.append(Check("gpu.driver", OK, "%d GPU(s): %s" % (smi_count, listed), required))

        # Layer 2: a TensorFlow build with CUDA.
        required = "TensorFlow built with CUDA"
        build = probe.get("build") or {}
        if not tf_ok or build.get("error"):
            rows.append(Check("gpu.tf_build", no_gpu, "not checked: %s" % (
                build.get("error") or "TensorFlow does not import (see tf.import)"), required,
                "fix the tf.import row first"))
            return rows
        if not build.get("built_with_cuda"):
            if facts.system == "Windows":
                hint = ("native Windows has no TensorFlow GPU build after 2.10: install WSL2, and "
                        'pip install "tensorflow[and-cuda]>=2.16" inside it')
            else:
                hint = ('this is a CPU-only TensorFlow; for the GPU: pip uninstall -y tensorflow-cpu, '
                        'then pip install "tensorflow[and-cuda]>=2.16"')
            rows.append(Check("gpu.tf_build", no_gpu, "TensorFlow %s is built without CUDA" % probe.get("tf_version"),
                              required, hint))
            return rows
        rows.append(Check("gpu.tf_build", OK, "built with CUDA %s, cuDNN %s" % (
            build.get("cuda_version") or "?", build.get("cudnn_version") or "?"), required))

        # Layer 3: the CUDA libraries, from pip wheels (or the system, if TF found them there).
        required = "CUDA libraries TF can load"
        devices = (probe.get("gpus") or {}).get("devices") or []
        clues = [c for c in probe.get("stderr_clues") or [] if re.search(r"dlopen|dynamic library", c, re.I)]
        if clues and not devices:
            rows.append(Check("gpu.cuda_libs", no_gpu, "TensorFlow cannot load them: %s" % clues[0], required,
                              'pip install "tensorflow[and-cuda]>=2.16" (it installs matching CUDA libraries)'))
            return rows
        if not facts.cuda_wheels and not devices:
            rows.append(Check("gpu.cuda_libs", no_gpu, "no nvidia-* CUDA wheels installed", required,
                              'on Linux: pip install "tensorflow[and-cuda]>=2.16"'))
            return rows
        rows.append(Check("gpu.cuda_libs", OK, "%d nvidia-* wheels (%s)" % (
            len(facts.cuda_wheels), ", ".join(facts.cuda_wheels[:3]) + (", ..." if len(facts.cuda_wheels) > 3 else ""))
            if facts.cuda_wheels else "no nvidia-* wheels; TensorFlow loads the system's CUDA libraries", required))

    # Layer 4: CUDA_VISIBLE_DEVICES.
    required = "unset, or naming real GPUs"
    visible = facts.env.get("CUDA_VISIBLE_DEVICES")
    expected = smi_count
    if visible is not None and facts.system != "Darwin":
        fix = ("unset CUDA_VISIBLE_DEVICES (`unset CUDA_VISIBLE_DEVICES`, Windows: `set CUDA_VISIBLE_DEVICES=`),"
               " or list GPU indexes from 0 to %d" % (max(smi_count - 1, 0)))
        if visible.strip() in ("", "-1"):
            rows.append(Check("gpu.visible_devices", no_gpu,
                              "CUDA_VISIBLE_DEVICES=%r hides every GPU from TensorFlow" % visible, required, fix))
            return rows
        expected, bad = visible_device_count(visible, smi_count)
        if bad is not None:
            status = no_gpu if expected == 0 else WARN
            rows.append(Check("gpu.visible_devices", status, "CUDA_VISIBLE_DEVICES=%r: %r is not a GPU here, so "
                              "it and everything after it are ignored" % (visible, bad), required, fix))
            if expected == 0:
                return rows
        else:
            rows.append(Check("gpu.visible_devices", OK, "CUDA_VISIBLE_DEVICES=%r" % visible, required))
    elif facts.system != "Darwin":
        rows.append(Check("gpu.visible_devices", OK, "CUDA_VISIBLE_DEVICES unset: every GPU is visible", required))

    # Layer 5: what TensorFlow lists, against what nvidia-smi counted.
    required = "TensorFlow lists the GPU(s)"
    gpus_section = probe.get("gpus") or {}
    if not tf_ok or gpus_section.get("error"):
        rows.append(Check("gpu.tf_devices", no_gpu, "not checked: %s" % (
            gpus_section.get("error") or "TensorFlow does not import (see tf.import)"), required,
            "fix the tf.import row first"))
        return rows
    devices = gpus_section.get("devices") or []
    names = ", ".join("%s (%s)" % (d.get("name", "?").replace("/physical_device:", ""), d.get("device_name") or "?")
                      for d in devices)
    if not devices:
        clue = (probe.get("stderr_clues") or [None])[0]
        build = probe.get("build") or {}
        hint = ("nvidia-smi sees the card but TensorFlow does not: the driver may be too old for CUDA %s "
                "(update it), or the GPU too old for this build. Look for the first error in: "
                "TF_CPP_MIN_LOG_LEVEL=0 python -c \"import tensorflow as tf; "
                "print(tf.config.list_physical_devices('GPU'))\"" % (build.get("cuda_version") or "?"))
        found = "TensorFlow lists no GPU" + (" (TensorFlow says: %s)" % clue if clue else "")
        if expected is not None:
            found = "nvidia-smi lists %d GPU(s) but TensorFlow lists none" % (smi_count or 0) + (
                " (TensorFlow says: %s)" % clue if clue else "")
        rows.append(Check("gpu.tf_devices", no_gpu, found, required, hint))
        return rows
    if expected is not None and len(devices) < expected:
        rows.append(Check("gpu.tf_devices", WARN, "TensorFlow lists %d of the %d visible GPU(s): %s"
                          % (len(devices), expected, names), required,
                          "a GPU may be older than this TensorFlow build supports; the listed ones work"))
    else:
        rows.append(Check("gpu.tf_devices", OK, "%d GPU(s): %s" % (len(devices), names), required))

    # Layer 6: a matmul pinned to /GPU:0, checked against the CPU and timed.
    required = "a matmul on /GPU:0 matches the CPU"
    smoke = probe.get("smoke") or {"error": "the probe ran no smoke test"}
    # Failures here are FAIL even without --require-gpu: TensorFlow places work on a listed GPU
    # by default, so a GPU that cannot compute breaks every activity.
    use_cpu = ("until it is fixed, hide the GPU and train on the CPU: CUDA_VISIBLE_DEVICES=-1 "
               "(Windows: set CUDA_VISIBLE_DEVICES=-1)")
    if smoke.get("error"):
        rows.append(Check("gpu.smoke", FAIL, "the matmul on /GPU:0 failed: %s" % smoke["error"], required,
                          "update the GPU driver (it must support the CUDA this TensorFlow uses); " + use_cpu))
        return rows
    device = smoke.get("gpu_result_device") or ""
    if not re.search(r"GPU:0$", device):
        rows.append(Check("gpu.smoke", FAIL, "the matmul pinned to /GPU:0 ran on %s" % (device or "an unknown device"),
                          required, "TensorFlow cannot place work on the GPU; " + use_cpu))
        return rows
    difference = float(smoke.get("max_relative_difference", 1.0))
    # TensorFloat-32, on by default on Ampere and newer, gives about 1e-3 relative error.
    if difference > 1e-2:
        rows.append(Check("gpu.smoke", FAIL, "the GPU result differs from the CPU by %.2g (relative)" % difference,
                          required, "the GPU computes wrong results: update the driver; " + use_cpu))
        return rows
    gpu_ms, cpu_ms = 1000 * float(smoke.get("gpu_seconds", 0)), 1000 * float(smoke.get("cpu_seconds", 0))
    speedup = cpu_ms / gpu_ms if gpu_ms > 0 else float("inf")
    rows.append(Check("gpu.smoke", OK, "%dx%d matmul ran on %s and matches the CPU (difference %.1g); "
                      "GPU %.2f ms, CPU %.2f ms: %.1fx speed-up" % (
                          smoke.get("size", 0), smoke.get("size", 0), device.split("device:")[-1],
                          difference, gpu_ms, cpu_ms, speedup), required))
    return rows


# ---------------------------------------------------------------------------------------------
# Running every check


class Options(NamedTuple):
    json: bool = False
    quiet: bool = False
    color: Optional[bool] = None
    strict: bool = False
    require_gpu: bool = False
    online: bool = False
    timeout: float = DEFAULT_TF_TIMEOUT_S


def guarded(check_id: str, function: Callable, *args) -> List[Check]:
    """Run one check; an unexpected exception becomes a FAIL row instead of a crash."""
    try:
        result = function(*args)
    except Exception as error:
        return [Check(check_id, FAIL, "the check itself failed: %s" % one_line(error), "-", BUG_HINT)]
    return result if isinstance(result, list) else [result]


class _Failed:
    """Stands in for the result of a background task that raised."""

    def __init__(self, error: BaseException):
        self.error = error


def _value(results: dict, key: str):
    value = results[key]
    if isinstance(value, _Failed):
        raise value.error
    return value


def gather(world: World, options: Options) -> dict:
    """Start the slow work at once: the TensorFlow child and the outside commands overlap."""
    tasks = {
        "probe": lambda: world.tf_probe(options.timeout),
        "nvidia_smi": world.nvidia_smi,
        "tensorboard_version": world.tensorboard_version,
        "pip_check": world.pip_check,
    }
    if options.online:
        tasks["download"] = world.download_problem
    results = {}
    with concurrent.futures.ThreadPoolExecutor(max_workers=len(tasks)) as pool:
        futures = {key: pool.submit(task) for key, task in tasks.items()}
        try:
            results["packages"] = world.packages()  # meanwhile, in this thread
        except Exception as error:
            results["packages"] = _Failed(error)
        for key, future in futures.items():
            try:
                results[key] = future.result()
            except Exception as error:
                results[key] = _Failed(error)
    if "download" not in results:
        results["download"] = None
    return results


def run_checks(world: World, options: Options) -> List[Check]:
    results = gather(world, options)
    packages = results["packages"] if not isinstance(results["packages"], _Failed) else {}
    env = world.env
    rows: List[Check] = []

    requirements, requirements_problem = [], None
    try:
        requirements = parse_requirements(world.requirements_text())
    except OSError as error:
        requirements_problem = "cannot read requirements.txt (%s)" % one_line(error)
    tf_specifier = next((r.specifier for r in requirements if r.name == "tensorflow"), "")

    def probe() -> dict:
        return _value(results, "probe")

    rows += guarded("python", lambda: check_python(
        sys.version_info, world.executable, pointer_bits(), world.in_virtualenv,
        _value(results, "packages"), tf_specifier))
    rows += guarded("pkg", lambda: check_packages(requirements, _value(results, "packages"), requirements_problem))
    rows += guarded("pip_check", lambda: check_pip(_value(results, "pip_check"), world.executable))
    rows += guarded("labkit", lambda: check_labkit(*find_labkit()))
    rows += guarded("tf.import", lambda: check_tf_import(probe(), packages, world.system, options.timeout))
    rows += guarded("keras", lambda: check_keras(probe(), env, packages))
    activate = activation_hint(world.prefix, world.in_virtualenv, world.system, world.scripts_dir)
    rows += guarded("tensorboard", lambda: check_tensorboard_command(
        world.own_tensorboard(), world.which("tensorboard"), _value(results, "tensorboard_version"),
        packages, activate))
    rows += guarded("tensorboard.port", lambda: check_port(
        TENSORBOARD_PORT, world.port_is_free(TENSORBOARD_PORT), world.tensorboard_instances()))

    def runs_row() -> Check:
        root, problem, labkit_installed = world.runs_dir_status()
        return check_runs_dir(root, problem, bool(env.get("LAB_RUNS_DIR")), labkit_installed)

    rows += guarded("runs_dir", runs_row)
    rows += guarded("jupyter.kernel", lambda: check_jupyter_kernel(
        world.kernel_dirs(), world.executable, world.prefix, "ipykernel" in packages))

    def data_rows() -> List[Check]:
        reported = probe().get("datasets") if not isinstance(results["probe"], _Failed) else None
        return check_data(reported or world.dataset_sources(), _value(results, "download"), options.online)

    rows += guarded("data", data_rows)

    def gpu_rows() -> List[Check]:
        wheels = sorted("%s %s" % (d.name, d.version) for key, d in packages.items() if key.startswith("nvidia-"))
        metal = packages.get("tensorflow-metal")
        return diagnose_gpu(GpuFacts(_value(results, "nvidia_smi"), probe(), wheels,
                                     metal.version if metal else None, env, world.system,
                                     world.is_wsl(), options.require_gpu))

    rows += guarded("gpu", gpu_rows)
    return rows


def pointer_bits() -> int:
    """64 on a 64-bit Python, the only kind TensorFlow is built for."""
    import struct

    return 8 * struct.calcsize("P")


def counts_as_failure(check: Check, strict: bool) -> bool:
    return check.status == FAIL or (strict and check.status == WARN)


def exit_code(rows: List[Check], strict: bool) -> int:
    return 1 if any(counts_as_failure(row, strict) for row in rows) else 0


def verdict_line(rows: List[Check], strict: bool) -> str:
    failed = [row.id for row in rows if row.status == FAIL]
    warned = [row.id for row in rows if row.status == WARN]
    if strict and warned:
        failed, warned = failed + warned, []
    if failed:
        packages = [row.id for row in rows if row.id.startswith("pkg.") and row.status == FAIL]
        advice = ("Several packages are missing or too old; one command installs them all: "
                  + INSTALL_EVERYTHING + ". Then run this again." if len(packages) > 1 else
                  "Fix the rows marked above from the top, then run this again.")
        return "Verdict: NOT READY. %d check(s) failed%s: %s. %s" % (
            len(failed), " (--strict counts warnings)" if strict else "", ", ".join(failed), advice)
    if warned:
        return ("Verdict: READY, with %d warning(s): %s. The course runs; the warnings say what "
                "you are missing." % (len(warned), ", ".join(warned)))
    return "Verdict: READY. Every check passed."


# ---------------------------------------------------------------------------------------------
# Output

COLORS = {OK: "\033[32m", WARN: "\033[33m", FAIL: "\033[31m"}
RESET, BOLD = "\033[0m", "\033[1m"


def use_color(option: Optional[bool], stream, env: Mapping, system: str) -> bool:
    if option is False or env.get("NO_COLOR") or env.get("TERM") == "dumb":
        return False
    if not getattr(stream, "isatty", lambda: False)():
        return False
    if system == "Windows":  # old consoles print escape codes literally
        return bool(env.get("WT_SESSION") or env.get("TERM_PROGRAM") or env.get("ANSICON"))
    return True


def render_table(rows: List[Check], color: bool, quiet: bool, strict: bool, width: int = 100) -> str:
    shown = [row for row in rows if counts_as_failure(row, strict)] if quiet else rows
    id_width = max([len("CHECK")] + [len(row.id) for row in shown])
    flexible = max(width - 6 - id_width - 4, 40)
    required_width = min(max([len("REQUIRED")] + [len(row.required) for row in shown]), 30, flexible // 3)
    found_width = flexible - required_width
    lines = []

    def paint(text: str, status: str) -> str:
        return COLORS[status] + text + RESET if color else text

    if shown:
        lines.append("%-4s  %-*s  %-*s  %s" % ("", id_width, "CHECK", found_width, "FOUND", "REQUIRED"))
    for row in shown:
        # Paths must stay whole, to be copied: a word wider than its column overflows onto the
        # REQUIRED column, which then continues on the next line.
        found = textwrap.wrap(row.found, found_width, break_on_hyphens=False, break_long_words=False) or [""]
        required = textwrap.wrap(row.required, required_width, break_on_hyphens=False,
                                 break_long_words=False) or [""]
        first = True
        while found or required:
            left = found.pop(0) if found else ""
            right = required.pop(0) if required and len(left) <= found_width else ""
            status = paint("%-4s" % row.status, row.status) if first else "    "
            lines.append(("%s  %-*s  %-*s  %s" % (status, id_width, row.id if first else "",
                                                 found_width, left, right)).rstrip())
            first = False
        if row.hint and row.status != OK:
            indent = " " * (6 + id_width + 2)
            lines += textwrap.wrap("fix: " + row.hint, width, initial_indent=indent,
                                   subsequent_indent=indent + "     ", break_on_hyphens=False)
    if lines:
        lines.append("")
    verdict = "\n".join(textwrap.wrap(verdict_line(rows, strict), width, break_on_hyphens=False))
    lines.append(BOLD + verdict + RESET if color else verdict)
    return "\n".join(lines) + "\n"


def json_report(rows: List[Check], world: World, options: Options, code: int) -> dict:
    return {
        "schema_version": SCHEMA_VERSION,
        "tool": "scripts/test_stack.py",
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "platform": world.platform_info(),
        "options": {"strict": options.strict, "require_gpu": options.require_gpu, "online": options.online},
        "checks": [row.to_json() for row in rows],
        "summary": {status: sum(row.status == status for row in rows) for status in STATUSES},
        "verdict": "ready" if code == 0 else "not ready",
        "exit_code": code,
    }


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="test_stack.py",
        description="Check that this Python can run the course: packages, TensorFlow, Keras, "
                    "TensorBoard, Jupyter, data and GPU. Exit 0 ready, 1 a check failed, 2 usage error.")
    parser.add_argument("--json", action="store_true", help="print a machine-readable report instead of the table")
    parser.add_argument("-q", "--quiet", action="store_true", help="print failed checks only, then the verdict")
    parser.add_argument("--no-color", dest="color", action="store_const", const=False, default=None,
                        help="no colours (NO_COLOR=1 does the same)")
    parser.add_argument("--strict", action="store_true", help="count warnings as failures")
    parser.add_argument("--require-gpu", action="store_true", help="fail when no GPU is usable")
    parser.add_argument("--online", action="store_true",
                        help="also check that the Keras dataset server can be reached (the only network use)")
    parser.add_argument("--timeout", type=_positive_seconds, default=DEFAULT_TF_TIMEOUT_S,
                        help="seconds allowed for the TensorFlow import and GPU checks (default %(default)s)")
    return parser


def _positive_seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError("%r is not a number of seconds" % text)
    if value <= 0:
        raise argparse.ArgumentTypeError("the timeout must be above 0 seconds")
    return value


def main(argv: Optional[List[str]] = None, world: Optional[World] = None, stdout=None) -> int:
    stdout = stdout or sys.stdout
    try:
        args = build_parser().parse_args(argv)
    except SystemExit as stop:  # argparse has printed the usage message already
        return 2 if stop.code else 0
    options = Options(json=args.json, quiet=args.quiet, color=args.color, strict=args.strict,
                      require_gpu=args.require_gpu, online=args.online, timeout=args.timeout)
    world = world or World()
    rows = run_checks(world, options)
    code = exit_code(rows, options.strict)
    if options.json:
        stdout.write(json.dumps(json_report(rows, world, options, code), indent=2) + "\n")
    else:
        color = use_color(options.color, stdout, world.env, world.system)
        width = max(shutil.get_terminal_size((100, 24)).columns, 80)
        stdout.write(render_table(rows, color, options.quiet, options.strict, width))
    stdout.flush()
    return code


def entry_point() -> int:
    if PROBE_FLAG in sys.argv[1:]:
        return probe_main()
    try:  # a path or package name the console cannot encode must not end the run
        sys.stdout.reconfigure(errors="replace")
    except (AttributeError, ValueError):
        pass
    try:
        return main()
    except KeyboardInterrupt:
        print("\nVerdict: NOT READY. The checks were interrupted before they finished.")
        return 1
    except Exception as error:  # the last line of defence: still end with a verdict
        print("FAIL  test_stack  %s\n      fix: %s" % (one_line(error), BUG_HINT))
        print("Verdict: NOT READY. The environment check itself failed.")
        return 1


if __name__ == "__main__":
    sys.exit(entry_point())
