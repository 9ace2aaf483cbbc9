"""What every section of scripts/bench.py shares: a section's result, interleaved timing, the
course's two reference models, their FLOP counts, and a plain training pipeline.

Every timing here is a median over rounds whose order rotates from round to round, so that a
machine that slows down (or speeds up) part-way through shifts every variant alike.
"""

from __future__ import annotations

import os
import statistics
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))  # the lessons' modules import as lesson_1.exercise_a.train_mnist


@dataclass
class Section:
    """One section's results: a table, the ratios it measured, what it says, and its goals."""

    name: str
    title: str
    command: str = ""
    headers: list[str] = field(default_factory=list)
    rows: list[list[str]] = field(default_factory=list)
    ratios: list[tuple[str, float, str]] = field(default_factory=list)  # (name, value, what it divides)
    notes: list[str] = field(default_factory=list)
    goals: list[tuple[str, bool | None, str]] = field(default_factory=list)  # (goal, met, reached)
    method: str = ""  # how it was measured, when not interleaved rounds in this process
    load: tuple[float, float] = (0.0, 0.0)  # 1-minute load average before and after
    seconds: float = 0.0
    when: str = ""  # when the measurement started, UTC

    def ratio(self, name: str, value: float, detail: str) -> None:
        self.ratios.append((name, float(value), detail))


def load_average() -> float:
    try:
        return os.getloadavg()[0]
    except OSError:
        return float("nan")


def interleaved(variants: dict, rounds: int) -> dict[str, list[float]]:
    """Call every variant once per round, in an order that rotates each round; each call returns
    the seconds it measured. Returns every variant's seconds, round by round."""
    names = list(variants)
    seconds = {name: [] for name in names}
    for r in range(rounds):
        shift = r % len(names)
        for name in names[shift:] + names[:shift]:
            seconds[name].append(float(variants[name]()))
    return seconds


def median(values) -> float:
    return float(statistics.median(values))


def paired_ratio(numerator: list[float], denominator: list[float]) -> float:
    """Median of the round-by-round ratios: each pair was measured side by side."""
    return median([a / b for a, b in zip(numerator, denominator, strict=True)])


def fmt(value: float, digits: int = 2) -> str:
    return f"{value:,.{digits}f}"


def silent(_message: str) -> None:
    pass


# ------------------------------------------------------------------------------------------------
# Data and models


def image_data(quick: bool):
    """The images a default Lesson 1 run trains on here (MNIST, or its labelled substitute)."""
    from labkit import data as lab_data
    from labkit.plan import QUICK_SLICE

    return lab_data.load_dataset(None, limits=dict(QUICK_SLICE) if quick else None, announce=silent)


def lesson_1_cnn():
    from lesson_1.exercise_a.train_mnist import BATCH_SIZE, build_model, compile_model

    return compile_model(build_model()), BATCH_SIZE, lambda images: images


def lesson_2_mlp():
    from lesson_2.hello_keras.train_mnist import BATCH_SIZE, build_model, compile_model, flatten_images

    return compile_model(build_model()), BATCH_SIZE, flatten_images


REFERENCE_MODELS = {"Lesson 1 CNN": lesson_1_cnn, "Lesson 2 MLP": lesson_2_mlp}


def training_pipeline(x, y, batch_size: int, seed: int = 42, cache: bool = False):
    """Shuffled, repeated, prefetched batches: what a careful bare script would feed model.fit."""
    from labkit.deferred import tf
    from labkit.session import example_count

    pipeline = tf.data.Dataset.from_tensor_slices((x, y))
    if cache:
        pipeline = pipeline.cache()
    pipeline = pipeline.shuffle(example_count(x), seed=seed, reshuffle_each_iteration=True).repeat()
    return pipeline.batch(batch_size).prefetch(tf.data.AUTOTUNE)


def fit_seconds(model, dataset, steps: int, **fit_kwargs) -> float:
    started = time.perf_counter()
    model.fit(dataset, epochs=1, steps_per_epoch=steps, shuffle=False, verbose=0, **fit_kwargs)
    return time.perf_counter() - started


def forward_macs_per_example(model) -> int:
    """Multiply-accumulates of one example's forward pass through the Conv2D and Dense layers.

    Pooling, activations, the softmax and the optimizer's update are left out: together they are a
    few percent of the total for these models, so the FLOP/s figures are slight underestimates."""
    import math

    macs = 0
    for layer in model.layers:
        kind = type(layer).__name__
        if kind == "Conv2D":
            kh, kw, c_in, c_out = layer.kernel.shape
            h_out, w_out = layer.output.shape[1:3]
            macs += h_out * w_out * kh * kw * c_in * c_out
        elif kind == "Dense":
            n_in, n_out = layer.kernel.shape
            leading = math.prod(layer.output.shape[1:-1]) if len(layer.output.shape) > 2 else 1
            macs += leading * n_in * n_out
        elif hasattr(layer, "layers") and layer.layers:
            macs += forward_macs_per_example(layer)
    return int(macs)


def training_flops_per_step(model, batch_size: int) -> float:
    """Forward = 2 FLOPs per MAC; a training step = forward + backward, about 3x the forward."""
    return 3 * 2 * forward_macs_per_example(model) * batch_size
