#!/usr/bin/env python3
"""Merge a class's environment reports into one table: how many students fail each check.

Each student runs

    python scripts/test_stack.py --json > stack-<name>.json

and hands in the file. Then the instructor runs

    python scripts/stack_report.py reports/                 # a folder, or any list of files
    python scripts/stack_report.py reports/ --csv class.csv --students-csv students.csv

The table lists every check with its FAIL / WARN / OK counts, worst first, and the most common
finding among the failures, so the first thing to fix in class is the top row. --csv writes
the same summary as CSV; --students-csv writes one row per student with each check's status.
A student is named after the report's file name. Files that are not doctor reports are listed
and skipped. Standard library only.
"""

import argparse
import csv
import json
import sys
from collections import Counter
from pathlib import Path

SCHEMA_VERSION = 1
STATUSES = ("FAIL", "WARN", "OK")


class Report:
    def __init__(self, student: str, data: dict):
        self.student = student
        self.checks = {row["id"]: row for row in data["checks"]}
        self.platform = data.get("platform") or {}
        self.verdict = data.get("verdict") or ("ready" if data.get("exit_code") == 0 else "not ready")


def report_files(paths):
    for path in paths:
        path = Path(path)
        if path.is_dir():
            yield from sorted(path.glob("*.json"))
        else:
            yield path


def load_reports(paths):
    """(reports, [(file, why it was skipped)])."""
    reports, skipped = [], []
    for path in report_files(paths):
        try:
            data = json.loads(path.read_text(encoding="utf-8-sig"))  # PowerShell redirects add a BOM
        except (OSError, UnicodeDecodeError, ValueError) as error:
            skipped.append((path, f"not readable JSON ({type(error).__name__})"))
            continue
        if not isinstance(data, dict) or not isinstance(data.get("checks"), list):
            skipped.append((path, "not a test_stack.py --json report"))
            continue
        if data.get("schema_version") != SCHEMA_VERSION:
            skipped.append((path, f"schema_version {data.get('schema_version')!r}, this script reads {SCHEMA_VERSION}"))
            continue
        try:
            reports.append(Report(path.stem, data))
        except (KeyError, TypeError):
            skipped.append((path, "a check without an id"))
    return reports, skipped


def summarize(reports):
    """One dict per check id: status counts, students without the row, the commonest failure."""
    ids = []
    for report in reports:
        ids += [check_id for check_id in report.checks if check_id not in ids]
    summary = []
    for check_id in ids:
        counts = Counter(report.checks[check_id]["status"] for report in reports if check_id in report.checks)
        failures = Counter(
            report.checks[check_id]["found"]
            for report in reports
            if report.checks.get(check_id, {}).get("status") == "FAIL"
        )
        summary.append(
            {
                "check": check_id,
                "FAIL": counts["FAIL"],
                "WARN": counts["WARN"],
                "OK": counts["OK"],
                # GPU layers after the first failing one are not run, so their rows can be absent.
                "absent": sum(check_id not in report.checks for report in reports),
                "top_failure": failures.most_common(1)[0][0] if failures else "",
            }
        )
    summary.sort(key=lambda row: (-row["FAIL"], -row["WARN"], ids.index(row["check"])))
    return summary


def render(summary, reports, width=100) -> str:
    ready = sum(report.verdict == "ready" for report in reports)
    check_width = max([len("CHECK")] + [len(row["check"]) for row in summary])
    lines = [
        f"{len(reports)} report(s): {ready} ready, {len(reports) - ready} not ready",
        "",
        f"{'CHECK':<{check_width}}  {'FAIL':>4}  {'WARN':>4}  {'OK':>4}  {'ABSENT':>6}  MOST COMMON FAILURE",
    ]
    room = max(width - check_width - 30, 20)
    for row in summary:
        failure = row["top_failure"]
        if len(failure) > room:
            failure = failure[: room - 3] + "..."
        lines.append(
            f"{row['check']:<{check_width}}  {row['FAIL']:>4d}  {row['WARN']:>4d}  {row['OK']:>4d}  "
            f"{row['absent']:>6d}  {failure}".rstrip()
        )
    return "\n".join(lines) + "\n"


def write_summary_csv(summary, target):
    writer = csv.DictWriter(target, fieldnames=["check", "FAIL", "WARN", "OK", "absent", "top_failure"])
    writer.writeheader()
    writer.writerows(summary)


def write_students_csv(reports, summary, target):
    ids = [row["check"] for row in summary]
    writer = csv.writer(target)
    writer.writerow(["student", "verdict", "system", "python", "failed", "warned"] + ids)
    for report in sorted(reports, key=lambda r: r.student):
        statuses = [report.checks[i]["status"] if i in report.checks else "" for i in ids]
        writer.writerow(
            [
                report.student,
                report.verdict,
                report.platform.get("system", ""),
                report.platform.get("python", ""),
                statuses.count("FAIL"),
                statuses.count("WARN"),
            ]
            + statuses
        )


def _open_for_writing(name):
    return sys.stdout if name == "-" else open(name, "w", newline="", encoding="utf-8")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description="Merge test_stack.py --json reports into one table.")
    parser.add_argument("reports", nargs="+", help="report files, or folders of *.json reports")
    parser.add_argument("--csv", metavar="PATH", help="also write the per-check summary as CSV (- for stdout)")
    parser.add_argument("--students-csv", metavar="PATH", help="also write one row per student as CSV")
    args = parser.parse_args(argv)

    reports, skipped = load_reports(args.reports)
    for path, why in skipped:
        print(f"skipped {path}: {why}", file=sys.stderr)
    if not reports:
        print("no readable reports among: " + " ".join(args.reports), file=sys.stderr)
        return 2
    summary = summarize(reports)
    if args.csv != "-":
        sys.stdout.write(render(summary, reports))
    for option, write in (
        (args.csv, lambda f: write_summary_csv(summary, f)),
        (args.students_csv, lambda f: write_students_csv(reports, summary, f)),
    ):
        if option:
            target = _open_for_writing(option)
            try:
                write(target)
            finally:
                if target is not sys.stdout:
                    target.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
