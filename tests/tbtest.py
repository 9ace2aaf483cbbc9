"""Helpers for the tests that look at TensorBoard as a person does: started through
`scripts/lab.py tensorboard`, read in headless Chromium.

TensorBoard's page is an Angular app with some Polymer parts (HParams) behind shadow roots; the
selectors below are the elements a person reads: the run list, the chart groups' titles, and the
HParams table's cells.
"""

from __future__ import annotations

import http.server
import re
import signal
import subprocess
import sys
import tempfile
import threading
import time
from contextlib import contextmanager
from pathlib import Path

from labtest import REPO, lab_env

OPEN_LINE = re.compile(r"Open: (http://[^/\s]+:(\d+)/)")
LAB = REPO / "scripts" / "lab.py"


class LabTensorBoard:
    """`python3 scripts/lab.py tensorboard ARGS` as an instructor starts it, stopped with Ctrl-C.

    `info_dir_root` becomes the process's TMPDIR, where TensorBoard registers running instances:
    a private one keeps other tests' TensorBoards (and the developer's) out of what it sees."""

    def __init__(self, *args, runs_dir: Path, info_dir_root: Path, start_timeout: float = 90):
        self.args = [str(a) for a in args]
        self.env = lab_env(runs_dir, TMPDIR=str(info_dir_root))
        self.start_timeout = start_timeout
        self.process = None
        self.url = None
        self.port = None
        self.exit_code = None
        self._log = None
        self._final = ""

    def __enter__(self) -> LabTensorBoard:
        self._log = tempfile.TemporaryFile(mode="w+")
        self.process = subprocess.Popen(
            [sys.executable, str(LAB), "tensorboard", *self.args],
            cwd=REPO,
            env=self.env,
            stdout=self._log,
            stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + self.start_timeout
        while time.monotonic() < deadline:
            found = OPEN_LINE.search(self.output())
            if found and "Press Ctrl-C to stop." in self.output():
                self.url, self.port = found.group(1), int(found.group(2))
                return self
            if self.process.poll() is not None:
                raise AssertionError(f"lab.py tensorboard exited with {self.process.returncode}: {self.output()}")
            time.sleep(0.2)
        self.stop()
        raise AssertionError(f"lab.py tensorboard was not ready within {self.start_timeout} s: {self.output()}")

    def output(self) -> str:
        if self._log is None or self._log.closed:
            return self._final
        self._log.seek(0)
        return self._log.read()

    def stop(self) -> int:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)  # what Ctrl-C sends
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=20)
        self.exit_code = self.process.returncode
        if not self._log.closed:
            self._final = self.output()
            self._log.close()
        return self.exit_code

    def __exit__(self, *exc) -> None:
        self.stop()


def links_printed(output: str) -> dict[str, str]:
    """The demo links `lab.py tensorboard` printed, by label."""
    return dict(re.findall(r"^  (.+?): (http://\S+)$", output, flags=re.M))


def wait_for(driver, condition, timeout: float = 45, what: str = "the page"):
    from selenium.webdriver.support.ui import WebDriverWait

    return WebDriverWait(driver, timeout, poll_frequency=0.5).until(
        lambda d: condition(d), message=f"{what} did not show up within {timeout} s"
    )


def run_list(driver) -> str:
    """The run selector's text: one run per line, as the left panel shows it."""
    from selenium.webdriver.common.by import By

    found = driver.find_elements(By.CSS_SELECTOR, "runs-selector")
    return found[0].text if found else ""


def chart_groups(driver) -> list[str]:
    """The titles of the time-series chart groups (one per tag prefix)."""
    from selenium.webdriver.common.by import By

    return [element.text for element in driver.find_elements(By.CSS_SELECTOR, "metrics-card-groups .group-title")]


HPARAMS_CELLS = """
function find(root, tag) {
  for (const element of root.querySelectorAll('*')) {
    if (element.tagName === tag) return element;
    if (element.shadowRoot) { const hit = find(element.shadowRoot, tag); if (hit) return hit; }
  }
  return null;
}
const view = find(document, 'TF-HPARAMS-TABLE-VIEW');
if (!view) return null;
return Array.from(view.shadowRoot.querySelectorAll('vaadin-grid-cell-content')).map(c => c.textContent.trim());
"""


def hparams_cells(driver) -> list[str]:
    """Every cell text of the HParams table view, headers first, then row after row. (The grid
    keeps hidden columns' cells too, so the tests look cells up by a row's trial ID rather than
    by position.)"""
    return driver.execute_script(HPARAMS_CELLS) or []


