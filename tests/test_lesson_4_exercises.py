"""Lesson 4, exercises: the worked answers of the review page, checked.

The page's own functions (centre of mass, re-centring, the subclassed model) are called directly
through `page_definitions`; exercise 7's answers come from Lesson 4's real server, which the
page starts as a program. The notebook is executed once, and every
figure it prints is checked against a value this file derives on its own: parameter counts and
byte counts from the layer sizes, Adam's step counter from the epochs and the batch size, the
centre of mass of the training digits with SciPy, the digits cut by the border from the test
images.
"""

import inspect
import math
import re

import numpy as np
import pytest

from labtest import execute_notebook, notebook_has_image, notebook_text_outputs, page_definitions, run_script

SCRIPT = "lesson_4/exercises/exercises.py"
NOTEBOOK = "lesson_4/exercises/exercises.ipynb"

slow = pytest.mark.slow


@pytest.fixture(scope="module")
def page():
    return page_definitions(SCRIPT)


@pytest.fixture(scope="module")
def digits():
    from labkit.data import load_dataset

    return load_dataset("mnist_5k", announce=lambda line: None)


def weights_of(page) -> int:
    """Flatten (784) -> Dense(HIDDEN_UNITS) -> Dense(10), counted by hand."""
    return 784 * page.HIDDEN_UNITS + page.HIDDEN_UNITS + page.HIDDEN_UNITS * 10 + 10


# ---------------------------------------------------------------------------------------------
# The page's functions, called directly


def test_an_unknown_flag_gets_one_line_and_exit_2(runs_dir):
    result = run_script(SCRIPT, "--epochs", "3", runs_dir=runs_dir, timeout=60)
    assert result.returncode == 2
    assert len(result.stderr.strip().splitlines()) == 1 and "unrecognized arguments: --epochs 3" in result.stderr
    assert not any(runs_dir.iterdir())


def test_centre_of_mass_agrees_with_scipy(page, digits):
    from scipy import ndimage

    images = digits.x_train[:200]
    rows, columns = page.centre_of_mass(images)
    expected = np.array([ndimage.center_of_mass(image[..., 0]) for image in images])
    np.testing.assert_allclose(rows, expected[:, 0], atol=1e-4)
    np.testing.assert_allclose(columns, expected[:, 1], atol=1e-4)


def test_recentre_brings_a_shifted_digit_back_exactly(page, digits):
    from labkit.shifts import shift_right

    whole = digits.x_test[digits.x_test[:, :, -6:].sum(axis=(1, 2, 3)) == 0][:20]  # no ink lost at 6 px
    rows, columns = page.centre_of_mass(whole)
    for image, row, column in zip(whole, rows, columns, strict=True):
        moved = page.recentre(shift_right(image[np.newaxis], 6), row, column)[0]
        np.testing.assert_array_equal(moved, image)


def test_the_subclassed_model_saves_and_loads_with_its_config(page, tmp_path):
    import keras

    model = page.WideAndDeepModel(units=7, activation="tanh")
    x = np.random.default_rng(0).random((5, 28, 28, 1)).astype("float32")
    before = model.predict(x, verbose=0)
    model.save(tmp_path / "wd.keras")
    restored = keras.models.load_model(tmp_path / "wd.keras")
    assert type(restored).__name__ == "WideAndDeepModel" and (restored.units, restored.activation) == (7, "tanh")
    np.testing.assert_array_equal(restored.predict(x, verbose=0), before)
    # wide (784) + deep (7) -> 10, and the two hidden layers
    assert model.count_params() == (784 * 7 + 7) + (7 * 7 + 7) + ((784 + 7) * 10 + 10)


def test_keras_3_save_has_no_include_optimizer_parameter():
    import keras

    assert "include_optimizer" not in inspect.signature(keras.Model.save).parameters


# ---------------------------------------------------------------------------------------------
# The notebook, executed once, and its printed answers


@pytest.fixture(scope="module")
def executed(tmp_path_factory):
    runs = tmp_path_factory.mktemp("lesson_4_exercises") / "runs"
    runs.mkdir()
    notebook = execute_notebook(NOTEBOOK, runs)
    return notebook, notebook_text_outputs(notebook)


