"""The tree mirror against a real ZooKeeper: it must always equal a fresh
full read of the deployment tree, and cost a handful of reads per change.

`RECONCILER_MIRROR_EXAMPLES` raises the number of random examples (each of
up to 60 random creates, sets, deletes and disconnections) above the
default 60.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from kazoo.client import KazooClient, KazooState
from kazoo.exceptions import NodeExistsError, NoNodeError
from kazoo.protocol.connection import _CONNECTION_DROP
from loguru import logger

from reconciler.tree import Node
from reconciler.zk.connect import connect
from reconciler.zk.mirror import DEFAULT_EXCLUDE, Exclusions, TreeMirror
from reconciler.zk.reader import read_tree
from reconciler.zk.server import ZooKeeperServer, four_letter_word
from reconciler.zk.storage import encode
from tests.support.zookeeper import session

EXAMPLES = int(os.environ.get("RECONCILER_MIRROR_EXAMPLES", "60"))
EXCLUDED = Exclusions(DEFAULT_EXCLUDE)


def full_read(client: KazooClient) -> Node:
    return read_tree(client, "/", skip=EXCLUDED.skips)


def wait_until(predicate: Any, timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


@pytest.fixture
def writer(zk_chroot: str) -> Iterator[KazooClient]:
    """Another client on the test's chroot: changes come from elsewhere,
    as they do from `reconcile sync`."""
    with session(zk_chroot) as client:
        yield client


@pytest.fixture
def mirror(zk: KazooClient) -> Iterator[TreeMirror]:
    mirror = TreeMirror(zk)
    mirror.start()
    yield mirror
    mirror.stop()


# Random changes: the top-level names include excluded ones and `hosts`,
# whose own properties are mirrored but not its children.
TOP = st.sampled_from(["a", "b", "hosts", "agent-locks"])
NAME = st.sampled_from(["x", "y", "z"])
PATHS = st.builds(lambda top, rest: "/" + "/".join([top, *rest]), TOP, st.lists(NAME, max_size=3))
VALUES = st.dictionaries(st.sampled_from(["v", "w"]), st.integers(0, 3), max_size=2)
# Disconnections are slow (kazoo reconnects): rarer than changes.
KINDS = st.sampled_from(["create"] * 4 + ["set"] * 3 + ["delete"] * 2 + ["check"] * 2 + ["drop"])
OPERATIONS = st.lists(st.tuples(KINDS, PATHS, VALUES), max_size=60)


def drop_connection(client: KazooClient) -> None:
    """Break the client's connection (kazoo's own test hook): the server
    drops the connection's watches; kazoo reconnects in the same session."""
    states: list[str] = []
    client.add_listener(states.append)
    client._call(_CONNECTION_DROP, client.handler.async_result())
    wait_until(lambda: KazooState.SUSPENDED in states and client.connected)
    client.remove_listener(states.append)


def apply(client: KazooClient, operation: str, path: str, value: dict[str, int]) -> None:
    try:
        if operation == "create":
            client.create(path, encode(value), makepath=True)
        elif operation == "set":
            client.set(path, encode(value))
        elif operation == "delete":
            client.delete(path, recursive=True)
    except (NoNodeError, NodeExistsError):
        pass


