"""A sweep's Ray workers are forks of one server: they run, end with their client, fall back."""

from __future__ import annotations

import os
import signal
import socket
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from gan_hpc.sweep import worker_forkserver
from gan_hpc.sweep.worker_forkserver import ForkServer

WORKER_SCRIPT = os.path.realpath(worker_forkserver.__file__)  # stands in for Ray's worker


def _request(script: str = WORKER_SCRIPT, job: str = "01000000") -> dict[str, object]:
    return {"argv": [script, "--worker-id=1"], "env": {"RAY_JOB_ID": job}, "cwd": "/"}


@pytest.fixture
def server() -> Iterator[ForkServer]:
    forks = ForkServer(f"gan-hpc-test-{uuid.uuid4().hex}")
    forks.ray_env = {"RAY_JOB_ID": "01000000"}  # as if it had imported Ray for that job
    forks.worker_script = WORKER_SCRIPT
    yield forks
    forks.listener.close()


def test_the_server_forks_only_rays_worker_of_its_own_job_with_its_streams(
    server: ForkServer,
) -> None:
    ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
    with ours, theirs:
        assert server._refusal(ours, _request(), [0, 1, 2]) == ""
        assert "Ray environment" in server._refusal(ours, _request(job="02000000"), [0, 1, 2])
        assert server._refusal(ours, _request(script=sys.executable), [0, 1, 2]) == (
            "not Ray's worker"
        )
        assert server._refusal(ours, _request(), [0, 1]) == "no standard streams"
        server.cold_reason = "the server runs 3 threads after its imports"
        assert server._refusal(ours, _request(), [0, 1, 2]) == server.cold_reason


def test_malformed_requests_get_no_fork_and_the_server_keeps_serving() -> None:
    with worker_forkserver.forkserver() as command:
        assert command is not None
        address = "\0" + command.split()[-1]
        for junk in (b"not json\n", b'{"argv": "x", "env": {}, "cwd": "/"}\n', b"[]\n"):
            with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as client:
                client.connect(address)
                socket.send_fds(client, [junk], [0, 1, 2])
                assert client.recv(100) == b""  # closed without a fork
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as client:
            client.connect(address)  # an abstract socket is gone with its process


def _waiter_of(pid: int) -> int | None:
    """The client (waiter shell) Ray started for the forked worker ``pid``."""
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            argv = (entry / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if argv[2:3] == [worker_forkserver.WAITER.encode()] and argv[4:5] == [str(pid).encode()]:
            return int(entry.name)
    return None


def _wait_gone(pid: int, timeout_s: float = 15.0) -> bool:
    """True once ``pid`` has ended (a zombie has: only its parent's wait is missing)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            return True
        if state == "Z":
            return True
        time.sleep(0.1)
    return False


def _parent_command(pid: int) -> str:
    stat = Path(f"/proc/{pid}/stat").read_text()
    parent = int(stat.rsplit(")", 1)[1].split()[1])
    return Path(f"/proc/{parent}/cmdline").read_bytes().replace(b"\0", b" ").decode()


@pytest.mark.ray
@pytest.mark.slow
def test_watchers_are_forks_that_end_with_their_client_and_outlive_a_dead_server() -> None:
    import ray

    from gan_hpc.sweep.tune import ray_runtime

    @ray.remote(num_cpus=0.25)
    class Probe:
        def facts(self) -> tuple[int, bool]:
            import gan_hpc.sweep.watcher  # noqa: F401 - what a watcher imports

            return os.getpid(), "torch" in sys.modules

    def start() -> tuple[object, int]:
        # a runtime env of its own, as Tune gives each trial's actor
        actor = Probe.options(runtime_env={"env_vars": {"PL_DISABLE_FORK": "1"}}).remote()
        pid, has_torch = ray.get(actor.facts.remote(), timeout=60)
        assert not has_torch
        return actor, pid

    with ray_runtime(1):
        first, first_pid = start()
        assert f"{worker_forkserver.MODULE} serve" in _parent_command(first_pid)
        waiter = _waiter_of(first_pid)
        assert waiter is not None
        # Ray ends the worker it knows (the fork): the process Ray started ends with it
        ray.kill(first)
        assert _wait_gone(first_pid) and _wait_gone(waiter)

        second, second_pid = start()
        waiter = _waiter_of(second_pid)
        assert waiter is not None
        # the process Ray started dies: its worker goes too
        os.kill(waiter, signal.SIGKILL)
        assert _wait_gone(second_pid)
        with pytest.raises(ray.exceptions.RayActorError):
            ray.get(second.facts.remote(), timeout=60)

        third, third_pid = start()
        waiter = _waiter_of(third_pid)
        server = int(Path(f"/proc/{third_pid}/stat").read_text().rsplit(")", 1)[1].split()[1])
        os.kill(server, signal.SIGKILL)
        assert _wait_gone(server)
        # the fork lives on, and its client now waits for it by its pid
        assert ray.get(third.facts.remote(), timeout=60)[0] == third_pid
        assert waiter is not None and not _wait_gone(waiter, timeout_s=1.0)
        ray.kill(third)
        assert _wait_gone(third_pid) and _wait_gone(waiter)

        # with the server gone, a new worker starts cold
        _, cold_pid = start()
        assert worker_forkserver.MODULE not in _parent_command(cold_pid)
