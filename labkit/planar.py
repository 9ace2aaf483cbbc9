"""Two-dimensional toy datasets in the spirit of the TensorFlow Playground, generated with a seed.

    data = make_planar("spiral", noise=10, seed=0)     # 250 train / 250 validation / 250 test points

The Playground website (playground.tensorflow.org) trains tiny networks on four point clouds in a
square of side 12 around the origin, each point an (x1, x2) pair with one of two labels:

    circle     class 1 fills a disc of radius 2.5, class 0 a ring from radius 3.5 to 5
    xor        points anywhere in [-5, 5]^2, class 1 where x1 and x2 have the same sign
    gaussian   two round blobs, class 1 around (2, 2) and class 0 around (-2, -2)
    spiral     two arms winding out from the centre, half a turn apart

Nothing here is downloaded or measured: the data is generated on purpose, because the point of
these sets is that their shape is known in advance, so a decision boundary can be judged by eye.
The same seed always gives the same points. `noise` (0 to 50, in percent, as on the website's
slider) jitters the points (and widens the Gaussian blobs), so that the two classes start to
overlap; labels keep the class a point was drawn for.

The website draws 500 points and trains on half of them, testing on the other half. Here the pool
holds 750 points split three ways, 250 each: the website's train and test halves, plus a
validation third that Keras scores after every epoch, so that the final test set is not looked at
during training.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from labkit import LabError
from labkit.data import Dataset, sliced

PLANAR_SETS = ("circle", "xor", "gaussian", "spiral")
DEFAULT_PLANAR_SET = "circle"  # the website's default
SPLIT_POINTS = 250  # each of train / validation / test: the website's 500 points, split 50%
MAX_NOISE = 50.0  # percent, the end of the website's noise slider
DOMAIN = 6.0  # every set lies in [-6, 6]^2 (the website's plotting square)
RADIUS = 5.0  # outer edge of the circle and spiral sets, half-width of the xor square
CLASS_NAMES = ("class 0", "class 1")

# What build_parser needs to offer these sets as --dataset: `cli.build_parser(..., **DATASET_FLAGS)`.
DATASET_FLAGS = {
    "datasets": PLANAR_SETS,
    "default_dataset": DEFAULT_PLANAR_SET,
    "dataset_help": "2-D points to classify, generated with --data-seed (default: circle, as on the website)",
}


@dataclass
class PlanarDataset(Dataset):
    """Points (n, 2) float32 in [-6, 6], labels (n,) 0/1 as float32 for a sigmoid output.

    The image sets' fields, sizes() and describe(), plus how the points were generated; it never
    stands in for another set (`substitute_for` stays None)."""

    noise: float = 0.0
    seed: int = 0

    class_names = CLASS_NAMES  # plain class attributes in place of Dataset's lookups by name
    num_classes = 2

    def describe(self) -> dict:
        return {**super().describe(), "generated": True, "noise_percent": self.noise, "data_seed": self.seed}


# ---------------------------------------------------------------------------------------------
# The four generators. Each returns `n` points (n, 2) and labels (n,), classes in equal halves
# (one more of class 1 when n is odd), ordered class by class; make_planar shuffles them.


def _halves(n: int) -> tuple[int, int]:
    return n - n // 2, n // 2  # class 1, class 0


def _jitter(rng, points: np.ndarray, noise: float, scale: float) -> np.ndarray:
    """Move each coordinate by up to `noise` percent of `scale`, uniformly, either way."""
    return points + rng.uniform(-1.0, 1.0, size=points.shape) * (noise / 100.0) * scale


def _polar(radius: np.ndarray, angle: np.ndarray) -> np.ndarray:
    return np.stack([radius * np.cos(angle), radius * np.sin(angle)], axis=1)


def circle(n: int, noise: float, rng) -> tuple[np.ndarray, np.ndarray]:
    """A disc (class 1) inside a ring (class 0), with an empty band between them."""
    inner, outer = _halves(n)
    disc = _polar(rng.uniform(0.0, 0.5 * RADIUS, inner), rng.uniform(0.0, 2 * math.pi, inner))
    ring = _polar(rng.uniform(0.7 * RADIUS, RADIUS, outer), rng.uniform(0.0, 2 * math.pi, outer))
    points = _jitter(rng, np.concatenate([disc, ring]), noise, RADIUS)
    return points, np.concatenate([np.ones(inner), np.zeros(outer)])


def xor(n: int, noise: float, rng) -> tuple[np.ndarray, np.ndarray]:
    """The four quadrants of a square; class 1 where x1 * x2 > 0. Points keep a small margin
    from the axes, so that a clean boundary exists."""
    same, opposite = _halves(n)
    margin = 0.3

    def quadrant_points(count: int, same_sign: bool) -> np.ndarray:
        magnitude = rng.uniform(margin, RADIUS, size=(count, 2))
        first = rng.choice([-1.0, 1.0], size=count)
        second = first if same_sign else -first
        return magnitude * np.stack([first, second], axis=1)

    points = np.concatenate([quadrant_points(same, True), quadrant_points(opposite, False)])
    return _jitter(rng, points, noise, RADIUS), np.concatenate([np.ones(same), np.zeros(opposite)])


def gaussian(n: int, noise: float, rng) -> tuple[np.ndarray, np.ndarray]:
    """Two round normal blobs; more noise widens them until they overlap."""
    upper, lower = _halves(n)
    spread = 1.0 + 2.0 * noise / MAX_NOISE  # standard deviation 1 at noise 0, 3 at noise 50
    points = np.concatenate([rng.normal(2.0, spread, size=(upper, 2)), rng.normal(-2.0, spread, size=(lower, 2))])
    return points, np.concatenate([np.ones(upper), np.zeros(lower)])


def spiral(n: int, noise: float, rng) -> tuple[np.ndarray, np.ndarray]:
    """Two arms of an Archimedean spiral, 1.75 turns each, the second rotated by half a turn."""
    first, second = _halves(n)

    def arm(count: int, offset: float) -> np.ndarray:
        along = rng.uniform(0.0, 1.0, count)  # 0 at the centre, 1 at the outer end
        return _polar(RADIUS * along, 1.75 * 2 * math.pi * along + offset)

    points = np.concatenate([arm(first, 0.0), arm(second, math.pi)])
    return _jitter(rng, points, noise, 1.0), np.concatenate([np.ones(first), np.zeros(second)])


GENERATORS = {"circle": circle, "xor": xor, "gaussian": gaussian, "spiral": spiral}


def check_noise(noise: float) -> float:
    if not (math.isfinite(noise) and 0.0 <= noise <= MAX_NOISE):
        raise LabError(f"noise must be between 0 and {MAX_NOISE:g} (percent), got {noise:g}")
    return float(noise)


def noise_flag(text: str) -> float:
    """The argparse type of a --noise flag: refused with one line, before anything loads."""
    import argparse

    try:
        return check_noise(float(text))
    except (ValueError, LabError) as error:
        message = str(error) if isinstance(error, LabError) else f"expected a number, got '{text}'"
        raise argparse.ArgumentTypeError(message) from None


def generate(name: str, n: int, *, noise: float = 0.0, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """`n` shuffled points of one set: (n, 2) float32 coordinates and (n,) float32 labels."""
    if name not in GENERATORS:
        raise LabError(f"unknown 2-D dataset '{name}'; choose one of {', '.join(PLANAR_SETS)}")
    rng = np.random.default_rng(seed)
    points, labels = GENERATORS[name](n, check_noise(noise), rng)
    points = np.clip(points, -DOMAIN, DOMAIN)  # jitter must not leave the plotted square
    order = rng.permutation(n)
    return points[order].astype("float32"), labels[order].astype("float32")


def make_planar(
    name: str = DEFAULT_PLANAR_SET,
    *,
    noise: float = 0.0,
    seed: int = 0,
    points_per_split: int = SPLIT_POINTS,
    limits: dict[str, int] | None = None,
) -> PlanarDataset:
    """One pool of 3 x `points_per_split` points, shuffled, cut into train / validation / test."""
    x, y = generate(name, 3 * points_per_split, noise=noise, seed=seed)
    a, b = points_per_split, 2 * points_per_split
    dataset = PlanarDataset(
        name=name,
        source=f"generated by labkit.planar.{name}() with seed {seed}, noise {noise:g}%",
        x_train=x[:a],
        y_train=y[:a],
        x_val=x[a:b],
        y_val=y[a:b],
        x_test=x[b:],
        y_test=y[b:],
        noise=float(noise),
        seed=seed,
    )
    return sliced(dataset, limits)


# ---------------------------------------------------------------------------------------------
# Pictures of what a classifier of these points has learned, and a probe of its gradients. `model`
# is a Keras model (or any callable taking `training=`) that maps (n, 2) float32 points to (n, 1)
# probabilities of class 1. Keras and TensorFlow are imported inside the functions that need them:
# an activity imports this module in its flags cell, before they load.

# The website's colours: orange for class 0, blue for class 1, white where the network hesitates.
CLASS_COLOURS = np.array([[245, 147, 34], [8, 119, 189]], dtype=float)


def plane(size: int) -> np.ndarray:
    """(size * size, 2) points covering the square, row by row from the top, as an image is laid out."""
    axis = np.linspace(-DOMAIN, DOMAIN, size, dtype="float32")
    x1, x2 = np.meshgrid(axis, axis[::-1])
    return np.stack([x1.ravel(), x2.ravel()], axis=1)


def probability_map(model, size: int) -> np.ndarray:
    """(size, size) probability of class 1 over the square; row 0 is the top edge."""
    return np.asarray(model(plane(size), training=False)).reshape(size, size)  # eager: nothing to trace


def colour_of(probability: np.ndarray) -> np.ndarray:
    """Orange at 0, white at 0.5, blue at 1, channel values 0-255."""
    p = np.asarray(probability, dtype=float)[..., None]
    towards = np.where(p < 0.5, CLASS_COLOURS[0], CLASS_COLOURS[1])
    strength = np.abs(p - 0.5) * 2  # 0 where the network hesitates, 1 where it is sure
    return 255 - (255 - towards) * strength


def boundary_pixels(model, points, labels, size: int = 160) -> np.ndarray:
    """The boundary as a (1, size, size, 3) uint8 picture for tf.summary.image, drawn in NumPy
    (about a millisecond), so that it can be logged every few epochs."""
    image = 255 - (255 - colour_of(probability_map(model, size))) * 0.6  # paler, for the points
    rows = np.rint((DOMAIN - points[:, 1]) / (2 * DOMAIN) * (size - 1)).astype(int)
    cols = np.rint((points[:, 0] + DOMAIN) / (2 * DOMAIN) * (size - 1)).astype(int)
    for dr in (-1, 0, 1):
        for dc in (-1, 0, 1):
            image[np.clip(rows + dr, 0, size - 1), np.clip(cols + dc, 0, size - 1)] = CLASS_COLOURS[labels.astype(int)]
    return image[np.newaxis].round().astype(np.uint8)


def boundary_figure(model, data, title: str, size: int = 200):
    """The decision boundary with matplotlib: the probability as a background, the 0.5 line in
    black, training points as dots and test points as crosses."""
    from matplotlib.colors import ListedColormap

    from labkit.dashboards import offscreen_figure

    figure = offscreen_figure(4.6, 4.6)
    ax = figure.add_subplot()
    colours = ListedColormap(colour_of(np.linspace(0, 1, 256)) / 255)
    probability = probability_map(model, size)
    extent = (-DOMAIN, DOMAIN, -DOMAIN, DOMAIN)
    ax.imshow(probability, extent=extent, cmap=colours, vmin=0, vmax=1, alpha=0.75)
    ax.contour(probability[::-1], levels=[0.5], extent=extent, colors="black", linewidths=1)
    point_colours = CLASS_COLOURS / 255
    ax.scatter(*data.x_train.T, c=point_colours[data.y_train.astype(int)], s=14, edgecolors="white", linewidths=0.5)
    ax.scatter(*data.x_test.T, c=point_colours[data.y_test.astype(int)], s=14, marker="x", linewidths=0.8)
    ax.set(xlim=extent[:2], ylim=extent[2:], xlabel="x1", ylabel="x2", title=title)
    ax.title.set_fontsize(9)
    figure.tight_layout()
    return figure


def neuron_maps_figure(model, size: int = 80):
    """What each hidden unit computes over the plane (the website's small squares): one row per
    hidden layer (the layers named `hidden_*`), from the input side."""
    from labkit.dashboards import offscreen_figure

    hidden = [layer for layer in model.layers if layer.name.startswith("hidden_")]
    outputs, values = [], plane(size)
    for layer in hidden:  # the layers one after another, keeping what each one hands on
        values = layer(values)
        outputs.append(np.asarray(values))
    columns = max(layer.units for layer in hidden)
    figure = offscreen_figure(1.6 * columns, 1.7 * len(hidden))
    for row, (layer, values) in enumerate(zip(hidden, outputs, strict=True)):
        for unit in range(layer.units):
            ax = figure.add_subplot(len(hidden), columns, row * columns + unit + 1)
            ax.imshow(values[:, unit].reshape(size, size), cmap="PuOr", extent=(-DOMAIN, DOMAIN, -DOMAIN, DOMAIN))
            ax.set_title(f"{layer.name} #{unit}", fontsize=8)
            ax.set_xticks([])
            ax.set_yticks([])
    figure.tight_layout()
    return figure


def save_figure(figure, path, writer, step: int) -> None:
    """Render `figure` once; the same pixels go to `path` (a PNG) and to TensorBoard's Images tab,
    tagged by the file's name."""
    import tensorflow as tf
    from matplotlib.image import imsave

    from labkit.dashboards import figure_to_image

    pixels = figure_to_image(figure)
    imsave(path, pixels[0])
    with writer.as_default():
        tf.summary.image(Path(path).stem, pixels, step=step)


def snapshot_epochs(epochs: int, count: int = 10) -> list[int]:
    """Up to `count` epochs spread evenly from the first to the last (TensorBoard keeps 10 images
    per tag anyway)."""
    return sorted({round(i * (epochs - 1) / max(count - 1, 1)) for i in range(count)})


def layer_gradient_norms(model, x, y) -> dict:
    """The size of the loss gradient on each layer's kernel, over the whole training set. Smaller
    numbers near the input than near the output is the vanishing-gradient problem.

    A probe, not a training step: the weights go in as plain tensors (`stateless_call`), so that
    it reads the same under --distribute, where the kernels are mirrored variables that a tape
    outside the replicas cannot differentiate against."""
    import keras
    import tensorflow as tf

    weights = [tf.convert_to_tensor(v) for v in model.trainable_variables]
    others = [tf.convert_to_tensor(v) for v in model.non_trainable_variables]
    with tf.GradientTape() as tape:
        tape.watch(weights)
        predicted, _ = model.stateless_call(weights, others, x, training=True)
        loss = tf.reduce_mean(keras.losses.binary_crossentropy(y[:, None], predicted))
    gradients = dict(zip((v.path for v in model.trainable_variables), tape.gradient(loss, weights), strict=True))
    return {layer.name: float(tf.norm(gradients[layer.kernel.path])) for layer in model.layers}
