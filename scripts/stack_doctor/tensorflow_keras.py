"""TensorFlow and Keras: the child process that imports TensorFlow, and the rows it feeds.

TensorFlow is imported once, in a child process (`test_stack.py --tf-probe`) with a time limit,
so a TensorFlow that crashes the interpreter or hangs becomes a FAIL row instead of taking the
doctor down. Everything that needs TensorFlow happens in that child after the one import, and
comes back to the parent as one JSON line after PROBE_MARKER.
"""

from __future__ import annotations

import json
import re
import sys
import threading
import time
import traceback
from collections.abc import Mapping
from pathlib import Path

from . import data, gpu, gpu_probe
from .core import (
    FAIL,
    INSTALL_EVERYTHING,
    OK,
    WARN,
    Check,
    DistInfo,
    first_rule,
    last_meaningful_line,
    one_line,
    probe_section,
)
from .python_packages import dependency_spec, tensorflow_dist

PROBE_FLAG = "--tf-probe"
PROBE_MARKER = "@@test_stack-probe@@"
DEFAULT_TF_TIMEOUT_S = 120.0
REINSTALL_TF = 'pip install --force-reinstall "tensorflow>=2.16"'


# -- the child process ---------------------------------------------------------------------------


def probe_keras(tf) -> dict:
    keras_module = tf.keras
    section = {
        "module": getattr(keras_module, "__name__", None),
        "version": str(getattr(keras_module, "__version__", "") or "") or None,
    }
    try:
        import keras

        config = getattr(keras, "config", None)
        section["backend"] = (
            config.backend() if config is not None and hasattr(config, "backend") else keras.backend.backend()
        )
    except Exception as error:
        section["backend_error"] = one_line(error)
    return section


def run_tf_probe() -> dict:
    report = {"python": sys.executable}
    started = time.perf_counter()
    try:
        import tensorflow as tf
    except BaseException as error:  # SystemExit and friends from a broken build, too
        report.update(import_ok=False, import_error=one_line(error), import_traceback=traceback.format_exc()[-6000:])
        return report
    report.update(
        import_ok=True,
        import_seconds=round(time.perf_counter() - started, 2),
        tf_version=str(getattr(tf, "__version__", "unknown")),
        tf_file=getattr(tf, "__file__", None),
    )
    # The data check runs here, beside the GPU probing, because TensorFlow has just imported
    # numpy and scikit-learn, which the parent would otherwise spend seconds importing again.
    datasets = {}
    data_thread = threading.Thread(target=lambda: datasets.update(probe_section(data.probe_datasets)))
    data_thread.start()
    report["keras"] = probe_section(probe_keras, tf)
    report["build"] = probe_section(gpu_probe.probe_build, tf)
    report["gpus"] = probe_section(gpu_probe.probe_gpus, tf)
    data_thread.join()  # before the smoke test, whose CPU timing it would disturb
    report["datasets"] = datasets
    if report["gpus"].get("devices"):
        report["smoke"] = probe_section(gpu_probe.probe_smoke, tf)
    return report


def probe_main() -> int:
    report = run_tf_probe()
    sys.stdout.write("\n" + PROBE_MARKER + json.dumps(report) + "\n")
    sys.stdout.flush()
    return 0


def parse_probe_output(returncode: int, stdout: str, stderr: str) -> dict:
    """The child's report, with its exit status and the stderr lines that explain a missing GPU."""
    for line in reversed(stdout.splitlines()):
        if line.startswith(PROBE_MARKER):
            try:
                probe = json.loads(line[len(PROBE_MARKER) :])
                break
            except ValueError:
                continue
    else:
        # No report at all: the interpreter died inside the import (a signal, an abort).
        probe = {"import_ok": False, "import_error": last_meaningful_line(stderr), "import_traceback": stderr[-6000:]}
    probe["returncode"] = returncode
    probe["stderr_clues"] = gpu.stderr_clues(stderr)
    return probe


# -- why the import failed -------------------------------------------------------------------

