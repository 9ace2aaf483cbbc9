"""Sections 2, 4 and 5 of scripts/bench.py: distance from the hardware, the input pipeline, and
the compiler and precision options. Each measures inside this one process, side by side."""

from __future__ import annotations

import itertools
import time
from pathlib import Path

from bench_common import (
    REFERENCE_MODELS,
    Section,
    fit_seconds,
    fmt,
    image_data,
    interleaved,
    lab_config,
    median,
    paired_ratio,
    training_flops_per_step,
    training_pipeline,
)

ROOFLINE_GOAL = 0.5


def cpu_bfloat16_units() -> str:
    """What the doctor's cpu.bfloat16 row says about this CPU, as a sentence."""
    from stack_doctor.cpu import check_bfloat16
    from stack_doctor.world import World

    return "This CPU: " + check_bfloat16(World().cpu_flags()).found + "."


def matmul_seconds(m: int, k: int, n: int, reps: int, dtype: str = "float32"):
    """A callable timing `reps` (m x k) @ (k x n) matmuls in `dtype`, 2 m k n FLOPs each."""
    import tensorflow as tf

    a = tf.cast(tf.random.stateless_normal((m, k), seed=(1, 2)), dtype)
    b = tf.cast(tf.random.stateless_normal((k, n), seed=(3, 4)), dtype)
    tf.matmul(a, b).numpy()  # the first call picks its kernels; not timed

    def run() -> float:
        started = time.perf_counter()
        for _ in range(reps):
            product = tf.matmul(a, b)
        product.numpy()  # waits for the last one
        return time.perf_counter() - started

    return run


# The roofline is the best square matmul; the MLP's own first-layer shape shows what its sizes allow.
SQUARE = {False: {1024: 20, 2048: 4}, True: {256: 20}}
MLP_LAYER = "matmul 128x784x512 (the MLP's first layer)"
BF16 = "mixed_bfloat16"  # Keras's policy; the matmul rows name the dtype itself, bfloat16


