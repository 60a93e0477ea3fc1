"""sd_notify: the messages systemd would get, on a socket the test binds and
passes through NOTIFY_SOCKET, from a real subprocess."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from reconciler import notify
from reconciler.notify import Watchdog

# What the agent will do: ready once registered, pings from its worker loop,
# then stopping. The loop runs 0.6 s with a 0.2 s watchdog (0.1 s interval).
CHILD = """
import time
from reconciler import notify
watchdog = notify.Watchdog()
notify.ready("Agent running, cluster 8, host 8")
end = time.monotonic() + 0.6
while time.monotonic() < end:
    watchdog.ping_if_due()
    time.sleep(0.01)
notify.status("Stopping\\nnow")
notify.stopping()
"""


def receive(server: socket.socket) -> list[str]:
    messages = []
    server.settimeout(0.2)
    try:
        while True:
            messages.append(server.recv(4096).decode())
    except TimeoutError:
        return messages


@pytest.fixture
def path_socket(tmp_path: Path) -> Iterator[tuple[socket.socket, str]]:
    server = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    server.bind(str(tmp_path / "notify"))
    yield server, str(tmp_path / "notify")
    server.close()


@pytest.fixture
def abstract_socket() -> Iterator[tuple[socket.socket, str]]:
    name = f"reconciler-test-{uuid.uuid4().hex}"
    server = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    server.bind("\0" + name)
    yield server, "@" + name
    server.close()


def run_child(address: str) -> None:
    env = dict(os.environ, NOTIFY_SOCKET=address, WATCHDOG_USEC="200000")
    subprocess.run([sys.executable, "-c", CHILD], env=env, check=True, timeout=30)


@pytest.mark.parametrize("kind", ["path_socket", "abstract_socket"])
def test_notifications_arrive(kind: str, request: pytest.FixtureRequest) -> None:
    server, address = request.getfixturevalue(kind)
    run_child(address)
    messages = receive(server)
    assert messages[0] == "READY=1\nSTATUS=Agent running, cluster 8, host 8"
    assert messages[-2:] == ["STATUS=Stopping now", "STOPPING=1"]
    pings = messages[1:-2]
    # About one ping per 0.1 s over 0.6 s: several, never a flood.
    assert set(pings) == {"WATCHDOG=1"}
    assert 3 <= len(pings) <= 8


def test_no_socket_is_a_no_op(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("NOTIFY_SOCKET", raising=False)
    assert notify.ready() is False
    assert notify.stopping() is False


def test_socket_gone(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NOTIFY_SOCKET", str(tmp_path / "nobody"))
    assert notify.status("still deploying") is False  # logged, not raised


def test_watchdog_interval() -> None:
    assert Watchdog({"WATCHDOG_USEC": "900000000"}).interval == 450.0
    assert not Watchdog({}).enabled
    assert not Watchdog({"WATCHDOG_USEC": "0"}).enabled
    assert not Watchdog({"WATCHDOG_USEC": "soon"}).enabled
    # Inherited from a parent that systemd watches: not ours to ping.
    assert not Watchdog({"WATCHDOG_USEC": "1000000", "WATCHDOG_PID": "1"}).enabled
    mine = Watchdog({"WATCHDOG_USEC": "1000000", "WATCHDOG_PID": str(os.getpid())})
    assert mine.interval == 0.5


def test_ping_if_due(path_socket: tuple[socket.socket, str]) -> None:
    server, address = path_socket
    watchdog = Watchdog({"WATCHDOG_USEC": "60000000", "NOTIFY_SOCKET": address})
    assert watchdog.ping_if_due() is True
    assert watchdog.ping_if_due() is False  # 30 s not passed yet
    assert watchdog.ping() is True
    assert receive(server) == ["WATCHDOG=1", "WATCHDOG=1"]
