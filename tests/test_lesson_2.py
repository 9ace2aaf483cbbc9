"""Lesson 2: the NumPy network, Keras hello world and the anatomy of a model.

Each activity is one page (`train_mnist.py`, paired with `train_mnist.ipynb`). The functions a
page defines (the NumPy network's backprop, the anatomy's models and loss tables) are checked
directly, read from the page with `page_definitions`; the lesson's own figures are checked in the
run.json of a real quick run: each page's notebook, executed once through a Jupyter kernel.
Everything that trains or executes a notebook is marked slow and runs in quick mode on real data
(the digits substitute where MNIST is not on the machine).
"""

import numpy as np
import pytest

from labtest import (
    assert_epoch_curves,
    assert_finished_above,
    assert_interrupted_but_readable,
    assert_refused,
    interrupt_run,
    mirror_holds_full_mnist,
    notebook_has_image,
    notebook_text_outputs,
    only_run,
    page_definitions,
    run_dirs,
    run_in_process,
    run_json,
    run_script,
)

NUMPY_SCRIPT = "lesson_2/numpy_from_scratch/train_mnist.py"
HELLO_SCRIPT = "lesson_2/hello_keras/train_mnist.py"
ANATOMY_SCRIPT = "lesson_2/anatomy/train_mnist.py"
# Each page's quick run is its notebook's, executed once through a Jupyter kernel (quick_notebook).
NUMPY_NOTEBOOK = "lesson_2/numpy_from_scratch/train_mnist.ipynb"
HELLO_NOTEBOOK = "lesson_2/hello_keras/train_mnist.ipynb"
ANATOMY_NOTEBOOK = "lesson_2/anatomy/train_mnist.ipynb"

slow = pytest.mark.slow


def runs_by_tag(parent, quick=True):
    """Sibling runs of one activity, keyed by the tag that starts their folder name."""
    prefix = "quick-" if quick else ""
    found = {}
    for run in sorted(p for p in parent.iterdir() if p.is_dir()):
        assert run.name.startswith(prefix), run.name
        found[run.name[len(prefix) :].split("-")[0]] = run
    return found


@pytest.fixture(scope="module")
def numpy_page():
    return page_definitions(NUMPY_SCRIPT)


@pytest.fixture(scope="module")
def anatomy_page():
    return page_definitions(ANATOMY_SCRIPT)


@pytest.fixture(scope="module")
def numpy_quick(quick_notebook):
    """The NumPy activity's quick run, trained once for every test that reads it."""
    return quick_notebook(NUMPY_NOTEBOOK)


@pytest.fixture(scope="module")
def hello_quick(quick_notebook):
    return quick_notebook(HELLO_NOTEBOOK)


@pytest.fixture(scope="module")
def anatomy_quick(quick_notebook):
    return quick_notebook(ANATOMY_NOTEBOOK)


def numpy_extra(numpy_quick) -> dict:
    runs = runs_by_tag(numpy_quick.runs_dir / "lesson_2" / "numpy_from_scratch")
    return run_json(runs["numpy"])["extra"]


# ---------------------------------------------------------------------------------------------
# NumPy from scratch: the lesson's own numbers


@slow
def test_seed_2_3_1_forward_pass_matches_the_lessons_figures(numpy_quick):
    net = numpy_extra(numpy_quick)["seed_2_3_1"]
    np.testing.assert_allclose(net["hidden_pre_activation"], [1.0, 1.3, 0.8], atol=0.005)
    np.testing.assert_allclose(net["hidden"], [0.73, 0.79, 0.69], atol=0.005)
    assert net["output"] == pytest.approx(1.235, abs=0.005)
    assert net["squared_error"] == pytest.approx(1.52, abs=0.005)


@slow
def test_seed_output_of_1_235_comes_from_rounding_the_hidden_values_first(numpy_quick):
    net = numpy_extra(numpy_quick)["seed_2_3_1"]
    hidden_to_output = np.array([0.3, 0.5, 0.9])  # the lesson's weights
    assert round(net["output"], 3) == 1.233  # full precision
    assert np.round(net["hidden"], 2) @ hidden_to_output == pytest.approx(1.235, abs=1e-9)
    assert round(float(net["hidden"][1]), 2) == 0.79  # the lesson also prints 0.78 for sigmoid(1.3)
    assert "as the lesson does: 1.2350" in numpy_quick.result.stdout


@slow
def test_finite_differences_fit_y_equals_3x_as_in_the_lesson(numpy_quick):
    """w = 2.269, b = 1.01, nudge 1e-4, learning rate 0.01, 1,000 epochs: the page's own loop."""
    fit = numpy_extra(numpy_quick)["line_fit"]
    w, b = fit["w"], fit["b"]
    assert abs(w - 2.9993) < 1e-2 and abs(b - 0.0048) < 1e-2  # the lesson's printout
    assert abs(w - 3) < 1e-2 and abs(b) < 1e-2  # the line it was fitting
    assert fit["epochs"] == 1000 and fit["last_loss"] < fit["first_loss"] / 1000


