"""The learning-rate finder of Lesson 3: sweep the rate upwards over one pass, read off a good one.

The rate starts tiny and is multiplied by the same factor after every batch until it is huge. The
loss first barely moves, then falls fast, then turns up and explodes. A good rate sits about ten
times below the point where the smoothed loss stopped falling (seed 001's rule of thumb).

Because the rate grows by a fixed factor per batch, the step axis of the TensorBoard scalars is a
logarithmic learning-rate axis: step k means a rate of start * factor**k.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf

START_RATE = 1e-5
END_RATE = 10.0
ITERATIONS = 500  # the seed's sweep: x1.028 per batch takes 1e-5 to 10 in 500 batches
SMOOTHING = 0.98  # exponential moving average over about 50 batches, bias-corrected
# The smoothing window is a tenth of the planned sweep (50 of 500 batches, i.e. SMOOTHING), so that
# it spans the same stretch of the log-rate axis, about 0.6 decades, in a short sweep as in a long one.
SMOOTHING_SHARE = 0.1
BLOW_UP = 4.0  # the sweep stops once the smoothed loss is this many times its lowest value
SUGGESTION_DIVISOR = 10.0


@dataclass
class FinderResult:
    """One sweep: the rate and loss of every batch, and what they suggest."""

    rates: np.ndarray
    losses: np.ndarray  # each batch's own loss (not Keras's running mean)
    smoothed: np.ndarray
    turn_rate: float  # where the smoothed loss was lowest, just before it turned up
    divergence_rate: float  # the first rate at which the smoothed loss passed BLOW_UP x its lowest
    suggested_rate: float
    notes: list[str] = field(default_factory=list)
    # What marks the divergence point: "blow-up" (BLOW_UP x the lowest smoothed loss), "nan" (the
    # first NaN loss) or "end" (neither happened: the last rate tried).
    diverged_by: str = "blow-up"

    @property
    def how(self) -> str:
        """The one line that says how the suggestion was made."""
        divergence = {
            "blow-up": f"it passed {BLOW_UP:g}x its lowest at {self.divergence_rate:.2g}",
            "nan": f"it became NaN at {self.divergence_rate:.2g}",
            "end": f"it never blew up, up to {self.divergence_rate:.2g}",
        }[self.diverged_by]
        return (
            f"Suggested {self.suggested_rate:.2g}: {SUGGESTION_DIVISOR:g}x below {self.turn_rate:.2g},"
            f" the rate at which the smoothed loss stopped falling ({divergence})."
        )

    def describe(self) -> dict:
        """What run.json keeps of the sweep."""
        return {
            "start_rate": float(self.rates[0]),
            "end_rate": float(self.rates[-1]),
            "iterations": len(self.rates),
            "turn_rate": self.turn_rate,
            "divergence_rate": self.divergence_rate,
            "diverged_by": self.diverged_by,
            "suggested_rate": self.suggested_rate,
            "lowest_smoothed_loss": float(np.nanmin(self.smoothed)),
            "how": self.how,
            "notes": list(self.notes),
        }


def growth_factor(start: float, end: float, iterations: int) -> float:
    """The per-batch multiplier that takes `start` to `end` in `iterations` batches."""
    return (end / start) ** (1.0 / max(iterations - 1, 1))


def smoothing_for(iterations: int) -> float:
    """The moving average's beta for a sweep of `iterations` batches: 0.98 for 500, 0.84 for 63."""
    return 1.0 - 1.0 / max(SMOOTHING_SHARE * iterations, 2.0)


def smooth(losses: np.ndarray, beta: float = SMOOTHING) -> np.ndarray:
    """Bias-corrected exponential moving average: the raw batch losses are too noisy to read."""
    smoothed = np.empty(len(losses))
    average = 0.0
    for i, loss in enumerate(losses):
        average = beta * average + (1 - beta) * loss
        smoothed[i] = average / (1 - beta ** (i + 1))
    return smoothed


