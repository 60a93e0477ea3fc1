"""The daemon against a real ZooKeeper: registration, restarts, abandon,
session expiry, once mode."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

from kazoo.client import KazooClient

from reconciler.zk.connect import connect
from reconciler.zk.reader import read_properties
from reconciler.zk.server import ZooKeeperServer
from reconciler.zk.storage import encode
from tests.support.agent_process import AgentProcess
from tests.support.sandbox_host import SandboxHost
from tests.support.seed import HOST_NODE, import_fixture, seed_host, set_cluster_version, wait_until
from tests.support.seed_transcript import RULE


def test_second_agent_is_refused(tmp_path: Path, zk: KazooClient, zk_chroot: str) -> None:
    host = seed_host(tmp_path, zk)
    first = AgentProcess(host, zk_chroot)
    try:
        first.wait_for_message("INFO Agent starting, cluster 1, host 1")
        second = AgentProcess(host, zk_chroot)
        assert second.process.wait(20) == 1
        second.reader.join(5)
        assert "ERROR Another agent is running" in second.messages()
        # The first agent is untouched.
        assert zk.exists(HOST_NODE).ephemeralOwner
    finally:
        assert first.stop() == 0


def test_legacy_persistent_node_is_taken_over(
    tmp_path: Path, zk: KazooClient, zk_chroot: str
) -> None:
    host = seed_host(tmp_path, zk)
    (host.run_directory / "host_version").unlink()
    zk.create(HOST_NODE, encode({"name": "host42", "version": 1}))
    assert zk.exists(HOST_NODE).ephemeralOwner == 0
    agent = AgentProcess(host, zk_chroot)
    try:
        agent.wait_for_message("INFO Agent starting, cluster 1, host 1")
        assert zk.exists(HOST_NODE).ephemeralOwner != 0
        assert read_properties(zk, HOST_NODE) == {"name": "host42", "version": 1}
        time.sleep(0.5)
        assert RULE not in agent.messages()  # already at the cluster version
    finally:
        assert agent.stop() == 0


def test_legacy_node_version_wins_over_the_host_version_file(
    tmp_path: Path, zk: KazooClient, zk_chroot: str
) -> None:
    """agent.md: a legacy persistent host node gives its `version`, even when
    a host_version file exists (issue 12)."""
    host = seed_host(tmp_path, zk)
    assert host.host_version() == 1
    import_fixture(zk, "seed-v2")
    set_cluster_version(zk, 2)
    zk.create(HOST_NODE, encode({"name": "host42", "version": 2}))
    host.journal.write_text("")
    agent = AgentProcess(host, zk_chroot)
    try:
        agent.wait_for_message("INFO Agent starting, cluster 2, host 2")
        assert read_properties(zk, HOST_NODE) == {"name": "host42", "version": 2}
        time.sleep(0.5)
        assert RULE not in agent.messages()  # the node says: already converged
    finally:
        assert agent.stop() == 0
    assert not host.journal.read_text()


def test_restart_converges_from_host_version(
    tmp_path: Path, zk: KazooClient, zk_chroot: str
) -> None:
    host = seed_host(tmp_path, zk)
    import_fixture(zk, "seed-v2")
    set_cluster_version(zk, 2)  # while no agent runs
    agent = AgentProcess(host, zk_chroot)
    try:
        agent.wait_for_message("INFO Done deploying version 2")
        messages = agent.messages()
        assert messages[:3] == [
            "INFO Agent starting, cluster 2, host 1",
            RULE,
            "INFO Deploying version 2",
        ]
    finally:
        assert agent.stop() == 0
    assert host.host_version() == 2
    again = AgentProcess(host, zk_chroot)
    try:
        again.wait_for_message("INFO Agent starting, cluster 2, host 2")
        time.sleep(0.5)
        assert RULE not in again.messages()
    finally:
        assert again.stop() == 0


def test_abandon_while_waiting_for_a_service_lock(
    tmp_path: Path, zk: KazooClient, zk_chroot: str
) -> None:
    host = seed_host(tmp_path, zk)
    agent = AgentProcess(host, zk_chroot)
    lock = zk.Lock("/agent-locks/cust,someapp,cms", "another host")
    try:
        agent.wait_for_message("INFO Agent starting, cluster 1, host 1")
        assert lock.acquire(timeout=5)
        import_fixture(zk, "seed-v2")
        mark = len(agent.records)
        set_cluster_version(zk, 2)
        agent.wait_for_message("INFO yum -q list installed z4m")
        time.sleep(0.5)  # blocked on the lock
        assert agent.messages(mark)[-1] == "INFO yum -q list installed z4m"
        set_cluster_version(zk, None)  # another host failed
        agent.wait_for_message("WARNING Not deploying because cluster version is None")
        time.sleep(0.5)
        assert agent.messages(mark) == [
            RULE,
            "INFO Deploying version 2",
            "INFO /opt/z4mmonitor/bin/zookeeper-deploy -u /cust/someapp/monitor 0",
            "INFO yum -q list installed z4m",
            "WARNING Abandoning deployment because cluster version is None",
            "INFO Running after hook",
            "INFO echo after",
            "WARNING Not deploying because cluster version is None",
        ]
        assert host.host_version() == 1
        assert host.status() == "abandoned"
        assert "error" not in read_properties(zk, HOST_NODE)
    finally:
        lock.release()
        assert agent.stop() == 0


def test_halt_is_cleared_by_a_new_version(tmp_path: Path, zk: KazooClient, zk_chroot: str) -> None:
    host = seed_host(tmp_path, zk)
    agent = AgentProcess(host, zk_chroot)
    try:
        agent.wait_for_message("INFO Agent starting, cluster 1, host 1")
        set_cluster_version(zk, None)
        agent.wait_for_message("WARNING Not deploying because cluster version is None")
        import_fixture(zk, "seed-v2")
        set_cluster_version(zk, 2)
        agent.wait_for_message("INFO Done deploying version 2")
        set_cluster_version(zk, False)  # paused: nothing happens, nothing logged
        import_fixture(zk, "seed-v4")
        time.sleep(0.5)
        assert agent.messages()[-1] == "INFO echo after"
    finally:
        assert agent.stop() == 0


def test_session_expiry_is_survived(tmp_path: Path, zk: KazooClient, zk_chroot: str) -> None:
    host = seed_host(tmp_path, zk)
    host.extra["zookeeper-session-timeout"] = "2"
    agent = AgentProcess(host, zk_chroot)
    try:
        agent.wait_for_message("INFO Agent starting, cluster 1, host 1")
        owner = zk.exists(HOST_NODE).ephemeralOwner
        # Frozen past its session timeout, the agent's session expires on the
        # server and the ephemeral host node goes with it.
        agent.process.send_signal(signal.SIGSTOP)
        wait_until(lambda: zk.exists(HOST_NODE) is None)
        agent.process.send_signal(signal.SIGCONT)
        agent.wait_for_message("WARNING ZooKeeper session expired; registering the host again")
        wait_until(lambda: zk.exists(HOST_NODE) is not None)
        assert zk.exists(HOST_NODE).ephemeralOwner != owner
        assert read_properties(zk, HOST_NODE) == {"name": "host42", "version": 1}
        # And it still reacts to the cluster version.
        import_fixture(zk, "seed-v2")
        set_cluster_version(zk, 2)
        agent.wait_for_message("INFO Done deploying version 2")
    finally:
        assert agent.stop() == 0


def run_once(host: SandboxHost, connection: str, *flags: str) -> subprocess.CompletedProcess[str]:
    host.extra["zookeeper"] = connection
    config = host.write_config(None)
    return subprocess.run(
        [sys.executable, "-m", "reconciler", "--once", "--log-json", *flags, str(config)],
        capture_output=True,
        text=True,
        env=host.env(),
        timeout=60,
    )


def test_once_against_zookeeper(tmp_path: Path, zk: KazooClient, zk_chroot: str) -> None:
    host = seed_host(tmp_path, zk)
    import_fixture(zk, "seed-v2")
    set_cluster_version(zk, 2)
    done = run_once(host, zk_chroot)
    assert done.returncode == 0, done.stderr
    assert host.host_version() == 2
    assert zk.exists(HOST_NODE) is None  # the session is closed

    import_fixture(zk, "seed-v3")
    set_cluster_version(zk, 3)
    failed = run_once(host, zk_chroot)
    assert failed.returncode == 1
    last = json.loads(failed.stderr.splitlines()[-1])
    assert (last["level"], last["message"]) == ("CRITICAL", "FAILED deploying version 3")
    assert read_properties(zk, "/hosts")["version"] is None


def test_server_restart_is_survived(tmp_path: Path) -> None:
    """A ZooKeeper outage shorter than the session timeout: kazoo reconnects,
    the session and its host node survive, and the agent goes on."""
    with ZooKeeperServer() as server:
        zk = connect(server.connection)
        try:
            host = seed_host(tmp_path, zk)
            agent = AgentProcess(host, server.connection)
            try:
                agent.wait_for_message("INFO Agent starting, cluster 1, host 1")
                owner = zk.exists(HOST_NODE).ephemeralOwner
                server.stop()
                time.sleep(1)
                server.start()
                wait_until(lambda: zk.connected and zk.exists(HOST_NODE) is not None)
                assert zk.exists(HOST_NODE).ephemeralOwner == owner
                import_fixture(zk, "seed-v2")
                set_cluster_version(zk, 2)
                agent.wait_for_message("INFO Done deploying version 2")
            finally:
                assert agent.stop() == 0
        finally:
            zk.stop()
            zk.close()


def test_plan_against_zookeeper(tmp_path: Path, zk: KazooClient, zk_chroot: str) -> None:
    """`--plan` opens the same cluster as a run, and only reads it: no host
    node, no command, no change."""
    host = seed_host(tmp_path, zk)
    import_fixture(zk, "seed-v2")
    set_cluster_version(zk, 2)
    host.journal.write_text("")
    before = host.files()
    plan = run_once(host, zk_chroot, "--plan")
    assert plan.returncode == 0, plan.stderr
    # The same plan as from the tree file: one path, another cluster.
    from_file = host.reconcile("seed-v2", "--plan")
    assert from_file.returncode == 0, from_file.stderr
    assert plan.stdout == from_file.stdout
    assert plan.stdout.startswith("# cluster version 2, host version 1\n")
    assert "/opt/z4m/bin/zookeeper-deploy /cust2/someapp/cms 0\n" in plan.stdout
    assert host.journal.read_text() == "" and host.files() == before
    assert zk.exists(HOST_NODE) is None
    assert read_properties(zk, "/hosts")["version"] == 2