def test_finite_difference_gradient_is_a_slope_and_leaves_the_weights_alone(numpy_page):
    params = {"a": np.array([1.0, -2.0]), "c": np.array([[0.5]])}
    loss = lambda p: float((p["a"] ** 2).sum() + 3 * p["c"].sum())  # noqa: E731
    gradient = numpy_page.finite_difference_gradient(loss, params, nudge=1e-6, central=True)
    np.testing.assert_allclose(gradient["a"], [2.0, -4.0], atol=1e-6)
    np.testing.assert_allclose(gradient["c"], [[3.0]], atol=1e-6)
    np.testing.assert_array_equal(params["a"], [1.0, -2.0])


@pytest.fixture(scope="module")
def eight_digits():
    from labkit.data import load_dataset

    data = load_dataset("digits", announce=lambda message: None)
    return data.x_train[:8].reshape(8, -1), data.y_train[:8]


@pytest.mark.parametrize("activation", ["sigmoid", "relu"])
def test_backprop_matches_gradient_tape_and_finite_differences(numpy_page, eight_digits, activation):
    check = numpy_page.gradient_check(*eight_digits, activation=activation)
    assert set(check["vs_gradient_tape"]) == {"W1", "b1", "W2", "b2"}
    assert check["max_vs_gradient_tape"] < 1e-5, check
    assert check["max_vs_finite_differences"] < 1e-5, check


def test_gradient_check_catches_a_wrong_derivative(numpy_page, eight_digits, monkeypatch):
    sigmoid, _ = numpy_page.ACTIVATIONS["sigmoid"]
    # A classic slip: using the sigmoid itself where its derivative belongs.
    monkeypatch.setitem(numpy_page.ACTIVATIONS, "sigmoid", (sigmoid, lambda z, a: a))
    check = numpy_page.gradient_check(*eight_digits, activation="sigmoid")
    assert check["vs_gradient_tape"]["W1"] > 1e-2
    assert check["vs_finite_differences"]["W1"] > 1e-2
    assert check["vs_gradient_tape"]["W2"] < 1e-10  # the layer above the slip is still right


@pytest.mark.parametrize("activation", ["sigmoid", "relu"])
def test_numpy_mlp_descends_its_gradient_to_memorise_eight_images(numpy_page, eight_digits, activation):
    images, labels = eight_digits
    params = numpy_page.init_mlp(784, 16, 10, np.random.default_rng(0))
    before = numpy_page.mlp_loss(params, images, labels, activation)
    for _ in range(200):
        _, gradients, _ = numpy_page.mlp_gradients(params, images, labels, activation)
        for name in params:
            params[name] -= 0.1 * gradients[name]
    assert numpy_page.mlp_loss(params, images, labels, activation) < before / 10


def test_numpy_steps_per_epoch_match_what_keras_is_given():
    import argparse

    from labkit.plan import training_plan

    def steps(quick, steps_per_epoch=None):
        args = argparse.Namespace(quick=quick, epochs=5, steps_per_epoch=steps_per_epoch, batch_size=32)
        return training_plan(args).steps_per_epoch_for(1257)

    assert steps(False) == 40  # one full pass, the last batch partial
    assert steps(True) == 25  # quick mode caps it, as the Keras twin's run.steps_per_epoch does
    assert steps(False, 7) == 7


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--activation", "tanh"], "choose one of sigmoid, relu"),
        (["--hidden-units", "0"], "must be at least 1"),
        (["--hidden-units", "many"], "expected a whole number"),
        (["--resume", "somewhere"], "this command trains a NumPy run and its Keras twin"),
    ],
)
def test_numpy_script_rejects_bad_flags(argv, message, runs_dir, capsys, monkeypatch):
    assert_refused(NUMPY_SCRIPT, *argv, message=message, runs_dir=runs_dir, capsys=capsys, monkeypatch=monkeypatch)


# ---------------------------------------------------------------------------------------------
# Hello world and anatomy: the models themselves


@slow
def test_hello_world_model_is_the_lessons(hello_quick):
    """The model the page trained and saved: Dense(512, ReLU), Dense(10, softmax), RMSprop."""
    import keras

    run = only_run(hello_quick.runs_dir)
    model = keras.models.load_model(run / "model.keras")
    assert [layer.units for layer in model.layers] == [512, 10]
    assert [layer.activation.__name__ for layer in model.layers] == ["relu", "softmax"]
    assert model.count_params() == 784 * 512 + 512 + 512 * 10 + 10
    assert type(model.optimizer).__name__ == "RMSprop"