def found(pattern, text, cast=float):
    match = re.search(pattern, text)
    assert match, f"the notebook printed no line matching {pattern!r}"
    return [cast(group.replace(",", "")) for group in match.groups()]


def dict_after(label, text) -> dict:
    import ast

    line = next(line for line in text.splitlines() if line.startswith(label))
    return ast.literal_eval(line[len(label) :].strip())


def table_row(name, text) -> list[float]:
    line = next(line for line in text.splitlines() if line.startswith(name))
    return [float(value) for value in line[len(name) :].split()]


@slow
def test_exercise_1_every_copy_predicts_the_same(executed):
    _, text = executed
    assert found(r"model\.keras +max abs diff (\S+)  same labels: True", text) == [0.0]
    assert found(r"model\.weights\.h5 +max abs diff (\S+)  same labels: True", text) == [0.0]
    assert found(r"export/ \(SavedModel\) +max abs diff (\S+)  same labels: True", text)[0] <= 1e-6
    assert "All three copies predict what the trained model predicts." in text


@slow
def test_exercise_2_the_bytes_are_the_weights_and_adams_two_slots(executed, page):
    _, text = executed
    weights = weights_of(page)
    assert found(r"parameters: ([\d,]+) \|", text, int) == [weights]
    assert found(r"([\d,]+) parameters x 4 bytes = ([\d,]+) bytes of weights", text, int) == [weights, 4 * weights]
    for label in ("inside model.keras:", "inside model.weights.h5:"):
        stored = dict_after(label, text)
        assert stored == {"layers": 4 * weights, "optimizer": 2 * 4 * weights + 8 + 4}, label
    assert found(r"inside export/: ([\d,]+) bytes of variables = (\S+) x the weights", text) == [8 * weights, 2]
    keras_file, weights_file = found(r"model\.keras +([\d,]+) bytes on disk\nmodel\.weights\.h5 +([\d,]+)", text, int)
    assert keras_file > 3 * 4 * weights and weights_file > 3 * 4 * weights


@slow
def test_exercise_3_include_optimizer_is_ignored_and_an_uncompiled_copy_leaves_adam_out(executed, page):
    _, text = executed
    weights = weights_of(page)
    assert "include_optimizer is a parameter: False" in text
    assert dict_after("save(..., include_optimizer=False) stores:", text) == dict_after("inside model.keras:", text)
    assert dict_after("uncompiled copy stores:", text) == {"layers": 4 * weights}
    with_adam, without = found(r"file sizes: ([\d,]+) bytes with Adam's state, ([\d,]+) without", text, int)
    assert without < 0.4 * with_adam and without > 4 * weights
    from labkit.data import MNIST_5K_SPLIT

    steps = page.EPOCHS * math.ceil(MNIST_5K_SPLIT[0] / page.BATCH_SIZE)
    assert found(r"Adam's step counter in the full copy: (\d+)", text, int) == [steps]
    assert "the reloaded serving copy is compiled: False" in text


@slow
def test_exercise_4_a_registered_subclass_round_trips_and_the_others_fail_where_expected(executed):
    _, text = executed
    assert "registered, with get_config: restored as WideAndDeepModel(units=30), max abs diff 0" in text
    assert "cloned too: WideAndDeepModel(units=30, activation='relu')" in text
    unregistered = "UnregisteredWideAndDeep"
    assert f"{unregistered}: load fails with TypeError: Could not locate class '{unregistered}'" in text
    assert "TakesALayer: save fails with NotImplementedError" in text
    assert "UnregisteredWideAndDeep loads when handed its class: custom_objects -> UnregisteredWideAndDeep" in text


