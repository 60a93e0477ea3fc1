"""The agent process: `reconcile CONFIG` with or without `--once`.

`main` is the one path for every mode; they differ only in which cluster
is opened (a tree file, or ZooKeeper) and in whether runs repeat:

- with ZooKeeper, the `Daemon` connects, registers the host (its ephemeral
  node `/hosts/<host-id>`, registered again after a session expiry) and
  lets the `ZooKeeperCluster`'s watch on `/hosts` queue runs;
- `--once` (or a tree file) does one run; otherwise a single worker thread
  runs one reconciliation per queued change until SIGTERM/SIGINT sets the
  stop event, which the run checks between steps.

The worker never dies of a run: an exception escaping one is logged with
its traceback and counted (`Daemon.crashed_runs`), and the worker goes on
watching. A reconnection queues a run (a run that could not reach
ZooKeeper is retried then). Only a fatal condition (this host's node held
by another agent) ends the daemon, with one CRITICAL line and exit 1.

A reconciliation itself is `run.Reconciler`'s.
"""

from __future__ import annotations

import signal
import threading
from types import FrameType

from kazoo.client import KazooState
from kazoo.exceptions import NoNodeError
from loguru import logger

from reconciler.cluster import Cluster, HostNodeTaken
from reconciler.config import Config
from reconciler.errors import ConfigError
from reconciler.model import HostIdentity
from reconciler.run import Outcome, Reconciler
from reconciler.treefile import TreeFileCluster
from reconciler.zk.cluster import ZooKeeperCluster
from reconciler.zk.paths import HOSTS
from reconciler.zk.reader import read_properties
from reconciler.zk.storage import ZooKeeperUnavailable, connect


class AgentRunning(Exception):
    pass


class Daemon:
    """One ZooKeeper session of this host: its cluster, its host node, and
    the event that queues a run."""

    def __init__(self, config: Config, stop: threading.Event) -> None:
        self.host = HostIdentity(id=config.host_id, name=config.host_name, role=config.role)
        try:
            self.client = connect(config.zookeeper, timeout=config.zookeeper_session_timeout)
        except ZooKeeperUnavailable as e:
            raise ConfigError(str(e)) from None
        self.pending = threading.Event()
        self.stop = stop
        self.cluster = ZooKeeperCluster(
            self.client,
            self.host,
            stop,
            on_change=self.pending.set,
            retry_deadline=config.zookeeper_session_timeout,
        )
        self.registered = False
        self.session_lost = False
        self.reconciler: Reconciler | None = None
        # Runs that ended in an exception the run itself did not handle.
        self.crashed_runs = 0
        # Why the daemon had to stop (exit 1), if it had to.
        self.fatal: str | None = None

    # Registration

    def register(self, reconciler: Reconciler) -> None:
        """Create the ephemeral host node. A legacy persistent node (left by
        the original agent) gives its `version` as the host version, even
        over the host version file (agent.md), and is replaced."""
        self.client.ensure_path(HOSTS)
        path = self.cluster.host_path
        try:
            _data, stat = self.client.get(path)
        except NoNodeError:
            pass
        else:
            if stat.ephemeralOwner:
                raise AgentRunning("Another agent is running")
            reconciler.host_version = read_properties(self.client, path).get("version")
            self.client.delete(path)
        self.reconciler = reconciler
        self._create_host_node()
        self.registered = True
        self.client.add_listener(self._session_changed)

    def _create_host_node(self) -> None:
        # The host version now: a registration after a session expiry
        # comes after runs.
        self.cluster.host_version = self.reconciler.host_version if self.reconciler else None
        self.cluster.create_host_node()

    def _session_changed(self, state: str) -> None:
        if state == KazooState.CONNECTED:
            # A run that could not reach ZooKeeper runs again now; for any
            # other, a run that finds nothing to do costs one read.
            self.pending.set()
        if state == KazooState.LOST:
            self.session_lost = True
        elif state == KazooState.CONNECTED and self.session_lost and self.registered:
            self.session_lost = False
            # The expired session took the ephemeral host node with it. Not
            # in this callback: it runs on kazoo's event thread.
            self.client.handler.spawn(self._register_again)

    def _register_again(self) -> None:
        logger.warning("ZooKeeper session expired; registering the host again")
        try:
            self.client.retry(self._create_host_node)
        except HostNodeTaken as error:
            self.exit_fatally(str(error))
        except Exception:
            logger.opt(exception=True).error("Could not register the host again")

    def start(self, reconciler: Reconciler) -> None:
        self.register(reconciler)
        self.cluster.watch_host_node()
        # The watches' first deliveries are not changes: `serve` runs at start.
        self.pending.clear()
        cluster = self.cluster.version()
        logger.info(f"Agent starting, cluster {cluster}, host {reconciler.host_version}")

    # The worker

    def serve(self, reconciler: Reconciler) -> None:
        """Run a reconciliation at start and after every change, until stopped."""
        self.pending.set()
        while not self.stop.is_set():
            if not self.pending.wait(0.5):
                continue
            self.pending.clear()
            if self.stop.is_set():
                break
            if self.run(reconciler) is Outcome.WAITING and self.client.connected:
                # Connected again before the run gave up: no reconnection
                # will queue the next try.
                self.pending.set()

    def run(self, reconciler: Reconciler) -> Outcome | None:
        """One run that never kills the worker; None when it crashed."""
        try:
            self.cluster.repair_host_node()
            return reconciler.run()
        except HostNodeTaken as error:
            self.exit_fatally(str(error))
        except Exception:
            self.crashed_runs += 1
            logger.opt(exception=True).critical("Run crashed; waiting for the next change")
        return None

    def exit_fatally(self, reason: str) -> None:
        """Stop the daemon for a reason it cannot recover from (exit 1)."""
        logger.critical(reason)
        self.fatal = reason
        self.stop.set()

    def close(self) -> None:
        self.registered = False
        try:
            self.client.stop()
        finally:
            self.client.close()


def serve_until_signalled(daemon: Daemon, reconciler: Reconciler) -> None:
    worker = threading.Thread(target=daemon.serve, args=(reconciler,), name="reconciler")
    worker.start()

    def shutdown(signum: int, frame: FrameType | None) -> None:
        logger.info(f"Stopping on {signal.Signals(signum).name}")
        daemon.stop.set()

    signal.signal(signal.SIGTERM, shutdown)
    signal.signal(signal.SIGINT, shutdown)
    while worker.is_alive():
        worker.join(0.5)


def main(config: Config, once: bool = False, plan_only: bool = False, verbose: bool = False) -> int:
    """`reconcile CONFIG`: the exit status. A tree file means one run."""
    stop = threading.Event()
    daemon: Daemon | None = None
    cluster: Cluster
    if config.tree is None:
        daemon = Daemon(config, stop)
        cluster = daemon.cluster
    else:
        cluster = TreeFileCluster.read(config.tree)
    try:
        reconciler = Reconciler(config, cluster, stop, verbose=verbose)
        if plan_only:
            reconciler.print_plan()
            return 0
        if daemon:
            try:
                daemon.start(reconciler)
            except AgentRunning as e:
                logger.error(str(e))
                return 1
        if once or daemon is None:
            try:
                return reconciler.run().exit_status
            except HostNodeTaken as e:
                logger.critical(str(e))
                return 1
        serve_until_signalled(daemon, reconciler)
        return 1 if daemon.fatal else 0
    finally:
        if daemon:
            daemon.close()
