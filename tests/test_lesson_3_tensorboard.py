"""Lesson 3, TensorBoard in depth: sibling learning-rate runs, hand-written summaries, every dashboard.

One quick run of the script writes all three parts. A real TensorBoard server, started on that
runs folder, answers the assertions about what each dashboard shows through the same HTTP API
its web page uses, so a tag that TensorBoard cannot find, or a plugin it does not switch on, fails
here as it would in front of a class.
"""

import io
import math
import wave
from pathlib import Path

import pytest

from labtest import (
    TensorBoardServer,
    assert_refused,
    notebook_has_image,
    notebook_text_outputs,
    run_dirs,
    run_in_process,
    run_json,
    run_script,
)

SCRIPT = "lesson_3/tensorboard/train_mnist.py"
NOTEBOOK = "lesson_3/tensorboard/train_mnist.ipynb"
PARTS = ("regression-lr0.001", "regression-lr0.05", "summaries", "dashboards")
PLUGINS = {"scalars", "histograms", "distributions", "images", "graphs", "text", "audio", "projector", "hparams"}
# The classifier's Dense layers as the seed names them: 784 -> 300 -> 100 -> 10.
LAYER_SHAPES = {"dense": (784, 300), "dense_1": (300, 100), "dense_2": (100, 10)}

slow = pytest.mark.slow


def runs_by_part(activity_folder: Path, quick: bool = True) -> dict[str, Path]:
    """`quick-regression-lr0.05-bs32-...` -> "regression-lr0.05"; `quick-summaries-...` -> "summaries"."""
    prefix = "quick-" if quick else ""
    found = {}
    for run in run_dirs(activity_folder):
        assert run.parent == activity_folder and run.name.startswith(prefix), run
        words = run.name[len(prefix) :].split("-")
        found["-".join(words[:2]) if words[0] == "regression" else words[0]] = run
    assert sorted(found) == sorted(PARTS), sorted(found)
    return found


@pytest.fixture(scope="module")
def quick(quick_notebook):
    """The page's quick runs: its notebook, executed once through a Jupyter kernel."""
    return quick_notebook(NOTEBOOK)


@pytest.fixture(scope="module")
def runs(quick) -> dict[str, Path]:
    return runs_by_part(quick.runs_dir / "lesson_3" / "tensorboard")


@pytest.fixture(scope="module")
def board(quick, runs):
    """One TensorBoard on the activity's runs folder, shared by the tests below, always stopped."""
    folder = quick.runs_dir / "lesson_3" / "tensorboard"
    with TensorBoardServer(folder) as server:
        server.wait_for_runs([f"{runs['dashboards'].name}/embedding", runs["summaries"].name])
        yield server


def tb_run(runs, part: str, split: str | None = None) -> str:
    """The name TensorBoard gives a run folder (or one of its subfolders): its path below the logdir."""
    return runs[part].name + (f"/{split}" if split else "")


# ---------------------------------------------------------------------------------------------
# The run folders


@slow
def test_quick_run_writes_the_three_parts_as_finished_sibling_runs(quick, runs):
    records = {part: run_json(run) for part, run in runs.items()}
    assert {part: record["status"] for part, record in records.items()} == dict.fromkeys(PARTS, "finished")
    for rate in ("0.001", "0.05"):
        record = records[f"regression-lr{rate}"]
        assert record["hparams"]["learning_rate"] == float(rate) and record["hparams"]["epochs"] == 2
        assert record["dataset"]["name"] in ("california_housing", "diabetes")
        if record["dataset"]["name"] == "diabetes":
            assert record["dataset"]["substitute_for"] == "california_housing"
    dashboards = records["dashboards"]
    assert dashboards["dataset"]["name"] in ("fashion_mnist", "mnist_5k")
    assert (dashboards["hparams"]["learning_rate"], dashboards["hparams"]["batch_size"]) == (0.01, 32)
    # Chance is 10%; 2 x 25 SGD steps of the 300-100 network measured 0.50-0.62 (seeds 42, 1, 2).
    assert dashboards["metrics"]["test"]["accuracy"] >= 0.40, dashboards["metrics"]["test"]
    assert dashboards["extra"]["projector"] == {"layer": "dense_1", "points": 1000, "dimensions": 100}
    summaries = records["summaries"]
    assert summaries["extra"]["summaries"]["steps"] == 1000 and summaries["dataset"]["name"] == "none"
    assert quick.result.stdout.count("Run folder:") == 4


@slow
def test_confusion_matrix_in_run_json_agrees_with_the_test_accuracy(runs):
    record = run_json(runs["dashboards"])
    confusion = record["extra"]["confusion_matrix"]
    counts = confusion["counts"]
    assert confusion["epoch"] == 1 and len(counts) == len(confusion["classes"]) == 10
    total = sum(map(sum, counts))
    assert total == record["dataset"]["sizes"]["test"] == 1000
    diagonal = sum(counts[i][i] for i in range(10))
    assert abs(diagonal / total - record["metrics"]["test"]["accuracy"]) <= 0.002


