"""Fleet scale (issue 9) with real agent daemons on a private ZooKeeper:
what a bump costs each agent, and how many deploy scripts run at once.

Each test starts its own server, so that the server's counters (`mntr`)
count only these agents. The deploy script is a real process journalling
its start and end times; the package is installed in each sandbox root
beforehand, so the agents' yum leaves it (and the script) as it is.
"""

from __future__ import annotations

import signal
import statistics
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from reconciler.tree import Node
from reconciler.zk.connect import connect
from reconciler.zk.importer import import_tree
from reconciler.zk.reader import update_properties
from reconciler.zk.server import ZooKeeperServer, four_letter_word
from reconciler.zk.storage import decode
from tests.support.agent_process import AgentProcess
from tests.support.overlap import most_at_once
from tests.support.sandbox_host import SandboxHost
from tests.support.seed import wait_until

# The deploy script: journal `start TIME`, take SECONDS, journal `end TIME`.
DEPLOY = """#!{python}
import sys, time
with open({log!r}, "a") as out:
    out.write(f"start {{time.time()}}\\n")
time.sleep({seconds})
with open({log!r}, "a") as out:
    out.write(f"end {{time.time()}}\\n")
"""


def mntr(server: ZooKeeperServer) -> dict[str, str]:
    lines = four_letter_word(server.port, "mntr").splitlines()
    return dict(line.split("\t", 1) for line in lines if "\t" in line)


def counter(server: ZooKeeperServer, name: str) -> int:
    return int(mntr(server).get(name, 0))


def reads(server: ZooKeeperServer, namespace: str) -> int:
    """Read requests on the server under `/<namespace>` (ZooKeeper's own
    per-namespace counter)."""
    return counter(server, f"zk_cnt_{namespace}_read_per_namespace")


class Fleet:
    """A private server, a tree with `/svc/app` deployed to every host, and
    the agents."""

    def __init__(self, tmp_path: Path, server: ZooKeeperServer) -> None:
        self.base = tmp_path
        self.server = server
        self.client = connect(server.connection)
        self.agents: list[AgentProcess] = []
        self.hosts: list[SandboxHost] = []

    def tree(self, hosts: int, filler: int = 0, max_parallel: Any = None) -> None:
        root = Node()
        app = root.child("svc").child("app")
        app.properties = {"type": "z4m", "version": "1.0.0"}
        if max_parallel is not None:
            app.properties["max-parallel"] = max_parallel
        for number in range(hosts):
            app.child("deploy").child(f"h{number}")
        for number in range(filler):
            root.child("filler").child(f"d{number // 50}").child(f"n{number}").properties = {
                "i": number
            }
        import_tree(self.client, root, "/")
        self.client.ensure_path("/hosts")
        # Paused: the agents start and register, then one bump starts them all.
        update_properties(self.client, "/hosts", version=False)

    def start(self, count: int, seconds: float = 0.0, **options: str) -> None:
        """Start `count` agents (configuration `options`), their deploy
        script taking `seconds`."""
        for number in range(len(self.hosts), len(self.hosts) + count):
            name = f"h{number}"
            host = SandboxHost(self.base / name, host_id=name, host_name=name, extra=options)
            # Installed already: yum finds it and leaves the deploy script.
            (host.root / "var/lib/fake-yum").mkdir(parents=True)
            (host.root / "var/lib/fake-yum/z4m").write_text("1.0.0\n")
            script = host.root / "opt/z4m/bin/zookeeper-deploy"
            script.parent.mkdir(parents=True)
            log = self.deploy_log(number)
            script.write_text(DEPLOY.format(python=sys.executable, log=str(log), seconds=seconds))
            script.chmod(0o755)
            self.hosts.append(host)
            self.agents.append(AgentProcess(host, self.server.connection))
        for agent in self.agents:
            agent.wait_for(lambda m: any(x.startswith("INFO Agent starting") for x in m), 60)

    def bump(self, version: int, timeout: float = 60) -> None:
        update_properties(self.client, "/hosts", version=version)
        wait_until(lambda: all(self.recorded(h) == version for h in self.hosts), timeout)

    def recorded(self, host: SandboxHost) -> Any:
        return self.host_properties(host.host_id).get("version")

    def host_properties(self, host: str | int) -> dict[str, Any]:
        path = f"/hosts/h{host}" if isinstance(host, int) else f"/hosts/{host}"
        data = self.client.exists(path) and self.client.get(path)[0]
        return decode(data) if data else {}

    def deploy_spans(self) -> list[tuple[float, float]]:
        spans = []
        for log in sorted(self.base.glob("deploy-*.log")):
            words = [line.split() for line in log.read_text().splitlines()]
            starts = [float(t) for w, t in words if w == "start"]
            ends = [float(t) for w, t in words if w == "end"]
            assert len(starts) == len(ends), f"{log.name}: a deploy script did not finish"
            spans += zip(starts, ends, strict=True)
        return spans

    def deploy_starts(self) -> list[int]:
        """The hosts (numbers) whose deploy script started."""
        return [
            number
            for number in range(len(self.hosts))
            if "start" in self.deploy_log(number).read_text(errors="replace")
        ]

    def deploy_log(self, number: int) -> Path:
        log = self.base / f"deploy-h{number}.log"
        log.touch()
        return log

    def close(self) -> None:
        # All told first: they stop side by side. Once each: a second
        # SIGTERM could come as Python exits, its handlers gone.
        for agent in self.agents:
            agent.process.send_signal(signal.SIGTERM)
        for agent in self.agents:
            agent.process.wait(20)
            assert agent.stop() == 0
        self.client.stop()
        self.client.close()


