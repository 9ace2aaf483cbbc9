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
`network_input` turns a request's body (JSON pixels or a PNG) into that image, or refuses it with
a 4xx and one line.
"""

from __future__ import annotations

import io
import json
import struct
import zlib

import numpy as np
from PIL import Image, UnidentifiedImageError

from labkit.web_guard import Refused, media_type, parse_json

SIDE = 28  # MNIST's image side
BOX = 20  # MNIST scaled every digit to fit a 20x20 box inside the 28x28 image
INK = 32  # a pixel above this (of 255) counts as ink when cropping
JSON_SHAPE_HINT = '{"image": [[28 numbers from 0 to 255], ... 28 rows]}'
PIXEL_CONSTANT = "{name} is not a pixel value: use numbers from 0 to 255"
MAX_IMAGE_SIDE = 4096  # larger uploads are refused from their header, before their pixels are decoded
# What Pillow raises on bytes it cannot make sense of (a bad chunk is a ValueError, a torn
# stream an OSError or EOFError, a bad checksum a SyntaxError).
UNREADABLE = (UnidentifiedImageError, OSError, EOFError, SyntaxError, ValueError, struct.error, zlib.error)


class NotAnImage(ValueError):
    """The bytes are not a PNG image this server can read."""


class ImageTooLarge(NotAnImage):
    """A PNG whose header declares more pixels than this server decodes."""


def read_png(body: bytes) -> np.ndarray:
    """A PNG's pixels as a 2-D float array, 0 background to 255 ink.

    The size is checked from the header, before a pixel is decoded: a PNG of zeros 100 KB long can
    declare 30000x30000 pixels (900 MB once decoded). Transparent areas count as paper. A dark
    digit on light paper (a scan, a drawing program's default) is inverted, since MNIST is light
    ink on dark."""
    try:
        image = Image.open(io.BytesIO(body))
    except Image.DecompressionBombError:
        # Pillow refuses, in open() itself, anything past twice its process-wide pixel limit.
        raise ImageTooLarge(
            f"the image declares over {2 * Image.MAX_IMAGE_PIXELS:,} pixels; the limit is {MAX_IMAGE_SIDE} a side"
        ) from None
    except UNREADABLE as error:
        raise NotAnImage(f"the body is not a readable PNG image ({type(error).__name__})") from None
    if image.format != "PNG":
        raise NotAnImage(f"the body is a {image.format} image; send a PNG")
    if max(image.size) > MAX_IMAGE_SIDE:
        width, height = image.size
        raise ImageTooLarge(f"the image is {width}x{height} pixels; the limit is {MAX_IMAGE_SIDE} a side")
    try:
        image.load()
    except UNREADABLE as error:
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


# ----------------------------------------------------------------------------------------------
# A request's body, JSON or PNG, turned into the network's input: a Refused (4xx) otherwise.


def image_from_json(payload) -> np.ndarray:
    """A 28x28 array from {"image": [[...], ...]}, each value checked."""
    if not isinstance(payload, dict):
        raise Refused(400, f"the JSON body must be an object, {JSON_SHAPE_HINT}; got a {type(payload).__name__}")
    if "image" not in payload:
        raise Refused(422, f'the JSON object has no "image" key: send {JSON_SHAPE_HINT}')
    rows = payload["image"]
    if not isinstance(rows, list) or len(rows) != SIDE:
        got = f"{len(rows)} rows" if isinstance(rows, list) else f"a {type(rows).__name__}"
        raise Refused(422, f'"image" must be a list of {SIDE} rows of {SIDE} numbers; got {got}')
    for r, row in enumerate(rows):
        if not isinstance(row, list) or len(row) != SIDE:
            got = f"{len(row)} values" if isinstance(row, list) else f"a {type(row).__name__}"
            raise Refused(422, f"row {r} must hold {SIDE} numbers; it holds {got}")
        for c, value in enumerate(row):
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                raise Refused(422, f"row {r}, column {c}: {json.dumps(value)} is not a number")
            if not 0 <= value <= 255:
                raise Refused(422, f"row {r}, column {c}: {value} is out of range; pixel values go from 0 to 255")
    return np.asarray(rows, dtype=np.float32)


def image_from_request(content_type: str, body: bytes) -> np.ndarray:
    kind = media_type(content_type)
    if kind == "application/json":
        return image_from_json(parse_json(body, PIXEL_CONSTANT))
    if kind == "image/png":
        try:
            return read_png(body)
        except ImageTooLarge as error:
            raise Refused(413, str(error)) from None
        except NotAnImage as error:
            raise Refused(415 if "send a PNG" in str(error) else 400, str(error)) from None
    raise Refused(415, f"Content-Type '{kind or 'none'}' is not served: send application/json or image/png")


def network_input(content_type: str, body: bytes, preprocess: str) -> np.ndarray:
    """The 28x28 image the network gets from a request's body. The server calls it in a worker
    thread: a large PNG takes the CPU for a second, and the event loop must go on answering."""
    return PREPROCESSING[preprocess](image_from_request(content_type, body))
