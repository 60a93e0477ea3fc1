"""The cluster on ZooKeeper, as one host's agent sees it.

The protocol on ZooKeeper nodes (agent.md):

- `/hosts` holds the cluster `version`; this class keeps a `DataWatch` on
  it and caches the version the watch last delivered, so checking it
  between steps costs no round trip. `on_change` is called when the
  delivered version differs from the cached one (and for the first
  delivery): the daemon queues a run. A halt updates the cache *before*
  writing, so this host's own halt does not look like another host's.
- `/hosts/<host-id>` is this host's ephemeral node: `record` sets its
  `version`, `set_error` its `error`. The daemon's registration
  (`reconciler.agent`) decides when it is created (`create_host_node`); a
  node deleted under the running agent is created again (by the next write,
  or by the worker after `host_node_missing` is set by a watch). A node of
  the same path owned by another session is `HostNodeTaken`.
- `/agent-locks/<name>` is the service lock (`zk.servicelock`, up to
  `max-parallel` holders, first come, first served): one request kept
  while waiting, which a stop or a halt gives up.
- `/role-locks/<role>` is the persistent role lock (`zk.rolelock`).

The tree. A daemon calls `follow_tree()` once registered: `tree()` is then
the snapshot of a `TreeMirror`, which reads only what changed since the
last run. Without it (`--once`, `--plan`) `tree()` is one full read. Both
leave out what is not desired state (`mirror.DEFAULT_EXCLUDE`: other hosts'
nodes and the lock queues), so a run's cost does not grow with the fleet.

A connection loss is not the host's failure: every call goes through
`retry`, which calls again across a leader failover or a session expiry
(kazoo's `KazooRetry`: delays from 0.1 s doubling up to 1 s) until
`retry_deadline` seconds have passed, then raises `ClusterUnavailable`.
A wait for a lock gives up the same way when the client has been
disconnected for longer than the deadline.

`ClusterHooks` tell the daemon what its metrics and watchdog need: every
version the watch delivers, how long each lock wait took, and that a lock
wait is still alive (called about every 0.2 s).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from typing import Any, TypeVar

from kazoo.client import KazooClient
from kazoo.exceptions import ConnectionClosedError, KazooException, NodeExistsError, NoNodeError
from kazoo.handlers.threading import KazooTimeoutError
from kazoo.retry import KazooRetry, RetryFailedError
from loguru import logger

from reconciler.cluster import (
    Abandoned,
    ClusterUnavailable,
    HostNodeTaken,
    Stopped,
    halting,
)
from reconciler.model import HostIdentity
from reconciler.tree import Node
from reconciler.zk.mirror import DEFAULT_EXCLUDE, Exclusions, TreeMirror
from reconciler.zk.paths import HOSTS
from reconciler.zk.reader import check_and_set, read_tree
from reconciler.zk.rolelock import RoleLock
from reconciler.zk.servicelock import ServiceLock
from reconciler.zk.storage import decode, encode

# What a run never reads: other hosts' nodes, the lock queues.
NOT_DESIRED = Exclusions(DEFAULT_EXCLUDE)
CONNECTED_POLL = 0.05
# The default for `retry_deadline`: a leader failover reconnects in about
# 1 s; the daemon passes its session timeout instead (after that long the
# session is gone anyway, and the run is better restarted once connected).
RETRY_DEADLINE = 10.0

T = TypeVar("T")


class _Unchanged(Exception):
    """A host node change that would write what is already there."""


def cluster_version(data: bytes | None) -> Any:
    """The cluster version in `/hosts` data (None for a missing node)."""
    return decode(data).get("version") if data is not None else None


def same_version(a: Any, b: Any) -> bool:
    """Equal as JSON values: by type too, so that `False` (paused) is not
    version `0`, nor `true` version `1`."""
    return type(a) is type(b) and a == b


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
        retry_deadline: float = RETRY_DEADLINE,
    ) -> None:
        self.client = client
        self.hooks = hooks
        self.host = host
        self.host_path = f"{HOSTS}/{host.id}"
        self.stop = stop
        self.on_change = on_change
        self.retry_deadline = retry_deadline
        self._retry = KazooRetry(
            max_tries=-1,
            delay=0.1,
            max_delay=1.0,
            deadline=retry_deadline,
            sleep_func=client.handler.sleep_func,
        )
        self.cached_version: Any = None
        self.watched = False
        # The `version` of this host's node, for creating it again.
        self.host_version: Any = None
        # Set by the watch on the host node when it disappears.
        self.host_node_missing = False
        self._disconnected_since: float | None = None
        self.mirror: TreeMirror | None = None
        # kazoo delivers the first value before the constructor returns.
        self.client.DataWatch(HOSTS, self._delivered)

    def _delivered(self, data: bytes | None, stat: Any) -> None:
        try:
            version = cluster_version(data)
        except Exception as error:
            # Data no version can be read from is refused, not deployed:
            # the agent keeps the version it has until a readable one comes.
            logger.error(f"Ignoring unreadable {HOSTS} data: {type(error).__name__}: {error}")
            return
        self.hooks.version_seen(version)
        if not self.watched or not same_version(version, self.cached_version):
            self.cached_version = version
            self.watched = True
            self.on_change()

    def retry(self, func: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """`func(*args, **kwargs)`, called again after a connection loss or a
        session expiry until it completes; `ClusterUnavailable` once
        `retry_deadline` has passed. `func` must be safe to call again."""
        give_up = time.monotonic() + self.retry_deadline

        def attempt() -> T:
            # kazoo queues a request made while disconnected until the
            # connection is back, with no time limit: wait here instead,
            # bounded. (Requests in flight when the connection drops fail
            # with ConnectionLoss, which the retry handles.)
            while not self.client.connected:
                if time.monotonic() >= give_up:
                    raise RetryFailedError("not connected")
                time.sleep(CONNECTED_POLL)
            return func(*args, **kwargs)

        try:
            result: T = self._retry.copy()(attempt)
        except (RetryFailedError, ConnectionClosedError) as error:
            raise ClusterUnavailable(
                f"no answer from ZooKeeper within {self.retry_deadline:g} s"
            ) from error
        return result

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
        the run for the newer version, queued already, corrects.)

        A read cut by a connection loss starts over (the mirror rebuilds
        from a full read after any disconnection): a partial tree must never
        be planned from."""
        if self.mirror is not None:
            return self.retry(self.mirror.tree)
        return self.retry(read_tree, self.client, "/", skip=NOT_DESIRED.skips)

    def version(self) -> Any:
        return self.cached_version

    def halt(self) -> None:
        """Set the cluster version to None, if it is still the version this
        host last saw: a halt retried across an outage must not halt the
        release an operator set meanwhile (nor one already halted)."""
        previous, self.cached_version = self.cached_version, None

        def halted(properties: dict[str, Any] | None) -> dict[str, Any]:
            properties = properties or {}
            current = properties.get("version")
            if previous is None or not same_version(current, previous):
                raise _Unchanged(current)
            return {**properties, "version": None}

        try:
            self.retry(check_and_set, self.client, HOSTS, halted)
        except _Unchanged as unchanged:
            # Nothing to halt: no watch delivery will tell the cache so.
            if self.cached_version is None:
                self.cached_version = unchanged.args[0]
        except ClusterUnavailable:
            # Not halted after all: the cache must not say so, or this host
            # would sit out the next runs (no watch delivery would undo it).
            if self.cached_version is None:
                self.cached_version = previous
            raise

    def record(self, version: Any) -> None:
        self.host_version = version
        self.retry(self._change_host, lambda properties: {**properties, "version": version})

    def set_error(self, message: str | None) -> None:
        def change(properties: dict[str, Any]) -> dict[str, Any]:
            new = {k: v for k, v in properties.items() if k != "error"}
            if message is not None:
                new["error"] = message
            if new == properties:
                raise _Unchanged()
            return new

        try:
            self.retry(self._change_host, change)
        except _Unchanged:
            pass

    def _change_host(self, change: Callable[[dict[str, Any]], dict[str, Any]]) -> None:
        """Read-modify-write this host's node, created again if it was
        deleted under the running agent."""
        try:
            check_and_set(self.client, self.host_path, lambda p: change(p or {}))
        except NoNodeError:
            self.create_host_node(deleted=True)
            check_and_set(self.client, self.host_path, lambda p: change(p or {}))

    # The host node

    def create_host_node(self, deleted: bool = False) -> None:
        """Create this host's ephemeral node (`name`, `version`, `role`);
        one our session already holds is left as it is. `deleted`: it was
        deleted under the running agent (said in a WARNING)."""
        properties: dict[str, Any] = {"name": self.host.name, "version": self.host_version}
        if self.host.role:
            properties["role"] = self.host.role
        if deleted:
            logger.warning(f"Host node {self.host_path} was deleted; registering the host again")
        try:
            self.client.create(self.host_path, encode(properties), ephemeral=True)
        except NodeExistsError:
            stat = self.client.exists(self.host_path)
            if stat is not None and stat.ephemeralOwner != self.client.client_id[0]:
                raise HostNodeTaken(
                    f"Host node {self.host_path} is held by another agent: exiting"
                ) from None
        self.host_node_missing = False

    def watch_host_node(self) -> None:
        """Once registered: notice when the host node is deleted (by a human,
        or by a tool) and queue a run, which creates it again
        (`repair_host_node`)."""
        self.client.DataWatch(self.host_path, self._host_node_delivered)

    def _host_node_delivered(self, data: bytes | None, stat: Any) -> None:
        session = self.client.client_id
        # Deleted, or deleted and created again by another session (whose
        # node `create_host_node` then refuses to write over).
        gone = stat is None or (session is not None and stat.ephemeralOwner != session[0])
        if gone and not self.stop.is_set():
            self.host_node_missing = True
            self.on_change()

    def repair_host_node(self) -> None:
        """Create the host node again if the watch saw it deleted."""
        if self.host_node_missing:
            try:
                self.retry(self.create_host_node, deleted=True)
            except ClusterUnavailable:
                pass  # Still missing: the run finds ZooKeeper unreachable too, and says so.

    def lock(self, name: str, max_parallel: int = 1) -> AbstractContextManager[object]:
        lock = self._agent_lock(name, max_parallel)
        return halting(self, lock, keep=lock.keep)

    def _agent_lock(self, name: str, max_parallel: int) -> ServiceLock:
        """Waiting ends on a stop, a halt or a long disconnection
        (`_interrupt`, checked while the request keeps its place). A session
        lost while the deploy script runs halts the cluster and fails the
        run: `Lost the lock for <path> while deploying`."""
        return ServiceLock(
            self.client,
            name,
            self.host.id,
            self.host.name,
            max_parallel,
            interrupt=self._interrupt,
            halt=self.halt,
            waited=self.hooks.lock_waited,
            retry=self.retry,
        )

    def role_lock(self, role: str, max_parallel: int = 1) -> AbstractContextManager[object]:
        """Waiting for the role lock gives up (abandons the run) when another
        host halts the cluster: nothing is out of service yet."""
        return self._role_lock(
            RoleLock(
                self.client,
                role,
                self.host.id,
                self.host.name,
                self._interrupt,
                max_parallel=max_parallel,
                waited=self.hooks.lock_waited,
            )
        )

    @contextmanager
    def _role_lock(self, lock: RoleLock) -> Iterator[object]:
        # Acquiring again after a connection loss is safe: a request of
        # ours left by the first try is adopted.
        self.retry(lock.acquire)
        try:
            yield lock
        except BaseException:
            lock.keep()
            raise
        self.retry(lock.release)

    def _interrupt(self) -> None:
        """Called while waiting for a lock: end the wait on a stop, a halt,
        or a connection lost for longer than the retry deadline."""
        self.hooks.waiting()
        if self.stop.is_set():
            raise Stopped()
        if self.version() is None:
            raise Abandoned()
        if self.client.connected:
            self._disconnected_since = None
        elif self._disconnected_since is None:
            self._disconnected_since = time.monotonic()
        elif time.monotonic() - self._disconnected_since > self.retry_deadline:
            raise ClusterUnavailable(
                f"disconnected from ZooKeeper for more than {self.retry_deadline:g} s"
            )
