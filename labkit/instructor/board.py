"""`python scripts/lab.py tensorboard [LOGDIR] [--port N] [--bind-all]`: TensorBoard for a class.

The usual ways a live demo goes wrong are each checked before TensorBoard starts:
- a wrong or relative logdir, or one with nothing flushed yet ("No dashboards are active"): the
  logdir is made absolute and must hold event files, or the command stops with one line;
- port 6006 already taken, often by a forgotten TensorBoard still serving old data: the command
  names that process (its pid and logdir) and moves to the next free port;
- a remote machine: it prints the `ssh -L` line, and binds beyond localhost only when asked.

TensorBoard runs in this process (its own `program.TensorBoard`), so Ctrl-C or a kill stops it
together with the command, and it registers itself the way TensorBoard does, so that the next
command (or a notebook's `%tensorboard`) sees it.
"""

from __future__ import annotations

import argparse
import atexit
import base64
import getpass
import importlib.util
import json
import os
import signal
import socket
import sys
import threading
import time
import urllib.parse
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import psutil

from labkit import LabError
from labkit.cli import OneLineParser, port_number
from labkit.runs import runs_root

DEFAULT_PORT = 6006
# How far past 6006 to look for a free port before asking the OS for any free one.
PORT_SCAN = 20
EVENT_FILE_GLOB = "events.out.tfevents.*"
READY_TIMEOUT_S = 60.0


@dataclass(frozen=True)
class Instance:
    """A TensorBoard that registered itself in TensorBoard's info folder and is still alive."""

    pid: int
    port: int
    logdir: str
    started: float

    def describe(self) -> str:
        since = time.strftime("%H:%M", time.localtime(self.started))
        return f"by TensorBoard pid {self.pid}, started {since} on {self.logdir}"


def make_parser() -> argparse.ArgumentParser:
    parser = OneLineParser(
        prog="lab.py tensorboard",
        description="Start this environment's TensorBoard on a folder of runs, ready for a demo.",
    )
    parser.add_argument("logdir", nargs="?", help="folder of runs (default: runs/, or $LAB_RUNS_DIR)")
    parser.add_argument(
        "--port",
        type=port_number,
        help=f"port to serve on (default: {DEFAULT_PORT}, or the next free one; 0: any free port)",
    )
    parser.add_argument(
        "--bind-all",
        action="store_true",
        help="serve to other machines on the network too (no password: prefer the ssh -L line)",
    )
    return parser


def resolve_logdir(raw: str | None) -> Path:
    """The absolute logdir, or a one-line LabError saying what to do instead."""
    logdir = runs_root(raw)
    hint = "train a run first (python lesson_1/exercise_a/train_mnist.py --quick), or show the demo runs: " + (
        "python scripts/lab.py tensorboard demo_runs"
    )
    if not logdir.exists():
        raise LabError(f"{logdir} does not exist; {hint}")
    if not logdir.is_dir():
        raise LabError(f"{logdir} is a file, not a folder of runs; give the folder that holds the runs")
    if next(logdir.rglob(EVENT_FILE_GLOB), None) is None:
        raise LabError(
            f'{logdir} holds no TensorBoard event files, so TensorBoard would show "No dashboards are active"; {hint}'
        )
    return logdir


def _alive(pid: int) -> bool:
    # Not os.kill(pid, 0): on Windows signal 0 is CTRL_C_EVENT, which would stop that TensorBoard.
    return psutil.pid_exists(pid)


def _absolute_logdir(info) -> str:
    """TensorBoard records the logdir as typed; its cache key holds the folder it was typed in.
    Resolved the way resolve_logdir resolves this command's own, so that the two compare."""
    logdir = Path(info.logdir or "")
    if logdir.is_absolute():
        return str(logdir.resolve())
    try:
        key = json.loads(base64.b64decode(info.cache_key))
        return str(Path(key["working_directory"], logdir).resolve())
    except (ValueError, KeyError, TypeError):
        return info.logdir or ""


def running_instances() -> list[Instance]:
    from tensorboard import manager

    instances = []
    for info in manager.get_all():
        # A TensorBoard killed without a chance to clean up leaves its info file behind.
        if info.pid != os.getpid() and _alive(info.pid):
            instances.append(Instance(info.pid, info.port, _absolute_logdir(info), info.start_time))
    return instances


def port_is_free(port: int) -> bool:
    for family, address in ((socket.AF_INET, "127.0.0.1"), (socket.AF_INET6, "::1")):
        with socket.socket(family, socket.SOCK_STREAM) as probe:
            probe.settimeout(0.5)
            try:
                if probe.connect_ex((address, port)) == 0:
                    return False  # something answers there
            except OSError:
                continue  # no IPv6 on this machine
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        try:
            probe.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def holder_of(port: int, instances: list[Instance]) -> str:
    for instance in instances:
        if instance.port == port:
            return f"{instance.describe()}; stop it with: kill {instance.pid}"
    return "by a program other than TensorBoard"


def choose_port(requested: int | None, instances: list[Instance]) -> tuple[int, list[str]]:
    """The port to serve on and the notes to print about ports that were taken."""
    if requested == 0:
        return any_free_port(), []
    if requested is not None:
        if not port_is_free(requested):
            raise LabError(
                f"port {requested} is taken {holder_of(requested, instances)}; "
                "or leave out --port to use the next free one"
            )
        return requested, []
    for port in range(DEFAULT_PORT, DEFAULT_PORT + PORT_SCAN):
        if port_is_free(port):
            notes = (
                [] if port == DEFAULT_PORT else [f"port {DEFAULT_PORT} is taken {holder_of(DEFAULT_PORT, instances)}"]
            )
            return port, notes
    return any_free_port(), [f"ports {DEFAULT_PORT}-{DEFAULT_PORT + PORT_SCAN - 1} are all busy"]


