"""Lesson 2's exercises page: every answer it computes, checked against a derivation of its own.

The page's functions are called directly (labtest.page_definitions), and the notebook is executed
once, its printed answers read back and compared with what this file works out independently.
"""

import math
import re

import numpy as np
import pytest

from labtest import (
    assert_refused,
    execute_notebook,
    mirror_holds_full_mnist,
    notebook_text_outputs,
    page_definitions,
)

PAGE = "lesson_2/exercises/exercises.py"
NOTEBOOK = "lesson_2/exercises/exercises.ipynb"
slow = pytest.mark.slow

HELLO_WORLD_PARAMETERS = (784 * 512 + 512) + (512 * 10 + 10)
SHARED_READER = 56 * 16 + 16  # exercise 5: Dense(16) on 56 features
SHARED_HEAD = 2 * 16 + 1  # Dense(1) on the two 16-unit readings
LINEAR_STACK = (784 * 256 + 256) + (256 * 64 + 64) + (64 * 10 + 10)


def sigmoid(z):
    return 1 / (1 + math.exp(-z))


# The NumPy tutorial's 2-3-1 network on the input (1, 1), worked out with the standard library.
TUTORIAL_OUTPUT = 0.3 * sigmoid(0.8 + 0.2) + 0.5 * sigmoid(0.4 + 0.9) + 0.9 * sigmoid(0.3 + 0.5)


@pytest.fixture(scope="module")
def page():
    return page_definitions(PAGE)


def test_parameter_counts_by_hand_and_by_keras(page):
    assert HELLO_WORLD_PARAMETERS == 407_050
    assert page.dense_parameters([784, 512, 10]) == HELLO_WORLD_PARAMETERS
    assert page.hello_world_model().count_params() == HELLO_WORLD_PARAMETERS
    assert page.dense_parameters([784, 256, 64, 10]) == page.linear_stack().count_params() == LINEAR_STACK == 218_058


def test_steps_per_epoch_round_up_for_the_short_last_batch(page):
    for n_images in (60_000, 55_000, 2_000):
        for batch_size in (16, 32, 128, 512):
            assert page.steps_per_epoch(n_images, batch_size) == len(range(0, n_images, batch_size))
    assert page.steps_per_epoch(60_000, 128) == 469 and page.steps_per_epoch(55_000, 128) == 430


def test_the_2_3_1_forward_pass_by_hand_and_in_keras(page):
    x = np.array([[1.0, 1.0]])
    assert page.forward_by_hand(x)[0, 0] == pytest.approx(TUTORIAL_OUTPUT, abs=1e-12)
    assert page.forward_in_keras(x)[0, 0] == pytest.approx(TUTORIAL_OUTPUT, abs=1e-6)
    assert round(TUTORIAL_OUTPUT, 4) == 1.2332
    # Any other input too, not just the tutorial's.
    others = np.random.default_rng(0).normal(size=(5, 2))
    np.testing.assert_allclose(page.forward_in_keras(others), page.forward_by_hand(others), atol=1e-6)


def test_a_shared_layer_maps_each_input_and_counts_its_weights_once(page):
    model = page.shared_layer_model(n_features=56, units=16)
    outputs = model.predict({name: np.ones((3, 56), dtype="float32") for name in ("first", "second")}, verbose=0)
    assert {name: array.shape for name, array in outputs.items()} == {
        "first_read": (3, 16),
        "second_read": (3, 16),
        "both": (3, 32),
        "same": (3, 1),
    }
    np.testing.assert_array_equal(outputs["first_read"], outputs["second_read"])  # one set of weights
    assert model.count_params() == SHARED_READER + SHARED_HEAD == 945


def test_a_stack_of_linear_layers_multiplies_out_to_one_layer(page):
    stack = page.linear_stack()
    weights, bias = page.multiplied_out(stack)
    assert weights.shape == (784, 10) and bias.shape == (10,)
    pixels = np.random.default_rng(1).random((16, 784), dtype=np.float32)
    np.testing.assert_allclose(stack.predict(pixels, verbose=0), pixels @ weights + bias, atol=1e-4)
    # The check can fail: with a ReLU on the first layer, the same product no longer matches.
    import keras

    bent = keras.Sequential([keras.Input(shape=(784,)), keras.layers.Dense(256, activation="relu"), *stack.layers[1:]])
    bent.layers[0].set_weights(stack.layers[0].get_weights())
    assert np.abs(bent.predict(pixels, verbose=0) - (pixels @ weights + bias)).max() > 1e-2


