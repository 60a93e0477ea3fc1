"""`reconcile hosts`: the fleet view; and the whole operators' loop, git ->
sync -> a real agent -> hosts and monitor."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from kazoo.client import KazooClient

from reconciler.cli import main
from reconciler.zk.server import free_port
from reconciler.zk.storage import encode
from tests.support.agent_process import AgentProcess
from tests.support.git import Repo
from tests.support.sandbox_host import TREES, SandboxHost
from tests.support.zookeeper import register

FAILURE = "Command failed: /opt/cranky/bin/zookeeper-deploy /cust/cranky 0"


pytestmark = pytest.mark.usefixtures("restore_logging")


def three_agents(zk: KazooClient, cluster: object) -> None:
    """Three registered agents; h2 failed deploying version 8 and halted the
    cluster."""
    zk.create("/hosts", encode({"version": cluster}))
    register(zk, "h1", name="web1.example.com", role="web", version=8)
    register(zk, "h2", name="web2.example.com", role="web", version=7, error=FAILURE)
    register(zk, "h3", name="db1.example.com", version=8)


def test_table(zk: KazooClient, zk_chroot: str, capsys: pytest.CaptureFixture[str]) -> None:
    three_agents(zk, None)
    assert main(["hosts", "-z", zk_chroot]) == 0
    assert capsys.readouterr().out.splitlines() == [
        "cluster version: None (halted)",
        "ID  NAME              ROLE  VERSION  CONVERGED  ERROR",
        "h1  web1.example.com  web   8        no         -",
        f"h2  web2.example.com  web   7        no         {FAILURE}",
        "h3  db1.example.com   -     8        no         -",
    ]


def test_json(zk: KazooClient, zk_chroot: str, capsys: pytest.CaptureFixture[str]) -> None:
    three_agents(zk, 8)
    assert main(["hosts", "--json", "-z", zk_chroot]) == 0
    assert json.loads(capsys.readouterr().out) == {
        "version": 8,
        "halted": False,
        "paused": False,
        "hosts": [
            {
                "id": "h1",
                "name": "web1.example.com",
                "role": "web",
                "version": 8,
                "converged": True,
                "error": None,
                "registered": True,
            },
            {
                "id": "h2",
                "name": "web2.example.com",
                "role": "web",
                "version": 7,
                "converged": False,
                "error": FAILURE,
                "registered": True,
            },
            {
                "id": "h3",
                "name": "db1.example.com",
                "role": None,
                "version": 8,
                "converged": True,
                "error": None,
                "registered": True,
            },
        ],
    }


def test_paused_and_empty(
    zk: KazooClient, zk_chroot: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["hosts", "-z", zk_chroot]) == 1
    assert capsys.readouterr().err == "No /hosts node: nothing synced and no agent registered yet\n"
    zk.create("/hosts", encode({"version": False}))
    assert main(["hosts", "-z", zk_chroot]) == 0
    assert capsys.readouterr().out == (
        "cluster version: False (paused)\nID  NAME  ROLE  VERSION  CONVERGED  ERROR\n"
    )


def test_git_sync_agent_hosts_monitor(
    tmp_path: Path, zk: KazooClient, zk_chroot: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """The "Operating a cluster" loop of the README, with a real agent."""
    repo = Repo(tmp_path / "repo")
    revision = repo.commit(cluster_zk=(TREES / "seed-v1.zk").read_text())
    assert main(["tree", "lint", str(repo.path)]) == 0
    assert main(["sync", str(repo.path), "-z", zk_chroot]) == 0

    host = SandboxHost(tmp_path / "host")
    agent = AgentProcess(host, zk_chroot)
    try:
        agent.wait_for_message(f"INFO Done deploying version {revision}")
        capsys.readouterr()
        assert main(["hosts", "-z", zk_chroot]) == 0
        assert capsys.readouterr().out.splitlines()[2].split() == [
            "424242424242",
            "host42",
            "-",
            revision,
            "yes",
            "-",
        ]
        assert main(["monitor", "-z", zk_chroot, str(host.config_path)]) == 0
        assert capsys.readouterr().out == ""
    finally:
        assert agent.stop() == 0


def test_unreachable_zookeeper_is_try_again_later(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """An outage is not a usage error: one line, exit 75, for every operator
    command that connects (a cron job or a pipeline can tell the two apart)."""
    port = free_port()  # nobody listens there
    config = tmp_path / "operator.cfg"
    config.write_text(
        f"[zkdeployment]\nzookeeper = 127.0.0.1:{port}\nzookeeper-session-timeout = 0.5\n"
    )
    for command in (["hosts"], ["tree", "export"]):
        assert main([*command, "--config", str(config)]) == 75
        assert capsys.readouterr().err == (
            f"Could not connect to ZooKeeper at 127.0.0.1:{port} within 0.5 s\n"
        )