def suggest(rates: np.ndarray, losses: np.ndarray, beta: float | None = None) -> FinderResult:
    """Read a sweep: find where the smoothed loss turns up, and suggest a rate ten times lower.

    `beta` smooths the losses (default: `smoothing_for` the number of losses given)."""
    rates = np.asarray(rates, dtype=float)
    losses = np.asarray(losses, dtype=float)
    beta = smoothing_for(len(losses)) if beta is None else beta
    finite = np.isfinite(losses)
    # A NaN ends the readable part of the sweep: everything after it is the explosion.
    readable = int(np.argmin(finite)) if not finite.all() else len(losses)
    if readable < 2:
        raise ValueError("the sweep recorded fewer than two finite losses before the first NaN: nothing to read")
    smoothed = smooth(losses[:readable], beta)
    lowest = int(np.argmin(smoothed))
    blown = np.flatnonzero(smoothed[lowest:] > BLOW_UP * smoothed[lowest])
    notes = []
    if blown.size:
        divergence, diverged_by = rates[lowest + blown[0]], "blow-up"
    elif readable < len(losses):
        divergence, diverged_by = rates[readable], "nan"
        notes.append("the loss became NaN before the smoothed loss had grown fourfold")
    else:
        divergence, diverged_by = rates[readable - 1], "end"
        notes.append("the loss never blew up: the divergence point is at least the last rate tried")
    turn = rates[lowest]
    if lowest == 0:
        notes.append("the loss was lowest at the very first rate: the sweep started too high, try a smaller start rate")
    elif lowest == readable - 1:
        notes.append("the loss was still falling at the end of the sweep: try a larger end rate")
    return FinderResult(
        rates=rates,
        losses=losses,
        smoothed=np.concatenate([smoothed, np.full(len(losses) - readable, np.nan)]),
        turn_rate=float(turn),
        divergence_rate=float(divergence),
        suggested_rate=float(turn / SUGGESTION_DIVISOR),
        notes=notes,
        diverged_by=diverged_by,
    )


class ExponentialSweep(keras.callbacks.Callback):
    """Sets each batch's rate (`start * factor**k` for the k-th batch), records each batch's own
    loss, and stops training once the smoothed loss has blown up (the test `suggest` applies
    afterwards) or after `iterations` batches. `rates` and `losses` hold the sweep."""

    def __init__(self, start: float, factor: float, iterations: int, beta: float | None = None):
        super().__init__()
        self.start, self.factor, self.iterations = start, factor, iterations
        self.beta = smoothing_for(iterations) if beta is None else beta

    def on_train_begin(self, logs=None):
        self.rates, self.losses = [], []
        self.running_total = 0.0
        self.average, self.lowest = 0.0, math.inf

    def on_train_batch_begin(self, batch, logs=None):
        self.model.optimizer.learning_rate = self.start * self.factor ** len(self.rates)

    def on_train_batch_end(self, batch, logs=None):
        # Keras 3 reports the mean loss of the epoch so far; undo the mean to get this batch's.
        total = float(logs["loss"]) * (batch + 1)
        loss = total - self.running_total
        self.rates.append(self.start * self.factor ** len(self.rates))
        self.losses.append(loss)
        self.running_total = total
        self.average = self.beta * self.average + (1 - self.beta) * loss
        smoothed = self.average / (1 - self.beta ** len(self.losses))
        self.lowest = min(self.lowest, smoothed)
        exploded = not math.isfinite(smoothed) or smoothed > BLOW_UP * self.lowest
        if exploded or len(self.rates) >= self.iterations:
            self.model.stop_training = True


def read_sweep(sweep: ExponentialSweep) -> FinderResult:
    """What a finished sweep suggests, with a note when it stopped before its last batch."""
    result = suggest(np.array(sweep.rates), np.array(sweep.losses), sweep.beta)
    if len(sweep.rates) < sweep.iterations:
        ended = f"the sweep ended after {len(sweep.rates)} of {sweep.iterations} batches, once the loss had blown up"
        result.notes.append(ended)
    return result


def typed(rate: float) -> float:
    """The rate with two significant digits, as a student would type it on a command line."""
    return float(f"{rate:.2g}")


