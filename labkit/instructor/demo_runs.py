"""`python scripts/lab.py demo-runs [--lesson N ...]`: regenerate the recorded runs in demo_runs/.

Each lesson's TensorBoard moment ships as real runs made by the course's own scripts, so that an
instructor can open TensorBoard on them before anyone has trained anything. This module holds the
one list of the commands that make them (`PLAN`) and the runner that replays it: every command
trains into a scratch logdir, then only what TensorBoard shows (event files, run.json, the
projector's files) is copied into demo_runs/<lesson>/. Model files stay behind, which keeps the
whole folder small enough for git. A lesson's folder is swapped in only when all its commands
succeeded, so a failed or interrupted regeneration leaves the old demo runs as they were.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

from labkit import REPO_ROOT, LabError
from labkit.cli import OneLineParser

DEMO_ROOT = Path(REPO_ROOT) / "demo_runs"
DEMO_JSON = "demo.json"
SIZE_BUDGET_BYTES = 5 * 1024 * 1024


@dataclass(frozen=True)
class Step:
    script: str
    args: tuple[str, ...] = ()
    # False for a run another step needs (Lesson 4's baseline) but the demo does not show.
    shipped: bool = True

    def command(self, logdir: Path, quick: bool) -> list[str]:
        return [sys.executable, self.script, *self.args, "--logdir", str(logdir), *(["--quick"] if quick else [])]


PLAN: dict[str, tuple[Step, ...]] = {
    # The three learning rates of Activity 2 (14 minutes on full MNIST, 2 cores shared with other training).
    "lesson_1": (Step("lesson_1/activity_2/train_mnist.py", ("--sweep",)),),
    # SGD, RMSprop and Adam on one network (3 minutes on full MNIST, shared cores).
    "lesson_2": (Step("lesson_2/anatomy/train_mnist.py"),),
    # Two learning rates, the summaries and every deep-dive dashboard (about 1 minute), then one
    # keras-tuner search whose trials fill the HParams table (about 2 minutes).
    "lesson_3": (
        Step("lesson_3/tensorboard/train_mnist.py"),
        Step("lesson_3/tuning/train_keras_tuner.py", ("--tuner", "random")),
    ),
    # Retraining needs a trained Lesson 1 model to start from; only the retraining is shown: its
    # edge table before and after (11 minutes on full MNIST, shared cores).
    "lesson_4": (
        Step("lesson_1/exercise_a/train_mnist.py", shipped=False),
        Step("lesson_4/retrain/train_mnist.py"),
    ),
}

# What TensorBoard never reads: model files (77 MB for one Lesson 1 model), their cards, and
# keras-tuner's own bookkeeping and checkpoints.
LEFT_OUT_SUFFIXES = (".keras", ".h5", ".card.json", ".partial", ".tmp")
LEFT_OUT_FOLDERS = ("tuner",)


def kept(path: Path) -> bool:
    return not path.name.endswith(LEFT_OUT_SUFFIXES) and not any(part in LEFT_OUT_FOLDERS for part in path.parts)


def folder_size(folder: Path) -> int:
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())


def copy_shown_files(scratch: Path, destination: Path, lesson_root: str) -> list[str]:
    """Copy the files TensorBoard shows for one lesson's runs; returns the run folders copied."""
    runs = []
    source_root = scratch / lesson_root
    for run_json in sorted(source_root.rglob("run.json")):
        run_dir = run_json.parent
        relative = run_dir.relative_to(source_root)
        if any(relative.is_relative_to(done) for done in map(Path, runs)):
            continue  # a run nested inside a run already copied (keras-tuner's trials)
        for source in sorted(run_dir.rglob("*")):
            inside = source.relative_to(run_dir)
            if source.is_file() and kept(inside):
                target = destination / relative / inside
                target.parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(source, target)
        runs.append(relative.as_posix())
    return runs


