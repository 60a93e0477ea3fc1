"""sd_notify from the real agent daemon (real ZooKeeper, the sandbox): the
messages systemd would get on the NOTIFY_SOCKET the test binds."""

from __future__ import annotations

import os
import signal
import socket
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from kazoo.client import KazooClient

from reconciler.treefmt import parse
from reconciler.zk.importer import import_tree
from tests.support.agent_process import AgentProcess
from tests.support.sandbox_host import TREES
from tests.support.seed import HOST_NODE, seed_host, set_cluster_version
from tests.support.trees import SLOW

# systemd's WatchdogSec=0.4s: the agent pings every 0.2 s.
WATCHDOG_USEC = "400000"


class Listener:
    """The socket systemd would listen on, and what arrived, in order."""

    def __init__(self, path: Path) -> None:
        self.socket = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.socket.bind(str(path))
        self.messages: list[tuple[float, str]] = []

    def receive_until(self, wanted: str, timeout: float = 20) -> str:
        """Read messages until one has the field `wanted`; that message."""
        deadline = time.monotonic() + timeout
        while (remaining := deadline - time.monotonic()) > 0:
            self.socket.settimeout(remaining)
            try:
                message = self.socket.recv(4096).decode()
            except TimeoutError:
                break
            self.messages.append((time.monotonic(), message))
            if wanted in message.split("\n"):
                return message
        raise AssertionError(f"no {wanted} in {[m for _, m in self.messages]}")

    def fields(self) -> list[str]:
        return [field for _, message in self.messages for field in message.split("\n")]


def kill_children(pid: int) -> None:
    """The hung deploy script: `exec sleep`, in a session of its own, so
    found by its parent."""
    for entry in Path("/proc").iterdir():
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        # `pid (comm) state ppid ...`; comm may hold spaces.
        if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
            os.kill(int(entry.name), signal.SIGKILL)


@pytest.fixture
def listen(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[[], Listener]]:
    """Bind the socket and export it (with WATCHDOG_USEC) to the agents the
    test starts from then on (not to the seed's `--once` runs)."""
    listeners: list[Listener] = []

    def start() -> Listener:
        monkeypatch.setenv("NOTIFY_SOCKET", str(tmp_path / "notify"))
        monkeypatch.setenv("WATCHDOG_USEC", WATCHDOG_USEC)
        listeners.append(Listener(tmp_path / "notify"))
        return listeners[-1]

    yield start
    for listener in listeners:
        listener.socket.close()


def test_ready_then_watchdog_then_stopping(
    tmp_path: Path, zk: KazooClient, zk_chroot: str, listen: Callable[[], Listener]
) -> None:
    host = seed_host(tmp_path, zk)
    listener = listen()
    agent = AgentProcess(host, zk_chroot)
    try:
        ready = listener.receive_until("READY=1")
        # Registered before it says so, and says where it stands.
        assert zk.exists(HOST_NODE) is not None
        assert "STATUS=Agent running; cluster 1, host 1" in ready.split("\n")
        assert "WATCHDOG=1" not in listener.fields()  # READY=1 comes first
        # Idle, the worker keeps pinging: about every 0.2 s.
        first = listener.receive_until("WATCHDOG=1")
        for _ in range(4):
            listener.receive_until("WATCHDOG=1")
        pings = [t for t, m in listener.messages if m == "WATCHDOG=1"]
        assert pings[-1] - pings[0] < 4 * 0.4, pings
        assert first == "WATCHDOG=1"
    finally:
        assert agent.stop() == 0
    listener.receive_until("STOPPING=1", timeout=5)


def test_no_watchdog_while_a_command_hangs(
    tmp_path: Path, zk: KazooClient, zk_chroot: str, listen: Callable[[], Listener]
) -> None:
    """A deploy script that never returns stops the pings: systemd would
    kill and restart the agent (the point of the watchdog)."""
    host = seed_host(tmp_path, zk)
    v2 = (TREES / "seed-v2.zk").read_text().replace("/hosts\n  version = 2\n", "")
    import_tree(zk, parse(v2 + SLOW), "/", trim=True)
    listener = listen()
    agent = AgentProcess(host, zk_chroot)
    try:
        listener.receive_until("READY=1")
        listener.receive_until("WATCHDOG=1")
        set_cluster_version(zk, 2)
        agent.wait_for_message("INFO /opt/tooslow/bin/zookeeper-deploy /slow/app 0")
        hung = time.monotonic()
        with pytest.raises(AssertionError, match="no WATCHDOG=1"):
            listener.receive_until("WATCHDOG=1", timeout=1.0)  # 2.5 watchdog timeouts
        assert all(t < hung + 0.2 for t, m in listener.messages if m == "WATCHDOG=1")
    finally:
        kill_children(agent.process.pid)
        assert agent.stop() == 0
