"""Test helpers for what runs in a browser: the digit server as a real process, and Debian's
Chromium driven headless through Selenium, with screenshots kept as test artefacts."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from contextlib import contextmanager
from pathlib import Path

from labtest import REPO, lab_env

ARTIFACTS = REPO / "test-artifacts"  # screenshots a person can open after the run (git ignores it)
SERVE = REPO / "lesson_4" / "serve" / "serve.py"
URL_LINE = re.compile(r"Open (http://127\.0\.0\.1:\d+)/")


class DigitServer:
    """`serve.py` started as a student starts it, on a port the OS picks; stopped with Ctrl-C.

    with DigitServer(["--run", run_dir], runs_dir) as server:
        answer = server.post_json("/predict", {"image": ...})
    """

    def __init__(self, args, runs_dir: Path, start_timeout: float = 90):
        self.args = [str(a) for a in args]
        self.runs_dir = runs_dir
        self.start_timeout = start_timeout
        self.process = None
        self.url = None
        self.exit_code = None
        self.final_output = ""
        self._log = None

    def __enter__(self) -> DigitServer:
        self._log = tempfile.TemporaryFile(mode="w+")
        self.process = subprocess.Popen(
            [sys.executable, str(SERVE), *self.args, "--port", "0"],
            cwd=REPO,
            env=lab_env(self.runs_dir),
            stdout=self._log,
            stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + self.start_timeout
        while time.monotonic() < deadline:
            found = URL_LINE.search(self.output())
            if found:
                self.url = found.group(1)
                return self
            if self.process.poll() is not None:
                raise AssertionError(f"serve.py exited with {self.process.returncode}: {self.output()}")
            time.sleep(0.2)
        self.__exit__(None, None, None)
        raise AssertionError(f"serve.py printed no URL within {self.start_timeout} s: {self.output()}")

    def output(self) -> str:
        if self._log.closed:
            return self.final_output
        self._log.seek(0)
        return self._log.read()[-4000:]

    def request(self, path: str, body: bytes | None = None, content_type: str | None = None, method=None):
        """(status, parsed JSON answer): 4xx and 5xx answers are returned, not raised."""
        request = urllib.request.Request(self.url + path, data=body, method=method or ("POST" if body else "GET"))
        if content_type:
            request.add_header("Content-Type", content_type)
        opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
        try:
            with opener.open(request, timeout=30) as response:
                return response.status, json.loads(response.read())
        except urllib.error.HTTPError as error:
            return error.code, json.loads(error.read())

    def get_json(self, path: str):
        status, answer = self.request(path)
        assert status == 200, (path, status, answer)
        return answer

    def post_json(self, path: str, payload, **query: str):
        import urllib.parse

        suffix = ("?" + urllib.parse.urlencode(query)) if query else ""
        return self.request(path + suffix, json.dumps(payload).encode(), "application/json", method="POST")

    def __exit__(self, exc_type, exc, tb) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)  # what Ctrl-C sends
            try:
                self.exit_code = self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=20)
        self.exit_code = self.process.returncode if self.exit_code is None else self.exit_code
        self.final_output = self.output()
        self._log.close()


def browser_binaries() -> tuple[str | None, str | None]:
    return (shutil.which("chromium") or shutil.which("chromium-browser"), shutil.which("chromedriver"))


def require_browser():
    """Skip only where no browser can be installed; CI installs Debian's chromium, so a missing
    one there is a failure, never a silent skip."""
    import pytest

    browser, driver = browser_binaries()
    if browser and driver:
        return browser, driver
    reason = "no Chromium here: install Debian's chromium and chromium-driver (.ci/run does)"
    if os.environ.get("CI"):
        pytest.fail(reason)
    pytest.skip(reason)


@contextmanager
def headless_chromium(width: int = 1100, height: int = 800):
    """A headless Chromium under Selenium, using the system's chromedriver (nothing downloaded)."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    browser, driver_path = require_browser()
    options = webdriver.ChromeOptions()
    options.binary_location = browser
    for argument in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", f"--window-size={width},{height}"):
        options.add_argument(argument)
    driver = webdriver.Chrome(options=options, service=Service(driver_path))
    try:
        yield driver
    finally:
        driver.quit()


def save_screenshot(driver, name: str) -> Path:
    ARTIFACTS.mkdir(exist_ok=True)
    path = ARTIFACTS / name
    assert driver.save_screenshot(str(path)), f"could not save {path}"
    return path


# Digits as pen strokes on the page's 280x280 pad, drawn around its centre like a student would.
DIGIT_STROKES = {
    "1": [[(140, 60), (140, 220)]],
    "2": [[(90, 100), (110, 70), (150, 60), (185, 80), (190, 115), (160, 150), (100, 210), (190, 210)]],
    "7": [[(100, 80), (180, 80), (150, 150), (130, 210)]],
}
PAD_SIDE = 280


def against_right_edge(strokes, margin: int = 12, at_most: int | None = None):
    """The same strokes slid right until the ink nearly touches the pad's right edge, or by
    `at_most` pad pixels if that comes first (100 pad pixels are 10 of the network's 28)."""
    shift = PAD_SIDE - margin - max(x for stroke in strokes for x, _ in stroke)
    shift = shift if at_most is None else min(shift, at_most)
    return [[(x + shift, y) for x, y in stroke] for stroke in strokes]


def draw_on_pad(driver, strokes, timeout: float = 30) -> dict:
    """Clear the pad, draw `strokes` with real mouse events, wait until both panels answered for
    the last stroke; returns what the page shows: the label and the ink's columns per panel."""
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    pad = driver.find_element(By.ID, "pad")
    driver.find_element(By.ID, "clear").click()
    answered = "return Number(document.body.dataset.answered || 0)"
    for stroke in strokes:
        before = driver.execute_script(answered)
        actions = ActionChains(driver, duration=5)
        (x, y), half = stroke[0], PAD_SIDE // 2
        actions.move_to_element_with_offset(pad, x - half, y - half).click_and_hold()
        for (x1, y1), (x0, y0) in zip(stroke[1:], stroke[:-1], strict=True):
            actions.move_by_offset(x1 - x0, y1 - y0)
        actions.release().perform()
        WebDriverWait(driver, timeout).until(lambda d, before=before: d.execute_script(answered) > before)
    shown = {}
    for mode in ("as_drawn", "centred"):
        # The preview canvas holds the 28x28 input the server says the network received.
        columns = driver.execute_script(
            """const view = document.getElementById(arguments[0]).getContext('2d').getImageData(0, 0, 28, 28).data;
               const ink = [];
               for (let i = 0; i < 28 * 28; i++) { if (view[i * 4] > 127) ink.push(i % 28); }
               return ink;""",
            f"seen-{mode}",
        )
        shown[mode] = {"label": driver.find_element(By.ID, f"label-{mode}").text, "ink_columns": columns}
    shown["error"] = driver.find_element(By.ID, "error").text
    return shown