# ---------------------------------------------------------------------------------------------
# What the TensorBoard server shows


@slow
def test_every_dashboard_is_active(board):
    active = board.wait_for_plugins(PLUGINS)
    assert PLUGINS <= active, PLUGINS - active


def steps_and_values(board, run: str, tag: str):
    points = board.get_json("/data/plugin/scalars/scalars", run=run, tag=tag)
    return [int(step) for _, step, _ in points], [value for _, _, value in points]


@slow
def test_the_two_learning_rates_sit_side_by_side_with_exact_epoch_steps(board, runs):
    tags = board.get_json("/data/plugin/scalars/tags")
    final = {}
    for rate in ("0.001", "0.05"):
        part = f"regression-lr{rate}"
        for split in ("train", "validation"):
            assert "epoch_loss" in tags[tb_run(runs, part, split)]
            steps, values = steps_and_values(board, tb_run(runs, part, split), "epoch_loss")
            assert steps == [0, 1], (part, split, steps)
            if split == "train":
                final[rate] = values[-1]
    # Same initial weights, same batches: the larger step size has lowered the loss much further.
    assert final["0.05"] < final["0.001"], final


@slow
def test_the_sin_scalar_has_every_step_from_1_to_1000(board, runs):
    steps, values = steps_and_values(board, tb_run(runs, "summaries"), "sin")
    assert steps == list(range(1, 1001))
    assert max(abs(value - math.sin(step / 10)) for step, value in zip(steps, values, strict=True)) < 1e-6


@slow
def test_weight_histograms_are_distinct_per_layer(board, runs):
    tags = board.get_json("/data/plugin/histograms/tags")
    weights = tb_run(runs, "dashboards", "weights")
    expected = {f"{layer}/{kind}" for layer in LAYER_SHAPES for kind in ("kernel", "bias")}
    assert set(tags[weights]) == expected
    for layer, (inputs, units) in LAYER_SHAPES.items():
        for kind, size in (("kernel", inputs * units), ("bias", units)):
            points = board.get_json("/data/plugin/histograms/histograms", run=weights, tag=f"{layer}/{kind}")
            assert [step for _, step, _ in points] == [0, 1]
            # Each chart counts exactly that layer's weights: no two layers share a tag.
            assert sum(bucket[2] for bucket in points[-1][2]) == size, (layer, kind)


@slow
def test_the_callbacks_histogram_freq_writes_one_chart_per_weight_in_train(board, runs):
    """The page's `keras.callbacks.TensorBoard(histogram_freq=1)`: this Keras tags each weight by
    its path (`sequential/dense/kernel/histogram`), so the layers stay apart there too."""
    train = tb_run(runs, "dashboards", "train")
    tags = set(board.get_json("/data/plugin/histograms/tags")[train])
    for layer, (inputs, units) in LAYER_SHAPES.items():
        for kind, size in (("kernel", inputs * units), ("bias", units)):
            (tag,) = [tag for tag in tags if tag.endswith(f"/{layer}/{kind}/histogram")]
            points = board.get_json("/data/plugin/histograms/histograms", run=train, tag=tag)
            assert [step for _, step, _ in points] == [0, 1]
            assert sum(bucket[2] for bucket in points[-1][2]) == size, tag


@slow
def test_the_hand_written_histogram_drifts_right(board, runs):
    points = board.get_json("/data/plugin/histograms/histograms", run=tb_run(runs, "summaries"), tag="drifting_normal")
    assert points[-1][1] == 1000 and all(step % 10 == 0 for _, step, _ in points)

    def mean(buckets):
        return sum((left + right) / 2 * count for left, right, count in buckets) / sum(b[2] for b in buckets)

    first, last = points[0], points[-1]
    assert len(last[2]) == 50 and sum(b[2] for b in last[2]) == 1000
    # Mean 2 * step / 100: about 20 at step 1000.
    assert 18 < mean(last[2]) < 22 and mean(first[2]) < mean(last[2])


def png_size(data: bytes) -> tuple[int, int]:
    assert data[:8] == b"\x89PNG\r\n\x1a\n", data[:8]
    return int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")


