"""`python3 scripts/lab.py workers N -- ACTIVITY_COMMAND`: one training job on N local workers.

    python3 scripts/lab.py workers 2 -- python lesson_1/exercise_a/train_mnist.py --quick

Starts N copies of the activity on this machine, each with its own TF_CONFIG (localhost ports
picked free), so that tf.distribute's MultiWorkerMirroredStrategy trains them as one job: each
worker takes its share of every global batch and the gradients are averaged across workers.
Worker 0 is the chief: its output is shown, and it alone writes the run folder. The others' output
is shown only if they fail. If any worker fails or dies, the others are stopped (SIGTERM, then
SIGKILL after a short grace), so that a collective waiting for the dead one cannot hang the job.
Ctrl-C stops every worker cleanly.

On one machine this is practice: the workers share its cores and it is slower than one process.
"""

from __future__ import annotations

import ctypes
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from labkit import REPO_ROOT, LabError
from labkit.distribute import SCRATCH_ENV, TF_CONFIG_ENV

PROG = "lab.py workers"
MAX_WORKERS = 16  # each worker is a whole TensorFlow process
STOP_GRACE_S = 5.0  # after SIGTERM, before SIGKILL
INTERRUPT_GRACE_S = 20.0  # after Ctrl-C: time for every worker to close its logs
POLL_S = 0.1
FAILED_LOG_LINES = 40  # the tail of a failed non-chief worker's output that is shown
USAGE = f"usage: {PROG} N -- python SCRIPT [FLAGS] (e.g. {PROG} 2 -- python lesson_1/exercise_a/train_mnist.py --quick)"
PYTHON_NAME = re.compile(r"^python(\d+(\.\d+)?)?(\.exe)?$")


class Stop(BaseException):
    """Ctrl-C or SIGTERM reached the launcher: stop every worker, then leave."""

    def __init__(self, signum: int):
        self.signum = signum


def real_machines_text(command: str = "python lesson_1/exercise_a/train_mnist.py --quick") -> str:
    """How to run the same job on several hosts: the README's and `lab.py workers --help`'s text."""
    config = {"cluster": {"worker": ["host-a:12345", "host-b:12345"]}, "task": {"type": "worker", "index": 0}}
    return (
        "On real machines, give each host the same repository and the same command, and one TF_CONFIG that\n"
        "lists every worker (same order everywhere) and names this host's index. On host-a:\n\n"
        f"    export TF_CONFIG='{json.dumps(config)}'\n"
        f"    {command} --distribute multiworker\n\n"
        'and on host-b the same, with "index": 1. Worker 0 is the chief: it alone writes the run folder.\n'
        "The port must be open between the hosts; every worker must reach every other.\n"
    )


def parse(argv: list[str]) -> tuple[int, Path, list[str]]:
    """N, the activity script and its flags; LabError (exit 2) for anything else."""
    if not argv:
        raise LabError(f"give the number of workers and the activity command; {USAGE}")
    count_text, rest = argv[0], argv[1:]
    try:
        count = int(count_text)
    except ValueError:
        raise LabError(f"N must be a whole number of workers, got '{count_text}'; {USAGE}") from None
    if not 1 <= count <= MAX_WORKERS:
        raise LabError(f"N must be from 1 to {MAX_WORKERS} workers, got {count}")
    if rest[:1] == ["--"]:
        rest = rest[1:]
    if not rest:
        raise LabError(f"no activity command after the number of workers; {USAGE}")
    if PYTHON_NAME.match(Path(rest[0]).name):
        rest = rest[1:]  # the workers run with this venv's Python, whatever `python` means here
    if not rest or rest[0].startswith("-"):
        raise LabError(f"the command must name a course script to run, got '{' '.join(rest) or 'python'}'; {USAGE}")
    script = course_script(rest[0])
    flags = rest[1:]
    for i, flag in enumerate(flags):
        if flag == "--distribute" or flag.startswith("--distribute="):
            value = flag.partition("=")[2] or (flags[i + 1] if i + 1 < len(flags) else "")
            if value != "multiworker":
                raise LabError(f"the workers train with --distribute multiworker; drop --distribute {value}".rstrip())
            break
    else:
        flags = [*flags, "--distribute", "multiworker"]
    return count, script, flags


