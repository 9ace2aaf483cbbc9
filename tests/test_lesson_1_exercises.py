"""Lesson 1's exercises page (seed 000's opening: what a neural network is), checked answer by answer.

Each computed answer is checked twice: the page's own functions (read with `page_definitions`)
against a derivation written here, and the executed notebook's printed answers against the same
derivation. The small networks' results are checked by orderings and floors that fail if the
lesson's point (wider is better, missing data hurts, a source artefact fools a classifier) does
not show.
"""

import math
import re
import struct

import numpy as np
import pytest

from labtest import REPO, execute_notebook, notebook_has_image, notebook_text_outputs, page_definitions, run_script

PAGE = "lesson_1/exercises/exercises.py"
NOTEBOOK = "lesson_1/exercises/exercises.ipynb"
FIGURES = ("layers", "universality", "representation", "missing_data", "mnist_mean_digit")
FIGURE_LIMIT_BYTES = 150_000

slow = pytest.mark.slow


@pytest.fixture(scope="module")
def page():
    return page_definitions(PAGE)


# ---------------------------------------------------------------------------------------------
# What each answer should be, derived here from first principles


def exercise_a_multiply_adds() -> dict:
    """Exercise A's CNN, from its shape: 32 5x5 filters over 28x28 positions of a 1-channel image
    ('same' padding), 2x2 pooling to 14x14x32, then Dense 1,024 and Dense 10."""
    return {"conv": 28 * 28 * 32 * (5 * 5 * 1), "fc1": (14 * 14 * 32) * 1024, "fc2": 1024 * 10}


def exercise_a_parameters() -> int:
    return (5 * 5 * 1 + 1) * 32 + (14 * 14 * 32 + 1) * 1024 + (1024 + 1) * 10


def starting_network_parameters(features: int, classes: int = 10) -> int:
    return (features + 1) * features + (features + 1) * classes


def counts_rounding_to(share: float, total: int, half_step: float = 0.0005) -> list[int]:
    """Whole numbers k with share - half_step <= k / total < share + half_step."""
    return list(range(math.ceil((share - half_step) * total), math.floor((share + half_step) * total) + 1))


def ink_facts(images: np.ndarray) -> dict:
    """The page's ink figures, recomputed image by image with np.nonzero."""
    sides = []
    for image in images:
        rows, cols = np.nonzero(image > 0)
        sides.append(max(rows.max() - rows.min() + 1, cols.max() - cols.min() + 1))
    sides = np.array(sides)
    centre = images[:, 4:24, 4:24].sum()
    return {
        "largest ink box": int(sides.max()),
        "share of images whose box has a 20-pixel side": float(np.mean(sides == 20)),
        "share of the ink in the 4-pixel border": float((images.sum() - centre) / images.sum()),
    }


# ---------------------------------------------------------------------------------------------
# The page's functions against those derivations (fast: nothing trains)


def test_the_node_by_hand_is_what_a_keras_dense_layer_computes(page):
    import keras

    rng = np.random.default_rng(3)
    x = rng.normal(size=(5, 4)).astype("float32")
    weights, biases = rng.normal(size=(4, 3)).astype("float32"), rng.normal(size=3).astype("float32")
    layer = keras.layers.Dense(3, activation="relu")
    layer.build((None, 4))
    layer.set_weights([weights, biases])
    by_hand = page.dense_by_hand(x, weights, biases)
    assert np.allclose(by_hand, keras.ops.convert_to_numpy(layer(x)), atol=1e-6)
    assert (by_hand == 0).any() and (by_hand > 0).any(), "the example should exercise both sides of ReLU"


def test_multiply_adds_of_exercise_a_network_match_its_shape(page):
    from lesson_1.models import lesson1_cnn

    assert page.multiply_adds(lesson1_cnn()) == exercise_a_multiply_adds()


def test_multiply_adds_count_a_dense_stack(page):
    import keras

    model = keras.Sequential([keras.Input(shape=(7,)), keras.layers.Dense(5), keras.layers.Dense(2)])
    assert page.multiply_adds(model) == {model.layers[0].name: 35, model.layers[1].name: 10}


@pytest.mark.parametrize("features, classes", [(784, 10), (3, 2)])
def test_the_starting_network_has_one_hidden_node_per_feature(page, features, classes):
    model = page.starting_network(features, classes)
    assert model.get_layer("hidden").units == features
    assert model.count_params() == starting_network_parameters(features, classes)


