import pytest


@pytest.fixture
def runs_dir(tmp_path):
    """A private runs root per test, so no test ever sees another's runs."""
    root = tmp_path / "runs"
    root.mkdir()
    return root
