"""Lesson 2, a neural network from scratch: NumPy first, then the same network in Keras.

Before Keras does it for us, we do every step of training by hand:

1. Forward pass. The lesson's tiny 2-3-1 network: input (1, 1), three sigmoid hidden units, one
   linear output, no biases, target 0. Its squared error is the number training must shrink.
2. Learning by nudging. Fit y = 3x on five points: move each weight by 1e-4, watch how the loss
   changes, step against the change (learning rate 0.01), repeat 1,000 times. This "finite
   difference" gradient is easy to trust and hopelessly slow: one extra forward pass per weight.
3. Backpropagation. The chain rule gives every gradient of a one-hidden-layer classifier
   (sigmoid or ReLU, softmax with cross-entropy) in one backward pass. We check it against
   TensorFlow's GradientTape and against finite differences on the same weights.
4. Timing. Both kinds of gradient on networks of growing size, to see which one scales.
5. Training on digits. The NumPy network learns from mini-batches with plain SGD; then the same
   architecture, starting from the very same weights, trains in Keras with the same SGD. The two
   runs sit side by side in TensorBoard (`numpy-...` and `keras-...`), and the script prints
   their accuracy and speed.

    python lesson_2/numpy_from_scratch/train_mnist.py            # full run
    python lesson_2/numpy_from_scratch/train_mnist.py --quick    # same code on a small slice, seconds
    python lesson_2/numpy_from_scratch/train_mnist.py --activation sigmoid --hidden-units 32
"""

import argparse
import statistics
import time

import numpy as np
import pandas as pd

from labkit import cli
from labkit.deferred import keras, tf  # TensorFlow loads on first use, after the flags are checked
from labkit.distribute import not_offered
from labkit.session import RunSet, TrainingSession, run_main
from lesson_2.hello_keras.train_mnist import build_model, flatten_images

HIDDEN_UNITS = 64
ACTIVATION = "relu"
EPOCHS = 10
BATCH_SIZE = 32
LEARNING_RATE = 0.1  # plain SGD on a small MLP needs a far bigger step than RMSprop's 1e-3


# ----------------------------------------------------------------------------------------------
# 1. The forward pass of the lesson's 2-3-1 network


def sigmoid(z):
    return 1.0 / (1.0 + np.exp(-z))


SEED_INPUT = np.array([1.0, 1.0])
# Row i holds the weights leaving input i, so `inputs @ weights` gives the three hidden units.
SEED_INPUT_TO_HIDDEN = np.array([[0.8, 0.4, 0.3], [0.2, 0.9, 0.5]])
SEED_HIDDEN_TO_OUTPUT = np.array([0.3, 0.5, 0.9])
SEED_TARGET = 0.0


def forward_2_3_1(
    inputs=SEED_INPUT, input_to_hidden=SEED_INPUT_TO_HIDDEN, hidden_to_output=SEED_HIDDEN_TO_OUTPUT, target=SEED_TARGET
) -> dict:
    hidden_pre_activation = inputs @ input_to_hidden
    hidden = sigmoid(hidden_pre_activation)  # without it, two layers collapse into one linear map
    output = hidden @ hidden_to_output  # linear output: the target is a real number
    return {
        "hidden_pre_activation": hidden_pre_activation,
        "hidden": hidden,
        "output": float(output),
        "squared_error": float((output - target) ** 2),
    }


# ----------------------------------------------------------------------------------------------
# 2. Learning by nudging each weight (finite differences)


def finite_difference_gradient(loss_of, params: dict, nudge=1e-4, central=False) -> dict:
    """Estimate d(loss)/d(weight) for every weight by moving it alone and re-running the forward pass.

    One extra forward pass per weight (two if `central`), which is why nobody trains this way.
    Weights are nudged in place and put back, so `params` is unchanged on return.
    """
    base_loss = None if central else loss_of(params)
    gradients = {}
    for name, values in params.items():
        gradient = np.zeros(values.shape)
        for i in range(values.size):
            original = values.flat[i]
            values.flat[i] = original + nudge
            loss_up = loss_of(params)
            if central:
                values.flat[i] = original - nudge
                gradient.flat[i] = (loss_up - loss_of(params)) / (2 * nudge)
            else:
                gradient.flat[i] = (loss_up - base_loss) / nudge
            values.flat[i] = original
        gradients[name] = gradient
    return gradients


LINE_X = np.array([1.0, 3.0, 4.0, 8.0, 10.0])
LINE_Y = 3 * LINE_X


def line_loss(params, x=LINE_X, y=LINE_Y):
    return float(np.mean((params["w"] * x + params["b"] - y) ** 2))


