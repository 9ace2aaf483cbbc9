"""Lesson 3, activity 1: the Sequential classifier on Fashion-MNIST (seed 001).

The model's shape, its parameter counts and its untrained weights are checked on
`lesson_3.models.fashion_mlp`, the definition the page prints, without training. One quick run of
the page (the MLP, then the class-weight demonstration) and one quick run of `--linear-baseline`
are shared by the assertions about what they printed and wrote. The full-length runs check the
seed's figures on real Fashion-MNIST.
"""

import ast
import json
import re

import numpy as np
import pytest

from labtest import (
    REPO,
    assert_epoch_curves,
    assert_finished_above,
    assert_refused,
    mirror_holds_full_mnist,
    notebook_has_image,
    notebook_image_count,
    notebook_text_outputs,
    only_run,
    run_dirs,
    run_in_process,
    run_json,
    run_script,
)

SCRIPT = "lesson_3/fashion_classifier/train_mnist.py"
NOTEBOOK = "lesson_3/fashion_classifier/train_mnist.ipynb"
SEED_NAMES = ["Ankle boot", "Pullover", "Trouser"]  # the seed's answer for the first three test images
RARE_CLASSES = (2, 6)  # the page starves Pullover and Shirt

slow = pytest.mark.slow


# ---------------------------------------------------------------------------------------------
# The model, untrained


def fresh_model():
    from labkit.distribute import clear_session
    from lesson_3.models import fashion_mlp

    clear_session()  # as the page does, so that the first hidden layer is named "dense"
    return fashion_mlp()


def test_summary_shows_the_seeds_parameter_counts():
    model = fresh_model()
    assert [layer.name for layer in model.layers] == ["flatten", "dense", "dense_1", "dense_2"]
    assert [layer.count_params() for layer in model.layers] == [0, 235_500, 30_100, 1_010]
    assert model.count_params() == 266_610
    lines = []
    model.summary(print_fn=lambda line, **kwargs: lines.append(line))
    assert "Total params: 266,610" in "\n".join(lines)
    assert [layer.activation.__name__ for layer in model.layers[1:]] == ["relu", "relu", "softmax"]


def test_first_hidden_layer_has_random_weights_and_zero_biases():
    model = fresh_model()
    hidden = model.get_layer("dense")
    assert hidden is model.layers[1]
    weights, biases = hidden.get_weights()
    assert weights.shape == (784, 300) and biases.shape == (300,)
    assert np.all(biases == 0)
    # Glorot uniform: limit sqrt(6 / (784 + 300)) = 0.074, so a standard deviation of about 0.043.
    assert 0.035 < weights.std() < 0.05 and len(np.unique(weights)) > 200_000


def test_keras_3_rejects_lr_and_has_no_predict_classes():
    import keras

    with pytest.raises(ValueError, match="lr"):
        keras.optimizers.SGD(lr=0.01)
    assert not hasattr(fresh_model(), "predict_classes")


def test_help_states_the_seeds_defaults_and_the_linear_baselines_epochs(runs_dir, capsys, monkeypatch):
    monkeypatch.setenv("COLUMNS", "200")  # argparse would break "--linear-baseline" at its hyphen
    assert run_in_process(SCRIPT, "--help", runs_dir=runs_dir, monkeypatch=monkeypatch) == 0
    usage = " ".join(capsys.readouterr().out.split())
    assert "passes of training (default 30; 10 with --linear-baseline)" in usage
    assert "optimizer step size (default 0.01)" in usage and "examples per gradient step (default 32)" in usage
    assert "default: Fashion-MNIST" in usage and "--linear-baseline" in usage
    assert not any(runs_dir.iterdir())


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--epochs", "0"], "--epochs: must be at least 1"),
        (["--learning-rate", "lr"], "--learning-rate: expected a number, got 'lr'"),
        (["--dataset", "cifar10"], "--dataset: invalid choice: 'cifar10'"),
        (["--linear-baseline", "--dataset", "mnist"], "--linear-baseline trains on Fashion-MNIST and on MNIST"),
        (["--linear-baseline", "yes"], "unrecognized arguments: yes"),
    ],
)
def test_bad_flags_exit_2_with_one_line_and_write_nothing(runs_dir, argv, message, capsys, monkeypatch):
    assert_refused(SCRIPT, *argv, message=message, runs_dir=runs_dir, capsys=capsys, monkeypatch=monkeypatch)


