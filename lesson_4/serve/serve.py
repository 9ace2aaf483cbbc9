"""Lesson 4: serve a trained network over HTTP, with a page to draw digits on.

    python lesson_4/serve/serve.py                         # the newest Lesson 1 run's model
    python lesson_4/serve/serve.py --run runs/lesson_1/exercise_a/<run>
    python lesson_4/serve/serve.py --model path/to/model.keras --port 8001

Then open the printed address: draw a digit, see the 28x28 image the network receives and its
ten probabilities, once "as drawn" and once "centred like MNIST". The same service answers
programs:

    GET  /          the drawing page
    POST /predict   a JSON {"image": 28 rows of 28 numbers 0-255} or a PNG body (Content-Type: image/png);
                    ?preprocess=as_drawn (default) or centred
    GET  /health    is it up, and which model it serves
    GET  /model     the model card of the served model
    POST /reload    serve another model without a restart: {"run": RUN_DIR} or {"model": PATH};
                    an empty body reloads the current file

It listens on 127.0.0.1 only: a course server, not one for the internet.
"""

from __future__ import annotations

import argparse
import json
import math
import socket
import sys
import threading
import time
from pathlib import Path

import numpy as np
from fastapi import FastAPI, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse
from starlette.exceptions import HTTPException

from labkit import LabError, cli
from labkit.runs import runs_root
from labkit.saved_models import DEFAULT_PORT, check_model_file, model_in_run, newest_run_model, read_card
from lesson_4.serve.drawing import PREPROCESSING, SIDE, NotAnImage, read_png

MAX_BODY_BYTES = 1_000_000  # a 280x280 drawing is about 10 KB as PNG; 1 MB is generous
DRAIN_BYTES = 16_000_000  # beyond this an oversized body is cut off, not read to its end
PAGE = Path(__file__).with_name("page.html")
JSON_SHAPE_HINT = '{"image": [[28 numbers from 0 to 255], ... 28 rows]}'


# ----------------------------------------------------------------------------------------------
# The served model: load a .keras file, check it reads digits, answer one image at a time.


class ServedModel:
    """A loaded model, its card, and a lock: requests arrive on many threads at once."""

    def __init__(self, path: Path):
        # Imported here, not at the top: a bad flag or a busy port is refused before TensorFlow loads.
        import keras
        import tensorflow as tf

        self.path = Path(path).resolve()
        self.card = read_card(self.path)
        # compile=False: serving needs the weights, not the optimizer's state or the loss.
        self.model = keras.models.load_model(self.path, compile=False)
        self.input_shape = check_reads_digits(self.model, self.path)
        # One traced graph for a batch of one: about 3x faster per request than calling the
        # model eagerly, and the fixed signature means it is traced once, at load.
        self._forward = tf.function(
            lambda batch: self.model(batch, training=False),
            input_signature=[tf.TensorSpec((1, *self.input_shape), tf.float32)],
        )
        self.loaded_at = time.time()
        self._lock = threading.Lock()
        self.probabilities(np.zeros((SIDE, SIDE), dtype=np.float32))  # warm up: the first call builds the graph

    @property
    def identity(self) -> str:
        return self.card["identity"]

    def probabilities(self, image: np.ndarray) -> np.ndarray:
        """Ten class probabilities for one 28x28 image with pixel values 0-255."""
        batch = (image.astype(np.float32) / 255.0).reshape((1, *self.input_shape))
        with self._lock:
            output = np.asarray(self._forward(batch), dtype=np.float64)[0]
        if output.min() < 0 or abs(output.sum() - 1) > 1e-3:  # logits, not a softmax: make them probabilities
            output = np.exp(output - output.max())
            output /= output.sum()
        return output


def check_reads_digits(model, path: Path) -> tuple:
    """The model's input shape, if it takes one 28x28 image and gives ten scores."""
    inputs, outputs = model.inputs, model.outputs
    if len(inputs) != 1 or len(outputs) != 1:
        raise LabError(f"{path}: this server needs one image in and ten scores out; the model has {len(inputs)} inputs")
    shape = tuple(inputs[0].shape[1:])
    if None in shape or math.prod(shape) != SIDE * SIDE or outputs[0].shape[-1] != 10:
        raise LabError(
            f"{path}: this server reads 28x28 digits into 10 classes; the model takes {shape} and gives "
            f"{tuple(outputs[0].shape[1:])} (serve a run of an MNIST activity)"
        )
    return shape


# ----------------------------------------------------------------------------------------------
# Requests: every way a body can be wrong gets a 4xx answer with a JSON error.


class BadRequest(Exception):
    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status