@contextmanager
def page_server(html: str):
    """Serve one HTML page over http://127.0.0.1 (a notebook's output needs a real origin: the
    `%tensorboard` frame takes its host from the page's address)."""
    body = html.encode()

    class OnePage(http.server.BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802 (the name http.server calls)
            self.send_response(200)
            self.send_header("Content-Type", "text/html; charset=utf-8")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), OnePage)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/"
    finally:
        server.shutdown()
        server.server_close()


def tensorboard_cell_html(notebook) -> str:
    """The HTML that a notebook's `%tensorboard` cell displayed (its frame and script)."""
    for cell in notebook.cells:
        if cell.cell_type == "code" and "%tensorboard" in cell.source and "%load_ext" not in cell.source:
            for output in cell.get("outputs", []):
                html = output.get("data", {}).get("text/html")
                if html:
                    return html if isinstance(html, str) else "".join(html)
    raise AssertionError("no %tensorboard cell displayed HTML")


def scalar_cards(driver) -> list[str]:
    """Titles of the scalar chart cards the page has drawn (a collapsed group draws none)."""
    from selenium.webdriver.common.by import By

    return [card.text.split("\n")[0] for card in driver.find_elements(By.CSS_SELECTOR, "scalar-card")]


def open_chart_group(driver, tag: str, timeout: float = 30) -> None:
    """Make sure the chart group `tag` is expanded and its scalar card drawn, with a line in it;
    TensorBoard collapses groups when a logdir has many, and remembers what a person folded."""
    from selenium.webdriver.common.by import By

    if tag not in scalar_cards(driver):
        for toolbar in driver.find_elements(By.CSS_SELECTOR, "metrics-card-groups .group-toolbar"):
            if toolbar.text.split("\n")[0] == tag:
                driver.execute_script("arguments[0].scrollIntoView({block: 'center'})", toolbar)
                toolbar.click()
                break
    wait_for(driver, lambda d: tag in scalar_cards(d), timeout, what=f"the {tag} chart")
    card = next(c for c in driver.find_elements(By.CSS_SELECTOR, "scalar-card") if c.text.split("\n")[0] == tag)
    driver.execute_script("arguments[0].scrollIntoView({block: 'center'})", card)
    # The chart draws its lines on a canvas (WebGL or 2D) or as SVG paths, depending on the browser.
    wait_for(driver, lambda d: card.find_elements(By.CSS_SELECTOR, "canvas, svg path"), timeout, what=f"{tag}'s lines")


# A child that registers itself in tensorboard.manager's info folder exactly as a TensorBoard does,
# then either exits without cleaning up (as a killed TensorBoard does) or stays alive until its
# stdin closes. Arguments: port, logdir as typed, the folder it was typed in, "stay" or "exit".
REGISTER_AS_TENSORBOARD = """
import os, sys, time
from tensorboard import manager, version
port, logdir, folder, mode = sys.argv[1:]
key = manager.cache_key(working_directory=folder, arguments=["--logdir", logdir], configure_kwargs={})
manager.write_info_file(manager.TensorBoardInfo(
    version=version.VERSION, start_time=int(time.time()), pid=os.getpid(), port=int(port), path_prefix="",
    logdir=logdir, db="", cache_key=key))
print("registered", flush=True)
if mode == "stay":
    sys.stdin.read()
"""


def private_tensorboard_info(tmp_path: Path, monkeypatch) -> Path:
    """A temp folder of the test's own, so tensorboard.manager sees only the TensorBoards it registers."""
    import tempfile

    folder = tmp_path / "tmp"
    folder.mkdir()
    monkeypatch.setenv("TMPDIR", str(folder))
    monkeypatch.setattr(tempfile, "tempdir", str(folder))  # gettempdir() caches its first answer
    return folder


def register_as_tensorboard(port: int, logdir: str, folder: Path, stay: bool) -> subprocess.Popen:
    """The registered child, running (stay) or already exited and reaped; TMPDIR picks the info folder."""
    arguments = [str(port), logdir, str(folder), "stay" if stay else "exit"]
    command = [sys.executable, "-c", REGISTER_AS_TENSORBOARD, *arguments]
    process = subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    assert process.stdout.readline().strip() == "registered"
    if not stay:
        process.wait(timeout=60)
    return process
