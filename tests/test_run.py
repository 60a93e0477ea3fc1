"""The Failure section of agent.md, stated against `run.Reconciler` alone.

The run is driven in-process with an in-memory cluster (`FakeCluster`, a
`reconciler.cluster.Cluster` that records what was asked of it) and the
sandbox's real fake executables under a temporary root. No ZooKeeper, no
agent process: each test takes a fraction of a second.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path
from typing import Any

import pytest
from loguru import logger

from reconciler.cluster import halting
from reconciler.config import Config
from reconciler.run import Outcome, Reconciler
from reconciler.treefile import TreeFileCluster
from reconciler.treefmt import parse
from tests.support.sandbox_host import SANDBOX_BIN, TREES
from tests.support.seed_transcript import RULE

ABANDONING = "WARNING Abandoning deployment because cluster version is None"
HALTED = "WARNING Not deploying because cluster version is None"
ROLE_TREE = (
    "/role-locks\n  /my.role\n"
    "/cust\n  /someapp\n    /cms : z4m\n      version = '1.0.0'\n      /deploy\n        /my.role\n"
    "/roles\n  /my.role : {controller}\n    version = '1.0.0'\n"
)


class FakeCluster(TreeFileCluster):
    """An in-memory cluster. `events` lists, in order, the halts and the
    locks taken and left; `interrupt`, called on every look at the
    version, lets a test act "between steps" (another host halting)."""

    def __init__(self, text: str, version: Any) -> None:
        super().__init__(parse(text), version)
        self.events: list[str] = []
        self.interrupt: Callable[[], None] = lambda: None

    def version(self) -> Any:
        self.interrupt()
        return self.cluster_version

    def halt(self) -> None:
        self.events.append("halt")
        super().halt()

    def lock(self, name: str, max_parallel: int = 1) -> AbstractContextManager[object]:
        width = f" max-parallel {max_parallel}" if max_parallel != 1 else ""
        return halting(self, self._held(f"lock {name}{width}"))

    @contextmanager
    def _held(self, what: str) -> Iterator[object]:
        self.events.append(what)
        try:
            yield None
        finally:
            self.events.append(f"release {what}")

    @contextmanager
    def role_lock(self, role: str, max_parallel: int = 1) -> Iterator[object]:
        width = f" max-parallel {max_parallel}" if max_parallel != 1 else ""
        self.events.append(f"role lock {role}{width}")
        try:
            yield None
        except BaseException:
            self.events.append(f"keep role lock {role}")
            raise
        self.events.append(f"release role lock {role}")


class Host:
    """A sandbox root and run directory; the messages and commands of runs."""

    def __init__(self, base: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        self.base = base
        self.journal = base / "journal"
        self.journal.write_text("")
        monkeypatch.setenv("SANDBOX_JOURNAL", str(self.journal))
        self.messages: list[str] = []
        self.sink = logger.add(
            lambda m: self.messages.append(f"{m.record['level'].name} {m.record['message']}"),
            level="INFO",
            filter=lambda record: record["level"].name != "OUTPUT",
        )
        self.stop = threading.Event()

    def reconciler(
        self, cluster: FakeCluster, after: str = "echo after", role: str | None = None
    ) -> Reconciler:
        config = Config(
            host_id="424242424242",
            host_name="host42",
            run_directory=self.base / "run",
            root=self.base / "root",
            path=(SANDBOX_BIN,),
            after=tuple(after.split()),
            role=role,
        )
        (self.base / "run").mkdir(exist_ok=True)
        (self.base / "root").mkdir(exist_ok=True)
        return Reconciler(config, cluster, self.stop)

    def commands(self) -> list[str]:
        return self.journal.read_text().splitlines()

    def status(self) -> str:
        return (self.base / "run" / "status").read_text().split(" ", 3)[3].strip()

    def mark(self) -> None:
        """Forget the messages and commands so far."""
        self.messages.clear()
        self.journal.write_text("")


@pytest.fixture
def host(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Host]:
    host = Host(tmp_path, monkeypatch)
    yield host
    logger.remove(host.sink)


def fixture_cluster(name: str) -> FakeCluster:
    text = (TREES / f"{name}.zk").read_text()
    hosts = parse(text).get("/hosts")
    assert hosts is not None
    return FakeCluster(text, hosts.properties["version"])


def seeded(host: Host, name: str = "seed-v2", after: str = "echo after") -> Reconciler:
    """The seed's host converged to version 1, then given the tree `name`."""
    assert host.reconciler(fixture_cluster("seed-v1")).run() is Outcome.DONE
    reconciler = host.reconciler(fixture_cluster(name), after)
    host.mark()
    return reconciler