def any_free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def run_groups(logdir: Path, limit: int = 6) -> list[str]:
    """The first-level folders that hold runs: the natural run filters for a demo."""
    groups = []
    for child in sorted(p for p in logdir.iterdir() if p.is_dir() and not p.name.startswith(".")):
        if next(child.rglob(EVENT_FILE_GLOB), None) is not None:
            groups.append(child.name)
    return groups[:limit]


def deep_links(url: str, logdir: Path) -> list[tuple[str, str]]:
    """Links that open TensorBoard in a demo-ready state. The query parameters are those the
    TensorBoard 2 front end reads and writes itself (smoothing, runFilter, tagFilter)."""

    def link(tab: str, **query) -> str:
        return url + (f"?{urllib.parse.urlencode(query)}" if query else "") + f"#{tab}"

    links = [("Time series, smoothing 0 (raw points)", link("timeseries", smoothing=0))]
    for group in run_groups(logdir):
        links.append((f'Only the runs matching "{group}"', link("timeseries", runFilter=group, smoothing=0)))
    links.append(("Loss charts only", link("timeseries", tagFilter="loss", smoothing=0)))
    links.append(("HParams: one row per run", link("hparams")))
    return links


def register(program_flags, logdir: Path, port: int, arguments: list[str]) -> None:
    """Announce this server in TensorBoard's info folder, as `tensorboard` itself does."""
    from tensorboard import manager, version

    info = manager.TensorBoardInfo(
        version=version.VERSION,
        start_time=int(time.time()),
        port=port,
        pid=os.getpid(),
        path_prefix=program_flags.path_prefix,
        logdir=str(logdir),
        db=program_flags.db,
        cache_key=manager.cache_key(working_directory=os.getcwd(), arguments=arguments, configure_kwargs={}),
    )
    manager.write_info_file(info)
    atexit.register(manager.remove_info_file)


def wait_until_loaded(url: str) -> int:
    """Runs TensorBoard has read so far: its first scan of a big logdir takes a few seconds,
    and a page opened before it ends shows an empty run list."""
    deadline = time.monotonic() + READY_TIMEOUT_S
    runs: list = []
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url + "data/runs", timeout=5) as answer:
                runs = json.load(answer)
        except OSError:
            runs = []
        if runs:
            break
        time.sleep(0.3)
    return len(runs)


def fast_loader() -> str:
    """TensorBoard's compiled data server reads logs faster; naming it (rather than "auto")
    also spares the audience TensorBoard's "experimental" banner."""
    return "true" if importlib.util.find_spec("tensorboard_data_server") else "false"


def stop_on(signum, frame):  # noqa: ARG001 (signal handler signature)
    raise KeyboardInterrupt


def serve(args: argparse.Namespace) -> int:
    logdir = resolve_logdir(args.logdir)
    instances = running_instances()
    port, notes = choose_port(args.port, instances)

    from tensorboard import program

    arguments = ["--logdir", str(logdir), "--port", str(port), f"--load_fast={fast_loader()}"]
    arguments += ["--bind_all"] if args.bind_all else []
    board = program.TensorBoard()
    board.configure(argv=["tensorboard", *arguments])
    for stop_signal in (signal.SIGINT, signal.SIGTERM):
        signal.signal(stop_signal, stop_on)  # also when started with SIGINT ignored (a background job)
    try:
        url = board.launch()
    except program.TensorBoardServerException as error:
        raise LabError(f"TensorBoard could not start on port {port}: {error.msg}") from None
    register(board.flags, logdir, port, arguments)
    try:
        announce(args, logdir, port, url, notes, instances)
        threading.Event().wait()
    except KeyboardInterrupt:
        pass
    print("TensorBoard stopped.", flush=True)
    return 0


def announce(args, logdir: Path, port: int, url: str, notes: list[str], instances: list[Instance]) -> None:
    from tensorboard import version

    for note in notes:
        print(f"note: {note}; using port {port} instead")
    for instance in instances:
        if instance.logdir == str(logdir):
            print(
                f"note: an older TensorBoard (pid {instance.pid}) still serves this same logdir at "
                f"http://localhost:{instance.port}/ and may show stale data; stop it with: kill {instance.pid}"
            )
    runs = wait_until_loaded(f"http://localhost:{port}/")
    print(f"TensorBoard {version.VERSION} serves {logdir} ({runs} TensorBoard runs found)")
    print(f"  Open: {url}")
    if args.bind_all:
        print(
            f"warning: --bind-all serves these runs to anyone who can reach port {port} of this machine, "
            "with no password; an ssh tunnel is safer"
        )
    host = socket.getfqdn()
    print(
        f"  On a remote machine, tunnel from your laptop: ssh -N -L {port}:localhost:{port} {getpass.getuser()}@{host}"
    )
    print(f"    then open http://localhost:{port}/ there")
    print("Demo links:")
    local = f"http://localhost:{port}/"
    for label, link in deep_links(local, logdir):
        print(f"  {label}: {link}")
    print("Press Ctrl-C to stop.", flush=True)


def main(argv: list[str] | None = None) -> int:
    parser = make_parser()
    args = parser.parse_args(argv)
    try:
        return serve(args)
    except LabError as error:
        print(f"{parser.prog}: error: {error}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
