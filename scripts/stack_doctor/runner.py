"""The command line: gather the facts, run every check, print the table or the JSON, exit.

The slow work starts at once and overlaps: the TensorFlow child, nvidia-smi, `tensorboard
--version`, `pip check` and the kernelspec listing run in background threads while this one
reads the installed packages. Every check runs inside `guarded`, so a check that crashes is
one FAIL row, and the report still ends with a verdict.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import json
import shutil
import struct
import sys
from collections.abc import Callable
from typing import NamedTuple

from . import cpu, data, gpu, python_packages, report, tensorboard_jupyter, tensorflow_keras
from .core import BUG_HINT, FAIL, Check, one_line
from .world import World


class Options(NamedTuple):
    json: bool = False
    quiet: bool = False
    color: bool | None = None
    strict: bool = False
    require_gpu: bool = False
    online: bool = False
    timeout: float = tensorflow_keras.DEFAULT_TF_TIMEOUT_S


def guarded(check_id: str, function: Callable, *args) -> list[Check]:
    """Run one check; an unexpected exception becomes a FAIL row instead of a crash."""
    try:
        result = function(*args)
    except Exception as error:
        return [Check(check_id, FAIL, f"the check itself failed: {one_line(error)}", "-", BUG_HINT)]
    return result if isinstance(result, list) else [result]


class Facts:
    """The results of the background tasks; reading one that raised raises its exception again."""

    def __init__(self, results: dict):
        self._results = results

    def __getitem__(self, key: str):
        value = self._results[key]
        if isinstance(value, BaseException):
            raise value
        return value

    def get(self, key: str, default=None):
        value = self._results.get(key, default)
        return default if isinstance(value, BaseException) else value


def gather(world: World, options: Options) -> Facts:
    """Start the slow work at once: the TensorFlow child and the outside commands overlap."""
    tasks = {
        "probe": lambda: world.tf_probe(options.timeout),
        "nvidia_smi": world.nvidia_smi,
        "tensorboard_version": world.tensorboard_version,
        "pip_check": world.pip_check,
        "kernel_specs": world.kernel_specs,
    }
    if options.online:
        tasks["download"] = world.download_problem
    results = {"download": None}
    with concurrent.futures.ThreadPoolExecutor(max_workers=len(tasks)) as pool:
        futures = {key: pool.submit(task) for key, task in tasks.items()}
        try:
            results["packages"] = world.packages()  # meanwhile, in this thread
        except Exception as error:
            results["packages"] = error
        for key, future in futures.items():
            try:
                results[key] = future.result()
            except Exception as error:
                results[key] = error
    return Facts(results)


def pointer_bits() -> int:
    """64 on a 64-bit Python, the only kind TensorFlow is built for."""
    return 8 * struct.calcsize("P")


def run_checks(world: World, options: Options) -> list[Check]:
    facts = gather(world, options)
    packages = facts.get("packages", {})
    env = world.env

    requirements, requirements_problem = [], None
    try:
        requirements = python_packages.parse_requirements(world.requirements_text())
    except (OSError, ValueError) as error:  # unreadable, not TOML, or no TOML reader in this Python
        requirements_problem = f"cannot read pyproject.toml's dependencies ({one_line(error)})"
    tf_specifier = next((r.specifier for r in requirements if r.name == "tensorflow"), "")

    def port_row() -> Check:
        port = tensorboard_jupyter.TENSORBOARD_PORT
        if world.port_is_free(port):
            return tensorboard_jupyter.check_port(port, True, [])
        # Only a taken port is worth asking tensorboard.manager who holds it.
        return tensorboard_jupyter.check_port(port, False, *world.tensorboard_instances())

    def runs_row() -> Check:
        root, problem, labkit_installed = world.runs_dir_status()
        return tensorboard_jupyter.check_runs_dir(root, problem, bool(env.get("LAB_RUNS_DIR")), labkit_installed)

    def data_rows() -> list[Check]:
        reported = facts.get("probe", {}).get("datasets")
        return data.check_data(reported or world.dataset_sources(), facts["download"], options.online)

    def gpu_rows() -> list[Check]:
        wheels = sorted(f"{d.name} {d.version}" for key, d in packages.items() if key.startswith("nvidia-"))
        metal = packages.get("tensorflow-metal")
        return gpu.diagnose_gpu(
            gpu.GpuFacts(
                facts["nvidia_smi"],
                facts["probe"],
                wheels,
                metal.version if metal else None,
                env,
                world.system,
                world.is_wsl(),
                options.require_gpu,
            )
        )

    activate = tensorboard_jupyter.activation_hint(world.prefix, world.in_virtualenv, world.system, world.scripts_dir)
    checks = [
        (
            "python",
            lambda: python_packages.check_python(
                sys.version_info, world.executable, pointer_bits(), world.in_virtualenv, facts["packages"], tf_specifier
            ),
        ),
        ("pkg", lambda: python_packages.check_packages(requirements, facts["packages"], requirements_problem)),
        ("pip_check", lambda: python_packages.check_pip(facts["pip_check"], world.executable)),
        ("labkit", lambda: python_packages.check_labkit(*python_packages.find_labkit())),
        ("tf.import", lambda: tensorflow_keras.check_tf_import(facts["probe"], packages, options.timeout)),
        ("keras", lambda: tensorflow_keras.check_keras(facts["probe"], env, packages)),
        (
            "tensorboard",
            lambda: tensorboard_jupyter.check_tensorboard_command(
                world.own_tensorboard(), world.which("tensorboard"), facts["tensorboard_version"], packages, activate
            ),
        ),
        ("tensorboard.port", port_row),
        ("runs_dir", runs_row),
        (
            "jupyter.kernel",
            lambda: tensorboard_jupyter.check_jupyter_kernel(
                facts["kernel_specs"], world.executable, world.prefix, "ipykernel" in packages
            ),
        ),
        ("data", data_rows),
        ("cpu.bfloat16", lambda: cpu.check_bfloat16(world.cpu_flags())),
        ("gpu", gpu_rows),
    ]
    rows: list[Check] = []
    for check_id, check in checks:
        rows += guarded(check_id, check)
    return rows


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="test_stack.py",
        description="Check that this Python can run the course: packages, TensorFlow, Keras, "
        "TensorBoard, Jupyter, data and GPU. Exit 0 ready, 1 a check failed, 2 usage error.",
    )
    parser.add_argument("--json", action="store_true", help="print a machine-readable report instead of the table")
    parser.add_argument("-q", "--quiet", action="store_true", help="print failed checks only, then the verdict")
    parser.add_argument(
        "--no-color",
        dest="color",
        action="store_const",
        const=False,
        default=None,
        help="no colours (NO_COLOR=1 does the same)",
    )
    parser.add_argument("--strict", action="store_true", help="count warnings as failures")
    parser.add_argument("--require-gpu", action="store_true", help="fail when no GPU is usable")
    parser.add_argument(
        "--online",
        action="store_true",
        help="also check that the Keras dataset server can be reached (the only network use)",
    )
    parser.add_argument(
        "--timeout",
        type=_positive_seconds,
        default=tensorflow_keras.DEFAULT_TF_TIMEOUT_S,
        help="seconds allowed for the TensorFlow import and GPU checks (default %(default)s)",
    )
    return parser


def _positive_seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of seconds") from None
    if value <= 0:
        raise argparse.ArgumentTypeError("the timeout must be above 0 seconds")
    return value


def main(argv: list[str] | None = None, world: World | None = None, stdout=None) -> int:
    stdout = stdout or sys.stdout
    try:
        args = build_parser().parse_args(argv)
    except SystemExit as stop:  # argparse has printed the usage message already
        return 2 if stop.code else 0
    options = Options(
        json=args.json,
        quiet=args.quiet,
        color=args.color,
        strict=args.strict,
        require_gpu=args.require_gpu,
        online=args.online,
        timeout=args.timeout,
    )
    world = world or World()
    rows = run_checks(world, options)
    code = report.exit_code(rows, options.strict)
    if options.json:
        stdout.write(json.dumps(report.json_report(rows, world.platform_info(), options, code), indent=2) + "\n")
    else:
        color = report.use_color(options.color, stdout, world.env, world.system)
        width = max(shutil.get_terminal_size((100, 24)).columns, 80)
        stdout.write(report.render_table(rows, color, options.quiet, options.strict, width))
    stdout.flush()
    return code


def entry_point(argv: list[str] | None = None) -> int:
    """What `python scripts/test_stack.py` runs: the doctor, or the TensorFlow child (--tf-probe)."""
    argv = sys.argv[1:] if argv is None else argv
    if tensorflow_keras.PROBE_FLAG in argv:
        return tensorflow_keras.probe_main()
    try:  # a path or package name the console cannot encode must not end the run
        sys.stdout.reconfigure(errors="replace")
    except (AttributeError, ValueError):
        pass
    try:
        return main(argv)
    except KeyboardInterrupt:
        print("\nVerdict: NOT READY. The checks were interrupted before they finished.")
        return report.NOT_READY
    except Exception as error:  # the last line of defence: still end with a verdict
        print(f"FAIL  test_stack  {one_line(error)}\n      fix: {BUG_HINT}")
        print("Verdict: NOT READY. The environment check itself failed.")
        return report.NOT_READY
