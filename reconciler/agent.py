"""The agent process: `reconcile CONFIG` with or without `--once`.

`main` is the one path for every mode; they differ only in which cluster
is opened (a tree file, or ZooKeeper) and in whether runs repeat:

- with ZooKeeper, the `Daemon` connects, registers the host (its ephemeral
  node `/hosts/<host-id>`, registered again after a session expiry),
  keeps the tree in a mirror (not with `--once`: one read is all it needs)
  and lets the `ZooKeeperCluster`'s watch on `/hosts` queue runs;
- `--once` (or a tree file) does one run; otherwise a single worker thread
  runs one reconciliation per queued change until SIGTERM/SIGINT sets the
  stop event, which the run checks between steps.

A reconciliation itself is `run.Reconciler`'s.
"""

from __future__ import annotations

import signal
import threading
from types import FrameType
from typing import Any

from kazoo.client import KazooState
from kazoo.exceptions import NodeExistsError, NoNodeError
from loguru import logger

from reconciler.cluster import Cluster
from reconciler.config import Config
from reconciler.errors import ConfigError
from reconciler.model import HostIdentity
from reconciler.run import Reconciler
from reconciler.treefile import TreeFileCluster
from reconciler.zk.cluster import ZooKeeperCluster
from reconciler.zk.connect import ZooKeeperUnavailable, connect, settings
from reconciler.zk.paths import HOSTS
from reconciler.zk.reader import read_properties
from reconciler.zk.storage import encode


class AgentRunning(Exception):
    pass


class Daemon:
    """One ZooKeeper session of this host: its cluster, its host node, and
    the event that queues a run."""

    def __init__(self, config: Config, stop: threading.Event) -> None:
        self.host = HostIdentity(id=config.host_id, name=config.host_name, role=config.role)
        try:
            self.client = connect(settings(config), readable=HOSTS)
        except ZooKeeperUnavailable as e:
            raise ConfigError(str(e)) from None
        self.pending = threading.Event()
        self.stop = stop
        self.cluster = ZooKeeperCluster(self.client, self.host, stop, on_change=self.pending.set)
        self.registered = False
        self.session_lost = False
        self.reconciler: Reconciler | None = None

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
        version = self.reconciler.host_version if self.reconciler else None
        properties: dict[str, Any] = {"name": self.host.name, "version": version}
        if self.host.role:
            properties["role"] = self.host.role
        try:
            self.client.create(self.cluster.host_path, encode(properties), ephemeral=True)
        except NodeExistsError:
            pass  # Our session still holds it (a reconnect, not an expiry).

    def _session_changed(self, state: str) -> None:
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
        except Exception:
            logger.opt(exception=True).error("Could not register the host again")

    def start(self, reconciler: Reconciler, follow: bool = True) -> None:
        """Register; with `follow` (not for `--once`), keep the tree in a
        mirror from now on, so that a run reads only what changed."""
        self.register(reconciler)
        if follow:
            self.cluster.follow_tree()
        # The watch's first delivery is not a change: `serve` runs at start.
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
            reconciler.run()

    def close(self) -> None:
        self.registered = False
        try:
            self.cluster.unfollow_tree()
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
                daemon.start(reconciler, follow=not once)
            except AgentRunning as e:
                logger.error(str(e))
                return 1
        if once or daemon is None:
            return reconciler.run().exit_status
        serve_until_signalled(daemon, reconciler)
        return 0
    finally:
        if daemon:
            daemon.close()
