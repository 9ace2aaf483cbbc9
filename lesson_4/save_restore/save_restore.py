"""Lesson 4: save a trained model three ways, load each one back, and prove it predicts the same.

It trains nothing: it takes the `model.keras` that a finished run saved (by default the newest run
of Lesson 1, Exercise A) and writes, in a run folder of its own,

1. `model.keras`: the whole model (architecture, weights, optimizer state) in one zip file;
2. `model.weights.h5`: the weights alone, loaded back into a fresh model built from the config;
3. `export/`: a TensorFlow SavedModel from `model.export()`, the format TF Serving reads,

each with a JSON model card beside it. Every copy is loaded back a few times (the median load time
is kept), scored on the same test images as the original, and must give the same predictions.

    python lesson_4/save_restore/save_restore.py                  # the newest Lesson 1 Exercise A run
    python lesson_4/save_restore/save_restore.py --run RUN_DIR    # any finished run with a model.keras
    python lesson_4/save_restore/save_restore.py --quick          # 200 test images, each copy loaded once
"""

import copy
import statistics
import time
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from labkit import LabError, cli
from labkit.data import load_dataset
from labkit.deferred import keras, tf  # TensorFlow loads on first use, after the flags are checked
from labkit.runs import RunRecord, create_run_dir, read_run
from labkit.saved_models import MODEL_FILE, model_card, model_in_run, newest_run_model, size_on_disk, write_card
from labkit.session import SigtermAsException, Terminated, interrupted_exit_code, run_main

SOURCE_ACTIVITY = ("lesson_1", "exercise_a")
WEIGHTS_FILE = "model.weights.h5"
EXPORT_FOLDER = "export"
QUICK_IMAGES = 200  # --quick compares on the first 200 test images of the run
LOAD_REPEATS = 3  # each copy is loaded this many times (once with --quick); the median load time is reported
BATCH_SIZE = 256  # one batch size for every path, so that each sees the very same batches
SERVING_TOLERANCE = 1e-6  # a SavedModel runs TensorFlow's own graph: allowed to differ by rounding only


# ----------------------------------------------------------------------------------------------
# Three ways to save a model: this is the part of the lesson to read closely.


def save_whole(model, folder: Path) -> Path:
    """Architecture, weights and the optimizer's state in one zip: enough to resume training."""
    path = folder / MODEL_FILE
    model.save(path)
    return path


def save_weights_alone(model, folder: Path) -> Path:
    """Only the numbers in the layers. Keras 3 writes a compiled model's optimizer state into a
    .weights.h5 as well, so the weights are saved from an uncompiled twin that has no optimizer.
    (`get_config()` leaves the compile settings out; `to_json()` keeps them, and `model_from_json`
    would hand back a compiled twin, optimizer included.)"""
    twin = keras.Model.from_config(model.get_config())
    twin.set_weights(model.get_weights())
    path = folder / WEIGHTS_FILE
    twin.save_weights(path)
    return path


def export_for_serving(model, folder: Path) -> Path:
    """A TensorFlow SavedModel whose `serve` function is the forward pass: inference only."""
    path = folder / EXPORT_FOLDER
    model.export(path, format="tf_saved_model", verbose=False)
    return path


# ... and the ways to load each one back.


def load_whole(path):
    return keras.models.load_model(path)


def load_weights_into_fresh_model(path, config: dict):
    """The weights file holds no architecture: code (here the model's config) must rebuild it."""
    # Same layers, fresh random weights. from_config consumes parts of the dict it is given
    # (Keras 3.15: a second call with the same dict builds no model), so it gets a copy.
    model = keras.Model.from_config(copy.deepcopy(config))
    model.load_weights(path)
    return model


def load_served(path):
    """No Keras model comes back, only a TensorFlow object with the `serve` function on it."""
    return tf.saved_model.load(str(path))


def load_as_keras_layer(path):
    """Keras 3's `load_model` cannot read a SavedModel; TFSMLayer wraps one as an inference-only layer."""
    return keras.layers.TFSMLayer(str(path), call_endpoint="serve")


def predict_keras(model, images):
    return model.predict(images, batch_size=BATCH_SIZE, verbose=0)


def predict_served(artifact, images):
    return in_batches_of(lambda batch: artifact.serve(tf.constant(batch)), images)


def in_batches_of(forward, images):
    """`forward` (a TFSMLayer, a served function) on BATCH_SIZE images at a time, as predict does."""
    return np.concatenate([np.asarray(forward(images[i : i + BATCH_SIZE])) for i in range(0, len(images), BATCH_SIZE)])


