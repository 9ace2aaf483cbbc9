#!/usr/bin/env python3
"""Benchmark: how long the environment doctor takes, against a bare `import tensorflow`.

    python scripts/bench_test_stack.py [--repeats 5]

The doctor's default run should take no more than about 1.5x a bare `python -c "import
tensorflow"` on the same machine, because it imports TensorFlow exactly once (in its child
process) and runs every other slow command alongside that import. The two commands are timed
alternately, after one untimed run of each, so that a busy machine slows both alike; the
medians and their ratio are printed. This is a benchmark to read, not a test: it exits 0
unless --max-ratio is given and exceeded.
"""

import argparse
import statistics
import subprocess
import sys
import time
from pathlib import Path

DOCTOR = Path(__file__).resolve().with_name("test_stack.py")
TARGET_RATIO = 1.5


def seconds_to_run(command) -> float:
    started = time.perf_counter()
    subprocess.run(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=False)
    return time.perf_counter() - started


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5, help="timed runs of each command (default 5)")
    parser.add_argument("--max-ratio", type=float, default=None, help="exit 1 when the median ratio is above this")
    args = parser.parse_args(argv)
    if args.repeats < 1:
        parser.error("--repeats must be at least 1")

    bare = [sys.executable, "-c", "import tensorflow"]
    doctor = [sys.executable, str(DOCTOR), "--json"]
    # Untimed first runs: they pay for cold file caches and .pyc compilation.
    seconds_to_run(bare)
    seconds_to_run(doctor)

    bare_times, doctor_times = [], []
    for attempt in range(args.repeats):
        # Alternate which goes first, so neither always inherits the other's leftovers.
        order = ((bare, bare_times), (doctor, doctor_times))
        for command, times in order if attempt % 2 == 0 else order[::-1]:
            times.append(seconds_to_run(command))

    bare_median, doctor_median = statistics.median(bare_times), statistics.median(doctor_times)
    ratio = doctor_median / bare_median
    print(
        f"python -c 'import tensorflow'  median {bare_median:.2f} s  runs " + " ".join(f"{t:.2f}" for t in bare_times)
    )
    print(
        f"scripts/test_stack.py --json   median {doctor_median:.2f} s  runs "
        + " ".join(f"{t:.2f}" for t in doctor_times)
    )
    verdict = "within target" if ratio <= TARGET_RATIO else "above target"
    print(f"ratio {ratio:.2f} (target: at most about {TARGET_RATIO:.1f}) -> {verdict}")
    if args.max_ratio is not None and ratio > args.max_ratio:
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
