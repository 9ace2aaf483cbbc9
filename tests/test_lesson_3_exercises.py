"""Lesson 3, the exercises of Geron's chapter 10: every computed answer, checked.

The page's functions run in-process (labtest.page_definitions): the XOR network's truth table, the
10 -> 50 -> 3 network's shapes and parameter count (derived here from the layer sizes), the three
output layers, the tape's gradient against finite differences. The notebook is executed once, and
what it printed is checked against values derived here (scikit-learn refitted, the sigmoid's slope
by its formula, the shapes and counts from the sizes). The page takes no flags.
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
)

SCRIPT = "lesson_3/exercises/exercises.py"
NOTEBOOK = "lesson_3/exercises/exercises.ipynb"
INPUTS, HIDDEN, OUTPUTS = 10, 50, 3  # exercise 6's network

slow = pytest.mark.slow


@pytest.fixture(scope="module")
def page():
    return page_definitions(SCRIPT)


def printed(pattern: str, text: str) -> str:
    found = re.search(pattern, text)
    assert found, f"the page never printed {pattern!r}"
    return found.group(1)


def test_exercise_2_the_network_of_threshold_neurons_computes_xor(page):
    assert [page.xor_network(a, b) for a in (0, 1) for b in (0, 1)] == [a ^ b for a in (0, 1) for b in (0, 1)]
    # Each hidden neuron is the half of the hint it claims to be.
    for a in (0, 1):
        for b in (0, 1):
            assert page.threshold_neuron([a, b], [1, -1], 1) == int(a and not b)
            assert page.threshold_neuron([a, b], [-1, 1], 1) == int(b and not a)


def test_exercise_6_shapes_and_parameters(page):
    import keras

    model = page.exercise_6_mlp()
    (w_h, b_h), (w_o, b_o) = model.get_layer("hidden").get_weights(), model.get_layer("output").get_weights()
    assert (w_h.shape, b_h.shape, w_o.shape, b_o.shape) == ((INPUTS, HIDDEN), (HIDDEN,), (HIDDEN, OUTPUTS), (OUTPUTS,))
    assert model.count_params() == (INPUTS + 1) * HIDDEN + (HIDDEN + 1) * OUTPUTS
    m = 7
    x = np.random.default_rng(0).normal(size=(m, INPUTS)).astype("float32")
    y = keras.ops.convert_to_numpy(model(x))
    assert y.shape == (m, OUTPUTS) and (y >= 0).all()  # ReLU on the output too, as the exercise says
    np.testing.assert_allclose(y, np.maximum(np.maximum(x @ w_h + b_h, 0) @ w_o + b_o, 0), atol=1e-5)


def test_exercise_7_output_layers(page):
    heads = {
        task: (layer.units, layer.get_config()["activation"], loss)
        for task, (_, layer, loss) in page.output_heads().items()
    }
    assert heads == {
        "spam": (1, "sigmoid", "binary_crossentropy"),  # one yes/no question
        "MNIST": (10, "softmax", "sparse_categorical_crossentropy"),  # ten exclusive classes
        "housing": (1, "linear", "mse"),  # one real value
    }


def test_exercise_8_the_tape_matches_finite_differences(page):
    params, x, y = page.small_mlp_problem()
    by_tape = page.tape_gradients(params, x, y)
    by_differences = page.finite_difference_gradients(params, x, y)
    assert [g.shape for g in by_tape] == [p.shape for p in params]
    assert max(np.abs(g).max() for g in by_tape) > 0.1, "a zero gradient would match anything"
    for tape_gradient, difference in zip(by_tape, by_differences, strict=True):
        np.testing.assert_allclose(tape_gradient, difference, atol=1e-6)
    # Another problem's gradient does not match: the comparison can fail.
    other = page.tape_gradients(*page.small_mlp_problem(seed=1))
    assert not np.allclose(other[0], by_differences[0], atol=1e-6)


def test_an_unknown_flag_exits_2_with_one_line(runs_dir, capsys, monkeypatch):
    assert_refused(
        SCRIPT, "--quick", message="unrecognized arguments", runs_dir=runs_dir, capsys=capsys, monkeypatch=monkeypatch
    )


@slow
def test_the_notebook_computes_the_answers(runs_dir):
    from sklearn.datasets import load_iris
    from sklearn.linear_model import LogisticRegression, Perceptron

    notebook = execute_notebook(NOTEBOOK, runs_dir)
    text = notebook_text_outputs(notebook)

    assert "XOR network: 4 of 4 rows of the truth table right" in text

    iris = load_iris()
    x, virginica, setosa = iris.data[:, 2:4], (iris.target == 2).astype(int), (iris.target == 0).astype(int)
    scores = [Perceptron(random_state=seed).fit(x, virginica).score(x, virginica) for seed in range(10)]
    assert f"training accuracy {min(scores):.3f} to {max(scores):.3f}" in text
    assert max(scores) - min(scores) > 0.1, "the perceptron's answer depends on the shuffle"
    logistic = LogisticRegression().fit(x, virginica).score(x, virginica)
    assert f"logistic regression: training accuracy {logistic:.3f}" in text and logistic >= max(scores)
    assert "a perceptron has predict_proba: False" in text
    probability = LogisticRegression().fit(x, setosa).predict_proba([[2, 0.5]])[0, 1]
    assert f"P(setosa | petals 2 cm x 0.5 cm) = {probability:.3f}" in text

    assert "d step(w x) / dw = 0.0000" in text
    sigmoid = 1 / (1 + np.exp(-1.0))  # w x = 0.5 * 2
    assert float(printed(r"d sigmoid\(w x\) / dw = (\S+)", text)) == pytest.approx(
        2 * sigmoid * (1 - sigmoid), abs=1e-4
    )
    edge = 1 / (1 + np.exp(-10.0))
    assert f"smallest {edge * (1 - edge):.3g} (at z = +/-10)" in text
    assert "largest 0.25 (at z = 0)" in text

    m = 4
    for name, shape in {
        "X": (m, INPUTS),
        "W_h": (INPUTS, HIDDEN),
        "b_h": (HIDDEN,),
        "W_o": (HIDDEN, OUTPUTS),
        "b_o": (OUTPUTS,),
        "Y": (m, OUTPUTS),
    }.items():
        assert f"\n{name} {shape}\n" in f"\n{text}", name
    assert f"parameters: {(INPUTS + 1) * HIDDEN + (HIDDEN + 1) * OUTPUTS}" in text
    assert float(printed(r"max \|Keras - equation\| = (\S+)", text)) < 1e-5

    assert "spam: 1 output neuron(s), activation sigmoid" in text
    assert "MNIST: 10 output neuron(s), activation softmax" in text and "each row sums to 1: True" in text
    assert "housing: 1 output neuron(s), activation linear" in text

    assert f"{(3 + 1) * 4 + (4 + 1) * 1} parameters; the gradient of w1 by the tape" in text  # 42 loss evaluations
    assert float(printed(r"max \|tape - finite differences\| over all parameters: (\S+)", text)) < 1e-6

    assert notebook_has_image(notebook)
    assert files_under(runs_dir) == [], "the page writes no run folder"
