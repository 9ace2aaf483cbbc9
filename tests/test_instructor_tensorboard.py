"""`python scripts/lab.py tensorboard`: refusals, ports, stale instances, Ctrl-C, and the demo runs
as a person sees them in headless Chromium."""

from __future__ import annotations

import json
import socket
import subprocess
import sys

import pytest

from labtest import REPO, lab_env
from tbtest import LabTensorBoard, chart_groups, hparams_cells, links_printed, open_chart_group, run_list, wait_for
from webtest import headless_chromium, require_browser, save_screenshot

pytestmark = pytest.mark.slow

DEMO_RUNS = REPO / "demo_runs"
LAB = REPO / "scripts" / "lab.py"


def lab_tensorboard(*args, tmp_path, **env):
    return subprocess.run(
        [sys.executable, str(LAB), "tensorboard", *map(str, args)],
        cwd=REPO,
        env=lab_env(tmp_path / "runs", TMPDIR=str(tmp_path), **env),
        capture_output=True,
        text=True,
        timeout=120,
    )


def info_files(tmp_path) -> list:
    return sorted((tmp_path / ".tensorboard-info").glob("pid-*.info"))


def listening_socket() -> socket.socket:
    holder = socket.socket()
    holder.bind(("127.0.0.1", 0))
    holder.listen()
    return holder


def demo(lesson: str) -> dict:
    return json.loads((DEMO_RUNS / lesson / "demo.json").read_text())


HINT = "or show the demo runs: python scripts/lab.py tensorboard demo_runs"


@pytest.mark.parametrize(
    "make_logdir, says",
    [
        (
            lambda tmp: tmp / "no-such-folder",
            f"does not exist; train a run first (python lesson_1/exercise_a/train_mnist.py --quick), {HINT}",
        ),
        (
            lambda tmp: (tmp / "empty").mkdir() or tmp / "empty",
            'holds no TensorBoard event files, so TensorBoard would show "No dashboards are active"; train a run',
        ),
        (lambda tmp: (tmp / "notes.txt").write_text("x") and tmp / "notes.txt", "is a file, not a folder of runs"),
    ],
    ids=["missing", "no-event-files", "a-file"],
)
def test_a_logdir_tensorboard_could_not_show_is_refused_before_anything_starts(tmp_path, make_logdir, says):
    logdir = make_logdir(tmp_path)
    result = lab_tensorboard(logdir, tmp_path=tmp_path)
    assert result.returncode == 2, result.stdout + result.stderr
    lines = result.stderr.strip().splitlines()
    assert lines == [lines[0]] and lines[0].startswith(f"lab.py tensorboard: error: {logdir.resolve()} {says}"), lines
    assert result.stdout == "" and info_files(tmp_path) == []


def test_a_relative_logdir_is_made_absolute_and_a_named_busy_port_is_refused(tmp_path):
    holder = listening_socket()
    port = holder.getsockname()[1]
    try:
        result = lab_tensorboard("demo_runs/lesson_2", "--port", port, tmp_path=tmp_path)
    finally:
        holder.close()
    assert result.returncode == 2
    assert result.stderr.strip() == (
        f"lab.py tensorboard: error: port {port} is taken by a program other than TensorBoard; "
        "or leave out --port to use the next free one"
    )
    assert info_files(tmp_path) == []


def test_busy_6006_moves_to_a_free_port_and_a_stale_instance_is_named_with_its_pid(tmp_path):
    """The first TensorBoard takes 6006 (or, if something already holds it, the next free port);
    the second sees it: its pid, its logdir, and how to stop it."""
    require_browser()
    logdir = DEMO_RUNS / "lesson_2"
    runs = tmp_path / "runs"
    with LabTensorBoard(logdir, runs_dir=runs, info_dir_root=tmp_path) as first:
        assert len(info_files(tmp_path)) == 1
        with LabTensorBoard(logdir, runs_dir=runs, info_dir_root=tmp_path) as second:
            said = second.output()
            assert second.port != first.port
            if first.port == 6006:
                assert (
                    f"note: port 6006 is taken by TensorBoard pid {first.process.pid}, started" in said
                    and f"on {logdir}; stop it with: kill {first.process.pid}; using port {second.port} instead" in said
                ), said
            assert (
                f"note: an older TensorBoard (pid {first.process.pid}) still serves this same logdir at "
                f"http://localhost:{first.port}/ and may show stale data; stop it with: kill {first.process.pid}"
            ) in said
            assert f"ssh -N -L {second.port}:localhost:{second.port} " in said
            assert len(info_files(tmp_path)) == 2
        assert second.exit_code == 0 and second.output().rstrip().endswith("TensorBoard stopped.")
    assert first.exit_code == 0
    assert info_files(tmp_path) == [], "Ctrl-C must leave no stale registration behind"
    for port in (first.port, second.port):
        with socket.socket() as probe:
            assert probe.connect_ex(("127.0.0.1", port)) != 0, f"port {port} still answers after Ctrl-C"


