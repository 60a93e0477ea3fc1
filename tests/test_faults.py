"""ZooKeeper faults are not the host's failure (issue 11): a run that cannot
reach ZooKeeper waits (status `waiting for ZooKeeper`) and runs again once
connected; a halt survives a short outage; a leader failover while agents
read a large tree right after a bump halts nothing. Real ZooKeeper servers
(one private server, and a three-server ensemble), real agents."""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from kazoo.client import KazooClient
from loguru import logger

from reconciler.cluster import ClusterUnavailable
from reconciler.config import Config
from reconciler.model import HostIdentity
from reconciler.run import WAITING, Outcome, Reconciler
from reconciler.treefile import TreeFileCluster
from reconciler.treefmt import parse
from reconciler.zk.cluster import ZooKeeperCluster
from reconciler.zk.connect import connect
from reconciler.zk.importer import import_tree
from reconciler.zk.reader import read_properties
from reconciler.zk.server import ZooKeeperEnsemble, ZooKeeperServer
from tests.support.agent_process import AgentProcess
from tests.support.sandbox_host import SANDBOX_BIN, SandboxHost
from tests.support.seed import HOST_NODE, import_fixture, seed_host, set_cluster_version, wait_until

HOST_ID = "424242424242"
CANNOT_REACH = "WARNING Cannot reach ZooKeeper"


@pytest.fixture
def server() -> Iterator[ZooKeeperServer]:
    """A private server: these tests stop and restart it."""
    with ZooKeeperServer() as server:
        yield server


@pytest.fixture
def admin(server: ZooKeeperServer) -> Iterator[KazooClient]:
    client = connect(server.connection)
    yield client
    client.stop()
    client.close()


@pytest.fixture
def messages() -> Iterator[list[str]]:
    seen: list[str] = []
    sink = logger.add(lambda m: seen.append(f"{m.record['level'].name} {m.record['message']}"))
    yield seen
    logger.remove(sink)


def in_process(host: SandboxHost, cluster: Any) -> Reconciler:
    config = Config(
        host_id=host.host_id,
        host_name=host.host_name,
        run_directory=host.run_directory,
        root=host.root,
        path=(SANDBOX_BIN,),
    )
    return Reconciler(config, cluster, threading.Event())


def test_recorded_error_is_never_empty(tmp_path: Path, messages: list[str]) -> None:
    """An exception without a message still says what went wrong."""

    class Broken(TreeFileCluster):
        def tree(self) -> Any:
            raise KeyError()

    cluster = Broken(parse("/hosts\n  version = 1\n"), 1)
    assert in_process(SandboxHost(tmp_path), cluster).run() is Outcome.FAILED
    assert cluster.cluster_version is None
    assert cluster.error == "KeyError"
    assert "CRITICAL FAILED deploying version 1" in messages


def test_halt_that_cannot_reach_zookeeper_is_made_by_the_next_run(
    tmp_path: Path, messages: list[str]
) -> None:
    """The host's failure is not forgotten when the halt cannot be written:
    the next run halts, if the cluster version is still the failed one."""

    class Flaky(TreeFileCluster):
        outages = 1

        def halt(self) -> None:
            if self.outages:
                self.outages -= 1
                raise ClusterUnavailable("no answer from ZooKeeper within 1 s")
            super().halt()

    cluster = Flaky(parse("/x\n  /y : z4m\n    /deploy\n      /424242424242\n"), 5)
    reconciler = in_process(SandboxHost(tmp_path), cluster)
    assert reconciler.run() is Outcome.FAILED  # no version for /x/y
    assert cluster.cluster_version == 5
    assert any(m.startswith("ERROR Could not halt the cluster") for m in messages)
    assert reconciler.run() is Outcome.FAILED
    assert cluster.cluster_version is None
    assert cluster.error == "No version found for /x/y"