def fit_line_by_finite_differences(w=2.269, b=1.01, nudge=1e-4, learning_rate=0.01, epochs=1000):
    """The lesson's y = 3x fit. Both slopes are measured at the same point, then both weights move.

    Returns the final w and b, and the loss at the start of every epoch."""
    params = {"w": np.array([w]), "b": np.array([b])}
    losses = []
    for _ in range(epochs):
        losses.append(line_loss(params))
        slopes = finite_difference_gradient(line_loss, params, nudge=nudge)
        params = {name: value - learning_rate * slopes[name] for name, value in params.items()}
    return float(params["w"][0]), float(params["b"][0]), losses


# ----------------------------------------------------------------------------------------------
# 3. A one-hidden-layer classifier with hand-written backpropagation

ACTIVATIONS = {
    # name: (function, derivative written in terms of the input z and the output a)
    "sigmoid": (sigmoid, lambda z, a: a * (1 - a)),
    "relu": (lambda z: np.maximum(z, 0), lambda z, a: (z > 0).astype(z.dtype)),
}


def init_mlp(n_inputs, n_hidden, n_classes, rng, dtype=np.float32) -> dict:
    """Glorot-uniform weights and zero biases: what a Keras Dense layer starts from."""

    def glorot(fan_in, fan_out):
        limit = np.sqrt(6.0 / (fan_in + fan_out))
        return rng.uniform(-limit, limit, size=(fan_in, fan_out)).astype(dtype)

    return {
        "W1": glorot(n_inputs, n_hidden),
        "b1": np.zeros(n_hidden, dtype),
        "W2": glorot(n_hidden, n_classes),
        "b2": np.zeros(n_classes, dtype),
    }


def count_weights(params) -> int:
    return sum(values.size for values in params.values())


def mlp_forward(params, x, activation=ACTIVATION):
    """Returns (mean cross-entropy, class probabilities, what the backward pass needs)."""
    activate, _ = ACTIVATIONS[activation]
    hidden_pre_activation = x @ params["W1"] + params["b1"]
    hidden = activate(hidden_pre_activation)
    logits = hidden @ params["W2"] + params["b2"]
    # Subtracting the row maximum changes nothing mathematically and keeps exp() from overflowing.
    shifted = logits - logits.max(axis=1, keepdims=True)
    log_probabilities = shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))
    return log_probabilities, (x, hidden_pre_activation, hidden)


def mlp_loss(params, x, labels, activation=ACTIVATION) -> float:
    log_probabilities, _ = mlp_forward(params, x, activation)
    return float(-log_probabilities[np.arange(len(labels)), labels].mean())


def mlp_gradients(params, x, labels, activation=ACTIVATION):
    """Loss, gradients of every weight, and the probabilities, from one forward and one backward pass."""
    _, derivative = ACTIVATIONS[activation]
    log_probabilities, (x, hidden_pre_activation, hidden) = mlp_forward(params, x, activation)
    n = len(labels)
    rows = np.arange(n)
    loss = float(-log_probabilities[rows, labels].mean())
    probabilities = np.exp(log_probabilities)

    # Softmax and cross-entropy are paired because their combined derivative is this simple:
    # d(loss)/d(logits) = probabilities - one_hot(labels), averaged over the batch.
    d_logits = probabilities.copy()
    d_logits[rows, labels] -= 1
    d_logits /= n
    d_hidden = d_logits @ params["W2"].T  # each hidden unit is blamed through the weights it feeds
    d_hidden_pre_activation = d_hidden * derivative(hidden_pre_activation, hidden)
    gradients = {
        "W1": x.T @ d_hidden_pre_activation,
        "b1": d_hidden_pre_activation.sum(axis=0),
        "W2": hidden.T @ d_logits,
        "b2": d_logits.sum(axis=0),
    }
    return loss, gradients, probabilities


def gradient_tape_gradients(params, x, labels, activation=ACTIVATION) -> dict:
    """The same loss written with TensorFlow ops, differentiated by GradientTape."""
    tf_activation = {"sigmoid": tf.sigmoid, "relu": tf.nn.relu}[activation]
    variables = {name: tf.Variable(values) for name, values in params.items()}
    with tf.GradientTape() as tape:
        hidden = tf_activation(tf.constant(x) @ variables["W1"] + variables["b1"])
        logits = hidden @ variables["W2"] + variables["b2"]
        loss = tf.reduce_mean(tf.nn.sparse_softmax_cross_entropy_with_logits(labels=labels, logits=logits))
    return {name: gradient.numpy() for name, gradient in tape.gradient(loss, variables).items()}


