"""Lesson 3, from the perceptron to the multilayer perceptron: the iris perceptron and its SGD twin,
XOR, the activations and tanh's identity, the Huber loss.

The page's functions are checked in-process (labtest.page_definitions), each against a value the
test derives on its own: scikit-learn refitted here, the 16 labellings of the XOR corners, XOR by
Python's `^`, tanh against the sigmoid, Huber's formula. The notebook is executed once in quick
mode, and what it printed is checked against the same independent values; one script run with
another seed checks that `--seed` reaches every model. The page writes no run folder.
"""

import re

import numpy as np
import pytest

from labtest import (
    assert_refused,
    execute_notebook,
    files_under,
    notebook_has_image,
    notebook_text_outputs,
    page_definitions,
    run_script,
)

SCRIPT = "lesson_3/perceptrons/train_perceptrons.py"
NOTEBOOK = "lesson_3/perceptrons/train_perceptrons.ipynb"
POINT = [[2, 0.5]]  # the chapter's flower: petals 2 cm long, 0.5 cm wide

slow = pytest.mark.slow


@pytest.fixture(scope="module")
def page():
    return page_definitions(SCRIPT)


def iris_setosa():
    from sklearn.datasets import load_iris

    iris = load_iris()
    return iris.data[:, 2:4], (iris.target == 0).astype(int)


def perceptron_prediction(seed: int) -> int:
    from sklearn.linear_model import Perceptron

    X, y = iris_setosa()
    return int(Perceptron(random_state=seed).fit(X, y).predict(POINT)[0])


def printed(pattern: str, text: str) -> str:
    found = re.search(pattern, text)
    assert found, f"the page never printed {pattern!r}"
    return found.group(1)


# ---------------------------------------------------------------------------------------------
# The page's functions, in-process


@pytest.mark.parametrize("seed", [42, 0, 6, 1234])
def test_the_perceptron_is_sgd_with_the_perceptron_loss(page, seed):
    from sklearn.linear_model import Perceptron, SGDClassifier

    X, y = iris_setosa()
    perceptron = Perceptron(random_state=seed).fit(X, y)
    twin = SGDClassifier(loss="perceptron", learning_rate="constant", eta0=1, penalty=None, random_state=seed)
    answers = page.compare_twins(perceptron, twin.fit(X, y), X)
    assert list(answers.values()) == [True] * 4, answers


def test_the_comparison_can_tell_two_different_lines_apart(page):
    from sklearn.linear_model import Perceptron

    X, y = iris_setosa()
    first, second = Perceptron(random_state=42).fit(X, y), Perceptron(random_state=0).fit(X, y)
    answers = page.compare_twins(first, second, X)
    # Both separate the training flowers perfectly, with different lines.
    assert answers["same predictions on every row"] and not answers["same weights"]


def test_the_point_2_05_depends_on_the_shuffle(page):
    """The page's questions name seeds 0 and 6 as the ones that call [2, 0.5] another species."""
    X, y = iris_setosa()
    per_seed = page.prediction_per_seed(X, y)
    assert per_seed == {seed: perceptron_prediction(seed) for seed in range(10)}
    assert [seed for seed, label in per_seed.items() if label == 0] == [0, 6]
    assert X[y == 1, 0].max() < 2 < X[y == 0, 0].min(), "the point lies in the gap between the classes"
    # The card's note: the chapter's listing, Perceptron() with no seed, shuffles with seed 0.
    from sklearn.linear_model import Perceptron

    assert Perceptron().random_state == 0 and perceptron_prediction(0) == 0


def test_a_single_unit_makes_14_of_the_16_labellings_and_not_xor(page):
    corners = page.XOR_X
    for code in range(16):
        labels = np.array([(code >> bit) & 1 for bit in range(4)])
        best, count = page.linear_units_on_corners(corners, labels)
        assert count == 14
        is_xor_or_xnor = list(labels) in ([0, 1, 1, 0], [1, 0, 0, 1])
        assert best == (0.75 if is_xor_or_xnor else 1.0), (labels, best)
    assert list(page.XOR_Y) == [a ^ b for a, b in corners]


def test_the_hand_set_network_computes_xor(page):
    assert [int(v) for v in page.xor_by_hand(page.XOR_X)] == [a ^ b for a, b in page.XOR_X]
    # One weight off and it does not: the test can fail.
    page.XOR_OUTPUT_WEIGHTS[1] = 1
    try:
        assert [int(v) for v in page.xor_by_hand(page.XOR_X)] != [a ^ b for a, b in page.XOR_X]
    finally:
        page.XOR_OUTPUT_WEIGHTS[1] = -1


def test_tanh_is_a_rescaled_sigmoid(page):
    z = np.linspace(-10, 10, 2001)
    independent = np.abs(np.tanh(z) - (2 / (1 + np.exp(-2 * z)) - 1)).max()
    assert independent < 1e-12
    assert page.tanh_identity_gap("float64") < 1e-12
    assert page.tanh_identity_gap("float32") < 1e-6
    assert page.tanh_identity_gap("float32") > page.tanh_identity_gap("float64")


