"""`lab.py runs --clean`'s second question: slim the kept runs' model files that still carry their
optimizer's state (labkit.slim_models does the slimming)."""

from __future__ import annotations

import sys
import zipfile
from pathlib import Path

from labkit.instructor.export import UNREADABLE, human_size
from labkit.slim_models import slim_keras_file, slimmable


def slim_kept(root: Path, rows: list[dict], chosen: list[dict], named: list[str], yes: bool, ask) -> int:
    """Unless runs were named, offer to slim the model files of the runs that stay."""
    if named:
        return 0
    gone = {row["path"] for row in chosen}
    kept = [root / r["path"] for r in rows if r["path"] not in gone and r["status"] not in ("running", UNREADABLE)]
    return offer_slimming(kept, root, yes=yes, ask=ask)


def offer_slimming(run_dirs: list[Path], root: Path, *, yes: bool, ask) -> int:
    """`lab.py runs --clean`'s second question: slim the kept runs' model files that still carry
    optimizer state. `ask(question)` answers it unless `yes`. Returns 0, or 1 when declined or
    when a file could not be rewritten (a full disk, say: the old file is then untouched)."""
    found = slimmable(run_dirs)
    if not found:
        return 0
    total = sum(extra for _, extra in found)
    print(f"{len(found)} kept run(s) save their optimizer's state in model.keras, which predicting does not need:")
    for model_path, extra in found:
        print(f"  {model_path.parent.relative_to(root)}  {human_size(extra)} of optimizer state")
    if not yes and not ask(f"Slim them to weights and architecture ({human_size(total)})? [y/N]"):
        print("Model files left as they are.")
        return 1
    freed, failed = 0, 0
    for model_path, _ in found:
        try:
            freed += slim_keras_file(model_path)
        except (OSError, KeyError, ValueError, zipfile.BadZipFile) as error:
            print(f"  could not slim {model_path.parent.relative_to(root)}: {error}", file=sys.stderr)
            failed += 1
    print(f"Slimmed {len(found) - failed} model file(s), {human_size(freed)} freed.")
    return 1 if failed else 0
