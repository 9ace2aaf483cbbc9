"""Section ops of scripts/bench.py: one training step of each reference model, split by op.

TensorFlow's profiler traces a few steps of `model.fit`; the trace's host plane holds one event
per op kernel that ran, named `op_name:OpType`. Summing their durations by type says where a step
goes: the matmuls and convolutions that the roofline counts, or everything around them."""

from __future__ import annotations

import collections
import tempfile
from pathlib import Path

from bench_common import REFERENCE_MODELS, Section, fit_seconds, image_data, training_pipeline

TOP = 8  # op types shown per model; the rest are summed in one row
POLICIES = (None, "mixed_bfloat16")
# The kernels the roofline's FLOPs count: the rest is what keeps a model below it.
COUNTED = {"MatMul", "_MklMatMul", "_MklNativeMatMul", "BatchMatMulV2", "Conv2D", "_MklConv2D",
           "_MklNativeConv2D", "_MklNativeConv2DWithBias", "Conv2DBackpropInput", "Conv2DBackpropFilter",
           "_MklNativeConv2DBackpropInput", "_MklNativeConv2DBackpropFilter",
           "_MklNativeConv2DBackpropFilterWithBias", "_FusedMatMul", "_MklFusedMatMul",
           "_MklNativeFusedMatMul", "_FusedConv2D", "_MklNativeFusedConv2D"}  # fmt: skip


def op_type(event_name: str) -> str | None:
    """`sequential/dense/MatMul:MatMul` -> `MatMul`; None for an event that is not an op kernel."""
    if event_name.count(":") != 1:  # an op's name holds no colon; `ExecutorState::Process` is no op
        return None
    name, kind = event_name.split(":")
    if not name or not kind or "/" in kind or " " in kind or not (kind[0].isupper() or kind[0] == "_"):
        return None
    return kind


def seconds_by_op(trace_dir: Path) -> collections.Counter:
    """Seconds spent in each op type across the host threads of the newest trace in `trace_dir`.
    Events nested in an op's event (a kernel's own steps) are not counted twice."""
    from tensorflow.tsl.profiler.protobuf import xplane_pb2

    newest = max(trace_dir.rglob("*.xplane.pb"), key=lambda path: path.stat().st_mtime)
    space = xplane_pb2.XSpace()
    space.ParseFromString(newest.read_bytes())
    spent: collections.Counter = collections.Counter()
    for plane in space.planes:
        if not plane.name.startswith("/host:"):
            continue
        for line in plane.lines:
            covered_until = -1
            for event in sorted(line.events, key=lambda e: e.offset_ps):
                kind = op_type(plane.event_metadata[event.metadata_id].name)
                if kind is None or event.offset_ps < covered_until:
                    continue
                covered_until = event.offset_ps + event.duration_ps
                spent[kind] += event.duration_ps / 1e12
    return spent


def profile_steps(model, pipeline, steps: int) -> tuple[collections.Counter, float]:
    """The ops of `steps` traced training steps, and the wall seconds they took."""
    import tensorflow as tf

    with tempfile.TemporaryDirectory(prefix="bench-ops-") as folder:
        tf.profiler.experimental.start(folder)
        try:
            wall = fit_seconds(model, pipeline, steps)
        finally:
            tf.profiler.experimental.stop()
        return seconds_by_op(Path(folder)), wall


def ops(quick: bool) -> Section:
    section = Section("ops", "One training step, split by op (TensorFlow's profiler)")
    section.headers = ["model", "op type", "ms per step", "share of op time"]
    section.method = "one traced run of model.fit per model and precision, after a warm-up"
    data = image_data(quick)
    steps = {"Lesson 1 CNN": 5 if quick else 20, "Lesson 2 MLP": 10 if quick else 100}
    for (name, factory), policy in [(item, policy) for policy in POLICIES for item in REFERENCE_MODELS.items()]:
        model, batch_size, prepare = factory(policy)
        pipeline = training_pipeline(prepare(data.x_train), data.y_train, batch_size, cache=True)
        fit_seconds(model, pipeline, 3)  # traces the training step; not profiled
        spent, wall = profile_steps(model, pipeline, steps[name])
        label = f"{name}, {policy}" if policy else name
        total = sum(spent.values())
        per_step = {kind: seconds * 1e3 / steps[name] for kind, seconds in spent.items()}
        shown = spent.most_common(TOP)
        for kind, seconds in shown:
            section.rows.append([label, kind, f"{per_step[kind]:.2f}", f"{seconds / total:.0%}"])
        rest = total - sum(seconds for _, seconds in shown)
        if rest > 0:
            section.rows.append([label, f"the other {len(spent) - len(shown)} types", f"{rest * 1e3 / steps[name]:.2f}",
                                 f"{rest / total:.0%}"])  # fmt: skip
        counted = sum(seconds for kind, seconds in spent.items() if kind in COUNTED)
        section.rows.append([label, "wall time of a step", f"{wall * 1e3 / steps[name]:.2f}", "-"])
        key = label.replace(" ", "_").replace(",", "")
        section.ratio(f"ops.{key}.counted_share", counted / total if total else 0.0,
                      "time in the matmul and convolution kernels / all op time")  # fmt: skip
        section.ratio(f"ops.{key}.op_time_per_wall", total / wall, "summed op time / wall time (>1: ops overlap)")
    section.notes += [
        "An op kernel's events summed by type over every host thread, per traced step; threads run ops side by "
        "side, so op time can exceed the wall time. `counted_share` is the part in the matmul and convolution "
        "kernels, the only FLOPs the roofline counts: the rest (activations, pooling, the optimizer's update, "
        "the loss, copies) is work the roofline does not see.",
        f"Steps traced: {steps['Lesson 1 CNN']} (CNN) and {steps['Lesson 2 MLP']} (MLP); data: {data.name}.",
    ]
    return section
