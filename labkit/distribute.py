"""Scale-out with tf.distribute: the same activity script on several devices or machines.

    --distribute none          one device, as before (the default)
    --distribute mirrored      MirroredStrategy over every local GPU; on a CPU-only machine,
                               --cpu-replicas N splits the CPU into N logical devices first
    --distribute multiworker   MultiWorkerMirroredStrategy; each process reads its place in the
                               cluster from TF_CONFIG (`python3 scripts/lab.py workers N -- ...`
                               sets it for N workers on this machine)

`--batch-size` is always the GLOBAL batch: each step, every replica takes an equal share of it and
the gradients are averaged, so the maths of a step is that of the single-device run. Only the
chief (worker 0) writes into the runs root; every other worker writes into a temporary folder that
is removed when its run ends (they must still write, or their collectives would wait for them).

The flag checks (`check_flags`) use the standard library only, so that bad flags are refused with
one line before TensorFlow loads; `start` builds the strategy, before any TensorFlow op runs.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from labkit import LabError

DISTRIBUTIONS = ("none", "mirrored", "multiworker")
TF_CONFIG_ENV = "TF_CONFIG"
# Where `lab.py workers` wants its non-chief workers' temporary run folders, so that it can remove
# whatever a killed worker left behind.
SCRATCH_ENV = "LAB_WORKER_SCRATCH"
WORKERS_COMMAND = "python3 scripts/lab.py workers N -- python SCRIPT [FLAGS]"
STRATEGY_NAMES = {"mirrored": "MirroredStrategy", "multiworker": "MultiWorkerMirroredStrategy"}
NOT_FASTER = (
    "this shows the mechanics of data parallelism and is not faster: the logical devices share the same CPU cores"
)


# The distribution whose scope the running run entered, if any (see clear_session).
_IN_SCOPE: Distribution | None = None


@dataclass(frozen=True)
class ClusterPlace:
    """What TF_CONFIG says: every worker's address, and which one this process is."""

    addresses: tuple[str, ...]  # the chief first when the cluster names one
    task_type: str
    task_index: int
    has_chief_task: bool

    @property
    def workers(self) -> int:
        return len(self.addresses)

    @property
    def chief(self) -> bool:
        # TensorFlow's rule: the "chief" task if there is one, else worker 0.
        if self.has_chief_task:
            return self.task_type == "chief"
        return self.task_type == "worker" and self.task_index == 0

    @property
    def task(self) -> str:
        return f"{self.task_type}:{self.task_index}"


def read_tf_config(text: str | None) -> ClusterPlace:
    """Validate TF_CONFIG without TensorFlow; every problem is one LabError line."""
    script = sys.argv[0] if sys.argv and sys.argv[0].endswith(".py") else "SCRIPT"
    hint = f"to practise on this machine, let `{WORKERS_COMMAND.replace('SCRIPT', script)}` set it"
    if not text or not text.strip():
        raise LabError(
            f"--distribute multiworker needs {TF_CONFIG_ENV}, the cluster and this worker's place in it; {hint}"
        )
    try:
        config = json.loads(text)
    except json.JSONDecodeError as error:
        raise LabError(f"{TF_CONFIG_ENV} is not valid JSON ({error.msg}, position {error.pos}); {hint}") from None
    cluster = config.get("cluster") if isinstance(config, dict) else None
    task = config.get("task") if isinstance(config, dict) else None
    if not isinstance(cluster, dict) or not isinstance(task, dict):
        raise LabError(f'{TF_CONFIG_ENV} needs a "cluster" and a "task" object; {hint}')
    for role, addresses in cluster.items():
        if role not in ("chief", "worker") or not isinstance(addresses, list) or not addresses:
            raise LabError(
                f'{TF_CONFIG_ENV}: the cluster may list only "chief" and "worker" addresses, '
                f"each a non-empty list (found {role!r}); {hint}"
            )
        if any(not isinstance(a, str) or not a.rpartition(":")[2].isdigit() for a in addresses):
            raise LabError(f"{TF_CONFIG_ENV}: every {role} address must be HOST:PORT, got {addresses}; {hint}")
    if len(cluster.get("chief", [])) > 1:
        raise LabError(f'{TF_CONFIG_ENV}: a cluster has at most one "chief"; {hint}')
    task_type, index = task.get("type"), task.get("index", 0)
    if task_type not in cluster or not isinstance(index, int) or not 0 <= index < len(cluster[task_type]):
        raise LabError(f"{TF_CONFIG_ENV}: task {task_type}:{index} is not in the cluster {cluster}; {hint}")
    addresses = tuple(cluster.get("chief", [])) + tuple(cluster.get("worker", []))
    return ClusterPlace(addresses, task_type, index, "chief" in cluster)


