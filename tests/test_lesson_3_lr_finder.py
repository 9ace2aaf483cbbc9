"""Lesson 3, tuning: the learning-rate finder.

The rule that reads a sweep (`labkit.lr_finder.suggest`) is a pure function: it is tested on
curves built by hand whose turning point is known. Everything else comes from one real quick run
of the page (script and notebook in one file) with `--check` on real images: the sweep's run
folder, its exact TensorBoard steps and rates, the plot, and three short trainings that show
whether the suggestion trains better than a rate 100 times larger.
"""

import math

import numpy as np
import pytest

from labtest import (
    assert_epoch_curves,
    assert_finished_above,
    assert_refused,
    execute_notebook,
    notebook_has_image,
    notebook_text_outputs,
    run_dirs,
    run_json,
    run_script,
)

SCRIPT = "lesson_3/tuning/train_lr_finder.py"
NOTEBOOK = "lesson_3/tuning/train_lr_finder.ipynb"
TAGS = ("lr_finder/learning_rate", "lr_finder/log10_learning_rate", "lr_finder/loss", "lr_finder/smoothed_loss")
IMAGE_TAG = "lr_finder/loss_vs_learning_rate"
RUNS = ("sweep", "suggested", "100x", "reference")

slow = pytest.mark.slow


# ---------------------------------------------------------------------------------------------
# The reading rule, on hand-built curves


def seed_sweep(iterations=500):
    """The seed's rates: 1e-5 to 10 in 500 batches, x1.028 per batch."""
    from labkit.lr_finder import growth_factor

    return 1e-5 * growth_factor(1e-5, 10.0, iterations) ** np.arange(iterations)


def falling_then_exploding(rates):
    """Flat at 2.3 below 1e-3, falling to 0.5 at 10**-0.5 (about 0.32), then exploding."""
    x = np.log10(rates)
    return np.where(x < -3, 2.3, np.where(x < -0.5, 2.3 - 1.8 * (x + 3) / 2.5, 0.5 * 10 ** (4 * (x + 0.5))))


def test_seed_sweep_grows_by_1_028_per_batch_and_smooths_over_50_batches():
    from labkit.lr_finder import SMOOTHING, growth_factor, smoothing_for

    assert growth_factor(1e-5, 10.0, 500) == pytest.approx(1.028, abs=5e-4)
    assert seed_sweep()[-1] == pytest.approx(10.0)
    assert smoothing_for(500) == pytest.approx(SMOOTHING) == pytest.approx(1 - 1 / 50)
    # A quick sweep of 63 batches smooths over a tenth of itself too, not over most of it.
    assert smoothing_for(63) == pytest.approx(1 - 1 / 6.3)


def test_suggest_reads_a_falling_then_exploding_curve():
    from labkit.lr_finder import suggest

    rates = seed_sweep()
    result = suggest(rates, falling_then_exploding(rates))
    # The raw minimum is at 0.316; the moving average lags it by a few batches, not by a decade.
    assert 0.316 <= result.turn_rate <= 0.45, result.turn_rate
    assert result.suggested_rate == pytest.approx(result.turn_rate / 10)
    # The raw loss passes 4x its lowest (2.0) at 0.45; the smoothed loss a little later.
    assert 0.45 < result.divergence_rate <= 1.0, result.divergence_rate
    assert result.notes == [] and result.diverged_by == "blow-up"
    assert "10x below" in result.how and f"{result.suggested_rate:.2g}" in result.how
    assert f"passed 4x its lowest at {result.divergence_rate:.2g}" in result.how


def test_suggest_stops_reading_at_the_first_nan():
    from labkit.lr_finder import suggest

    rates = seed_sweep()
    losses = falling_then_exploding(rates)
    first_nan = int(np.argmax(rates > 0.4))
    losses[first_nan:] = np.nan
    result = suggest(rates, losses)
    assert result.divergence_rate == rates[first_nan]
    assert 0.316 <= result.turn_rate < rates[first_nan]
    assert math.isfinite(result.suggested_rate) and result.suggested_rate == pytest.approx(result.turn_rate / 10)
    assert np.isnan(result.smoothed[first_nan:]).all() and np.isfinite(result.smoothed[:first_nan]).all()
    assert any("NaN" in note for note in result.notes), result.notes
    assert result.diverged_by == "nan" and f"became NaN at {rates[first_nan]:.2g}" in result.how


def test_suggest_says_so_when_the_loss_never_turns_up():
    from labkit.lr_finder import suggest

    rates = seed_sweep()
    losses = 2.3 - 0.2 * np.log10(rates / 1e-5)  # falls all the way to 10
    result = suggest(rates, losses)
    assert result.turn_rate == result.divergence_rate == rates[-1]
    assert any("still falling" in note for note in result.notes)
    assert any("never blew up" in note for note in result.notes)
    assert result.diverged_by == "end" and "never blew up, up to 10" in result.how


