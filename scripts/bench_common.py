"""What every section of scripts/bench.py shares: a section's result, interleaved timing, the
course's two reference models (built from what the activities' own quick runs saved), their FLOP
counts, and a plain training pipeline.

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
    sys.path.insert(0, str(REPO))  # labkit imports from the repository, wherever the bench runs from


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

# The bench imports no activity: it runs an activity's quick command, then builds the model that
# run saved, afresh. The cheapest commands that still save the model in question:
ONE_STEP = ("--epochs", "1", "--steps-per-epoch", "1")
EXERCISE_A = ("lesson_1/exercise_a/train_mnist.py", *ONE_STEP)
HELLO_KERAS = ("lesson_2/hello_keras/train_mnist.py", *ONE_STEP)
_source_runs: dict[tuple[str, ...], dict] = {}
_source_root: list[Path] = []  # the temporary runs root every source run of this process shares


def source_root() -> Path:
    if not _source_root:
        import atexit
        import shutil
        import tempfile

        _source_root.append(Path(tempfile.mkdtemp(prefix="bench-sources-")))
        atexit.register(shutil.rmtree, _source_root[0], ignore_errors=True)
    return _source_root[0]


def activity_runs(script: str, *flags: str) -> dict:
    """`python script --quick *flags` run once per process, outside the bench's own runs root;
    the finished runs it wrote, by their tag (None for an activity's single run)."""
    import json
    import subprocess

    command = (script, *flags)
    if command not in _source_runs:
        root = source_root()
        before = set(root.rglob("run.json"))
        env = dict(os.environ, LAB_OFFLINE="1", TF_CPP_MIN_LOG_LEVEL="2", PYTHONUNBUFFERED="1")
        env.pop("LAB_QUICK", None)
        env.pop("LAB_RUNS_DIR", None)
        done = subprocess.run(
            [sys.executable, str(REPO / script), "--quick", *flags, "--logdir", str(root)],
            cwd=REPO,
            env=env,
            capture_output=True,
            text=True,
            timeout=900,
        )
        if done.returncode != 0:
            tail = (done.stderr or done.stdout).strip().splitlines()[-1:] or ["no output"]
            raise RuntimeError(f"python {' '.join(command)} --quick exited {done.returncode}: {tail[0]}")
        runs = {}
        for path in sorted(set(root.rglob("run.json")) - before):
            record = json.loads(path.read_text())
            if record.get("status") == "finished" and (path.parent / "model.keras").is_file():
                runs[record.get("tag")] = path.parent
        _source_runs[command] = runs
    return _source_runs[command]


def source_run(script: str, *flags: str, tag: str | None = None) -> Path:
    runs = activity_runs(script, *flags)
    if tag not in runs:
        raise RuntimeError(f"python {script} --quick {' '.join(flags)} saved no model for the run tagged {tag!r}")
    return runs[tag]


def run_record(run_dir: Path) -> dict:
    import json

    return json.loads((Path(run_dir) / "run.json").read_text())


def under_policy(saved: dict, policy: str) -> dict:
    """A saved functional or Sequential config with every layer but the input and the outputs set
    to compute under the dtype `policy`; the outputs stay float32, as Lesson 1's page keeps its
    softmax under --precision mixed_bfloat16."""
    inner = saved["config"]
    layers = inner["layers"]
    named = inner.get("output_layers") or []
    if named and not isinstance(named[0], list):  # one output: ["fc2", 0, 0]; several: [["a", 0, 0], ...]
        named = [named]
    outputs = {entry[0] for entry in named} or {layers[-1]["config"]["name"]}
    for layer in layers:
        if layer["class_name"] != "InputLayer" and layer["config"].get("name") not in outputs:
            layer["config"]["dtype"] = policy
    return saved


def fresh_model(run_dir: Path, policy: str | None = None):
    """The model a run saved, built again from its architecture with new weights and compiled as
    the activity compiled it (the optimizer's settings, loss and metrics; `.keras` files keep them).
    Keras records the jit_compile it settled on; a fresh compile lets it choose again, as the
    activity's own compile did."""
    import json
    import zipfile

    import keras

    with zipfile.ZipFile(Path(run_dir) / "model.keras") as archive:
        saved = json.loads(archive.read("config.json"))
    compile_config = saved.pop("compile_config", None)
    model = keras.saving.deserialize_keras_object(under_policy(saved, policy) if policy else saved)
    if compile_config:
        compile_config.pop("jit_compile", None)
        model.compile_from_config(compile_config)
    return model


def as_input(array, shape):
    """`array` in the shape an input of the model takes: as it is, reshaped (flat images for an
    MLP), or, for an input the activity derives from the images with its own code (which the
    bench does not import), seeded noise of that shape: the same work for the model."""
    import math

    import numpy as np

    target = tuple(shape[1:])
    if tuple(array.shape[1:]) == target:
        return array
    if math.prod(array.shape[1:]) == math.prod(target):
        return array.reshape((len(array), *target))
    return np.random.default_rng(0).normal(size=(len(array), *target)).astype("float32")


def model_inputs(model, x):
    """`x` fed to every input of `model` (a dict by input name when it has several)."""
    if len(model.inputs) == 1:
        return as_input(x, model.inputs[0].shape)
    return {tensor.name: as_input(x, tensor.shape) for tensor in model.inputs}


def model_targets(model, y):
    """The labels for every output: the labels themselves, or for a one-unit head (Lesson 2's
    "is it even?") whether the label is even."""
    if len(model.outputs) == 1:
        return y
    return {
        name: y if tensor.shape[-1] > 1 else (y % 2 == 0).astype("float32")
        for name, tensor in zip(model.output_names, model.outputs, strict=True)
    }


def image_data(quick: bool):
    """The images a default Lesson 1 run trains on here (MNIST, or its labelled substitute)."""
    from labkit import data as lab_data
    from labkit.plan import QUICK_SLICE

    return lab_data.load_dataset(None, limits=dict(QUICK_SLICE) if quick else None, announce=silent)


def reference_model(command: tuple[str, ...], policy: str | None = None):
    run_dir = source_run(*command)
    model = fresh_model(run_dir, policy)
    return model, run_record(run_dir)["hparams"]["batch_size"], lambda images: model_inputs(model, images)


def lesson_1_cnn(policy: str | None = None):
    return reference_model(EXERCISE_A, policy)


def lesson_2_mlp(policy: str | None = None):
    return reference_model(HELLO_KERAS, policy)


REFERENCE_MODELS = {"Lesson 1 CNN": lesson_1_cnn, "Lesson 2 MLP": lesson_2_mlp}


def training_pipeline(x, y, batch_size: int, seed: int = 42, cache: bool = False):
    """Shuffled, repeated, prefetched batches: what a careful bare script would feed model.fit."""
    import tensorflow as tf

    from labkit.training import example_count

    pipeline = tf.data.Dataset.from_tensor_slices((x, y))
    if cache:
        pipeline = pipeline.cache()
    pipeline = pipeline.shuffle(example_count(x), seed=seed, reshuffle_each_iteration=True).repeat()
    return pipeline.batch(batch_size).prefetch(tf.data.AUTOTUNE)


def lab_config(runs_root: Path, *, batch_size: int, epochs: int, steps_per_epoch: int | None, seed: int = 42,
               learning_rate: float | None = None):  # fmt: skip
    """The settings `labkit.training.start_run` takes, as an activity's flags cell makes them."""
    from labkit import cli

    parser = cli.build_parser(
        "scripts/bench.py: the lab's training loop",
        epochs=epochs,
        learning_rate=learning_rate or 1e-3,
        batch_size=batch_size,
        steps_per_epoch=steps_per_epoch,
    )
    return cli.parse(parser, ["--logdir", str(runs_root), "--seed", str(seed)])


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