@pytest.fixture
def fleet(tmp_path: Path) -> Iterator[Fleet]:
    with ZooKeeperServer() as server:
        made = Fleet(tmp_path, server)
        try:
            yield made
        finally:
            made.close()


def test_a_bump_reads_what_changed_not_the_tree(fleet: Fleet) -> None:
    fleet.tree(hosts=3, filler=500)
    fleet.start(3)
    fleet.bump(1)
    filler, svc = reads(fleet.server, "filler"), reads(fleet.server, "svc")
    assert filler >= 3 * 500  # each agent's mirror read it all, once
    # A release: the service's version changes, then the cluster version.
    update_properties(fleet.client, "/svc/app", version="1.0.1")
    fleet.bump(2)
    assert reads(fleet.server, "filler") == filler
    # `/svc/app` read again by each agent, once (and once by our update).
    assert reads(fleet.server, "svc") - svc == 3 + 1
    # And the run for version 2 saw the tree as of version 2.
    for host in fleet.hosts:
        assert (host.root / "var/lib/fake-yum/z4m").read_text() == "1.0.1\n"


def packets_per_bump(fleet: Fleet, first: int, bumps: int = 3) -> float:
    """ZooKeeper packets received per agent per no-op bump (the median over
    `bumps`), our own bump (a read and a write) taken off. The agents' logs
    say when they are done: waiting costs the server nothing."""
    figures = []
    for version in range(first, first + bumps):
        before = counter(fleet.server, "zk_packets_received")
        update_properties(fleet.client, "/hosts", version=version)
        for agent in fleet.agents:
            agent.wait_for_message(f"INFO Done deploying version {version}", timeout=60)
        time.sleep(0.3)  # the runs' last packets
        received = counter(fleet.server, "zk_packets_received") - before - 2
        figures.append(received / len(fleet.hosts))
    return statistics.median(figures)


def test_packets_per_agent_per_bump_do_not_grow_with_the_fleet(fleet: Fleet) -> None:
    fleet.tree(hosts=6, filler=200)
    fleet.start(3)
    fleet.bump(1)
    three = packets_per_bump(fleet, 2)
    fleet.start(3)
    fleet.bump(5)
    six = packets_per_bump(fleet, 6)
    print(f"packets per agent per bump: N=3 {three:.1f}, N=6 {six:.1f}")
    assert three < 40, three
    assert six < 1.5 * three, (three, six)


