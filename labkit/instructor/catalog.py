"""`python scripts/lab.py runs [DIR]`: what runs a folder holds, and tidying or handing them in.

    lab.py runs                          # every run under runs/ (or $LAB_RUNS_DIR), oldest first
    lab.py runs --lesson 1 --json        # the same rows for a program: bytes, seconds
    lab.py runs --clean [--yes]          # remove failed, crashed and quick runs, slim old model files (asks first)
    lab.py runs --clean RUN_DIR...       # remove exactly these runs, finished full ones included
    lab.py runs --export alice.zip       # run.json and TensorBoard logs, for the instructor

It never imports TensorFlow: it answers at once, even while a run trains.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import sys
from pathlib import Path

from labkit import LabError
from labkit.cli import OneLineParser
from labkit.instructor.export import UNREADABLE, export_runs, human_size, run_files, walk_runs
from labkit.instructor.slimming import slim_kept
from labkit.run_checks import RunRecordError, check_name_lengths
from labkit.runs import CRASHED, RUN_JSON, read_run, runs_root

PROG = "lab.py runs"
HINT = "train one with `python scripts/lab.py start` or any lesson's train script"


def lesson_key(lesson: str) -> tuple:
    match = re.fullmatch(r"lesson_(\d+)", lesson or "")
    return (int(match.group(1)), "") if match else (10**6, lesson or "")


def key_metrics(metrics: dict) -> tuple[str | None, dict]:
    """The split to show (test, else validation) and at most two of its numbers."""
    for split in ("test", "validation"):
        values = {k: v for k, v in ((metrics or {}).get(split) or {}).items() if isinstance(v, (int, float))}
        if values:
            chosen = [k for k in ("accuracy", "loss") if k in values] or sorted(values)[:2]
            return split, {k: values[k] for k in chosen}
    return None, {}


def unreadable_row(folder: Path, root: Path, error: str | None) -> dict:
    """The row of a folder that may hold a run but cannot be read: shown, never cleaned or exported."""
    relative = folder.relative_to(root).parts
    return {
        "lesson": relative[0] if len(relative) > 1 else None,
        "activity": relative[1] if len(relative) > 2 else None,
        "run": folder.name,
        "path": folder.relative_to(root).as_posix() if folder != root else ".",
        "status": UNREADABLE,
        "dataset": None,
        "substitute_for": None,
        "source": None,
        "metrics_split": None,
        "metrics": {},
        "quick": None,
        "wall_time_s": None,
        "size_bytes": 0,
        "started_at": None,
        "error": error,
    }


def describe(run_dir: Path, root: Path, nested: set[Path] | frozenset[Path], locked: str | None = None) -> dict:
    """A run's row. `nested`: run folders whose files are not this run's; `locked`: why one of
    its own folders cannot be opened, which leaves its size and contents unknown."""
    row = dict(unreadable_row(run_dir, root, locked), size_bytes=folder_size(run_dir, nested))
    try:
        record = read_run(run_dir)
    except RunRecordError as error:
        return dict(row, error=f"{RUN_JSON}: {error.fault}")
    if locked:
        return row
    del row["error"]
    dataset = record.get("dataset") or {}  # read_run checked the types
    split, metrics = key_metrics(record.get("metrics") or {})
    row.update(
        lesson=record.get("lesson") or row["lesson"],
        activity=record.get("activity") or row["activity"],
        run=record.get("run_name") or row["run"],
        status=record["status"],
        dataset=dataset.get("name"),
        substitute_for=dataset.get("substitute_for"),
        source=dataset.get("source"),
        metrics_split=split,
        metrics=metrics,
        quick=bool(record.get("quick")),
        wall_time_s=record.get("wall_time_s"),
        started_at=record.get("started_at"),
    )
    return row


def folder_size(run_dir: Path, nested) -> int:
    return sum(size for _, size in run_files(run_dir, nested))


def catalog(root: Path, lesson: str | None = None, activity: str | None = None) -> list[dict]:
    """One row per run under `root`, and one per folder that cannot be opened outside any run.

    Linear in the number of runs: a run's files leave out every other run folder by one set
    lookup, and a locked folder finds its run by walking up its own parents."""
    locked: list[tuple[Path, str]] = []
    folders = walk_runs(root, locked)
    if locked and locked[0][0] == root:
        raise LabError(f"cannot open {root} ({locked[0][1]})")
    every_run = frozenset(folders)
    locked_in, loose = {}, []
    for folder, why in locked:
        owner = next((parent for parent in folder.parents if parent in every_run), None)
        if owner is None:
            loose.append(unreadable_row(folder, root, f"cannot open this folder ({why})"))
        else:
            locked_in.setdefault(owner, f"cannot open its folder {folder.relative_to(owner)} ({why})")
    rows = [describe(run_dir, root, every_run, locked_in.get(run_dir)) for run_dir in folders] + loose
    rows = [row for row in rows if lesson in (None, row["lesson"]) and activity in (None, row["activity"])]
    return sorted(rows, key=lambda r: (lesson_key(r["lesson"]), r["activity"] or "", r["started_at"] or "", r["path"]))


# -- human formats ------------------------------------------------------------------------------


def human_time(seconds) -> str:
    if not isinstance(seconds, (int, float)):
        return "-"
    if seconds < 10:
        return f"{seconds:.1f}s"
    whole = int(round(seconds))
    if whole < 60:
        return f"{whole}s"
    if whole < 3600:
        return f"{whole // 60}m {whole % 60:02d}s"
    return f"{whole // 3600}h {whole % 3600 // 60:02d}m"


def data_label(row: dict) -> str:
    if not row["dataset"]:
        return "-"
    return row["dataset"] + (f" (for {row['substitute_for']})" if row["substitute_for"] else "")


def result_label(row: dict) -> str:
    if not row["metrics"]:
        return "-"
    names = {"accuracy": "acc", "validation": "val"}
    numbers = ", ".join(f"{names.get(k, k)} {v:.4g}" for k, v in row["metrics"].items())
    return f"{names.get(row['metrics_split'], row['metrics_split'])} {numbers}"


def mode_label(row: dict) -> str:
    return "-" if row["quick"] is None else ("quick" if row["quick"] else "full")


# A run's name is long (its hyperparameters and a timestamp), so each run takes two lines: the
# name, then its details in columns that fit a 100-column terminal. Data comes last, whole, since
# a substitute's name with what it stands in for is the one cell of very varied length.
DETAIL_COLUMNS = (("status", 11), ("mode", 5), ("time", 7), ("size", 8), ("result", 27), ("data", 0))


def detail_line(values: list[str]) -> str:
    cells = [
        value.rjust(width) if name in ("time", "size") else value.ljust(width)
        for (name, width), value in zip(DETAIL_COLUMNS, values, strict=True)
    ]
    return ("    " + "  ".join(cells)).rstrip()


def table(rows: list[dict]) -> str:
    lines = ["RUN", detail_line([name.upper() for name, _ in DETAIL_COLUMNS])]
    group = None
    for row in rows:
        if (row["lesson"], row["activity"]) != group:
            group = (row["lesson"], row["activity"])
            lines += ["", "/".join(part or "?" for part in group)]
        lines.append(f"  {row['path'] if row['status'] == UNREADABLE else row['run']}")
        data = row.get("error") or data_label(row)
        when, size = human_time(row["wall_time_s"]), human_size(row["size_bytes"])
        lines.append(detail_line([row["status"], mode_label(row), when, size, result_label(row), data]))
    return "\n".join(lines)


def total_line(rows: list[dict], root: Path) -> str:
    count = len(rows)
    return f"{count} run{'s' if count != 1 else ''}, {human_size(sum(r['size_bytes'] for r in rows))} under {root}"


# -- cleaning -----------------------------------------------------------------------------------


def clean_reason(row: dict) -> str | None:
    """Why an unnamed run may go; None keeps it. A running run never goes, a full interrupted one
    can still be resumed, and a finished full run is work that only its owner may throw away."""
    if row["status"] in ("running", UNREADABLE):
        return None
    if row["status"] in ("failed", CRASHED):
        return row["status"]
    if row["quick"]:
        return "quick"
    return None


def named_rows(names: list[str], root: Path, rows: list[dict]) -> list[dict]:
    by_path = {(root / r["path"]).resolve(): r for r in rows}
    chosen = []
    for name in names:
        given = check_name_lengths(Path(name).expanduser(), "--clean")
        try:
            candidate = given if given.exists() or given.is_absolute() else root / given
            if candidate.is_symlink():
                raise LabError(f"--clean {name}: a symlink, not a run folder; name the folder itself")
            folder = candidate.resolve()
            if folder not in by_path:
                if not folder.is_dir():
                    raise LabError(f"--clean {name}: no such folder")
                if folder != root and root not in folder.parents:
                    raise LabError(f"--clean {name}: not under {root}; only runs in that folder can be removed")
                raise LabError(f"--clean {name}: not a run folder (it holds no {RUN_JSON})")
        except OSError as error:  # a folder on the way without execute permission, say
            raise LabError(f"--clean {name}: cannot look there ({error.strerror or error})") from None
        row = by_path[folder]
        if row["status"] == "running":
            raise LabError(f"--clean {name}: that run is still running; stop it first")
        if row["status"] == UNREADABLE:
            raise LabError(f"--clean {name}: {row['error']}; what cannot be read is never removed (remove it by hand)")
        if row not in chosen:
            chosen.append(dict(row, reason="named"))
    return chosen


def ask(question: str) -> bool:
    if not sys.stdin or not sys.stdin.isatty():
        return False
    print(question, end=" ", flush=True)
    try:
        return sys.stdin.readline().strip().lower() in ("y", "yes")
    except (OSError, KeyboardInterrupt):
        return False


def clean(root: Path, rows: list[dict], named: list[str], yes: bool, all_rows: list[dict]) -> int:
    if named:
        chosen = named_rows(named, root, all_rows)
    else:
        chosen = [dict(row, reason=reason) for row in rows if (reason := clean_reason(row))]
    kept = [row for row in rows if row["status"] == UNREADABLE] if not named else []
    if kept:
        print(f"Keeping {len(kept)} unreadable run(s): what cannot be read is never removed")
        for row in kept:
            print(f"  {row['path']}  {row['error']}")
    if not chosen:
        print(
            f"nothing to clean under {root}: no failed, crashed or quick runs (name a finished full run to remove it)"
        )
        return slim_kept(root, rows, chosen, named, yes, ask)
    total = sum(r["size_bytes"] for r in chosen)
    print(f"Would remove {len(chosen)} run{'s' if len(chosen) != 1 else ''} under {root}:")
    for row in chosen:
        print(f"  {row['path']}  [{row['reason']}]  {human_size(row['size_bytes'])}")
    question = f"Remove {len(chosen)} run{'s' if len(chosen) != 1 else ''} ({human_size(total)})? [y/N]"
    if not yes and not ask(question):
        how = (
            "" if sys.stdin and sys.stdin.isatty() else " (stdin is not a terminal: add --yes to remove without asking)"
        )
        print(f"Nothing removed{how}.")
        return max(1, slim_kept(root, rows, chosen, named, yes, ask))
    removed, freed, failed = 0, 0, 0
    for row in chosen:
        folder = root / row["path"]
        # Checked again at the last moment: the run may have been resumed since the listing.
        now = describe(folder, root, set())["status"]
        if now in ("running", UNREADABLE):
            why = "started running again" if now == "running" else "became unreadable"
            print(f"  kept {row['path']}: it {why}", file=sys.stderr)
            continue
        try:
            shutil.rmtree(folder)
        except OSError as error:
            print(f"  could not remove all of {row['path']}: {error.strerror or error}", file=sys.stderr)
            failed += 1
            continue
        removed, freed = removed + 1, freed + row["size_bytes"]
        prune_empty_parents(folder.parent, root)
    print(f"Removed {removed} run{'s' if removed != 1 else ''}, {human_size(freed)} freed.")
    return max(1 if failed else 0, slim_kept(root, rows, chosen, named, yes, ask))


def prune_empty_parents(folder: Path, root: Path) -> None:
    while folder != root and root in folder.parents:
        try:
            folder.rmdir()
        except OSError:  # not empty (or not ours to remove): stop there
            return
        folder = folder.parent


# -- the command line ---------------------------------------------------------------------------


def lesson_filter(text: str) -> str:
    match = re.fullmatch(r"(?:lesson_?)?(\d+)", text.strip().lower())
    if not match:
        raise argparse.ArgumentTypeError(f"expected a lesson number such as 1 or lesson_1, got '{text}'")
    return f"lesson_{int(match.group(1))}"


def make_parser() -> argparse.ArgumentParser:
    parser = OneLineParser(
        prog=PROG,
        description="List the runs in a runs folder; clean up failed, crashed and quick ones; export them.",
        epilog="DIR defaults to $LAB_RUNS_DIR, else runs/ in the repository. Give DIR before --clean RUN_DIR....",
    )
    parser.add_argument("dir", nargs="?", metavar="DIR", help="the runs folder to look in")
    parser.add_argument("--lesson", type=lesson_filter, help="only this lesson's runs (1 or lesson_1)")
    parser.add_argument("--activity", help="only this activity's runs (say exercise_a)")
    parser.add_argument("--json", action="store_true", help="print the rows as JSON (bytes, seconds) and nothing else")
    parser.add_argument(
        "--clean",
        nargs="*",
        metavar="RUN_DIR",
        help="remove failed, crashed and quick runs, or exactly the RUN_DIRs named (any status but running)",
    )
    parser.add_argument("--yes", action="store_true", help="with --clean: remove without asking")
    parser.add_argument("--export", metavar="FILE", help="write the runs to FILE (.zip, .tar.gz or .tgz)")
    parser.add_argument("--student", help="with --export: the name the archive carries (default: your login)")
    parser.add_argument("--with-models", action="store_true", help="with --export: include saved models too")
    return parser


def check_combination(args) -> None:
    if args.clean is not None and args.export:
        raise LabError("--clean and --export do different things; run them one at a time")
    if args.json and (args.clean is not None or args.export):
        raise LabError("--json lists runs; it cannot be combined with --clean or --export")
    if args.yes and args.clean is None:
        raise LabError("--yes answers --clean's question; it means nothing without --clean")
    if (args.student is not None or args.with_models) and not args.export:
        raise LabError("--student and --with-models go with --export FILE")
    if args.clean and (args.lesson or args.activity):
        raise LabError("--clean RUN_DIR... removes exactly the runs named; drop --lesson/--activity")


def run(args) -> int:
    check_combination(args)
    root = runs_root(args.dir)
    try:
        exists, is_dir = root.exists(), root.is_dir()
    except OSError as error:  # a folder on the way without execute permission, say
        raise LabError(f"cannot look at {root} ({error.strerror or error})") from None
    if not exists and args.dir is None and not args.export and not args.clean:
        rows = []  # the default runs root appears with the first run: until then it is simply empty
    elif not exists:
        raise LabError(f"{root} does not exist; {HINT}, or give the folder that holds the runs")
    elif not is_dir:
        raise LabError(f"{root} is a file, not a folder of runs")
    else:
        rows = catalog(root, args.lesson, args.activity)
    if args.export:
        return export_runs(root, rows, Path(args.export), student=args.student, with_models=args.with_models)
    if args.clean is not None:
        return clean(root, rows, args.clean, args.yes, catalog(root) if args.clean else rows)
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    if not rows:
        which = " ".join(part for part in (args.lesson, args.activity) if part)
        print(f"no {which + ' ' if which else ''}runs under {root} yet; {HINT}")
        return 0
    print(table(rows))
    print()
    print(total_line(rows, root))
    return 0


def main(argv: list[str] | None = None) -> int:
    # A folder name need not be UTF-8 on Linux: print its odd bytes as escapes rather than fail.
    if hasattr(sys.stdout, "reconfigure"):
        sys.stdout.reconfigure(errors="backslashreplace")
    parser = make_parser()
    args = parser.parse_args(argv)
    try:
        return run(args)
    except BrokenPipeError:  # `lab.py runs | head`: the reader has what it wanted
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except LabError as error:
        print(f"{PROG}: error: {error}", file=sys.stderr)
        return error.exit_code


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
