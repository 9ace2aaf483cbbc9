"""`--distribute` in every Keras activity, not only Lesson 1's: each one's quick command on two
logical CPU replicas trains every model it builds as a mirrored one, and writes the same runs it
writes on one device. The three activities whose training is not a Keras fit of their own refuse
the flag in one line. (test_distribute checks Lesson 1's run in depth, its retraining in Lesson 4, and
multiworker.)"""

from __future__ import annotations

import subprocess
import sys

import pytest

from labtest import REPO, assert_refused, lab_env, run_dirs, run_json, run_script

pytestmark = pytest.mark.slow

TWO_CPU_REPLICAS = ("--distribute", "mirrored", "--cpu-replicas", "2")

# script, the flags of its quickest command that still builds every model, and the run tags that
# command writes, each model in a session of its own. One epoch each: what is checked is where the
# models live and how the batch splits, not how far they learn. Lesson 1 Exercise A is
# test_distribute's.
ONE_EPOCH = ("--epochs", "1")
TEN_STEPS = (*ONE_EPOCH, "--steps-per-epoch", "10")  # image activities: 10 steps reach activity 2's first score
KERAS_ACTIVITIES = [
    ("lesson_1/activity_2/train_mnist.py", TEN_STEPS, [None]),
    ("lesson_2/hello_keras/train_mnist.py", TEN_STEPS, [None]),
    ("lesson_2/anatomy/train_mnist.py", (*TEN_STEPS, "--optimizers", "adam"), ["adam"]),  # Adam: slots mirrored too
    (
        "lesson_2/functional_api/train_mnist.py",
        (*ONE_EPOCH, "--regression-epochs", "1"),
        ["two_heads", "inception", "wide_deep", "two_inputs", "auxiliary", "subclassed"],
    ),
    ("lesson_3/fashion_classifier/train_mnist.py", TEN_STEPS, [None]),
    (
        "lesson_3/fashion_classifier/train_mnist.py",
        (*TEN_STEPS, "--linear-baseline"),
        ["linear_fashion", "linear_mnist"],
    ),
    ("lesson_3/deep_mlp/train_mnist.py", TEN_STEPS, [None]),
    ("lesson_3/regression/train_regression.py", ONE_EPOCH, [None]),
    ("lesson_3/callbacks/train_with_callbacks.py", ONE_EPOCH, [None]),
    (
        "lesson_3/tensorboard/train_mnist.py",
        (*ONE_EPOCH, "--regression-epochs", "1"),
        ["regression", "regression", "summaries", "dashboards"],
    ),
    ("lesson_3/playground/train_playground.py", (*ONE_EPOCH, "--experiment", "default"), ["default"]),
    (
        "lesson_3/tuning/train_lr_finder.py",
        (*TEN_STEPS, "--iterations", "20", "--check"),
        ["sweep", "suggested", "100x", "reference"],
    ),
]

REFUSED = [
    ("lesson_2/numpy_from_scratch/train_mnist.py", "the NumPy network trains outside TensorFlow"),
    ("lesson_3/tuning/train_keras_tuner.py", "KerasTuner trains every trial's model itself"),
    ("lesson_3/tuning/train_random_search.py", "scikit-learn's search trains its models itself"),
]


def assert_mirrored_runs(root, tags: list) -> None:
    """Every run finished, trained on the two replicas with its global batch split in two, and
    logged one training-loss point per epoch. A run without a model (a tf.summary demo) says so."""
    from labkit.tblogs import read_scalars, steps_of

    runs = run_dirs(root)
    assert sorted(map(str, (run_json(run)["tag"] for run in runs))) == sorted(map(str, tags)), runs
    for run in runs:
        record = run_json(run)
        assert record["status"] == "finished", (run, record["status"])
        if record["tag"] == "summaries":  # writes summaries by hand; nothing to distribute
            assert "distribution" not in record["extra"]
            continue
        distribution = record["extra"]["distribution"]
        assert [d.rsplit("/", 1)[-1] for d in distribution["devices"]] == ["device:CPU:0", "device:CPU:1"], run
        assert distribution["global_batch"] == record["hparams"]["batch_size"] == 2 * distribution["per_replica_batch"]
        scalars = read_scalars(run)
        if "lr_finder" in record["extra"]:  # the finder's sweep: one point per batch, no epochs
            swept = record["extra"]["lr_finder"]["iterations"]
            assert swept >= 2 and steps_of(scalars, "lr_finder", "lr_finder/learning_rate") == list(range(swept))
            continue
        epochs = record["epochs_completed"]
        assert epochs >= 1
        assert steps_of(scalars, "train", "epoch_loss") == list(range(epochs)), run


@pytest.mark.long  # one quick run per Keras activity on two replicas: about 7 minutes
@pytest.mark.parametrize(
    "script, flags, tags", KERAS_ACTIVITIES, ids=[f"{s.split('/')[1]}{''.join(f[2:])}" for s, f, _ in KERAS_ACTIVITIES]
)
def test_every_keras_activity_trains_on_two_cpu_replicas(script, flags, tags, runs_dir):
    result = run_script(script, "--quick", *flags, *TWO_CPU_REPLICAS, runs_dir=runs_dir)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-3000:]
    assert "\nDistribution: MirroredStrategy over 2 device(s)" in "\n" + result.stdout, result.stdout[:500]
    assert_mirrored_runs(runs_dir, tags)


def test_a_part_that_trains_nothing_is_written_by_the_chief_alone(tmp_path):
    """Lesson 3's tf.summary demo under two localhost workers: one run folder, the chief's."""
    root = tmp_path / "runs"
    root.mkdir()
    command = ["python", "lesson_3/tensorboard/train_mnist.py", "--quick", "--part", "summaries"]
    result = subprocess.run(
        [sys.executable, str(REPO / "scripts" / "lab.py"), "workers", "2", "--", *command],
        cwd=REPO,
        env=lab_env(root),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-3000:]
    (run,) = run_dirs(root)
    assert run_json(run)["tag"] == "summaries" and run_json(run)["status"] == "finished"


@pytest.mark.parametrize("module, reason", REFUSED)
def test_activities_that_do_not_fit_a_keras_model_refuse_distribute(module, reason, runs_dir, capsys, monkeypatch):
    line = assert_refused(
        module, *TWO_CPU_REPLICAS, message=reason, runs_dir=runs_dir, capsys=capsys, monkeypatch=monkeypatch
    )
    assert "--distribute" in line and line.rstrip().endswith("drop the flag")


def test_labkits_clear_session_keeps_the_scope_and_a_model_outside_it_is_refused():
    """In-process, on one CPU device: what lets an activity clear Keras between models."""
    import keras
    import tensorflow as tf

    from labkit import LabError
    from labkit.distribute import Distribution, clear_session

    def small_model():
        return keras.Sequential([keras.Input((3,)), keras.layers.Dense(1)])

    distribution = Distribution("mirrored", tf.distribute.MirroredStrategy(["/cpu:0"]), global_batch=4)
    before_the_session = small_model()
    distribution.enter_scope()
    try:
        distribution.check_model(small_model())
        clear_session()
        assert tf.distribute.has_strategy()
        distribution.check_model(small_model())
        keras.backend.clear_session()  # Keras's own drops the scope with the graph it lived on
        assert not tf.distribute.has_strategy()
        for model in (small_model(), before_the_session):
            with pytest.raises(LabError, match="builds its model outside the strategy's scope"):
                distribution.check_model(model)
    finally:
        distribution.leave()
    assert not tf.distribute.has_strategy()
    clear_session()  # with no session in scope: exactly Keras's
    assert not tf.distribute.has_strategy()
