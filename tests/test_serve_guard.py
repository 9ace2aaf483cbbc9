"""The digit server refuses what it should, on a real serve.py process and real HTTP requests:
foreign Host and Origin headers (a web page driving it, DNS rebinding), a real 30000x30000 PNG
of 109 KB, JSON it cannot parse, a Fashion-MNIST run's model, paths with a name over 255
characters, a model card that is a FIFO; /health keeps answering while large PNGs decode, and
memory, read from the server's process, stays flat over 100 reloads."""

from __future__ import annotations

import os
import statistics
import struct
import threading
import time
import zlib
from pathlib import Path

import httpx
import pytest

from labtest import assert_refused, only_run, run_script
from webtest import DigitServer

slow = pytest.mark.slow

SERVE = "lesson_4/serve/serve.py"
FASHION = "lesson_3/fashion_classifier/train_mnist.py"
LONG_NAME = "n" * 300  # Linux allows 255 bytes a name


# ----------------------------------------------------------------------------------------------
# Helpers: real PNGs made at test time, and requests whose every header the test chooses.


def png_of_zeros(width: int, height: int, *, bit_depth: int = 8, colour_type: int = 0) -> bytes:
    """A valid PNG of all-zero pixels, compressed row by row: never the decoded image in memory,
    so a 30000x30000 one costs the test 109 KB."""
    channels = {0: 1, 2: 3, 4: 2, 6: 4}[colour_type]
    row = bytes(1 + (width * channels * bit_depth + 7) // 8)  # filter byte 0, then the pixels
    packer = zlib.compressobj(9)
    data = b"".join(packer.compress(row) for _ in range(height)) + packer.flush()

    def chunk(kind: bytes, payload: bytes) -> bytes:
        return struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", zlib.crc32(kind + payload))

    header = struct.pack(">IIBBBBB", width, height, bit_depth, colour_type, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", data) + chunk(b"IEND", b"")


def send(server, method: str, path: str, *, body: bytes | None = None, json=None, headers=None, timeout=60):
    """(status, answer as JSON) on a connection of its own: a refused request cannot spoil the next."""
    with httpx.Client(base_url=server.url, timeout=timeout) as client:
        reply = client.request(method, path, content=body, json=json, headers=headers or {})
    is_json = reply.headers.get("content-type") == "application/json"
    return reply.status_code, reply.json() if is_json else {"not JSON": reply.text[:200]}


def port_of(server) -> int:
    return int(server.url.rsplit(":", 1)[1])


def one_line_error(answer: dict) -> str:
    error = answer["error"]
    assert error and "\n" not in error and "Traceback" not in error, answer
    return error


@pytest.fixture(scope="module")
def server(exercise_a_quick_run, tmp_path_factory):
    with DigitServer(["--run", exercise_a_quick_run], tmp_path_factory.mktemp("guard_runs")) as running:
        yield running
    assert running.exit_code == 0, running.output()


@pytest.fixture(scope="module")
def fashion_run(quick_run) -> Path:
    """Lesson 3's real Fashion-MNIST classifier (quick): MNIST's shapes, clothes for classes."""
    finished = quick_run(FASHION, "--quick")
    assert finished.result.returncode == 0, finished.result.stderr[-3000:]
    return only_run(finished.runs_dir)


def loaded_at(server) -> float:
    status, card = send(server, "GET", "/model")
    assert status == 200, card
    return card["loaded_at"]


@pytest.fixture
def fifo_card(exercise_a_quick_run, tmp_path):
    """A real model.keras whose card is a FIFO; released at the end, so that a reader stuck on
    it (today's code) lets go."""
    (tmp_path / "model.keras").symlink_to(exercise_a_quick_run / "model.keras")
    fifo = tmp_path / "model.keras.card.json"
    os.mkfifo(fifo)
    yield tmp_path / "model.keras"
    for _ in range(5):  # a writer that opens and closes gives any blocked reader its end of file
        try:
            os.close(os.open(fifo, os.O_WRONLY | os.O_NONBLOCK))
        except OSError:
            break  # no reader is waiting
        time.sleep(0.1)


# ----------------------------------------------------------------------------------------------
# Who may drive the server


@slow
def test_a_foreign_host_is_refused_on_every_route(server, exercise_a_quick_run):
    port = port_of(server)
    routes = [("GET", "/"), ("GET", "/health"), ("GET", "/model"), ("GET", "/docs"), ("GET", "/openapi.json")]
    routes += [("POST", "/predict"), ("POST", "/reload")]
    # A DNS-rebinding page sends its own name, with or without the port; a wrong port or a
    # name that merely starts like ours is as foreign.
    foreign = ["evil.example", f"evil.example:{port}", "127.0.0.1:1", f"localhost.evil.example:{port}", ""]
    for host in foreign:
        for method, path in routes:
            status, answer = send(server, method, path, json={"run": str(exercise_a_quick_run)}, headers={"Host": host})
            assert status == 421, (host, method, path, status, answer)
            assert str(exercise_a_quick_run) not in one_line_error(answer)  # not a word of the card's paths
    for own in (f"127.0.0.1:{port}", f"localhost:{port}", f"LOCALHOST:{port}"):
        status, card = send(server, "GET", "/model", headers={"Host": own})
        assert status == 200 and card["run_dir"] == str(exercise_a_quick_run.resolve())


@slow
def test_a_cross_site_reload_is_refused_and_the_model_stays(server, exercise_a_quick_run):
    port = port_of(server)
    before = loaded_at(server)
    body = f'{{"run": "{exercise_a_quick_run}"}}'.encode()
    refused = [
        # The request: what a page on another site makes the browser send.
        ({"Content-Type": "text/plain", "Origin": "http://evil.example", "Host": "evil.example"}, 421),
        ({"Content-Type": "text/plain", "Origin": "http://evil.example"}, 403),
        ({"Content-Type": "application/json", "Origin": "http://evil.example"}, 403),
        ({"Content-Type": "application/json", "Origin": "null"}, 403),  # a sandboxed frame, a file:// page
        ({"Content-Type": "application/json", "Origin": f"http://127.0.0.1:{port + 1}"}, 403),
        ({"Content-Type": "text/plain"}, 415),  # no preflight needed for these three, so no JSON
        ({"Content-Type": "application/x-www-form-urlencoded"}, 415),
        ({"Content-Type": "multipart/form-data; boundary=x"}, 415),
        ({}, 415),
    ]
    for headers, expected in refused:
        status, answer = send(server, "POST", "/reload", body=body, headers=headers)
        assert status == expected, (headers, status, answer)
        one_line_error(answer)
    assert loaded_at(server) == before  # nothing was reloaded
    status, answer = send(server, "POST", "/predict", body=b"{}", headers={"Origin": "http://evil.example"})
    assert status == 403, answer
    # The server's own page posts with its own Origin, by either name: that still works.
    for host in ("127.0.0.1", "localhost"):
        own = {"Host": f"{host}:{port}", "Origin": f"http://{host}:{port}", "Content-Type": "image/png"}
        status, answer = send(server, "POST", "/predict", body=png_of_zeros(280, 280), headers=own)
        assert status == 200 and len(answer["probabilities"]) == 10, answer
    own = {"Origin": f"http://127.0.0.1:{port}", "Content-Type": "application/json; charset=utf-8"}
    status, answer = send(server, "POST", "/reload", body=body, headers=own)
    assert status == 200, answer
    assert loaded_at(server) > before


# ----------------------------------------------------------------------------------------------
# What the server cannot read: a 4xx in one line, and it keeps serving


@slow
def test_a_109_kb_png_of_30000_by_30000_pixels_gets_a_413(server):
    bomb = png_of_zeros(30000, 30000, bit_depth=1)
    assert len(bomb) < 120_000  # what the issue sent: 109 KB that decode to 900 million pixels
    status, answer = send(server, "POST", "/predict", body=bomb, headers={"Content-Type": "image/png"})
    assert status == 413 and "the limit is 4096 a side" in one_line_error(answer), answer
    # Under Pillow's own limit but over the server's: refused from its header as well.
    wide = png_of_zeros(5000, 20)
    status, answer = send(server, "POST", "/predict", body=wide, headers={"Content-Type": "image/png"})
    assert status == 413 and "5000x20 pixels" in one_line_error(answer), answer
    assert send(server, "GET", "/health")[0] == 200


@slow
def test_json_it_cannot_parse_gets_a_400_in_one_line(server):
    deep = b"[" * 100_000 + b"]" * 100_000
    cases = [
        ("/predict", deep, "nested deeper"),
        ("/predict", b'{"image": ' + b"9" * 5000 + b"}", "4300 digits"),
        ("/predict", b'{"image": [[' + b"7" * 5000 + b"]]}", "4300 digits"),
        ("/predict", b"\xff\xfe not utf-8", "not"),
        ("/reload", deep, "nested deeper"),
        ("/reload", b'{"run": ' + b"1" * 5000 + b"}", "4300 digits"),
        ("/reload", b"{}", 'send {"run": RUN_DIR}'),
        ("/reload", b'{"run": 5}', "must be a path"),
        ("/reload", b'{"model": ["a"]}', "must be a path"),
    ]
    for path, body, words in cases:
        status, answer = send(server, "POST", path, body=body, headers={"Content-Type": "application/json"})
        assert status == 400 and words in one_line_error(answer), (path, body[:30], status, answer)
    assert send(server, "GET", "/health")[0] == 200


@slow
def test_health_answers_while_four_clients_upload_4096_squared_16_bit_rgba_pngs(server):
    big = png_of_zeros(4096, 4096, bit_depth=16, colour_type=6)  # 128 MB of pixels in about 130 KB
    assert len(big) < 1_000_000
    uploads = []

    def upload():
        for _ in range(2):
            answer = send(server, "POST", "/predict", body=big, headers={"Content-Type": "image/png"}, timeout=300)
            uploads.append(answer)

    clients = [threading.Thread(target=upload) for _ in range(4)]
    for client in clients:
        client.start()
    waits = []
    with httpx.Client(base_url=server.url, timeout=60) as probe:
        while any(client.is_alive() for client in clients):
            started = time.perf_counter()
            assert probe.get("/health").status_code == 200
            waits.append(time.perf_counter() - started)
            time.sleep(0.05)
    for client in clients:
        client.join()
    assert [status for status, _ in uploads] == [200] * 8, uploads
    # Decoded on the event loop, each upload held every other request up: /health took 1.5 s to
    # 8 s. Decoded in worker threads it answers between two of its own steps.
    print(
        f"/health under 4 uploads: {len(waits)} probes, median {statistics.median(waits) * 1000:.0f} ms, "
        f"max {max(waits) * 1000:.0f} ms"
    )
    assert len(waits) >= 5 and statistics.median(waits) < 0.25 and max(waits) < 1.0, waits


# ----------------------------------------------------------------------------------------------
# Which models it serves


@slow
def test_a_fashion_mnist_run_is_not_served(server, fashion_run, runs_dir, capsys, monkeypatch):
    from labkit.data import offline_availability

    before = send(server, "GET", "/model")[1]
    status, answer = send(server, "POST", "/reload", json={"run": str(fashion_run)})
    if offline_availability()["fashion_mnist"] is None:
        # Without Fashion-MNIST on the machine, Lesson 3 trains on its labelled substitute, real
        # MNIST digits: a digit reader, which the server takes.
        assert status == 200 and answer["model"].startswith("lesson_3/fashion_classifier/"), answer
        send(server, "POST", "/reload", json={"run": before["run_dir"]})
        return
    assert status == 422, answer
    assert "was trained on fashion_mnist" in one_line_error(answer)
    after = send(server, "GET", "/model")[1]
    assert (after["identity"], after["loaded_at"]) == (before["identity"], before["loaded_at"])
    assert_refused(
        SERVE,
        "--run",
        str(fashion_run),
        message="was trained on fashion_mnist; serve a run of an MNIST activity",
        runs_dir=runs_dir,
        capsys=capsys,
        monkeypatch=monkeypatch,
    )


@slow
def test_paths_with_a_name_over_255_characters_are_refused_in_one_line(server, tmp_path, runs_dir, capsys, monkeypatch):
    long_run = tmp_path / LONG_NAME
    for payload in ({"run": str(long_run)}, {"model": str(long_run / "model.keras")}):
        status, answer = send(server, "POST", "/reload", json=payload)
        assert status == 422 and "File name too long" in one_line_error(answer), answer
    for flag, path in (("--run", long_run), ("--model", long_run / "model.keras")):
        refused = dict(runs_dir=runs_dir, capsys=capsys, monkeypatch=monkeypatch)
        assert_refused(SERVE, flag, str(path), message="File name too long", **refused)
    assert send(server, "GET", "/health")[0] == 200


@slow
def test_a_model_card_that_is_a_fifo_is_refused_without_hanging(server, fifo_card, runs_dir):
    started = time.monotonic()
    status, answer = send(server, "POST", "/reload", json={"model": str(fifo_card)}, timeout=20)
    assert status == 422 and "not a regular file" in one_line_error(answer), answer
    result = run_script(SERVE, "--model", str(fifo_card), "--port", "0", runs_dir=runs_dir, timeout=60)
    assert result.returncode == 2, result.stdout + result.stderr
    assert result.stderr.count("\n") == 1 and "card.json cannot be read: not a regular file" in result.stderr
    assert time.monotonic() - started < 60
    assert send(server, "GET", "/health")[0] == 200


def test_read_card_refuses_a_fifo_and_a_folder_at_once(tmp_path):
    from labkit import LabError
    from labkit.saved_models import read_card

    os.mkfifo(tmp_path / "fifo.keras.card.json")
    (tmp_path / "folder.keras.card.json").mkdir()
    outcome = {}

    def read(name):
        try:
            read_card(tmp_path / name)
        except LabError as error:
            outcome[name] = str(error)

    for name in ("fifo.keras", "folder.keras"):
        reader = threading.Thread(target=read, args=(name,), daemon=True)
        reader.start()
        reader.join(timeout=10)
    try:
        assert set(outcome) == {"fifo.keras", "folder.keras"}, f"read_card hung on a FIFO: {outcome}"
        assert all(message.endswith("cannot be read: not a regular file") for message in outcome.values())
    finally:
        try:  # release a reader left blocked (the old code's), so the thread can end
            os.close(os.open(tmp_path / "fifo.keras.card.json", os.O_WRONLY | os.O_NONBLOCK))
        except OSError:
            pass


# ----------------------------------------------------------------------------------------------
# Memory over reloads


@slow
def test_memory_stays_flat_over_100_reloads(server, exercise_a_quick_run):
    import psutil

    process = psutil.Process(server.process.pid)
    payload = {"run": str(exercise_a_quick_run)}
    for _ in range(5):  # the allocator's first growth, and TensorFlow's caches, come once
        assert send(server, "POST", "/reload", json=payload)[0] == 200
    rss = []
    with httpx.Client(base_url=server.url, timeout=60) as client:
        for _ in range(100):
            reply = client.post("/reload", json=payload)
            assert reply.status_code == 200, reply.text
            rss.append(process.memory_info().rss)
    # The leak this guards against kept ~10 MB a reload until a rare full collection (the issue saw
    # 1.5 GB grow to 2.7 GB over 120 reloads): a trend, measured median against median. Single
    # readings swing by 25-50 MB, up to about 100 MB once, as the allocator keeps or hands back
    # memory whatever the server holds, so a single peak only has to stay well below a leak's.
    start, end = statistics.median(rss[:10]), statistics.median(rss[-30:])
    grown = [(value - start) / 1e6 for value in rss]
    print(f"RSS {start / 1e6:.0f} MB, 100 reloads: max {max(grown):+.0f} MB, last 30 {(end - start) / 1e6:+.0f} MB")
    assert (end - start) / 1e6 < 50 and max(grown) < 200, [round(g) for g in grown[::10]]
