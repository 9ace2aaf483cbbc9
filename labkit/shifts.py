"""Digits moved toward the edge of the canvas: Lesson 1 shows that its network misreads them,
Lesson 4 retrains with them and serves the result."""

from __future__ import annotations

import numpy as np

EDGE_SHIFTS = (0, 2, 4, 6, 8, 10)  # pixels to the right; MNIST digits keep a 4-pixel margin


def shift_right(images: np.ndarray, pixels: int) -> np.ndarray:
    """Slide every image (n, height, width, channels) `pixels` to the right, filling with blank
    canvas (no wrap-around)."""
    if pixels == 0:
        return images
    shifted = np.zeros_like(images)
    shifted[:, :, pixels:] = images[:, :, :-pixels]
    return shifted


def log_edge_shift(run, split: str, model, images: np.ndarray, labels: np.ndarray, accuracy: dict) -> np.ndarray:
    """An edge test into TensorBoard: `edge_shift_accuracy` against the shift (step = pixels) in
    `<run>/<split>`, and as images up to 8 digits that `model` reads when centred but misreads at
    the largest shift. Two models logged under two splits share one chart. Returns those digits'
    indices."""
    import tensorflow as tf

    far = shift_right(images, max(EDGE_SHIFTS))
    centred_right = model.predict(images, batch_size=256, verbose=0).argmax(axis=1) == labels
    far_predicted = model.predict(far, batch_size=256, verbose=0).argmax(axis=1)
    broken = np.flatnonzero(centred_right & (far_predicted != labels))[:8]
    writer = run.open_writer(split)
    with writer.as_default():
        for pixels, value in accuracy.items():
            tf.summary.scalar("edge_shift_accuracy", value, step=pixels)
        if len(broken):
            tf.summary.image("misclassified_after_shift", far[broken], step=max(EDGE_SHIFTS), max_outputs=len(broken))
    writer.flush()
    return broken
