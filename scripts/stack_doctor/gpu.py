"""The GPU diagnosis: layer by layer, from the driver to a matmul on the GPU.

Each layer is a function that returns its row and whether the next layer can be judged; a
small loop walks them and stops at the first that cannot go on, so a student sees the lowest
broken layer and its fix, not six rows that all say "no GPU". What a layer learns from a
message (nvidia-smi's complaint, a line TensorFlow wrote to stderr) comes from tables of
(pattern, cause, fix). What the TensorFlow child
process measures of the GPU is in gpu_probe.py.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import NamedTuple

from .core import FAIL, OK, WARN, Check, CommandResult, first_rule

NVIDIA_SMI_QUERY = ["--query-gpu=name,driver_version,memory.total", "--format=csv,noheader"]
AND_CUDA = 'pip install "tensorflow[and-cuda]>=2.16"'
FIRST_ERROR = (
    "TF_CPP_MIN_LOG_LEVEL=0 python -c \"import tensorflow as tf; print(tf.config.list_physical_devices('GPU'))\""
)
USE_CPU = (
    "until it is fixed, hide the GPU and train on the CPU: CUDA_VISIBLE_DEVICES=-1 "
    "(Windows: set CUDA_VISIBLE_DEVICES=-1)"
)

# Lines TensorFlow writes to stderr when it cannot use the GPU: (pattern, cause, fix). The
# library lines indict the CUDA libraries layer; the others explain an empty device list.
CUDA_LIBRARY_CLUES = (
    (
        re.compile(r"Cannot dlopen|Could not load dynamic library"),
        "TensorFlow cannot load them",
        AND_CUDA + " (it installs matching CUDA libraries)",
    ),
)
DEVICE_CLUES = (
    (
        re.compile(r"driver version is insufficient"),
        "the driver is too old for this TensorFlow's CUDA",
        "update the NVIDIA driver (it must support CUDA {cuda}), then run this again",
    ),
    (
        re.compile(r"no kernel image is available"),
        "the GPU is older than this TensorFlow build supports",
        "the CPU is enough for this course: " + USE_CPU,
    ),
    (
        re.compile(r"failed call to cuInit|Could not find cuda drivers"),
        "CUDA did not start",
        "nvidia-smi sees the card but TensorFlow does not: the driver may be too old for CUDA {cuda} "
        "(update it), or the GPU too old for this build. Look for the first error in: " + FIRST_ERROR,
    ),
)
GPU_STDERR_CLUES = CUDA_LIBRARY_CLUES + DEVICE_CLUES

# What a failing nvidia-smi says, and what to do about it: (pattern, cause, fix).
NVIDIA_SMI_FAILURES = (
    (
        re.compile(r"Driver/library version mismatch"),
        "the driver and its libraries differ",
        "a driver update finishes only after a reboot: reboot, then run this again",
    ),
    (
        re.compile(r"No devices were found"),
        "the driver sees no GPU",
        "check that the card is seated and powered (on a cloud machine: that a GPU is attached)",
    ),
    (
        re.compile(r""),
        "the driver does not answer",
        "the driver is installed but not working: reboot (needed after a driver or kernel update), "
        "or reinstall the NVIDIA driver",
    ),
)

# Where the driver comes from, by platform, for a machine on which nvidia-smi finds nothing.
NO_DRIVER_HINTS = {
    "wsl": (
        "in WSL2 the NVIDIA driver is installed on the Windows side (the ordinary Windows driver), "
        "never inside Linux; after that, nvidia-smi works here"
    ),
    "Windows": (
        "no NVIDIA driver found; the CPU is enough for this course. A GPU needs an NVIDIA card and "
        "driver, and WSL2, because native Windows has no TensorFlow GPU build after 2.10"
    ),
    "other": (
        "no NVIDIA GPU or driver found; the CPU is enough for this course. To use an NVIDIA GPU, "
        "install its driver until `nvidia-smi` lists the card"
    ),
}


class GpuFacts(NamedTuple):
    nvidia_smi: CommandResult
    probe: dict
    cuda_wheels: list[str]
    metal: str | None
    env: Mapping
    system: str
    wsl: bool
    require_gpu: bool

    @property
    def no_gpu(self) -> str:
        """The status of a layer that shows the GPU cannot be used: fatal only with --require-gpu."""
        return FAIL if self.require_gpu else WARN

    @property
    def optional(self) -> str:
        return " (--require-gpu)" if self.require_gpu else " (optional)"

    @property
    def tensorflow_problem(self) -> str | None:
        return None if self.probe.get("import_ok") else "TensorFlow does not import (see tf.import)"


def stderr_clues(stderr: str) -> list[str]:
    """The lines of TensorFlow's stderr that explain a missing GPU, without the log prefix."""
    lines = [line for line in stderr.splitlines() if any(p.search(line) for p, _, _ in GPU_STDERR_CLUES)]
    # "W0000 00:00:1712 123 file.cc:42] message" -> "message"
    return [re.sub(r"^[IWEF]\d{4} [\d:.]+\s+\d+\s+\S+:\d+\]\s*", "", line.strip()) for line in lines][:4]