def test_the_demo_runs_render_in_a_real_browser(tmp_path):
    """Every lesson's demo runs, through `lab.py tensorboard demo_runs` and the links it prints:
    the run list, the chart groups, the HParams rows. Screenshots go to test-artifacts/."""
    require_browser()
    lessons = {lesson: demo(lesson) for lesson in ("lesson_1", "lesson_2", "lesson_3", "lesson_4")}
    with LabTensorBoard(DEMO_RUNS, "--port", 0, runs_dir=tmp_path / "runs", info_dir_root=tmp_path) as board:
        port = board.port
        links = links_printed(board.output())
        assert links["Time series, smoothing 0 (raw points)"] == f"http://localhost:{port}/?smoothing=0#timeseries"
        assert links["HParams: one row per run"] == f"http://localhost:{port}/#hparams"
        with headless_chromium(1400, 1000) as driver:
            expected_groups = {
                "lesson_1": {"accuracy_by_step", "epoch_accuracy", "epoch_loss"},
                "lesson_2": {"epoch_accuracy", "epoch_loss"},
                "lesson_3": {"epoch_loss", "sin", "confusion_matrix"},
                "lesson_4": {"edge_shift_accuracy"},
            }
            key_chart = {
                "lesson_1": "accuracy_by_step",
                "lesson_2": "epoch_accuracy",
                "lesson_3": "epoch_loss",
                "lesson_4": "edge_shift_accuracy",
            }
            for lesson, summary in lessons.items():
                driver.get(links[f'Only the runs matching "{lesson}"'])
                shown_runs = [f"{lesson}/{run}" for run in summary["runs"] if "keras_tuner" not in run]
                wait_for(
                    driver, lambda d, names=shown_runs: all(n in run_list(d) for n in names), what=f"{lesson}'s runs"
                )
                listed = run_list(driver)
                assert all(lesson in line for line in listed.splitlines()[1:]), (
                    f"the filter let other runs in: {listed}"
                )
                wait_for(
                    driver,
                    lambda d, want=expected_groups[lesson]: want <= set(chart_groups(d)),
                    what=f"{lesson}'s charts",
                )
                open_chart_group(driver, key_chart[lesson])
                save_screenshot(driver, f"tensorboard_demo_{lesson}.png")

            driver.get(links["HParams: one row per run"])
            trial_ids = [run for run in lessons["lesson_3"]["runs"] if "keras_tuner" in run]
            lesson_1_runs = [run.split("/")[-1] for run in lessons["lesson_1"]["runs"]]
            cells = wait_for(
                driver,
                lambda d: (cells := hparams_cells(d)) and all(name in cells for name in lesson_1_runs) and cells,
                what="the HParams table",
            )
            assert {"learning_rate", "batch_size"} <= set(cells)
            tuner_rows = [cell for cell in cells if "/" in cell and cell.split("/")[-1].isdigit()]
            assert len(tuner_rows) == 10 and all(row.split("/")[0] in " ".join(trial_ids) for row in tuner_rows), cells
            save_screenshot(driver, "tensorboard_demo_hparams.png")
    assert board.exit_code == 0


def test_bind_all_listens_beyond_localhost_only_when_asked_and_warns(tmp_path):
    import psutil

    def listening_addresses(process) -> set[str]:
        # lab.py execs the module, so the pid that Popen returned is TensorBoard's own process.
        return {c.laddr.ip for c in psutil.Process(process.pid).net_connections() if c.status == psutil.CONN_LISTEN}

    logdir = DEMO_RUNS / "lesson_2"
    with LabTensorBoard(logdir, runs_dir=tmp_path / "runs", info_dir_root=tmp_path) as local:
        assert listening_addresses(local.process) <= {"127.0.0.1", "::1"}
        assert "warning: --bind-all" not in local.output()
    with LabTensorBoard(logdir, "--bind-all", runs_dir=tmp_path / "runs", info_dir_root=tmp_path) as shared:
        assert listening_addresses(shared.process) & {"0.0.0.0", "::"}
        assert (
            f"warning: --bind-all serves these runs to anyone who can reach port {shared.port} of this machine, "
            "with no password; an ssh tunnel is safer"
        ) in shared.output()
    assert local.exit_code == 0 and shared.exit_code == 0