async def read_body(request) -> bytes:
    """The body, kept only while it stays within MAX_BODY_BYTES, whatever Content-Length claims.

    An oversized body is read to its end (up to DRAIN_BYTES) without being kept: a client that
    sends its whole body before reading the answer then gets the 413, not a broken pipe."""
    body, received = bytearray(), 0
    async for chunk in request.stream():
        received += len(chunk)
        if received <= MAX_BODY_BYTES:
            body += chunk
        elif received > DRAIN_BYTES:
            break
    if received > MAX_BODY_BYTES:
        raise BadRequest(413, f"the body is over {received - 1:,} bytes; the limit is {MAX_BODY_BYTES:,}")
    if not body:
        raise BadRequest(400, f"the body is empty: send a PNG image or JSON {JSON_SHAPE_HINT}")
    return bytes(body)


def parse_json(body: bytes):
    def no_constants(name):
        raise BadRequest(422, f"{name} is not a pixel value: use numbers from 0 to 255")

    try:
        return json.loads(body, parse_constant=no_constants)
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise BadRequest(400, f"the body is not valid JSON ({error})") from None


def image_from_json(payload) -> np.ndarray:
    """A 28x28 array from {"image": [[...], ...]}, each value checked."""
    if not isinstance(payload, dict):
        raise BadRequest(400, f"the JSON body must be an object, {JSON_SHAPE_HINT}; got a {type(payload).__name__}")
    if "image" not in payload:
        raise BadRequest(422, f'the JSON object has no "image" key: send {JSON_SHAPE_HINT}')
    rows = payload["image"]
    if not isinstance(rows, list) or len(rows) != SIDE:
        got = f"{len(rows)} rows" if isinstance(rows, list) else f"a {type(rows).__name__}"
        raise BadRequest(422, f'"image" must be a list of {SIDE} rows of {SIDE} numbers; got {got}')
    for r, row in enumerate(rows):
        if not isinstance(row, list) or len(row) != SIDE:
            got = f"{len(row)} values" if isinstance(row, list) else f"a {type(row).__name__}"
            raise BadRequest(422, f"row {r} must hold {SIDE} numbers; it holds {got}")
        for c, value in enumerate(row):
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                raise BadRequest(422, f"row {r}, column {c}: {json.dumps(value)} is not a number")
            if not 0 <= value <= 255:
                raise BadRequest(422, f"row {r}, column {c}: {value} is out of range; pixel values go from 0 to 255")
    return np.asarray(rows, dtype=np.float32)


def image_from_request(content_type: str, body: bytes) -> np.ndarray:
    kind = content_type.split(";")[0].strip().lower()
    if kind == "application/json":
        return image_from_json(parse_json(body))
    if kind == "image/png":
        try:
            return read_png(body)
        except NotAnImage as error:
            raise BadRequest(415 if "send a PNG" in str(error) else 400, str(error)) from None
    raise BadRequest(415, f"Content-Type '{kind or 'none'}' is not served: send application/json or image/png")


def resolve_reload_target(payload, current: Path) -> Path:
    if payload is None:
        return current
    if not isinstance(payload, dict) or not payload.keys() <= {"run", "model"} or len(payload) > 1:
        raise BadRequest(
            400, 'send {"run": RUN_DIR} or {"model": PATH_TO_MODEL_KERAS}, or no body to reload the current file'
        )
    try:
        if "run" in payload:
            return model_in_run(str(payload["run"]))
        return check_model_file(str(payload["model"]))
    except LabError as error:
        raise BadRequest(422, str(error)) from None


# ----------------------------------------------------------------------------------------------
# The web application (FastAPI: routing, JSON answers and an ASGI app that uvicorn serves).


def create_app(model_path: Path, served: ServedModel | None = None) -> FastAPI:
    app = FastAPI(title="Lesson 4 digit server", docs_url="/docs", redoc_url=None)
    state = {"served": served or ServedModel(model_path), "started": time.time(), "requests": 0}
    reload_lock = threading.Lock()

    @app.exception_handler(BadRequest)
    async def bad_request(request: Request, error: BadRequest):
        return JSONResponse({"error": str(error)}, status_code=error.status)

    @app.exception_handler(HTTPException)
    async def http_error(request: Request, error: HTTPException):  # unknown paths, wrong methods
        return JSONResponse({"error": str(error.detail)}, status_code=error.status_code)

    @app.exception_handler(RequestValidationError)
    async def invalid_parameters(request: Request, error: RequestValidationError):
        problems = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in error.errors())
        return JSONResponse({"error": problems}, status_code=422)

    @app.get("/", response_class=HTMLResponse)
    def page():
        return PAGE.read_text(encoding="utf-8")

    @app.get("/health")
    def health():
        served = state["served"]
        return {
            "status": "ok",
            "model": served.identity,
            "uptime_s": round(time.time() - state["started"], 1),
            "predictions": state["requests"],
        }

    @app.get("/model")
    def model_card():
        served = state["served"]
        return {**served.card, "path": str(served.path), "loaded_at": served.loaded_at}

    @app.post("/predict")
    async def predict(request: Request, preprocess: str = "as_drawn"):
        if preprocess not in PREPROCESSING:
            raise BadRequest(422, f"preprocess must be one of {', '.join(PREPROCESSING)}; got '{preprocess}'")
        body = await read_body(request)
        pixels = image_from_request(request.headers.get("content-type", ""), body)
        image = PREPROCESSING[preprocess](pixels)
        served = state["served"]
        probabilities = await run_in_threadpool(served.probabilities, image)
        state["requests"] += 1
        return {
            "label": int(np.argmax(probabilities)),
            "probabilities": [round(float(p), 6) for p in probabilities],
            "model": served.identity,
            "preprocess": preprocess,
            "input": np.rint(image).astype(int).tolist(),  # the 28x28 image the network received
        }

    @app.post("/reload")
    async def reload(request: Request):
        body = await request.body()
        payload = parse_json(body) if body.strip() else None
        target = resolve_reload_target(payload, state["served"].path)

        def load():
            with reload_lock:  # one reload at a time; predictions go on with the old model meanwhile
                return ServedModel(target)

        try:
            fresh = await run_in_threadpool(load)
        except (LabError, ValueError, OSError) as error:
            raise BadRequest(422, f"{target} cannot be served: {error}") from None
        previous, state["served"] = state["served"], fresh
        return {"model": fresh.identity, "previous": previous.identity, "path": str(fresh.path)}

    return app