def parse_nvidia_smi(stdout: str) -> list[dict[str, str]]:
    gpus = []
    for line in stdout.splitlines():
        parts = [part.strip() for part in line.split(",")]
        if len(parts) >= 3 and parts[0]:
            gpus.append({"name": parts[0], "driver": parts[1], "memory": parts[2]})
    return gpus


def visible_device_count(value: str, physical: int) -> tuple[int, str | None]:
    """How many GPUs CUDA_VISIBLE_DEVICES leaves visible, and the first bad entry if any.

    CUDA reads the list left to right and ignores everything from the first invalid entry on.
    """
    count = 0
    for entry in (part.strip() for part in value.split(",")):
        if not re.fullmatch(r"(GPU|MIG)-[\w-]+", entry) and (not entry.isdigit() or int(entry) >= physical):
            return count, entry
        count += 1
    return count, None


def _explained_clue(probe: dict, rules) -> tuple[str, str, str] | None:
    """(line, cause, fix) for the first stderr line of the probe that one of `rules` explains."""
    for line in probe.get("stderr_clues") or []:
        found = first_rule(rules, line)
        if found:
            return line, found[1], found[2]
    return None


def _not_checked(check_id: str, facts: GpuFacts, section: dict, required: str) -> Check:
    """The row of a layer that needs a part of TensorFlow's report that is missing."""
    problem = facts.tensorflow_problem or section.get("error")
    return Check(check_id, facts.no_gpu, "not checked: " + problem, required, "fix the tf.import row first")


# -- the layers: each returns (its row, whether the next layer can be judged) -------------------


def _metal_layer(facts: GpuFacts, seen: dict):
    required = "tensorflow-metal matched to TF" + facts.optional
    if not facts.metal:
        return Check(
            "gpu.metal",
            facts.no_gpu,
            "tensorflow-metal is not installed",
            required,
            "on an Apple Silicon Mac: pip install tensorflow-metal, choosing the release Apple "
            "lists for your TensorFlow version; without it TensorFlow uses the CPU",
        ), False
    return Check("gpu.metal", OK, f"tensorflow-metal {facts.metal}", required), True


def _driver_layer(facts: GpuFacts, seen: dict):
    required = "an NVIDIA GPU and driver" + facts.optional
    smi = facts.nvidia_smi
    gpus = parse_nvidia_smi(smi.stdout) if smi.succeeded else []
    if smi.error == "not found" or (smi.succeeded and not gpus):
        hint = NO_DRIVER_HINTS["wsl" if facts.wsl else facts.system if facts.system == "Windows" else "other"]
        return Check(
            "gpu.driver", facts.no_gpu, "nvidia-smi not found or lists no GPU: no NVIDIA driver", required, hint
        ), False
    if not smi.succeeded:
        _, _, fix = first_rule(NVIDIA_SMI_FAILURES, smi.stdout + smi.stderr + (smi.error or ""))
        return Check("gpu.driver", facts.no_gpu, f"nvidia-smi failed: {smi.first_line()}", required, fix), False
    seen["smi_count"] = len(gpus)
    listed = "; ".join(f"{g['name']}, driver {g['driver']}, {g['memory']}" for g in gpus)
    return Check("gpu.driver", OK, f"{len(gpus)} GPU(s): {listed}", required), True


