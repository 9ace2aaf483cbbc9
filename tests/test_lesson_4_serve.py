"""Lesson 4, serve: a real uvicorn server on a real model, real HTTP requests, a real browser."""

import io
import json
import re
import shutil
import socket

import numpy as np
import pytest

from labtest import REPO, assert_refused, execute_notebook, notebook_text_outputs, only_run, run_json, run_script
from webtest import DIGIT_STROKES, DigitServer, against_right_edge, draw_on_pad, headless_chromium, save_screenshot

pytestmark = pytest.mark.slow

LESSON_1 = "lesson_1/exercise_a/train_mnist.py"
SERVE = "lesson_4/serve/serve.py"
LOAD_CHECK = "lesson_4/serve/load_check.py"


@pytest.fixture(scope="module")
def lesson_1_run(exercise_a_quick_run):
    return exercise_a_quick_run


@pytest.fixture(scope="module")
def server(lesson_1_run, tmp_path_factory):
    with DigitServer(["--run", lesson_1_run], tmp_path_factory.mktemp("serve_runs")) as running:
        yield running
    assert running.exit_code == 0, f"Ctrl-C should stop the server cleanly: {running.output()}"
    assert running.output().rstrip().endswith("Server stopped."), running.output()


@pytest.fixture(scope="module")
def test_digits():
    from labkit.data import load_dataset

    data = load_dataset("mnist_5k", announce=lambda message: None)
    return np.rint(data.x_test[:40, :, :, 0] * 255).astype(int), data.y_test[:40]


def png_bytes(pixels) -> bytes:
    from PIL import Image

    buffer = io.BytesIO()
    Image.fromarray(np.asarray(pixels, dtype=np.uint8)).save(buffer, format="PNG")
    return buffer.getvalue()


def test_health_and_model_card_name_the_served_run(server, lesson_1_run):
    from labkit.saved_models import fingerprint

    card = server.get_json("/model")
    assert card["identity"].startswith(f"lesson_1/exercise_a/{lesson_1_run.name}#")
    assert card["sha256"] == fingerprint(lesson_1_run / "model.keras")
    assert card["run_dir"] == str(lesson_1_run.resolve())
    assert card["metrics"]["test"]["accuracy"] == run_json(lesson_1_run)["metrics"]["test"]["accuracy"]
    assert card["data"]["name"] == run_json(lesson_1_run)["dataset"]["name"] and card["versions"]["keras"]
    health = server.get_json("/health")
    assert health["status"] == "ok" and health["model"] == card["identity"]
    assert "Serving lesson_1/exercise_a/" in server.output()


def test_real_digits_sent_as_json_are_read_at_the_runs_accuracy(server, test_digits, lesson_1_run):
    images, labels = test_digits
    correct = 0
    for image, label in zip(images, labels, strict=True):
        status, answer = server.post_json("/predict", {"image": image.tolist()})
        assert status == 200, answer
        assert len(answer["probabilities"]) == 10 and abs(sum(answer["probabilities"]) - 1) < 1e-4
        assert answer["label"] == int(np.argmax(answer["probabilities"]))
        assert answer["input"] == image.tolist()  # as drawn: the network gets the digit untouched
        correct += answer["label"] == label
    # The quick run scored about 0.80 on its test digits; an untrained network reads 1 in 10.
    assert correct / len(labels) >= 0.6
    assert answer["model"] == server.get_json("/health")["model"]


def test_png_and_json_bodies_get_the_same_answer(server, test_digits):
    image = test_digits[0][3]
    _, from_json = server.post_json("/predict", {"image": image.tolist()})
    status, from_png = server.request("/predict", png_bytes(image), "image/png")
    assert status == 200, from_png
    assert from_png["probabilities"] == from_json["probabilities"]
    # A dark digit on light paper is inverted to MNIST's light-on-dark before the network sees it.
    _, from_paper = server.request("/predict", png_bytes(255 - image), "image/png")
    assert from_paper["label"] == from_json["label"]


