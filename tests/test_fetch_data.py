"""scripts/fetch_data.py, run for real: fill, check, export to a mirror, import back."""

import shutil

import pytest
from test_data_sources import IDX_NAMES, require_shared_mnist, require_system_fashion, write_idx_folder

from labtest import run_script

FETCH = "scripts/fetch_data.py"
VERIFIED_FULL_SET = "60,000 train + 10,000 test images, verified by SHA-256"


@pytest.fixture
def homes(tmp_path):
    return {
        "teacher": tmp_path / "teacher_keras",
        "student": tmp_path / "student_keras",
        "mirror": tmp_path / "mirror",
        "system": tmp_path / "no_system_data",
    }


def fetch(*args, home, tmp_path, **env):
    env.setdefault("LAB_DATA_MIRROR", "")  # only the mirror a test names: not the one CI sets for every run
    return run_script(
        FETCH,
        *args,
        runs_dir=tmp_path / "runs",
        KERAS_HOME=str(home),
        LAB_SYSTEM_DATA_DIR=str(tmp_path / "no_system_data"),
        **env,
    )


def test_check_reports_missing_data_and_writes_nothing(homes, tmp_path):
    result = fetch("--check", "--dataset", "mnist", home=homes["student"], tmp_path=tmp_path)
    assert result.returncode == 1
    assert "MISSING mnist: dataset 'mnist' is not available offline" in result.stdout
    assert not homes["student"].exists()


def test_export_then_import_moves_verified_mnist_idx_files(homes, tmp_path):
    """Real full MNIST (its idx files are verified by content, so no stand-in would pass)."""
    shutil.copytree(require_shared_mnist() / "mnist", homes["teacher"] / "datasets" / "mnist")
    exported = fetch("--export", str(homes["mirror"]), "--dataset", "mnist", home=homes["teacher"], tmp_path=tmp_path)
    assert exported.returncode == 0, exported.stdout + exported.stderr
    assert "OK      mnist: copied 4 file(s)" in exported.stdout
    assert sorted(p.name for p in (homes["mirror"] / "mnist").iterdir()) == sorted(IDX_NAMES.values())

    imported = fetch("--import", str(homes["mirror"]), "--dataset", "mnist", home=homes["student"], tmp_path=tmp_path)
    assert imported.returncode == 0, imported.stdout
    check = fetch("--check", "--dataset", "mnist", home=homes["student"], tmp_path=tmp_path)
    assert check.returncode == 0, check.stdout
    assert f"OK      mnist: {VERIFIED_FULL_SET}, from keras-cache" in check.stdout

    again = fetch("--import", str(homes["mirror"]), "--dataset", "mnist", home=homes["student"], tmp_path=tmp_path)
    assert "already in" in again.stdout  # nothing is overwritten


def test_check_verifies_full_mnist_in_the_shared_mirror_and_writes_nothing(homes, tmp_path):
    """What a teacher who set LAB_DATA_MIRROR sees: full MNIST, checked file by file, found there."""
    mirror = require_shared_mnist()
    check = fetch(
        "--check", "--dataset", "mnist", home=homes["student"], tmp_path=tmp_path, LAB_DATA_MIRROR=str(mirror)
    )
    assert check.returncode == 0, check.stdout + check.stderr
    expected = f"OK      mnist: {VERIFIED_FULL_SET}, from mirror ($LAB_DATA_MIRROR): {mirror}"
    assert expected in check.stdout.splitlines()
    assert not homes["student"].exists(), "a check copies nothing into the cache"


def test_corrupt_mirror_is_skipped_with_its_reason(homes, tmp_path):
    folder = homes["mirror"] / "mnist"
    write_idx_folder(folder)
    (folder / IDX_NAMES["x_train"]).write_bytes(b"\x1f\x8b truncated")
    result = fetch("--import", str(homes["mirror"]), "--dataset", "mnist", home=homes["student"], tmp_path=tmp_path)
    assert result.returncode == 1
    assert "SKIP    mnist:" in result.stdout and "truncated or not gzip" in result.stdout
    assert not (homes["student"] / "datasets" / "mnist").exists()