def _tf_build_layer(facts: GpuFacts, seen: dict):
    required = "TensorFlow built with CUDA"
    build = facts.probe.get("build") or {}
    if facts.tensorflow_problem or build.get("error"):
        return _not_checked("gpu.tf_build", facts, build, required), False
    if not build.get("built_with_cuda"):
        hint = (
            f"native Windows has no TensorFlow GPU build after 2.10: install WSL2, and {AND_CUDA} inside it"
            if facts.system == "Windows"
            else f"this is a CPU-only TensorFlow; for the GPU: pip uninstall -y tensorflow-cpu, then {AND_CUDA}"
        )
        return Check(
            "gpu.tf_build",
            facts.no_gpu,
            f"TensorFlow {facts.probe.get('tf_version')} is built without CUDA",
            required,
            hint,
        ), False
    return Check(
        "gpu.tf_build",
        OK,
        f"built with CUDA {build.get('cuda_version') or '?'}, cuDNN {build.get('cudnn_version') or '?'}",
        required,
    ), True


def _cuda_libs_layer(facts: GpuFacts, seen: dict):
    """The CUDA libraries, from pip wheels (or the system's, if TensorFlow found them there)."""
    required = "CUDA libraries TF can load"
    devices = (facts.probe.get("gpus") or {}).get("devices") or []
    failure = _explained_clue(facts.probe, CUDA_LIBRARY_CLUES)
    if failure and not devices:
        line, cause, fix = failure
        return Check("gpu.cuda_libs", facts.no_gpu, f"{cause}: {line}", required, fix), False
    wheels = facts.cuda_wheels
    if not wheels and not devices:
        return Check(
            "gpu.cuda_libs", facts.no_gpu, "no nvidia-* CUDA wheels installed", required, "on Linux: " + AND_CUDA
        ), False
    found = (
        f"{len(wheels)} nvidia-* wheels (" + ", ".join(wheels[:3]) + (", ...)" if len(wheels) > 3 else ")")
        if wheels
        else "no nvidia-* wheels; TensorFlow loads the system's CUDA libraries"
    )
    return Check("gpu.cuda_libs", OK, found, required), True


def _visible_devices_layer(facts: GpuFacts, seen: dict):
    required = "unset, or naming real GPUs"
    visible = facts.env.get("CUDA_VISIBLE_DEVICES")
    physical = seen.get("smi_count", 0)
    seen["expected"] = physical
    if visible is None:
        return Check("gpu.visible_devices", OK, "CUDA_VISIBLE_DEVICES unset: every GPU is visible", required), True
    fix = (
        "unset CUDA_VISIBLE_DEVICES (`unset CUDA_VISIBLE_DEVICES`, Windows: `set CUDA_VISIBLE_DEVICES=`), "
        f"or list GPU indexes from 0 to {max(physical - 1, 0)}"
    )
    if visible.strip() in ("", "-1"):
        return Check(
            "gpu.visible_devices",
            facts.no_gpu,
            f"CUDA_VISIBLE_DEVICES={visible!r} hides every GPU from TensorFlow",
            required,
            fix,
        ), False
    seen["expected"], bad = visible_device_count(visible, physical)
    if bad is None:
        return Check("gpu.visible_devices", OK, f"CUDA_VISIBLE_DEVICES={visible!r}", required), True
    some_left = seen["expected"] > 0
    return Check(
        "gpu.visible_devices",
        WARN if some_left else facts.no_gpu,
        f"CUDA_VISIBLE_DEVICES={visible!r}: {bad!r} is not a GPU here, so it and everything after it are ignored",
        required,
        fix,
    ), some_left