def regenerate(lesson: str, into: Path, quick: bool) -> dict:
    steps = PLAN[lesson]
    into.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix=f"demo-{lesson}-") as scratch_name:
        scratch = Path(scratch_name)
        for step in steps:
            command = step.command(scratch / "runs", quick)
            print(f"[demo-runs] {lesson}: {' '.join(command[1:])}", flush=True)
            env = {k: v for k, v in os.environ.items() if k not in ("LAB_RUNS_DIR", "LAB_QUICK")}
            if subprocess.call(command, cwd=REPO_ROOT, env=env) != 0:
                raise LabError(f"{lesson}: `{' '.join(command[1:])}` failed; {into / lesson} was left as it was")
        staged = Path(tempfile.mkdtemp(prefix=f".{lesson}-", dir=into))
        try:
            shipped_roots = {Path(step.script).parent.relative_to(lesson) for step in steps if step.shipped}
            runs = []
            for root in sorted(shipped_roots):
                copied = copy_shown_files(scratch / "runs" / lesson, staged / root, root.as_posix())
                runs += [(root / run).as_posix() for run in copied]
            summary = {
                "lesson": lesson,
                "commands": [[step.script, *step.args] for step in steps],
                "shipped": [step.script for step in steps if step.shipped],
                "quick": quick,
                "runs": runs,
                "made_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
                "wall_time_s": round(time.monotonic() - started, 1),
                "size_bytes": folder_size(staged),
            }
            (staged / DEMO_JSON).write_text(json.dumps(summary, indent=2) + "\n")
            swap_in(staged, into / lesson)
        except BaseException:
            shutil.rmtree(staged, ignore_errors=True)
            raise
    return summary


def swap_in(staged: Path, final: Path) -> None:
    """Replace a lesson's demo folder by the new one, never leaving it half-written."""
    old = final.with_name(f".{final.name}-old")
    shutil.rmtree(old, ignore_errors=True)
    if final.exists():
        final.rename(old)
    staged.rename(final)
    shutil.rmtree(old, ignore_errors=True)


# The lessons whose demos train on MNIST: they are recorded on full MNIST, the data a class with
# internet trains on, never on the offline subset.
FULL_MNIST_LESSONS = ("lesson_1", "lesson_2", "lesson_4")


def missing_full_mnist(lessons: list[str]) -> str | None:
    """Why these lessons cannot be recorded here, or None."""
    needing = [lesson for lesson in lessons if lesson in FULL_MNIST_LESSONS]
    if not needing:
        return None
    from labkit.data import offline_availability

    if offline_availability()["mnist"] is not None:
        return None
    return (
        f"the demo runs of {', '.join(needing)} are recorded on full MNIST, which is not on this machine: "
        "run `python scripts/fetch_data.py` or point LAB_DATA_MIRROR at a mirror of it "
        "(--quick proves the commands on any data)"
    )


def make_parser() -> argparse.ArgumentParser:
    parser = OneLineParser(
        prog="lab.py demo-runs",
        description="Regenerate the recorded demo runs with the course's own scripts.",
    )
    parser.add_argument(
        "--lesson",
        action="append",
        choices=[name.split("_")[1] for name in PLAN],
        help="only this lesson (repeatable; default: all four, about 30 minutes on 2 cores)",
    )
    parser.add_argument("--into", type=Path, default=DEMO_ROOT, help=f"where to write (default: {DEMO_ROOT})")
    parser.add_argument("--quick", action="store_true", help="small slices: proves the commands, not for shipping")
    parser.add_argument("--list", action="store_true", help="print the commands and exit")
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = make_parser()
    args = parser.parse_args(argv)
    lessons = [f"lesson_{number}" for number in args.lesson] if args.lesson else list(PLAN)
    if args.list:
        for lesson in lessons:
            for step in PLAN[lesson]:
                shown = "" if step.shipped else "   (needed, not shipped)"
                print(f"{lesson}: python {' '.join([step.script, *step.args])}{shown}")
        return 0
    into = args.into.expanduser().resolve()
    if into.exists() and not into.is_dir():
        print(f"{parser.prog}: error: --into {into} is a file, not a folder", file=sys.stderr)
        return 2
    problem = None if args.quick else missing_full_mnist(lessons)
    if problem:
        print(f"{parser.prog}: error: {problem}", file=sys.stderr)
        return 2
    try:
        for lesson in lessons:
            summary = regenerate(lesson, into, args.quick)
            print(
                f"[demo-runs] {lesson}: {len(summary['runs'])} runs, "
                f"{summary['size_bytes'] / 1e6:.2f} MB, {summary['wall_time_s']:.0f} s"
            )
    except LabError as error:
        print(f"{parser.prog}: error: {error}", file=sys.stderr)
        return 1
    total = sum(folder_size(into / lesson) for lesson in PLAN if (into / lesson).is_dir())
    note = "" if total <= SIZE_BUDGET_BYTES else f" (over the {SIZE_BUDGET_BYTES / 2**20:.0f} MiB budget)"
    print(f"[demo-runs] {into}: {total / 1e6:.2f} MB in all{note}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