def find_learning_rate(
    model,
    x,
    y,
    *,
    batch_size: int = 32,
    start: float = START_RATE,
    end: float = END_RATE,
    iterations: int = ITERATIONS,
    writer=None,
) -> FinderResult:
    """Sweep the rate of a compiled model over one pass of (x, y), then put its weights back.

    The sweep lasts `iterations` batches, or one epoch if the data holds fewer batches, so no
    example is seen twice. `writer` (a tf.summary writer) gets the loss, smoothed loss and rate of
    every batch. Compile the model again before training it: its optimizer has moved.
    """
    batches = math.ceil(len(x) / batch_size)
    iterations = min(iterations, batches)
    initial_weights = model.get_weights()
    initial_rate = float(keras.ops.convert_to_numpy(model.optimizer.learning_rate))
    sweep = ExponentialSweep(start, growth_factor(start, end, iterations), iterations)
    model.fit(x, y, batch_size=batch_size, epochs=1, shuffle=True, callbacks=[sweep], verbose=0)
    model.set_weights(initial_weights)
    model.optimizer.learning_rate = initial_rate
    result = read_sweep(sweep)
    if writer is not None:
        write_sweep(writer, result)
    return result


def write_sweep(writer, result: FinderResult) -> None:
    """Scalars by batch: with a fixed growth factor, the step axis is a log learning-rate axis."""
    with writer.as_default():
        for step, (rate, loss, smoothed) in enumerate(zip(result.rates, result.losses, result.smoothed, strict=True)):
            tf.summary.scalar("lr_finder/learning_rate", rate, step=step)
            tf.summary.scalar("lr_finder/log10_learning_rate", math.log10(rate), step=step)
            if math.isfinite(loss):
                tf.summary.scalar("lr_finder/loss", loss, step=step)
            if math.isfinite(smoothed):
                tf.summary.scalar("lr_finder/smoothed_loss", smoothed, step=step)
    writer.flush()


def plot_sweep(result: FinderResult, axes, title: str = "Learning-rate finder") -> None:
    """Loss against rate on a log axis, with the turn-up point, the suggestion and the divergence
    point marked, drawn on `axes` (a pyplot Axes in a notebook, or an off-screen figure's)."""
    axes.plot(result.rates, result.losses, color="0.75", linewidth=0.8, label="batch loss")
    axes.plot(result.rates, result.smoothed, color="C0", linewidth=1.8, label="smoothed loss")
    axes.set_xscale("log")
    finite = result.smoothed[np.isfinite(result.smoothed)]
    # Half as much again as the starting loss shows the whole descent and the turn; the explosion
    # above it only needs to be seen leaving the plot.
    top = min(float(np.nanmax(result.losses)), BLOW_UP * float(finite.min()), 1.5 * float(finite[0]))
    axes.set_ylim(0, top * 1.05)
    axes.axvline(result.turn_rate, color="C3", linestyle="--", label=f"loss turns up ({result.turn_rate:.2g})")
    axes.axvline(result.suggested_rate, color="C2", linestyle="-", label=f"suggested ({result.suggested_rate:.2g})")
    diverged = f"divergence point ({result.divergence_rate:.2g})"
    axes.axvline(result.divergence_rate, color="0.3", linestyle=":", label=diverged)
    axes.set_xlabel("learning rate (log scale)")
    axes.set_ylabel("training loss")
    axes.set_title(title)
    axes.legend(loc="lower left")


def sweep_figure(result: FinderResult, title: str = "Learning-rate finder"):
    """`plot_sweep` on an off-screen figure of 7 x 4.2 inches (700 x 420 pixels)."""
    from labkit.dashboards import offscreen_figure

    figure = offscreen_figure(7.0, 4.2)
    plot_sweep(result, figure.add_subplot(), title)
    figure.tight_layout()
    return figure


def save_sweep_figure(result: FinderResult, path: Path, writer=None) -> Path:
    """The log-x plot as a PNG, and as a TensorBoard image when a writer is given."""
    from labkit.dashboards import figure_to_image

    figure = sweep_figure(result)
    figure.savefig(path, format="png")
    if writer is not None:
        with writer.as_default():
            tf.summary.image("lr_finder/loss_vs_learning_rate", figure_to_image(figure), step=0)
        writer.flush()
    return path