# ----------------------------------------------------------------------------------------------
# Measuring


def timed_loads(load, repeats=LOAD_REPEATS):
    """The last loaded copy and the median of `repeats` load times in seconds."""
    seconds, loaded = [], None
    for _ in range(repeats):
        start = time.perf_counter()
        loaded = load()
        seconds.append(time.perf_counter() - start)
    return loaded, statistics.median(seconds)


def compare(reference, predictions, labels) -> dict:
    return {
        "max_abs_diff": float(np.max(np.abs(predictions - reference))),
        "bit_identical": bool(np.array_equal(predictions, reference)),
        "labels_identical": bool(np.array_equal(predictions.argmax(axis=1), reference.argmax(axis=1))),
        "accuracy": float(np.mean(predictions.argmax(axis=1) == labels)),
    }


def stored_bytes(path) -> dict:
    """What a saved copy holds, in bytes by top-level name: `layers` and `optimizer` in a Keras
    weights file (inside the .keras zip too), the variable collections in a SavedModel."""
    import h5py

    path, groups = Path(path), {}

    def add(name, nbytes):
        groups[name.split("/")[0]] = groups.get(name.split("/")[0], 0) + int(nbytes)

    if path.is_dir():
        reader = tf.train.load_checkpoint(str(path / "variables" / "variables"))
        dtypes = reader.get_variable_to_dtype_map()
        for name, shape in reader.get_variable_to_shape_map().items():
            if not name.startswith("_CHECKPOINTABLE"):  # the object graph, not a weight
                add(name, np.prod(shape) * dtypes[name].size)
        return groups

    def read_h5(handle):
        with h5py.File(handle, "r") as h5:
            h5.visititems(
                lambda name, item: add(name, item.size * item.dtype.itemsize) if hasattr(item, "dtype") else None
            )

    if path.suffix == ".keras":
        with zipfile.ZipFile(path) as archive, archive.open("model.weights.h5") as weights:
            read_h5(weights)
    else:
        read_h5(path)
    return groups


def load_model_refusal(path) -> str:
    """What Keras 3's load_model says to a SavedModel folder (its first sentence)."""
    try:
        keras.models.load_model(path)
    except ValueError as error:
        return str(error).split(". ")[0] + "."
    raise AssertionError(f"keras.models.load_model read the SavedModel {path}: Keras changed, update the lesson")


def keras_story(contents: dict) -> str:
    """Why the .keras file weighs what it does, from the bytes measured inside it."""
    weights, optimizer = contents["keras"]["layers"], contents["keras"].get("optimizer", 0)
    return (
        f"The .keras file is {(weights + optimizer) / weights:.1f}x the weights alone: {weights / 1e6:.1f} MB of "
        f"weights and {optimizer / 1e6:.1f} MB of optimizer state (Adam keeps two moment slots, m and v, per weight, "
        "plus its step counter and learning rate)."
    )


def export_story(contents: dict) -> str:
    copies = sum(contents["savedmodel"].values()) / contents["keras"]["layers"]
    stored = ", ".join(f"{name} {size / 1e6:.1f} MB" for name, size in sorted(contents["savedmodel"].items()))
    times = {1: "once", 2: "twice"}.get(round(copies, 2), f"{round(copies, 2):g} times")
    return f"The export stores each weight {times}: {stored}."


def card_notes(kind: str, contents: dict) -> str:
    if kind == "keras":
        return "The whole model; load with keras.models.load_model, and training can resume. " + keras_story(contents)
    if kind == "weights":
        return (
            f"The weights alone ({contents['weights']['layers'] / 1e6:.1f} MB): no architecture, no optimizer. Rebuild "
            "the model (from code or keras.Model.from_config) and call load_weights. Saved from an uncompiled twin: "
            "Keras 3's save_weights writes a compiled model's optimizer state too. " + keras_story(contents)
        )
    return (
        "A TensorFlow SavedModel for serving: tf.saved_model.load(path).serve(images). Inference only: "
        "keras.models.load_model cannot read it in Keras 3, keras.layers.TFSMLayer can. " + export_story(contents)
    )


# ----------------------------------------------------------------------------------------------
# The run


class ReloadMismatch(LabError):
    """A reloaded copy predicts differently from the original: the run fails (exit 1)."""

    exit_code = 1


@dataclass
class SaveRestore:
    """What one run measured; `exit_code` for the command line."""

    source_dir: Path
    run_dir: Path | None = None
    record: RunRecord | None = None
    rows: list = field(default_factory=list)
    images: Any = None  # the test images every copy was scored on, and their labels
    labels: Any = None
    exit_code: int = 0


