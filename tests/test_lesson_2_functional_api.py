"""Lesson 2, the Functional API: two inputs, two heads, an Inception block, Wide & Deep, subclassing.

Parameter counts, shapes and saving are checked on the page's own functions and class, without
training (labtest.page_definitions). One quick run of all three parts is shared by the assertions
on run folders; the notebook runs in quick mode.
"""

import numpy as np
import pytest

from labtest import (
    assert_epoch_curves,
    assert_finished_above,
    assert_refused,
    page_definitions,
    run_dirs,
    run_in_process,
    run_json,
    run_script,
)

SCRIPT = "lesson_2/functional_api/train_mnist.py"
NOTEBOOK = "lesson_2/functional_api/train_mnist.ipynb"
TAGS = ("two_heads", "inception", "wide_deep", "two_inputs", "auxiliary", "subclassed")
FUNCTIONAL = ("two_heads", "inception", "wide_deep", "two_inputs", "auxiliary")  # the models with a diagram
slow = pytest.mark.slow


@pytest.fixture(scope="module")
def page():
    return page_definitions(SCRIPT)


def runs_by_tag(parent):
    return {run_json(run)["tag"]: run for run in run_dirs(parent)}


def regression_models(page, n_features) -> dict:
    n_wide, n_deep = len(range(n_features)[page.WIDE]), len(range(n_features)[page.DEEP])
    return {
        "wide_deep": page.wide_deep_model(n_features),
        "two_inputs": page.two_inputs_model(n_wide, n_deep),
        "auxiliary": page.two_inputs_model(n_wide, n_deep, auxiliary=True),
    }


def test_parameter_counts_follow_from_the_layer_sizes(page):
    """The chapter's counts on California housing's 8 features, and the formula on the 10 of
    diabetes: building a model needs only the input shape, not the data."""
    assert page.parameters_from_sizes(8) == {"wide_deep": 1239, "two_inputs": 1176, "auxiliary": 1207}
    assert page.parameters_from_sizes(10) == {"wide_deep": 1301, "two_inputs": 1236, "auxiliary": 1267}
    for n_features in (8, 10):
        built = {name: model.count_params() for name, model in regression_models(page, n_features).items()}
        assert built == page.parameters_from_sizes(n_features), n_features


def test_functional_topologies_have_their_inputs_outputs_and_branches(page):
    model = page.two_heads_model()
    images = np.random.default_rng(0).random((3, 28, 28, 1)).astype("float32")
    out = model.predict(page.image_inputs(images), verbose=0)
    assert out["digit"].shape == (3, 10) and out["even"].shape == (3, 1)
    np.testing.assert_allclose(out["digit"].sum(axis=1), 1, atol=1e-5)
    targets = page.image_targets(np.array([0, 1, 2, 7]))
    assert targets["even"].tolist() == [1, 0, 1, 0] and targets["digit"].dtype == np.int64
    block = page.inception_model().get_layer("inception")
    assert block.output.shape[-1] == 32 and len(block.input) == 4  # four branches merged


def test_subclassed_model_saves_and_reloads_with_identical_predictions(page, tmp_path):
    import keras

    x = page.split_features(np.random.default_rng(0).normal(size=(16, 8)).astype("float32"))
    model = page.WideAndDeepModel(units=30, activation="relu")
    assert not model.built and len(model.weights) == 0
    model(x)
    assert model.count_params() == 1207
    model.save(tmp_path / "wide_and_deep.keras")
    model.save_weights(tmp_path / "wide_and_deep.weights.h5")
    reloaded = keras.models.load_model(tmp_path / "wide_and_deep.keras")
    twin = page.WideAndDeepModel(units=30, activation="relu")
    twin(x)
    twin.load_weights(tmp_path / "wide_and_deep.weights.h5")
    before = model.predict(x, verbose=0)["main"]
    assert type(reloaded).__name__ == "WideAndDeepModel"
    assert np.max(np.abs(reloaded.predict(x, verbose=0)["main"] - before)) == 0
    assert np.max(np.abs(twin.predict(x, verbose=0)["main"] - before)) == 0


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--part", "sequential"], "invalid choice"),
        (["--regression-epochs", "0"], "must be at least 1"),
        (["--resume", "somewhere"], "--resume continues a single run"),
    ],
)
def test_bad_input_exits_2_with_one_line_and_writes_nothing(argv, message, runs_dir, capsys, monkeypatch):
    assert_refused(SCRIPT, *argv, message=message, runs_dir=runs_dir, capsys=capsys, monkeypatch=monkeypatch)