def test_import_from_a_missing_folder_is_a_usage_error(homes, tmp_path):
    result = fetch("--import", str(tmp_path / "nowhere"), home=homes["student"], tmp_path=tmp_path)
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        f"fetch_data.py: error: --import folder {tmp_path / 'nowhere'} does not exist"
    ]


def test_real_fashion_mnist_from_the_system_package_fills_the_cache(homes, tmp_path):
    require_system_fashion()
    result = run_script(
        FETCH, "--dataset", "fashion_mnist", runs_dir=tmp_path / "runs", KERAS_HOME=str(homes["student"])
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert (
        "OK      fashion_mnist: 60,000 train + 10,000 test images, verified by SHA-256, from system package"
        in result.stdout
    )
    cached = homes["student"] / "datasets" / "fashion-mnist"
    assert sorted(p.name for p in cached.iterdir()) == sorted(IDX_NAMES.values())


# ---------------------------------------------------------------------------------------------
# California housing (Lesson 3's regression data), in scikit-learn's data home. The real file
# cannot be had offline, so these check everything but the happy path: in-process, no download.


@pytest.fixture
def fetch_main(tmp_path, monkeypatch):
    """scripts/fetch_data.py's main(), with an empty data home, no mirror and no network."""
    import importlib.util

    from labtest import REPO

    spec = importlib.util.spec_from_file_location("fetch_data", REPO / FETCH)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    monkeypatch.setenv("SCIKIT_LEARN_DATA", str(tmp_path / "sklearn_home"))
    monkeypatch.delenv("LAB_DATA_MIRROR", raising=False)
    monkeypatch.setenv("LAB_OFFLINE", "1")
    return module.main


HOUSING_MISSING = (
    "MISSING california_housing: California housing is not on this machine; run `python scripts/fetch_data.py` "
    "on a machine with internet (it needs scikit-learn's cal_housing_py3.pkz), or point LAB_DATA_MIRROR at a "
    "classroom mirror folder that holds it"
)


def test_check_reports_missing_housing_with_its_hint_and_writes_nothing(fetch_main, tmp_path, capsys):
    assert fetch_main(["--check", "--dataset", "california_housing"]) == 1
    out = capsys.readouterr().out.splitlines()
    assert out == [HOUSING_MISSING, f"scikit-learn data home: {tmp_path / 'sklearn_home'}"]
    assert not (tmp_path / "sklearn_home").exists()


def test_offline_fetch_of_housing_tries_no_download(fetch_main, tmp_path, capsys, monkeypatch):
    from labkit import tabular

    def no_network(*args, **kwargs):
        raise AssertionError("LAB_OFFLINE=1 must not try a download")

    monkeypatch.setattr(tabular, "_download_housing", no_network)
    assert fetch_main(["--dataset", "california_housing"]) == 1
    out = capsys.readouterr().out.splitlines()
    assert out[:2] == [HOUSING_MISSING, "        LAB_OFFLINE=1: no download tried"]
    assert not (tmp_path / "sklearn_home").exists()


def test_corrupt_housing_file_in_a_mirror_is_skipped_on_import(fetch_main, tmp_path, capsys):
    mirror = tmp_path / "mirror"
    mirror.mkdir()
    (mirror / "cal_housing_py3.pkz").write_bytes(b"not a joblib file")
    assert fetch_main(["--import", str(mirror), "--dataset", "california_housing"]) == 1
    out = capsys.readouterr().out.splitlines()
    assert len(out) == 1 and out[0].startswith(f"SKIP    california_housing: {mirror / 'cal_housing_py3.pkz'}: ")
    assert not (tmp_path / "sklearn_home").exists()


def test_export_without_housing_says_where_it_looked(fetch_main, tmp_path, capsys):
    assert fetch_main(["--export", str(tmp_path / "mirror"), "--dataset", "california_housing"]) == 1
    out = capsys.readouterr().out.splitlines()
    assert out[0] == (
        f"MISSING california_housing: not in scikit-learn's data home at {tmp_path / 'sklearn_home'}; "
        "run this script without --export first"
    )
    assert not (tmp_path / "mirror").exists()