def test_hello_world_defaults_are_the_lessons(runs_dir, capsys, monkeypatch):
    assert run_in_process(HELLO_SCRIPT, "--help", runs_dir=runs_dir, monkeypatch=monkeypatch) == 0
    shown = capsys.readouterr().out
    assert "passes of training (default 5)" in shown
    assert "examples per gradient step (default 128)" in shown
    assert "optimizer step size (default 0.001)" in shown
    assert not any(runs_dir.iterdir())


def test_sequential_and_functional_models_are_equivalent(anatomy_page):
    import keras

    images = np.random.default_rng(0).random((16, 784), dtype=np.float32)
    sequential, functional = anatomy_page.build_sequential(), anatomy_page.build_functional()
    assert sequential.count_params() == functional.count_params() == 784 * 32 + 32 + 32 * 10 + 10
    # The comparison is not vacuous: with their own initial weights the two disagree ...
    keras.utils.set_random_seed(1)
    sequential, functional = anatomy_page.build_sequential(), anatomy_page.build_functional()
    assert np.abs(sequential.predict(images, verbose=0) - functional.predict(images, verbose=0)).max() > 1e-3
    # ... and with the same weights they agree exactly, as the page says.
    functional.set_weights(sequential.get_weights())
    assert np.abs(sequential.predict(images, verbose=0) - functional.predict(images, verbose=0)).max() == 0.0
    assert [type(layer).__name__ for layer in sequential.layers] == [
        type(layer).__name__ for layer in functional.layers if type(layer).__name__ != "InputLayer"
    ]


def test_mismatched_layers_give_keras_shape_errors(anatomy_page):
    images = np.zeros((4, 28, 28, 1), dtype=np.float32)
    cases = {case["mistake"]: case["error"] for case in anatomy_page.shape_errors(images)}
    assert "expected min_ndim=4, found ndim=2" in cases["Conv2D stacked on a Dense layer"]
    assert "Expected shape (None, 784)" in cases["unflattened images into a (784,) model"]
    assert "\x1b[" not in "".join(cases.values())  # terminal colour codes stripped for the notebook


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--optimizers", "sgd,lbfgs"], "comma-separated list from sgd, rmsprop, adam"),
        (["--optimizers", ","], "comma-separated list"),
        (["--optimizers", "adam,adam"], "each optimizer once"),
        (["--learning-rate", "0"], "must be a finite number above 0"),
        (["--resume", "somewhere"], "this command trains one run per optimizer"),
    ],
)
def test_anatomy_script_rejects_bad_flags(argv, message, runs_dir, capsys, monkeypatch):
    assert_refused(ANATOMY_SCRIPT, *argv, message=message, runs_dir=runs_dir, capsys=capsys, monkeypatch=monkeypatch)


def test_anatomy_optimizers_flag_keeps_the_order_given(anatomy_page):
    assert anatomy_page.optimizer_list("Adam, sgd") == ("adam", "sgd")
    assert anatomy_page.OPTIMIZERS == ("sgd", "rmsprop", "adam")  # the default, in the order they train


@pytest.fixture(scope="module")
def quick_digits():
    from labkit.data import load_dataset
    from labkit.plan import QUICK_SLICE

    return load_dataset("digits", limits=QUICK_SLICE, announce=lambda message: None)


@slow
def test_every_right_loss_pairing_beats_ignoring_the_image(anatomy_page, quick_digits):
    table = anatomy_page.loss_table(quick_digits).set_index("loss")
    assert list(table.index) == [
        "binary_crossentropy",
        "sparse_categorical_crossentropy",
        "categorical_crossentropy",
        "mse",
    ]
    for loss in ("binary_crossentropy", "sparse_categorical_crossentropy", "categorical_crossentropy"):
        assert table.loc[loss, "validation"] > table.loc[loss, "ignoring the image"] + 0.25, table.loc[loss]
    assert table.loc["mse", "metric"] == "mae"
    assert table.loc["mse", "validation"] < table.loc["mse", "ignoring the image"] / 2


@slow
def test_wrong_loss_pairings_show_what_the_lesson_says(anatomy_page, quick_digits):
    integer_labels, one_hot_labels, softmax_one_unit, regression = anatomy_page.wrong_pairings(
        quick_digits
    ).itertuples()
    for row in (integer_labels, one_hot_labels):
        assert row.fails and row.symptom.startswith("ValueError") and "rank" in row.symptom, row
    assert "target.shape=(None,), output.shape=(None, 10)" in integer_labels.symptom
    assert "target.shape=(None, 10), output.shape=(None, 10)" in one_hot_labels.symptom

    assert softmax_one_unit.pairing.startswith("yes/no task") and not softmax_one_unit.fails
    assert "predictions from 1.000 to 1.000" in softmax_one_unit.symptom
    accuracies = softmax_one_unit.symptom.split("accuracy ")[1].split(";")[0].split(", ")
    assert len(accuracies) == 3 and len(set(accuracies)) == 1, "a one-unit softmax cannot change its answer"
    assert "only a warning: You are using a softmax over axis -1" in softmax_one_unit.symptom

    assert regression.pairing.startswith("regression target") and not regression.fails
    assert "loss by epoch 0.000, 0.000, 0.000" in regression.symptom


