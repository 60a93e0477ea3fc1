"""The daemon's worker never dies (issue 11): hostile `/hosts` values, the
host node deleted or taken under a running agent, and the stale status a
crash leaves. The real agent process against the session's ZooKeeper."""

from __future__ import annotations

import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from kazoo.client import KazooClient

from reconciler.zk.reader import read_properties
from reconciler.zk.storage import encode
from tests.support.agent_process import AgentProcess
from tests.support.sandbox_host import SandboxHost
from tests.support.seed import HOST_NODE, import_fixture, seed_host, set_cluster_version, wait_until

STARTED = "INFO Agent starting, cluster 1, host 1"
DEEP = 2000


def deep_list(depth: int) -> bytes:
    return b"[" * depth + b"]" * depth


HOSTILE: dict[str, bytes] = {
    # A lone surrogate: valid JSON, but no UTF-8 file can hold it.
    "surrogate": b'{"version":"\\ud800"}',
    # 900 kB: just under ZooKeeper's default limit of 1 MB per node.
    "huge": b'{"version":"' + b"7" * 900_000 + b'"}',
    "deep": b'{"version":' + deep_list(DEEP) + b"}",
    "dict": b'{"version":{"a":{"b":1}}}',
}


def alive(agent: AgentProcess) -> bool:
    return agent.process.poll() is None


def converges(agent: AgentProcess, host: SandboxHost, zk: KazooClient, version: int) -> None:
    """A good cluster version: the agent deploys it and clears its error."""
    set_cluster_version(zk, version)
    agent.wait_for_message(f"INFO Done deploying version {version}")
    wait_until(lambda: host.status() == "done")
    assert "error" not in read_properties(zk, HOST_NODE)


@pytest.mark.parametrize("name", sorted(HOSTILE))
def test_hostile_cluster_version_then_a_good_one(
    name: str, tmp_path: Path, zk: KazooClient, zk_chroot: str
) -> None:
    """The agent halts (with a reason) or refuses the value, stays up, and
    converges to the next good version."""
    host = seed_host(tmp_path, zk)
    agent = AgentProcess(host, zk_chroot)
    try:
        agent.wait_for_message(STARTED)
        mark = len(agent.records)
        zk.set("/hosts", HOSTILE[name])
        # Whatever the agent makes of it, it is done within a second (a
        # run to a new version takes about 0.1 s here).
        time.sleep(1)
        assert alive(agent), "".join(agent.lines)
        hosts = zk.get("/hosts")[0]
        if hosts != HOSTILE[name]:
            # It halted: the cluster says why.
            assert read_properties(zk, "/hosts")["version"] is None
            assert read_properties(zk, HOST_NODE)["error"]
            assert host.status() == "error"
        assert not any(m.startswith("CRITICAL Run crashed") for m in agent.messages(mark))

        # Paused while the tree is replaced; written over, not updated: the
        # hostile data need not be readable.
        zk.set("/hosts", encode({"version": False}))
        import_fixture(zk, "seed-v2")
        converges(agent, host, zk, 2)
    finally:
        assert agent.stop() == 0


def test_host_node_deleted_under_a_running_agent_is_created_again(
    tmp_path: Path, zk: KazooClient, zk_chroot: str
) -> None:
    host = seed_host(tmp_path, zk)
    agent = AgentProcess(host, zk_chroot)
    try:
        agent.wait_for_message(STARTED)
        owner = zk.exists(HOST_NODE).ephemeralOwner
        zk.delete(HOST_NODE)
        agent.wait_for_message(
            "WARNING Host node /hosts/424242424242 was deleted; registering the host again"
        )
        wait_until(lambda: zk.exists(HOST_NODE) is not None)
        assert zk.exists(HOST_NODE).ephemeralOwner == owner
        assert read_properties(zk, HOST_NODE) == {"name": "host42", "version": 1}
        import_fixture(zk, "seed-v2")
        set_cluster_version(zk, 2)
        agent.wait_for_message("INFO Done deploying version 2")
        assert read_properties(zk, HOST_NODE)["version"] == 2
        assert read_properties(zk, "/hosts")["version"] == 2
    finally:
        assert agent.stop() == 0


def test_host_node_taken_by_another_session_ends_the_agent(
    tmp_path: Path, zk: KazooClient, zk_chroot: str
) -> None:
    """Two agents for one host id: the one whose node was taken exits 1
    with one line, and leaves the other's node alone."""
    host = seed_host(tmp_path, zk)
    agent = AgentProcess(host, zk_chroot)
    try:
        agent.wait_for_message(STARTED)
        transaction = zk.transaction()
        transaction.delete(HOST_NODE)
        transaction.create(HOST_NODE, b'{"name":"impostor"}', ephemeral=True)
        transaction.commit()
        assert agent.process.wait(20) == 1
        agent.reader.join(5)
        assert agent.messages()[-1] == (
            "CRITICAL Host node /hosts/424242424242 is held by another agent: exiting"
        )
        assert zk.exists(HOST_NODE).ephemeralOwner == zk.client_id[0]
        assert read_properties(zk, HOST_NODE) == {"name": "impostor"}
        assert read_properties(zk, "/hosts")["version"] == 1
    finally:
        agent.stop()


def test_restart_repairs_a_stale_status(tmp_path: Path, zk: KazooClient, zk_chroot: str) -> None:
    """A crash between writing host_version and the status `done` leaves
    `deploying ...`: the restarted agent, already converged, rewrites it,
    and the monitor sees a converged host."""
    host = seed_host(tmp_path, zk)
    stale = f"{int(time.time()) - 3600} 4242 1 deploying /cust/someapp/cms 0\n"
    (host.run_directory / "status").write_text(stale)
    agent = AgentProcess(host, zk_chroot)
    try:
        agent.wait_for_message(STARTED)
        wait_until(lambda: host.status() == "done")
        monitor = run_monitor(host.config_path, zk_chroot)
        assert (monitor.returncode, monitor.stdout) == (0, "")
    finally:
        assert agent.stop() == 0


def run_monitor(config: Path, connection: str) -> subprocess.CompletedProcess[Any]:
    return subprocess.run(
        [sys.executable, "-m", "reconciler", "monitor", "-z", connection, str(config)],
        capture_output=True,
        text=True,
        timeout=30,
    )


def test_a_crashing_run_does_not_kill_the_worker(
    tmp_path: Path, zk: KazooClient, zk_chroot: str
) -> None:
    """The run directory becomes a file: even the failure handling fails. The
    worker logs it, the cluster is halted with a reason, and the agent
    converges once the directory is back."""
    host = seed_host(tmp_path, zk)
    agent = AgentProcess(host, zk_chroot)
    try:
        agent.wait_for_message(STARTED)
        status = host.run_directory / "status"
        # The first run rewrote the status (its pid in the second field).
        wait_until(lambda: status.read_text().split()[1] == str(agent.process.pid))
        shutil.rmtree(host.run_directory)
        host.run_directory.write_text("")
        import_fixture(zk, "seed-v2")
        set_cluster_version(zk, 2)
        agent.wait_for_message("CRITICAL Run crashed; waiting for the next change")
        assert alive(agent)
        assert read_properties(zk, "/hosts")["version"] is None
        assert read_properties(zk, HOST_NODE)["error"]

        host.run_directory.unlink()
        host.run_directory.mkdir()
        converges(agent, host, zk, 3)
    finally:
        assert agent.stop() == 0