def test_the_study_figures_and_the_counts_that_round_to_them(page):
    # The original course's figures: 1,856 images, half of them of convicted men, 89.5% accuracy.
    assert (page.STUDY_IMAGES, page.STUDY_ACCURACY) == (1856, 0.895)
    assert page.counts_that_round_to(0.895, 1856) == counts_rounding_to(0.895, 1856) == [1661, 1662]
    assert page.counts_that_round_to(0.5, 10, decimals=1) == [5]


def test_ink_box_sides_measure_the_smallest_box_around_the_ink(page):
    images = np.zeros((2, 28, 28), dtype="float32")
    images[0, 3:8, 10:13] = 0.5  # 5 rows, 3 columns
    images[1, 0, 0] = images[1, 27, 20] = 1.0  # a corner and a bottom pixel: 28 rows, 21 columns
    heights, widths = page.ink_box_sides(images)
    assert heights.tolist() == [5, 28] and widths.tolist() == [3, 21]


def test_figures_folder_refuses_a_file(page, tmp_path):
    import argparse

    blocker = tmp_path / "a_file"
    blocker.write_text("")
    with pytest.raises(argparse.ArgumentTypeError, match="is a file, not a folder"):
        page.figures_folder(str(blocker / "figures"))
    assert page.figures_folder(str(tmp_path / "new" / "figures")) == tmp_path / "new" / "figures"


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--bogus"], "unrecognized arguments: --bogus"),
        (["--seed", "-1"], "--seed"),
        (["--save-figures", "README.md/figures"], "is a file, not a folder"),
    ],
)
def test_bad_flags_exit_2_with_one_line(argv, message, runs_dir):
    result = run_script(PAGE, *argv, runs_dir=runs_dir)
    assert result.returncode == 2, result.stderr
    assert len(result.stderr.strip().splitlines()) == 1 and message in result.stderr, result.stderr
    assert result.stdout == "" and not any(runs_dir.iterdir())


def png_size(path):
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n", f"{path} is not a PNG"
    return struct.unpack(">II", data[16:24])


def test_the_committed_figures_are_the_pages_and_small():
    """lesson_1/figures holds what `exercises.py --save-figures lesson_1/figures` writes, and the
    lesson page shows each of them."""
    folder = REPO / "lesson_1" / "figures"
    assert sorted(p.stem for p in folder.glob("*.png")) == sorted(FIGURES)
    readme = (REPO / "lesson_1" / "README.md").read_text()
    for name in FIGURES:
        path = folder / f"{name}.png"
        assert path.stat().st_size < FIGURE_LIMIT_BYTES, f"{path.name}: {path.stat().st_size} bytes"
        width, height = png_size(path)
        assert 200 <= width <= 1200 and 150 <= height <= 900, (path.name, width, height)
        assert f"figures/{name}.png" in readme, f"lesson_1/README.md does not show {name}.png"


# ---------------------------------------------------------------------------------------------
# The notebook, executed in quick mode: its printed answers


def printed(pattern: str, text: str) -> re.Match:
    match = re.search(pattern, text)
    assert match, f"the notebook never printed {pattern!r}"
    return match


def number(text: str) -> int:
    return int(text.replace(",", ""))


@pytest.fixture(scope="module")
def executed(tmp_path_factory):
    runs_dir = tmp_path_factory.mktemp("exercises") / "runs"
    runs_dir.mkdir()
    notebook = execute_notebook(NOTEBOOK, runs_dir)
    return notebook, notebook_text_outputs(notebook), runs_dir


@slow
def test_notebook_runs_quick_draws_its_figures_and_starts_no_run(executed):
    notebook, text, runs_dir = executed
    assert "quick mode: True" in text
    assert notebook_has_image(notebook)
    assert not any(runs_dir.iterdir()), "the exercises train toy networks only: no run folder"


@slow
def test_notebook_node_and_arithmetic_answers(executed):
    _, text, _ = executed
    assert float(printed(r"node check: largest difference (\S+)", text).group(1)) < 1e-6
    expected = exercise_a_multiply_adds()
    for name, count in expected.items():
        assert number(printed(rf"{name}: +([\d,]+) multiply-adds per image", text).group(1)) == count
    per_image = sum(expected.values())
    assert number(printed(r"total: +([\d,]+) per image", text).group(1)) == per_image == 7_059_968
    assert number(printed(r"one batch of 100 images: ([\d,]+)", text).group(1)) == 100 * per_image
    assert number(printed(r"forward passes only: ([\d,]+)", text).group(1)) == 2000 * 100 * per_image