def requested(args) -> str:
    return getattr(args, "distribute", None) or "none"


def check_flags(args) -> None:
    """Refuse impossible combinations before TensorFlow loads (called by labkit.cli.parse)."""
    kind = requested(args)
    cpu_replicas = getattr(args, "cpu_replicas", None)
    if cpu_replicas is not None and kind != "mirrored":
        raise LabError("--cpu-replicas splits the CPU for --distribute mirrored; add --distribute mirrored or drop it")
    if cpu_replicas is not None and cpu_replicas < 2:
        raise LabError(f"--cpu-replicas {cpu_replicas} is a single replica; use 2 or more, or drop the flag")
    if kind == "none":
        return
    if getattr(args, "resume", None):
        raise LabError(f"--resume continues a run on a single device; drop --distribute {kind}")
    replicas = cpu_replicas if kind == "mirrored" else read_tf_config(os.environ.get(TF_CONFIG_ENV)).workers
    what = "replicas" if kind == "mirrored" else "workers"
    check_divisible(getattr(args, "batch_size", None), replicas, what)


def check_divisible(batch_size: int | None, replicas: int | None, what: str = "replicas") -> None:
    if not batch_size or not replicas or batch_size % replicas == 0:
        return
    lower, upper = batch_size - batch_size % replicas, batch_size + replicas - batch_size % replicas
    choices = f"{lower} or {upper}" if lower else str(upper)
    raise LabError(
        f"--batch-size {batch_size} is the global batch and must split evenly over the {replicas} {what}; "
        f"use a multiple of {replicas} (say {choices})"
    )