# ---------------------------------------------------------------------------------------------
# The pages, run as a student runs them


@slow
def test_numpy_script_quick_run_writes_numpy_and_keras_twin_runs(numpy_quick):
    from labkit.tblogs import read_scalars, steps_of

    parent = numpy_quick.runs_dir / "lesson_2" / "numpy_from_scratch"
    runs = runs_by_tag(parent)
    assert set(runs) == {"numpy", "keras"}
    for run in runs.values():
        assert_epoch_curves(run, epochs=2)
        assert steps_of(read_scalars(run), "test", "test_accuracy") == [1]
        # Chance is 10%; 2 x 25 SGD steps on real MNIST digits reliably pass 50%.
        record = assert_finished_above(run, {"validation.accuracy": 0.5, "test.accuracy": 0.5})
        assert record["hparams"]["hidden_units"] == 64 and record["hparams"]["activation"] == "relu"
        assert record["epochs_completed"] == 2 and record["quick"] is True
    numpy_record, keras_record = run_json(runs["numpy"]), run_json(runs["keras"])

    extra = numpy_record["extra"]
    assert extra["gradient_check"]["activation"] == "relu"
    assert extra["gradient_check"]["max_vs_gradient_tape"] < 1e-5
    assert extra["gradient_check"]["max_vs_finite_differences"] < 1e-5
    assert extra["seed_2_3_1"]["hidden_pre_activation"] == [1.0, 1.3, 0.8]
    assert [row["weights"] for row in extra["gradient_timing"]] == [805, 1600, 3190]
    assert len(extra["speed"]["epoch_seconds"]) == 2
    assert len(keras_record["extra"]["speed"]["epoch_seconds"]) == 2
    compared = keras_record["extra"]["compared_with_numpy"]
    assert compared["numpy_run"] == runs["numpy"].name
    assert compared["numpy_test_accuracy"] == numpy_record["metrics"]["test"]["accuracy"]
    stdout = numpy_quick.result.stdout
    assert "Same network (64 relu units), same start" in stdout
    assert "numpy" in stdout.split("Same network")[1] and "keras" in stdout.split("Same network")[1]


@slow
def test_numpy_script_ctrl_c_leaves_a_readable_interrupted_run_and_skips_keras(runs_dir):
    # Long enough to be mid-training when the signal lands; each NumPy epoch takes milliseconds.
    result = interrupt_run(NUMPY_SCRIPT, "--dataset", "digits", "--epochs", "100000", runs_dir=runs_dir, after_epochs=3)
    run = only_run(runs_dir)  # no Keras twin after an interrupted NumPy run
    assert run.name.startswith("numpy-")
    assert_interrupted_but_readable(result, run, after_epochs=3, tag="epoch_accuracy")


@slow
def test_hello_keras_quick_run_records_test_accuracy_and_overfitting_gap(hello_quick):
    run = only_run(hello_quick.runs_dir)
    assert run.parent == hello_quick.runs_dir / "lesson_2" / "hello_keras"
    assert_epoch_curves(run, epochs=2)
    # Chance is 10%; 2 x 16 RMSprop steps of the 512-unit network pass 75% on real MNIST digits.
    record = assert_finished_above(run, {"validation.accuracy": 0.75, "test.accuracy": 0.75})
    assert (record["hparams"]["batch_size"], record["hparams"]["learning_rate"]) == (128, 1e-3)
    gap = record["extra"]["overfitting"]
    assert gap["test_accuracy"] == pytest.approx(record["metrics"]["test"]["accuracy"])
    assert gap["gap"] == pytest.approx(gap["train_accuracy"] - gap["test_accuracy"])
    assert gap["train_accuracy"] >= 0.75
    assert record["dataset"]["name"] in ("mnist", "mnist_5k")  # real MNIST digits, whole or subset
    assert "Overfitting: train accuracy" in hello_quick.result.stdout
    assert "of 10 predictions match their labels" in hello_quick.result.stdout