def test_the_page_takes_no_flags(runs_dir, capsys, monkeypatch):
    refused = {"message": "unrecognized arguments: --quick", "capsys": capsys, "monkeypatch": monkeypatch}
    assert_refused(PAGE, "--quick", runs_dir=runs_dir, **refused)


def printed_row(text, first):
    """The numbers on the printed table row that starts with the word `first`."""
    (line,) = [line for line in text.splitlines() if line.split()[:1] == [first]]
    return [float(word.replace(",", "")) for word in line.split()[1:] if re.fullmatch(r"[-\d.,e+]+", word)]


@slow
def test_notebook_executes_and_prints_every_answer(runs_dir):
    text = notebook_text_outputs(execute_notebook(NOTEBOOK, runs_dir))

    # 1. Parameters.
    assert f"by hand: 784 x 512 + 512 + 512 x 10 + 10 = {HELLO_WORLD_PARAMETERS:,}" in text
    assert f"model.count_params(): {HELLO_WORLD_PARAMETERS:,}" in text
    assert f"per layer: [{784 * 512 + 512}, {512 * 10 + 10}]" in text

    # 2. Steps per epoch and the last batch, for 60,000 and 55,000 images at 128.
    for n_images in (60_000, 55_000):
        steps = len(range(0, n_images, 128))
        last = n_images - 128 * (n_images // 128) or 128
        assert printed_row(text, str(n_images)) == [steps, steps, last, last]

    # 3. The forward pass.
    assert f"by hand: {TUTORIAL_OUTPUT:.4f}" in text and f"Keras:   {TUTORIAL_OUTPUT:.4f}" in text

    # 4. The losses, by hand and by Keras.
    expected = {"binary": -math.log(0.9), "sparse": -math.log(0.7), "mean": (3.0 - 2.5) ** 2}
    for first_word, value in expected.items():
        by_hand, by_keras = printed_row(text, first_word)[-2:]
        assert by_hand == pytest.approx(value, abs=5e-5) and by_keras == pytest.approx(value, abs=5e-5)

    # 5. Shapes through the shared layer (a batch of 4 pairs) and its parameters.
    for name, shape in (("first_read", (4, 16)), ("second_read", (4, 16)), ("both", (4, 32)), ("same", (4, 1))):
        assert f"{name:>11}: {shape}" in text
    assert f"parameters: {SHARED_READER + SHARED_HEAD:,} shared; {2 * SHARED_READER + SHARED_HEAD:,} with two" in text

    # 6. The linear stack.
    assert f"stack: {LINEAR_STACK:,} parameters; one layer: {784 * 10 + 10:,}" in text
    gap = float(re.search(r"its one-layer form: (\S+)", text).group(1))
    assert gap < 1e-4

    # 7. Batch sizes: updates per pass, memory, and one pass at 16 against 512.
    updates = {batch_size: len(range(0, 55_000, batch_size)) for batch_size in (16, 32, 128, 512)}
    assert f"(a) {updates}" in text
    assert f"(c) one (55,000, 512) float32 activation: {55_000 * 512 * 4 / 1e6:.0f} MB" in text
    data_name = re.search(r"data: (\w+), 2,000 training images", text).group(1)
    assert data_name in ("mnist", "mnist_5k")
    assert data_name == "mnist" or not mirror_holds_full_mnist()
    small_updates, small_accuracy = printed_row(text, "16")
    big_updates, big_accuracy = printed_row(text, "512")
    assert (small_updates, big_updates) == (len(range(0, 2000, 16)), len(range(0, 2000, 512))) == (125, 4)
    # Measured (seed 42): 0.880 against 0.744 on full MNIST, 0.902 against 0.782 on mnist_5k.
    assert small_accuracy > big_accuracy + 0.05