@pytest.fixture(scope="module")
def quick(quick_notebook):
    """The page's quick run: its notebook, executed once through a Jupyter kernel."""
    return quick_notebook(NOTEBOOK)


@slow
def test_quick_run_trains_six_tagged_runs_with_metrics_per_head(quick, page):
    runs = runs_by_tag(quick.runs_dir / "lesson_2" / "functional_api")
    assert set(runs) == set(TAGS)
    # Chance is 10% for digits and 50% for "is it even"; 2 x 16 Adam steps on real digits pass both.
    record = assert_finished_above(
        runs["two_heads"], {"test.digit_accuracy": 0.5, "test.even_accuracy": 0.7, "validation.digit_accuracy": 0.5}
    )
    assert record["dataset"]["name"] in ("mnist", "mnist_5k")
    assert_epoch_curves(runs["two_heads"], epochs=2, tags=("epoch_digit_accuracy", "epoch_even_accuracy"))
    assert_finished_above(runs["inception"], {"test.accuracy": 0.4})
    assert_epoch_curves(runs["inception"], epochs=2)
    for name in ("wide_deep", "two_inputs", "auxiliary", "subclassed"):
        record = run_json(runs[name])
        assert record["status"] == "finished" and record["dataset"]["name"] in ("california_housing", "diabetes")
        assert (record["hparams"]["learning_rate"], record["hparams"]["batch_size"]) == (1e-3, 32)
        assert_epoch_curves(runs[name], epochs=2, tags=("epoch_loss",))
        counts = page.parameters_from_sizes(len(record["dataset"]["features"]))
        assert record["extra"]["parameters"] == counts["auxiliary" if name == "subclassed" else name]
        if record["dataset"]["name"] == "california_housing":
            assert record["extra"]["parameters"] == {"wide_deep": 1239, "two_inputs": 1176}.get(name, 1207)
        assert record["extra"]["training_mean_mse"] > 0
    for name in ("auxiliary", "subclassed"):
        record = run_json(runs[name])
        losses, test = record["extra"]["losses"], record["metrics"]["test"]
        assert (losses["total"], losses["main"], losses["aux"]) == (test["loss"], test["main_loss"], test["aux_loss"])
        assert losses["total"] == pytest.approx(0.9 * losses["main"] + 0.1 * losses["aux"], rel=1e-4)
        assert {"main_rmse", "aux_rmse"} <= set(test) and {"main_loss", "aux_loss"} <= set(record["metrics"]["train"])
    # The functional and the subclassed auxiliary model: same layers, same seed, same steps.
    assert run_json(runs["auxiliary"])["metrics"]["test"] == run_json(runs["subclassed"])["metrics"]["test"]
    saving = run_json(runs["subclassed"])["extra"]["saving"]
    assert saving["reloaded_class"] == "WideAndDeepModel"
    assert saving["reloaded_max_difference"] == 0 and saving["weights_only_max_difference"] == 0
    assert (runs["subclassed"] / "wide_and_deep.keras").is_file()
    assert (runs["subclassed"] / "wide_and_deep.weights.h5").is_file()
    # What the page prints on the way.
    out = quick.result.stdout
    assert "On 8 features: 1,239, 1,176 and 1,207 parameters, as the layer sizes say." in out
    assert "Before the first call: built=False, 0 weight arrays" in out and "No layer graph to inspect" in out
    assert "0.9 x main + 0.1 x aux" in out