def test_the_huber_formula_is_keras_huber(page):
    import keras

    errors = np.linspace(-4, 4, 81).astype("float32")
    keras_huber = keras.losses.Huber(delta=1.0, reduction=None)(np.zeros((81, 1), "float32"), errors[:, None])
    np.testing.assert_allclose(page.huber_by_formula(errors), keras.ops.convert_to_numpy(keras_huber), rtol=1e-6)
    quadratic, linear = page.huber_by_formula(np.array([0.5, 3.0]))
    assert quadratic == 0.125 and linear == 2.5


@pytest.mark.parametrize(
    "flags, message",
    [
        (("--epochs", "0"), "must be at least 1"),
        (("--seed", "-1"), "must be between 0 and"),
        (("--logdir", "elsewhere"), "writes no run folder"),
        (("--resume", "some_run"), "writes no run folder"),
        (("--distribute", "mirrored"), "train in a second on one device"),
        (("--dataset", "mnist"), "iris flowers and the four XOR points"),
        (("--no-such-flag",), "unrecognized arguments"),
    ],
)
def test_bad_flags_exit_2_with_one_line(flags, message, runs_dir, capsys, monkeypatch):
    assert_refused(SCRIPT, *flags, message=message, runs_dir=runs_dir, capsys=capsys, monkeypatch=monkeypatch)


# ---------------------------------------------------------------------------------------------
# The notebook, and the script with another seed


def check_page_output(text: str, seed: int) -> None:
    """What the page printed, against values derived here."""
    expected = perceptron_prediction(seed)
    assert int(printed(r"Perceptron: predict\(\[\[2, 0\.5\]\]\) = (\d)", text)) == expected
    assert int(printed(r"SGDClassifier: predict\(\[\[2, 0\.5\]\]\) = (\d)", text)) == expected
    for question in ("same predictions on every row", "same weights", "same bias", "same number of epochs"):
        assert f"{question}: True" in text, question
    assert "Perceptron: training accuracy 1.000" in text
    X, y = iris_setosa()
    assert f"setosa petals at most {X[y == 1, 0].max()} cm long; the others' at least {X[y == 0, 0].min()} cm" in text
    per_seed = {seed: perceptron_prediction(seed) for seed in range(10)}
    assert f"prediction for [2, 0.5] by shuffle seed: {per_seed}" in text
    assert f"{sum(per_seed.values())} of 10 seeds say setosa" in text

    assert int(printed(r"Perceptron on XOR: (\d) of 4 right", text)) <= 3
    assert "they produce 14 of the 16 possible labellings" in text
    assert "best accuracy of a single unit on XOR: 0.75" in text
    assert "hand-set network: 4 of 4 right" in text
    assert "Keras MLP on XOR: 4 of 4 right" in text

    assert float(printed(r"float64 \(NumPy\): max \S+ - \(2 sigmoid\(2z\) - 1\)\| = (\S+)", text)) < 1e-12
    for where in ("NumPy", "Keras ops"):
        gap = float(printed(rf"float32 \({where}\): max \S+ - \(2 sigmoid\(2z\) - 1\)\| = (\S+)", text))
        assert gap < 1e-6, where

    assert "Keras's Huber matches the formula: True" in text
    batch = np.array([0.1, -0.2, 0.3, 10.0])
    huber = np.where(np.abs(batch) <= 1, 0.5 * batch**2, np.abs(batch) - 0.5).mean()
    for name, value in {"MSE": (batch**2).mean(), "MAE": np.abs(batch).mean(), "Huber": huber}.items():
        assert float(printed(rf"{name} over the batch of errors \S+ \S+ \S+ \S+: (\S+)", text)) == pytest.approx(
            value, abs=1e-3
        ), name
    assert "all positive: True" in text


@slow
def test_the_notebook_runs_and_prints_what_the_test_derives(runs_dir):
    notebook = execute_notebook(NOTEBOOK, runs_dir)
    text = notebook_text_outputs(notebook)
    check_page_output(text, seed=42)
    assert "--quick: the same page" in text  # the notebook ran in quick mode, which changes nothing
    assert notebook_has_image(notebook)
    assert files_under(runs_dir) == [], "the page writes no run folder"


@slow
def test_the_script_takes_its_seed_everywhere(runs_dir):
    result = run_script(SCRIPT, "--seed", "6", runs_dir=runs_dir)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-3000:]
    assert perceptron_prediction(6) == 0  # seed 6 calls [2, 0.5] another species: the page's question 1
    check_page_output(result.stdout, seed=6)
    assert result.stdout.startswith("seed 6 | XOR network: 10 epochs, Adam at 0.05, batches of 32\n")
    assert files_under(runs_dir) == []