# (pattern, cause, fix), tried in order against a few lines of facts followed by the error and
# its traceback (see _failure_text). Causes and fixes are templates: {lib} and {glibc} come from
# the pattern's groups; {summary}, {numpy}, {protobuf} from the failure itself.
CUDA_LIBRARY = r"lib(?:cud|cublas|cufft|curand|cusolver|cusparse|nccl|nvrtc|nvjitlink)[\w.+-]*"
IMPORT_FAILURE_RULES = tuple(
    (re.compile(pattern, re.M), cause, fix)
    for pattern, cause, fix in (
        (
            r"^exit status: (-4|132|3221225501)$",  # SIGILL, and Windows' STATUS_ILLEGAL_INSTRUCTION
            "the process died with an illegal instruction: this CPU lacks the AVX instructions TensorFlow's "
            "wheels need",
            "use a newer computer, or a hosted notebook such as Google Colab",
        ),
        (
            r"^exit status: (-11|139|3221225477)$",  # SIGSEGV, and Windows' STATUS_ACCESS_VIOLATION
            "the import crashed (segmentation fault)",
            "two packages probably disagree: run `pip check`, then " + REINSTALL_TF,
        ),
        (
            r"^installed: none$|No module named '?tensorflow'?$",
            "TensorFlow is not installed in this Python",
            INSTALL_EVERYTHING,
        ),
        (
            r"(?P<glibc>GLIBC\w*_[\d.]+)' not found",
            "the system C library is too old ({glibc} not found)",
            "TensorFlow needs a newer Linux (glibc 2.17+ for pip wheels): upgrade the OS, or use a container "
            "or WSL2 with a current Ubuntu",
        ),
        (
            r"wrong ELF class|incompatible architecture|not a valid Win32 application|cannot execute binary "
            r"file|have '(x86_64|arm64)', need|mach-o file, but is an incompatible",
            "wrong architecture: this Python and the TensorFlow binaries are built for different CPUs ({summary})",
            "install a native 64-bit Python for this machine (on Apple Silicon: not an x86_64 Python under "
            "Rosetta), recreate .venv with it, then " + INSTALL_EVERYTHING,
        ),
        (
            r"DLL load failed|Could not find module '",
            "a DLL is missing ({summary})",
            "install the Microsoft Visual C++ Redistributable 2015-2022 (x64) from "
            "https://aka.ms/vs/17/release/vc_redist.x64.exe, then " + REINSTALL_TF,
        ),
        (
            r"(?P<lib>" + CUDA_LIBRARY + r"\.so(?:\.[\w.]+)?): cannot open shared object file|"
            r"Library not loaded: \S*?(?P<dylib>" + CUDA_LIBRARY + r")",
            "missing shared library {lib} (a CUDA library)",
            'pip install "tensorflow[and-cuda]>=2.16" for the GPU, or pip install "tensorflow-cpu>=2.16" to use '
            "the CPU only",
        ),
        (
            r"(?P<lib>[\w.+-]+\.so(?:\.[\w.]+)?): cannot open shared object file|Library not loaded: (?P<dylib>\S+)",
            "missing shared library {lib}",
            REINSTALL_TF,
        ),
        (
            r"compiled using NumPy 1\.x cannot be run|numpy\.core\.multiarray failed to import|_ARRAY_API not "
            r"found|numpy\.dtype size changed|module compiled against (ABI|API) version|No module named 'numpy",
            "a NumPy clash: this TensorFlow was built against another NumPy ({summary})",
            "{numpy}",
        ),
        (
            r"(?i)Descriptors cannot be created directly|google\.protobuf|protobuf",
            "a protobuf clash: another package installed a protobuf TensorFlow cannot use ({summary})",
            "{protobuf}",
        ),
        (
            r"",  # matches anything: the last resort
            "{summary}",
            'read the full error with: python -c "import tensorflow"; if it names a package, '
            "reinstall that package; otherwise " + REINSTALL_TF,
        ),
    )
)


def _failure_text(probe: dict, tf: DistInfo | None) -> str:
    """What the rules read: the child's exit status, whether TensorFlow is installed, the error."""
    return "\n".join(
        [
            f"exit status: {probe.get('returncode')}",
            "installed: " + (f"{tf.name} {tf.version}" if tf else "none"),
            str(probe.get("import_error") or ""),
            str(probe.get("import_traceback") or ""),
        ]
    )


def explain_import_failure(probe: dict, tf: DistInfo | None) -> tuple[str, str]:
    """(the cause in one line, how to fix it) for a TensorFlow import that failed."""
    match, cause, fix = first_rule(IMPORT_FAILURE_RULES, _failure_text(probe, tf))
    numpy, protobuf = dependency_spec(tf, "numpy"), dependency_spec(tf, "protobuf")
    groups = {key: value for key, value in match.groupdict().items() if value}
    values = {
        "summary": probe.get("import_error") or "the import failed with no message",
        "lib": groups.get("lib") or groups.get("dylib") or "",
        "glibc": groups.get("glibc", ""),
        "numpy": f'pip install "numpy{numpy}"' if numpy else 'pip install --upgrade "tensorflow>=2.16" numpy',
        "protobuf": f'pip install "protobuf{protobuf}"' if protobuf else REINSTALL_TF,
    }
    return cause.format(**values), fix.format(**values)


