"""Figures and model diagrams, the same cells in a notebook and in a script.

In a notebook, `plt.show()` draws a figure under its cell. A script has no cell to draw under, and
with a desktop backend `plt.show()` would stop the run until its window is closed. So in a script
the lab switches matplotlib to its file backend (unless MPLBACKEND says otherwise) and each
`plt.show()` saves the open figures into the newest open run's `figures/` folder instead, naming
each file. A figure shown before the run's folder exists (the data, drawn before training) stays
open and is saved, first, by the next `plt.show()`.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import matplotlib

from labkit import in_notebook
from labkit.lifecycle import open_runs

GRAPHVIZ_HINT = (
    "model diagram skipped: keras.utils.plot_model needs Graphviz's `dot` program "
    "(Debian/Ubuntu: sudo apt-get install graphviz; macOS: brew install graphviz; "
    "Windows: winget install graphviz) and the pydot package"
)


def save_figures_on_show() -> None:
    """In a script: plt.show() writes every open figure into the newest open run, then closes it."""
    if in_notebook():
        return
    if "MPLBACKEND" not in os.environ:
        matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    if getattr(plt.show, "saves_to_run", False):
        return

    def show(*args, **kwargs):
        runs = open_runs()
        if not runs:  # a figure drawn before the run's folder exists waits, open, for the next show
            return
        for number in plt.get_fignums():
            figure = plt.figure(number)
            folder = runs[-1].dir / "figures"
            folder.mkdir(exist_ok=True)
            path = folder / f"figure_{len(list(folder.glob('figure_*.png'))) + 1}.png"
            figure.savefig(path, dpi=100, bbox_inches="tight")
            print(f"Figure saved: {path}", flush=True)
            plt.close(figure)

    show.saves_to_run = True
    plt.show = show


def graphviz_available() -> bool:
    try:
        import pydot  # noqa: F401
    except ImportError:
        return False
    return shutil.which("dot") is not None


def plot_model(model, to_file: str | os.PathLike, **options):
    """keras.utils.plot_model with the layer shapes, saved to `to_file` (and shown in a notebook).
    Without Graphviz, one line says how to get it, instead of a traceback."""
    import keras

    if not graphviz_available():
        print(GRAPHVIZ_HINT, flush=True)
        return None
    options.setdefault("show_shapes", True)
    options.setdefault("show_layer_names", True)
    image = keras.utils.plot_model(model, to_file=str(to_file), **options)
    if not in_notebook():
        print(f"Model diagram saved: {Path(to_file)}", flush=True)
    return image