def test_suggest_says_so_when_the_sweep_starts_above_the_good_rates():
    from labkit.lr_finder import suggest

    rates = seed_sweep()[400:]  # from 0.5 up: the loss only rises
    result = suggest(rates, 0.5 * 10 ** (4 * (np.log10(rates) + 0.5)))
    assert result.turn_rate == rates[0]
    assert any("started too high" in note for note in result.notes), result.notes


@pytest.mark.parametrize("losses", [[2.3, np.nan, np.nan], [np.nan, 2.3, 2.2]])
def test_suggest_refuses_a_sweep_with_fewer_than_two_finite_losses_before_a_nan(losses):
    from labkit.lr_finder import suggest

    with pytest.raises(ValueError, match="fewer than two finite losses"):
        suggest(seed_sweep(3), np.array(losses))


# ---------------------------------------------------------------------------------------------
# One real quick run: the sweep, then the check at the suggestion, at 100x and at 0.01


@pytest.fixture(scope="module")
def quick(quick_run):
    finished = quick_run(SCRIPT, "--quick", "--check")
    assert finished.result.returncode == 0, finished.result.stdout[-3000:] + finished.result.stderr[-3000:]
    return finished


@pytest.fixture(scope="module")
def runs(quick):
    """The four sibling runs, by tag, all in the activity's lr_finder folder."""
    folder = quick.runs_dir / "lesson_3" / "tuning" / "lr_finder"
    found = {}
    for run in run_dirs(quick.runs_dir):
        assert run.parent == folder and run.name.startswith("quick-"), run
        found[run_json(run)["tag"]] = run
    assert sorted(found) == sorted(RUNS), sorted(found)
    return found


@slow
def test_quick_sweep_suggests_a_finite_rate_below_the_turn_and_the_divergence(quick, runs):
    from labkit.lr_finder import typed

    record = run_json(runs["sweep"])
    assert record["status"] == "finished" and record["quick"] is True
    assert record["dataset"]["name"] in ("fashion_mnist", "mnist_5k")
    finder = record["extra"]["lr_finder"]
    suggested = finder["suggested_rate"]
    assert math.isfinite(suggested) and suggested > 0
    assert suggested < finder["turn_rate"] < finder["divergence_rate"]
    assert suggested == pytest.approx(finder["turn_rate"] / 10)
    # Measured on 2,000-image slices, seeds 42 and 1-4: 0.018-0.028 on Fashion-MNIST, 0.044-0.069
    # on the MNIST digits. A sweep that never turned up would suggest 1.0 (10 / 10).
    assert 3e-3 <= suggested <= 0.2, suggested
    assert finder["start_rate"] == pytest.approx(1e-5)
    command = f"python lesson_3/fashion_classifier/train_mnist.py --learning-rate {typed(suggested):g}"
    assert record["extra"]["part_1_command"] == command
    assert finder["how"] in quick.result.stdout and command in quick.result.stdout


@slow
def test_quick_sweep_logs_every_batch_with_a_rate_that_grows_by_a_constant_factor(runs):
    from labkit.lr_finder import growth_factor
    from labkit.tblogs import curve, read_scalars, steps_of

    record = run_json(runs["sweep"])
    swept = record["extra"]["lr_finder"]["iterations"]
    planned = min(500, math.ceil(record["dataset"]["sizes"]["train"] / 32))
    assert 2 <= swept <= planned
    scalars = read_scalars(runs["sweep"])
    for tag in TAGS:
        assert steps_of(scalars, "lr_finder", tag) == list(range(swept)), tag
    rates = curve(scalars, "lr_finder", "lr_finder/learning_rate").iloc[:, 0].to_numpy()
    factor = growth_factor(1e-5, 10.0, planned)  # x1.25 per batch for a quick slice's 63 batches
    np.testing.assert_allclose(rates, 1e-5 * factor ** np.arange(swept), rtol=1e-5)  # float32 in the logs
    log10 = curve(scalars, "lr_finder", "lr_finder/log10_learning_rate").iloc[:, 0].to_numpy()
    np.testing.assert_allclose(np.diff(log10), math.log10(factor), rtol=1e-3)
    assert rates[-1] == pytest.approx(record["extra"]["lr_finder"]["end_rate"], rel=1e-5)


@slow
def test_quick_sweep_saves_the_log_x_plot_as_png_and_as_a_tensorboard_image(runs):
    from tensorboard.backend.event_processing import event_accumulator
    from tensorboard.util import tensor_util

    png = runs["sweep"] / "lr_finder.png"
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 10_000
    accumulator = event_accumulator.EventAccumulator(
        str(runs["sweep"] / "lr_finder"), size_guidance={event_accumulator.TENSORS: 0}
    )
    accumulator.Reload()
    events = accumulator.Tensors(IMAGE_TAG)
    assert [event.step for event in events] == [0]
    width, height, encoded = tensor_util.make_ndarray(events[0].tensor_proto)
    assert (int(width), int(height)) == (700, 420) and encoded[:8] == b"\x89PNG\r\n\x1a\n"