@slow
def test_exercise_5_training_digits_sit_on_one_point_and_shifted_ones_are_misread(executed, digits):
    from scipy import ndimage

    notebook, text = executed
    centres = np.array([ndimage.center_of_mass(image[..., 0]) for image in digits.x_train])
    for axis, name in ((0, "row"), (1, "column")):
        mean, std, low, high = found(rf"  {name} +(\S+) \+- (\S+) px \(from (\S+) to (\S+)\)", text)
        values = centres[:, axis]
        assert (mean, std, low, high) == (
            round(values.mean(), 2),
            round(values.std(), 2),
            round(values.min(), 2),
            round(values.max(), 2),
        )
        assert abs(mean - 14) < 0.1 and std < 0.5 and high - low <= 1.0  # all within half a pixel of one point

    test_accuracy = found(r"test accuracy after \d+ epochs: (\S+)", text)[0]
    shifts = [int(p) for p in next(line for line in text.splitlines() if line.startswith("shift px:")).split()[2:]]
    edge = dict(zip(shifts, table_row("accuracy:", text), strict=True))
    assert shifts == [0, 2, 4, 6, 8, 10]
    assert edge[0] == test_accuracy > 0.8
    assert edge[0] > edge[2] > edge[4] > edge[6]
    assert all(edge[p] < 0.2 for p in (6, 8, 10)), edge  # no better than a guess
    example, label = found(r"test digit (\d+) \(a (\d)\) is read as:", text, int)
    read_as = dict_after(f"test digit {example} (a {label}) is read as:", text)
    assert read_as[0] == label == int(digits.y_test[example]) and read_as[10] != label
    assert notebook_has_image(notebook)


@slow
def test_exercise_6_centring_and_training_on_shifts_both_read_the_edge(executed, digits):
    _, text = executed
    edge = table_row("as trained", text)
    centred = table_row("(a) input centred", text)
    trained = table_row("(b) trained on shifts", text)
    lost = table_row("share of ink lost", text)
    images = digits.x_test
    for i, pixels in enumerate([0, 2, 4, 6, 8, 10]):
        off_the_edge = images[:, :, 28 - pixels :].sum(axis=(1, 2, 3)) if pixels else 0.0
        assert lost[i] == pytest.approx(np.mean(off_the_edge / images.sum(axis=(1, 2, 3))), abs=0.0015)
        assert centred[i] >= edge[i] - (0.02 if pixels == 0 else 0)  # a centred digit moves by a pixel at most
        if lost[i] < 0.03:  # a digit still (nearly) whole is read as well as a centred one
            assert centred[i] >= edge[0] - 0.03, (pixels, centred[i], edge[0])
    assert lost[-1] > 0.1 and centred[-1] < edge[0] - 0.1  # what slid off the canvas stays lost
    assert min(trained) > 0.7 and trained[-1] > edge[-1] + 0.5
    assert trained[0] < edge[0]  # the price: some accuracy on centred digits, for this small network


@slow
def test_exercise_7_bad_requests_get_a_4xx_and_the_service_keeps_answering(executed):
    _, text = executed
    expected = {
        "GET instead of POST": 405,
        "plain text": 415,
        "empty body": 400,
        "not JSON": 400,
        "a JSON list": 400,
        'no "image"': 422,
        "27 rows": 422,
        "a word for a pixel": 422,
        "NaN pixels": 422,
        "a pixel of 300": 422,
        "2 MB body": 413,
    }
    for name, status in expected.items():
        assert found(rf"(?m)^{re.escape(name)} +(\d{{3}})  \S", text, int) == [status], name
    # What the network does with such input when nothing refuses it: no error, a label anyway.
    # NaN in, NaN out (argmax 0) where the kernels keep NaNs; ten finite probabilities where the max
    # pooling drops them (oneDNN on an AVX-512 Xeon, measured).
    nan_line = re.search(r"NaN pixels: no error, label (\d), probabilities (.+)\n", text)
    assert nan_line, text[-3000:]
    values = [float(value) for value in nan_line[2].split()]
    assert len(values) == 10
    if all(np.isnan(values)):
        assert nan_line[1] == "0"
    else:
        assert sum(values) == pytest.approx(1, abs=0.01) and values[int(nan_line[1])] == max(values)
    assert re.search(r"pixels of 300: no error, label \d, probabilities( \d\.\d{3}){10}\n", text)
    good_label, true_label = found(r"good request: 200 label (\d) \| the true label: (\d)", text, int)
    again, predicted = found(r"after all that, a good request: 200 label (\d) \| model\.predict: (\d)", text, int)
    assert again == good_label == predicted
    assert "server: Server stopped. | exit code 0" in text  # Ctrl-C ends it cleanly, port freed
