"""The service lock with max-parallel holders, against a real ZooKeeper:
the limit, the order, giving up a wait, and a holder frozen past its
session timeout (a real SIGSTOP of a real process)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from kazoo.client import KazooClient
from loguru import logger

from reconciler.zk.connect import connect
from reconciler.zk.servicelock import REQUEST, ServiceLock
from tests.support.overlap import most_at_once

PROJECT = Path(__file__).resolve().parent.parent


class Stop(Exception):
    pass


@pytest.fixture
def clients(zk_chroot: str) -> Iterator[Callable[[], KazooClient]]:
    """A client per host: each host has its own session."""
    made: list[KazooClient] = []

    def make() -> KazooClient:
        made.append(connect(zk_chroot))
        return made[-1]

    yield make
    for client in made:
        client.stop()
        client.close()


def wait_until(predicate: Callable[[], Any], timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.02)


def requests(zk: KazooClient, name: str = "svc") -> list[str]:
    return [c for c in zk.get_children(f"/agent-locks/{name}") if REQUEST in c]


def test_at_most_max_parallel_hosts_at_once(clients: Callable[[], KazooClient]) -> None:
    spans: list[tuple[float, float]] = []

    def host(number: int) -> None:
        with ServiceLock(clients(), "svc", f"h{number}", f"host{number}", max_parallel=2):
            start = time.monotonic()
            time.sleep(0.15)
            spans.append((start, time.monotonic()))

    threads = [threading.Thread(target=host, args=(n,)) for n in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert len(spans) == 6
    assert most_at_once(spans) == 2


def test_first_come_first_served_without_losing_places(
    zk: KazooClient, clients: Callable[[], KazooClient]
) -> None:
    holder = ServiceLock(clients(), "svc", "h", "holder")
    holder.acquire()
    order: list[str] = []
    places: dict[str, str | None] = {}

    def host(name: str, client: KazooClient) -> None:
        lock = ServiceLock(client, "svc", name, name)
        with lock:
            order.append(name)
            places[name] = lock.request

    names = [f"w{n}" for n in range(5)]
    threads = []
    for name in names:
        threads.append(threading.Thread(target=host, args=(name, clients())))
        threads[-1].start()
        wait_until(lambda: len(requests(zk)) == len(threads) + 1)
    waiting = set(requests(zk)) - {holder.request}
    # Waiting more than a second: a polling waiter would have asked anew
    # five times a second.
    time.sleep(1.2)
    holder.release()
    for thread in threads:
        thread.join(30)
    assert order == names
    assert set(places.values()) == waiting


def test_interrupted_wait_leaves_the_line(
    zk: KazooClient, clients: Callable[[], KazooClient]
) -> None:
    holder = ServiceLock(clients(), "svc", "h", "holder")
    holder.acquire()
    stopping = threading.Event()

    def interrupt() -> None:
        if stopping.is_set():
            raise Stop()

    waiter = ServiceLock(clients(), "svc", "w", "waiter", interrupt=interrupt)
    outcome: list[BaseException] = []

    def wait() -> None:
        try:
            waiter.acquire()
        except BaseException as error:
            outcome.append(error)

    thread = threading.Thread(target=wait)
    thread.start()
    wait_until(lambda: len(requests(zk)) == 2)
    stopping.set()
    thread.join(5)
    assert isinstance(outcome[0], Stop)
    assert requests(zk) == [holder.request]
    holder.release()
    assert requests(zk) == []


def test_cancel_wakes_the_waiter_at_once(
    zk: KazooClient, clients: Callable[[], KazooClient]
) -> None:
    holder = ServiceLock(clients(), "svc", "h", "holder")
    holder.acquire()
    waiter = ServiceLock(clients(), "svc", "w", "waiter", cancelled=Stop, poll=30)
    outcome: list[BaseException] = []
    thread = threading.Thread(target=lambda: outcome.append(pytest.raises(Stop, waiter.acquire)))
    thread.start()
    wait_until(lambda: len(requests(zk)) == 2)
    started = time.monotonic()
    waiter.cancel()
    thread.join(5)
    assert time.monotonic() - started < 2
    assert outcome and requests(zk) == [holder.request]
    holder.release()


def test_waits_for_an_agent_on_kazoos_lock(
    zk: KazooClient, clients: Callable[[], KazooClient]
) -> None:
    # An agent not yet upgraded holds the same node with kazoo's Lock.
    old = zk.Lock("/agent-locks/svc", "old agent")
    old.acquire()
    acquired = threading.Event()

    def host() -> None:
        with ServiceLock(clients(), "svc", "new", "new agent"):
            acquired.set()

    thread = threading.Thread(target=host)
    thread.start()
    wait_until(lambda: len(requests(zk)) == 2)
    assert not acquired.wait(0.5)
    old.release()
    assert acquired.wait(10)
    thread.join(10)


class Holder:
    """tests/support/lock_holder.py in its own process: a host that takes the lock
    and runs a deploy script (a child process) for `seconds`."""

    def __init__(self, connection: str, owner: str, seconds: float, log: Path) -> None:
        self.log = log
        self.process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "tests.support.lock_holder",
                "hold",
                connection,
                "svc",
                owner,
                "1.5",
            ]
            + [str(seconds), str(log)],
            stdout=subprocess.PIPE,
            text=True,
            cwd=PROJECT,
            # Its own group: a crash trial kills the deploy script with it.
            start_new_session=True,
        )
        assert self.process.stdout is not None
        assert self.process.stdout.readline() == "acquired\n"

    def deploy_log(self) -> dict[str, float]:
        if not self.log.exists():
            return {}
        return {
            word: float(value)
            for word, value in (line.split() for line in self.log.read_text().splitlines())
        }

    def finish(self) -> list[str]:
        output, _ = self.process.communicate(timeout=30)
        return output.splitlines()


@pytest.fixture
def warnings() -> Iterator[list[str]]:
    messages: list[str] = []
    sink = logger.add(lambda m: messages.append(m.record["message"]), level="WARNING")
    yield messages
    logger.remove(sink)


def wait_for_lock(lock: ServiceLock) -> tuple[threading.Thread, list[float]]:
    acquired: list[float] = []

    def take() -> None:
        lock.acquire()
        acquired.append(time.time())

    thread = threading.Thread(target=take, daemon=True)
    thread.start()
    return thread, acquired


def test_frozen_holder_past_its_session_never_overlaps(
    zk_chroot: str,
    zk: KazooClient,
    clients: Callable[[], KazooClient],
    tmp_path: Path,
    warnings: list[str],
) -> None:
    holder = Holder(zk_chroot, "h1", 4, tmp_path / "deploy.log")
    wait_until(lambda: "start" in holder.deploy_log())
    os.kill(holder.process.pid, signal.SIGSTOP)
    try:
        waiter = ServiceLock(clients(), "svc", "h2", "host2")
        thread, acquired = wait_for_lock(waiter)
        # The frozen holder's session expires: only the waiter's request is left.
        wait_until(lambda: requests(zk) == [waiter.request])
        # Its deploy script is still running: a lock alone would let the
        # waiter start now.
        assert "end" not in holder.deploy_log()
        wait_until(lambda: "end" in holder.deploy_log())
        time.sleep(0.3)
        assert not acquired, "the waiter started while the holder was registered as deploying"
        assert any("lost its ZooKeeper session while deploying" in w for w in warnings)
    finally:
        os.kill(holder.process.pid, signal.SIGCONT)
    assert holder.finish() == ["halt", "lost Lost the lock for /svc while deploying"]
    thread.join(10)
    assert acquired and acquired[0] > holder.deploy_log()["end"]
    waiter.release()


def test_crashed_holder_holds_others_back_until_it_comes_back(
    zk_chroot: str,
    zk: KazooClient,
    clients: Callable[[], KazooClient],
    tmp_path: Path,
    warnings: list[str],
) -> None:
    holder = Holder(zk_chroot, "h1", 30, tmp_path / "deploy.log")
    os.killpg(holder.process.pid, signal.SIGKILL)
    holder.process.wait()
    other = ServiceLock(clients(), "svc", "h2", "host2")
    thread, acquired = wait_for_lock(other)
    wait_until(lambda: requests(zk) == [other.request])
    time.sleep(0.3)
    assert not acquired
    # The crashed host's agent starts again and asks: its own registration
    # is old news, so it goes, and the first in line goes first.
    restarted = ServiceLock(clients(), "svc", "h1", "host1")
    restarted_thread, restarted_acquired = wait_for_lock(restarted)
    thread.join(10)
    assert acquired and not restarted_acquired
    other.release()
    restarted_thread.join(10)
    assert restarted_acquired
    restarted.release()
    assert zk.get_children("/agent-locks/svc") == []