def test_a_linear_baseline_run_is_not_resumable(runs_dir, capsys, monkeypatch):
    run = runs_dir / "lesson_3" / "fashion_classifier" / "linear_fashion-interrupted"
    run.mkdir(parents=True)
    record = {
        "lesson": "lesson_3",
        "activity": "fashion_classifier",
        "status": "interrupted",
        "tag": "linear_fashion",
        "quick": False,
        "hparams": {"learning_rate": 0.01, "batch_size": 32, "epochs": 10, "model": "linear", "seed": 42},
    }
    (run / "run.json").write_text(json.dumps(record))
    with pytest.raises(SystemExit) as exit_info:
        run_in_process(SCRIPT, "--resume", str(run), runs_dir=runs_dir, monkeypatch=monkeypatch)
    assert exit_info.value.code == 2
    error = capsys.readouterr().err
    refusal = "that is the 'linear_fashion' run of a command that trains several"
    assert len(error.strip().splitlines()) == 1 and refusal in error, error
    assert run_dirs(runs_dir) == [run] and sorted(p.name for p in run.iterdir()) == ["run.json"]


# ---------------------------------------------------------------------------------------------
# One quick run of the page, shared


@pytest.fixture(scope="module")
def mlp_quick(quick_notebook):
    """The page's quick run: its notebook, executed once through a Jupyter kernel."""
    return quick_notebook(NOTEBOOK)


def fashion_is_here() -> bool:
    from labkit.data import offline_availability

    return offline_availability()["fashion_mnist"] is not None


@slow
def test_quick_run_logs_two_epochs_and_beats_chance(mlp_quick):
    run = only_run(mlp_quick.runs_dir)
    assert run.parent == mlp_quick.runs_dir / "lesson_3" / "fashion_classifier"
    assert run.name.startswith("quick-lr0.01-bs32-ep2-")
    assert_epoch_curves(run, epochs=2)
    # Chance is 10%. Two epochs of 25 SGD steps reach 50-62% on Fashion-MNIST (seeds 42, 1, 2).
    record = assert_finished_above(run, {"validation.accuracy": 0.4, "test.accuracy": 0.4})
    hparams = record["hparams"]
    assert (hparams["model"], hparams["learning_rate"], hparams["batch_size"], hparams["epochs"]) == (
        "mlp",
        0.01,
        32,
        2,
    )
    assert record["quick"] is True and record["epochs_completed"] == 2
    assert record["extra"]["parameters"] == {"flatten": 0, "dense": 235_500, "dense_1": 30_100, "dense_2": 1_010}


@slow
def test_quick_run_saves_the_model_compiled_with_sgd_at_the_seeds_rate(mlp_quick):
    import keras

    model = keras.models.load_model(only_run(mlp_quick.runs_dir) / "model.keras")
    assert type(model.optimizer).__name__ == "SGD"
    assert float(model.optimizer.learning_rate) == pytest.approx(0.01)
    assert model.loss == "sparse_categorical_crossentropy"
    assert model.count_params() == 266_610


@slow
def test_quick_run_records_its_data_and_first_predictions(mlp_quick):
    from labkit.data import CLASS_NAMES

    record = run_json(only_run(mlp_quick.runs_dir))
    dataset = record["dataset"]
    stdout = mlp_quick.result.stdout
    if fashion_is_here():
        assert (dataset["name"], dataset["substitute_for"]) == ("fashion_mnist", None)
        assert dataset["sizes"] == {"train": 2000, "validation": 500, "test": 1000}
        assert "y_train[0] = 4 -> The first training image shows: Coat" in stdout
    else:
        assert (dataset["name"], dataset["substitute_for"]) == ("mnist_5k", "fashion_mnist")
        assert sum(line.startswith("data: Fashion-MNIST is not on this machine") for line in stdout.splitlines()) == 1
    assert "train: (2000, 28, 28, 1) (2000,) | valid: (500, 28, 28, 1)" in stdout
    predictions = record["extra"]["first_predictions"]
    probabilities = np.array(predictions["probabilities"])
    assert probabilities.shape == (3, 10) and np.allclose(probabilities.sum(axis=1), 1, atol=0.06)
    assert predictions["classes"] == probabilities.argmax(axis=1).tolist()
    names = predictions["names"]
    assert f"First three test images: {', '.join(names)}" in stdout
    assert names == [CLASS_NAMES[dataset["name"]][c] for c in predictions["classes"]]


@slow
def test_quick_run_shows_the_untrained_layer_and_keeps_its_figures(mlp_quick):
    stdout = mlp_quick.result.stdout
    assert "# @save\ndef fashion_mlp(" in (REPO / SCRIPT).read_text()  # defined on the page, reused by others
    assert "same_object_by_name: True" in stdout and "biases_all_zero: True" in stdout
    assert "weights_shape: (784, 300) | biases_shape: (300,)" in stdout
    # The first training images, the learning curves shifted and not, and the three predicted images
    # (a script saves them in <run>/figures, the first one once the run's folder exists).
    assert notebook_image_count(mlp_quick.notebook) == 4