@dataclass
class Distribution:
    """A built strategy and what run.json records about it."""

    kind: str
    strategy: object
    global_batch: int
    place: ClusterPlace | None = None
    cpu_replicas: int | None = None
    _scope: object = None
    _scratch: list[Path] = field(default_factory=list)

    @property
    def replicas(self) -> int:
        return int(self.strategy.num_replicas_in_sync)

    @property
    def chief(self) -> bool:
        return self.place is None or self.place.chief

    def record(self) -> dict:
        return {
            "strategy": STRATEGY_NAMES[self.kind],
            "replicas": self.replicas,
            "devices": list(self.strategy.extended.worker_devices),
            "cpu_replicas": self.cpu_replicas,
            "global_batch": self.global_batch,
            "per_replica_batch": self.global_batch // self.replicas,
            "workers": self.place.workers if self.place else 1,
            "cluster": list(self.place.addresses) if self.place else None,
            "task": self.place.task if self.place else None,
            "chief": self.chief,
        }

    def lines(self) -> list[str]:
        """What the run says first about how it is spread."""
        devices = ", ".join(self.strategy.extended.worker_devices)
        split = f"global batch {self.global_batch} = {self.replicas} x {self.global_batch // self.replicas} per replica"
        name = STRATEGY_NAMES[self.kind]
        if self.place is not None:
            role = "the chief, which writes the run" if self.chief else "not the chief: logs go to a temporary folder"
            said = [f"Distribution: {name}, worker {self.place.task} of {self.place.workers} ({role}); {split}"]
        else:
            said = [f"Distribution: {name} over {self.replicas} device(s) ({devices}); {split}"]
        if self.cpu_replicas:
            said.append(f"Note: {self.cpu_replicas} logical CPU devices: {NOT_FASTER}.")
        elif self.kind == "mirrored" and self.replicas == 1:
            if "GPU" in devices.upper():
                said.append("Note: one GPU, so one replica: the same training as --distribute none.")
            else:
                said.append("Note: no GPU here, so one replica; add --cpu-replicas 2 to see the batch split.")
        return said

    # -- the session's hooks ---------------------------------------------------------------

    def enter_scope(self) -> None:
        """Models the activity builds from now on get mirrored variables."""
        global _IN_SCOPE
        self._scope = self.strategy.scope()
        self._scope.__enter__()
        _IN_SCOPE = self

    def enter_scope_again(self) -> None:
        """After keras.backend.clear_session(): the scope lived on the TensorFlow graph that the
        clearing replaced, so it is gone without being left; enter a fresh one."""
        self._scope = None
        self.enter_scope()

    def scratch_folder(self) -> Path:
        """A non-chief worker's temporary parent folder for its run, removed by `leave`."""
        parent = os.environ.get(SCRATCH_ENV) or None
        if parent:
            Path(parent).mkdir(parents=True, exist_ok=True)
        folder = Path(tempfile.mkdtemp(prefix=f"lab-{self.place.task_type}{self.place.task_index}-", dir=parent))
        self._scratch.append(folder)
        return folder

    def check_model(self, model) -> None:
        """A model built outside the scope (before the session, or after a bare
        keras.backend.clear_session() wiped the scope) would not be mirrored: refuse it plainly."""
        weights = getattr(model, "weights", None) or []
        if weights and not self.strategy.extended.variable_created_in_scope(weights[0].value):
            raise LabError(
                f"--distribute {self.kind}: this activity builds its model outside the strategy's scope, "
                "so tf.distribute cannot mirror it; drop --distribute, or build the model inside the "
                "run's start_run() and clear Keras with labkit.distribute.clear_session()"
            )

    def leave(self) -> None:
        global _IN_SCOPE
        if _IN_SCOPE is self:
            _IN_SCOPE = None
        if self._scope is not None:
            scope, self._scope = self._scope, None
            try:
                scope.__exit__(None, None, None)
            except IndexError:
                pass  # a bare keras.backend.clear_session() already emptied the strategy stack
        while self._scratch:
            shutil.rmtree(self._scratch.pop(), ignore_errors=True)

    def shard_by_data(self, dataset):
        """In-memory data has no files to hand out: every worker builds the same shuffled stream
        (same seed) and keeps its share of each global batch. Said explicitly, so that
        tf.data does not first try FILE sharding and warn."""
        import tensorflow as tf

        options = tf.data.Options()
        options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.DATA
        return dataset.with_options(options)

    def batches_in_order(self, shuffled_indices, x, y, steps: int):
        """The first `steps` global batches that the one-device pipeline would draw, as a fixed list.

        Keras, under a strategy, opens the training data once to build the model before it opens
        it again to train; a seeded shuffle that reshuffles on every opening would then train on
        another order than the one-device run. The order is drawn here once, from the same
        shuffle of the example indices (same seed, same buffer, hence the same permutations), so
        that every opening yields the same batches and a step's maths matches one device's."""
        import numpy as np
        import tensorflow as tf

        wanted = shuffled_indices.take(steps * self.global_batch).batch(1 << 16)
        order = np.concatenate(list(wanted.as_numpy_iterator()))

        def gather(indices):
            return tf.nest.map_structure(lambda array: tf.gather(array, indices), (x, y))

        batches = tf.data.Dataset.from_tensor_slices(order).batch(self.global_batch).map(gather)
        return self.shard_by_data(batches.prefetch(tf.data.AUTOTUNE))

    def not_chief_line(self) -> str:
        return (
            f"This worker ({self.place.task}) is not the chief: its logs went to a temporary folder, now removed. "
            "The chief's run folder holds the run."
        )


# One strategy per process: TensorFlow configures devices and collectives once, so a command that
# trains several runs (a sweep) reuses the strategy its first run built.
_BUILT: dict[tuple, object] = {}


def clear_session() -> None:
    """keras.backend.clear_session() for activities that build a fresh model inside a session.

    Clearing replaces TensorFlow's default graph, and a tf.distribute scope lives on that graph:
    after a bare clear_session() under --distribute, the next model would be built outside the
    strategy and not be mirrored. This one enters the running session's scope again; with no
    --distribute it is exactly keras.backend.clear_session()."""
    import keras

    keras.backend.clear_session()
    if _IN_SCOPE is not None:
        _IN_SCOPE.enter_scope_again()