def test_centred_preprocessing_moves_an_edge_digit_back_to_the_middle(server, test_digits):
    image = test_digits[0][5]
    at_edge = np.zeros_like(image)
    at_edge[:, 9:] = image[:, :-9]  # the digit slid 9 pixels right
    _, drawn = server.post_json("/predict", {"image": at_edge.tolist()}, preprocess="as_drawn")
    _, centred = server.post_json("/predict", {"image": at_edge.tolist()}, preprocess="centred")
    assert drawn["input"] == at_edge.tolist() and drawn["preprocess"] == "as_drawn"

    def ink_centre(pixels):
        pixels = np.asarray(pixels, dtype=float)
        return (pixels.sum(axis=0) @ np.arange(28)) / pixels.sum()

    assert ink_centre(drawn["input"]) > 20
    assert abs(ink_centre(centred["input"]) - 13.5) <= 1.0
    assert max(max(row) for row in centred["input"]) > 200  # scaled, not faded


BAD_REQUESTS = [
    # (body, content type, expected status, words in the error)
    (b"", "application/json", 400, "the body is empty"),
    (b"[1, 2]", "application/json", 400, "must be an object"),
    (b"not json", "application/json", 400, "not valid JSON"),
    (b'{"pixels": []}', "application/json", 422, 'no "image" key'),
    (json.dumps({"image": [[0] * 28] * 27}).encode(), "application/json", 422, "got 27 rows"),
    (json.dumps({"image": [[0] * 27] + [[0] * 28] * 27}).encode(), "application/json", 422, "row 0 must hold 28"),
    (json.dumps({"image": [["a"] * 28] * 28}).encode(), "application/json", 422, '"a" is not a number'),
    (json.dumps({"image": [[True] * 28] * 28}).encode(), "application/json", 422, "true is not a number"),
    (b'{"image": [[NaN]]}', "application/json", 422, "NaN is not a pixel value"),
    (json.dumps({"image": [[300] * 28] * 28}).encode(), "application/json", 422, "out of range"),
    (json.dumps({"image": [[-1] * 28] * 28}).encode(), "application/json", 422, "out of range"),
    (b"\x89PNG\r\n\x1a\n not really", "image/png", 400, "not a readable PNG"),
    (b"GIF89a....", "image/png", 400, "not a readable PNG"),
    (b"hello", "text/plain", 415, "send application/json or image/png"),
    (b"\0" * 1_000_001, "image/png", 413, "the limit is 1,000,000"),
]


def test_bad_requests_get_a_4xx_json_error_and_the_server_keeps_serving(server, test_digits):
    image = test_digits[0][0]
    _, before = server.post_json("/predict", {"image": image.tolist()})
    for body, content_type, status, words in BAD_REQUESTS:
        got, answer = server.request("/predict", body, content_type, method="POST")
        assert (got, words in answer.get("error", "")) == (status, True), (body[:40], got, answer)
    status, answer = server.request("/predict?preprocess=zoom", b'{"image": []}', "application/json")
    assert status == 422 and "preprocess must be one of" in answer["error"]
    assert server.request("/nowhere")[0] == 404 and server.request("/predict")[0] == 405
    # Still serving, and the same digit still gets the same answer.
    status, after = server.post_json("/predict", {"image": image.tolist()})
    assert status == 200 and after == before and server.get_json("/health")["status"] == "ok"


