"""The report: the table, the verdict line, the JSON document and the exit code.

The JSON layout (SCHEMA_VERSION) is what scripts/stack_report.py reads from a class's reports:
change one, change the other.
"""

from __future__ import annotations

import textwrap
from collections.abc import Mapping
from datetime import datetime, timezone

from .core import FAIL, INSTALL_EVERYTHING, OK, STATUSES, WARN, Check

SCHEMA_VERSION = 1
READY, NOT_READY = 0, 1  # exit codes; 2, a wrong command line, comes from argparse

COLORS = {OK: "\033[32m", WARN: "\033[33m", FAIL: "\033[31m"}
RESET, BOLD = "\033[0m", "\033[1m"


def counts_as_failure(check: Check, strict: bool) -> bool:
    return check.status == FAIL or (strict and check.status == WARN)


def exit_code(rows: list[Check], strict: bool) -> int:
    return NOT_READY if any(counts_as_failure(row, strict) for row in rows) else READY


def verdict_line(rows: list[Check], strict: bool) -> str:
    failed = [row.id for row in rows if row.status == FAIL]
    warned = [row.id for row in rows if row.status == WARN]
    if strict and warned:
        failed, warned = failed + warned, []
    if failed:
        packages = [row.id for row in rows if row.id.startswith("pkg.") and row.status == FAIL]
        advice = (
            f"Several packages are missing or too old; one command installs them all: {INSTALL_EVERYTHING}. "
            "Then run this again."
            if len(packages) > 1
            else "Fix the rows marked above from the top, then run this again."
        )
        strictly = " (--strict counts warnings)" if strict else ""
        return f"Verdict: NOT READY. {len(failed)} check(s) failed{strictly}: {', '.join(failed)}. {advice}"
    if warned:
        return (
            f"Verdict: READY, with {len(warned)} warning(s): {', '.join(warned)}. The course runs; the "
            "warnings say what you are missing."
        )
    return "Verdict: READY. Every check passed."


def use_color(option: bool | None, stream, env: Mapping, system: str) -> bool:
    if option is False or env.get("NO_COLOR") or env.get("TERM") == "dumb":
        return False
    if not getattr(stream, "isatty", lambda: False)():
        return False
    if system == "Windows":  # old consoles print escape codes literally
        return bool(env.get("WT_SESSION") or env.get("TERM_PROGRAM") or env.get("ANSICON"))
    return True


def _wrap(text: str, width: int) -> list[str]:
    # Paths must stay whole, to be copied: a word wider than its column overflows it instead.
    return textwrap.wrap(text, width, break_on_hyphens=False, break_long_words=False) or [""]


def render_table(rows: list[Check], color: bool, quiet: bool, strict: bool, width: int = 100) -> str:
    shown = [row for row in rows if counts_as_failure(row, strict)] if quiet else rows
    id_width = max([len("CHECK")] + [len(row.id) for row in shown])
    flexible = max(width - 6 - id_width - 4, 40)
    required_width = min(max([len("REQUIRED")] + [len(row.required) for row in shown]), 30, flexible // 3)
    found_width = flexible - required_width
    lines = []
    if shown:
        lines.append(f"{'':4}  {'CHECK':<{id_width}}  {'FOUND':<{found_width}}  REQUIRED")
    for row in shown:
        found, required = _wrap(row.found, found_width), _wrap(row.required, required_width)
        first = True
        while found or required:
            left = found.pop(0) if found else ""
            # A FOUND line that overflowed its column pushes REQUIRED on to the next line.
            right = required.pop(0) if required and len(left) <= found_width else ""
            status = f"{row.status:<4}" if first else "    "
            if first and color:
                status = COLORS[row.status] + status + RESET
            label = row.id if first else ""
            lines.append(f"{status}  {label:<{id_width}}  {left:<{found_width}}  {right}".rstrip())
            first = False
        if row.hint and row.status != OK:
            indent = " " * (6 + id_width + 2)
            lines += textwrap.wrap(
                "fix: " + row.hint,
                width,
                initial_indent=indent,
                subsequent_indent=indent + "     ",
                break_on_hyphens=False,
            )
    if lines:
        lines.append("")
    verdict = "\n".join(textwrap.wrap(verdict_line(rows, strict), width, break_on_hyphens=False))
    lines.append(BOLD + verdict + RESET if color else verdict)
    return "\n".join(lines) + "\n"


def json_report(rows: list[Check], platform_info: dict, options, code: int) -> dict:
    return {
        "schema_version": SCHEMA_VERSION,
        "tool": "scripts/test_stack.py",
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "platform": platform_info,
        "options": {"strict": options.strict, "require_gpu": options.require_gpu, "online": options.online},
        "checks": [row.to_json() for row in rows],
        "summary": {status: sum(row.status == status for row in rows) for status in STATUSES},
        "verdict": "ready" if code == READY else "not ready",
        "exit_code": code,
    }