class RecordedRun:
    """run.json says finished, failed, or interrupted (Ctrl-C or SIGTERM) however the work ends."""

    def __init__(self, outcome: SaveRestore):
        self.outcome, self.sigterm = outcome, SigtermAsException()

    def __enter__(self):
        self.sigterm.start()
        return self

    def __exit__(self, exc_type, exc, tb) -> bool:
        self.sigterm.stop()
        if exc_type in (KeyboardInterrupt, Terminated):
            self.outcome.record.finish("interrupted")
            self.outcome.exit_code = interrupted_exit_code(exc_type)
            print(f"\nInterrupted; what was saved so far stays in {self.outcome.run_dir}", flush=True)
            return True
        self.outcome.record.finish("failed" if exc_type else "finished", exc_type and f"{exc_type.__name__}: {exc}")
        return False


def find_source(args) -> tuple[Path, dict]:
    """`--run RUN_DIR`'s model.keras (or the newest finished Lesson 1 Exercise A run's) and run.json."""
    path = model_in_run(args.run) if args.run else newest_run_model(args.runs_root, *SOURCE_ACTIVITY)
    try:
        return path, read_run(path.parent)
    except (OSError, ValueError) as error:
        raise LabError(f"{path.parent}: its run.json cannot be read ({error})") from None


def comparison_images(source: dict, quick: bool, say=print):
    """The test images the source run was scored on (the first QUICK_IMAGES with --quick)."""
    described = source.get("dataset") or {}
    name, count = described.get("name"), (described.get("sizes") or {}).get("test")
    if not name or not count:
        raise LabError(f"run {source.get('run_name')}: its run.json names no dataset with a test split")
    data = load_dataset(name, announce=say)
    if len(data.x_test) < count:
        raise LabError(f"{name} here has {len(data.x_test)} test images; the run was scored on {count}")
    keep = min(count, QUICK_IMAGES) if quick else count
    return data, data.x_test[:keep], data.y_test[:keep]


def check_takes_images(model, images, run_dir) -> None:
    inputs = getattr(model, "inputs", None) or []
    if len(inputs) != 1 or tuple(inputs[0].shape[1:]) != images.shape[1:]:
        shapes = [tuple(i.shape[1:]) for i in inputs]
        raise LabError(f"--run {run_dir}: its model takes inputs {shapes}, not one image of shape {images.shape[1:]}")


def not_noise(entry) -> bool:
    """Every reloaded model traces its own predict function, once per batch shape: this lesson working
    as intended, not the retracing problem TensorFlow warns about. And `export` announces an assets
    folder that a model without assets never fills."""
    return not any(text in entry.getMessage() for text in ("triggered tf.function retracing", "Assets written to"))


def save_restore(args, *, quiet=False) -> SaveRestore:
    """Save the source run's model three ways, reload and compare each; returns what it measured.

    Everything that can refuse (the run folder, its data, its model's input) is checked before
    the run folder of this activity is created."""
    say = (lambda message: None) if quiet else (lambda message: print(message, flush=True))
    source_path, source = find_source(args)  # a LabError here: nothing loaded, nothing written
    outcome = SaveRestore(source_dir=source_path.parent)
    data, outcome.images, outcome.labels = comparison_images(source, args.quick, say)
    say(f"Source: {source_path} ({size_on_disk(source_path) / 1e6:.1f} MB)")
    model = load_whole(source_path)
    if not getattr(args, "verbose", False):
        tf.get_logger().addFilter(not_noise)
    check_takes_images(model, outcome.images, outcome.source_dir)
    repeats = 1 if args.quick else LOAD_REPEATS
    hparams = dict(dataset=data.name, images=len(outcome.images), load_repeats=repeats, source=source["run_name"])
    parent = args.runs_root / "lesson_4" / "save_restore"
    outcome.run_dir = create_run_dir(parent, hparams, tag="quick" if args.quick else None)
    outcome.record = RunRecord(
        outcome.run_dir,
        lesson="lesson_4",
        activity="save_restore",
        hparams=hparams,
        # The source run's own words for its data: a substitute for MNIST stays labelled as one.
        dataset={**data.describe(), **source["dataset"], "sizes": {"test": len(outcome.images)}},
        quick=args.quick,
    )
    say(f"Run folder: {outcome.run_dir}")
    with RecordedRun(outcome):
        save_reload_compare(model, source, outcome, repeats, say)
    return outcome


