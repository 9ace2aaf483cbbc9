"""Read TensorBoard event files back into pandas.

TF2 writes scalars as tensor summaries, not as the old `simple_value`, and TensorBoard's
EventAccumulator keeps only 10 points per tag unless told otherwise; `read_scalars` asks for
every point and decodes the tensors, so notebooks can plot and tests can assert exact steps.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

COLUMNS = ["run", "split", "tag", "step", "value", "wall_time"]


def _event_dirs(root: Path) -> list[Path]:
    return sorted({p.parent for p in root.rglob("events.out.tfevents.*")})


def _run_of(event_dir: Path, root: Path) -> tuple[str, str]:
    """Split an event folder into (run, split): the run is the nearest folder holding run.json."""
    for candidate in [event_dir, *event_dir.parents]:
        if (candidate / "run.json").is_file():
            run = candidate.relative_to(root).as_posix() if candidate != root else root.name
            split = event_dir.relative_to(candidate).as_posix()
            return run, split
        if candidate == root:
            break
    return event_dir.relative_to(root).as_posix() if event_dir != root else root.name, "."


def read_event_dir(event_dir: str | Path) -> list[tuple[str, int, float, float]]:
    """(tag, step, value, wall_time) for every scalar in one folder of event files."""
    from tensorboard.backend.event_processing import event_accumulator
    from tensorboard.util import tensor_util

    accumulator = event_accumulator.EventAccumulator(
        str(event_dir),
        size_guidance={event_accumulator.TENSORS: 0, event_accumulator.SCALARS: 0},
    )
    accumulator.Reload()
    rows = []
    for tag in accumulator.Tags().get("tensors", []):
        for event in accumulator.Tensors(tag):
            array = tensor_util.make_ndarray(event.tensor_proto)
            if array.size != 1 or array.dtype.kind not in "fiub":
                continue  # images, text and hparams configs are not scalars
            rows.append((tag, int(event.step), float(array.reshape(())), float(event.wall_time)))
    for tag in accumulator.Tags().get("scalars", []):  # TF1-style summaries, if any
        for event in accumulator.Scalars(tag):
            rows.append((tag, int(event.step), float(event.value), float(event.wall_time)))
    return rows


def read_scalars(path: str | Path) -> pd.DataFrame:
    """Every scalar under `path` (one run, an activity folder, or the whole runs/ root).

    Columns: run, split ("train", "validation", "test" or "." for the run's own folder), tag,
    step, value, wall_time. Sorted by run, split, tag, then write order.
    """
    root = Path(path).resolve()
    frames = []
    for event_dir in _event_dirs(root):
        run, split = _run_of(event_dir, root)
        rows = read_event_dir(event_dir)
        if rows:
            frame = pd.DataFrame(rows, columns=["tag", "step", "value", "wall_time"])
            frame.insert(0, "split", split)
            frame.insert(0, "run", run)
            frames.append(frame)
    if not frames:
        return pd.DataFrame(columns=COLUMNS)
    table = pd.concat(frames, ignore_index=True)
    return table.sort_values(["run", "split", "tag", "wall_time"], kind="stable").reset_index(drop=True)


def steps_of(scalars: pd.DataFrame, split: str, tag: str, run: str | None = None) -> list[int]:
    """The step list of one curve, in write order (tests assert it exactly)."""
    rows = scalars[(scalars.split == split) & (scalars.tag == tag)]
    if run is not None:
        rows = rows[rows.run == run]
    return rows.step.astype(int).tolist()


def curve(scalars: pd.DataFrame, split: str, tag: str) -> pd.DataFrame:
    """One tag of one split, as a run-by-step table ready for `.plot()`."""
    rows = scalars[(scalars.split == split) & (scalars.tag == tag)]
    return rows.pivot_table(index="step", columns="run", values="value", aggfunc="last")


def drop_events_after(run_dir: str | Path, cutoff: float) -> int:
    """Rewrite the event files under `run_dir` without the summaries written after `cutoff`
    (a Unix time); returns how many were dropped. A record torn by a kill ends its file.

    Event files are TFRecord files of Event protos, so they are read and written back as such;
    a file is replaced (write, then rename) only when something was dropped from it."""
    import os

    import tensorflow as tf
    from tensorboard.compat.proto import event_pb2

    dropped = 0
    for path in sorted(Path(run_dir).rglob("events.out.tfevents.*")):
        kept, dropped_here, torn = [], 0, False
        try:
            for raw in tf.data.TFRecordDataset(str(path)).as_numpy_iterator():
                event = event_pb2.Event.FromString(raw)
                if event.HasField("summary") and event.wall_time > cutoff:
                    dropped_here += 1
                else:
                    kept.append(raw)
        except tf.errors.DataLossError:
            torn = True
        dropped += dropped_here
        if torn or dropped_here:
            partial = path.with_name(path.name + ".partial")
            with tf.io.TFRecordWriter(str(partial)) as writer:
                for raw in kept:
                    writer.write(raw)
            os.replace(partial, path)
    return dropped