def roofline(quick: bool, rounds: int) -> Section:
    section = Section("roofline", "Distance from the hardware: achieved training GFLOP/s against a float32 matmul")
    section.headers = ["workload", "batch", "GFLOP per call or step", "median s (fastest)", "GFLOP/s", "of roofline"]
    data = image_data(quick)
    steps = {"Lesson 1 CNN": 6 if quick else 60, "Lesson 2 MLP": 20 if quick else 300}
    variants, flops, calls = {}, {}, {}
    for n, reps in SQUARE[quick].items():
        variants[f"matmul {n}"], flops[f"matmul {n}"], calls[f"matmul {n}"] = (
            matmul_seconds(n, n, n, reps),
            2.0 * n**3 * reps,
            reps,
        )
    largest, largest_reps = max(SQUARE[quick].items())
    bf16_peak_name = f"matmul {largest} bfloat16"
    variants[bf16_peak_name], flops[bf16_peak_name], calls[bf16_peak_name] = (
        matmul_seconds(largest, largest, largest, largest_reps, "bfloat16"),
        2.0 * largest**3 * largest_reps,
        largest_reps,
    )
    reps = 20 if quick else 200
    variants[MLP_LAYER], flops[MLP_LAYER], calls[MLP_LAYER] = (
        matmul_seconds(128, 784, 512, reps),
        2.0 * 128 * 784 * 512 * reps,
        reps,
    )
    batches = {}
    for (name, factory), policy in itertools.product(REFERENCE_MODELS.items(), (None, BF16)):
        model, batch_size, prepare = factory(policy)
        pipeline = training_pipeline(prepare(data.x_train), data.y_train, batch_size, cache=True)
        fit_seconds(model, pipeline, 3)  # traces the training step; not timed
        label = f"{name}, {policy}" if policy else name
        variants[label] = lambda model=model, pipeline=pipeline, n=steps[name]: fit_seconds(model, pipeline, n)
        flops[label], calls[label] = training_flops_per_step(model, batch_size) * steps[name], steps[name]
        batches[label] = batch_size
    seconds = interleaved(variants, rounds)
    rates = {name: flops[name] / median(values) / 1e9 for name, values in seconds.items()}
    peak_name = max((f"matmul {n}" for n in SQUARE[quick]), key=rates.get)
    peak, bf16_peak = rates[peak_name], rates[bf16_peak_name]

    def own_peak(name: str) -> float:  # a bfloat16 workload against the bfloat16 matmul
        return bf16_peak if name.endswith((BF16, "bfloat16")) else peak

    for name, values in seconds.items():
        section.rows.append(
            [
                name,
                str(batches.get(name, "-")),
                fmt(flops[name] / 1e9 / calls[name], 3),
                f"{fmt(median(values), 3)} ({fmt(min(values), 3)})",
                fmt(rates[name], 1),
                f"{rates[name] / own_peak(name):.0%}",
            ]
        )
    for name in REFERENCE_MODELS:
        fraction = rates[name] / peak
        section.ratio(f"roofline.{name.replace(' ', '_')}", fraction, f"{rates[name]:.1f} / {peak:.1f} GFLOP/s")
        section.goals.append(
            (
                f"{name} trains at >= {ROOFLINE_GOAL:.0%} of the matmul roofline",
                fraction >= ROOFLINE_GOAL,
                f"{fraction:.0%}",
            )
        )
    section.ratio("roofline.mlp_layer_matmul", rates[MLP_LAYER] / peak, "a matmul of the MLP's shape / the roofline")
    section.ratio("roofline.bfloat16_matmul", bf16_peak / peak, f"{bf16_peak_name} / {peak_name}")
    for name in REFERENCE_MODELS:
        key, label = name.replace(" ", "_"), f"{name}, {BF16}"
        section.ratio(f"roofline_bf16.{key}", rates[label] / bf16_peak, f"{rates[label]:.1f} / {bf16_peak:.1f} GFLOP/s")
        section.ratio(f"{BF16}.{key}", paired_ratio(seconds[label], seconds[name]), f"seconds {BF16} / float32")
    section.notes += [
        f"Roofline: the fastest square float32 matmul measured in this run ({peak_name}: {peak:.1f} GFLOP/s); "
        f"for the {BF16} rows, the same matmul in bfloat16 ({bf16_peak:.1f} GFLOP/s). {cpu_bfloat16_units()}",
        "Seconds are medians, the fastest round in brackets.",
        "FLOPs counted, not profiled: forward = 2 x the multiply-accumulates of the Conv2D and Dense layers, "
        "a training step = 3 x forward. Pooling, activations, the loss and the optimizer's update are not counted: "
        "the ops section (`--only ops`) shows what they cost a step.",
        f"Training: model.fit on cached, prefetched batches ({steps['Lesson 1 CNN']} and "
        f"{steps['Lesson 2 MLP']} steps per round), after a traced warm-up; data: {data.name}.",
    ]
    return section


FEEDS = {
    "no input (one batch, repeated)": None,
    "NumPy arrays": "arrays",
    "tf.data cached + prefetched": "tf_data",
    "the toolkit's pipeline": "toolkit",
}