def relative_error(a, b) -> float:
    """|a - b| / (|a| + |b|): scale-free, so 1e-7 means "agrees to about 7 digits"."""
    denominator = np.linalg.norm(a) + np.linalg.norm(b)
    return float(np.linalg.norm(a - b) / denominator) if denominator else 0.0


def gradient_check(x, labels, activation=ACTIVATION, hidden_units=6, n_classes=10, seed=0) -> dict:
    """Backprop vs. GradientTape and vs. central finite differences, on one set of float64 weights.

    float64 because the check is about the calculus: in float32, round-off alone gives relative
    errors near 1e-6 and would hide a real mistake of the same size.
    """
    x = np.asarray(x, dtype=np.float64)
    labels = np.asarray(labels, dtype=np.int64)
    params = init_mlp(x.shape[1], hidden_units, n_classes, np.random.default_rng(seed), dtype=np.float64)
    # Small random biases so that no ReLU sits exactly on its kink at 0, where the slope is undefined.
    for name in ("b1", "b2"):
        params[name] += np.random.default_rng(seed + 1).normal(0, 0.1, params[name].shape)
    _, backprop, _ = mlp_gradients(params, x, labels, activation)
    tape = gradient_tape_gradients(params, x, labels, activation)
    nudged = finite_difference_gradient(lambda p: mlp_loss(p, x, labels, activation), params, nudge=1e-5, central=True)
    vs_tape = {name: relative_error(backprop[name], tape[name]) for name in params}
    vs_nudge = {name: relative_error(backprop[name], nudged[name]) for name in params}
    return {
        "activation": activation,
        "weights": count_weights(params),
        "images": len(x),
        "vs_gradient_tape": vs_tape,
        "vs_finite_differences": vs_nudge,
        "max_vs_gradient_tape": max(vs_tape.values()),
        "max_vs_finite_differences": max(vs_nudge.values()),
    }


# ----------------------------------------------------------------------------------------------
# 4. Which gradient scales?


def time_gradient_methods(x, labels, hidden_sizes=(1, 2, 4, 8, 16), activation=ACTIVATION, seed=0) -> pd.DataFrame:
    """Seconds for one gradient of the whole network, by nudging (forward differences, as in
    part 2) and by backprop, as the hidden layer, and with it the number of weights, grows."""
    x = np.asarray(x, dtype=np.float64)
    rows = []
    for hidden_units in hidden_sizes:
        params = init_mlp(x.shape[1], hidden_units, 10, np.random.default_rng(seed), dtype=np.float64)
        started = time.perf_counter()
        finite_difference_gradient(lambda p: mlp_loss(p, x, labels, activation), params)
        nudging = time.perf_counter() - started
        # Backprop is so fast that one call is mostly timer noise; the best of many is its cost.
        repeats = []
        for _ in range(20):
            started = time.perf_counter()
            mlp_gradients(params, x, labels, activation)
            repeats.append(time.perf_counter() - started)
        backprop = min(repeats)
        rows.append(
            {
                "hidden_units": hidden_units,
                "weights": count_weights(params),
                "finite_difference_s": nudging,
                "backprop_s": backprop,
                "times_slower": nudging / backprop,
            }
        )
    return pd.DataFrame(rows)


# ----------------------------------------------------------------------------------------------
# 5. Training on digits, in NumPy and in Keras


def minibatches(n, batch_size, rng):
    """Endless shuffled mini-batches of indices, reshuffled after every pass over the data."""
    while True:
        order = rng.permutation(n)
        for start in range(0, n, batch_size):
            yield order[start : start + batch_size]


def evaluate_mlp(params, x, labels, activation=ACTIVATION, batch_size=1024) -> dict:
    total_loss, correct = 0.0, 0
    for start in range(0, len(x), batch_size):
        log_probabilities, _ = mlp_forward(params, x[start : start + batch_size], activation)
        batch_labels = labels[start : start + batch_size]
        total_loss -= log_probabilities[np.arange(len(batch_labels)), batch_labels].sum()
        correct += int((log_probabilities.argmax(axis=1) == batch_labels).sum())
    return {"loss": total_loss / len(x), "accuracy": correct / len(x)}