def check_tf_import(probe: dict, packages: Mapping[str, DistInfo], timeout: float) -> Check:
    required = f"imports within {timeout:.0f} s"
    if probe.get("timeout"):
        return Check(
            "tf.import",
            FAIL,
            f"the import did not finish within {probe.get('timeout_s', timeout):.0f} s",
            required,
            "the first import after installing can be slow (antivirus scans): run this "
            'again with --timeout 600; if it still hangs, watch `python -c "import tensorflow"`',
        )
    if not probe.get("import_ok"):
        cause, hint = explain_import_failure(probe, tensorflow_dist(packages))
        return Check("tf.import", FAIL, "TensorFlow does not import: " + cause, required, hint)
    location = probe.get("tf_file") or ""
    found = (
        f"TensorFlow {probe.get('tf_version')} imported in {probe.get('import_seconds') or 0.0:.1f} s "
        f"from {Path(location).parent}"
    )
    if location and not re.search(r"[\\/](site|dist)-packages[\\/]", location):
        return Check(
            "tf.import",
            WARN,
            found,
            required,
            "that is not the installed package: a file or folder named `tensorflow` next to "
            "your code hides it; rename it",
        )
    return Check("tf.import", OK, found, required)


# -- Keras ---------------------------------------------------------------------------------------

LEGACY_KERAS_VALUES = ("1", "true", "True")  # the values TensorFlow itself treats as "on"
UNSET_LEGACY = (
    "unset TF_USE_LEGACY_KERAS (it asks for Keras 2; the course is written for Keras 3): "
    "`unset TF_USE_LEGACY_KERAS`, Windows: `set TF_USE_LEGACY_KERAS=`"
)
FIX_BACKEND = (
    "unset KERAS_BACKEND or set it to tensorflow, and make sure ~/.keras/keras.json does not choose another backend"
)
UPGRADE_KERAS = 'pip install --upgrade "tensorflow>=2.16" (it brings Keras 3 as tf.keras)'


def major_version(version: str | None) -> int:
    """The leading number of a version, 0 when there is none: all a Keras 2-or-3 question needs."""
    match = re.match(r"\s*v?(\d+)", version or "")
    return int(match.group(1)) if match else 0


def _settings_fix(env: Mapping) -> str | None:
    """The fix for an environment variable that steers Keras away from the course's setup."""
    if env.get("TF_USE_LEGACY_KERAS") in LEGACY_KERAS_VALUES:
        return UNSET_LEGACY
    if env.get("KERAS_BACKEND") not in (None, "", "tensorflow"):
        return FIX_BACKEND
    return None


def check_keras(probe: dict, env: Mapping, packages: Mapping[str, DistInfo]) -> Check:
    settings = ", ".join(
        f"{name}={'unset' if env.get(name) is None else env.get(name)}"
        for name in ("TF_USE_LEGACY_KERAS", "KERAS_BACKEND")
    )
    legacy_on = env.get("TF_USE_LEGACY_KERAS") in LEGACY_KERAS_VALUES
    required = "Keras 3 as tf.keras, backend tensorflow"
    settings_fix = _settings_fix(env)
    section = probe.get("keras") if probe.get("import_ok") else None

    if section is None:  # TensorFlow did not import: judge what can be judged without it
        dist = packages.get("keras")
        if dist is None:
            return Check("keras", FAIL, "Keras is not installed; " + settings, required, UPGRADE_KERAS)
        found = f"Keras {dist.version} installed; tf.keras not checked because TensorFlow does not import; {settings}"
        if major_version(dist.version) < 3:
            return Check("keras", FAIL, found, required, UPGRADE_KERAS)
        if settings_fix:
            return Check("keras", FAIL, found, required, settings_fix)
        return Check("keras", WARN, found, required, "fix the tf.import row first")

    if section.get("error"):
        found = f"tf.keras does not import ({section['error']}); {settings}"
        return Check("keras", FAIL, found, required, settings_fix or UPGRADE_KERAS)

    version = section.get("version") or "unknown"
    major = major_version(version)
    backend = section.get("backend") or f"unknown ({section.get('backend_error', '?')})"
    flavour = "Keras 3" if major >= 3 else "Keras 2" if major == 2 else "Keras of unknown major version"
    found = f"{flavour} ({version}) as tf.keras from {section.get('module')}, backend {backend}; {settings}"
    if legacy_on or major < 3:
        return Check("keras", FAIL, found, required, UNSET_LEGACY if legacy_on else UPGRADE_KERAS)
    if backend != "tensorflow":
        return Check("keras", FAIL, found, required, FIX_BACKEND)
    return Check("keras", OK, found, required)
