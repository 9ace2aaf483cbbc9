"""Lesson 3, tuning: find a learning rate for part 1's Fashion-MNIST classifier in one pass.

The finder trains the network for a single pass over the training images while the learning
rate grows by the same factor after every batch: from 1e-5 to 10 over 500 batches of 32, that
is x1.028 per batch. At first the loss hardly moves, then it drops fast, then, once the steps
are too large, it turns up and explodes. The best rate is roughly half the rate at which
training diverges; the finder picks a safer one, ten times below the point where the smoothed
loss turned up. It only looks: the weights are put back after the sweep.

The curve goes to TensorBoard, one step per batch in the run's `lr_finder` folder. Because the
rate grows by a fixed factor, that step axis is a logarithmic learning-rate axis
(`lr_finder/learning_rate` gives the rate of each step). `lr_finder.png`, in the run folder and
in the Images tab, plots the loss against the rate on a log axis.

`--check` then puts the suggestion to the test: it trains the classifier for two epochs at the
suggested rate, at 100 times that rate, and at `--learning-rate` (part 1's 0.01), each from the
same initial weights on the same batches.

    python lesson_3/tuning/train_lr_finder.py            # the sweep alone: seconds
    python lesson_3/tuning/train_lr_finder.py --check    # then three short trainings to compare
    python lesson_3/tuning/train_lr_finder.py --quick --check
    tensorboard --logdir runs/lesson_3/tuning/lr_finder
"""

import argparse
import math
from pathlib import Path

import pandas as pd

from labkit import LabError, cli
from labkit.lr_finder import END_RATE, ITERATIONS, START_RATE, FinderResult, find_learning_rate, save_sweep_figure
from labkit.session import RunSet, TrainingSession, run_main
from lesson_3.fashion_classifier.train_mnist import BATCH_SIZE, LEARNING_RATE, build_model, compile_model

CHECK_EPOCHS = 2  # long enough for a good rate to pull ahead, short enough to run in a lesson
CHECK_FACTOR = 100  # the check's "too large" rate: two decades above the suggestion
FIGURE = "lr_finder.png"
PART_1_SCRIPT = "lesson_3/fashion_classifier/train_mnist.py"


# ----------------------------------------------------------------------------------------------
# The sweep: part 1's network, one pass, a rate that climbs from batch to batch


def sweep(session, args) -> FinderResult:
    """Sweep the rate over one pass of the training images, log it, plot it; weights restored."""
    data = session.data
    # Part 1's network and SGD; the sweep sets the optimizer's rate itself before every batch.
    model = compile_model(build_model(data.num_classes))
    session.model = model
    writer = session.open_writer("lr_finder")
    result = find_learning_rate(
        model,
        data.x_train,
        data.y_train,
        batch_size=session.plan.batch_size,
        start=args.start_rate,
        end=args.end_rate,
        iterations=args.iterations,
        writer=writer,
    )
    save_sweep_figure(result, session.run_dir / FIGURE, writer=writer)
    return result


def typed(rate: float) -> float:
    """The rate with two significant digits, as a student would type it on a command line."""
    return float(f"{rate:.2g}")


def part_1_command(rate: float, args) -> str:
    """The command that trains part 1's classifier at `rate`, on the data and batch size swept."""
    flags = [f"--learning-rate {rate:g}"]
    if args.batch_size != BATCH_SIZE:
        flags.append(f"--batch-size {args.batch_size}")  # the best rate depends on the batch size
    if args.dataset:
        flags.append(f"--dataset {args.dataset}")
    return f"python {PART_1_SCRIPT} " + " ".join(flags)


def runs_folder(args) -> Path:
    """Beside the search activities' runs, in a folder of its own: one TensorBoard per method."""
    return args.runs_root / "lesson_3" / "tuning" / "lr_finder"


def check_sweep_flags(args) -> None:
    if args.start_rate >= args.end_rate:
        raise LabError(
            f"--start-rate {args.start_rate:g} must be below --end-rate {args.end_rate:g}: the rate only grows"
        )
    if args.iterations < 2:
        raise LabError(f"--iterations {args.iterations} is too few: a sweep needs at least 2 batches")


def find_rate(args, *, dataset=None, quiet=False, parent_dir=None) -> tuple[TrainingSession, FinderResult | None]:
    """Run the sweep in a run folder of its own; returns the session and what the sweep found
    (None if it was interrupted)."""
    check_sweep_flags(args)
    hparams = {
        "learning_rate": None,  # no single rate: the sweep tries hundreds
        "epochs": 1,
        "steps_per_epoch": None,
        "model": "mlp",
        "start_rate": args.start_rate,
        "end_rate": args.end_rate,
        "iterations": args.iterations,
    }
    result = None
    with TrainingSession(
        __file__,
        args,
        tag="sweep",
        extra_hparams=hparams,
        dataset=dataset,
        quiet=quiet,
        parent_dir=parent_dir or runs_folder(args),
    ) as session:
        result = sweep(session, args)
        command = part_1_command(typed(result.suggested_rate), args)
        session.record.add_extra("lr_finder", result.describe())
        session.record.add_extra("part_1_command", command)
        swept = f"rate {result.rates[0]:.2g} to {result.rates[-1]:.2g}"
        session.say(f"Swept {len(result.rates)} batches of {session.plan.batch_size}, {swept}.")
        session.say(result.how)
        for note in result.notes:
            session.say(f"  ({note})")
        ratio = typed(result.suggested_rate) / args.learning_rate
        reference = "part 1's rate" if args.learning_rate == LEARNING_RATE else "the --learning-rate given"
        session.say(f"That is {ratio:.2g} times {reference}, {args.learning_rate:g}. Train part 1's classifier at it:")
        session.say(f"  {command}")
        if session.plan.quick:
            session.say("  (a quick sweep reads a small slice: sweep without --quick before a full training)")
        session.say(f"The curve: {session.run_dir / FIGURE}")
    return session, result