@slow
@pytest.mark.full
def test_full_hello_keras_run_reaches_the_lessons_accuracy(runs_dir):
    """Seed 003's figure: 5 epochs of the 512-unit network reach 97.8% on full MNIST (60,000
    images). On the 4,000-image MNIST subset that ships offline, the same run measured 89.6%
    test accuracy, with the overfitting gap the lesson warns about."""
    from labkit.data import offline_availability

    result = run_script(HELLO_SCRIPT, runs_dir=runs_dir)
    assert result.returncode == 0, result.stderr
    run = only_run(runs_dir)
    assert_epoch_curves(run, epochs=5)
    full_mnist = offline_availability()["mnist"] is not None
    assert full_mnist or not mirror_holds_full_mnist()
    # On full MNIST, seeds 42, 1 and 2 measured 0.9796 / 0.9794 / 0.9726: one in three falls below the seed's
    # 97.8%, since RMSprop's last epochs wander by half a point. The floor is what all three passed.
    record = assert_finished_above(run, {"test.accuracy": 0.97 if full_mnist else 0.87})
    assert record["dataset"]["name"] == ("mnist" if full_mnist else "mnist_5k")
    gap = record["extra"]["overfitting"]
    assert gap["train_accuracy"] > gap["test_accuracy"], "training accuracy runs ahead of test accuracy"


@slow
def test_anatomy_quick_run_trains_three_optimizers_into_sibling_runs(anatomy_quick):
    from labkit.tblogs import curve, read_scalars

    parent = anatomy_quick.runs_dir / "lesson_2" / "anatomy"
    runs = runs_by_tag(parent)
    assert set(runs) == {"sgd", "rmsprop", "adam"}
    # Chance is 10%. At the shared learning rate of 0.01, 2 x 16 steps take the adaptive optimizers
    # past 60%, and plain SGD, the slow one, past 20%.
    floors = {"sgd": 0.2, "rmsprop": 0.6, "adam": 0.6}
    for name, run in runs.items():
        assert_epoch_curves(run, epochs=2)
        record = assert_finished_above(run, {"validation.accuracy": floors[name], "test.accuracy": floors[name]})
        assert record["hparams"]["optimizer"] == name and record["hparams"]["learning_rate"] == 0.01
        assert record["tag"] == name
    started = [run_json(runs[name])["started_at"] for name in ("sgd", "rmsprop", "adam")]
    assert started == sorted(started), "trained in the default order of --optimizers"
    overlay = curve(read_scalars(parent), "validation", "epoch_accuracy")
    assert overlay.shape == (2, 3) and list(overlay.index) == [0, 1]
    stdout = anatomy_quick.result.stdout
    assert "Sequential and Functional: 25,450 and 25,450 parameters" in stdout
    assert "Same model, same start, learning rate 0.01" in stdout


@pytest.mark.parametrize(
    "script, argv, message",
    [
        (NUMPY_SCRIPT, ["--activation", "tanh"], "choose one of sigmoid, relu"),
        (ANATOMY_SCRIPT, ["--optimizers", "sgd,lbfgs"], "comma-separated list"),
        (HELLO_SCRIPT, ["--seed", "-5"], "must be between 0 and"),
    ],
)
def test_scripts_exit_2_on_bad_flags_and_write_nothing(script, argv, message, runs_dir, capsys, monkeypatch):
    assert_refused(script, *argv, message=message, runs_dir=runs_dir, capsys=capsys, monkeypatch=monkeypatch)


# ---------------------------------------------------------------------------------------------
# Notebooks


@slow
def test_numpy_from_scratch_notebook_shows_the_seeds_numbers_and_its_figures(numpy_quick):
    text = notebook_text_outputs(numpy_quick.notebook)
    assert "output 1.2332, squared error 1.5208" in text
    assert "w = 2.99934" in text
    assert "backprop agrees with GradientTape and with finite differences" in text
    assert "times_slower" in text and "test_accuracy" in text
    assert notebook_has_image(numpy_quick.notebook)
    runs = runs_by_tag(numpy_quick.runs_dir / "lesson_2" / "numpy_from_scratch")
    assert set(runs) == {"numpy", "keras"}
    assert all(run_json(run)["status"] == "finished" for run in runs.values())


@slow
def test_hello_keras_notebook_shows_its_predictions_and_figures(hello_quick):
    text = notebook_text_outputs(hello_quick.notebook)
    assert "of 10 predictions match their labels" in text
    assert "probability" in text and "gap" in text
    assert notebook_has_image(hello_quick.notebook)
    record = run_json(only_run(hello_quick.runs_dir))
    assert record["status"] == "finished" and record["quick"] is True


@slow
def test_anatomy_notebook_shows_the_layers_losses_and_errors(anatomy_quick):
    text = notebook_text_outputs(anatomy_quick.notebook)
    assert "identical outputs once they share weights" in text
    assert "sparse_categorical_crossentropy" in text
    assert "expected min_ndim=4, found ndim=2" in text
    assert "All three in TensorBoard" in text
    assert notebook_has_image(anatomy_quick.notebook)
    assert len(run_dirs(anatomy_quick.runs_dir)) == 3


