#!/usr/bin/env python3
"""Environment doctor for the course lab: the first thing to run, before any lesson.

    python scripts/test_stack.py                 # a table of checks, ending with a verdict
    python scripts/test_stack.py --json          # the same report for a machine to read
    python scripts/test_stack.py -q              # failures only, then the verdict
    python scripts/test_stack.py --require-gpu   # no usable GPU becomes a failure

Every check is one row: OK, WARN or FAIL, what was found, what the course requires, and a fix
when the row is not OK. Exit codes: 0 ready (warnings allowed), 1 a required check failed,
2 the command line was wrong. --strict counts warnings as failures.

The checks live in the stack_doctor package beside this file (its __init__ lists the modules).
They need only the standard library, so the doctor can diagnose an environment in which nothing
is installed yet. TensorFlow is imported once, in a child process with a timeout (this file
again, with --tf-probe), so a broken or hanging TensorFlow becomes a FAIL row instead of a crash.
"""

import sys

# This file must still parse and run on a Python too old for the package, to say so: hence the
# %-formatting and the version test that the linter, which assumes a current Python, flags.
if sys.version_info < (3, 8):  # noqa: UP036
    sys.stdout.write(
        "FAIL  python  %s at %s; the course needs Python 3.10 or newer\n"  # noqa: UP031
        "Verdict: NOT READY\n" % (sys.version.split()[0], sys.executable)
    )
    sys.exit(1)

# `python scripts/test_stack.py` puts this folder on sys.path by itself; a wrapper that runs this
# file with runpy (lesson_1/activity_1/test_stack.py) does not.
from pathlib import Path  # noqa: E402  (after the version test, which must run on any Python)

HERE = str(Path(__file__).resolve().parent)
if HERE not in sys.path:
    sys.path.insert(0, HERE)

from stack_doctor.runner import entry_point  # noqa: E402  (needs the sys.path line above)

if __name__ == "__main__":
    sys.exit(entry_point())
