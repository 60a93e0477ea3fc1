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
- `/agent-locks/<name>` is the service lock (`zk.servicelock`, up to
  `max-parallel` holders, first come, first served): one request kept
  while waiting, which a stop or a halt gives up.
- `/role-locks/<role>` is the persistent role lock (`zk.rolelock`).

The tree. A daemon calls `follow_tree()` once registered: `tree()` is then
the snapshot of a `TreeMirror`, which reads only what changed since the
last run. Without it (`--once`, `--plan`) `tree()` is one full read. Both
leave out what is not desired state (`mirror.DEFAULT_EXCLUDE`: other hosts'
nodes and the lock queues), so a run's cost does not grow with the fleet.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from contextlib import AbstractContextManager
from typing import Any

from kazoo.client import KazooClient
from kazoo.exceptions import KazooException
from kazoo.handlers.threading import KazooTimeoutError
from loguru import logger

from reconciler.cluster import Abandoned, Stopped, halting
from reconciler.model import HostIdentity
from reconciler.tree import Node
from reconciler.zk.mirror import DEFAULT_EXCLUDE, Exclusions, TreeMirror
from reconciler.zk.paths import HOSTS
from reconciler.zk.reader import read_properties, read_tree, update_properties
from reconciler.zk.rolelock import RoleLock
from reconciler.zk.servicelock import ServiceLock
from reconciler.zk.storage import decode, encode

# What a run never reads: other hosts' nodes, the lock queues.
NOT_DESIRED = Exclusions(DEFAULT_EXCLUDE)


def cluster_version(data: bytes | None) -> Any:
    """The cluster version in `/hosts` data (None for a missing node)."""
    return decode(data).get("version") if data is not None else None


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
    ) -> None:
        self.client = client
        self.host = host
        self.host_path = f"{HOSTS}/{host.id}"
        self.stop = stop
        self.on_change = on_change
        self.cached_version: Any = None
        self.watched = False
        self.mirror: TreeMirror | None = None
        # kazoo delivers the first value before the constructor returns.
        self.client.DataWatch(HOSTS, self._delivered)

    def _delivered(self, data: bytes | None, stat: Any) -> None:
        version = cluster_version(data)
        if not self.watched or version != self.cached_version:
            self.cached_version = version
            self.watched = True
            self.on_change()

    def follow_tree(self) -> None:
        """Keep the tree in a mirror from now on (the daemon): a full read
        now, then only the nodes that change. A first read that fails (the
        connection lost meanwhile) is no reason to stop the agent: the
        mirror, started, reads it all at the next `tree()`, the first run's."""
        if self.mirror is not None:
            return
        self.mirror = TreeMirror(self.client)
        try:
            self.mirror.start()
        except (KazooException, KazooTimeoutError) as e:
            logger.warning(f"Could not read the tree yet ({type(e).__name__}): the first run will")

    def unfollow_tree(self) -> None:
        if self.mirror is not None:
            self.mirror.stop()
            self.mirror = None

    def tree(self) -> Node:
        """The desired state's tree, without other hosts' nodes and the lock
        queues, as of the cluster version last delivered.

        From the mirror, no sync() needed: a sync writes the tree before it
        sets the `/hosts` version, and ZooKeeper sends one session its
        notifications in commit order; the mirror notes its events on
        kazoo's connection thread as they are read, before the `/hosts`
        event that queued this run is even dispatched. So every change up to
        that version has been noted, and is read now. (A change committed
        after it may be seen too: a newer tree under an older version, which
        the run for the newer version, queued already, corrects.)"""
        if self.mirror is not None:
            return self.mirror.tree()
        return read_tree(self.client, "/", skip=NOT_DESIRED.skips)

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

    def lock(self, name: str, max_parallel: int = 1) -> AbstractContextManager[object]:
        return halting(self, self._agent_lock(name, max_parallel))

    def _agent_lock(self, name: str, max_parallel: int) -> ServiceLock:
        """Waiting ends on a stop or a halt (`_interrupt`, checked while the
        request keeps its place). A session lost while the deploy script runs
        halts the cluster and fails the run: `Lost the lock for <path> while
        deploying`."""
        return ServiceLock(
            self.client,
            name,
            self.host.id,
            self.host.name,
            max_parallel,
            interrupt=self._interrupt,
            halt=self.halt,
        )

    def role_lock(self, role: str, max_parallel: int = 1) -> RoleLock:
        """Waiting for the role lock gives up (abandons the run) when another
        host halts the cluster: nothing is out of service yet."""
        return RoleLock(
            self.client,
            role,
            self.host.id,
            self.host.name,
            self._interrupt,
            max_parallel=max_parallel,
        )

    def _interrupt(self) -> None:
        """Called while waiting for a lock: end the wait on a stop or halt."""
        if self.stop.is_set():
            raise Stopped()
        if self.version() is None:
            raise Abandoned()