def course_script(text: str) -> Path:
    """A training script of this course: a .py file in a lesson folder that trains a session."""
    path = Path(text).expanduser()
    candidates = [path] if path.is_absolute() else [Path.cwd() / path, Path(REPO_ROOT) / path]
    found = next((c.resolve() for c in candidates if c.is_file()), None)
    lessons = Path(REPO_ROOT).resolve()
    if (
        found is None
        or found.suffix != ".py"
        or not found.is_relative_to(lessons)
        or not found.relative_to(lessons).parts[0].startswith("lesson_")
        or not re.search(r"\bstart_(summary_)?run\(", found.read_text(encoding="utf-8", errors="replace"))
    ):
        raise LabError(f"'{text}' is not a course training script (a lesson_*/.../*.py that trains a run); {USAGE}")
    return found


def free_ports(count: int) -> list[int]:
    """Ports the OS hands out now; held together until all are picked, so that they differ."""
    sockets = []
    try:
        for _ in range(count):
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.bind(("localhost", 0))
            sockets.append(s)
        return [s.getsockname()[1] for s in sockets]
    finally:
        for s in sockets:
            s.close()


def tf_config(ports: list[int], index: int) -> str:
    cluster = {"worker": [f"localhost:{port}" for port in ports]}
    return json.dumps({"cluster": cluster, "task": {"type": "worker", "index": index}})


def _die_with_launcher() -> None:
    """Linux: a worker gets SIGKILL if the launcher itself is killed, instead of training on alone."""
    try:
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, int(signal.SIGKILL))  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass


def how_it_ended(code: int) -> str:
    if code < 0:
        try:
            return f"was killed by {signal.Signals(-code).name}"
        except ValueError:
            return f"was killed by signal {-code}"
    return f"exited with code {code}"


