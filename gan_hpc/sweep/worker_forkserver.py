"""Ray workers for a sweep's watchers, forked from one process that has already imported them.

Each running trial has a watcher, a Tune actor, and each actor is a Ray worker process of its
own. Started cold, a worker imports Ray, Tune (pandas, pyarrow...) and the watcher: about
140 MiB of private memory (PSS) and two seconds of CPU, per trial. A driver watching 100 trials
would need 14 GiB.

So the driver runs a fork server beside Ray (:func:`forkserver`). Ray starts every worker of the
sweep through this module's client (the runtime env's ``py_executable``): the client hands the
worker's command line, environment, directory and standard streams to the server, which
imports those modules once, on the first request, and then forks one worker per request. A
fork shares the imported pages with the server (copy-on-write) and starts in a fraction of a
second.

Once its fork runs, the client becomes a small shell (:data:`WAITER`) that waits for the
fork's exit status from the server and exits with it, so the process Ray started ends with its
worker. Ray signals the fork itself, by the pid the worker registered with; a client that dies
takes its fork with it (the server sends it SIGKILL). A Python client would cost 7 MiB per
watcher; the shell costs well under one.

Protocol, on an abstract Unix stream socket, one line per message:

- client to server: ``{"argv", "env", "cwd"}`` as JSON, with the client's fds 0, 1 and 2
  attached;
- server to client: ``{"pid": N}``, then the fork's exit status as a number (128 + N: killed
  by signal N) when it ends; or ``{"cold": reason}``, and the client then execs the worker
  itself, as Ray would have.

The server forks only while it is a single thread, only Ray's own worker script, only for
workers whose Ray environment (every ``RAY_*`` variable) is the one it imported Ray under, and
only for a peer of its own user. Anything else starts cold.
"""

from __future__ import annotations

import contextlib
import json
import os
import selectors
import shlex
import signal
import socket
import struct
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from typing import Any

MODULE = "gan_hpc.sweep.worker_forkserver"  # run as `python -m MODULE serve|run ...`
MAX_REQUEST_BYTES = 1 << 20  # a worker's environment, as JSON
REQUEST_TIMEOUT_S = 5.0  # a client that sends less than a line by then starts cold
START_TIMEOUT_S = 10.0  # how long the driver waits for the server's socket
# what the server imports before its first fork: what every watcher would import itself
PRELOADED_MODULES = (
    "ray",
    "ray.actor",
    "ray._private.node",
    "ray._private.parameter",
    "ray._private.runtime_env.setup_hook",
    "ray.tune",
    "gan_hpc.sweep.watcher",
)
# of those, what the server imports as it starts, while the driver starts Ray: none of them
# reads Ray's configuration, which Ray's own modules fix from the environment they load in
EARLY_MODULES = ("numpy", "pandas", "pyarrow", "yaml")
# the server's environment, so that it stays one thread: OpenBLAS starts a thread per core as
# numpy loads, and pyarrow's jemalloc a background thread
SINGLE_THREAD_ENV = {"OPENBLAS_NUM_THREADS": "1", "JE_ARROW_MALLOC_CONF": "background_thread:false"}
LISTENER, WAKEUP = -1, -2  # the server's own selector keys; a client's key is its fork's pid
# the client once its fork runs: the fork's status from the server (fd 3), or, were the server
# gone, the fork's end
WAITER = (
    'IFS= read -r status <&3 && exit "$status"; while kill -0 "$1" 2>/dev/null; do sleep 1; done'
)


@contextlib.contextmanager
def forkserver() -> Iterator[str | None]:
    """Run a fork server while the block runs; yields the ``py_executable`` for Ray's workers.

    Yields None when the server did not start: Ray then starts its workers as usual.
    """
    address = f"gan-hpc-workers-{uuid.uuid4().hex}"
    from gan_hpc.launchers.base import die_with_parent

    process = subprocess.Popen(
        [sys.executable, "-m", MODULE, "serve", address],
        stdin=subprocess.DEVNULL,
        env={**os.environ, **SINGLE_THREAD_ENV},
        preexec_fn=die_with_parent,  # noqa: PLW1509 - prctl only, no lock is taken
    )
    try:
        yield _client_command(address) if _wait_listening(address, process) else None
    finally:
        process.terminate()
        with contextlib.suppress(subprocess.TimeoutExpired):
            process.wait(timeout=5)
        if process.poll() is None:
            process.kill()
            process.wait()


def _client_command(address: str) -> str:
    """The command Ray runs, with a worker's arguments after it, to start that worker."""
    return " ".join(shlex.quote(part) for part in (sys.executable, "-m", MODULE, "run", address))


def _wait_listening(address: str, process: subprocess.Popen[bytes]) -> bool:
    """True once the server at ``address`` takes connections; False if it died or timed out."""
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline and process.poll() is None:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as probe:
            try:
                probe.connect(_abstract(address))
            except OSError:
                time.sleep(0.02)
                continue
            return True  # the server sees an empty message and forgets this connection
    return False


