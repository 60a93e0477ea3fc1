"""after.txt replayed against the running daemon and a real ZooKeeper."""

from __future__ import annotations

from pathlib import Path

from kazoo.client import KazooClient

from reconciler.treefmt import parse
from reconciler.zk.importer import import_tree
from reconciler.zk.reader import read_properties, update_properties
from tests.agent_process import AgentProcess
from tests.sandbox_host import TREES, SandboxHost
from tests.seed_transcript import TRANSCRIPT


def import_fixture(zk: KazooClient, name: str) -> None:
    """Import a fixture tree, `/hosts` left out: the version is bumped apart,
    after the tree is in place, as operators (and the sync) do."""
    tree = parse((TREES / f"{name}.zk").read_text())
    tree.children.pop("hosts")
    import_tree(zk, tree, "/", trim=True)


def set_cluster_version(zk: KazooClient, version: object) -> None:
    update_properties(zk, "/hosts", version=version)


def seed_host(tmp_path: Path, zk: KazooClient) -> SandboxHost:
    """The seed's starting point: the host converged to version 1."""
    host = SandboxHost(tmp_path, after="echo after")
    assert host.reconcile("seed-v1").returncode == 0
    import_fixture(zk, "seed-v1")
    zk.ensure_path("/hosts")
    set_cluster_version(zk, 1)
    return host


def test_after_hook_transcript(tmp_path: Path, zk: KazooClient, zk_chroot: str) -> None:
    host = seed_host(tmp_path, zk)
    agent = AgentProcess(host, zk_chroot)
    try:
        agent.wait_for_message("INFO Agent starting, cluster 1, host 1")
        assert read_properties(zk, "/hosts/424242424242") == {"name": "host42", "version": 1}

        import_fixture(zk, "seed-v2")
        mark = len(agent.records)
        set_cluster_version(zk, 2)
        agent.wait_for_message("INFO echo after")
        assert agent.messages(mark) == TRANSCRIPT[2]
        assert read_properties(zk, "/hosts/424242424242")["version"] == 2

        import_fixture(zk, "seed-v3")
        mark = len(agent.records)
        set_cluster_version(zk, 3)
        agent.wait_for_message("CRITICAL FAILED deploying version 3")
        assert agent.messages(mark) == TRANSCRIPT[3]
        assert read_properties(zk, "/hosts")["version"] is None
        assert read_properties(zk, "/hosts/424242424242")["error"] == (
            "Failed to install z4m-666 (installed: 1.0.0)"
        )

        import_fixture(zk, "seed-v4")
        mark = len(agent.records)
        set_cluster_version(zk, 4)
        agent.wait_for_message("INFO echo after", count=2)
        assert agent.messages(mark) == TRANSCRIPT[4]
        # The good run cleared the error of the failed one.
        assert read_properties(zk, "/hosts/424242424242") == {"name": "host42", "version": 4}
    finally:
        assert agent.stop() == 0

    host.after = "echo 666"
    agent = AgentProcess(host, zk_chroot)
    try:
        agent.wait_for_message("INFO Agent starting, cluster 4, host 4")
        mark = len(agent.records)
        set_cluster_version(zk, 5)
        agent.wait_for_message("WARNING Not deploying because cluster version is None")
        assert agent.messages(mark) == TRANSCRIPT[5]
        assert read_properties(zk, "/hosts")["version"] is None
        host_node = read_properties(zk, "/hosts/424242424242")
        assert host_node["error"] == "Command failed: echo 666"
        assert host_node["version"] == 5
    finally:
        assert agent.stop() == 0
    # The session is closed: the ephemeral host node is gone.
    assert zk.exists("/hosts/424242424242") is None
