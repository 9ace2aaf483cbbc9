#!/usr/bin/env python3
"""The environment doctor, started from this activity's folder.

    python3 lesson_1/activity_1/test_stack.py [--json] [-q] [--require-gpu] [--strict] ...

It runs scripts/test_stack.py itself, so the checks, the flags and the exit code (0 ready,
1 a check failed, 2 a wrong command line) are the same; the doctor lives in scripts/ because
instructors and the other lessons use it too.
"""

import runpy
import sys
from pathlib import Path

DOCTOR = Path(__file__).resolve().parent.parent.parent / "scripts" / "test_stack.py"

if __name__ == "__main__":
    # runpy runs the file as if it were the main script, Python-version guard first, and its
    # sys.exit carries the doctor's exit code out of this process.
    sys.argv[0] = str(DOCTOR)
    runpy.run_path(sys.argv[0], run_name="__main__")
