"""The seed transcript (shared/seed/after.txt), versions 2-5, reproduced with
`reconcile --once` from tree files: same commands, same order, same messages."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.support.sandbox_host import SandboxHost
from tests.support.seed_transcript import TRANSCRIPT


@pytest.fixture
def host(tmp_path: Path) -> SandboxHost:
    """The seed's initial host: z4m 1.0.0 and z4mmonitor 1.1.0 installed,
    its three deployments recorded, converged to cluster version 1."""
    host = SandboxHost(tmp_path, after="echo after")
    run = host.reconcile("seed-v1")
    assert run.returncode == 0, run.stderr
    assert host.host_version() == 1
    assert sorted(p for p in host.files() if p.endswith(".deployed")) == [
        "etc/z4m/cust,someapp,cms.0.deployed",
        "etc/z4m/cust2,someapp,cms.0.deployed",
        "etc/z4mmonitor/cust,someapp,monitor.0.deployed",
    ]
    return host


# What the seed's host runs to go from version 1 to 2 (and what --plan lists).
V2_COMMANDS = [
    "/opt/z4mmonitor/bin/zookeeper-deploy -u /cust/someapp/monitor 0",
    "yum -q list installed z4m",
    "/opt/z4m/bin/zookeeper-deploy /cust/someapp/cms 0",
    "/opt/z4m/bin/zookeeper-deploy /cust2/someapp/cms 0",
    "yum -y remove z4mmonitor",
    "echo after",
]


def commands_of(messages: list[str]) -> list[str]:
    return [m for m in messages if m.startswith("INFO ")]


def test_seed_versions_2_to_5(host: SandboxHost) -> None:
    v2 = host.reconcile("seed-v2")
    assert v2.returncode == 0
    assert v2.messages() == TRANSCRIPT[2]
    assert v2.commands == V2_COMMANDS
    assert not (host.root / "etc/z4mmonitor").exists()
    assert not (host.root / "opt/z4mmonitor").exists()

    v3 = host.reconcile("seed-v3")
    assert v3.returncode == 1
    assert v3.messages() == TRANSCRIPT[3]
    error = next(r for r in v3.records if r["message"] == "deploying")
    assert "Failed to install z4m-666 (installed: 1.0.0)" in error["exception"]
    assert "Traceback (most recent call last)" in error["exception"]
    assert host.status() == "error"
    assert host.host_version() == 2

    v4 = host.reconcile("seed-v4")
    assert v4.returncode == 0
    assert v4.messages() == TRANSCRIPT[4]
    assert host.host_version() == 4

    host.after = "echo 666"
    v5 = host.reconcile("seed-v5")
    assert v5.returncode == 1
    assert v5.messages() == TRANSCRIPT[5]
    # The output of the failed hook is shown.
    assert "OUTPUT echo 666" in v5.messages(output=True)
    after = next(r for r in v5.records if r["message"] == "after")
    assert "Command failed: echo 666" in after["exception"]
    # The deployment itself succeeded and was recorded.
    assert host.host_version() == 5
    assert host.status() == "error"


def test_plan_lists_the_commands_and_changes_nothing(host: SandboxHost) -> None:
    before = host.files()
    run = host.reconcile("seed-v2", "--plan")
    assert run.returncode == 0, run.stderr
    lines = [line.split("  #")[0] for line in run.stdout.splitlines() if not line.startswith("#")]
    assert lines == V2_COMMANDS
    assert run.commands == []
    assert host.files() == before
    assert host.host_version() == 1


def test_same_version_does_nothing(host: SandboxHost) -> None:
    run = host.reconcile("seed-v1")
    assert run.returncode == 0
    assert run.messages() == []
    assert run.commands == []