@slow
def test_the_warm_up_schedule_climbs_in_a_line_to_its_target_then_decays_to_zero(quick):
    """The page's cosine schedule with a warm-up, as printed by the quick run: 0 at step 0, half the
    target halfway through the warm-up, the target at its end, then a decay that ends at 0."""
    import ast

    (line,) = [line for line in quick.result.stdout.splitlines() if line.startswith("step -> learning rate:")]
    rates = ast.literal_eval(line.split(":", 1)[1].strip())
    steps = sorted(rates)
    start, middle, end_of_warm_up, mid_decay, last = (rates[step] for step in steps)
    assert start == 0.0 and end_of_warm_up > 0
    assert middle == pytest.approx(end_of_warm_up / 2, abs=1e-3)
    assert 0 < mid_decay < end_of_warm_up and last == pytest.approx(0.0, abs=1e-4)


@slow
def test_quick_check_trains_better_at_the_suggestion_than_at_100x(quick, runs):
    from labkit.lr_finder import typed

    suggested = typed(run_json(runs["sweep"])["extra"]["lr_finder"]["suggested_rate"])
    expected_rates = {"suggested": suggested, "100x": typed(100 * suggested), "reference": 0.01}
    records = {}
    for tag, rate in expected_rates.items():
        assert_epoch_curves(runs[tag], epochs=2)
        records[tag] = record = run_json(runs[tag])
        assert record["status"] == "finished" and record["epochs_completed"] == 2
        assert record["hparams"]["learning_rate"] == pytest.approx(rate)
    good, large = (records[tag]["metrics"] for tag in ("suggested", "100x"))
    # Chance is 10%. Measured at the suggestion (0.023, Fashion-MNIST slice): 0.656 validation accuracy;
    # at 100x (2.3) the ReLUs die in the first batches and the network stays at chance (0.094).
    assert good["validation"]["accuracy"] >= 0.45, good
    assert good["validation"]["accuracy"] > large["validation"]["accuracy"] + 0.2, (good, large)
    large_loss = large["validation"].get("loss")  # None in run.json when it is NaN
    assert large_loss is None or good["validation"]["loss"] < large_loss, (good, large)
    assert records["reference"]["extra"]["suggestion_beats_100x"] is True
    assert "The suggestion beats it." in quick.result.stdout


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--start-rate", "1", "--end-rate", "0.1"], "must be below --end-rate"),
        (["--iterations", "1"], "at least 2 batches"),
        (["--end-rate", "nan"], "must be a finite number above 0"),
        (["--resume", "somewhere"], "--resume continues a single run"),
    ],
)
def test_bad_flags_exit_2_with_one_line_and_write_nothing(runs_dir, argv, message, capsys, monkeypatch):
    assert_refused(SCRIPT, *argv, message=message, runs_dir=runs_dir, capsys=capsys, monkeypatch=monkeypatch)


# ---------------------------------------------------------------------------------------------
# The notebook, and the finder at full length


@slow
def test_notebook_sweeps_plots_and_compares(runs_dir):
    notebook = execute_notebook(NOTEBOOK, runs_dir)
    text = notebook_text_outputs(notebook)
    assert "10x below" in text and "--learning-rate" in text
    assert "The sweep's divergence point" in text and "half of it" in text
    assert "validation_accuracy" in text
    assert "step -> learning rate:" in text
    assert notebook_has_image(notebook)
    found = {run_json(run)["tag"]: run_json(run) for run in run_dirs(runs_dir)}
    assert sorted(found) == sorted(RUNS)
    assert all(record["status"] == "finished" and record["quick"] for record in found.values())


@slow
@pytest.mark.full
def test_full_sweep_on_fashion_mnist_suggests_a_rate_near_part_1s_that_beats_100x(runs_dir):
    """The seed's sweep at full length, 500 batches of 32 drawn from 55,000 Fashion-MNIST images,
    then one epoch (1,719 steps) at the suggestion, at 100x and at part 1's 0.01."""
    result = run_script(SCRIPT, "--dataset", "fashion_mnist", "--check", "--epochs", "1", runs_dir=runs_dir)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    runs = {run_json(run)["tag"]: run for run in run_dirs(runs_dir)}
    assert sorted(runs) == sorted(RUNS)
    finder = run_json(runs["sweep"])["extra"]["lr_finder"]
    # Measured, seeds 42 and 1-3: the loss turned up at 0.17-0.29 and blew up at 0.7-1.3, before
    # the sweep's 500th batch; suggestions 0.017-0.029, within a decade of part 1's 0.01.
    assert 1e-3 <= finder["suggested_rate"] <= 0.1, finder
    assert finder["suggested_rate"] < finder["turn_rate"] < finder["divergence_rate"] < 10
    assert finder["iterations"] < 500 and any("blown up" in note for note in finder["notes"])
    # Measured with seed 42: 0.836 validation accuracy after one epoch at 0.029; at 2.9, chance.
    suggested = assert_finished_above(runs["suggested"], {"validation.accuracy": 0.80, "test.accuracy": 0.78})
    large = run_json(runs["100x"])["metrics"]["validation"]
    assert large["accuracy"] <= 0.2, large
    assert large.get("loss") is None or suggested["metrics"]["validation"]["loss"] < large["loss"]