def train_numpy_mlp(session, params, activation=ACTIVATION) -> list[float]:
    """Mini-batch SGD on the session's data; logs like Keras does. Returns seconds per epoch."""
    args, plan, data = session.args, session.plan, session.data
    x_train, x_val = flatten_images(data.x_train), flatten_images(data.x_val)
    y_train = data.y_train.astype(np.int64)
    steps = plan.steps_per_epoch_for(len(x_train))  # the very count Keras gets for its twin
    batches = minibatches(len(x_train), plan.batch_size, np.random.default_rng(args.seed))
    writers = {split: session.open_writer(split) for split in ("train", "validation")}
    epoch_seconds = []
    try:
        for epoch in range(plan.epochs):
            started = time.perf_counter()
            loss_sum, correct, seen = 0.0, 0, 0
            for _ in range(steps):
                batch = next(batches)
                loss, gradients, probabilities = mlp_gradients(params, x_train[batch], y_train[batch], activation)
                for name in params:
                    params[name] -= args.learning_rate * gradients[name]
                # Like Keras, the training figures are averaged over the epoch as the weights move.
                loss_sum += loss * len(batch)
                correct += int((probabilities.argmax(axis=1) == y_train[batch]).sum())
                seen += len(batch)
            validation = evaluate_mlp(params, x_val, data.y_val, activation)
            epoch_seconds.append(time.perf_counter() - started)
            logs = {
                "loss": loss_sum / seen,
                "accuracy": correct / seen,
                "val_loss": validation["loss"],
                "val_accuracy": validation["accuracy"],
            }
            for split, prefix in (("train", ""), ("validation", "val_")):
                with writers[split].as_default():
                    tf.summary.scalar("epoch_loss", logs[prefix + "loss"], step=epoch)
                    tf.summary.scalar("epoch_accuracy", logs[prefix + "accuracy"], step=epoch)
            session.record.epoch_done(epoch, logs)
            session.say(
                f"Epoch {epoch + 1}/{plan.epochs} - {steps} steps - {epoch_seconds[-1]:.2f}s - "
                + " - ".join(f"{k}: {v:.4f}" for k, v in logs.items())
            )
    finally:
        for writer in writers.values():  # also on Ctrl-C, so the curves so far stay readable
            writer.close()
    return epoch_seconds


def log_numpy_test_metrics(session, params, activation=ACTIVATION) -> dict:
    """What session.evaluate does for a Keras model: run.json plus `<run>/test` in TensorBoard."""
    metrics = evaluate_mlp(params, flatten_images(session.data.x_test), session.data.y_test, activation)
    return session.record_test_metrics(metrics)


def keras_twin(params, activation=ACTIVATION, learning_rate=LEARNING_RATE):
    """The hello-world architecture at the NumPy network's size, starting from the same weights."""
    n_inputs, n_hidden = params["W1"].shape
    model = build_model(
        input_dim=n_inputs, hidden_units=n_hidden, num_classes=params["W2"].shape[1], activation=activation
    )
    model.set_weights([params["W1"], params["b1"], params["W2"], params["b2"]])
    model.compile(
        optimizer=keras.optimizers.SGD(learning_rate), loss="sparse_categorical_crossentropy", metrics=["accuracy"]
    )
    return model


def speed_summary(epoch_seconds) -> dict:
    # Keras spends its first epoch tracing the graph, so the median is the fair per-epoch cost.
    return {
        "train_seconds": round(sum(epoch_seconds), 3),
        "median_epoch_seconds": round(statistics.median(epoch_seconds), 4),
        "epoch_seconds": [round(s, 4) for s in epoch_seconds],
    }


# ----------------------------------------------------------------------------------------------
# Command line


def activation_name(text: str) -> str:
    if text not in ACTIVATIONS:
        raise argparse.ArgumentTypeError(f"choose one of {', '.join(ACTIVATIONS)}, got '{text}'")
    return text


def make_parser():
    parser = cli.build_parser(
        __doc__,
        epochs=EPOCHS,
        learning_rate=LEARNING_RATE,
        batch_size=BATCH_SIZE,
        several_runs="a NumPy run and its Keras twin",
        not_here=not_offered("the NumPy network trains outside TensorFlow, beside a one-device twin"),
    )
    parser.add_argument(
        "--hidden-units",
        type=cli.positive_int,
        default=HIDDEN_UNITS,
        help=f"size of the hidden layer (default {HIDDEN_UNITS})",
    )
    parser.add_argument(
        "--activation",
        type=activation_name,
        default=ACTIVATION,
        help=f"hidden activation: {' or '.join(ACTIVATIONS)} (default {ACTIVATION})",
    )
    return parser


