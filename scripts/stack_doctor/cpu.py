"""The CPU row: does this processor have bfloat16 units, which `--precision mixed_bfloat16` needs
to run faster than float32?

Keras's `mixed_bfloat16` policy computes in bfloat16 and keeps the weights in float32. On a CPU
with bfloat16 instructions (Intel's AVX512_BF16 and AMX, recent AMD's AVX512_BF16, Arm's BF16)
oneDNN's matmuls and convolutions then run at up to twice the float32 rate or more; without them
every bfloat16 op is converted back and forth, and training gets slower. The answer comes from the
flags the operating system reports, so it costs nothing and needs no TensorFlow.
"""

from __future__ import annotations

from .core import OK, Check

# The flag names Linux's /proc/cpuinfo uses (x86 `flags`, Arm `Features`), and what a Mac's sysctl
# says is mapped to the Arm name. What each means, in the words a student can look up.
BFLOAT16_FLAGS = {
    "avx512_bf16": "AVX512_BF16",
    "amx_bf16": "AMX-BF16",
    "bf16": "Arm BF16",
}
REQUIRED = "optional: only --precision mixed_bfloat16 uses them"


def check_bfloat16(flags: set[str] | None) -> Check:
    """One row, always OK: float32, every activity's default, runs on any CPU. What it found says
    whether `--precision mixed_bfloat16` is worth a try here."""
    if flags is None:
        found = "cannot tell on this system: time a quick run with and without --precision mixed_bfloat16"
    elif units := [name for flag, name in BFLOAT16_FLAGS.items() if flag in flags]:
        found = "bfloat16 units: " + ", ".join(units) + " (--precision mixed_bfloat16 may train faster)"
    else:
        widest = next((name for name in ("avx512f", "avx2", "avx", "asimd") if name in flags), None)
        found = (
            "no bfloat16 units"
            + (f" (widest vector unit: {widest.upper()})" if widest else "")
            + ": keep float32; mixed_bfloat16 would be emulated here, and slower"
        )
    return Check("cpu.bfloat16", OK, found, REQUIRED)
