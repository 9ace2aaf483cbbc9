"""TensorBoard dashboards that the Keras 3 callback no longer writes, brought back for any activity.

    callbacks = deep_dive_callbacks(session, model, x_test=..., y_test=..., class_names=...)
    session.fit(model, extra_callbacks=callbacks)

Keras 3's TensorBoard callback writes the epoch scalars and a conceptual "keras" graph. The op
graph, the embedding projector and the image dashboards a lesson wants to show are gone or broken,
so these callbacks write them next to the callback's own `train/` and `validation/` folders:

    <run>/graph/      the op graph of the model's forward pass, traced from a tf.function (Graphs)
    <run>/weights/    every layer's weights each epoch, tags `dense/kernel`, `dense_1/bias`, ...
                      (Histograms and Distributions)
    <run>/images/     a confusion matrix of the test images, and a grid of misclassified ones with
                      their true and predicted classes, each epoch (Images)
    <run>/embedding/  the last hidden layer's activations for the first 1,000 test images, with
                      their labels and thumbnails (Projector)

Each subfolder is its own "run" in TensorBoard's run list, so a dashboard never mixes its points
with another's. The writers come from `session.open_writer`, which closes them on Ctrl-C too.

`SummaryRun` is a run folder with run.json for summaries written by hand with `tf.summary`,
where no `model.fit` (and so no TrainingSession) is involved.
"""

from __future__ import annotations

import io
import signal
import threading
from pathlib import Path

import numpy as np

from labkit.runs import RunRecord, create_run_dir
from labkit.session import Terminated, activity_of, tensorboard_command

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


# ---------------------------------------------------------------------------------------------
# The op graph


def trace_op_graph(writer, model, sample, name: str = "forward_pass") -> None:
    """Write the graph of ops that one forward pass of `model` runs (Graphs tab, tag `name`).

    tf.summary records a graph only while a trace is on and a tf.function runs for the first
    time. The profiler stays off, so trace_on needs no `profiler_outdir`."""
    from labkit.deferred import tf

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


def weight_tags(model) -> list[tuple[str, object]]:
    """(tag, variable) per weight, the tag made of the layer's own name: `dense/kernel`, `dense_1/kernel`.

    Earlier Keras 3 releases tagged the callback's histograms with the bare weight name (`kernel`),
    so every layer landed on one chart; the layer's name keeps them apart on any version."""
    return [(f"{layer.name}/{weight.name}", weight) for layer in model.layers for weight in layer.weights]


def write_weight_histograms(writer, model, step: int) -> None:
    from labkit.deferred import tf

    with writer.as_default():
        for tag, weight in weight_tags(model):
            tf.summary.histogram(tag, weight, step=step)
    writer.flush()


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

    from labkit.deferred import tf

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


def hidden_layer(model, layer=None):
    """The layer whose activations the projector shows: by default the last one before the output."""
    if layer is None:
        return model.layers[-2]
    return model.get_layer(layer) if isinstance(layer, str) else layer


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
# The callbacks


def deep_dive_callbacks(
    session,
    model,
    *,
    x_test,
    y_test,
    class_names,
    graph: bool = True,
    histograms: bool = True,
    images: bool = True,
    projector: bool = True,
    embedding_layer=None,
    embedding_points: int = EMBEDDING_POINTS,
) -> list:
    """Keras callbacks that write every dashboard above for `model` into `session.run_dir`.

    The test images are the model's exam: the confusion matrix and the misclassified grid score
    them after each epoch, and the projector places the first `embedding_points` of them (fewer
    if the slice is smaller) by what the last hidden layer makes of them."""
    from labkit.deferred import keras

    x_test, y_test = np.asarray(x_test), np.asarray(y_test, dtype=int)
    class_names = list(class_names)
    layer = hidden_layer(model, embedding_layer)  # a wrong layer name fails now, not after training

    class OpGraph(keras.callbacks.Callback):
        def on_train_begin(self, logs=None):
            writer = session.open_writer("graph")
            trace_op_graph(writer, self.model, x_test[:1])
            writer.close()

    class WeightHistograms(keras.callbacks.Callback):
        def on_train_begin(self, logs=None):
            self.writer = session.open_writer("weights")

        def on_epoch_end(self, epoch, logs=None):
            write_weight_histograms(self.writer, self.model, epoch)

        def on_train_end(self, logs=None):
            self.writer.close()

    class TestImages(keras.callbacks.Callback):
        def on_train_begin(self, logs=None):
            self.writer = session.open_writer("images")

        def on_epoch_end(self, epoch, logs=None):
            from labkit.deferred import tf

            predicted = self.model.predict(x_test, batch_size=512, verbose=0).argmax(axis=1)
            counts = confusion_counts(y_test, predicted, len(class_names))
            accuracy = np.trace(counts) / max(len(y_test), 1)
            matrix = confusion_matrix_figure(
                counts, class_names, f"epoch {epoch}: {len(y_test):,} test images, accuracy {accuracy:.3f}"
            )
            wrong = misclassified_figure(
                x_test, y_test, predicted, class_names, f"epoch {epoch}: misclassified test images"
            )
            with self.writer.as_default():
                tf.summary.image("confusion_matrix", figure_to_image(matrix), step=epoch)
                tf.summary.image("misclassified", figure_to_image(wrong), step=epoch)
            self.writer.flush()
            # The same counts as numbers, so that a notebook or a test can check the picture.
            session.record.add_extra(
                "confusion_matrix", {"epoch": epoch, "classes": class_names, "counts": counts.tolist()}
            )

        def on_train_end(self, logs=None):
            self.writer.close()

    class Projector(keras.callbacks.Callback):
        def on_train_end(self, logs=None):
            from labkit.deferred import tf

            count = min(embedding_points, len(x_test))
            activations = keras.Model(self.model.inputs, layer.output).predict(x_test[:count], verbose=0)
            folder = session.run_dir / "embedding"
            write_projector(folder, activations, y_test[:count], class_names, images=x_test[:count])
            # A folder is a run in TensorBoard only if it holds an event file; this one also says
            # in the Text tab what the projector's points are.
            writer = session.open_writer("embedding")
            with writer.as_default():
                tf.summary.text(
                    "embedding",
                    f"{count:,} test images as seen by layer `{layer.name}` ({activations.shape[1]} units) "
                    f"after {session.record.data['epochs_completed']} epochs; colour them by `class`.",
                    step=0,
                )
            writer.close()
            session.record.add_extra(
                "projector", {"layer": layer.name, "points": count, "dimensions": int(activations.shape[1])}
            )

    chosen = [(graph, OpGraph), (histograms, WeightHistograms), (images, TestImages), (projector, Projector)]
    return [callback() for wanted, callback in chosen if wanted]