def _abstract(address: str) -> str:
    """The abstract-namespace name of ``address``: no file to clean up, gone with the server."""
    return "\0" + address


# ------------------------------------------------------------------------------------ client


def run_worker(address: str, argv: list[str]) -> None:
    """Run Ray's worker ``argv`` as a fork of the server at ``address``, or cold; no return."""
    try:
        connection = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        connection.connect(_abstract(address))
        request = {"argv": argv, "env": dict(os.environ), "cwd": os.getcwd()}
        data = json.dumps(request).encode() + b"\n"
        sent = socket.send_fds(connection, [data], [0, 1, 2])
        connection.sendall(data[sent:])
        reply = json.loads(_read_line(connection) or b"{}")
    except (OSError, ValueError):
        reply = {}
    if "pid" not in reply:
        os.execv(sys.executable, [sys.executable, *argv])
    os.dup2(connection.fileno(), 3)  # inheritable
    os.execv("/bin/sh", ["sh", "-c", WAITER, "sh", str(int(reply["pid"]))])


def _read_line(connection: socket.socket) -> bytes:
    """One line, read a byte at a time: what follows it is the waiter's."""
    line = b""
    while not line.endswith(b"\n"):
        byte = connection.recv(1)
        if not byte:
            break
        line += byte
    return line


def _signal(pid: int, sig: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, sig)


# ------------------------------------------------------------------------------------ server


class ForkServer:
    """Forks Ray workers on request, from a process that imported them on the first one."""

    def __init__(self, address: str) -> None:
        self.listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.listener.bind(_abstract(address))
        self.listener.listen(128)
        self.selector = selectors.DefaultSelector()
        self.selector.register(self.listener, selectors.EVENT_READ, LISTENER)
        self.wakeup_read, wakeup_write = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
        signal.set_wakeup_fd(wakeup_write)
        signal.signal(signal.SIGCHLD, lambda *_: None)  # wakes the selector through the pipe
        self.selector.register(self.wakeup_read, selectors.EVENT_READ, WAKEUP)
        self.forks: dict[int, socket.socket] = {}  # fork pid -> its client's connection
        self.ray_env: dict[str, str] | None = None  # the RAY_* variables Ray was imported under
        self.worker_script = ""
        self.cold_reason = ""  # set: every request starts cold

    def serve_forever(self) -> None:
        """Answer requests and report ended forks until killed."""
        while True:
            for key, _ in self.selector.select():
                if key.data == LISTENER:
                    self._accept()
                elif key.data == WAKEUP:
                    with contextlib.suppress(BlockingIOError):
                        os.read(self.wakeup_read, 4096)
                else:
                    self._client_gone(key.fileobj, key.data)  # type: ignore[arg-type]
            self._reap()

    def _accept(self) -> None:
        connection, _ = self.listener.accept()
        fds: list[int] = []
        pid = None
        try:
            message, fds = _receive_request(connection)
            if message:  # empty: the driver's probe, or less than a line
                pid = self._start(connection, _parse_request(message), fds)
        except (OSError, ValueError):
            pid = None  # a client that went away or sent nonsense gets no fork
        finally:
            for fd in fds:
                os.close(fd)
        if pid is None:
            connection.close()
            return
        self.forks[pid] = connection
        self.selector.register(connection, selectors.EVENT_READ, pid)

    def _start(
        self, connection: socket.socket, request: dict[str, Any], fds: list[int]
    ) -> int | None:
        """Fork the worker ``request`` asks for and return its pid; None when it starts cold."""
        refusal = self._refusal(connection, request, fds)
        if refusal:
            connection.sendall(json.dumps({"cold": refusal}).encode() + b"\n")
            return None
        pid = os.fork()
        if pid == 0:
            self._become_worker(request, fds, connection)
        try:
            connection.sendall(json.dumps({"pid": pid}).encode() + b"\n")
        except OSError:  # its client is gone already
            _signal(pid, signal.SIGKILL)
            return None
        return pid

    def _refusal(self, connection: socket.socket, request: dict[str, Any], fds: list[int]) -> str:
        """Why ``request`` must start cold; empty when it can be forked."""
        credentials = connection.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, 12)
        _pid, uid, _gid = struct.unpack("3i", credentials)
        if uid != os.getuid():
            return "another user's request"
        if len(fds) != 3:
            return "no standard streams"
        env = request["env"]
        if self.ray_env is None:
            self._preload(env)
        if self.cold_reason:
            return self.cold_reason
        if _ray_env(env) != self.ray_env:
            return "a Ray environment other than the one imported"
        if not request["argv"] or os.path.realpath(request["argv"][0]) != self.worker_script:
            return "not Ray's worker"
        return ""

    def _preload(self, env: dict[str, str]) -> None:
        """Import what every worker imports, under the first worker's environment."""
        import gc
        import importlib
        import importlib.util

        os.environ.clear()
        os.environ.update(env)
        os.environ.update(SINGLE_THREAD_ENV)  # for what Ray's modules import in turn
        self.ray_env = _ray_env(env)
        try:
            for name in PRELOADED_MODULES:
                importlib.import_module(name)
            spec = importlib.util.find_spec("ray._private.workers.default_worker")
            self.worker_script = os.path.realpath(spec.origin) if spec and spec.origin else ""
        except Exception as error:  # noqa: BLE001 - any failure means cold starts, not none
            self._go_cold(f"preloading failed: {error}")
            return
        threads = len(os.listdir("/proc/self/task"))
        if threads != 1:
            self._go_cold(f"the server runs {threads} threads after its imports")
        gc.collect()
        gc.freeze()  # the collector then leaves the shared pages alone in the forks

    def _go_cold(self, reason: str) -> None:
        """From now on, every worker starts cold; the driver's log says why."""
        self.cold_reason = reason
        sys.stderr.write(f"gan-hpc: Ray's workers start cold: {reason}\n")

    def _become_worker(
        self, request: dict[str, Any], fds: list[int], connection: socket.socket
    ) -> None:
        """In the fork: become the requested worker, then exit with its status."""
        import runpy

        code = 1
        try:
            os.close(signal.set_wakeup_fd(-1))  # the write end of the server's wakeup pipe
            signal.signal(signal.SIGCHLD, signal.SIG_DFL)
            self.selector.close()
            for open_socket in (self.listener, connection, *self.forks.values()):
                open_socket.close()
            os.close(self.wakeup_read)
            for target, fd in enumerate(fds):
                os.dup2(fd, target)
            for fd in fds:
                if fd > 2:
                    os.close(fd)
            os.environ.clear()
            os.environ.update(request["env"])
            os.chdir(request["cwd"])
            sys.argv = list(request["argv"])
            runpy.run_path(sys.argv[0], run_name="__main__")
            code = 0
        except SystemExit as exit_:
            code = exit_.code if isinstance(exit_.code, int) else int(exit_.code is not None)
        except BaseException:  # noqa: BLE001 - reported on the worker's stderr, as Python would
            import traceback

            traceback.print_exc()
        finally:
            with contextlib.suppress(Exception):
                sys.stdout.flush()
                sys.stderr.flush()
            os._exit(code)

    def _client_gone(self, connection: socket.socket, pid: int) -> None:
        """A client died before its fork ended: the fork goes too."""
        with contextlib.suppress(OSError):
            if connection.recv(1):
                return
        self.selector.unregister(connection)
        _signal(pid, signal.SIGKILL)

    def _reap(self) -> None:
        """Tell each ended fork's client how its fork ended."""
        while True:
            try:
                pid, wait_status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return
            if pid == 0:
                return
            connection = self.forks.pop(pid, None)
            if connection is None:
                continue
            with contextlib.suppress(KeyError, ValueError):
                self.selector.unregister(connection)
            status = os.waitstatus_to_exitcode(wait_status)
            with contextlib.suppress(OSError):
                connection.sendall(b"%d\n" % (status if status >= 0 else 128 - status))
            connection.close()


