#!/usr/bin/env python3
"""How fast the lab is, and how far from the machine's limits: a benchmark to read, not a test.

    python scripts/bench.py                          # every section but the budget, a few minutes
    python scripts/bench.py --quick                  # the same code paths on small slices, seconds
    python scripts/bench.py --only overhead input    # some sections
    python scripts/bench.py --only defaults          # three default commands, lab loop against bare: long
    python scripts/bench.py --only budget            # every activity's full command: long
    python scripts/bench.py --write docs/benchmarks.md

Sections: overhead (the lab's training loop against a bare model.fit, per activity), roofline
(achieved training GFLOP/s against a float32 and a bfloat16 matmul), ops (one training step
split by op type, from TensorFlow's profiler), startup (time to a quick run's first step,
in fresh processes), input (tf.data against arrays against the toolkit's pipeline), options (XLA,
mixed precision), defaults (the lab's loop against a bare model.fit over three default commands at
full length) and budget (the wall time of the whole course). Every comparison is measured side
by side in one run, in rounds whose order rotates, and reported as a median; every result line
that compares two timings reads `ratio NAME VALUE`.

`--write FILE` puts the results into FILE (Markdown) with the machine's description, replacing the
sections measured now and keeping the others, so that the long budget section can be measured
apart. Exit codes: 0 measured, 1 a section failed, 2 a bad command line (one line, nothing run).
"""

from __future__ import annotations

import argparse
import datetime
import os
import platform
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # TensorFlow's start-up chatter would bury the results
os.environ.setdefault("LAB_OFFLINE", "1")  # a benchmark must not wait on the network

from bench_common import Section, load_average  # noqa: E402

SECTIONS = ("overhead", "roofline", "ops", "startup", "input", "options", "defaults", "budget")
DEFAULT_SECTIONS = SECTIONS[:-2]  # the last two train at full length, for many minutes: asked for by name only
ROUNDS = {False: 3, True: 1}
IN_FRESH_PROCESSES = {"startup", "budget"}  # sections that measure in child processes only
ANALYSIS = "analysis"
BLOCK = re.compile(r"<!-- bench:(?P<name>[a-z]+) -->\n.*?<!-- /bench:(?P=name) -->\n", re.S)


