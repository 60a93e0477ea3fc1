"""The one contract a run needs from "the cluster" (agent.md, roles.md).

Two implementations: `reconciler.zk.cluster.ZooKeeperCluster` (the daemon,
and `--once` without a tree file) and `reconciler.treefile.TreeFileCluster`
(`--once` with the `tree` key). A run (`reconciler.run`) sees only this
protocol; stopping is a `threading.Event` given to the run, not part of it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from typing import Any, Protocol

from reconciler.tree import Node


class Abandoned(Exception):
    """The cluster version became None (another host halted the cluster)
    while this host was deploying or waiting for a lock."""


class Stopped(Exception):
    """The agent is shutting down: stop between steps, halting nothing."""


class ClusterUnavailable(Exception):
    """The cluster could not be reached, even after retrying (a ZooKeeper
    outage longer than the retry deadline). Not this host's failure: the
    run stops without halting the cluster and runs again once connected."""


class HostNodeTaken(Exception):
    """This host's node belongs to another agent's session: this agent
    cannot go on (a fatal condition, the daemon exits non-zero)."""


class Cluster(Protocol):
    """The desired state of the whole cluster, and where one host's results go.

    - `version()` is the cluster version: None is halted, False paused.
    - every method that reaches the cluster retries across a short outage
      (a leader failover) and raises `ClusterUnavailable` when it lasts
      too long.
    - `halt()` sets it to None: every other agent abandons its run.
    - `record()` and `set_error()` write this host's node (`version`, `error`).
    - `lock(name, max_parallel)` is the cluster-wide lock
      `/agent-locks/<name>`, held by up to `max_parallel` hosts at once (the
      deployable node's `max-parallel`), first come, first served. A body
      that fails halts the cluster *before* the lock is released, so the
      next host in line sees the halt before it can restart the same
      service. Waiting for it raises `Stopped` when the agent stops and
      `Abandoned` when another host halts the cluster. A holder that loses
      the lock while the body runs (its session expired) halts the cluster
      and raises an error naming the service.
    - `role_lock(role, max_parallel)` is the persistent `/role-locks/<role>`,
      held by up to `max_parallel` hosts of the role at once: released when
      the body ends normally, *kept* when it fails, so that the role's other
      hosts wait until this host has run successfully again. Waiting for it
      gives up like `lock`.
    """

    def tree(self) -> Node:
        """The desired state's tree: every node but other hosts' nodes
        (`/hosts/*`) and the lock queues (`/agent-locks`, `/role-locks`),
        which may be left out. Current as of the cluster version last seen."""

    def version(self) -> Any:
        """The cluster version now (`/hosts` `version`)."""

    def halt(self) -> None:
        """Set the cluster version to None: every other agent stops."""

    def record(self, version: Any) -> None:
        """This host converged to `version` (host node `version`)."""

    def set_error(self, message: str | None) -> None:
        """Set (or, with None, clear) this host's `error`."""

    def lock(self, name: str, max_parallel: int = 1) -> AbstractContextManager[object]:
        """The cluster-wide lock `/agent-locks/<name>`, `max_parallel` holders
        at once; a failing body halts the cluster before the lock is released."""

    def role_lock(self, role: str, max_parallel: int = 1) -> AbstractContextManager[object]:
        """The persistent role lock `/role-locks/<role>`, `max_parallel`
        holders at once: released when the body ends normally, kept when it
        ends with an exception."""


@contextmanager
def halting(
    cluster: Cluster, lock: AbstractContextManager[object], keep: Callable[[], None] = lambda: None
) -> Iterator[object]:
    """Hold `lock` for the body of `cluster.lock()`: a body that fails halts
    the cluster while the lock is still held. When the halt cannot be made,
    `keep()` tells the lock to let nobody in when it is left."""
    with lock as held:
        try:
            yield held
        except Exception:
            try:
                cluster.halt()
            except ClusterUnavailable:
                keep()
                # The body's error is what the run must see: its failure
                # handling halts again (or the next run does).
            raise