def test_bounded_load_check_has_no_errors(server, tmp_path):
    result = run_script(LOAD_CHECK, "--url", server.url, "--requests", "500", "--clients", "8", runs_dir=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    summary = re.search(r"(\d+) requests from 8 clients .*: 0 errors, p50 ([\d.]+) ms, p95 ([\d.]+) ms", result.stdout)
    assert summary and int(summary.group(1)) == 500, result.stdout
    assert float(summary.group(2)) <= float(summary.group(3))
    print(result.stdout)  # p50 and p95, for the record


def test_load_check_refuses_any_address_but_this_machine(tmp_path):
    result = run_script(LOAD_CHECK, "--url", "http://192.0.2.1:8000", runs_dir=tmp_path)
    assert result.returncode == 2 and "only target this machine" in result.stderr


def test_reload_swaps_the_model_without_a_restart(server, lesson_1_run, tmp_path_factory, quick_run):
    other = quick_run(LESSON_1, "--quick", "--seed", "7")
    other_run = only_run(other.runs_dir)
    before = server.get_json("/model")["identity"]
    status, answer = server.post_json("/reload", {"run": str(other_run)})
    assert status == 200, answer
    assert answer["previous"] == before and answer["model"].startswith(f"lesson_1/exercise_a/{other_run.name}#")
    assert server.get_json("/model")["identity"] == answer["model"]
    # A bad target leaves the served model as it was.
    for payload, words in [({"run": str(tmp_path_factory.mktemp("empty"))}, "not a run folder"), (["x"], '{"run"')]:
        status, refused = server.post_json("/reload", payload)
        assert status in (400, 422) and words in refused["error"], refused
    assert server.get_json("/model")["identity"] == answer["model"]
    status, back = server.post_json("/reload", {"run": str(lesson_1_run)})
    assert status == 200 and back["model"] == before


def test_the_page_reads_a_drawn_digit_and_shows_the_edge_lesson(server):
    with headless_chromium() as browser:
        browser.get(server.url + "/")
        centre = draw_on_pad(browser, DIGIT_STROKES["1"])
        save_screenshot(browser, "lesson_4_serve_centre.png")
        edge = draw_on_pad(browser, against_right_edge(DIGIT_STROKES["1"]))
        screenshot = save_screenshot(browser, "lesson_4_serve_edge.png")
        model_line = browser.find_element("id", "model").text
    assert centre["error"] == edge["error"] == ""
    assert (centre["as_drawn"]["label"], centre["centred"]["label"]) == ("1", "1")
    # As drawn, the network gets the ink at the right edge and reads something else...
    assert min(edge["as_drawn"]["ink_columns"]) >= 20
    assert edge["as_drawn"]["label"] != "1"
    # ... centred like MNIST, it gets the middle back and reads the 1 again.
    assert 10 <= np.mean(edge["centred"]["ink_columns"]) <= 17 and edge["centred"]["label"] == "1"
    assert model_line.startswith("Model: lesson_1/exercise_a/") and screenshot.stat().st_size > 10_000


@pytest.mark.parametrize(
    "args, message",
    [
        (["--model", "no/such.keras"], "--model no/such.keras: no such file"),
        (["--run", "no/such/run"], "--run no/such/run: no such folder"),
        (["--port", "http"], "a port is a whole number"),
        (["--model", "a.keras", "--run", "b"], "not allowed with argument"),
        ([], "no finished lesson_1/exercise_a run with a model.keras"),
    ],
)
def test_bad_flags_exit_2_with_one_line(args, message, runs_dir, capsys, monkeypatch):
    assert_refused(SERVE, *args, message=message, runs_dir=runs_dir, capsys=capsys, monkeypatch=monkeypatch)


def test_a_busy_port_or_a_run_without_a_model_exit_2(lesson_1_run, runs_dir, tmp_path, capsys, monkeypatch):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        port = str(taken.getsockname()[1])
        assert_refused(
            SERVE,
            "--run",
            str(lesson_1_run),
            "--port",
            port,
            message=f"port {port} is busy",
            runs_dir=runs_dir,
            capsys=capsys,
            monkeypatch=monkeypatch,
        )
    unfinished = tmp_path / "unfinished"
    unfinished.mkdir()
    (unfinished / "run.json").write_text(json.dumps({"status": "interrupted", "process": {}}))
    assert_refused(
        SERVE,
        "--run",
        str(unfinished),
        message="holds no model.keras (its status is 'interrupted'",
        runs_dir=runs_dir,
        capsys=capsys,
        monkeypatch=monkeypatch,
    )


def test_serving_notebook_executes(lesson_1_run, runs_dir):
    # Lesson 1's real quick run in the notebook's runs root: the page serves its model.keras.
    copied = (runs_dir / "lesson_1" / "exercise_a" / lesson_1_run.name).resolve()
    shutil.copytree(lesson_1_run, copied)
    notebook = execute_notebook("lesson_4/serve/serving.ipynb", runs_dir)
    text = notebook_text_outputs(notebook)
    assert "HTTP 200" in text and "HTTP 422" in text and "label" in text
    # The server answers what Keras's model.predict said in the notebook, digit for digit.
    answers = re.findall(r"HTTP 200: label (\d) \(true \d, model\.predict (\d)\)", text)
    assert len(answers) == 8 and all(served == local for served, local in answers), answers
    assert str(copied / "model.keras") in text
    # The file to serve, its predictions counted against the labels, scores what its run recorded.
    (scored,) = re.findall(r"test accuracy of the file to serve: ([\d.]+) on (\d+) images", text)
    (recorded,) = re.findall(r"test accuracy its run recorded: +([\d.]+)", text)
    assert int(scored[1]) == run_json(lesson_1_run)["dataset"]["sizes"]["test"]
    assert float(scored[0]) == pytest.approx(float(recorded), abs=1e-4)
    assert (REPO / "lesson_4" / "serve" / "page.html").is_file()


@pytest.mark.full
def test_full_exercise_a_edge_digits_are_misread_until_the_retrained_model_is_deployed(
    exercise_a_full_run, exercise_a_retrained_full_run, tmp_path
):
    """The whole loop in a real browser: the full Lesson 1 network reads digits drawn in the middle
    and misreads them at the right edge; the retrained network, deployed with POST /reload and no
    restart, reads the same strokes."""
    assert exercise_a_retrained_full_run.result.returncode == 0, exercise_a_retrained_full_run.result.stderr
    baseline = only_run(exercise_a_full_run.runs_dir)
    retrained = only_run(exercise_a_retrained_full_run.runs_dir)
    digits = sorted(DIGIT_STROKES)
    with DigitServer(["--run", baseline], tmp_path) as server, headless_chromium() as browser:
        browser.get(server.url + "/")
        centre = {digit: draw_on_pad(browser, DIGIT_STROKES[digit])["as_drawn"]["label"] for digit in digits}
        edge_strokes = {digit: against_right_edge(DIGIT_STROKES[digit], at_most=100) for digit in digits}
        before = {digit: draw_on_pad(browser, edge_strokes[digit]) for digit in digits}
        save_screenshot(browser, "lesson_4_edge_before_retraining.png")
        status, deployed = server.post_json("/reload", {"run": str(retrained)})
        assert status == 200, deployed
        browser.refresh()
        after = {digit: draw_on_pad(browser, edge_strokes[digit]) for digit in digits}
        save_screenshot(browser, "lesson_4_edge_after_retraining.png")
        shown_model = browser.find_element("id", "model").text
    assert centre == {digit: digit for digit in digits}
    # The network trained on full MNIST (seed 42) read the 1 (a vertical stroke) and the 2 (slid
    # only 8 of the network's pixels) even at the edge, and misread the 7; the subset's network
    # misread at least two of the three. At least one must be misread before, and none after.
    misread_before = [digit for digit in digits if before[digit]["as_drawn"]["label"] != digit]
    assert misread_before, before
    assert {digit: after[digit]["as_drawn"]["label"] for digit in digits} == {digit: digit for digit in digits}
    assert deployed["model"].startswith(f"lesson_4/retrain/{retrained.name}#") and deployed["model"] in shown_model