def input_pipeline(quick: bool, rounds: int) -> Section:
    """The same model fed four ways; the step rate with no input work at all is the ceiling."""
    section = Section("input", "Input pipeline: steps/s of the same model fed four ways")
    section.headers = ["model", "input", "steps", "median s", "steps/s", "of no-input rate"]
    data = image_data(quick)
    for name in ["Lesson 2 MLP"] if quick else list(REFERENCE_MODELS):
        steps, seconds = _feed_seconds(name, data, quick, rounds)
        ceiling = steps / median(seconds["no input (one batch, repeated)"])
        for feed, values in seconds.items():
            rate = steps / median(values)
            section.rows.append([name, feed, str(steps), fmt(median(values), 3), fmt(rate, 1), f"{rate / ceiling:.0%}"])
            if FEEDS[feed]:
                section.ratio(
                    f"input.{name.replace(' ', '_')}.{FEEDS[feed]}",
                    paired_ratio(values, seconds["no input (one batch, repeated)"]),
                    "seconds against the no-input run",
                )
    toolkit = max(value for name, value, _ in section.ratios if name.endswith(".toolkit"))
    section.goals.append(
        ("the toolkit's input pipeline is never the bottleneck (within 10% of the no-input rate)", toolkit <= 1.10,
         f"worst {toolkit:.2f}x the no-input time")
    )  # fmt: skip
    section.notes.append(
        f"Data: {data.name}, {len(data.x_train):,} training images. The no-input run repeats one batch already "
        "in memory: the fastest any feed can be. NumPy arrays go through model.fit(x, y) with the same number of "
        "steps. The toolkit's pipeline shuffles the whole training set afresh each epoch, uncached."
    )
    return section


