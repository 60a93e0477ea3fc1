"""The cluster on ZooKeeper, as one host's agent sees it.

The protocol on ZooKeeper nodes (agent.md):

- `/hosts` holds the cluster `version`; this class keeps a `DataWatch` on
  it and caches the version the watch last delivered, so checking it
  between steps costs no round trip. `on_change` is called when the
  delivered version differs from the cached one (and for the first
  delivery): the daemon queues a run. A halt updates the cache *before*
  writing, so this host's own halt does not look like another host's.
- `/hosts/<host-id>` is this host's node: `record` sets its `version`,
  `set_error` its `error`. Creating it is the daemon's registration
  (`reconciler.agent`).
- `/agent-locks/<name>` is a kazoo `Lock` (identifier: the host name),
  acquired by polling so that a stop or a halt ends the wait.
- `/role-locks/<role>` is the persistent role lock (`zk.rolelock`).

`ClusterHooks` tell the daemon what its metrics and watchdog need: every
version the watch delivers, how long each lock wait took, and that a lock
wait is still alive (called about every `LOCK_POLL` seconds).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from typing import Any

from kazoo.client import KazooClient
from kazoo.exceptions import LockTimeout

from reconciler.cluster import Abandoned, Stopped, halting
from reconciler.model import HostIdentity
from reconciler.tree import Node
from reconciler.zk.paths import AGENT_LOCKS, HOSTS
from reconciler.zk.reader import read_properties, read_tree, update_properties
from reconciler.zk.rolelock import RoleLock
from reconciler.zk.storage import decode, encode

LOCK_POLL = 0.2


def cluster_version(data: bytes | None) -> Any:
    """The cluster version in `/hosts` data (None for a missing node)."""
    return decode(data).get("version") if data is not None else None


def _ignore(*args: object) -> None:
    pass


@dataclass(frozen=True)
class ClusterHooks:
    version_seen: Callable[[Any], None] = _ignore
    lock_waited: Callable[[float], None] = _ignore
    waiting: Callable[[], object] = _ignore


class ZooKeeperCluster:
    """A `reconciler.cluster.Cluster` on a connected kazoo client.

    `stop` is the agent's stop event: waiting for a lock ends with `Stopped`
    when it is set.
    """

    def __init__(
        self,
        client: KazooClient,
        host: HostIdentity,
        stop: threading.Event,
        on_change: Callable[[], None] = lambda: None,
        hooks: ClusterHooks = ClusterHooks(),
    ) -> None:
        self.client = client
        self.hooks = hooks
        self.host = host
        self.host_path = f"{HOSTS}/{host.id}"
        self.stop = stop
        self.on_change = on_change
        self.cached_version: Any = None
        self.watched = False
        # kazoo delivers the first value before the constructor returns.
        self.client.DataWatch(HOSTS, self._delivered)

    def _delivered(self, data: bytes | None, stat: Any) -> None:
        version = cluster_version(data)
        self.hooks.version_seen(version)
        if not self.watched or version != self.cached_version:
            self.cached_version = version
            self.watched = True
            self.on_change()

    def tree(self) -> Node:
        return read_tree(self.client, "/")

    def version(self) -> Any:
        return self.cached_version

    def halt(self) -> None:
        self.cached_version = None
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

    def lock(self, name: str) -> AbstractContextManager[object]:
        return halting(self, self._agent_lock(name))

    @contextmanager
    def _agent_lock(self, name: str) -> Iterator[object]:
        lock = self.client.Lock(f"{AGENT_LOCKS}/{name}", identifier=self.host.name)
        started = time.monotonic()
        try:
            while True:
                try:
                    if lock.acquire(timeout=LOCK_POLL):
                        break
                except LockTimeout:
                    pass
                try:
                    self._interrupt()
                except (Stopped, Abandoned):
                    lock.cancel()
                    raise
        finally:
            self.hooks.lock_waited(time.monotonic() - started)
        try:
            yield lock
        finally:
            lock.release()

    def role_lock(self, role: str) -> RoleLock:
        """Waiting for the role lock gives up (abandons the run) when another
        host halts the cluster: nothing is out of service yet."""
        return RoleLock(
            self.client,
            role,
            self.host.id,
            self.host.name,
            self._interrupt,
            waited=self.hooks.lock_waited,
        )

    def _interrupt(self) -> None:
        """Called while waiting for a lock: end the wait on a stop or halt."""
        self.hooks.waiting()
        if self.stop.is_set():
            raise Stopped()
        if self.version() is None:
            raise Abandoned()
