"""The persistent role lock on a real ZooKeeper: two hosts (two clients,
two sessions) of the same role."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator

import pytest
from kazoo.client import KazooClient

from reconciler.errors import ReconcilerError
from reconciler.zk.reader import read_properties
from reconciler.zk.rolelock import RoleLock
from tests.support.zookeeper import session

LOCK = "/role-locks/my.role"


@pytest.fixture
def other(zk_chroot: str) -> Iterator[KazooClient]:
    """A second session: another host."""
    with session(zk_chroot) as client:
        yield client


@pytest.fixture
def lock_node(zk: KazooClient) -> str:
    zk.ensure_path(LOCK)
    return LOCK


def requests(zk: KazooClient) -> list[str]:
    return sorted(zk.get_children(LOCK))


class Acquiring(threading.Thread):
    """`lock.acquire()` in a thread, as a waiting agent does."""

    def __init__(self, lock: RoleLock) -> None:
        super().__init__(daemon=True)
        self.lock = lock
        self.error: BaseException | None = None
        self.start()

    def run(self) -> None:
        try:
            self.lock.acquire()
        except BaseException as e:
            self.error = e


def test_lock_node_must_exist(zk: KazooClient) -> None:
    with pytest.raises(ReconcilerError) as error:
        RoleLock(zk, "my.role", "424242424242", "host42").acquire()
    assert str(error.value) == "role lock node '/role-locks/my.role' must exist"


def test_request_is_a_persistent_sequential_child(zk: KazooClient, lock_node: str) -> None:
    lock = RoleLock(zk, "my.role", "424242424242", "host42")
    with lock:
        assert requests(zk) == ["lr-0000000000"]
        assert lock.request == "lr-0000000000"
        assert read_properties(zk, f"{LOCK}/lr-0000000000") == {
            "requestor": "424242424242",
            "hostname": "host42",
        }
        assert zk.exists(f"{LOCK}/lr-0000000000").ephemeralOwner == 0
    # Leaving normally deletes the request.
    assert requests(zk) == []


def test_second_host_waits_until_the_first_releases(
    zk: KazooClient, other: KazooClient, lock_node: str
) -> None:
    first = RoleLock(zk, "my.role", "host-1", "one")
    second = RoleLock(other, "my.role", "host-2", "two")
    first.acquire()
    waiting = Acquiring(second)
    time.sleep(0.5)
    assert waiting.is_alive()
    assert requests(zk) == ["lr-0000000000", "lr-0000000001"]

    released = time.monotonic()
    first.release()
    waiting.join(5)
    assert not waiting.is_alive() and waiting.error is None
    # Woken by the watch, not by a poll.
    assert time.monotonic() - released < 0.5
    assert second.request == "lr-0000000001"
    assert requests(zk) == ["lr-0000000001"]
    second.release()
    assert requests(zk) == []


def test_error_keeps_the_request_and_the_next_run_adopts_it(
    zk: KazooClient, other: KazooClient, lock_node: str
) -> None:
    with pytest.raises(RuntimeError), RoleLock(zk, "my.role", "host-1", "one"):
        raise RuntimeError("deploy script failed")
    assert requests(zk) == ["lr-0000000000"]

    # Another host of the role waits behind the kept request.
    blocked = Acquiring(RoleLock(other, "my.role", "host-2", "two"))
    time.sleep(0.3)
    assert blocked.is_alive()

    # The failed host's next run (a new session) adopts its request: it
    # holds the lock at once, and the request it made is deleted.
    with RoleLock(other, "my.role", "host-1", "one") as again:
        assert again.request == "lr-0000000000" and again.adopted
        assert requests(zk) == ["lr-0000000000", "lr-0000000001"]
        assert blocked.is_alive()
    blocked.join(5)
    assert blocked.error is None
    assert requests(zk) == ["lr-0000000001"]


def test_interrupted_wait_gives_up_and_deletes_its_request(
    zk: KazooClient, other: KazooClient, lock_node: str
) -> None:
    holder = RoleLock(zk, "my.role", "host-1", "one")
    holder.acquire()
    give_up = threading.Event()

    def interrupt() -> None:
        if give_up.is_set():
            raise KeyboardInterrupt

    waiting = Acquiring(RoleLock(other, "my.role", "host-2", "two", interrupt, poll=0.05))
    time.sleep(0.3)
    assert requests(zk) == ["lr-0000000000", "lr-0000000001"]
    give_up.set()
    waiting.join(5)
    assert isinstance(waiting.error, KeyboardInterrupt)
    assert requests(zk) == ["lr-0000000000"]
    holder.release()
    assert requests(zk) == []


def test_max_parallel_hosts_of_a_role_hold_it_at_once(
    zk: KazooClient, other: KazooClient, zk_chroot: str, lock_node: str
) -> None:
    with session(zk_chroot) as third_client:
        first = RoleLock(zk, "my.role", "host-1", "one", max_parallel=2)
        second = RoleLock(other, "my.role", "host-2", "two", max_parallel=2)
        third = RoleLock(third_client, "my.role", "host-3", "three", max_parallel=2)
        first.acquire()
        second.acquire()  # the second place: held at once
        waiting = Acquiring(third)
        time.sleep(0.5)
        assert waiting.is_alive()
        # A failed host keeps its place, and with it one of the two.
        with pytest.raises(RuntimeError), first:
            raise RuntimeError("deploy failed")
        time.sleep(0.3)
        assert waiting.is_alive()
        second.release()
        waiting.join(5)
        assert not waiting.is_alive() and waiting.error is None
        assert requests(zk) == ["lr-0000000000", "lr-0000000002"]
        third.release()
