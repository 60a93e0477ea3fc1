"""The agent daemon: registers the host in ZooKeeper, watches `/hosts`, and
runs deployments one at a time in a single worker.

This is the only module that knows about watches, sessions and the
cluster halt; a run itself is `run.Deployer`, the same as with a tree file.
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from types import FrameType
from typing import Any

from kazoo.client import KazooClient, KazooState
from kazoo.exceptions import LockTimeout, NodeExistsError, NoNodeError
from loguru import logger

from reconciler.config import Config
from reconciler.errors import ConfigError
from reconciler.executor import Abandoned, Stopped
from reconciler.model import HostIdentity
from reconciler.rolelock import RoleLock
from reconciler.run import Deployer, Outcome
from reconciler.tree import Node
from reconciler.zk.reader import read_properties, read_tree, update_properties
from reconciler.zk.storage import ZooKeeperUnavailable, connect, decode, encode

HOSTS = "/hosts"
LOCK_POLL = 0.2


class AgentRunning(Exception):
    pass


def cluster_version(properties: dict[str, Any]) -> Any:
    return properties.get("version")


class ZooKeeperSource:
    """The cluster as seen by one agent: a `run.Source` on ZooKeeper.

    The cluster version is the one the watch last delivered, so checking it
    between steps costs no round trip.
    """

    def __init__(self, client: KazooClient, host: HostIdentity) -> None:
        self.client = client
        self.host = host
        self.host_path = f"{HOSTS}/{host.id}"
        self.known: Any = None
        self.stop_requested = threading.Event()

    def version(self) -> Any:
        return self.known

    def stopping(self) -> bool:
        return self.stop_requested.is_set()

    def halt(self) -> None:
        # Known first: our own halt must not look like another host's.
        self.known = None
        update_properties(self.client, HOSTS, version=None)

    def record(self, version: Any) -> None:
        update_properties(self.client, self.host_path, version=version)

    def set_error(self, message: str | None) -> None:
        properties = read_properties(self.client, self.host_path)
        if properties.get("error") == message or (message is None and "error" not in properties):
            return
        if message is None:
            del properties["error"]
        else:
            properties["error"] = message
        self.client.set(self.host_path, encode(properties))

    def tree(self) -> Node:
        return read_tree(self.client, "/")

    @contextmanager
    def lock(self, name: str) -> Iterator[object]:
        lock = self.client.Lock(f"/agent-locks/{name}", identifier=self.host.name)
        while True:
            try:
                if lock.acquire(timeout=LOCK_POLL):
                    break
            except LockTimeout:
                pass
            if self.stopping():
                lock.cancel()
                raise Stopped()
            if self.version() is None:
                lock.cancel()
                raise Abandoned()
        try:
            yield lock
        finally:
            lock.release()

    def role_lock(self, role: str) -> RoleLock:
        """The persistent `/role-locks/<role>` (see `rolelock`). Waiting for
        it stops when the agent stops, and gives up (abandons the run) when
        another host halts the cluster: nothing is out of service yet."""
        return RoleLock(self.client, role, self.host.id, self.host.name, self._waiting)

    def _waiting(self) -> None:
        if self.stopping():
            raise Stopped()
        if self.version() is None:
            raise Abandoned()


class Agent:
    def __init__(self, config: Config, verbose: bool = False) -> None:
        self.config = config
        self.verbose = verbose
        self.host = HostIdentity(id=config.host_id, name=config.host_name, role=config.role)
        try:
            self.client = connect(config.zookeeper, timeout=config.zookeeper_session_timeout)
        except ZooKeeperUnavailable as e:
            raise ConfigError(str(e)) from None
        self.source = ZooKeeperSource(self.client, self.host)
        self.deployer = Deployer(config, self.source, verbose=verbose)
        self.pending = threading.Event()
        self.registered = False
        self.session_lost = False

    # Registration

    def register(self) -> None:
        self.client.ensure_path(HOSTS)
        path = self.source.host_path
        try:
            data, stat = self.client.get(path)
        except NoNodeError:
            pass
        else:
            if stat.ephemeralOwner:
                raise AgentRunning("Another agent is running")
            legacy = read_properties(self.client, path)
            if self.deployer.host_version is None:
                self.deployer.host_version = legacy.get("version")
            self.client.delete(path)
        self._create_host_node()
        self.registered = True
        self.client.add_listener(self._session_changed)

    def _create_host_node(self) -> None:
        properties: dict[str, Any] = {"name": self.host.name, "version": self.deployer.host_version}
        if self.host.role:
            properties["role"] = self.host.role
        try:
            self.client.create(self.source.host_path, encode(properties), ephemeral=True)
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

    # Watching and running

    def watch(self) -> None:
        first = threading.Event()

        def changed(data: bytes | None, stat: Any) -> None:
            version = cluster_version(decode(data)) if data is not None else None
            if not first.is_set() or version != self.source.known:
                self.source.known = version
                self.pending.set()
            first.set()

        self.client.DataWatch(HOSTS, changed)
        first.wait(10)

    def start(self) -> None:
        self.register()
        self.watch()
        self.pending.clear()
        cluster = self.source.known
        logger.info(f"Agent starting, cluster {cluster}, host {self.deployer.host_version}")

    def run_once(self) -> Outcome:
        return self.deployer.run()

    def serve(self) -> None:
        """Run a deployment at start and after every change, until stopped."""
        self.pending.set()
        while not self.source.stopping():
            if not self.pending.wait(0.5):
                continue
            self.pending.clear()
            if self.source.stopping():
                break
            self.deployer.run()

    def stop(self) -> None:
        self.source.stop_requested.set()

    def close(self) -> None:
        self.registered = False
        try:
            self.client.stop()
        finally:
            self.client.close()


def run_daemon(
    config: Config, once: bool = False, plan_only: bool = False, verbose: bool = False
) -> int:
    agent = Agent(config, verbose=verbose)
    try:
        if plan_only:
            # No /hosts yet (nothing synced): a plan for no version, not a traceback.
            hosts = read_properties(agent.client, HOSTS) if agent.client.exists(HOSTS) else {}
            agent.deployer.print_plan(cluster_version(hosts))
            return 0
        try:
            agent.start()
        except AgentRunning as e:
            logger.error(str(e))
            return 1
        if once:
            return agent.run_once().exit_status

        worker = threading.Thread(target=agent.serve, name="deployer")
        worker.start()

        def shutdown(signum: int, frame: FrameType | None) -> None:
            logger.info(f"Stopping on {signal.Signals(signum).name}")
            agent.stop()

        signal.signal(signal.SIGTERM, shutdown)
        signal.signal(signal.SIGINT, shutdown)
        while worker.is_alive():
            worker.join(0.5)
        return 0
    finally:
        agent.close()
