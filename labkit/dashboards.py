"""TensorBoard dashboards that the Keras 3 callback no longer writes, as callbacks any page can add.

    tensorboard = keras.callbacks.TensorBoard(log_dir=run.dir, histogram_freq=1)
    model.fit(..., callbacks=[tensorboard, OpGraph(run, x_test[:1]), WeightHistograms(run),
                              Projector(run, x_test, y_test, class_names, layer=model.layers[-2]),
                              *run.callbacks(tensorboard)])

Keras 3's TensorBoard callback writes the epoch scalars, weight histograms and a conceptual
"keras" graph. The op graph is gone, and its projector checkpoints are Keras weight files that the
projector cannot read. These callbacks write them next to the callback's own `train/` and
`validation/` folders, each a "run" of its own in TensorBoard's run list:

    <run>/graph/      the op graph of the model's forward pass, traced from a tf.function (Graphs)
    <run>/weights/    every layer's weights each epoch, tags `dense/kernel`, `dense_1/bias`, ...
                      (Histograms and Distributions), on every Keras 3 release
    <run>/embedding/  a hidden layer's activations for the first 1,000 test images, with their
                      labels and thumbnails (Projector)

`run` is what `labkit.training.start_run` returns: the writers come from `run.open_writer`, which
closes them with the run, on Ctrl-C too. The picture helpers (a confusion matrix, a grid of
misclassified images, any matplotlib figure as an image summary) are for a page's own callbacks.

`start_summary_run` is a run folder with run.json for summaries written by hand with `tf.summary`,
where no model is trained.
"""

from __future__ import annotations

import io
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf

from labkit.lifecycle import RunLifecycle, RunWriteError, tensorboard_command, write_failure
from labkit.runs import RunRecord, create_run_dir

EMBEDDING_POINTS = 1000  # test images shown in the projector
MISCLASSIFIED_SHOWN = 25  # a 5 x 5 grid
EMBEDDING_TENSOR = "embedding/.ATTRIBUTES/VARIABLE_VALUE"  # the key tf.train.Checkpoint gives `embedding=`


# ---------------------------------------------------------------------------------------------
# Pictures, rendered off-screen with matplotlib and handed to tf.summary.image