def _receive_request(connection: socket.socket) -> tuple[bytes, list[int]]:
    """A client's request line (empty if it sent less) and the fds attached to it."""
    connection.settimeout(REQUEST_TIMEOUT_S)
    message, fds, _flags, _address = socket.recv_fds(connection, MAX_REQUEST_BYTES, 3)
    try:
        while message and not message.endswith(b"\n") and len(message) < MAX_REQUEST_BYTES:
            more = connection.recv(MAX_REQUEST_BYTES)
            if not more:
                break
            message += more
        connection.settimeout(None)
    except OSError:  # timed out, or gone: the fds are nobody's
        for fd in fds:
            os.close(fd)
        raise
    return (message if message.endswith(b"\n") else b""), fds


def _parse_request(message: bytes) -> dict[str, Any]:
    """A client's request, checked: ``argv`` (strings), ``env`` (strings) and ``cwd``."""
    request = json.loads(message)
    if not (
        isinstance(request, dict)
        and isinstance(request.get("argv"), list)
        and all(isinstance(arg, str) for arg in request["argv"])
        and isinstance(request.get("env"), dict)
        and all(isinstance(value, str) for value in request["env"].values())
        and isinstance(request.get("cwd"), str)
    ):
        raise ValueError("a malformed request")
    return request


def _ray_env(env: dict[str, str]) -> dict[str, str]:
    return {key: value for key, value in env.items() if key.startswith("RAY_")}


def main(argv: list[str]) -> None:
    """``serve ADDRESS`` (the driver's server) or ``run ADDRESS WORKER_ARGV...`` (Ray's worker)."""
    if len(argv) >= 2 and argv[0] == "serve":
        server = ForkServer(argv[1])  # listening: the driver's Ray may start now
        for name in EARLY_MODULES:
            __import__(name)
        server.serve_forever()
    elif len(argv) >= 3 and argv[0] == "run":
        run_worker(argv[1], argv[2:])
    else:
        sys.exit(
            "usage: python -m gan_hpc.sweep.worker_forkserver serve ADDRESS | run ADDRESS ARGV..."
        )


if __name__ == "__main__":
    main(sys.argv[1:])