@slow
def test_images_confusion_matrix_misclassified_and_random_images(board, runs):
    tags = board.get_json("/data/plugin/images/tags")
    images = tb_run(runs, "dashboards", "images")
    assert set(tags[images]) == {"confusion_matrix", "misclassified"}
    for tag in ("confusion_matrix", "misclassified"):
        entries = board.get_json("/data/plugin/images/images", run=images, tag=tag)
        assert [entry["step"] for entry in entries] == [0, 1]
        width, height = png_size(board.get("/data/plugin/images/individualImage?" + entries[-1]["query"]))
        assert width > 300 and height > 300
    demo = tb_run(runs, "summaries")
    assert tags[demo]["random_images"]["samples"] == 2
    for sample in (0, 1):
        entries = board.get_json("/data/plugin/images/images", run=demo, tag="random_images", sample=str(sample))
        assert [entry["step"] for entry in entries] == list(range(100, 1001, 100))
        assert png_size(board.get("/data/plugin/images/individualImage?" + entries[-1]["query"])) == (32, 32)


@slow
def test_op_graph_of_the_forward_pass_and_keras_conceptual_graph(board, runs):
    info = board.get_json("/data/plugin/graphs/info")
    graph_run = tb_run(runs, "dashboards", "graph")
    assert info[graph_run]["tags"]["forward_pass"]["op_graph"] is True
    assert info[tb_run(runs, "dashboards", "train")]["tags"]["keras"]["conceptual_graph"] is True
    graph = board.get(f"/data/plugin/graphs/graph?run={graph_run}&tag=forward_pass").decode()
    # Three Dense layers: three matrix products; ReLU twice, then the softmax.
    assert graph.count('op: "MatMul"') == 3 and graph.count('op: "Relu"') == 2 and 'op: "Softmax"' in graph


@slow
def test_text_and_one_second_of_48_khz_audio(board, runs):
    demo = tb_run(runs, "summaries")
    texts = board.get_json("/data/plugin/text/text", run=demo, tag="step_text")
    assert [entry["step"] for entry in texts] == list(range(100, 1001, 100))
    assert "Its square is 1,000,000." in texts[-1]["text"]
    assert "embedding" in board.get_json("/data/plugin/text/tags")[tb_run(runs, "dashboards", "embedding")]
    clips = board.get_json("/data/plugin/audio/audio", run=demo, tag="tone")
    assert [clip["step"] for clip in clips] == list(range(100, 1001, 100))
    with wave.open(io.BytesIO(board.get("/data/plugin/audio/individualAudio?" + clips[-1]["query"]))) as clip:
        assert (clip.getframerate(), clip.getnframes(), clip.getnchannels()) == (48000, 48000, 1)


@slow
def test_projector_serves_the_embedding_with_labels_and_sprite(board, runs):
    import numpy as np

    from labkit.dashboards import EMBEDDING_TENSOR
    from labkit.data import CLASS_NAMES

    board.wait_for_plugins({"projector"})
    run = tb_run(runs, "dashboards", "embedding")
    assert run in board.get_json("/data/plugin/projector/runs")
    (embedding,) = board.get_json("/data/plugin/projector/info", run=run)["embeddings"]
    assert embedding["tensorName"] == EMBEDDING_TENSOR
    assert [int(n) for n in embedding["tensorShape"]] == [1000, 100]
    assert embedding["metadataPath"] == "metadata.tsv"
    assert embedding["sprite"] == {"imagePath": "sprite.png", "singleImageDim": [28, 28]}

    query = f"run={run}&name={EMBEDDING_TENSOR}"
    rows = board.get(f"/data/plugin/projector/metadata?{query}").decode().splitlines()
    assert rows[0] == "class\tlabel" and len(rows) == 1001
    names = CLASS_NAMES[run_json(runs["dashboards"])["dataset"]["name"]]
    assert all(name == names[int(label)] for name, label in (row.split("\t") for row in rows[1:]))
    assert png_size(board.get(f"/data/plugin/projector/sprite_image?{query}")) == (32 * 28, 32 * 28)
    vectors = np.frombuffer(board.get(f"/data/plugin/projector/tensor?{query}"), dtype=np.float32)
    assert vectors.size == 1000 * 100 and vectors.min() >= 0 and vectors.max() > 0  # ReLU activations


@slow
def test_hparams_dashboard_spans_the_runs_learning_rates(board):
    import json

    experiment = board.get_json("/data/plugin/hparams/experiment", request=json.dumps({"experimentName": ""}))
    infos = {info["name"]: info for info in experiment["hparamInfos"]}
    assert infos["learning_rate"]["domainInterval"] == {"minValue": 0.001, "maxValue": 0.05}
    assert {"diabetes", "california_housing", "fashion_mnist", "mnist_5k"} & set(infos["dataset"]["domainDiscrete"])


# ---------------------------------------------------------------------------------------------
# The command line, Ctrl-C, the notebook


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--part", "everything"], "invalid choice: 'everything'"),
        (["--regression-epochs", "0"], "must be at least 1"),
        (["--resume", "somewhere"], "--resume continues a single run"),
    ],
)
def test_bad_flags_exit_2_with_one_line_before_anything_is_written(argv, message, runs_dir, monkeypatch, capsys):
    assert_refused(SCRIPT, *argv, message=message, runs_dir=runs_dir, capsys=capsys, monkeypatch=monkeypatch)