def halt_once(cluster: FakeCluster, host: Host, command: str) -> None:
    """Another host halts the cluster once `command` has run here."""

    def interrupt() -> None:
        if any(c.startswith(command) for c in host.commands()):
            cluster.cluster_version = None
            cluster.interrupt = lambda: None

    cluster.interrupt = interrupt


def test_abandon_between_steps_then_the_after_hook(host: Host) -> None:
    reconciler = seeded(host)
    cluster = reconciler.cluster
    assert isinstance(cluster, FakeCluster)
    halt_once(cluster, host, "/opt/z4mmonitor/bin/zookeeper-deploy -u")
    assert reconciler.run() is Outcome.ABANDONED
    assert host.messages == [
        RULE,
        "INFO Deploying version 2",
        "INFO /opt/z4mmonitor/bin/zookeeper-deploy -u /cust/someapp/monitor 0",
        ABANDONING,
        "INFO Running after hook",
        "INFO echo after",
        HALTED,
    ]
    assert host.status() == "abandoned"
    assert reconciler.host_version == 1 and cluster.recorded is None
    # Abandoning is not failing: nothing halted by this host, no error.
    assert cluster.events == [] and cluster.error is None
    assert Outcome.ABANDONED.exit_status == 1


def test_failing_deploy_halts_before_the_lock_is_released(host: Host) -> None:
    text = (TREES / "seed-v2.zk").read_text().replace("/cms : z4m", "/cms : cranky", 1)
    reconciler = host.reconciler(FakeCluster(text, 2))
    cluster = reconciler.cluster
    assert isinstance(cluster, FakeCluster)
    assert reconciler.run() is Outcome.FAILED
    # The run's own failure handling halts again afterwards: no harm.
    assert cluster.events[:3] == [
        "lock cust,someapp,cms",
        "halt",
        "release lock cust,someapp,cms",
    ]
    assert cluster.error == "Command failed: /opt/cranky/bin/zookeeper-deploy /cust/someapp/cms 0"
    assert host.messages[-2:] == ["ERROR deploying", "CRITICAL FAILED deploying version 2"]
    # No after hook after a failed deployment; nothing recorded.
    assert "INFO Running after hook" not in host.messages
    assert host.status() == "error"
    assert reconciler.host_version is None and cluster.recorded is None


def test_failing_hook_after_a_recorded_deployment(host: Host) -> None:
    reconciler = seeded(host, after="echo 666")
    cluster = reconciler.cluster
    assert isinstance(cluster, FakeCluster)
    assert reconciler.run() is Outcome.FAILED
    # The deployment itself succeeded, so it was recorded before the hook.
    assert cluster.recorded == 2 and reconciler.host_version == 2
    assert host.messages[-7:] == [
        "INFO Done deploying version 2",
        "INFO Running after hook",
        "INFO echo 666",
        "ERROR FAILURE",
        "ERROR after",
        "CRITICAL FAILED after deploying version 2",
        HALTED,
    ]
    assert cluster.events[-1] == "halt" and cluster.error == "Command failed: echo 666"
    assert host.status() == "error"