# ---------------------------------------------------------------------------------------------
# Issue 23: what the seeds show that the pages now show too. The hello world's look at its data,
# its first prediction and its first epoch (Chollet's hello world); the hypothesis space and the
# CTC loss (Chollet's anatomy chapter); the kinds of network and batch sizes (the NumPy tutorial).


def hello_quick_data(record):
    """The quick slice of the data the hello world's quick run trained on, loaded here on its own."""
    from labkit.data import load_dataset
    from labkit.plan import QUICK_SLICE

    return load_dataset(record["dataset"]["name"], limits=QUICK_SLICE, announce=lambda message: None)


def test_hello_keras_sends_the_reader_to_pages_that_do_have_convolutions():
    from labtest import REPO

    page = (REPO / HELLO_SCRIPT).read_text()
    assert "Lesson 3's convolutions" not in page  # Lesson 3 has no Conv2D
    assert "lesson_1/exercise_a/train_mnist.py" in page
    assert "keras.layers.Conv2D(" in (REPO / "lesson_1/exercise_a/train_mnist.py").read_text()
    assert "keras.layers.Conv2D(" in (REPO / "lesson_2/functional_api/train_mnist.py").read_text()


@slow
def test_hello_keras_shows_the_images_and_labels_before_flattening_them(hello_quick):
    record = run_json(only_run(hello_quick.runs_dir))
    data = hello_quick_data(record)
    out = hello_quick.result.stdout
    for split, images in (("train", data.x_train), ("validation", data.x_val), ("test", data.x_test)):
        assert images.shape[1:] == (28, 28, 1)
        assert f"{split:>10} images: {images.shape}, float32, values 0 to 1" in out
    n_train, n_val = len(data.x_train), len(data.x_val)
    assert f"train + validation = {n_train:,} + {n_val:,} = {n_train + n_val:,} images of 28x28" in out
    assert "first test image x 255: uint8 (28, 28), 0 to 255" in out

    labels = {"train": data.y_train, "validation": data.y_val, "test": data.y_test}
    table = out.split("images per class:\n")[1].splitlines()
    assert table[0].split() == ["class", *(str(digit) for digit in range(10))]
    for split, row in zip(labels, table[1:4], strict=True):
        assert row.split() == [split, *(str(count) for count in np.bincount(labels[split], minlength=10))]
        assert f"{split:>10} labels: uint8, {len(labels[split]):,} of them, first ten {labels[split][:10]}" in out


@slow
def test_on_full_mnist_the_splits_are_the_lessons_60000_images_in_two(hello_quick):
    """The page's account of the lesson's (60000, 28, 28): the first 5,000 training images are the
    validation split, and x 255 gives back the raw uint8 pixels exactly."""
    from labkit.data import load_dataset
    from labkit.data_files import find_raw

    record = run_json(only_run(hello_quick.runs_dir))
    if record["dataset"]["name"] != "mnist":
        assert not mirror_holds_full_mnist()  # on CI the mirror is there, and this test runs in full
        return
    data = load_dataset("mnist", announce=lambda message: None)
    raw_train, raw_train_labels, raw_test, raw_test_labels = find_raw("mnist", allow_download=False).arrays
    assert raw_train.shape == (60000, 28, 28) and raw_train.dtype == np.uint8 and raw_test.shape == (10000, 28, 28)
    assert data.x_train.shape == (55000, 28, 28, 1) and data.x_val.shape == (5000, 28, 28, 1)
    assert data.x_test.shape == (10000, 28, 28, 1)
    assert len(data.x_train) + len(data.x_val) == len(raw_train)
    np.testing.assert_array_equal(np.round(data.x_val[..., 0] * 255).astype(np.uint8), raw_train[:5000])
    np.testing.assert_array_equal(np.round(data.x_test[:100, ..., 0] * 255).astype(np.uint8), raw_test[:100])
    # The labels the lesson prints: train_labels starts 5, 0, 4 (now validation), test_labels 7, 2, 1.
    assert raw_train_labels[:3].tolist() == data.y_val[:3].tolist() == [5, 0, 4]
    assert raw_test_labels[:3].tolist() == data.y_test[:3].tolist() == [7, 2, 1]


