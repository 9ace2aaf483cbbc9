from __future__ import annotations

import os
import re
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest

from labtest import execute_notebook, notebook_as_process, only_run, run_script


def share_the_cores_between_workers() -> None:
    """Each xdist worker, and every script it starts, gets its share of the cores for TensorFlow's
    and NumPy's thread pools, unless the caller chose otherwise. Left at their default of one thread
    per core, two workers on two cores run four busy threads: Lesson 1's CNN (300 steps) beside a
    Fashion-MNIST MLP (3 epochs) then took 48 s, against 28-31 s with one thread each, while the CNN
    alone loses only about 10% on one thread."""
    workers = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))
    if workers < 2:
        return
    threads = str(max(1, (os.cpu_count() or 1) // workers))
    for pool in ("TF_NUM_INTRAOP_THREADS", "OPENBLAS_NUM_THREADS"):
        os.environ.setdefault(pool, threads)


share_the_cores_between_workers()

FULL_RUN_NAME = re.compile(r"::test_full_")
# Full-length tests that share one full run go out as one work unit, so that the run trains once:
# Lesson 1's network at full length, which Lesson 4 retrains.
SHARED_FULL_RUNS = {"::test_full_exercise_a_": "full:exercise_a_full_run"}


def pytest_collection_modifyitems(config, items):
    """Full-length runs first. Their names start with test_full_, so that the scheduler below, which sees
    only node ids, can tell them apart; a full test named otherwise is refused here."""
    for item in items:
        if (item.get_closest_marker("full") is not None) != bool(FULL_RUN_NAME.search(item.nodeid)):
            raise pytest.UsageError(
                f"{item.nodeid}: a test is marked full exactly when its name starts with test_full_"
            )
    items.sort(key=lambda item: item.get_closest_marker("full") is None)


@pytest.hookimpl(optionalhook=True)  # an unknown hook when xdist is off (-p no:xdist)
def pytest_xdist_make_scheduler(config, log):
    """Scheduling for two cores, refining `--dist loadfile`: each full-length run is a work unit
    of its own, everything else goes by file (a file's tests share quick runs that should train
    once per worker). With `--no-loadscope-reorder` the units go out in collection order, full
    runs first: left inside their files, a 2-minute run could start last and keep one worker
    busy while the other idles. (xdist's own `loadgroup` cannot do this under pytest 9: the group
    it appends to a node id no longer reaches the scheduler.)"""
    if config.getvalue("dist") != "loadfile":
        return None
    from xdist.scheduler import LoadScopeScheduling

    class FullRunsAlone(LoadScopeScheduling):
        def _split_scope(self, nodeid: str) -> str:
            for marker, unit in SHARED_FULL_RUNS.items():
                if marker in nodeid:
                    return unit
            return nodeid if FULL_RUN_NAME.search(nodeid) else nodeid.split("::")[0]

        def _reschedule(self, node) -> None:
            # xdist tops a worker up while it has up to 2 tests pending, so one worker could queue
            # two full runs while the other idles. Here a worker gets its next unit only when it is
            # on its last test (it needs one test in hand to know when its fixtures may go).
            if node.shutting_down:
                return
            if not self.workqueue:
                node.shutdown()
                return
            if self._pending_of(self.assigned_work[node]) <= 1:
                self._assign_work_unit(node)

    return FullRunsAlone(config, log)


@pytest.fixture
def runs_dir(tmp_path):
    """A private runs root per test, so no test ever sees another's runs."""
    root = tmp_path / "runs"
    root.mkdir()
    return root


@dataclass(frozen=True)
class FinishedRun:
    """One real run of an activity, as a script or as its notebook: what it printed, the runs root
    it wrote into, and for a notebook the executed cells with their outputs."""

    result: subprocess.CompletedProcess
    runs_dir: Path
    notebook: object = None


@pytest.fixture(scope="module")
def no_housing(tmp_path_factory):
    """Environment without California housing: an empty scikit-learn data home and no mirror, so a
    default regression run takes the diabetes substitute. One folder per module, so that a shared
    quick run is keyed by the same environment each time."""
    return {"SCIKIT_LEARN_DATA": str(tmp_path_factory.mktemp("sklearn_home") / "empty"), "LAB_DATA_MIRROR": ""}


@pytest.fixture(scope="session")
def quick_notebook(tmp_path_factory):
    """Execute an activity's notebook in quick mode (LAB_QUICK=1, through a real Jupyter kernel)
    once per test session for each environment, and hand the same finished run to every test that
    asks for it. This is each page's one quick training: the tests of its run folder, of what it
    printed and of its cells' figures all read it, rather than the page training once as a script
    and again as a notebook. The script's command line keeps tests of its own: its flags
    in-process, its other modes (other flags, the offline fallbacks, --resume, the full length)
    as real subprocess runs."""
    finished: dict[tuple, FinishedRun] = {}

    def run(notebook: str, **env: str) -> FinishedRun:
        key = (notebook, tuple(sorted(env.items())))
        if key not in finished:
            root = tmp_path_factory.mktemp(Path(notebook).parent.name + "_notebook") / "runs"
            root.mkdir()
            executed = execute_notebook(notebook, root, **env)
            finished[key] = FinishedRun(notebook_as_process(notebook, executed), root, executed)
        return finished[key]

    return run


@pytest.fixture(scope="session")
def exercise_a_full_run(tmp_path_factory) -> FinishedRun:
    """Lesson 1's network trained at full length, once per worker: Lesson 1 checks its figures,
    Lesson 4 retrains it. Tests that take it are named `test_full_exercise_a_*` (see above)."""
    root = tmp_path_factory.mktemp("exercise_a_full") / "runs"
    root.mkdir()
    # 2,000 steps take about 4 minutes alone on full MNIST, and up to twice that beside another full run.
    return FinishedRun(run_script("lesson_1/exercise_a/train_mnist.py", runs_dir=root, timeout=900), root)


@pytest.fixture(scope="session")
def exercise_a_quick_run(quick_notebook) -> Path:
    """The folder of Lesson 1 Exercise A's quick run (its notebook's, which Lesson 1's tests read
    too): the model Lesson 4 saves, serves and retrains."""
    return only_run(quick_notebook("lesson_1/exercise_a/train_mnist.ipynb").runs_dir)


@pytest.fixture(scope="session")
def exercise_a_retrained_full_run(exercise_a_full_run, tmp_path_factory) -> FinishedRun:
    """Lesson 4's retraining of that full run with shift augmentation, at full length, once."""
    root = tmp_path_factory.mktemp("retrain_full") / "runs"
    root.mkdir()
    baseline = only_run(exercise_a_full_run.runs_dir)
    result = run_script("lesson_4/retrain/train_mnist.py", "--baseline", str(baseline), runs_dir=root, timeout=600)
    return FinishedRun(result, root)


@pytest.fixture(scope="session")
def quick_run(tmp_path_factory):
    """Run an activity script once per test session for each distinct command line, in a runs
    root of its own, and hand the same finished run to every test that asks for it. Each quick
    activity thus trains once and is asserted many ways."""
    finished: dict[tuple, FinishedRun] = {}

    def run(script: str, *args: str, **env: str) -> FinishedRun:
        key = (script, args, tuple(sorted(env.items())))
        if key not in finished:
            root = tmp_path_factory.mktemp(Path(script).parent.name) / "runs"
            root.mkdir()
            finished[key] = FinishedRun(run_script(script, *args, runs_dir=root, **env), root)
        return finished[key]

    return run
