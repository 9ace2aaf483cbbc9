"""Slimming a saved `model.keras` that still carries its optimizer's state (`lab.py runs --clean`).

Runs saved before the lab left the optimizer out of `model.keras` (labkit.saved_models) carry
Adam's two moment slots per weight: about 51 MB of Lesson 1's 77 MB file. A `.keras` file is a zip
whose `model.weights.h5` keeps the optimizer under its own top-level group, so slimming copies
every other member and every other group into a new zip, renames it over the old one and updates
the card's fingerprint. The result is what the lab writes today: `load_model` compiles it with a
fresh optimizer, and it predicts exactly as before.

h5py reads and writes the weights; TensorFlow is never imported, so `lab.py runs` stays instant.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import zipfile
from pathlib import Path

from labkit import LabError
from labkit.saved_models import MODEL_FILE, card_path, fingerprint, read_card, size_on_disk, stored_bytes, write_card

WEIGHTS_MEMBER = "model.weights.h5"  # where Keras 3 keeps the variables inside a .keras zip
OPTIMIZER_GROUP = "optimizer"


def optimizer_state_bytes(model_path: Path) -> int:
    """Bytes of optimizer variables inside a `.keras` file; 0 for a slim or unreadable one."""
    try:
        return stored_bytes(model_path).get(OPTIMIZER_GROUP, 0)
    except (OSError, KeyError, ValueError, zipfile.BadZipFile):  # torn or foreign: never touched
        return 0


def slimmable(run_dirs: list[Path]) -> list[tuple[Path, int]]:
    """The `model.keras` files of these runs that carry optimizer state, with its size in bytes."""
    found = []
    for run_dir in run_dirs:
        model_path = run_dir / MODEL_FILE
        if model_path.is_file() and not model_path.is_symlink() and (extra := optimizer_state_bytes(model_path)):
            found.append((model_path, extra))
    return found


def slim_keras_file(model_path: Path) -> int:
    """Rewrite `model_path` without its optimizer's state; returns the bytes freed. The new file is
    written beside and renamed over, so a kill leaves the old file or the new one, both whole."""
    import h5py

    model_path = Path(model_path)
    before = size_on_disk(model_path)
    partial = model_path.with_name("partial-" + model_path.name)
    with tempfile.TemporaryDirectory(dir=model_path.parent, prefix=".slim-") as scratch:
        fat, slim = Path(scratch) / "fat.h5", Path(scratch) / "slim.h5"
        try:
            with zipfile.ZipFile(model_path) as source:
                with source.open(WEIGHTS_MEMBER) as member, fat.open("wb") as copy:
                    shutil.copyfileobj(member, copy)
                with h5py.File(fat, "r") as old, h5py.File(slim, "w") as new:
                    new.attrs.update(old.attrs)
                    for name in old:
                        if name != OPTIMIZER_GROUP:
                            old.copy(old[name], new, name)
                with zipfile.ZipFile(partial, "w") as target:
                    for info in source.infolist():
                        if info.filename == WEIGHTS_MEMBER:
                            target.write(slim, WEIGHTS_MEMBER, compress_type=info.compress_type)
                        else:
                            target.writestr(info, source.read(info))
            os.replace(partial, model_path)
        except BaseException:
            partial.unlink(missing_ok=True)
            raise
    if card_path(model_path).is_file():
        try:
            card = read_card(model_path)
        except LabError:  # an unreadable card stays as it is; the model is slim either way
            return before - size_on_disk(model_path)
        card.update(sha256=fingerprint(model_path), size_bytes=size_on_disk(model_path))
        card["identity"] = card.get("identity", "").split("#")[0] + "#" + card["sha256"][:12]
        write_card(model_path, card)
    return before - size_on_disk(model_path)