@pytest.mark.parametrize("width", [1, 2])
def test_max_parallel_hosts_deploy_at_once(fleet: Fleet, width: int) -> None:
    fleet.tree(hosts=4, max_parallel=None if width == 1 else width)
    fleet.start(4, seconds=1.0)
    fleet.bump(1)
    spans = fleet.deploy_spans()
    assert len(spans) == 4
    assert most_at_once(spans) == width


def test_plan_reads_no_other_host_and_no_lock_queue(fleet: Fleet, tmp_path: Path) -> None:
    """`--plan` (and `--once`) read the tree once, without `/hosts/*` and
    the lock queues; the plan shows the service's `max-parallel`."""
    fleet.tree(hosts=1, max_parallel=3)
    update_properties(fleet.client, "/hosts", version=1)
    for number in range(50):
        fleet.client.create(f"/hosts/other{number}", b"{}")
        fleet.client.create(f"/agent-locks/svc,app/r{number}", b"", makepath=True)
        fleet.client.create(f"/role-locks/web/lr-{number}", b"", makepath=True)
    hosts, locks = reads(fleet.server, "hosts"), reads(fleet.server, "agent-locks")
    host = SandboxHost(tmp_path / "h0", host_id="h0", host_name="h0")
    host.extra["zookeeper"] = fleet.server.connection
    config = host.write_config(None)
    plan = subprocess.run(
        [sys.executable, "-m", "reconciler", "--plan", str(config)],
        capture_output=True,
        text=True,
        env=host.env(),
        timeout=60,
    )
    assert plan.returncode == 0, plan.stderr
    assert (
        "/opt/z4m/bin/zookeeper-deploy /svc/app 0  # lock /agent-locks/svc,app, max-parallel 3\n"
        in plan.stdout
    )
    # `/hosts` itself (connecting, the watch, the tree's node and its child
    # list), none of the 51 hosts below it.
    assert reads(fleet.server, "hosts") - hosts <= 4
    assert reads(fleet.server, "agent-locks") == locks
    assert reads(fleet.server, "role-locks") == 0


def test_a_holder_frozen_past_its_session_halts_and_nobody_overlaps(fleet: Fleet) -> None:
    """The fault trial of issue 9, point 5, with real agents: the agent
    holding the service lock is frozen (SIGSTOP) while its deploy script
    runs, until its session expires. The other agent does not start its
    script meanwhile; the frozen one, resumed, halts the cluster and fails
    its run naming the service; the other gives up its wait."""
    fleet.tree(hosts=2)
    fleet.start(2, seconds=5.0, **{"zookeeper-session-timeout": "2"})
    update_properties(fleet.client, "/hosts", version=1)
    wait_until(lambda: len(fleet.deploy_starts()) == 1)
    [holder] = fleet.deploy_starts()
    frozen, other = fleet.agents[holder], fleet.agents[1 - holder]
    frozen.process.send_signal(signal.SIGSTOP)
    try:
        wait_until(lambda: not fleet.client.exists(f"/hosts/h{holder}"))
        # Expired: a plain lock would let the other host start now.
        time.sleep(1.0)
        assert fleet.deploy_starts() == [holder]
    finally:
        frozen.process.send_signal(signal.SIGCONT)
    frozen.wait_for_message("CRITICAL FAILED deploying version 1", timeout=30)
    lost = "Lost the lock for /svc/app while deploying"
    wait_until(lambda: fleet.host_properties(holder).get("error") == lost)
    assert decode(fleet.client.get("/hosts")[0])["version"] is None
    other.wait_for_message("WARNING Abandoning deployment because cluster version is None")
    assert fleet.deploy_starts() == [holder]
    assert most_at_once(fleet.deploy_spans()) == 1
