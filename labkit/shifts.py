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