# ----------------------------------------------------------------------------------------------
# The check: does the suggestion train better than a rate 100 times larger?


def check_suggestion(args, result: FinderResult, model, data, *, quiet=False, parent_dir=None) -> RunSet:
    """Train the swept model for a few epochs at the suggestion, at 100x it and at
    `--learning-rate`, each run from the weights the sweep started from (and put back)."""
    suggested = typed(result.suggested_rate)
    rates = {
        "suggested": suggested,
        f"{CHECK_FACTOR}x": typed(CHECK_FACTOR * suggested),
        "reference": args.learning_rate,
    }
    start = model.get_weights()
    runs = RunSet()
    for tag, rate in rates.items():
        check_args = argparse.Namespace(**{**vars(args), "learning_rate": rate})
        with TrainingSession(
            __file__,
            check_args,
            tag=tag,
            extra_hparams={"model": "mlp"},
            dataset=data,
            quiet=quiet,
            parent_dir=parent_dir or runs_folder(args),
        ) as session:
            # The same model object for every run: its training step is traced once, not three
            # times. Plain SGD keeps no state but its step counter, so resetting the weights, the
            # counter and the rate gives each run the same start as a freshly compiled model.
            model.set_weights(start)
            model.optimizer.iterations.assign(0)
            model.optimizer.learning_rate = rate
            session.model = model
            session.fit(model)
            session.evaluate(model)
        runs.add(tag, session)
        if session.status != "finished":
            return runs
    runs.comparison = comparison(runs)
    verdict = suggestion_wins(runs.comparison)
    runs.last.record.add_extra("check", runs.comparison.reset_index().to_dict(orient="records"))
    runs.last.record.add_extra("suggestion_beats_100x", verdict)
    if not quiet:
        print("\nThe same network, the same start, the same batches, three learning rates:")
        print(runs.comparison.to_string(float_format=lambda v: f"{v:.4f}"))
        beyond = "beyond" if rates[f"{CHECK_FACTOR}x"] >= result.divergence_rate else "below"
        print(
            f"{CHECK_FACTOR}x the suggestion ({rates[f'{CHECK_FACTOR}x']:g}) lies {beyond} the rate at which the sweep"
            f" diverged ({result.divergence_rate:.2g}). The suggestion "
            + ("beats it." if verdict else "does NOT beat it: look at the curve before trusting the rule of thumb.")
        )
    return runs


def comparison(runs: RunSet) -> pd.DataFrame:
    rows = {}
    for tag, session in runs.sessions.items():
        record = session.record.data
        rows[tag] = {
            "learning_rate": record["hparams"]["learning_rate"],
            "validation_loss": record["metrics"]["validation"]["loss"],
            "validation_accuracy": record["metrics"]["validation"]["accuracy"],
            "test_accuracy": record["metrics"]["test"]["accuracy"],
        }
    return pd.DataFrame.from_dict(rows, orient="index").rename_axis("run")


def suggestion_wins(table: pd.DataFrame) -> bool:
    """Lower validation loss and higher validation accuracy than at 100x; a NaN loss always loses."""
    good, large = table.loc["suggested"], table.loc[f"{CHECK_FACTOR}x"]
    lower_loss = math.isfinite(good.validation_loss) and not (large.validation_loss <= good.validation_loss)
    return bool(lower_loss and good.validation_accuracy > large.validation_accuracy)


# ----------------------------------------------------------------------------------------------
# Command line


def make_parser():
    parser = cli.build_parser(
        __doc__,
        epochs=CHECK_EPOCHS,
        learning_rate=LEARNING_RATE,
        batch_size=BATCH_SIZE,
        default_dataset="fashion_mnist",
        several_runs="a sweep that takes seconds (run it again) and, with --check, three short trainings",
    )
    parser.add_argument(
        "--start-rate",
        type=cli.positive_float,
        default=START_RATE,
        help=f"first rate of the sweep (default {START_RATE:g})",
    )
    parser.add_argument(
        "--end-rate", type=cli.positive_float, default=END_RATE, help=f"last rate of the sweep (default {END_RATE:g})"
    )
    parser.add_argument(
        "--iterations",
        type=cli.positive_int,
        default=ITERATIONS,
        help=f"batches in the sweep, at most one pass over the training images (default {ITERATIONS})",
    )
    parser.add_argument(
        "--check",
        action="store_true",
        help=f"then train {CHECK_EPOCHS} epochs (--epochs) at the suggestion, at {CHECK_FACTOR}x it and at"
        " --learning-rate, and compare them",
    )
    return parser


def train(args, *, dataset=None, quiet=False, parent_dir=None) -> RunSet:
    """The sweep, then with --check the three comparison runs; a RunSet keyed sweep, suggested,
    100x and reference."""
    runs = RunSet()
    session, result = find_rate(args, dataset=dataset, quiet=quiet, parent_dir=parent_dir)
    runs.add("sweep", session)
    if args.check and session.status == "finished":
        checked = check_suggestion(args, result, session.model, session.data, quiet=quiet, parent_dir=parent_dir)
        for tag, run in checked.sessions.items():
            runs.add(tag, run)
        runs.comparison = checked.comparison
    return runs


def main(argv=None):
    return run_main(train, make_parser, argv)


if __name__ == "__main__":
    raise SystemExit(main())
