"""Lesson 3, TensorBoard in depth: compare runs, write summaries by hand, and use every dashboard.

Three parts, each written as sibling run folders under runs/lesson_3/tensorboard/, so that one
TensorBoard shows them all:

1. learning rates: the regression MLP of this lesson (Dense 30 ReLU, Dense 1, MSE, SGD) trained
   30 epochs at learning rate 0.001 and again at 0.05, from the same initial weights. Laid over
   each other in the Scalars tab, the two `epoch_loss` curves are the seed's figure 10-17.
2. summaries: the low-level tf.summary API on its own, steps 1 to 1000: a scalar sin(step / 10),
   a histogram of normal samples whose mean drifts with the step, two random 32x32 RGB images,
   text and one second of 48 kHz audio.
3. dashboards: the Fashion-MNIST classifier of this lesson, 5 epochs, with what the Keras 3
   callback no longer writes restored by labkit.dashboards: the op graph, per-layer weight
   histograms, a confusion matrix and the misclassified test images each epoch, and the
   embedding projector on the last hidden layer.

    python lesson_3/tensorboard/train_mnist.py                     # all three parts
    python lesson_3/tensorboard/train_mnist.py --quick             # the same on small slices, seconds
    python lesson_3/tensorboard/train_mnist.py --part summaries    # one part only
    tensorboard --logdir runs/lesson_3/tensorboard
"""

import copy
import math

import numpy as np

from labkit import cli
from labkit.dashboards import SummaryRun, deep_dive_callbacks
from labkit.deferred import keras, tf  # TensorFlow loads on first use, after the flags are checked
from labkit.distribute import writes_runs
from labkit.plan import training_plan
from labkit.session import RunSet, TrainingSession, run_main
from labkit.tabular import load_regression_data
from lesson_3.fashion_classifier.train_mnist import build_model as build_classifier
from lesson_3.fashion_classifier.train_mnist import compile_model as compile_classifier
from lesson_3.regression.train_regression import build_model as build_regressor
from lesson_3.regression.train_regression import compile_model as compile_regressor

PARTS = ("learning-rates", "summaries", "dashboards")
COMPARED_LEARNING_RATES = (1e-3, 5e-2)  # the two runs of the seed's figure 10-17
REGRESSION_EPOCHS = 30
EPOCHS = 5  # the deep-dive run: enough for every dashboard to move, not to reach the best accuracy
LEARNING_RATE = 0.01  # the classifier's SGD rate in the seed
BATCH_SIZE = 32  # Keras's default, which the seed keeps
SUMMARY_STEPS = 1000
SAMPLE_RATE = 48_000  # audio samples per second
HISTOGRAM_EVERY = 10  # TensorBoard keeps 500 histograms per tag; 100 show the drift as well
MEDIA_EVERY = 100  # images, text and audio: TensorBoard keeps only 10 of each per tag


# ----------------------------------------------------------------------------------------------
# Part 2, the lesson's own code: writing summaries by hand


def write_summaries(writer, steps=SUMMARY_STEPS, seed=42):
    """One writer, one `step` axis, five kinds of summary; each kind lights up its own tab.

    The scalar gets every step. The others are written less often (a histogram costs about 5 ms
    here), and TensorBoard would sample them down anyway: to 500 histograms and to 10 images,
    texts or audio clips per tag."""
    rng = np.random.default_rng(seed)
    seconds = tf.cast(tf.range(SAMPLE_RATE), tf.float32) / SAMPLE_RATE  # one second; the seed's 12000 gave 0.25 s
    with writer.as_default():
        for step in range(1, steps + 1):
            tf.summary.scalar("sin", math.sin(step / 10), step=step)
            if step % HISTOGRAM_EVERY:
                continue
            # Mean 2 * step / 100 and spread step / 100: the histogram slides right and widens.
            drifting = rng.normal(loc=2.0, scale=1.0, size=1000) * step / 100
            tf.summary.histogram("drifting_normal", drifting, buckets=50, step=step)
            if step % MEDIA_EVERY:
                continue
            images = rng.random((2, 32, 32, 3)) * step / steps  # later steps are brighter
            tf.summary.image("random_images", images, step=step)
            tf.summary.text("step_text", [f"This is step {step}.", f"Its square is {step**2:,}."], step=step)
            tone = 0.5 * tf.sin(2 * math.pi * step * seconds)  # a pure tone of `step` Hz
            tf.summary.audio("tone", tf.reshape(tone, [1, -1, 1]), sample_rate=SAMPLE_RATE, step=step)


# ----------------------------------------------------------------------------------------------
# The three parts


