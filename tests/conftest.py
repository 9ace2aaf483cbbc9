from __future__ import annotations

import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest

from labtest import run_script


@pytest.fixture
def runs_dir(tmp_path):
    """A private runs root per test, so no test ever sees another's runs."""
    root = tmp_path / "runs"
    root.mkdir()
    return root


@dataclass(frozen=True)
class FinishedRun:
    """One real run of an activity script: what it printed, and the runs root it wrote into."""

    result: subprocess.CompletedProcess
    runs_dir: Path


@pytest.fixture(scope="module")
def no_housing(tmp_path_factory):
    """Environment without California housing: an empty scikit-learn data home and no mirror, so a
    default regression run takes the diabetes substitute. One folder per module, so that a shared
    quick run is keyed by the same environment each time."""
    return {"SCIKIT_LEARN_DATA": str(tmp_path_factory.mktemp("sklearn_home") / "empty"), "LAB_DATA_MIRROR": ""}


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