def _tf_devices_layer(facts: GpuFacts, seen: dict):
    required = "TensorFlow lists the GPU(s)"
    section = facts.probe.get("gpus") or {}
    if facts.tensorflow_problem or section.get("error"):
        return _not_checked("gpu.tf_devices", facts, section, required), False
    devices = section.get("devices") or []
    expected = seen.get("expected")
    if not devices:
        clues = facts.probe.get("stderr_clues") or []
        line, cause, fix = _explained_clue(facts.probe, DEVICE_CLUES) or (
            clues[0] if clues else None,
            None,
            DEVICE_CLUES[-1][2],
        )
        found = (
            "TensorFlow lists no GPU"
            if expected is None
            else f"nvidia-smi lists {seen.get('smi_count', 0)} GPU(s) but TensorFlow lists none"
        )
        found += (": " + cause if cause else "") + (f" (TensorFlow says: {line})" if line else "")
        cuda = (facts.probe.get("build") or {}).get("cuda_version") or "?"
        return Check("gpu.tf_devices", facts.no_gpu, found, required, fix.format(cuda=cuda)), False
    names = ", ".join(
        f"{d.get('name', '?').replace('/physical_device:', '')} ({d.get('device_name') or '?'})" for d in devices
    )
    if expected is not None and len(devices) < expected:
        return Check(
            "gpu.tf_devices",
            WARN,
            f"TensorFlow lists {len(devices)} of the {expected} visible GPU(s): {names}",
            required,
            "a GPU may be older than this TensorFlow build supports; the listed ones work",
        ), True
    return Check("gpu.tf_devices", OK, f"{len(devices)} GPU(s): {names}", required), True


def _smoke_layer(facts: GpuFacts, seen: dict):
    """A matmul pinned to /GPU:0, checked against the CPU and timed.

    Its failures are FAIL even without --require-gpu: TensorFlow places work on a listed GPU
    by default, so a GPU that cannot compute breaks every activity.
    """
    required = "a matmul on /GPU:0 matches the CPU"
    smoke = facts.probe.get("smoke") or {"error": "the probe ran no smoke test"}
    if smoke.get("error"):
        return Check(
            "gpu.smoke",
            FAIL,
            f"the matmul on /GPU:0 failed: {smoke['error']}",
            required,
            "update the GPU driver (it must support the CUDA this TensorFlow uses); " + USE_CPU,
        ), False
    device = smoke.get("gpu_result_device") or ""
    if not re.search(r"GPU:0$", device):
        return Check(
            "gpu.smoke",
            FAIL,
            "the matmul pinned to /GPU:0 ran on " + (device or "an unknown device"),
            required,
            "TensorFlow cannot place work on the GPU; " + USE_CPU,
        ), False
    difference = float(smoke.get("max_relative_difference", 1.0))
    if difference > 1e-2:  # TensorFloat-32, on by default on Ampere and newer, gives about 1e-3
        return Check(
            "gpu.smoke",
            FAIL,
            f"the GPU result differs from the CPU by {difference:.2g} (relative)",
            required,
            "the GPU computes wrong results: update the driver; " + USE_CPU,
        ), False
    gpu_ms, cpu_ms = 1000 * float(smoke.get("gpu_seconds", 0)), 1000 * float(smoke.get("cpu_seconds", 0))
    speedup = cpu_ms / gpu_ms if gpu_ms > 0 else float("inf")
    size = smoke.get("size", 0)
    return Check(
        "gpu.smoke",
        OK,
        f"{size}x{size} matmul ran on {device.split('device:')[-1]} and matches the "
        f"CPU (difference {difference:.1g}); GPU {gpu_ms:.2f} ms, CPU {cpu_ms:.2f} ms: "
        f"{speedup:.1f}x speed-up",
        required,
    ), True


NVIDIA_LAYERS = (
    _driver_layer,
    _tf_build_layer,
    _cuda_libs_layer,
    _visible_devices_layer,
    _tf_devices_layer,
    _smoke_layer,
)
METAL_LAYERS = (_metal_layer, _tf_devices_layer, _smoke_layer)


def diagnose_gpu(facts: GpuFacts) -> list[Check]:
    facts = facts._replace(probe=facts.probe or {})
    seen = {}  # what a layer learnt that a later one needs: the GPU count, the visible count
    rows = []
    for layer in METAL_LAYERS if facts.system == "Darwin" else NVIDIA_LAYERS:
        row, go_on = layer(facts, seen)
        rows.append(row)
        if not go_on:
            break
    return rows