def offscreen_figure(width: float, height: float):
    """A matplotlib figure that never touches pyplot, so no window opens and no global state leaks."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=(width, height), dpi=100)
    FigureCanvasAgg(figure)
    return figure


def figure_to_image(figure) -> np.ndarray:
    """The figure as a (1, height, width, 4) uint8 batch, the shape tf.summary.image wants."""
    from matplotlib.image import imread

    buffer = io.BytesIO()
    figure.savefig(buffer, format="png")
    buffer.seek(0)
    pixels = imread(buffer, format="png")  # floats in [0, 1]
    return (pixels[np.newaxis] * 255).round().astype(np.uint8)


def confusion_counts(y_true, y_pred, num_classes: int) -> np.ndarray:
    """counts[i, j]: images of class i that the model called j."""
    counts = np.zeros((num_classes, num_classes), dtype=np.int64)
    np.add.at(counts, (np.asarray(y_true, dtype=int), np.asarray(y_pred, dtype=int)), 1)
    return counts


def confusion_matrix_figure(counts: np.ndarray, class_names, title: str):
    size = 2.0 + 0.6 * len(class_names)
    figure = offscreen_figure(size, size)
    ax = figure.add_subplot()
    ax.imshow(counts, cmap="Blues")
    ticks = np.arange(len(class_names))
    ax.set_xticks(ticks, labels=class_names, rotation=45, ha="right")
    ax.set_yticks(ticks, labels=class_names)
    ax.set_xlabel("predicted class")
    ax.set_ylabel("true class")
    ax.set_title(title)
    threshold = counts.max() / 2 if counts.size else 0
    for i, j in np.ndindex(counts.shape):
        ax.text(j, i, str(counts[i, j]), ha="center", va="center", fontsize=8,
                color="white" if counts[i, j] > threshold else "black")  # fmt: skip
    figure.tight_layout()
    return figure


def misclassified_figure(images, y_true, y_pred, class_names, title: str, shown: int = MISCLASSIFIED_SHOWN):
    """The first `shown` wrong answers, each titled with its true and its predicted class."""
    wrong = np.flatnonzero(np.asarray(y_true) != np.asarray(y_pred))[:shown]
    columns = 5
    rows = max(1, -(-len(wrong) // columns))
    figure = offscreen_figure(2.0 * columns, 2.3 * rows + 0.5)
    figure.suptitle(title)
    if len(wrong) == 0:
        figure.text(0.5, 0.5, "no misclassified images", ha="center", va="center")
    for position, index in enumerate(wrong):
        ax = figure.add_subplot(rows, columns, position + 1)
        ax.imshow(np.squeeze(images[index]), cmap="gray_r", vmin=0, vmax=1)
        ax.set_title(f"true: {class_names[y_true[index]]}\npredicted: {class_names[y_pred[index]]}", fontsize=8)
        ax.axis("off")
    figure.tight_layout()
    return figure


def read_images(event_dir, tag: str) -> list[tuple[int, bytes]]:
    """(step, PNG bytes) of the first image of every `tag` summary in one folder of event files.

    An image summary is a string tensor [width, height, png, png, ...]; this reads it back for a
    notebook to show, with every step kept (TensorBoard's own reader keeps 10 by default)."""
    from tensorboard.backend.event_processing import event_accumulator

    accumulator = event_accumulator.EventAccumulator(str(event_dir), size_guidance={event_accumulator.TENSORS: 0})
    accumulator.Reload()
    if tag not in accumulator.Tags().get("tensors", []):
        return []
    return [(int(event.step), event.tensor_proto.string_val[2]) for event in accumulator.Tensors(tag)]


# ---------------------------------------------------------------------------------------------
# The op graph


def trace_op_graph(writer, model, sample, name: str = "forward_pass") -> None:
    """Write the graph of ops that one forward pass of `model` runs (Graphs tab, tag `name`).

    tf.summary records a graph only while a trace is on and a tf.function runs for the first
    time. The profiler stays off, so trace_on needs no `profiler_outdir`."""

    @tf.function
    def forward(images):
        return model(images, training=False)

    tf.summary.trace_on(graph=True, profiler=False)
    try:
        forward(tf.convert_to_tensor(sample))
    finally:
        with writer.as_default():
            tf.summary.trace_export(name=name, step=0)
    writer.flush()


class OpGraph(keras.callbacks.Callback):
    """The op graph of one forward pass on `sample`, into `<run>/graph` when training starts."""

    def __init__(self, run, sample):
        super().__init__()
        self.run, self.sample = run, sample

    def on_train_begin(self, logs=None):
        trace_op_graph(self.run.open_writer("graph"), self.model, self.sample)


# ---------------------------------------------------------------------------------------------
# Weight histograms


def weight_tags(model) -> list[tuple[str, object]]:
    """(tag, variable) per weight, the tag made of the layer's own name: `dense/kernel`, `dense_1/kernel`.

    Earlier Keras 3 releases tagged the callback's histograms with the bare weight name (`kernel`),
    so every layer landed on one chart; the layer's name keeps them apart on any version."""
    return [(f"{layer.name}/{weight.name}", weight) for layer in model.layers for weight in layer.weights]


def write_weight_histograms(writer, model, step: int) -> None:
    with writer.as_default():
        for tag, weight in weight_tags(model):
            tf.summary.histogram(tag, weight, step=step)
    writer.flush()


class WeightHistograms(keras.callbacks.Callback):
    """Every layer's weights after each epoch, into `<run>/weights`, one chart per layer and kind."""

    def __init__(self, run):
        super().__init__()
        self.run = run

    def on_train_begin(self, logs=None):
        self.writer = self.run.open_writer("weights")

    def on_epoch_end(self, epoch, logs=None):
        write_weight_histograms(self.writer, self.model, epoch)


# ---------------------------------------------------------------------------------------------
# The embedding projector


def sprite_image(images: np.ndarray) -> np.ndarray:
    """Thumbnails tiled row by row into one square sheet, in the order of the embedding's rows."""
    images = np.asarray(images, dtype=np.float32)
    count, height, width = images.shape[:3]
    side = int(np.ceil(np.sqrt(count)))
    sheet = np.zeros((side * height, side * width), dtype=np.float32)
    for index, image in enumerate(images):
        row, column = divmod(index, side)
        sheet[row * height : (row + 1) * height, column * width : (column + 1) * width] = np.squeeze(image)
    return (np.clip(sheet, 0, 1) * 255).round().astype(np.uint8)[..., np.newaxis]


def write_projector(folder: Path, vectors, labels, class_names, images=None) -> Path:
    """A checkpoint holding `vectors`, metadata.tsv, sprite.png and projector_config.pbtxt in `folder`.

    The projector reads 2-D variables from the latest checkpoint of a run folder. A Keras 3
    `.weights.h5` file is not a TensorFlow checkpoint, which is why the Keras callback's
    projector shows "no data"; a tf.train.Checkpoint of one variable is what it can read."""
    from google.protobuf import text_format
    from tensorboard.plugins.projector.projector_config_pb2 import ProjectorConfig

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    vectors = np.asarray(vectors, dtype=np.float32)
    checkpoint = tf.train.Checkpoint(embedding=tf.Variable(vectors))
    checkpoint.save(str(folder / "embedding"))  # also writes the `checkpoint` file that names it

    # Two columns need a header row; the projector then offers both for labels and colours.
    rows = ["class\tlabel"] + [f"{class_names[label]}\t{label}" for label in np.asarray(labels, dtype=int)]
    (folder / "metadata.tsv").write_text("\n".join(rows) + "\n", encoding="utf-8")

    config = ProjectorConfig()
    embedding = config.embeddings.add()
    embedding.tensor_name = EMBEDDING_TENSOR
    embedding.metadata_path = "metadata.tsv"  # paths relative to the config file
    if images is not None:
        sheet = sprite_image(images)
        (folder / "sprite.png").write_bytes(tf.io.encode_png(sheet).numpy())
        embedding.sprite.image_path = "sprite.png"
        embedding.sprite.single_image_dim.extend([int(images.shape[2]), int(images.shape[1])])  # width, height
    config_path = folder / "projector_config.pbtxt"
    config_path.write_text(text_format.MessageToString(config), encoding="utf-8")
    return config_path


class Projector(keras.callbacks.Callback):
    """After training: what `layer` makes of the first `points` test images, for the projector,
    in `<run>/embedding`, with their class names and thumbnails; run.json's `projector` says which."""

    def __init__(self, run, x_test, y_test, class_names, *, layer, points: int = EMBEDDING_POINTS):
        super().__init__()
        self.run, self.layer = run, layer
        count = min(points, len(x_test))
        self.x, self.y = np.asarray(x_test[:count]), np.asarray(y_test[:count], dtype=int)
        self.class_names = list(class_names)

    def on_train_end(self, logs=None):
        activations = keras.Model(self.model.inputs, self.layer.output).predict(self.x, verbose=0)
        write_projector(self.run.dir / "embedding", activations, self.y, self.class_names, images=self.x)
        # A folder is a run in TensorBoard only if it holds an event file; this one also says in
        # the Text tab what the projector's points are.
        writer = self.run.open_writer("embedding")
        epochs = self.run.record.data["epochs_completed"]
        with writer.as_default():
            tf.summary.text(
                "embedding",
                f"{len(self.x):,} test images as seen by layer `{self.layer.name}` ({activations.shape[1]} units) "
                f"after {epochs} epochs; colour them by `class`.",
                step=0,
            )
        writer.flush()
        self.run.record.add_extra(
            "projector", {"layer": self.layer.name, "points": len(self.x), "dimensions": int(activations.shape[1])}
        )


# ---------------------------------------------------------------------------------------------
# A run for hand-written summaries


class SummaryRun:
    """A run folder with run.json for logs written directly with tf.summary, no model trained.

    It ends like any run (labkit.lifecycle): `finished` when `finish()` is called, `interrupted`
    after Ctrl-C or SIGTERM, `failed` after an error, with its writers closed so the logs read
    back whole."""

    def __init__(self, life: RunLifecycle):
        self.life = life

    @property
    def dir(self) -> Path:
        return self.life.dir

    @property
    def record(self) -> RunRecord:
        return self.life.record

    def open_writer(self, split: str = ""):
        """tf.summary.create_file_writer on the run's folder (or `<run>/<split>`), closed with the run."""
        return self.life.open_writer(split)

    def finish(self) -> None:
        self.life.end("finished")
        self.life.say(f"Finished in {self.record.data['wall_time_s']:.1f} s. See it: {tensorboard_command(self.dir)}")


def start_summary_run(config, *, tag: str, hparams: dict, source: str, quiet: bool = False) -> SummaryRun:
    """A new run folder of this activity for summaries written by hand; `source` says in run.json
    where its numbers come from, since no dataset is involved."""
    quick = config.plan.quick
    parent = Path(config.runs_root) / config.lesson / config.activity
    label = "-".join(t for t in ("quick" if quick else None, tag) if t)
    run_dir = None
    try:
        run_dir = create_run_dir(parent, hparams, tag=label)
        record = RunRecord(
            run_dir,
            lesson=config.lesson,
            activity=config.activity,
            hparams=hparams,
            dataset={"name": "none", "source": source, "substitute_for": None, "sizes": {}, "notes": []},
            quick=quick,
            tag=tag,
        )
    except OSError as error:
        raise RunWriteError(write_failure(error, run_dir or parent) or str(error)) from None
    life = RunLifecycle(run_dir, record, quiet=quiet)
    life.say(f"Run folder: {run_dir}")
    return SummaryRun(life)