@slow
def test_hello_keras_prints_the_ten_probabilities_of_the_first_test_digit(hello_quick):
    import keras

    run = only_run(hello_quick.runs_dir)
    record = run_json(run)
    first = record["extra"]["first_test_digit"]
    probabilities = np.array(first["probabilities"])
    # What the page recorded is what the saved model predicts for that image.
    image = hello_quick_data(record).x_test[:1].reshape(1, -1)
    predicted = keras.models.load_model(run / "model.keras").predict(image, verbose=0)[0]
    np.testing.assert_allclose(probabilities, predicted, atol=1e-6)
    assert probabilities.shape == (10,) and probabilities.sum() == pytest.approx(1, abs=1e-5)
    assert first["predicted"] == int(predicted.argmax())
    out = hello_quick.result.stdout
    assert f"argmax {first['predicted']} with probability {probabilities.max():.5f}; label {first['label']}" in out
    assert "(the lesson: argmax 7, probability 0.99999106, label 7)" in out
    if record["dataset"]["name"] == "mnist":
        # The lesson's 7. In quick mode (2 x 16 steps) seeds 42, 1, 2 and 3 gave it 0.992-0.995.
        assert first["label"] == 7 and first["predicted"] == 7 and probabilities[7] > 0.9


@slow
def test_hello_keras_prints_its_first_epoch_beside_the_lessons(hello_quick):
    import math

    from labkit.tblogs import read_scalars

    run = only_run(hello_quick.runs_dir)
    record = run_json(run)
    epoch_1 = record["extra"]["epoch_1"]
    scalars = read_scalars(run)

    def logged(split, tag):
        rows = scalars[(scalars.split == split) & (scalars.tag == tag) & (scalars.step == 0)]
        return float(rows["value"].iloc[0])

    # The same figures TensorBoard logged for epoch 1 (step 0).
    assert epoch_1["loss"] == pytest.approx(logged("train", "epoch_loss"), rel=1e-6)
    assert epoch_1["accuracy"] == pytest.approx(logged("train", "epoch_accuracy"), rel=1e-6)
    assert epoch_1["val_accuracy"] == pytest.approx(logged("validation", "epoch_accuracy"), rel=1e-6)
    steps = math.ceil(record["dataset"]["sizes"]["train"] / 128)
    shown = ", ".join(f"{name} {epoch_1[name]:.4f}" for name in ("loss", "accuracy", "val_loss", "val_accuracy"))
    out = hello_quick.result.stdout
    assert f"epoch 1 here ({steps} steps of 128): {shown}" in out
    lesson_steps = math.ceil(60000 / 128)  # the lesson's 60,000 images, the last batch short
    assert f"epoch 1 in the lesson ({lesson_steps} steps of 128): loss 0.2524, accuracy 0.9273" in out


def test_anatomy_two_linear_layers_are_one_layer_and_a_relu_breaks_that(anatomy_page):
    images = np.random.default_rng(0).random((32, 784), dtype=np.float32)
    linear, relu = anatomy_page.dense_stack(None), anatomy_page.dense_stack("relu")
    assert linear.count_params() == relu.count_params() == 784 * 32 + 32 + 32 * 10 + 10
    assert anatomy_page.one_layer_gap(linear, images) < 1e-4
    assert anatomy_page.one_layer_gap(relu, images) > 1e-2


def ctc_loss_by_hand(scores, label):
    """Independent of the page: every path, collapsed with itertools.groupby (0 is the blank)."""
    import itertools

    probabilities = np.exp(scores) / np.exp(scores).sum(axis=1, keepdims=True)
    total = 0.0
    for path in itertools.product(range(scores.shape[1]), repeat=scores.shape[0]):
        if [symbol for symbol, _ in itertools.groupby(path) if symbol != 0] == label:
            total += np.prod([probabilities[t, symbol] for t, symbol in enumerate(path)])
    return -np.log(total)


@pytest.mark.parametrize("label", [[1, 2], [1, 1], [2]])
def test_anatomy_ctc_by_counting_agrees_with_keras(anatomy_page, label):
    import keras

    scores = np.random.default_rng(len(label)).normal(size=(4, 3)).astype("float32")
    by_counting, paths = anatomy_page.ctc_by_counting(scores, label)
    assert by_counting == pytest.approx(ctc_loss_by_hand(scores, label), rel=1e-6)
    padded = np.array([label + [0] * (2 - len(label))])  # 0 pads the label as well as marking the blank
    assert by_counting == pytest.approx(float(keras.losses.CTC()(padded, scores[np.newaxis])), rel=1e-4)
    # Equal scores: every path is equally likely, so the loss is -log(paths / 3^4).
    uniform, paths = anatomy_page.ctc_by_counting(np.zeros((4, 3)), label)
    assert uniform == pytest.approx(-np.log(paths / 81))


@slow
def test_anatomy_page_states_the_workflow_and_prints_the_new_checks(anatomy_quick):
    from labtest import REPO

    page = (REPO / ANATOMY_SCRIPT).read_text()
    for step in ("Define the training data", "Define the network", "Configure learning", "Fit"):
        assert f"**{step}**" in page
    out = anatomy_quick.result.stdout
    scores = np.random.default_rng(0).normal(size=(4, 3)).astype("float32")  # the page's example
    assert "15 of the 81 paths read 'ab'" in out
    assert f"CTC loss by counting them: {ctc_loss_by_hand(scores, [1, 2]):.5f}; keras.losses.CTC:" in out
    linear, relu = (line for line in out.splitlines() if line.startswith("Dense(32, "))
    assert linear.startswith("Dense(32, no activation) then Dense(10): 25,450 weights") and "(7,850 weights)" in linear
    assert float(linear.rsplit(" ", 1)[1]) < 1e-4 < 1e-2 < float(relu.rsplit(" ", 1)[1])