@settings(
    max_examples=EXAMPLES,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(OPERATIONS)
def test_mirror_equals_a_full_read_after_random_changes(
    zk: KazooClient, writer: KazooClient, operations: list[tuple[str, str, dict[str, int]]]
) -> None:
    for child in writer.get_children("/"):
        writer.delete("/" + child, recursive=True)
    mirror = TreeMirror(zk)
    mirror.start()
    drops = 0
    try:
        for operation, path, value in [*operations, ("check", "", {})]:
            if operation == "check":
                assert mirror.tree(fresh=True) == full_read(writer)
            elif operation == "drop":
                drop_connection(zk)
                drops += 1
            else:
                apply(writer, operation, path, value)
        # Every change came as an event: a full read only after a
        # disconnection (at most one per checkpoint).
        assert 1 <= mirror.stats.full_reads <= 1 + drops
        if not drops:
            assert mirror.stats.full_reads == 1
    finally:
        mirror.stop()


def test_one_change_reads_one_node(
    zk_server_instance: ZooKeeperServer, zk: KazooClient, writer: KazooClient
) -> None:
    transaction = writer.transaction()
    for i in range(40):
        transaction.create(f"/n{i}")
    transaction.commit()
    results = [writer.create_async(f"/n{i % 40}/c{i}", encode({"i": i})) for i in range(2000)]
    for result in results:
        result.get()
    mirror = TreeMirror(zk)
    mirror.start()
    try:
        assert mirror.stats.nodes_read > 2000
        nodes, requests = mirror.stats.nodes_read, mirror.stats.requests
        packets = server_packets(zk_server_instance)
        writer.set("/n7/c47", encode({"i": "changed"}))
        tree = mirror.tree(fresh=True)
        packets = server_packets(zk_server_instance) - packets
        assert tree.get("/n7/c47") == Node({"i": "changed"})
        assert mirror.stats.nodes_read - nodes == 1
        # The sync and one read (the writer's set is the third packet).
        assert mirror.stats.requests - requests == 2
        assert packets < 10, packets
        assert tree == full_read(writer)
    finally:
        mirror.stop()


def server_packets(server: ZooKeeperServer) -> int:
    for line in four_letter_word(server.port, "mntr").splitlines():
        name, _, value = line.partition("\t")
        if name == "zk_packets_received":
            return int(value)
    raise AssertionError("no zk_packets_received in mntr")


def test_other_hosts_and_lock_queues_are_not_even_sent(
    mirror: TreeMirror, writer: KazooClient
) -> None:
    for path in ("/agent-locks", "/role-locks"):
        writer.create(path)
    writer.create("/hosts", encode({"version": 1}))
    mirror.tree(fresh=True)
    events, nodes = mirror.stats.events, mirror.stats.nodes_read
    for i in range(20):
        writer.create(f"/hosts/h{i}", encode({"version": 1}), ephemeral=True)
        writer.set(f"/hosts/h{i}", encode({"version": 2}))
        writer.create(f"/agent-locks/svc{i}/lock", makepath=True)
        writer.create(f"/role-locks/web{i}/lr", makepath=True)
    tree = mirror.tree(fresh=True)
    assert mirror.stats.events == events
    assert mirror.stats.nodes_read == nodes
    assert tree.get("/hosts") == Node({"version": 1})
    assert "agent-locks" not in tree.children
    # `/hosts`' own properties are followed.
    writer.set("/hosts", encode({"version": 2}))
    assert mirror.tree(fresh=True).get("/hosts") == Node({"version": 2})


def test_snapshots_stay_as_they_were(mirror: TreeMirror, writer: KazooClient) -> None:
    writer.create("/svc/app", encode({"version": "1"}), makepath=True)
    before = mirror.tree(fresh=True)
    sequence = mirror.sequence
    writer.set("/svc/app", encode({"version": "2"}))
    after = mirror.tree(fresh=True)
    assert before.get("/svc/app") == Node({"version": "1"})
    assert after.get("/svc/app") == Node({"version": "2"})
    assert mirror.sequence == sequence + 1
    assert mirror.changes_since(sequence) == {"/svc/app"}
    # Nothing changed: the same snapshot, the same sequence.
    assert mirror.tree(fresh=True) is after
    assert mirror.sequence == sequence + 1
    assert mirror.changes_since(0) is None  # the first full read


def test_rebuilt_after_a_server_restart() -> None:
    with ZooKeeperServer() as server:
        client = connect(server.connection)
        writer = connect(server.connection)
        try:
            writer.create("/svc/app", encode({"version": "1"}), makepath=True)
            mirror = TreeMirror(client)
            mirror.start()
            states: list[str] = []
            client.add_listener(states.append)
            server.stop()
            wait_until(lambda: KazooState.SUSPENDED in states)
            # Changed while the mirror's connection is down.
            server.start()
            wait_until(lambda: writer.connected and client.connected)
            writer.set("/svc/app", encode({"version": "2"}))
            assert mirror.tree(fresh=True) == full_read(writer)
            assert mirror.stats.full_reads == 2
            # The watches are back: later changes come as events again.
            writer.create("/svc/other", encode({"version": "3"}))
            writer.set("/svc/app", encode({"version": "4"}))
            assert mirror.tree(fresh=True) == full_read(writer)
            assert mirror.stats.full_reads == 2
        finally:
            for each in (client, writer):
                each.stop()
                each.close()


def test_rebuilt_after_session_expiry(
    zk_chroot: str, zk: KazooClient, mirror: TreeMirror, writer: KazooClient
) -> None:
    writer.create("/svc/app", encode({"version": "1"}), makepath=True)
    mirror.tree(fresh=True)
    states: list[str] = []
    zk.add_listener(states.append)
    session = zk.client_id
    # Another client taking over the session and closing it: a real expiry.
    thief = KazooClient(hosts=zk_chroot, client_id=session)
    thief.start(10)
    thief.stop()
    thief.close()
    wait_until(lambda: KazooState.LOST in states and zk.connected)
    assert zk.client_id[0] != session[0]
    writer.set("/svc/app", encode({"version": "2"}))
    assert mirror.tree(fresh=True) == full_read(writer)
    assert mirror.stats.full_reads == 2
    writer.delete("/svc/app")
    assert mirror.tree(fresh=True) == full_read(writer)
    assert mirror.stats.full_reads == 2


def test_old_server_read_in_full_and_said_once(zk: KazooClient, writer: KazooClient) -> None:
    # 999 is no opcode: ZooKeeper answers UnimplementedError, as a 3.5
    # server answers addWatch.
    warnings: list[str] = []
    # Only the mirror's own: the unknown opcode also drops the connection,
    # which the connection's listener reports.
    sink = logger.add(
        lambda message: warnings.append(message.record["message"]),
        level="WARNING",
        filter="reconciler.zk.mirror",
    )
    mirror = TreeMirror(zk, opcode=999)
    try:
        mirror.start()
        writer.create("/svc/app", encode({"version": "1"}), makepath=True)
        assert mirror.tree() == full_read(writer)
        writer.set("/svc/app", encode({"version": "2"}))
        assert mirror.tree() == full_read(writer)
        assert mirror.stats.full_reads == 3
        assert not mirror.persistent
        assert warnings == [
            "ZooKeeper has no persistent watches (addWatch, 3.6+): "
            "reading the whole tree for every run"
        ]
    finally:
        logger.remove(sink)
        mirror.stop()


def test_a_mirror_below_the_root(zk: KazooClient, writer: KazooClient) -> None:
    writer.create("/svc/app/deploy/h1", makepath=True)
    writer.create("/other", encode({"x": 1}))
    mirror = TreeMirror(zk, root="/svc")
    mirror.start()
    try:
        writer.create("/svc/new", encode({"n": 1}))
        writer.set("/other", encode({"x": 2}))
        assert mirror.tree(fresh=True) == read_tree(writer, "/svc")
        assert mirror.stats.full_reads == 1
    finally:
        mirror.stop()


def test_exclusions() -> None:
    assert EXCLUDED.spine == {"/", "/hosts"}
    assert not EXCLUDED.skips("/hosts")
    assert EXCLUDED.skips("/hosts/h1")
    assert EXCLUDED.skips("/agent-locks") and EXCLUDED.skips("/agent-locks/svc/x")
    assert not EXCLUDED.skips("/agent-locksmith")
    assert not EXCLUDED.skips("/svc/hosts/h1")