def save_reload_compare(model, source: dict, outcome: SaveRestore, repeats: int, say) -> None:
    run_dir, record, images, labels = outcome.run_dir, outcome.record, outcome.images, outcome.labels
    reference = predict_keras(model, images)
    saved = {
        "keras": save_whole(model, run_dir),
        "weights": save_weights_alone(model, run_dir),
        "savedmodel": export_for_serving(model, run_dir),
    }
    contents = {kind: stored_bytes(path) for kind, path in saved.items()}
    for kind, path in saved.items():
        card = model_card(path, outcome.source_dir, model=model, saved_as=kind, record=source)
        card.update(notes=card_notes(kind, contents), saved_by=str(run_dir.resolve()))
        write_card(path, card)
    record.add_extra("stored_bytes", contents)
    record.add_extra("load_model_on_savedmodel", load_model_refusal(saved["savedmodel"]))

    config = model.get_config()
    ways = {  # row: (saved copy, how to load it, how to predict with what was loaded)
        "keras": (saved["keras"], lambda: load_whole(saved["keras"]), predict_keras),
        "weights": (saved["weights"], lambda: load_weights_into_fresh_model(saved["weights"], config), predict_keras),
        "savedmodel": (saved["savedmodel"], lambda: load_served(saved["savedmodel"]), predict_served),
        "tfsmlayer": (saved["savedmodel"], lambda: load_as_keras_layer(saved["savedmodel"]), in_batches_of),
    }
    for name, (path, load, predict) in ways.items():
        loaded, seconds = timed_loads(load, repeats)
        row = {"format": name, "file": path.name, "size_bytes": size_on_disk(path), "load_s": round(seconds, 4)}
        outcome.rows.append({**row, **compare(reference, predict(loaded, images), labels)})
    test_accuracy = ((source.get("metrics") or {}).get("test") or {}).get("accuracy")  # as the run recorded it
    original = {"original_accuracy": compare(reference, reference, labels)["accuracy"], "images": len(images)}
    record.add_extra(
        "source", {"run_dir": str(outcome.source_dir.resolve()), "test_accuracy": test_accuracy, **original}
    )
    record.add_extra("formats", outcome.rows)
    say(table(outcome.rows, len(images)))
    say(keras_story(contents) + " " + export_story(contents))
    check_rows(outcome.rows)
    say(f"Every copy predicts the same labels. Model cards: {run_dir}/*.card.json")


def check_rows(rows) -> None:
    """Keras reloads must be bit-identical; the SavedModel paths may differ by float rounding only."""
    for row in rows:
        exact = row["format"] in ("keras", "weights")
        wrong = (exact and not row["bit_identical"]) or row["max_abs_diff"] >= SERVING_TOLERANCE
        if wrong or not row["labels_identical"]:
            raise ReloadMismatch(
                f"the {row['format']} copy predicts differently: max |difference| {row['max_abs_diff']:g}, "
                f"labels identical: {row['labels_identical']}"
            )


def table(rows, images: int) -> str:
    line = "{:<11}{:<18}{:>9}{:>15}{:>12}{:>8}{:>10}".format
    lines = [f"Predictions on {images} test images, against the original model:"]
    lines.append(line("format", "file", "size", "load (median)", "max |diff|", "labels", "accuracy"))
    for r in rows:
        size, load, diff = f"{r['size_bytes'] / 1e6:.1f} MB", f"{r['load_s']:.3f} s", f"{r['max_abs_diff']:.2g}"
        same = "same" if r["labels_identical"] else "DIFFER"
        lines.append(line(r["format"], r["file"], size, load, diff, same, f"{r['accuracy']:.4f}"))
    return "\n".join(lines)


# ----------------------------------------------------------------------------------------------
# Command line


def make_parser():
    parser = cli.OneLineParser(description=__doc__.strip().splitlines()[0], epilog="See this folder's README.md.")
    add = parser.add_argument
    add(
        "--run",
        metavar="RUN_DIR",
        help="a finished run whose model.keras to save (default: the newest of Lesson 1, Exercise A)",
    )
    add(
        "--quick",
        action="store_true",
        help=f"compare on {QUICK_IMAGES} test images, load each copy once (or LAB_QUICK=1)",
    )
    add("--logdir", help="root folder for runs (default: $LAB_RUNS_DIR or runs/ in the repo)")
    add("--verbose", action="store_true", help="show TensorFlow's own INFO/WARNING logs")
    return parser


def main(argv=None):
    return run_main(save_restore, make_parser, argv)


if __name__ == "__main__":
    raise SystemExit(main())
