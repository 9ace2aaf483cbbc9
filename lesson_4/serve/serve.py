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
    POST /reload    serve another model without a restart: {"run": RUN_DIR} or {"model": PATH}
                    (Content-Type: application/json); an empty body reloads the current file;
                    {"forecaster": RUN_DIR or PATH} swaps the Bitcoin forecaster
    GET  /forecast  the Bitcoin thread's forecast: ?date=YYYY-MM-DD (see forecasting.py)
    GET  /bitcoin   a page that draws that forecast over the real prices

The forecaster is the newest finished run of the Bitcoin thread (Lessons 2-4), or the one
`--forecaster` names; with `--forecaster` and no Lesson 1 run, the server forecasts without a
digit reader (/predict then answers 409 until a /reload gives it one).

It listens on 127.0.0.1 only: a course server, not one for the internet. It answers only requests
addressed to 127.0.0.1:PORT or localhost:PORT, from no web page or one of its own, and /reload
takes JSON only (labkit/web_guard.py says why): a page on another site cannot drive it.
"""

from __future__ import annotations

import argparse
import functools
import gc
import importlib.util
import json
import math
import socket
import sys
import threading
import time
from pathlib import Path

# Outside the lab's environment, one line saying how to run this, instead of a traceback.
if importlib.util.find_spec("labkit") is None:
    sys.path.append(str(Path(__file__).resolve().parents[2] / "scripts"))
    import lab_bootstrap

    lab_bootstrap.main()

import anyio
import numpy as np
from fastapi import FastAPI, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse
from starlette.exceptions import HTTPException

from labkit import LabError, cli
from labkit.data import CLASS_NAMES
from labkit.runs import runs_root
from labkit.saved_models import DEFAULT_PORT, check_model_file, model_in_run, newest_run_model, read_card
from labkit.web_guard import Refused, SameOriginGuard, parse_json, read_bounded
from lesson_4.serve.drawing import JSON_SHAPE_HINT, PREPROCESSING, SIDE, network_input
from lesson_4.serve.forecasting import (
    ServedForecaster,
    add_forecast_routes,
    checked_forecaster,
    forecaster_from_flag,
    newest_forecaster,
)

MAX_BODY_BYTES = 1_000_000  # a 280x280 drawing is about 10 KB as PNG; 1 MB is generous
DRAIN_BYTES = 16_000_000  # beyond this an oversized body is cut off, not read to its end
PAGE = Path(__file__).with_name("page.html")
# The datasets whose ten classes are the digits 0-9. Fashion-MNIST has MNIST's shapes, so only
# the data a model was trained on tells a clothing classifier from a digit reader.
DIGIT_DATASETS = frozenset(name for name, classes in CLASS_NAMES.items() if classes == tuple("0123456789"))
# A 4096x4096 PNG takes about 300 MB and a second of CPU to decode and composite; two at a time
# keep four such uploads from holding 1.2 GB at once, and leave the event loop free meanwhile.
DECODERS = 2
NO_DIGIT_MODEL = (
    "no digit model is loaded (the server was started for forecasts only): "
    'POST /reload {"run": RUN_DIR} with a Lesson 1 run to read digits'
)


# ----------------------------------------------------------------------------------------------
# The served model: load a .keras file, check it reads digits, answer one image at a time.


class ServedModel:
    """A loaded model, its card, and a lock: requests arrive on many threads at once."""

    def __init__(self, path: Path):
        # Imported here, not at the top: a bad flag or a busy port is refused before TensorFlow loads.
        import keras
        import tensorflow as tf

        self.path = Path(path).resolve()
        self.card = digit_card(self.path)
        # compile=False: serving needs the weights, not the optimizer's state or the loss.
        self.model = model = keras.models.load_model(self.path, compile=False)
        self.input_shape = check_reads_digits(model, self.path)
        # One traced graph for a batch of one: about 3x faster per request than calling the
        # model eagerly, and the fixed signature means it is traced once, at load. A partial, not
        # a lambda: it makes no cycle through self, and TensorFlow counts traces by code object,
        # so from the sixth reload on a lambda's trace printed a "retracing" warning each time.
        self._forward = tf.function(
            functools.partial(infer, model), input_signature=[tf.TensorSpec((1, *self.input_shape), tf.float32)]
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


def infer(model, batch):
    return model(batch, training=False)


def digit_card(model_path: Path) -> dict:
    """The model card, if it is one and names a digit dataset; a one-line LabError otherwise.
    Read before TensorFlow loads, so that a wrong model is refused in a fraction of a second."""
    card = read_card(model_path)
    if not isinstance(card, dict) or not isinstance(card.get("identity"), str):
        raise LabError(f"{model_path}: its model card is not a JSON object with an identity")
    data = card.get("data")
    name = data.get("name") if isinstance(data, dict) else None
    if name not in DIGIT_DATASETS:
        trained_on = f"was trained on {name}" if isinstance(name, str) else "has a card that names no dataset"
        raise LabError(
            f"{model_path}: this server reads handwritten digits, and that model {trained_on}; "
            f"serve a run of an MNIST activity (its data: {', '.join(sorted(DIGIT_DATASETS))})"
        )
    return card


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


async def read_body(request) -> bytes:
    body = await read_bounded(request, MAX_BODY_BYTES, DRAIN_BYTES)
    if not body:
        raise Refused(400, f"the body is empty: send a PNG image or JSON {JSON_SHAPE_HINT}")
    return body


def resolve_reload_target(payload, current: Path | None) -> tuple[str, Path]:
    """("digits" or "forecaster", the checked model path) that a /reload body asks for."""
    if payload is None:
        if current is None:
            raise Refused(409, NO_DIGIT_MODEL)
        return "digits", current
    if not isinstance(payload, dict) or not payload.keys() <= {"run", "model", "forecaster"} or len(payload) != 1:
        raise Refused(
            400,
            'send {"run": RUN_DIR}, {"model": PATH_TO_MODEL_KERAS} or {"forecaster": RUN_DIR_OR_PATH}, '
            "or no body to reload the current file",
        )
    ((key, value),) = payload.items()
    if not isinstance(value, str) or not value:
        raise Refused(400, f'"{key}" must be a path, as a JSON string; got {json.dumps(value)[:60]}')
    try:
        if key == "forecaster":
            return "forecaster", checked_forecaster("model" if value.endswith(".keras") else "run", value)
        return "digits", checked_path(key, value)
    except LabError as error:
        raise Refused(422, str(error)) from None


def checked_path(kind: str, path: str) -> Path:
    """The model.keras of a run folder (kind "run") or a .keras file (kind "model"), checked,
    its card included; a one-line LabError whatever is wrong (labkit.saved_models turns a path the
    system refuses, a name over 255 bytes say, into one too)."""
    model_path = model_in_run(path) if kind == "run" else check_model_file(path)
    digit_card(model_path)
    return model_path


def cannot_serve(path: Path, error: Exception) -> str:
    reason = str(error).splitlines()[0] if str(error).strip() else type(error).__name__
    return f"{path} cannot be served: {reason}"


# ----------------------------------------------------------------------------------------------
# The web application (FastAPI: routing, JSON answers and an ASGI app that uvicorn serves).


def create_app(
    model_path: Path | None, served: ServedModel | None = None, forecaster: ServedForecaster | None = None
) -> FastAPI:
    """The app; `model_path` None serves forecasts only, `forecaster` None digits only."""
    app = FastAPI(title="Lesson 4 digit server", docs_url="/docs", redoc_url=None)
    app.add_middleware(SameOriginGuard, state_changing={"/reload"})
    state = {
        "served": served or (ServedModel(model_path) if model_path else None),
        "forecaster": forecaster,
        "started": time.time(),
        "requests": 0,
    }

    def digit_model() -> ServedModel:
        if state["served"] is None:
            raise Refused(409, NO_DIGIT_MODEL)
        return state["served"]

    reload_lock = threading.Lock()
    decoders = anyio.CapacityLimiter(DECODERS)

    @app.exception_handler(Refused)
    async def bad_request(request: Request, error: Refused):
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
        served, forecaster = state["served"], state["forecaster"]
        return {
            "status": "ok",
            "model": served.identity if served else None,
            "forecaster": forecaster.identity if forecaster else None,
            "uptime_s": round(time.time() - state["started"], 1),
            "predictions": state["requests"],
            "forecasts": state.get("forecasts", 0),
        }

    @app.get("/model")
    def model_card():
        served = digit_model()
        return {**served.card, "path": str(served.path), "loaded_at": served.loaded_at}

    @app.post("/predict")
    async def predict(request: Request, preprocess: str = "as_drawn"):
        served = digit_model()
        if preprocess not in PREPROCESSING:
            raise Refused(422, f"preprocess must be one of {', '.join(PREPROCESSING)}; got '{preprocess}'")
        body = await read_body(request)
        content_type = request.headers.get("content-type", "")
        image = await anyio.to_thread.run_sync(network_input, content_type, body, preprocess, limiter=decoders)
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
        body = await read_bounded(request, MAX_BODY_BYTES, DRAIN_BYTES)
        payload = parse_json(body) if body.strip() else None
        current = state["served"].path if state["served"] else None
        slot, target = resolve_reload_target(payload, current)

        def swap():
            with reload_lock:  # one reload at a time; predictions go on with the old model meanwhile
                try:
                    fresh = ServedModel(target) if slot == "digits" else ServedForecaster(target)
                    key = "served" if slot == "digits" else "forecaster"
                    previous, state[key] = state[key], fresh
                    return {
                        slot if slot == "forecaster" else "model": fresh.identity,
                        "previous": previous.identity if previous else None,
                        "path": str(fresh.path),
                    }
                finally:
                    # A Keras model is a web of reference cycles (layers, trackers, traced graphs):
                    # only the cycle collector frees the one replaced (or half loaded). CPython runs
                    # a full collection only once its long-lived objects grow by a quarter, and with
                    # TensorFlow's that took so long that 120 reloads piled up 1.2 GB.
                    previous = fresh = None
                    gc.collect()

        try:
            return await run_in_threadpool(swap)
        except Exception as error:  # a damaged file raises anything from zipfile, h5py or Keras
            raise Refused(422, str(error) if isinstance(error, LabError) else cannot_serve(target, error)) from None

    add_forecast_routes(app, state)
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
    parser.add_argument(
        "--forecaster",
        metavar="RUN_DIR",
        help="a Bitcoin thread run folder (or its .keras file) for GET /forecast (default: the newest "
        "finished one, if any)",
    )
    parser.add_argument("--logdir", metavar="DIR", help="runs root to look in for the default model (default: runs/)")
    return parser


def choose_model(args) -> Path | None:
    """The digit model; None when only a forecaster was asked for and no Lesson 1 run exists."""
    if args.model or args.run:
        return checked_path("model" if args.model else "run", args.model or args.run)
    try:
        path = newest_run_model(runs_root(args.logdir), "lesson_1", "exercise_a")
    except LabError:
        if args.forecaster:
            return None
        raise
    digit_card(path)
    return path


def choose_forecaster(args) -> Path | None:
    if args.forecaster:
        return forecaster_from_flag(args.forecaster)
    return newest_forecaster(runs_root(args.logdir))


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
        forecaster_path = choose_forecaster(args)
        model_path = choose_model(args)
        sock = claim_port(args.port)
    except LabError as error:
        cli.fail(error, parser.prog)
    import uvicorn

    loaded = {}
    for path, load in ((model_path, ServedModel), (forecaster_path, ServedForecaster)):
        try:
            loaded[load] = load(path) if path else None
        except Exception as error:  # as for /reload: a damaged file raises anything from zipfile, h5py or Keras
            sock.close()
            cli.fail(error if isinstance(error, LabError) else LabError(cannot_serve(path, error)), parser.prog)
    app = create_app(model_path, served=loaded[ServedModel], forecaster=loaded[ServedForecaster])
    port = sock.getsockname()[1]
    if model_path:
        print(f"Serving {describe(read_card(model_path))}", flush=True)
    if forecaster_path:
        print(f"Forecasting with {read_card(forecaster_path)['identity']}: http://127.0.0.1:{port}/bitcoin", flush=True)
    else:
        print("No Bitcoin forecaster yet: GET /forecast answers 409 until one is trained and loaded", flush=True)
    what = "/ to draw a digit" if model_path else "/bitcoin for the Bitcoin forecast (no digit model loaded)"
    print(f"Open http://127.0.0.1:{port}{what} (Ctrl-C stops the server)", flush=True)
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", access_log=False))
    try:
        server.run(sockets=[sock])
    except KeyboardInterrupt:  # uvicorn finishes the requests in flight, then passes Ctrl-C on
        pass
    print("Server stopped.", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