class Workers:
    def __init__(self, count: int, script: Path, flags: list[str]):
        self.count, self.script, self.flags = count, script, flags
        self.scratch = Path(tempfile.mkdtemp(prefix="lab-workers-"))
        self.processes: list[subprocess.Popen] = []
        self.logs: list[Path | None] = []

    def start(self) -> None:
        ports = free_ports(self.count)
        print(
            f"{PROG}: {self.count} worker(s) on localhost ports {', '.join(map(str, ports))}; "
            "worker 0 is the chief, its output follows",
            flush=True,
        )
        for index in range(self.count):
            # Each worker's temporary files (TensorFlow's AutoGraph writes some too) go in the
            # launcher's folder, which is removed at the end even if a worker was killed.
            private_tmp = self.scratch / f"tmp-{index}"
            private_tmp.mkdir()
            env = dict(
                os.environ,
                **{TF_CONFIG_ENV: tf_config(ports, index), SCRATCH_ENV: str(self.scratch), "TMPDIR": str(private_tmp)},
            )
            log = None if index == 0 else self.scratch / f"worker-{index}.log"
            output = None if log is None else open(log, "wb")
            try:
                process = subprocess.Popen(
                    [sys.executable, str(self.script), *self.flags],
                    env=env,
                    stdout=output,
                    stderr=None if output is None else subprocess.STDOUT,
                    start_new_session=True,  # Ctrl-C reaches the launcher, which stops everyone in order
                    preexec_fn=_die_with_launcher if sys.platform.startswith("linux") else None,
                )
            finally:
                if output is not None:
                    output.close()
            self.processes.append(process)
            self.logs.append(log)
            print(f"{PROG}: worker {index} pid {process.pid}", flush=True)

    def first_failure(self) -> int | None:
        failed = [i for i, p in enumerate(self.processes) if p.poll() not in (None, 0)]
        # Seen in the same poll, a worker killed by a signal is the likelier cause, and a worker
        # that then failed on a broken collective the consequence.
        return min(failed, key=lambda i: (self.processes[i].returncode > 0, i), default=None)

    def wait(self) -> int:
        """0 when every worker finished; else stop the rest and say which one failed."""
        while True:
            failed = self.first_failure()
            if failed is not None:
                return self.failure(failed)
            if all(p.poll() == 0 for p in self.processes):
                print(f"{PROG}: all {self.count} worker(s) finished", flush=True)
                return 0
            time.sleep(POLL_S)

    def failure(self, index: int) -> int:
        process = self.processes[index]
        code = process.returncode
        if code == 2 and index != 0:
            # Bad flags fail on every worker alike; the chief's own line says it best.
            self.wait_for(self.processes[:1], STOP_GRACE_S)
        chief_code = self.processes[0].poll()
        self.stop(signal.SIGTERM, STOP_GRACE_S)
        if code == 2 and chief_code == 2:
            return 2  # the chief already printed the one line about the flags
        if index != 0:
            self.show_log(index)
        print(
            f"{PROG}: error: worker {index} (pid {process.pid}) {how_it_ended(code)}; stopped the other worker(s)",
            file=sys.stderr,
            flush=True,
        )
        return 1

    def show_log(self, index: int) -> None:
        text = self.logs[index].read_text(encoding="utf-8", errors="replace") if self.logs[index] else ""
        for line in text.splitlines()[-FAILED_LOG_LINES:]:
            print(f"[worker {index}] {line}", file=sys.stderr)

    @staticmethod
    def wait_for(processes: list[subprocess.Popen], seconds: float) -> None:
        deadline = time.monotonic() + seconds
        while any(p.poll() is None for p in processes) and time.monotonic() < deadline:
            time.sleep(POLL_S)

    def stop(self, signum: int, grace: float) -> None:
        """Send `signum` to every worker still running; SIGKILL whoever outlives `grace`."""
        running = [p for p in self.processes if p.poll() is None]
        for p in running:
            p.send_signal(signum)
        self.wait_for(running, grace)
        for p in running:
            if p.poll() is None:
                p.kill()
        for p in running:
            p.wait()

    def interrupted(self, signum: int) -> int:
        print(f"\n{PROG}: stopping {self.count} worker(s)", file=sys.stderr, flush=True)
        # Each worker closes its logs and records `interrupted`; one stuck waiting for a peer that
        # already stopped is ended after the grace.
        self.stop(signum, INTERRUPT_GRACE_S)
        return 130 if signum == signal.SIGINT else 143

    def clean(self) -> None:
        shutil.rmtree(self.scratch, ignore_errors=True)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    if argv[:1] in (["-h"], ["--help"]):
        print(USAGE + "\n\n" + __doc__.split("\n\n", 1)[1] + "\n" + real_machines_text())
        return 0
    try:
        count, script, flags = parse(argv)
    except LabError as error:
        print(f"{PROG}: error: {error}", file=sys.stderr)
        return 2

    def raise_stop(signum, frame):
        raise Stop(signum)

    previous = {s: signal.signal(s, raise_stop) for s in (signal.SIGINT, signal.SIGTERM)}
    workers = Workers(count, script, flags)
    try:
        try:
            workers.start()
            return workers.wait()
        except Stop as stop:
            for s in previous:  # a second Ctrl-C must not cut the shutdown short
                signal.signal(s, signal.SIG_IGN)
            return workers.interrupted(stop.signum)
        finally:
            if any(p.poll() is None for p in workers.processes):
                workers.stop(signal.SIGTERM, STOP_GRACE_S)
    finally:
        workers.clean()
        for s, handler in previous.items():
            signal.signal(s, handler)


if __name__ == "__main__":
    raise SystemExit(main())