def report_seed_examples(session) -> None:
    """Parts 1 and 2: the lesson's hand-worked numbers, printed and kept in run.json."""
    seed_net = forward_2_3_1()
    session.record.add_extra("seed_2_3_1", {k: np.round(v, 4).tolist() for k, v in seed_net.items()})
    session.say(
        "2-3-1 forward pass: hidden "
        + " / ".join(f"{v:.2f}" for v in seed_net["hidden_pre_activation"])
        + ", sigmoid "
        + " / ".join(f"{v:.2f}" for v in seed_net["hidden"])
        + f", output {seed_net['output']:.4f}, squared error {seed_net['squared_error']:.4f}"
    )
    w, b, _ = fit_line_by_finite_differences()
    session.record.add_extra("line_fit", {"w": w, "b": b})
    session.say(f"y = 3x by finite differences, 1000 epochs: w = {w:.5f}, b = {b:.5f}")


def train(args, *, dataset=None, quiet=False, parent_dir=None):
    """All five parts; returns a RunSet with the "numpy" run and, unless that one was
    interrupted, its "keras" twin, plus their comparison table."""
    hparams = {"hidden_units": args.hidden_units, "activation": args.activation}
    options = {"extra_hparams": hparams, "quiet": quiet, "parent_dir": parent_dir}
    runs = RunSet()
    with TrainingSession(__file__, args, tag="numpy", dataset=dataset, **options) as numpy_session:
        runs.add("numpy", numpy_session)
        data = numpy_session.data
        report_seed_examples(numpy_session)

        check = gradient_check(flatten_images(data.x_train[:8]), data.y_train[:8], args.activation)
        numpy_session.record.add_extra("gradient_check", check)
        numpy_session.say(
            f"Gradient check ({check['weights']} weights): backprop vs GradientTape "
            f"{check['max_vs_gradient_tape']:.1e}, vs finite differences "
            f"{check['max_vs_finite_differences']:.1e} (relative error)"
        )

        sizes = (1, 2, 4) if numpy_session.plan.quick else (1, 2, 4, 8, 16)
        timing = time_gradient_methods(
            flatten_images(data.x_train[:16]), data.y_train[:16].astype(np.int64), sizes, args.activation
        )
        numpy_session.record.add_extra("gradient_timing", timing.round(6).to_dict(orient="records"))
        numpy_session.say(
            "One gradient, nudging vs backprop: "
            + ", ".join(f"{row.weights} weights {row.times_slower:.0f}x slower" for row in timing.itertuples())
        )

        params = init_mlp(784, args.hidden_units, data.num_classes, np.random.default_rng(args.seed))
        start_weights = {name: values.copy() for name, values in params.items()}
        numpy_speed = speed_summary(train_numpy_mlp(numpy_session, params, args.activation))
        numpy_session.record.add_extra("speed", numpy_speed)
        numpy_test = log_numpy_test_metrics(numpy_session, params, args.activation)
        numpy_session.model = params
    if numpy_session.status != "finished":
        return runs

    with TrainingSession(__file__, args, tag="keras", dataset=data, **options) as keras_session:
        runs.add("keras", keras_session)
        model = keras_twin(start_weights, args.activation, args.learning_rate)
        keras_session.model = model
        keras_session.fit(model, x_train=flatten_images(data.x_train), x_val=flatten_images(data.x_val))
        keras_test = keras_session.evaluate(model, x_test=flatten_images(data.x_test))
        keras_speed = speed_summary(keras_session.epoch_seconds)
        runs.comparison = pd.DataFrame(
            {
                "test_accuracy": [numpy_test["accuracy"], keras_test["accuracy"]],
                "train_seconds": [numpy_speed["train_seconds"], keras_speed["train_seconds"]],
                "median_epoch_seconds": [numpy_speed["median_epoch_seconds"], keras_speed["median_epoch_seconds"]],
            },
            index=["numpy", "keras"],
        )
        keras_session.record.add_extra("speed", keras_speed)
        keras_session.record.add_extra(
            "compared_with_numpy",
            {
                "numpy_run": numpy_session.run_dir.name,
                "numpy_test_accuracy": numpy_test["accuracy"],
                "numpy_median_epoch_seconds": numpy_speed["median_epoch_seconds"],
                "keras_over_numpy_epoch_time": (
                    statistics.median(keras_session.epoch_seconds) / max(numpy_speed["median_epoch_seconds"], 1e-4)
                ),
            },
        )
        keras_session.say(
            f"\nSame network ({args.hidden_units} {args.activation} units), same start, "
            f"same SGD (lr {args.learning_rate:g}, batch {args.batch_size}):\n"
            + runs.comparison.to_string(float_format=lambda v: f"{v:.4f}")
        )
    return runs


def main(argv=None):
    return run_main(train, make_parser, argv)


if __name__ == "__main__":
    raise SystemExit(main())