def test_part_summaries_writes_that_run_alone_and_trains_nothing(runs_dir, monkeypatch):
    from labkit.tblogs import read_scalars, steps_of

    assert run_in_process(SCRIPT, "--quick", "--part", "summaries", runs_dir=runs_dir, monkeypatch=monkeypatch) == 0
    (run,) = run_dirs(runs_dir)
    record = run_json(run)
    assert (record["tag"], record["status"], record["dataset"]["name"]) == ("summaries", "finished", "none")
    assert record["hparams"] == {"steps": 1000, "seed": 42} and not (run / "model.keras").exists()
    assert steps_of(read_scalars(run), ".", "sin") == list(range(1, 1001))


@slow
def test_ctrl_c_in_the_summaries_leaves_an_interrupted_readable_run_and_skips_the_rest(runs_dir, monkeypatch):
    """Ctrl-C at step 51 of the hand-written summaries: the learning-rate runs before it stay
    finished, the summaries run says interrupted with steps 1-50 readable, the dashboards run never
    starts, and the script exits 130."""
    import sys

    import tensorflow as tf
    import tensorflow.summary  # noqa: F401  Keras's TensorBoard callback imports it, and it then stands as tf.summary

    from labkit.tblogs import read_scalars, steps_of

    scalar = tf.summary.scalar

    def ctrl_c_at_step_51(name, data, step=None, description=None):
        if name == "sin" and step == 51:
            raise KeyboardInterrupt
        return scalar(name, data, step=step, description=description)

    for module in ("tensorflow.summary", "tensorflow._api.v2.summary"):
        monkeypatch.setattr(sys.modules[module], "scalar", ctrl_c_at_step_51)
    with pytest.raises(SystemExit) as exit_info:
        run_in_process(SCRIPT, "--quick", runs_dir=runs_dir, monkeypatch=monkeypatch)
    assert exit_info.value.code == 130
    runs = {run_json(run)["run_name"]: run_json(run) for run in run_dirs(runs_dir)}
    tags = sorted(record["tag"] for record in runs.values())
    assert tags == ["regression", "regression", "summaries"], tags  # no dashboards run
    for record in runs.values():
        assert record["status"] == ("interrupted" if record["tag"] == "summaries" else "finished")
    (summaries,) = [run for run in run_dirs(runs_dir) if run_json(run)["tag"] == "summaries"]
    assert steps_of(read_scalars(summaries), ".", "sin") == list(range(1, 51))


@slow
def test_notebook_shows_the_three_parts_and_their_logs(quick):
    notebook, runs_dir = quick.notebook, quick.runs_dir
    text = notebook_text_outputs(notebook)
    assert "1000 points, steps 1 to 1000" in text
    assert 'tensor_name: "embedding/.ATTRIBUTES/VARIABLE_VALUE"' in text and "class\tlabel" in text
    assert notebook_has_image(notebook)
    runs = runs_by_part(runs_dir / "lesson_3" / "tensorboard")
    assert all(run_json(run)["status"] == "finished" for run in runs.values())


# ---------------------------------------------------------------------------------------------
# Full length


@slow
@pytest.mark.full
def test_full_run_reproduces_figure_10_17_and_trains_the_deep_dive(runs_dir):
    """Seed figure 10-17: after 30 epochs of SGD, the run at learning rate 0.05 has a lower
    training loss than the run at 0.001. Measured on the diabetes substitute (see the card)."""
    import time

    from labkit.tblogs import read_scalars, steps_of

    started = time.monotonic()
    result = run_script(SCRIPT, runs_dir=runs_dir)
    wall = time.monotonic() - started
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    runs = runs_by_part(runs_dir / "lesson_3" / "tensorboard", quick=False)
    final = {}
    for part in ("regression-lr0.001", "regression-lr0.05"):
        scalars = read_scalars(runs[part])
        assert steps_of(scalars, "train", "epoch_loss") == list(range(30))
        final[part] = scalars[(scalars.split == "train") & (scalars.tag == "epoch_loss")].value.iloc[-1]
    print(f"\nfull run: {wall:.0f} s; final training loss {final}")
    assert final["regression-lr0.05"] < final["regression-lr0.001"], final
    record = run_json(runs["dashboards"])
    assert record["epochs_completed"] == 5 and record["extra"]["projector"]["points"] == 1000
    floor = {"fashion_mnist": 0.80, "mnist_5k": 0.85}[record["dataset"]["name"]]
    assert record["metrics"]["test"]["accuracy"] >= floor, record["metrics"]["test"]
