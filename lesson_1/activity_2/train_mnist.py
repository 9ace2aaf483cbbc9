"""Lesson 1, Activity 2: explore a trained network, then change how it learns.

The network is Exercise A's, imported rather than copied. This script trains it with other
learning rates and training lengths, each into its own run folder beside the others, so that
TensorBoard (or the notebook here) can lay their curves over each other.

    # one variant: the lesson's "lr 0.1 for 100 steps"
    python lesson_1/activity_2/train_mnist.py --learning-rate 0.1 --steps 100
    # a sweep: several variants as sibling runs (LEARNING_RATE@STEPS, comma-separated)
    python lesson_1/activity_2/train_mnist.py --sweep 1e-4@2000,1e-3@2000,1e-1@100
    # the pre-recorded runs that ship with the course (no training needed):
    python scripts/lab.py tensorboard demo_runs/lesson_1
    # how they are made: this script's default --sweep, replayed by
    python scripts/lab.py demo-runs --lesson 1

Every variant is cut into EVALUATIONS equal "epochs", so all runs have the same number of points
on the epoch axis; the `accuracy_by_step` curve puts them on a common step axis instead.
"""

import argparse
import copy
import math
from pathlib import Path

from labkit import REPO_ROOT, cli
from labkit.session import RunSet, TrainingSession, run_main
from lesson_1.exercise_a.train_mnist import BATCH_SIZE, LEARNING_RATE, build_model, compile_model

LESSON_STEPS = 2000
EVALUATIONS = 10  # validation points per run, whatever its length
DEFAULT_SWEEP = "1e-4@2000,1e-3@2000,1e-1@100"
VALIDATE_EVERY_STEPS = 10
# Made by `python scripts/lab.py demo-runs --lesson 1` (labkit/demo_runs.py): this script's sweep.
RECORDED_RUNS = Path(REPO_ROOT) / "demo_runs" / "lesson_1" / "activity_2"


def parse_variant(text):
    """'1e-3@2000' -> (0.001, 2000): a learning rate and a number of training steps."""
    rate_text, _, steps_text = text.partition("@")
    try:
        rate, steps = float(rate_text), int(steps_text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected LEARNING_RATE@STEPS such as 1e-3@2000, got '{text}'") from None
    if not (math.isfinite(rate) and rate > 0) or steps < EVALUATIONS:
        raise argparse.ArgumentTypeError(
            f"'{text}': the learning rate must be above 0 and steps at least {EVALUATIONS}"
        )
    return rate, steps


def parse_sweep(text):
    variants = [parse_variant(item.strip()) for item in text.split(",") if item.strip()]
    if not variants:
        raise argparse.ArgumentTypeError("the sweep is empty")
    return variants


def make_parser():
    parser = cli.build_parser(__doc__, epochs=EVALUATIONS, learning_rate=LEARNING_RATE, batch_size=BATCH_SIZE)
    parser.add_argument(
        "--steps",
        type=cli.positive_int,
        default=None,
        help=f"total training steps, split into {EVALUATIONS} evaluations "
        f"(overrides --epochs/--steps-per-epoch; the lesson used {LESSON_STEPS})",
    )
    parser.add_argument(
        "--sweep",
        nargs="?",
        const=DEFAULT_SWEEP,
        type=parse_sweep,
        default=None,
        metavar="LR@STEPS,...",
        help=f"train several variants as sibling runs (default set: {DEFAULT_SWEEP})",
    )
    return parser


def variant_args(args, learning_rate, steps):
    """The flags of one variant: `steps` become EVALUATIONS epochs of equal length (quick mode
    then caps them like any other run's, in labkit.plan)."""
    variant = copy.copy(args)
    variant.learning_rate = learning_rate
    variant.steps_per_epoch = max(steps // EVALUATIONS, 1)
    variant.epochs = EVALUATIONS
    return variant


def train_one(args, *, dataset=None, quiet=False, parent_dir=None):
    with TrainingSession(__file__, args, dataset=dataset, quiet=quiet, parent_dir=parent_dir) as session:
        model = compile_model(build_model(num_classes=session.data.num_classes), args.learning_rate)
        session.model = model
        session.fit(model, validate_every_steps=VALIDATE_EVERY_STEPS)
        session.evaluate(model)
    return session


def train(args, *, dataset=None, quiet=False, parent_dir=None):
    """Train one variant, or every variant of --sweep, as sibling runs; returns a RunSet keyed
    by LEARNING_RATE@STEPS (or by the learning rate alone for a plain run)."""
    if args.sweep:
        variants = [(f"{rate:g}@{steps}", variant_args(args, rate, steps)) for rate, steps in args.sweep]
    elif args.steps:
        variants = [(f"{args.learning_rate:g}@{args.steps}", variant_args(args, args.learning_rate, args.steps))]
    else:
        variants = [(f"{args.learning_rate:g}", args)]
    runs = RunSet()
    for name, variant in variants:
        session = runs.add(name, train_one(variant, dataset=dataset, quiet=quiet, parent_dir=parent_dir))
        if session.status == "interrupted":
            break  # Ctrl-C stops the whole sweep, not just the current variant
        dataset = session.data  # load (and announce) the data once per sweep
    return runs


def main(argv=None):
    return run_main(train, make_parser, argv)


if __name__ == "__main__":
    raise SystemExit(main())