# ---------------------------------------------------------------------------------------------
# A run for hand-written summaries


class SummaryRun:
    """A run folder with run.json for logs written directly with tf.summary, no model.fit involved.

        with SummaryRun(__file__, args, tag="summaries", hparams={"steps": 1000}) as run:
            with run.writer.as_default():
                tf.summary.scalar(...)

    Like a TrainingSession it ends `finished`, `failed`, or `interrupted` on Ctrl-C or SIGTERM
    (exit code 130 or 143), after closing its writer so the logs read back whole.
    """

    def __init__(self, script_file: str, args, *, tag: str, hparams: dict, source: str, quiet: bool = False,
                 parent_dir: Path | None = None):  # fmt: skip
        self.lesson, self.activity = activity_of(script_file)
        self.args = args
        self.tag = tag
        self.hparams = dict(hparams)
        self.source = source
        self.quiet = quiet
        self.parent_dir = parent_dir
        self.run_dir = None
        self.record = None
        self.writer = None
        self.status = None
        self.exit_code = 0
        self._previous_sigterm = None

    def say(self, message: str) -> None:
        if not self.quiet:
            print(message, flush=True)

    def __enter__(self) -> SummaryRun:
        from labkit.deferred import tf

        quick = bool(getattr(self.args, "quick", False))
        tag = "-".join(t for t in ("quick" if quick else None, self.tag) if t)
        parent = Path(self.parent_dir or self.args.runs_root / self.lesson / self.activity)
        self.run_dir = create_run_dir(parent, self.hparams, tag=tag)
        self.record = RunRecord(
            self.run_dir,
            lesson=self.lesson,
            activity=self.activity,
            hparams=self.hparams,
            dataset={"name": "none", "source": self.source, "substitute_for": None, "sizes": {}, "notes": []},
            quick=quick,
            tag=self.tag,
        )
        if threading.current_thread() is threading.main_thread():

            def terminated(signum, frame):
                raise Terminated()

            self._previous_sigterm = signal.signal(signal.SIGTERM, terminated)
        self.writer = tf.summary.create_file_writer(str(self.run_dir))
        self.say(f"Run folder: {self.run_dir}")
        return self

    def __exit__(self, exc_type, exc, tb) -> bool:
        if self._previous_sigterm is not None:
            signal.signal(signal.SIGTERM, self._previous_sigterm)
        try:
            self.writer.close()
        except Exception:  # a writer that cannot flush must not hide the real outcome
            pass
        if exc_type in (KeyboardInterrupt, Terminated):
            self.status = "interrupted"
            self.record.finish("interrupted")
            self.exit_code = 143 if exc_type is Terminated else 130
            self.say(f"\nInterrupted. The summaries so far are readable: {tensorboard_command(self.run_dir)}")
            return True
        if exc_type is not None:
            self.status = "failed"
            self.record.finish("failed", f"{exc_type.__name__}: {exc}")
            return False
        self.status = "finished"
        self.record.finish("finished")
        self.say(f"Finished in {self.record.data['wall_time_s']:.1f} s. See it: {tensorboard_command(self.run_dir)}")
        return False
