"""The training plan: how many epochs, how many steps in each, whether the data repeats, and
which slice of the data a run sees. One function, `training_plan`, derives it from the parsed
flags, and every trainer uses it: Keras fits, the NumPy loop and the sweeps.

Standard library only, so that the command line can check a plan before TensorFlow loads.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

QUICK_ENV = "LAB_QUICK"
QUICK_MAX_EPOCHS = 2
QUICK_MAX_STEPS_PER_EPOCH = 25
# What a quick run sees of each split: enough for a curve that visibly rises, small enough for
# seconds. A dataset smaller than this is used whole.
QUICK_SLICE = {"train": 2000, "validation": 500, "test": 1000}


def quick_requested(flag: bool = False) -> bool:
    return flag or os.environ.get(QUICK_ENV, "").strip().lower() in ("1", "true", "yes")


@dataclass(frozen=True)
class TrainingPlan:
    epochs: int
    batch_size: int
    # Steps between two evaluations when the flags fix them; None means "one exact pass over the
    # training data", which only the data's size can turn into a number (`steps_per_epoch_for`).
    steps_per_epoch: int | None
    # A fixed step count needs an endless, repeated stream of batches; exact passes do not.
    repeat: bool
    quick: bool
    # Largest number of examples per split, or None for all of them.
    slice: dict[str, int] | None

    def steps_per_epoch_for(self, n_train: int) -> int:
        if self.steps_per_epoch is not None:
            return self.steps_per_epoch
        full_pass = -(-n_train // self.batch_size)
        return min(full_pass, QUICK_MAX_STEPS_PER_EPOCH) if self.quick else full_pass


def training_plan(args) -> TrainingPlan:
    """Turn parsed flags (epochs, batch_size, steps_per_epoch, quick) into the run's plan.

    Quick mode caps the same plan instead of replacing it, so a quick run walks the very code
    path of a full one, on a small slice, for at most 2 epochs of at most 25 steps.
    """
    quick = bool(getattr(args, "quick", False))
    epochs, steps = args.epochs, getattr(args, "steps_per_epoch", None)
    if quick:
        epochs = min(epochs, QUICK_MAX_EPOCHS)
        if steps is not None:
            steps = min(steps, QUICK_MAX_STEPS_PER_EPOCH)
    return TrainingPlan(
        epochs=epochs,
        batch_size=args.batch_size,
        steps_per_epoch=steps,
        repeat=steps is not None or quick,
        quick=quick,
        slice=dict(QUICK_SLICE) if quick else None,
    )