def test_stop_between_steps_halts_nothing(host: Host) -> None:
    reconciler = seeded(host)
    cluster = reconciler.cluster
    assert isinstance(cluster, FakeCluster)

    def stop() -> None:
        if host.commands():
            host.stop.set()  # SIGTERM, seen at the next check

    cluster.interrupt = stop
    assert reconciler.run() is Outcome.STOPPED
    assert host.commands() == [
        "/opt/z4mmonitor/bin/zookeeper-deploy -u /cust/someapp/monitor 0",
        "yum -q list installed z4m",
    ]
    assert host.messages[-1] == "WARNING Stopped before finishing version 2"
    assert host.status() == "stopped"
    assert cluster.events == [] and cluster.cluster_version == 2 and cluster.recorded is None
    assert "INFO Running after hook" not in host.messages


def role_cluster(controller: str) -> FakeCluster:
    return FakeCluster(ROLE_TREE.format(controller=controller), 1)


def test_role_lock_frames_the_controller_commands(host: Host) -> None:
    cluster = role_cluster("my-rc")
    reconciler = host.reconciler(cluster, role="my.role")
    released: list[list[str]] = []
    # What ran when the role lock was released: everything up to
    # `ending-deployments`, nothing after it.
    role_lock = cluster.role_lock

    @contextmanager
    def watched(role: str, max_parallel: int = 1) -> Iterator[object]:
        with role_lock(role, max_parallel):
            yield None
        released.append(host.commands())

    cluster.role_lock = watched  # type: ignore[method-assign]
    assert reconciler.run() is Outcome.DONE
    assert cluster.events == ["role lock my.role", "release role lock my.role"]
    assert "/opt/my-rc/bin/starting-deployments /roles/my.role" in released[0]
    assert released[0][-1] == "/opt/my-rc/bin/ending-deployments /roles/my.role"
    assert host.commands()[-1] == "echo after"
    assert cluster.recorded == 1


def test_role_lock_kept_on_failure(host: Host) -> None:
    # my-0-3-rc: starting-deployments succeeds, ending-deployments exits 3.
    cluster = role_cluster("my-0-3-rc")
    reconciler = host.reconciler(cluster, role="my.role")
    assert reconciler.run() is Outcome.FAILED
    assert cluster.events == ["role lock my.role", "keep role lock my.role", "halt"]
    assert cluster.error == "Command failed: /opt/my-0-3-rc/bin/ending-deployments /roles/my.role"
    assert host.status() == "error"


def test_role_host_finishes_its_run_when_the_cluster_halts(host: Host) -> None:
    cluster = role_cluster("my-rc")
    reconciler = host.reconciler(cluster, role="my.role")
    role_lock = cluster.role_lock

    @contextmanager
    def halted_meanwhile(role: str, max_parallel: int = 1) -> Iterator[object]:
        with role_lock(role, max_parallel):
            cluster.cluster_version = None  # another host failed
            yield None

    cluster.role_lock = halted_meanwhile  # type: ignore[method-assign]
    assert reconciler.run() is Outcome.DONE
    assert ABANDONING not in host.messages
    assert cluster.recorded == 1 and host.status() == "done"
    # The hook still runs; the halt is reported after it.
    assert host.messages[-3:] == ["INFO Running after hook", "INFO echo after", HALTED]


def test_install_that_created_nothing_is_not_verified(host: Host) -> None:
    """agent.md: yum is asked only when /opt/<rpm> exists; yum exits 0 for
    z4m-666 and installs nothing (issue 12)."""
    text = (TREES / "seed-v2.zk").read_text().replace("'1.0.0'", "'666'")
    reconciler = host.reconciler(FakeCluster(text, 2))
    assert reconciler.run() is Outcome.FAILED
    assert host.commands() == ["yum -y clean all", "yum -y install z4m-666"]
    assert reconciler.cluster.version() is None
    assert isinstance(reconciler.cluster, FakeCluster)
    assert reconciler.cluster.error == "Failed to install z4m-666 (installed: None)"
