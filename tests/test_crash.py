"""SIGKILL in the middle of a run: the next agent converges."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

from kazoo.client import KazooClient

from reconciler.treefmt import parse
from reconciler.zk.importer import import_tree
from tests.support.agent_process import AgentProcess
from tests.support.sandbox_host import TREES
from tests.support.seed import HOST_NODE, seed_host, set_cluster_version, wait_until
from tests.support.seed_transcript import RULE
from tests.support.trees import SLOW


def kill_processes_under(root: Path) -> None:
    """The hung deploy script runs in a session of its own: find it by path."""
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
        except OSError:
            continue
        if str(root).encode() in cmdline:
            os.kill(int(pid), signal.SIGKILL)


def test_sigkill_during_a_deploy_then_converge(
    tmp_path: Path, zk: KazooClient, zk_chroot: str
) -> None:
    host = seed_host(tmp_path, zk)
    host.extra["zookeeper-session-timeout"] = "2"
    v2 = (TREES / "seed-v2.zk").read_text().replace("/hosts\n  version = 2\n", "")
    import_tree(zk, parse(v2 + SLOW), "/", trim=True)
    agent = AgentProcess(host, zk_chroot)
    try:
        agent.wait_for_message("INFO Agent starting, cluster 1, host 1")
        set_cluster_version(zk, 2)
        agent.wait_for_message("INFO /opt/tooslow/bin/zookeeper-deploy /slow/app 0")
        time.sleep(0.2)
        agent.process.send_signal(signal.SIGKILL)
        agent.process.wait(10)
    finally:
        kill_processes_under(host.root)
    wait_until(lambda: zk.exists(HOST_NODE) is None)
    assert host.host_version() == 1
    assert host.status() == "deploying /slow/app 0"

    # The operator drops the slow service and releases a new version.
    zk.delete("/slow", recursive=True)
    set_cluster_version(zk, 3)
    again = AgentProcess(host, zk_chroot)
    try:
        messages = again.wait_for_message("INFO Done deploying version 3")
        assert messages[:3] == [
            "INFO Agent starting, cluster 3, host 1",
            RULE,
            "INFO Deploying version 3",
        ]
        assert "INFO yum -y remove tooslow" in messages
    finally:
        kill_processes_under(host.root)
        assert again.stop() == 0
    assert host.host_version() == 3
    assert host.status() == "done"
    assert not (host.root / "opt/tooslow").exists()