def train_learning_rates(args, *, dataset=None, quiet=False, parent_dir=None) -> RunSet:
    """The regression MLP once per learning rate, same data, same seed, so only the rate differs."""
    runs = RunSet()
    for rate in COMPARED_LEARNING_RATES:
        rate_args = copy.copy(args)
        rate_args.learning_rate, rate_args.epochs, rate_args.steps_per_epoch = rate, args.regression_epochs, None
        if dataset is None:
            dataset = load_regression_data(
                limits=training_plan(rate_args).slice, announce=(lambda message: None) if quiet else print
            )
        keras.backend.clear_session()  # nothing but the data carries over from one run to the next
        with TrainingSession(
            __file__, rate_args, tag="regression", dataset=dataset, quiet=quiet, parent_dir=parent_dir
        ) as session:
            model = compile_regressor(build_regressor(dataset.num_features), learning_rate=rate)
            session.model = model
            session.fit(model)
            session.evaluate(model)
        runs.add(f"lr{rate:g}", session)
        if session.status == "interrupted":
            break
    return runs


def summaries_demo(args, *, quiet=False, parent_dir=None) -> SummaryRun:
    with SummaryRun(
        __file__,
        args,
        tag="summaries",
        hparams={"steps": SUMMARY_STEPS, "seed": args.seed},
        source="signals generated by write_summaries(): a sine, normal samples, random pixels, pure tones",
        quiet=quiet,
        parent_dir=parent_dir,
    ) as run:
        write_summaries(run.writer, SUMMARY_STEPS, seed=args.seed)
        run.record.add_extra(
            "summaries",
            {
                "steps": SUMMARY_STEPS,
                "histogram_every": HISTOGRAM_EVERY,
                "media_every": MEDIA_EVERY,
                "sample_rate": SAMPLE_RATE,
                "audio_seconds": 1.0,
            },
        )
    return run


def train_dashboards(args, *, dataset=None, quiet=False, parent_dir=None) -> TrainingSession:
    """The Fashion-MNIST classifier with every dashboard of labkit.dashboards switched on."""
    with TrainingSession(
        __file__, args, tag="dashboards", dataset=dataset, quiet=quiet, parent_dir=parent_dir
    ) as session:
        data = session.data
        model = compile_classifier(build_classifier(num_classes=data.num_classes), learning_rate=args.learning_rate)
        session.model = model
        dashboards = deep_dive_callbacks(
            session, model, x_test=data.x_test, y_test=data.y_test, class_names=data.class_names
        )
        session.fit(model, extra_callbacks=dashboards)
        session.evaluate(model)
    return session


# ----------------------------------------------------------------------------------------------
# Command line


def make_parser():
    parser = cli.build_parser(
        __doc__,
        epochs=EPOCHS,
        learning_rate=LEARNING_RATE,
        batch_size=BATCH_SIZE,
        default_dataset="fashion_mnist",
        several_runs="a regression pair, a tf.summary run and a deep-dive run",
    )
    parser.add_argument(
        "--part",
        choices=("all", *PARTS),
        default="all",
        help="run one part only (default: all three); --epochs, --learning-rate and --dataset apply to the "
        "dashboards part",
    )
    parser.add_argument(
        "--regression-epochs",
        type=cli.positive_int,
        default=REGRESSION_EPOCHS,
        help=f"epochs of each learning-rate run (default {REGRESSION_EPOCHS}, as in the seed)",
    )
    return parser


def train(args, *, quiet=False, parent_dir=None) -> RunSet:
    """The chosen parts in order; returns a RunSet keyed lr0.001, lr0.05, summaries, dashboards.
    Ctrl-C ends the part that runs and skips the rest."""
    runs = RunSet()
    wanted = PARTS if args.part == "all" else (args.part,)
    if "learning-rates" in wanted:
        for name, session in train_learning_rates(args, quiet=quiet, parent_dir=parent_dir).sessions.items():
            runs.add(name, session)
        if runs.exit_code:
            return runs
    # The summaries part trains nothing, so the other workers of --distribute multiworker have no
    # share in it: the chief writes it alone.
    if "summaries" in wanted and writes_runs(args):
        runs.add("summaries", summaries_demo(args, quiet=quiet, parent_dir=parent_dir))
        if runs.exit_code:
            return runs
    if "dashboards" in wanted:
        runs.add("dashboards", train_dashboards(args, quiet=quiet, parent_dir=parent_dir))
    return runs


def main(argv=None):
    return run_main(train, make_parser, argv)


if __name__ == "__main__":
    raise SystemExit(main())