def class_weight_results(stdout: str):
    """The counts, the class weights and the recall table that the page's last cells print."""
    lines = stdout.splitlines()
    counts = json.loads(next(line for line in lines if line.startswith("training images per class:")).split(":", 1)[1])
    weights = ast.literal_eval(next(line for line in lines if line.startswith("class weights:")).split(":", 1)[1])
    columns = ["no", "weights", "class_weight", "sample_weight"]
    header = next(i for i, line in enumerate(lines) if line.split() == columns)
    recall = {}
    for line in lines[header + 2 : header + 14]:
        label, *values = re.match(r"^(.*?)\s+([-\d.]+)\s+([-\d.]+)\s+([-\d.]+)$", line).groups()
        recall[label] = dict(zip(["no weights", "class_weight", "sample_weight"], map(float, values), strict=True))
    return counts, list(weights.values()), recall


@slow
def test_class_weights_make_the_rare_classes_recallable(mlp_quick):
    """Measured on the quick slice of Fashion-MNIST, seeds 42 and 0-5: without weights the model
    never predicts the starved Pullover and Shirt (recall 0), with weights their mean recall is
    0.13-0.61 (0.61 at seed 42). mnist_5k behaves alike (0.65 at seed 42)."""
    counts, weights, recall = class_weight_results(mlp_quick.result.stdout)
    counts = np.array(counts)
    assert all(counts[c] <= 0.06 * counts.max() for c in RARE_CLASSES)
    # n / (k * n_c): every class then carries the same total weight, n / k (printed to two decimals).
    assert weights == [round(counts.sum() / (10 * counts[c]), 2) for c in range(10)]
    rare = recall["mean, rare classes"]
    assert rare["class_weight"] >= rare["no weights"] + 0.25, recall
    # The same weights given per image train the same model from the same start.
    for row in recall.values():
        assert row["sample_weight"] == pytest.approx(row["class_weight"], abs=0.01), recall
    assert recall["mean, all classes"]["no weights"] > 0.4  # the unweighted model did learn the rest
    assert len(run_dirs(mlp_quick.runs_dir)) == 1, "the three weighted models are a demonstration, not runs"


@slow
def test_quick_linear_baseline_trains_two_tagged_sibling_runs(quick_run):
    import keras

    finished = quick_run(SCRIPT, "--quick", "--linear-baseline")
    assert finished.result.returncode == 0, finished.result.stderr[-3000:]
    parent = finished.runs_dir / "lesson_3" / "fashion_classifier"
    runs = {run.name.split("-")[1]: run for run in run_dirs(finished.runs_dir)}
    assert set(runs) == {"linear_fashion", "linear_mnist"} and all(r.parent == parent for r in runs.values())
    assert all(run.name.startswith("quick-") for run in runs.values())
    records = {}
    for tag, run in runs.items():
        assert_epoch_curves(run, epochs=2)
        # Chance is 10%; 50 SGD steps of the softmax regression reach 39-57% on either set (seeds 42, 1, 2).
        records[tag] = assert_finished_above(run, {"validation.accuracy": 0.3, "test.accuracy": 0.3})
        assert records[tag]["hparams"]["model"] == "linear" and records[tag]["hparams"]["epochs"] == 2
        assert records[tag]["tag"] == tag  # what --resume checks to refuse a run of a multi-run command
        assert keras.models.load_model(run / "model.keras").count_params() == 784 * 10 + 10
    assert records["linear_fashion"]["dataset"]["name"] == "fashion_mnist"
    mnist = records["linear_mnist"]["dataset"]
    stdout = finished.result.stdout
    if mnist["name"] == "mnist_5k":  # full MNIST is not here: the substitute is named and recorded
        assert mnist["substitute_for"] == "mnist"
        notices = [line for line in stdout.splitlines() if line.startswith("data: full MNIST is not on this machine")]
        assert len(notices) == 1 and "labelled substitute" in notices[0]
    else:
        assert (mnist["name"], mnist["substitute_for"]) == ("mnist", None)
    comparison = records["linear_mnist"]["extra"]["linear_baseline"]
    assert [row["run"] for row in comparison] == ["linear_fashion", "linear_mnist"]
    assert [row["steps"] for row in comparison] == [50, 50]  # the same number of SGD steps on both
    tests = {tag: record["metrics"]["test"]["accuracy"] for tag, record in records.items()}
    assert [row["test_accuracy"] for row in comparison] == [tests["linear_fashion"], tests["linear_mnist"]]
    assert records["linear_mnist"]["extra"]["mnist_minus_fashion"] == pytest.approx(
        tests["linear_mnist"] - tests["linear_fashion"]
    )
    assert "The same linear model on both data sets:" in stdout and "a quick run" in stdout
    assert "training images per class:" not in stdout, "--linear-baseline trains the two linear runs only"