def not_offered(reason: str) -> dict[str, str]:
    """For an activity's `not_here`: both distribution flags refused with the same reason."""
    return dict.fromkeys(("--distribute", "--cpu-replicas"), reason)


def writes_runs(args) -> bool:
    """Whether this process writes into the runs root: always, except a non-chief worker of
    --distribute multiworker. For parts of an activity that train nothing (and so need no
    collective with the other workers), which those workers skip."""
    if requested(args) != "multiworker":
        return True
    return read_tf_config(os.environ.get(TF_CONFIG_ENV)).chief


def start(args, global_batch: int) -> Distribution | None:
    """Build the requested strategy; None for --distribute none (TensorFlow is not touched then).

    Must run before any TensorFlow op: logical devices and collective ops can only be set up
    before TensorFlow initialises its runtime."""
    kind = requested(args)
    if kind == "none":
        return None
    cpu_replicas = getattr(args, "cpu_replicas", None)
    place = read_tf_config(os.environ.get(TF_CONFIG_ENV)) if kind == "multiworker" else None
    key = (kind, cpu_replicas, place)
    if key not in _BUILT:
        if _BUILT:
            raise LabError(
                f"this Python process already trained with another distribution; run --distribute {kind} "
                "in a fresh process"
            )
        _BUILT[key] = _for_keras_3(_mirrored(cpu_replicas) if kind == "mirrored" else _multiworker())
    distribution = Distribution(kind, _BUILT[key], global_batch, place=place, cpu_replicas=cpu_replicas)
    check_divisible(global_batch, distribution.replicas)
    return distribution


def _mirrored(cpu_replicas: int | None):
    import tensorflow as tf

    if not cpu_replicas:
        return tf.distribute.MirroredStrategy()  # every local GPU, or the CPU alone without one
    gpus = tf.config.list_physical_devices("GPU")
    if gpus:
        raise LabError(
            f"this machine has {len(gpus)} GPU(s): --distribute mirrored alone mirrors over them; drop --cpu-replicas"
        )
    cpu = tf.config.list_physical_devices("CPU")[0]
    wanted = [tf.config.LogicalDeviceConfiguration() for _ in range(cpu_replicas)]
    try:
        tf.config.set_logical_device_configuration(cpu, wanted)
    except RuntimeError:
        # TensorFlow already started in this process (a notebook, a second run): the split is
        # fixed now, and only the same split can be reused.
        if len(tf.config.list_logical_devices("CPU")) != cpu_replicas:
            raise LabError(
                f"--cpu-replicas {cpu_replicas}: TensorFlow already started in this process with "
                f"{len(tf.config.list_logical_devices('CPU'))} CPU device(s); run it in a fresh process"
            ) from None
    devices = [device.name for device in tf.config.list_logical_devices("CPU")]
    return tf.distribute.MirroredStrategy(devices=devices)


def _for_keras_3(strategy):
    strategy.reduce = _keras_3_reduce(strategy.reduce)
    return strategy


def _multiworker():
    import tensorflow as tf

    try:
        strategy = tf.distribute.MultiWorkerMirroredStrategy()
    except (RuntimeError, ValueError) as error:
        raise LabError(
            f"--distribute multiworker must start in a fresh Python process (TensorFlow said: {error})"
        ) from None
    return strategy


def _keras_3_reduce(reduce):
    """strategy.reduce as Keras 3's fit and evaluate call it (keras-team/keras#20585,
    tensorflow/tensorflow#72388). To build the model, Keras asks for the mean of the first whole
    (x, y) batch, which only tells it shapes and dtypes; reducing it fails when the replicas' shares
    differ in size (a validation set smaller than one batch) and, across workers, for uint8 labels.
    This replica's own share answers the question, with no collective. And under
    MultiWorkerMirroredStrategy Keras asks for the mean of per-replica scalars (loss, metrics)
    over axis 0, which scalars do not have: they are averaged over the replicas instead."""
    import tensorflow as tf

    def local(value):
        return value.values[0] if isinstance(value, tf.distribute.DistributedValues) else value

    def each(reduce_op, value, axis=None):
        if tf.nest.is_nested(value):
            return tf.nest.map_structure(local, value)
        scalar = getattr(getattr(local(value), "shape", None), "rank", None) == 0
        return reduce(reduce_op, value, axis=None if scalar else axis)

    return each