@slow
def test_every_run_saves_its_model_with_a_card_and_the_functional_ones_a_diagram(quick):
    from labkit.figures import graphviz_available
    from labkit.saved_models import fingerprint, read_card

    runs = runs_by_tag(quick.runs_dir / "lesson_2" / "functional_api")
    # Every Keras run ends with its model saved beside a card, multi-input and subclassed ones too.
    for run in runs.values():
        card = read_card(run / "model.keras")
        assert card["identity"] == f"lesson_2/functional_api/{run.name}#{fingerprint(run / 'model.keras')[:12]}"
        assert card["metrics"] == run_json(run)["metrics"] and card["run_dir"] == str(run.resolve())
        assert run_json(run)["extra"]["model"]["identity"] == card["identity"]
        assert card["model"]["parameters"] == run_json(run)["extra"]["parameters"]
    if graphviz_available():
        for name in FUNCTIONAL:
            assert (runs[name] / f"{name}.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", name
        assert not list(runs["subclassed"].glob("*.png")), "a subclassed model has no graph to draw"


@slow
def test_saved_functional_models_keep_their_inputs_heads_and_branches(quick):
    """The saved files load back as the graphs the page built: named inputs and outputs, and the
    Inception block's four branches."""
    import keras

    runs = runs_by_tag(quick.runs_dir / "lesson_2" / "functional_api")
    two_heads = keras.models.load_model(runs["two_heads"] / "model.keras")
    images = np.random.default_rng(0).random((3, 28, 28, 1)).astype("float32")
    profile = np.concatenate([images.mean(axis=(2, 3)), images.mean(axis=(1, 3))], axis=1)
    out = two_heads.predict({"image": images, "profile": profile}, verbose=0)
    assert out["digit"].shape == (3, 10) and out["even"].shape == (3, 1)
    block = keras.models.load_model(runs["inception"] / "model.keras").get_layer("inception")
    assert block.output.shape[-1] == 32 and len(block.input) == 4
    n_features = len(run_json(runs["auxiliary"])["dataset"]["features"])
    rows = np.random.default_rng(0).normal(size=(4, n_features)).astype("float32")
    auxiliary = keras.models.load_model(runs["auxiliary"] / "model.keras")
    out = auxiliary.predict({"wide": rows[:, :5], "deep": rows[:, 2:]}, verbose=0)
    assert sorted(out) == ["aux", "main"] and out["main"].shape == out["aux"].shape == (4, 1)


@slow
def test_part_flag_runs_that_part_alone(runs_dir, monkeypatch):
    assert run_in_process(SCRIPT, "--quick", "--part", "subclassing", runs_dir=runs_dir, monkeypatch=monkeypatch) == 0
    (run,) = run_dirs(runs_dir)
    record = run_json(run)
    assert (record["tag"], record["status"]) == ("subclassed", "finished")
    assert record["extra"]["saving"]["reloaded_max_difference"] == 0


@slow
def test_notebook_shows_the_topologies_the_building_and_the_diagrams(quick):
    from labkit.figures import graphviz_available
    from labtest import notebook_has_image, notebook_text_outputs

    notebook, runs_dir = quick.notebook, quick.runs_dir
    text = notebook_text_outputs(notebook)
    if graphviz_available():  # the model diagrams, drawn under their cells
        assert notebook_has_image(notebook)
    assert "On 8 features: 1,239, 1,176 and 1,207 parameters" in text
    assert "Connected to" in text
    assert "Before the first call: built=False, 0 weight arrays" in text
    assert "After one call: built=True, 1,2" in text and "No layer graph to inspect" in text
    assert "0.9 x main + 0.1 x aux" in text
    runs = runs_by_tag(runs_dir / "lesson_2" / "functional_api")
    assert set(runs) == set(TAGS) and all(run_json(run)["status"] == "finished" for run in runs.values())


@slow
@pytest.mark.full
def test_full_run_learns_every_model(runs_dir):
    """Measured on mnist_5k and diabetes (seed 42): digit / even 0.90 / 0.93, Inception 0.91; the
    regression models end near the training mean (160 SGD steps at 0.001 on 248 rows), yet their
    training loss falls to under half of the first epoch's. Full MNIST and housing are not on the
    machine where this was written: their floors are the claims of the lesson, not measurements."""
    from labkit.tblogs import read_scalars, steps_of

    result = run_script(SCRIPT, runs_dir=runs_dir)
    assert result.returncode == 0, result.stderr
    runs = runs_by_tag(runs_dir / "lesson_2" / "functional_api")
    full_mnist = run_json(runs["two_heads"])["dataset"]["name"] == "mnist"
    assert_finished_above(
        runs["two_heads"], {"test.digit_accuracy": 0.95 if full_mnist else 0.87, "test.even_accuracy": 0.9}
    )
    assert_finished_above(runs["inception"], {"test.accuracy": 0.95 if full_mnist else 0.87})
    for name in ("wide_deep", "two_inputs", "auxiliary", "subclassed"):
        record = run_json(runs[name])
        scalars = read_scalars(runs[name])
        assert steps_of(scalars, "train", "epoch_loss") == list(range(20))
        losses = scalars[(scalars.split == "train") & (scalars.tag == "epoch_loss")].sort_values("step")["value"]
        assert losses.iloc[-1] < 0.5 * losses.iloc[0], (name, list(losses))
        if record["dataset"]["name"] == "california_housing":
            test_mse = record["metrics"]["test"].get("main_loss", record["metrics"]["test"]["loss"])
            assert test_mse < record["extra"]["training_mean_mse"], name


# ---------------------------------------------------------------------------------------------
# Issue 23: layer sharing and model sharing (Chollet's anatomy chapter), on the page's own models


def test_a_shared_layer_is_counted_once_and_reads_both_inputs_with_the_same_weights(page):
    import keras

    model = page.shared_layer_model(n_features=56, units=16)
    reader = 56 * 16 + 16
    assert model.count_params() == reader + (2 * 16 + 1) == 945
    assert [layer.name for layer in model.layers].count("profile_reader") == 1
    profiles = np.random.default_rng(0).random((5, 56)).astype("float32")
    left, right = page.branch_outputs(model, "both", {"first": profiles, "second": profiles})
    assert left.shape == right.shape == (5, 16) and np.abs(left).max() > 0
    np.testing.assert_array_equal(left, right)
    # The check can fail: with two separate Dense layers the same profile reads differently.
    first, second = keras.Input(shape=(56,), name="first"), keras.Input(shape=(56,), name="second")
    both = keras.layers.concatenate([keras.layers.Dense(16)(first), keras.layers.Dense(16)(second)], name="both")
    separate = keras.Model({"first": first, "second": second}, keras.layers.Dense(1)(both))
    assert separate.count_params() == 2 * reader + 33
    left, right = page.branch_outputs(separate, "both", {"first": profiles, "second": profiles})
    assert np.abs(left - right).max() > 1e-3


def test_a_shared_model_is_one_layer_of_the_siamese_and_each_branch_is_that_model(page):
    encoder = page.image_encoder(units=32)
    siamese = page.siamese_model(encoder)
    assert encoder.count_params() == 784 * 32 + 32
    assert siamese.count_params() == encoder.count_params() + (2 * 32 + 1)
    assert siamese.get_layer("encoder") is encoder
    images = np.random.default_rng(1).random((6, 28, 28, 1)).astype("float32")
    left, right = page.branch_outputs(siamese, "codes", {"left": images[:3], "right": images[3:]})
    np.testing.assert_allclose(left, encoder.predict(images[:3], verbose=0), atol=1e-6)
    np.testing.assert_allclose(right, encoder.predict(images[3:], verbose=0), atol=1e-6)


@slow
def test_quick_run_prints_the_sharing_checks(quick):
    reader, head = 56 * 16 + 16, 2 * 16 + 1
    encoder = 784 * 32 + 32
    out = quick.result.stdout
    assert (
        f"shared_layer: {reader + head:,} parameters = profile_reader {reader:,} (counted once) + same_digit {head}; "
        f"two separate readers would make {2 * reader + head:,}"
    ) in out
    assert f"siamese: {encoder + 65:,} parameters = encoder {encoder:,} (counted once) + same_digit 65" in out
    for said in (
        "same profile into both inputs: largest difference between the two branches ",
        "each branch against the encoder alone: largest difference ",
    ):
        assert float(out.split(said)[1].split()[0]) < 1e-6, said  # measured: 0


def test_card_row_counts_follow_from_the_splits():
    """The card's 160 SGD steps on diabetes (20 epochs of batches of 32 on 248 rows), and the
    11,610 training rows of housing (California housing's 20,640 rows, split as labkit.tabular
    splits them: a quarter for test, then a quarter of the rest for validation)."""
    import math

    from sklearn.model_selection import train_test_split

    from labkit.tabular import SPLIT_SEED, load_diabetes_substitute

    diabetes = load_diabetes_substitute()
    assert len(diabetes.x_train) == 248 and 20 * math.ceil(len(diabetes.x_train) / 32) == 160
    rows = np.arange(20_640)
    rest, test = train_test_split(rows, random_state=SPLIT_SEED)
    train, valid = train_test_split(rest, random_state=SPLIT_SEED)
    assert (len(train), len(valid), len(test)) == (11_610, 3_870, 5_160)