@slow
def test_notebook_universality_error_falls_as_the_hidden_layer_widens(executed, page):
    _, text, _ = executed
    found = re.findall(r"universality: +(\d+) hidden nodes \( *(\d+) parameters\), mean squared error (\S+)", text)
    errors = {int(width): float(error) for width, _, error in found}
    assert list(errors) == list(page.WIDTHS) == [2, 4, 32]
    for width, parameters, _ in found:
        assert int(parameters) == 3 * int(width) + 1  # w weights and w biases in, w weights and a bias out
    constant = float(printed(r"best constant \(the curve's mean\): (\S+)", text).group(1))
    # The page in quick mode, seeds 0-7 (measured under load): 32 nodes reached at most 1.1e-03,
    # at least 14 times better than 4 nodes; 4 nodes beat 2 at least 7-fold, except with seed 2,
    # where training left both near 0.18 (the page says so). A network no better than the curve's
    # mean fails too.
    assert errors[2] <= constant * 1.01
    assert errors[2] > errors[4] > errors[32], errors
    assert errors[4] >= 3 * errors[32] and errors[2] >= 10 * errors[32], errors
    assert errors[32] < 5e-3, errors


@slow
def test_notebook_representation_and_missing_data(executed):
    _, text, _ = executed
    assert "features of x: (401, 4)" in text
    assert (
        float(printed(r"weighted sum of the features vs. the network: largest difference (\S+)", text).group(1)) < 1e-4
    )
    seen, unseen = (
        float(v)
        for v in printed(r"missing data: mean squared error (\S+) where it trained .*?, (\S+) where", text).groups()
    )
    assert seen < 5e-3 and unseen > 20 * seen, (seen, unseen)


@slow
def test_notebook_dataset_bias_answers(executed):
    _, text, _ = executed
    right = counts_rounding_to(0.895, 1856)
    assert f"right answers that round to 89.5%: {right}; wrong: {[1856 - r for r in right]}" in text
    assert f"89.5% of 1,856 is {0.895 * 1856:.2f}" in text
    assert f"each half holds {1856 // 2} images" in text
    two, one = (float(v) for v in printed(r"bias demo: accuracy (\S+) on held-out .*?, (\S+) when both", text).groups())
    assert two >= 0.85, "the source artefact should make the classifier look good"
    assert 0.4 <= one <= 0.6, "with one source for both groups, it should fall to a coin flip"
    face, brightness = (float(v) for v in printed(r"weight on the face (\S+), on the brightness (\S+)", text).groups())
    assert abs(brightness) > 5 * abs(face)


@slow
def test_notebook_mnist_answers_match_the_data(executed, monkeypatch):
    from labkit.data import load_dataset
    from labkit.plan import QUICK_SLICE

    _, text, _ = executed
    name, count, shape = printed(r"data: (\w+), ([\d,]+) training images of shape \((\d+, \d+)\)", text).groups()
    monkeypatch.setenv("LAB_OFFLINE", "1")
    images = load_dataset(name, limits=QUICK_SLICE, announce=lambda line: None).x_train[..., 0]
    assert number(count) == len(images) and shape == "28, 28" == ", ".join(map(str, images.shape[1:]))
    assert f"features per image for a Dense layer: {28 * 28} (flattened: ({len(images)}, 784))" in text
    facts = ink_facts(images)
    assert int(printed(r"ink: largest ink box: (\d+)", text).group(1)) == facts["largest ink box"] == 20
    for name in ("share of images whose box has a 20-pixel side", "share of the ink in the 4-pixel border"):
        assert float(printed(rf"ink: {name}: (\S+)", text).group(1)) == pytest.approx(facts[name], abs=5e-5)
    assert facts["share of the ink in the 4-pixel border"] < 0.05, "MNIST's digits sit in the middle"
    parameters = starting_network_parameters(784)
    assert f"starting network: {parameters:,} parameters (by hand: {parameters:,})" in text
    assert f"Exercise A's network: {exercise_a_parameters():,} parameters" in text


# ---------------------------------------------------------------------------------------------
# The script, with --save-figures


@slow
def test_script_writes_the_figures_it_is_asked_for(runs_dir, tmp_path):
    folder = tmp_path / "figures"
    result = run_script(PAGE, "--quick", "--save-figures", str(folder), runs_dir=runs_dir)
    assert result.returncode == 0, result.stderr[-3000:]
    assert sorted(p.stem for p in folder.iterdir()) == sorted(FIGURES)
    for name in FIGURES:
        path = folder / f"{name}.png"
        assert f"Figure saved: {path}" in result.stdout
        assert 0 < path.stat().st_size < FIGURE_LIMIT_BYTES
        png_size(path)
    assert "universality:" in result.stdout and not any(runs_dir.iterdir())