def _feed_seconds(name: str, data, quick: bool, rounds: int):
    import tempfile

    import tensorflow as tf
    from tensorflow.python.framework import config as tf_config

    from labkit.training import start_run

    model, batch_size, prepare = REFERENCE_MODELS[name]()
    x, y = prepare(data.x_train), data.y_train
    epochs = 1 if quick else (2 if name == "Lesson 1 CNN" else 8)
    steps = -(-len(x) // batch_size) * epochs
    # The toolkit's pipeline is `run.batches`, so it takes a run: one in a throwaway folder. start_run
    # turns op determinism on; the feeds here are measured as they were before it.
    was_deterministic = tf_config.is_op_determinism_enabled()
    with tempfile.TemporaryDirectory(prefix="bench-input-") as folder:
        config = lab_config(Path(folder), batch_size=batch_size, epochs=1, steps_per_epoch=steps)
        run = start_run(config, data, quiet=True, parent_dir=Path(folder))
        toolkit = run.batches(x, y)
        run.finish()
    determinism(was_deterministic)
    cached = training_pipeline(x, y, batch_size, cache=True)
    one_batch = tf.data.Dataset.from_tensors((x[:batch_size], y[:batch_size])).repeat()
    fit_seconds(model, one_batch, 2)  # trace first; not timed
    feeds = {
        "no input (one batch, repeated)": lambda: fit_seconds(model, one_batch, steps),
        "NumPy arrays": lambda: _fit_arrays(model, x, y, batch_size, epochs),
        "tf.data cached + prefetched": lambda: fit_seconds(model, cached, steps),
        "the toolkit's pipeline": lambda: fit_seconds(model, toolkit, steps),
    }
    return steps, interleaved(feeds, rounds)


def _fit_arrays(model, x, y, batch_size: int, epochs: int) -> float:
    started = time.perf_counter()
    model.fit(x, y, batch_size=batch_size, epochs=epochs, shuffle=True, verbose=0)
    return time.perf_counter() - started


def determinism(on: bool) -> None:
    """Op determinism on or off. TensorFlow's public API can only switch it on; off goes through
    the module that the public call lives in."""
    import tensorflow as tf
    from tensorflow.python.framework import config as tf_config

    if on:
        tf.config.experimental.enable_op_determinism()
    else:
        tf_config.disable_op_determinism()


def options(quick: bool, rounds: int) -> Section:
    import tensorflow as tf
    from tensorflow.python.framework import config as tf_config

    section = Section("options", "Options: XLA (jit_compile), op determinism, mixed precision")
    section.headers = ["model", "XLA", "op determinism", "steps", "median s", "steps/s"]
    data = image_data(quick)
    was_deterministic = tf_config.is_op_determinism_enabled()
    try:
        for name, factory in REFERENCE_MODELS.items():
            steps = (6 if quick else 60) if name == "Lesson 1 CNN" else (20 if quick else 300)
            determinism(False)
            default, plain = _jit_feed(factory, data, False, steps)
            applied, xla = _jit_feed(factory, data, True, steps)
            determinism(True)
            refused, deterministic = _jit_feed(factory, data, True, steps)
            refused = not refused  # with determinism on, Keras turns jit_compile=True back to False
            determinism(False)
            feeds = {("off", "off"): plain, ("on", "off"): xla, ("off", "on"): _with_determinism(deterministic)}
            seconds = interleaved(feeds, rounds)
            for (jit, det), values in seconds.items():
                rate = steps / median(values)
                section.rows.append([name, jit, det, str(steps), fmt(median(values), 3), fmt(rate, 1)])
            key = name.replace(" ", "_")
            if applied:
                section.ratio(f"jit.{key}", paired_ratio(seconds["on", "off"], seconds["off", "off"]), "XLA / not")
            else:
                section.notes.append(f"{name}: Keras refused jit_compile=True even without op determinism.")
            section.ratio(
                f"determinism.{key}", paired_ratio(seconds["off", "on"], seconds["off", "off"]), "deterministic / not"
            )
            section.notes.append(
                f"{name}: Keras chose jit_compile={default} by itself here"
                + ("; with op determinism on it refused jit_compile=True." if refused else ".")
            )
    finally:
        determinism(was_deterministic)
    section.notes.append(
        "Every lab run turns op determinism on (start_run does), and Keras then refuses XLA: the XLA rows are "
        "measured with determinism off, which no lab run does."
    )
    gpus = tf.config.list_physical_devices("GPU")
    if not gpus:
        section.notes.append(
            "Mixed precision: no GPU: skipped. mixed_float16 pays off only on GPUs with float16 units "
            "(tensor cores); on a CPU the float16 math is emulated and slower, so there is nothing to learn here."
        )
    else:
        section.notes += mixed_precision(data, quick, rounds, section)
    return section


def _with_determinism(run):
    def deterministic() -> float:
        determinism(True)
        try:
            return run()
        finally:
            determinism(False)

    return deterministic


def _jit_feed(factory, data, jit: bool, steps: int):
    """A model compiled as its lesson compiles it, with XLA asked on or off, traced before any
    timing. Returns what Keras chose by itself (or, asked for XLA, whether it kept it) and the timed fit."""
    model, batch_size, prepare = factory()
    chosen = model.jit_compile
    if jit:
        model.jit_compile = True
        chosen = model.jit_compile  # False when Keras refused it
    else:
        model.jit_compile = False
    pipeline = training_pipeline(prepare(data.x_train), data.y_train, batch_size, cache=True)
    fit_seconds(model, pipeline, 3)  # traces (and with XLA compiles) the step; not timed
    return chosen, lambda: fit_seconds(model, pipeline, steps)


def mixed_precision(data, quick: bool, rounds: int, section: Section) -> list[str]:
    """GPU only: the Lesson 1 CNN under float32 and under mixed_float16."""
    import keras
    import tensorflow as tf

    steps = 10 if quick else 200
    feeds = {}
    for policy in ("float32", "mixed_float16"):
        keras.mixed_precision.set_global_policy(policy)
        model, batch_size, prepare = REFERENCE_MODELS["Lesson 1 CNN"]()
        pipeline = training_pipeline(prepare(data.x_train), data.y_train, batch_size, cache=True)
        fit_seconds(model, pipeline, 3)
        feeds[policy] = lambda m=model, d=pipeline: fit_seconds(m, d, steps)
    keras.mixed_precision.set_global_policy("float32")
    seconds = interleaved(feeds, rounds)
    section.ratio(
        "mixed_precision.Lesson_1_CNN",
        paired_ratio(seconds["mixed_float16"], seconds["float32"]),
        "seconds mixed / float32",
    )
    names = ", ".join(gpu.name for gpu in tf.config.list_physical_devices("GPU"))
    return [
        f"Mixed precision on {names}: " + ", ".join(f"{p} {steps / median(s):.1f} steps/s" for p, s in seconds.items())
    ]
