"""A restart after a crash takes its own stale host node over at once; an
agent that is really running is still refused. Real agent processes, a real
ZooKeeper (whose session timeout is far longer than the restart)."""

from __future__ import annotations

import signal
import time
from pathlib import Path

from kazoo.client import KazooClient

from tests.support.agent_process import AgentProcess
from tests.support.prometheus import free_port, samples, scrape
from tests.support.sandbox_host import SandboxHost
from tests.support.seed import (
    HOST_NODE,
    import_fixture,
    seed_host,
    set_cluster_version,
    wait_until,
)

REFUSED = "ERROR Another agent is running"


def assert_refused(host: SandboxHost, connection: str, zk: KazooClient, owner: int) -> None:
    """An agent for `host` exits 1, refused, and the node stays `owner`'s."""
    second = AgentProcess(host, connection)
    assert second.process.wait(20) == 1
    second.reader.join(5)
    assert REFUSED in second.messages()
    assert zk.exists(HOST_NODE).ephemeralOwner == owner


def test_restart_after_sigkill_takes_over_at_once(
    tmp_path: Path, zk: KazooClient, zk_chroot: str
) -> None:
    host = seed_host(tmp_path, zk)
    host.extra["zookeeper-session-timeout"] = "30"  # expiry would take 30 s
    first = AgentProcess(host, zk_chroot)
    first.wait_for_message("INFO Agent starting, cluster 1, host 1")
    owner = zk.exists(HOST_NODE).ephemeralOwner
    assert (host.run_directory / "session").read_text() == f"0x{owner:x}\n"
    first.process.send_signal(signal.SIGKILL)
    assert first.process.wait(10) == -signal.SIGKILL
    assert zk.exists(HOST_NODE).ephemeralOwner == owner  # ZooKeeper can't know yet

    import_fixture(zk, "seed-v2")
    set_cluster_version(zk, 2)
    started = time.monotonic()
    again = AgentProcess(host, zk_chroot)
    try:
        messages = again.wait_for_message("INFO Done deploying version 2", timeout=10)
        took = time.monotonic() - started
        assert REFUSED not in messages
        assert messages[:2] == [
            f"INFO Taking over the host node of this host's previous agent "
            f"(session 0x{owner:x}, no longer running)",
            "INFO Agent starting, cluster 2, host 1",
        ]
        now = zk.exists(HOST_NODE).ephemeralOwner
        assert now not in (0, owner)
        assert (host.run_directory / "session").read_text() == f"0x{now:x}\n"
        # A new process, a run, all well within the 30 s session timeout.
        assert took < 10, took
    finally:
        assert again.stop() == 0
    print(f"restart after SIGKILL: converged to version 2 in {took:.2f} s")


def test_running_agent_of_another_run_directory_is_refused(
    tmp_path: Path, zk: KazooClient, zk_chroot: str
) -> None:
    """Same host id, its own run directory (its lock is free): the node's
    owner is not the session this run directory recorded."""
    host = seed_host(tmp_path / "a", zk)
    first = AgentProcess(host, zk_chroot)
    try:
        first.wait_for_message("INFO Agent starting, cluster 1, host 1")
        owner = zk.exists(HOST_NODE).ephemeralOwner
        elsewhere = SandboxHost(tmp_path / "b")
        # Even with a stale session file of its own.
        (elsewhere.run_directory / "session").write_text("0x1234\n")
        assert_refused(elsewhere, zk_chroot, zk, owner)
    finally:
        assert first.stop() == 0


def test_frozen_agent_is_not_taken_over(tmp_path: Path, zk: KazooClient, zk_chroot: str) -> None:
    """Stopped (SIGSTOP), not dead: its session and its lock on the run
    directory live on, and a second agent must not take its node."""
    host = seed_host(tmp_path, zk)
    # Long enough that the frozen agent's session outlives the check even
    # on a loaded machine.
    host.extra["zookeeper-session-timeout"] = "30"
    first = AgentProcess(host, zk_chroot)
    try:
        first.wait_for_message("INFO Agent starting, cluster 1, host 1")
        owner = zk.exists(HOST_NODE).ephemeralOwner
        first.process.send_signal(signal.SIGSTOP)
        assert_refused(host, zk_chroot, zk, owner)
    finally:
        first.process.send_signal(signal.SIGCONT)
        assert first.stop() == 0


def started_up(port: int) -> None:
    """The agent serving on `port` finished its start-up run (nothing to
    do): its signal handlers are in place."""
    nothing = ("reconciler_runs_total", (("outcome", "nothing"),))

    def done() -> bool:
        try:
            return samples(scrape(port)).get(nothing) == 1
        except OSError:  # not serving yet
            return False

    wait_until(done)


def test_after_a_session_expiry_the_new_session_is_recorded(
    tmp_path: Path, zk: KazooClient, zk_chroot: str
) -> None:
    """Registered again after an expiry, the agent records its new session:
    a crash after that is still taken over. The expiry is counted."""
    host = seed_host(tmp_path, zk)
    host.extra["zookeeper-session-timeout"] = "2"
    port = free_port()
    host.extra["metrics-address"] = f"127.0.0.1:{port}"
    first = AgentProcess(host, zk_chroot)
    try:
        first.wait_for_message("INFO Agent starting, cluster 1, host 1")
        started_up(port)
        owner = zk.exists(HOST_NODE).ephemeralOwner
        first.process.send_signal(signal.SIGSTOP)  # frozen past its session timeout
        wait_until(lambda: zk.exists(HOST_NODE) is None)
        first.process.send_signal(signal.SIGCONT)
        first.wait_for_message("WARNING ZooKeeper session expired; registering the host again")
        wait_until(lambda: zk.exists(HOST_NODE) is not None)
        renewed = zk.exists(HOST_NODE).ephemeralOwner
        assert renewed != owner
        assert (host.run_directory / "session").read_text() == f"0x{renewed:x}\n"
        got = samples(scrape(port))
        assert got[("reconciler_zookeeper_session_expiries_total", ())] == 1
        assert got[("reconciler_zookeeper_session_state", (("state", "connected"),))] == 1
    finally:
        first.process.send_signal(signal.SIGKILL)
        first.process.wait(10)
    again = AgentProcess(host, zk_chroot)
    try:
        again.wait_for_message("INFO Agent starting, cluster 1, host 1", timeout=10)
        started_up(port)
        assert REFUSED not in again.messages()
    finally:
        assert again.stop() == 0
