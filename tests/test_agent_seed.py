"""after.txt replayed against the running daemon and a real ZooKeeper."""

from __future__ import annotations

from pathlib import Path

from kazoo.client import KazooClient

from reconciler.zk.reader import read_properties
from tests.support.agent_process import AgentProcess
from tests.support.seed import import_fixture, seed_host, set_cluster_version
from tests.support.seed_transcript import TRANSCRIPT


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