def make_parser() -> argparse.ArgumentParser:
    from labkit.cli import OneLineParser, positive_int

    parser = OneLineParser(prog="bench.py", description=__doc__.strip().splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small slices: seconds per section")
    parser.add_argument(
        "--only", nargs="+", choices=SECTIONS, metavar="SECTION", help=f"sections to run, of: {', '.join(SECTIONS)}"
    )
    parser.add_argument("--rounds", type=positive_int, help="interleaved rounds per comparison (default 3; quick 1)")
    parser.add_argument(
        "--keep-runs", metavar="DIR", type=Path, help="budget: keep the runs in DIR (default: a temporary folder)"
    )
    parser.add_argument("--write", metavar="FILE", type=Path, help="write the results into this Markdown file")
    return parser


def parse(argv=None) -> argparse.Namespace:
    parser = make_parser()
    args = parser.parse_args(argv)
    if args.write is not None:
        target = args.write
        if target.is_dir():
            parser.error(f"--write {target}: that is a folder; name a file")
        folder = target.resolve().parent
        if not folder.is_dir():
            parser.error(f"--write {target}: the folder {folder} does not exist")
        if not os.access(folder, os.W_OK) or (target.exists() and not os.access(target, os.W_OK)):
            parser.error(f"--write {target}: not writable")
    args.sections = [name for name in SECTIONS if name in (args.only or DEFAULT_SECTIONS)]
    args.rounds = args.rounds or ROUNDS[args.quick]
    return args


# ------------------------------------------------------------------------------------------------
# The machine


def usable_cores() -> int:
    """Cores this process may use (a container or taskset can allow fewer than the machine has)."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def memory_gib() -> str:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return f"{int(line.split()[1]) / 2**20:.1f} GiB"
    except OSError:
        pass
    return "unknown"


def gpus(load_tensorflow: bool) -> str:
    """The GPUs TensorFlow sees; without TensorFlow loaded (sections that only start processes),
    the ones nvidia-smi lists, so that this process does not hold a TensorFlow of its own."""
    if load_tensorflow:
        import tensorflow as tf

        found = tf.config.list_physical_devices("GPU")
        names = [tf.config.experimental.get_device_details(gpu).get("device_name", gpu.name) for gpu in found]
        return ", ".join(names) or "none"
    if shutil.which("nvidia-smi") is None:
        return "none"
    listed = subprocess.run(["nvidia-smi", "-L"], capture_output=True, text=True, check=False)
    names = [line.split(" (UUID")[0] for line in listed.stdout.splitlines() if line.startswith("GPU ")]
    return ", ".join(names) or "none"


def machine(load_tensorflow: bool = True) -> list[tuple[str, str]]:
    from importlib import metadata

    versions = []
    for package in ("tensorflow", "keras", "numpy", "tensorboard"):
        try:
            versions.append(f"{package} {metadata.version(package)}")
        except metadata.PackageNotFoundError:
            versions.append(f"{package} absent")
    return [
        ("CPU", cpu_model()),
        ("cores", f"{os.cpu_count()} logical (usable here: {usable_cores()})"),
        ("memory", memory_gib()),
        ("OS", platform.platform()),
        ("Python", platform.python_version()),
        ("libraries", ", ".join(versions)),
        ("GPU", gpus(load_tensorflow)),
    ]


# ------------------------------------------------------------------------------------------------
# Running and printing


def run_section(name: str, args, runs_root: Path) -> Section:
    if name == "overhead":
        from bench_overhead import overhead

        return overhead(args.quick, args.rounds, runs_root)
    if name == "defaults":
        from bench_overhead import defaults

        return defaults(args.rounds, runs_root)
    if name == "ops":
        from bench_ops import ops

        return ops(args.quick)
    if name == "startup":
        from bench_startup import startup

        return startup(args.quick, args.rounds)
    if name == "budget":
        from bench_budget import budget

        return budget(args.quick, args.rounds, args.keep_runs)
    import bench_sections

    measure = {"roofline": bench_sections.roofline, "input": bench_sections.input_pipeline}.get(
        name, bench_sections.options
    )
    return measure(args.quick, args.rounds)


def command_line(section: str, args) -> str:
    words = ["python scripts/bench.py", "--only", section] + (["--quick"] if args.quick else [])
    return " ".join(words + ([] if args.rounds == ROUNDS[args.quick] else ["--rounds", str(args.rounds)]))


def text_table(headers: list[str], rows: list[list[str]]) -> str:
    widths = [max(len(str(cell)) for cell in column) for column in zip(headers, *rows, strict=True)]
    lines = [
        "  ".join(str(cell).ljust(width) for cell, width in zip(row, widths, strict=True)) for row in [headers, *rows]
    ]
    return "\n".join("  " + line.rstrip() for line in lines)


def verdict(met: bool | None) -> str:
    return "met" if met else "NOT met" if met is not None else "not measured"


def print_section(section: Section) -> None:
    print(f"\n== {section.name}: {section.title} ==")
    print(text_table(section.headers, section.rows))
    for name, value, detail in section.ratios:
        print(f"ratio {name} {value:.4g}  ({detail})")
    for goal, met, reached in section.goals:
        print(f"goal: {goal}: {verdict(met)} ({reached})")
    for note in section.notes:
        print(f"note: {note}")
    print(
        f"load average {section.load[0]:.2f} before, {section.load[1]:.2f} after; {section.seconds:.0f} s", flush=True
    )


# ------------------------------------------------------------------------------------------------
# The Markdown file


def markdown_table(headers: list[str], rows: list[list[str]]) -> str:
    clean = lambda cell: str(cell).replace("|", "/")  # noqa: E731
    lines = ["| " + " | ".join(map(clean, headers)) + " |", "|" + "---|" * len(headers)]
    return "\n".join(lines + ["| " + " | ".join(map(clean, row)) + " |" for row in rows])


def section_block(section: Section, args, when: str, host: str) -> str:
    method = section.method or f"{args.rounds} interleaved round(s), medians"
    quick = (
        " Quick mode: small slices, to check the code paths; these are not the reference figures." if args.quick else ""
    )
    parts = [
        f"<!-- bench:{section.name} -->",
        f"## {section.title}",
        "",
        f"Measured {section.when or when} on {host}, load average {section.load[0]:.2f} before and "
        f"{section.load[1]:.2f} after "
        f"(the machine was shared), {method}. Reproduce: `{command_line(section.name, args)}`.{quick}",
        "",
        markdown_table(section.headers, section.rows),
        "",
    ]
    parts += [f"- Goal: {goal}: **{verdict(met)}** ({reached})" for goal, met, reached in section.goals]
    parts += [f"- `ratio {name} {value:.4g}` ({detail})" for name, value, detail in section.ratios]
    parts += [f"- {note}" for note in section.notes]
    return "\n".join(parts) + f"\n<!-- /bench:{section.name} -->\n"


def utc_now() -> str:
    return datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")


def write_markdown(path: Path, sections: list[Section], args, facts: list[tuple[str, str]]) -> None:
    when = utc_now()
    host = f"{facts[0][1]} ({usable_cores()} cores)"
    blocks = {}
    if path.exists():
        blocks = {match["name"]: match.group(0) for match in BLOCK.finditer(path.read_text())}
    for section in sections:
        blocks[section.name] = section_block(section, args, when, host)
    ordered = [blocks[name] for name in SECTIONS if name in blocks]
    # Written by hand to read the figures; --write keeps it as it is.
    analysis = [blocks[ANALYSIS]] if ANALYSIS in blocks else []
    goals = [line for block in ordered for line in block.splitlines() if line.startswith("- Goal: ")]
    header = [
        "# Benchmarks",
        "",
        "What `scripts/bench.py` measured: every ratio compares two timings taken side by side in one run,",
        "in interleaved rounds, as medians. Each section says when it was measured and how to reproduce it.",
        "",
        f"## The machine (as of {when})",
        "",
        *[f"- {key}: {value}" for key, value in facts],
        "",
        *(
            [
                "No GPU was available to this measurement: the GPU figures (the doctor's GPU rows, Lesson 1 on a GPU,",
                "mixed precision) are not measured here.",
                "",
            ]
            if dict(facts).get("GPU") == "none"
            else []
        ),
        "## Goals at a glance",
        "",
        *(goals or ["- none measured yet"]),
        "",
    ]
    partial = path.with_name(path.name + ".partial")
    partial.write_text("\n".join(header) + "\n" + "\n".join(analysis + ordered))
    os.replace(partial, path)


def main(argv=None) -> int:
    args = parse(argv)
    facts = machine(load_tensorflow=not set(args.sections) <= IN_FRESH_PROCESSES)
    print("Machine: " + "; ".join(f"{key} {value}" for key, value in facts), flush=True)
    done, failed = [], []
    with tempfile.TemporaryDirectory(prefix="bench-runs-") as runs_root:
        for name in args.sections:
            before, started, when = load_average(), time.perf_counter(), utc_now()
            print(f"\n[{name}] measuring ...", flush=True)
            try:
                section = run_section(name, args, Path(runs_root))
            except Exception as error:  # one broken section must not hide the others' results
                failed.append(name)
                print(f"bench.py: section {name} failed: {type(error).__name__}: {error}", file=sys.stderr, flush=True)
                continue
            section.load, section.seconds = (before, load_average()), time.perf_counter() - started
            section.command, section.when = command_line(name, args), when
            print_section(section)
            done.append(section)
    if args.write is not None and done:
        write_markdown(args.write, done, args, facts)
        print(f"\nWrote {args.write}")
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