class BackgroundServer:
    """The same app served from a thread of this process (for a notebook): `.url`, `.stop()`."""

    def __init__(self, model_path: Path, port: int = 0):
        import uvicorn

        self._socket = claim_port(port)
        self.url = f"http://127.0.0.1:{self._socket.getsockname()[1]}"
        self._server = uvicorn.Server(uvicorn.Config(create_app(model_path), log_level="warning", access_log=False))
        self._thread = threading.Thread(target=self._server.run, kwargs={"sockets": [self._socket]}, daemon=True)
        self._thread.start()
        deadline = time.monotonic() + 30
        while not self._server.started and self._thread.is_alive() and time.monotonic() < deadline:
            time.sleep(0.05)
        if not self._server.started:
            raise LabError("the background server did not start within 30 s")

    def stop(self) -> None:
        self._server.should_exit = True
        self._thread.join(timeout=10)
        self._socket.close()


# ----------------------------------------------------------------------------------------------
# Command line


def make_parser() -> argparse.ArgumentParser:
    parser = cli.OneLineParser(
        prog="serve.py", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    source = parser.add_mutually_exclusive_group()
    source.add_argument("--model", metavar="PATH", help="a .keras file with its model card beside it")
    source.add_argument("--run", metavar="RUN_DIR", help="a finished run folder; serves its model.keras")
    parser.add_argument(
        "--port",
        type=cli.port_number,
        default=DEFAULT_PORT,
        help=f"port on 127.0.0.1 (default {DEFAULT_PORT}; 0: any free port)",
    )
    parser.add_argument("--logdir", metavar="DIR", help="runs root to look in for the default model (default: runs/)")
    return parser


def choose_model(args) -> Path:
    if args.model:
        return check_model_file(args.model)
    if args.run:
        return model_in_run(args.run)
    return newest_run_model(runs_root(args.logdir), "lesson_1", "exercise_a")


def claim_port(port: int) -> socket.socket:
    """Bind before loading anything: a busy port is a one-line error, not a traceback later."""
    # IPPROTO_TCP named outright: asyncio turns Nagle's algorithm off only on sockets that say
    # so, and with it on, every answer on a kept-alive connection waited ~40 ms for an ACK.
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    try:
        sock.bind(("127.0.0.1", port))
    except OSError:
        sock.close()
        raise LabError(f"port {port} is busy (is another server running?); choose another with --port") from None
    sock.listen(128)
    return sock


def describe(card: dict) -> str:
    test = card.get("metrics", {}).get("test", {})
    data = (card.get("data") or {}).get("name", "?")
    score = f"test accuracy {test['accuracy']:.3f} on {data}" if "accuracy" in test else f"trained on {data}"
    return f"{card['identity']} ({score})"


def main(argv=None) -> int:
    parser = make_parser()
    args = parser.parse_args(argv)
    try:
        model_path = choose_model(args)
        sock = claim_port(args.port)
    except LabError as error:
        cli.fail(error, parser.prog)
    try:
        import uvicorn

        app = create_app(model_path)
    except LabError as error:
        sock.close()
        cli.fail(error, parser.prog)
    port = sock.getsockname()[1]
    print(f"Serving {describe(read_card(model_path))}", flush=True)
    print(f"Open http://127.0.0.1:{port}/ to draw a digit (Ctrl-C stops the server)", flush=True)
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", access_log=False))
    try:
        server.run(sockets=[sock])
    except KeyboardInterrupt:  # uvicorn finishes the requests in flight, then passes Ctrl-C on
        pass
    print("Server stopped.", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