def test_numpy_page_shapes_of_the_four_kinds_of_network(numpy_page):
    assert numpy_page.architecture_shapes(steps=5, features=3, units=4) == {
        "one-to-one": ((None, 3), (None, 4)),
        "one-to-many": ((None, 3), (None, 5, 4)),
        "many-to-one": ((None, 5, 3), (None, 4)),
        "many-to-many": ((None, 5, 3), (None, 5, 4)),
    }


@slow
def test_numpy_page_counts_the_updates_per_pass_for_batches_of_16_to_512(numpy_quick):
    from labtest import REPO

    page = (REPO / NUMPY_SCRIPT).read_text()
    assert "| one-to-many |" in page and "between 16 and 512" in page
    # The card's figures for full MNIST's 55,000 training images, worked out here.
    card = (REPO / "lesson_2" / "numpy_from_scratch" / "README.md").read_text()
    per_pass = [f"{len(range(0, 55_000, batch_size)):,}" for batch_size in (16, 32, 128, 512)]
    assert f"one pass is {per_pass[0]}" in " ".join(card.split()) and all(count in card for count in per_pass)
    record = run_json(runs_by_tag(numpy_quick.runs_dir / "lesson_2" / "numpy_from_scratch")["numpy"])
    n = record["dataset"]["sizes"]["train"]
    out = numpy_quick.result.stdout
    for batch_size in (16, 32, 128, 512):
        updates = len(range(0, n, batch_size))  # batch starts: the last batch may be short
        assert f"batches of {batch_size:>3}: {updates:>5,} updates per pass over {n:,} images" in out


# ---------------------------------------------------------------------------------------------
# Figures that Lesson 2's cards state and that follow from the procedures (each worked out here
# on its own); the cards mark every other figure as a measured example.


def fit_y_equals_3x(nudge, epochs=1000):
    """The NumPy tutorial's procedure, written again: forward differences, learning rate 0.01."""
    x = np.array([1.0, 3.0, 4.0, 8.0, 10.0])
    y = 3 * x
    w, b, path = 2.269, 1.01, []
    for _ in range(epochs):
        loss = np.mean((w * x + b - y) ** 2)
        slope_w = (np.mean(((w + nudge) * x + b - y) ** 2) - loss) / nudge
        slope_b = (np.mean((w * x + b + nudge - y) ** 2) - loss) / nudge
        w, b = w - 0.01 * slope_w, b - 0.01 * slope_b
        path.append((w, b))
    return path


def test_numpy_card_figures_follow_from_the_procedures(numpy_page, eight_digits):
    from labtest import REPO

    path = fit_y_equals_3x(1e-4)
    assert (round(path[-1][0], 5), round(path[-1][1], 5)) == (2.99934, 0.00446)  # after 1,000 epochs
    printout = np.array([2.99929065, 0.00478785])  # the tutorial's printed result
    closest = int(np.argmin([np.abs(np.array(point) - printout).max() for point in path])) + 1
    assert abs(closest - 985) <= 2
    w, b = fit_y_equals_3x(1e-1)[-1]
    assert (round(w, 2), round(b, 2)) == (2.85, 0.73)  # question 1's big nudge
    card = (REPO / "lesson_2" / "numpy_from_scratch" / "README.md").read_text()
    assert f"{1.235**2:.3f} from the rounded" in " ".join(card.split())  # the tutorial's rounded output, squared
    # The gradient check's network and the sizes of the timing table.
    assert numpy_page.gradient_check(*eight_digits, activation="relu")["weights"] == 784 * 6 + 6 + 6 * 10 + 10 == 4780
    sizes = {
        hidden: sum(values.size for values in numpy_page.init_mlp(784, hidden, 10, np.random.default_rng(0)).values())
        for hidden in (1, 2, 4, 8, 16)
    }
    assert sizes == {1: 805, 2: 1600, 4: 3190, 8: 6370, 16: 12730}


def test_mnist_5k_splits_as_the_cards_say():
    from labkit.data import load_dataset

    data = load_dataset("mnist_5k", announce=lambda message: None)
    assert data.sizes() == {"train": 4000, "validation": 500, "test": 500}
    assert [np.bincount(labels, minlength=10).tolist() for labels in (data.y_val, data.y_test)] == [[50] * 10] * 2