# ---------------------------------------------------------------------------------------------
# The notebook


@slow
def test_notebook_shows_the_layers_the_predictions_and_the_figures(mlp_quick):
    notebook, runs_dir = mlp_quick.notebook, mlp_quick.runs_dir
    text = re.sub(r"\x1b\[[0-9;]*m", "", notebook_text_outputs(notebook))  # summary() colours its text
    assert "Total params: 266,610" in text
    assert "same_object_by_name: True" in text and "biases_all_zero: True" in text
    assert "weights_shape: (784, 300)" in text
    assert "val_accuracy" in text and "First three test images:" in text
    assert "mean, rare classes" in text and "sample_weight" in text
    assert "Skipped: this section trains with --linear-baseline." in text
    assert notebook_has_image(notebook)
    record = run_json(only_run(runs_dir))
    assert record["status"] == "finished" and record["quick"] and record["hparams"]["model"] == "mlp"


# ---------------------------------------------------------------------------------------------
# Full length


@slow
@pytest.mark.full
def test_full_run_reaches_the_seeds_accuracy_and_predictions(runs_dir):
    """Seed 001: 30 epochs of SGD give 88.51% test accuracy and predict Ankle boot, Pullover,
    Trouser for the first three test images. Measured here (seed 42, 197 s): 88.04% test accuracy,
    epoch 30 at loss 0.2260 / accuracy 0.9184 / val_loss 0.3043 / val_accuracy 0.8882 (the seed:
    0.2252 / 0.9192 / 0.2999 / 0.8926), and the same three names. On the mnist_5k digits: 90.8%."""
    result = run_script(SCRIPT, runs_dir=runs_dir, timeout=900)
    assert result.returncode == 0, result.stderr[-3000:]
    run = only_run(runs_dir)
    assert_epoch_curves(run, epochs=30)
    record = run_json(run)
    assert record["hparams"]["epochs"] == 30
    if record["dataset"]["name"] == "fashion_mnist":
        assert_finished_above(run, {"validation.accuracy": 0.87, "test.accuracy": 0.875})
        assert record["extra"]["first_predictions"]["names"] == SEED_NAMES
    else:  # the real MNIST digits that stand in where Fashion-MNIST is missing
        assert record["dataset"]["substitute_for"] == "fashion_mnist"
        assert_finished_above(run, {"test.accuracy": 0.88})


@slow
@pytest.mark.full
def test_full_linear_baseline_finds_clothes_harder_than_digits(runs_dir):
    """The chapter: a linear model gets about 83% on Fashion-MNIST and about 92% on MNIST. Measured
    here (10 epochs of 1,719 SGD steps each, seeds 42, 1 and 2): 82.9-83.1% on Fashion-MNIST and
    91.5-91.6% on full MNIST, 8.4-8.6 points apart. On the 4,000-image MNIST substitute (seed 42):
    88.2%, 5.3 points apart."""
    result = run_script(SCRIPT, "--linear-baseline", runs_dir=runs_dir, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    runs = {run.name.split("-")[0]: run for run in run_dirs(runs_dir)}
    assert set(runs) == {"linear_fashion", "linear_mnist"}
    for run in runs.values():
        assert_epoch_curves(run, epochs=10)
    fashion = assert_finished_above(runs["linear_fashion"], {"test.accuracy": 0.81})
    assert fashion["metrics"]["test"]["accuracy"] <= 0.855
    full_mnist = run_json(runs["linear_mnist"])["dataset"]["name"] == "mnist"
    assert full_mnist or not mirror_holds_full_mnist(), "the mirror holds full MNIST: the run must train on it"
    # The chapter's "about 92%" on full MNIST; the subset's 4,000 digits give less.
    mnist = assert_finished_above(runs["linear_mnist"], {"test.accuracy": 0.91 if full_mnist else 0.86})
    assert mnist["extra"]["mnist_minus_fashion"] >= (0.06 if full_mnist else 0.03)
    assert [row["steps"] for row in mnist["extra"]["linear_baseline"]] == [17_190, 17_190]
