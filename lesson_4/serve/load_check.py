"""A bounded load check of the digit server, against this machine only.

    python lesson_4/serve/load_check.py                        # 500 requests, 8 clients, port 8000
    python lesson_4/serve/load_check.py --url http://127.0.0.1:8001 --requests 1000 --clients 8

Eight clients send real test digits, half as JSON and half as PNG, until the requests are spent
or the time limit passes. It prints the error count and the p50 and p95 latency, and exits 1 if
any request failed. It refuses any address that is not the local machine: a load test is never
pointed at someone else's server.
"""

from __future__ import annotations

import argparse
import importlib.util
import io
import ipaddress
import socket
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from urllib.parse import urlsplit

# Outside the lab's environment, one line saying how to run this, instead of a traceback.
if importlib.util.find_spec("labkit") is None:
    sys.path.append(str(Path(__file__).resolve().parents[2] / "scripts"))
    import lab_bootstrap

    lab_bootstrap.main()

import httpx
import numpy as np

from labkit import LabError, cli

DIGITS = 64  # distinct test digits to cycle through


def local_url(text: str) -> str:
    """The URL, if its host is this machine (a loopback address); a LabError otherwise."""
    parts = urlsplit(text)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise LabError(f"--url {text}: expected an address like http://127.0.0.1:8000")
    try:
        addresses = {info[4][0] for info in socket.getaddrinfo(parts.hostname, parts.port or 80)}
    except socket.gaierror:
        raise LabError(f"--url {text}: the host '{parts.hostname}' cannot be resolved") from None
    if not all(ipaddress.ip_address(address.split("%")[0]).is_loopback for address in addresses):
        raise LabError(f"--url {text}: load checks only target this machine (127.0.0.1, localhost, [::1])")
    return text.rstrip("/")


def request_bodies(count: int = DIGITS) -> list[tuple[str, bytes, int]]:
    """(content type, body, true label) for real test digits, alternately JSON and PNG."""
    import json

    from PIL import Image

    from labkit.data import load_dataset

    data = load_dataset("mnist_5k", announce=lambda message: None)
    bodies = []
    for i, (image, label) in enumerate(zip(data.x_test[:count], data.y_test[:count], strict=True)):
        pixels = np.rint(image[..., 0] * 255).astype(np.uint8)
        if i % 2:
            png = io.BytesIO()
            Image.fromarray(pixels).save(png, format="PNG")
            bodies.append(("image/png", png.getvalue(), int(label)))
        else:
            bodies.append(("application/json", json.dumps({"image": pixels.tolist()}).encode(), int(label)))
    return bodies


def run_load(url: str, *, requests: int, clients: int, time_limit: float) -> dict:
    bodies = request_bodies()
    latencies, failures, correct = [], [], [0]
    lock = threading.Lock()
    counter = iter(range(requests))
    deadline = time.monotonic() + time_limit

    def client():
        with httpx.Client(base_url=url, timeout=10.0) as session:
            for i in counter:  # the shared iterator hands each request number out once
                if time.monotonic() > deadline:
                    return
                content_type, body, label = bodies[i % len(bodies)]
                started = time.perf_counter()
                try:
                    reply = session.post("/predict", content=body, headers={"Content-Type": content_type})
                    ok = reply.status_code == 200
                    answer = reply.json() if ok else None
                except httpx.HTTPError as error:
                    ok, answer = False, f"{type(error).__name__}: {error}"
                elapsed = time.perf_counter() - started
                with lock:
                    latencies.append(elapsed)
                    if not ok:
                        failures.append(answer if isinstance(answer, str) else f"HTTP {reply.status_code}")
                    elif answer["label"] == label:
                        correct[0] += 1

    started = time.monotonic()
    with ThreadPoolExecutor(clients) as pool:
        for _ in range(clients):
            pool.submit(client)
    wall = time.monotonic() - started
    sent = len(latencies)
    return {
        "requests": sent,
        "clients": clients,
        "errors": len(failures),
        "first_errors": failures[:3],
        "p50_ms": 1000 * float(np.percentile(latencies, 50)) if sent else None,
        "p95_ms": 1000 * float(np.percentile(latencies, 95)) if sent else None,
        "max_ms": 1000 * max(latencies) if sent else None,
        "per_second": sent / wall if wall else None,
        "read_correctly": correct[0] / max(sent - len(failures), 1),
        "wall_s": wall,
    }


def make_parser() -> argparse.ArgumentParser:
    parser = cli.OneLineParser(
        prog="load_check.py", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--url", default="http://127.0.0.1:8000", help="the server (this machine only)")
    parser.add_argument("--requests", type=cli.positive_int, default=500, help="requests in all (default 500)")
    parser.add_argument("--clients", type=cli.positive_int, default=8, help="concurrent clients (default 8)")
    parser.add_argument("--time-limit", type=cli.positive_float, default=120.0, help="stop after this many seconds")
    return parser


def main(argv=None) -> int:
    parser = make_parser()
    args = parser.parse_args(argv)
    try:
        url = local_url(args.url)
        httpx.get(url + "/health", timeout=5.0).raise_for_status()
    except LabError as error:
        cli.fail(error, parser.prog)
    except httpx.HTTPError as error:
        cli.fail(LabError(f"--url {args.url}: no digit server answers there ({type(error).__name__})"), parser.prog)
    result = run_load(url, requests=args.requests, clients=args.clients, time_limit=args.time_limit)
    print(
        f"{result['requests']} requests from {result['clients']} clients in {result['wall_s']:.1f} s "
        f"({result['per_second']:.0f}/s): {result['errors']} errors, p50 {result['p50_ms']:.1f} ms, "
        f"p95 {result['p95_ms']:.1f} ms, max {result['max_ms']:.1f} ms; "
        f"{result['read_correctly']:.0%} of the test digits read correctly"
    )
    for failure in result["first_errors"]:
        print(f"  error: {failure}")
    return 1 if result["errors"] or result["requests"] < args.requests else 0


if __name__ == "__main__":
    sys.exit(main())
