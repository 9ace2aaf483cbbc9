"""Lesson 1, Activity 2: explore a trained network, then change how it learns.

The network is Exercise A's, imported rather than copied. This script trains it with other
learning rates and training lengths, each into its own run folder beside the others, so that
TensorBoard (or the notebook here) can lay their curves over each other.

    # one variant: the lesson's "lr 0.1 for 100 steps"
    python lesson_1/activity_2/train_mnist.py --learning-rate 0.1 --steps 100
    # a sweep: several variants as sibling runs (LEARNING_RATE@STEPS, comma-separated)
    python lesson_1/activity_2/train_mnist.py --sweep 1e-4@2000,1e-3@2000,1e-1@100
    # the pre-recorded runs that ship with the course (no training needed):
    tensorboard --logdir lesson_1/activity_2/recorded_runs
    # how they were made (delete the folder's runs first to replace them, not add to them):
    python lesson_1/activity_2/train_mnist.py --sweep --record

Every variant is cut into EVALUATIONS equal "epochs", so all runs have the same number of points
on the epoch axis; the `accuracy_by_step` curve puts them on a common step axis instead.
"""

import argparse
import copy
import math
from pathlib import Path

import labkit  # noqa: F401  (first: it quiets TensorFlow's C++ start-up logs)

from labkit import cli
from labkit.session import TrainingSession, run_main
from lesson_1.exercise_a.train_mnist import (BATCH_SIZE, LEARNING_RATE, build_model,
                                             compile_model)

LESSON_STEPS = 2000
EVALUATIONS = 10  # validation points per run, whatever its length
DEFAULT_SWEEP = "1e-4@2000,1e-3@2000,1e-1@100"
VALIDATE_EVERY_STEPS = 10
RECORDED_RUNS = Path(__file__).resolve().parent / "recorded_runs"


def parse_variant(text):
    """'1e-3@2000' -> (0.001, 2000): a learning rate and a number of training steps."""
    rate_text, _, steps_text = text.partition("@")
    try:
        rate, steps = float(rate_text), int(steps_text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected LEARNING_RATE@STEPS such as 1e-3@2000, got '{text}'") from None
    if not (math.isfinite(rate) and rate > 0) or steps < EVALUATIONS:
        raise argparse.ArgumentTypeError(
            f"'{text}': the learning rate must be above 0 and steps at least {EVALUATIONS}")
    return rate, steps


def parse_sweep(text):
    variants = [parse_variant(item.strip()) for item in text.split(",") if item.strip()]
    if not variants:
        raise argparse.ArgumentTypeError("the sweep is empty")
    return variants


def make_parser():
    parser = cli.build_parser(__doc__, epochs=EVALUATIONS, learning_rate=LEARNING_RATE,
                              batch_size=BATCH_SIZE)
    parser.add_argument("--steps", type=cli.positive_int, default=None,
                        help=f"total training steps, split into {EVALUATIONS} evaluations "
                             f"(overrides --epochs/--steps-per-epoch; the lesson used {LESSON_STEPS})")
    parser.add_argument("--sweep", nargs="?", const=DEFAULT_SWEEP, type=parse_sweep, default=None,
                        metavar="LR@STEPS,...",
                        help=f"train several variants as sibling runs (default set: {DEFAULT_SWEEP})")
    parser.add_argument("--record", action="store_true",
                        help=f"write the runs into {RECORDED_RUNS.name}/, the pre-recorded runs "
                             "that ship with the course, instead of the runs root")
    return parser


def variant_args(args, learning_rate, steps):
    """The shared arguments of one variant: `steps` become EVALUATIONS epochs of equal length."""
    variant = copy.copy(args)
    variant.learning_rate = learning_rate
    variant.steps_per_epoch = max(steps // EVALUATIONS, 1)
    variant.epochs = EVALUATIONS
    if args.quick:
        variant.epochs = min(variant.epochs, cli.QUICK_MAX_EPOCHS)
        variant.steps_per_epoch = min(variant.steps_per_epoch, cli.QUICK_MAX_STEPS_PER_EPOCH)
    return variant


def train_one(args, dataset=None, **session_options):
    with TrainingSession(__file__, args, dataset=dataset, **session_options) as session:
        model = compile_model(build_model(num_classes=session.data.num_classes), args.learning_rate)
        session.model = model
        session.fit(model, validate_every_steps=VALIDATE_EVERY_STEPS)
        session.evaluate(model)
    return session


def train(args, **session_options):
    """Train one variant, or every variant of --sweep; returns the last session."""
    if args.record:
        session_options.setdefault("parent_dir", RECORDED_RUNS)
    if args.sweep:
        variants = args.sweep
    elif args.steps:
        variants = [(args.learning_rate, args.steps)]
    else:
        return train_one(args, **session_options)
    session, dataset = None, None
    for learning_rate, steps in variants:
        session = train_one(variant_args(args, learning_rate, steps), dataset=dataset, **session_options)
        if session.status == "interrupted":
            break  # Ctrl-C stops the whole sweep, not just the current variant
        dataset = session.data  # load (and announce) the data once per sweep
    return session


def main(argv=None):
    return run_main(train, make_parser, argv)


if __name__ == "__main__":
    raise SystemExit(main())
