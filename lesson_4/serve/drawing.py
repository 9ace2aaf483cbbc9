"""What the network receives: a drawing turned into the 28x28 image MNIST taught it to read.

MNIST's digits were not photographed at 28x28. Each was scanned, scaled so that it fits a 20x20
box (keeping its aspect ratio), then placed in a 28x28 canvas so that its centre of mass sits in
the middle. Every training digit is therefore centred with a 4-pixel margin, and a network that
only ever saw centred digits may never have learnt what a digit near the edge looks like.

The server offers both ways to turn a drawing into the network's input, side by side:
- `as_drawn`: the whole canvas shrunk to 28x28. A digit drawn at the edge stays at the edge.
- `centred`: MNIST's own recipe (crop the ink, fit it in 20x20, centre its mass), so the
  network gets what it was trained on, wherever the student drew.

Pixel values are 0 (background) to 255 (ink), light ink on a dark background, as in MNIST.
"""

from __future__ import annotations

import io

import numpy as np
from PIL import Image, UnidentifiedImageError

SIDE = 28  # MNIST's image side
BOX = 20  # MNIST scaled every digit to fit a 20x20 box inside the 28x28 image
INK = 32  # a pixel above this (of 255) counts as ink when cropping
MAX_IMAGE_SIDE = 4096  # larger uploads are refused before they are decoded


class NotAnImage(ValueError):
    """The bytes are not a PNG image this server can read."""


def read_png(body: bytes) -> np.ndarray:
    """A PNG's pixels as a 2-D float array, 0 background to 255 ink.

    Transparent areas count as paper. A dark digit on light paper (a scan, a drawing program's
    default) is inverted, since MNIST is light ink on dark."""
    try:
        image = Image.open(io.BytesIO(body))
        if image.format != "PNG":
            raise NotAnImage(f"the body is a {image.format} image; send a PNG")
        if max(image.size) > MAX_IMAGE_SIDE:
            raise NotAnImage(
                f"the image is {image.size[0]}x{image.size[1]} pixels; the limit is {MAX_IMAGE_SIDE} a side"
            )
        image.load()
    except (UnidentifiedImageError, OSError, SyntaxError) as error:
        raise NotAnImage(f"the body is not a readable PNG image ({type(error).__name__})") from None
    if image.mode in ("RGBA", "LA", "PA") or "transparency" in image.info:
        paper = Image.new("RGBA", image.size, (255, 255, 255, 255))
        image = Image.alpha_composite(paper, image.convert("RGBA"))
    pixels = np.asarray(image.convert("L"), dtype=np.float32)
    return 255.0 - pixels if pixels.mean() > 127.5 else pixels


def as_drawn(pixels: np.ndarray) -> np.ndarray:
    """The whole canvas averaged down to 28x28: what is at the edge stays at the edge."""
    if pixels.shape == (SIDE, SIDE):
        return pixels.astype(np.float32)
    image = Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8))
    return np.asarray(image.resize((SIDE, SIDE), Image.Resampling.BOX), dtype=np.float32)


def centred_like_mnist(pixels: np.ndarray) -> np.ndarray:
    """MNIST's recipe: crop to the ink, fit it in 20x20 keeping its shape, centre its mass."""
    rows, cols = np.nonzero(pixels > INK)
    if rows.size == 0:
        return np.zeros((SIDE, SIDE), dtype=np.float32)  # an empty canvas stays empty
    crop = pixels[rows.min() : rows.max() + 1, cols.min() : cols.max() + 1]
    scale = BOX / max(crop.shape)
    height, width = (max(1, round(n * scale)) for n in crop.shape)
    digit = Image.fromarray(np.clip(crop, 0, 255).astype(np.uint8)).resize((width, height), Image.Resampling.LANCZOS)
    digit = np.asarray(digit, dtype=np.float32)
    # Place the digit so that its centre of mass lands on the image's centre, as MNIST did,
    # without letting any of it fall off the canvas.
    mass = digit.sum()
    centre_row = (digit.sum(axis=1) @ np.arange(height)) / mass
    centre_col = (digit.sum(axis=0) @ np.arange(width)) / mass
    top = int(np.clip(round(SIDE / 2 - 0.5 - centre_row), 0, SIDE - height))
    left = int(np.clip(round(SIDE / 2 - 0.5 - centre_col), 0, SIDE - width))
    canvas = np.zeros((SIDE, SIDE), dtype=np.float32)
    canvas[top : top + height, left : left + width] = digit
    return canvas


PREPROCESSING = {"as_drawn": as_drawn, "centred": centred_like_mnist}