def test_unreachable_zookeeper_waits_and_halts_nothing(
    tmp_path: Path,
    server: ZooKeeperServer,
    admin: KazooClient,
    messages: list[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    host = seed_host(tmp_path, admin)
    monkeypatch.setenv("SANDBOX_JOURNAL", str(host.journal))
    import_fixture(admin, "seed-v2")
    set_cluster_version(admin, 2)
    client = connect(server.connection, timeout=4)
    try:
        identity = HostIdentity(id=host.host_id, name=host.host_name)
        cluster = ZooKeeperCluster(client, identity, threading.Event(), retry_deadline=1)
        wait_until(lambda: cluster.version() == 2)
        reconciler = in_process(host, cluster)
        server.stop()
        started = time.monotonic()
        outcome = reconciler.run()
        assert outcome is Outcome.WAITING
        assert outcome.exit_status == 75  # for --once: try again later
        assert time.monotonic() - started < 5  # bounded by the retry deadline
        assert any(m.startswith(CANNOT_REACH) for m in messages)
        assert host.status() == WAITING
        assert host.host_version() == 1

        server.start()
        wait_until(lambda: client.connected)
        assert read_properties(admin, "/hosts")["version"] == 2  # not halted
        assert reconciler.run() is Outcome.DONE
        assert host.host_version() == 2
        assert host.status() == "done"
        assert "error" not in read_properties(admin, f"/hosts/{HOST_ID}")
    finally:
        client.stop()
        client.close()


def test_halt_is_retried_across_an_outage(
    tmp_path: Path, server: ZooKeeperServer, admin: KazooClient
) -> None:
    admin.ensure_path("/hosts")
    set_cluster_version(admin, 3)
    client = connect(server.connection, timeout=10)
    try:
        identity = HostIdentity(id=HOST_ID, name="host42")
        cluster = ZooKeeperCluster(client, identity, threading.Event(), retry_deadline=10)
        server.stop()
        halting = threading.Thread(target=cluster.halt)
        halting.start()
        time.sleep(1)
        assert halting.is_alive()  # still trying
        server.start()
        halting.join(15)
        assert not halting.is_alive()
        wait_until(lambda: admin.connected)
        assert read_properties(admin, "/hosts")["version"] is None
    finally:
        client.stop()
        client.close()


def test_tree_read_cut_by_a_lost_connection_starts_over(
    server: ZooKeeperServer, admin: KazooClient
) -> None:
    """What a loaded machine or a failover does to a read: the connection
    drops half-way; the read starts over and returns the whole tree."""
    import_tree(admin, parse(large_tree(groups=80)), "/", trim=True)
    client = connect(server.connection, timeout=10)
    try:
        identity = HostIdentity(id=HOST_ID, name="host42")
        cluster = ZooKeeperCluster(client, identity, threading.Event(), retry_deadline=10)
        result: list[Any] = []
        reading = threading.Thread(target=lambda: result.append(cluster.tree()))
        reading.start()
        time.sleep(0.1)
        assert reading.is_alive()  # the outage cuts the read
        server.stop()
        time.sleep(0.5)
        server.start()
        reading.join(30)
        assert not reading.is_alive()
        bulk = result[0].children["bulk"]
        assert len(bulk.children) == 80
        assert all(len(group.children) == LEAVES for group in bulk.children.values())
    finally:
        client.stop()
        client.close()


def test_outage_during_a_lock_wait_halts_nothing(
    tmp_path: Path, server: ZooKeeperServer, admin: KazooClient
) -> None:
    """ZooKeeper goes away for longer than the agent's session while the
    agent waits for a service lock: nothing is halted, no error is
    recorded, and the agent converges once ZooKeeper is back."""
    host = seed_host(tmp_path, admin)
    host.extra["zookeeper-session-timeout"] = "2"
    agent = AgentProcess(host, server.connection)
    lock = admin.Lock("/agent-locks/cust,someapp,cms", "another host")
    try:
        agent.wait_for_message("INFO Agent starting, cluster 1, host 1")
        assert lock.acquire(timeout=5)
        import_fixture(admin, "seed-v2")
        set_cluster_version(admin, 2)
        agent.wait_for_message("INFO yum -q list installed z4m")
        server.stop()
        time.sleep(3)
        server.start()
        wait_until(lambda: admin.connected and admin.exists(HOST_NODE) is not None)
        assert read_properties(admin, "/hosts")["version"] == 2  # not halted
        lock.release()
        agent.wait_for_message("INFO Done deploying version 2")
        assert read_properties(admin, "/hosts")["version"] == 2
        assert "error" not in read_properties(admin, HOST_NODE)
        assert not [m for m in agent.messages() if m.startswith(("ERROR", "CRITICAL"))]
    finally:
        if admin.connected and lock.is_acquired:
            lock.release()
        assert agent.stop() == 0


# A leader failover right after a bump.

# Small enough for the suite; the figures (30 agents, a 20,000-node
# tree) with RECONCILER_FAILOVER_AGENTS=30 RECONCILER_FAILOVER_GROUPS=267.
AGENTS = int(os.environ.get("RECONCILER_FAILOVER_AGENTS", "3"))
GROUPS = int(os.environ.get("RECONCILER_FAILOVER_GROUPS", "40"))
LEAVES = 75  # GROUPS * LEAVES nodes besides the deployments


@pytest.fixture(scope="module")
def ensemble() -> Iterator[ZooKeeperEnsemble]:
    with ZooKeeperEnsemble() as ensemble:
        yield ensemble


def large_tree(groups: int = GROUPS) -> str:
    lines = ["/bulk"]
    for g in range(groups):
        lines.append(f"  /g{g:03}")
        for n in range(LEAVES):
            lines += [f"    /n{n:03}", f"      value = {n}"]
    for i in range(AGENTS):
        lines += [
            f"/svc{i}",
            "  /cms : z4m",
            "    version = '1.0.0'",
            "    /deploy",
            f"      /host{i}",
        ]
    return "\n".join(lines) + "\n"


def test_leader_failover_during_tree_reads_halts_nothing(
    tmp_path: Path, ensemble: ZooKeeperEnsemble
) -> None:
    admin = connect(ensemble.connection)
    agents: list[AgentProcess] = []
    try:
        import_tree(admin, parse(large_tree()), "/", trim=True)
        admin.ensure_path("/hosts")
        set_cluster_version(admin, 1)
        for i in range(AGENTS):
            host = SandboxHost(tmp_path / f"h{i}", host_id=f"host{i}", host_name=f"host{i}.test")
            host.extra["zookeeper-session-timeout"] = "6"
            agents.append(AgentProcess(host, ensemble.connection))
        for agent in agents:
            agent.wait_for_message("INFO Done deploying version 1", timeout=60 + 5 * AGENTS)

        set_cluster_version(admin, 2)
        # The agents are reading the tree now.
        ensemble.leader().kill()
        for agent in agents:
            agent.wait_for_message("INFO Done deploying version 2", timeout=60 + 5 * AGENTS)
        wait_until(lambda: admin.connected)
        assert read_properties(admin, "/hosts")["version"] == 2
        for i, agent in enumerate(agents):
            assert "error" not in read_properties(admin, f"/hosts/host{i}")
            assert not [m for m in agent.messages() if m.startswith(("ERROR", "CRITICAL"))]
    finally:
        for agent in agents:
            assert agent.stop() == 0
        admin.stop()
        admin.close()


def test_daemon_started_before_zookeeper_waits_for_it(
    tmp_path: Path, server: ZooKeeperServer, admin: KazooClient
) -> None:
    """Issue 10: the agent keeps retrying while ZooKeeper is unreachable, and
    says so; `--once` gives up at once with 75 (try again later)."""
    host = seed_host(tmp_path, admin)
    host.extra["zookeeper-session-timeout"] = "2"  # also how long a connection attempt waits
    server.stop()
    once = AgentProcess(host, server.connection, "--once")
    assert once.process.wait(30) == 75
    once.reader.join(5)
    assert [m for m in once.messages() if "Could not connect" in m] == [
        f"ERROR Could not connect to ZooKeeper at {server.connection} within 2 s"
    ]

    agent = AgentProcess(host, server.connection)
    try:
        agent.wait_for_message(
            f"WARNING Could not connect to ZooKeeper at {server.connection} within 2 s; "
            "retrying in 1 s",
            timeout=30,
        )
        server.start()
        agent.wait_for_message("INFO Agent starting, cluster 1, host 1", timeout=60)
    finally:
        assert agent.stop() == 0


def test_lock_is_kept_when_a_failure_cannot_halt_the_cluster(
    server: ZooKeeperServer, admin: KazooClient
) -> None:
    """A deploy script fails while ZooKeeper is unreachable: the halt cannot
    be made, so the service lock is left held (request and registration),
    and no other host starts the service before the halt. The host's next
    acquire in the same session adopts it."""
    admin.ensure_path("/hosts")
    set_cluster_version(admin, 3)
    client = connect(server.connection, timeout=10)
    other = connect(server.connection, timeout=10)
    try:
        identity = HostIdentity(id=HOST_ID, name="host42")
        cluster = ZooKeeperCluster(client, identity, threading.Event(), retry_deadline=1)
        wait_until(lambda: cluster.version() == 3)
        with pytest.raises(RuntimeError, match="deploy failed"), cluster.lock("svc,app"):
            server.stop()
            raise RuntimeError("deploy failed")
        server.start()
        wait_until(lambda: client.connected and admin.connected and other.connected)
        assert read_properties(admin, "/hosts")["version"] == 3  # not halted yet
        children = admin.get_children("/agent-locks/svc,app")
        assert len(children) == 2  # the request and the deploying registration

        second = ZooKeeperCluster(
            other, HostIdentity(id="h2", name="h2"), threading.Event(), retry_deadline=1
        )
        wait_until(lambda: second.version() == 3)
        entered = threading.Event()

        def take() -> None:
            try:
                with second.lock("svc,app"):
                    entered.set()
            except Exception:
                pass

        waiter = threading.Thread(target=take)
        waiter.start()
        time.sleep(1)
        assert not entered.is_set()  # held back

        cluster.halt()  # what the host's next run does
        waiter.join(10)
        assert not entered.is_set()  # a waiter gives up on a halt
        set_cluster_version(admin, 4)  # the fix
        wait_until(lambda: cluster.version() == 4)
        with cluster.lock("svc,app"):  # adopted: not behind itself
            pass
        assert admin.get_children("/agent-locks/svc,app") == []
    finally:
        for c in (client, other):
            c.stop()
            c.close()


def test_pausing_at_version_zero_is_a_change(server: ZooKeeperServer, admin: KazooClient) -> None:
    """`False` (paused) after version `0`: equal in Python, not to an operator."""
    admin.ensure_path("/hosts")
    set_cluster_version(admin, 0)
    client = connect(server.connection, timeout=10)
    try:
        runs_queued = threading.Semaphore(0)
        cluster = ZooKeeperCluster(
            client,
            HostIdentity(id=HOST_ID, name="host42"),
            threading.Event(),
            on_change=runs_queued.release,
        )
        assert runs_queued.acquire(timeout=10)  # the first delivery
        assert cluster.version() == 0
        set_cluster_version(admin, False)
        assert runs_queued.acquire(timeout=10)  # a run is queued: it stays silent
        assert cluster.version() is False
    finally:
        client.stop()
        client.close()


def test_a_late_halt_does_not_halt_the_next_release(
    server: ZooKeeperServer, admin: KazooClient
) -> None:
    """A halt for version 3 that lands (retried across an outage) after an
    operator set version 4 leaves 4 alone; for version 3 it halts."""
    admin.ensure_path("/hosts")
    set_cluster_version(admin, 3)
    client = connect(server.connection, timeout=10)
    try:
        cluster = ZooKeeperCluster(
            client, HostIdentity(id=HOST_ID, name="host42"), threading.Event()
        )
        wait_until(lambda: cluster.version() == 3)
        set_cluster_version(admin, 4)
        wait_until(lambda: cluster.version() == 4)
        cluster.cached_version = 3  # the view of a run of 3 that failed
        cluster.halt()
        assert read_properties(admin, "/hosts")["version"] == 4
        assert cluster.version() == 4  # not halted, and this host knows it
        cluster.halt()
        assert read_properties(admin, "/hosts")["version"] is None
    finally:
        client.stop()
        client.close()
