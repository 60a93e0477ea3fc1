"""The persistent role lock `/role-locks/<role>` (roles.md).

At most `max-parallel` hosts of a role (the property of `/roles/<role>`,
default 1) deploy at a time. The protocol on ZooKeeper:

- `/role-locks/<role>` must exist (it is created with the tree);
- a request is a *persistent* sequential child `lr-NNNNNNNNNN` whose data
  holds the properties `requestor` (host id) and `hostname`;
- a host that finds a request of its own host id already there (left by a
  run that failed while holding the lock) adopts it and deletes the new one;
- the lock is held while the host's request is among the `max-parallel`
  lowest children (the lowest, by default); a waiting host watches the
  children. Every host of a role must agree on `max-parallel` (they read
  it from the same node): a host that read a smaller one waits longer, never
  less;
- leaving normally deletes the request; leaving with an error keeps it, so
  the role's other hosts wait until this host has run successfully again
  (or a human deletes the request).

Persistent, not ephemeral: the lock must outlive a crashed agent, whose
host may have been left out of service.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

from kazoo.client import KazooClient
from kazoo.exceptions import NoNodeError

from reconciler.errors import ReconcilerError
from reconciler.zk.paths import ROLE_LOCKS
from reconciler.zk.servicelock import width
from reconciler.zk.storage import decode, encode

PREFIX = "lr-"


class RoleLock:
    """One host's hold on `/role-locks/<role>`; a context manager.

    `interrupt` is called about every `poll` seconds while waiting; it may
    raise to give up (a request made for this wait is then deleted).
    `waited(seconds)` is told how long each wait took (the metrics).
    `max_parallel` hosts hold it at once.
    """

    def __init__(
        self,
        client: KazooClient,
        role: str,
        requestor: str,
        hostname: str,
        interrupt: Callable[[], None] = lambda: None,
        max_parallel: int = 1,
        poll: float = 0.2,
        waited: Callable[[float], None] = lambda seconds: None,
    ) -> None:
        self.waited = waited
        self.max_parallel = width(max_parallel)
        self.client = client
        self.path = f"{ROLE_LOCKS}/{role}"
        self.requestor = requestor
        self.hostname = hostname
        self.interrupt = interrupt
        self.poll = poll
        # The name of our request (`lr-...`) once made or adopted.
        self.request: str | None = None
        self.adopted = False

    def requests(self, watch: Callable[[object], None] | None = None) -> list[str]:
        """The requests, oldest first."""
        try:
            children = self.client.get_children(self.path, watch=watch)
        except NoNodeError:
            raise ReconcilerError(f"role lock node {self.path!r} must exist") from None
        return sorted(c for c in children if c.startswith(PREFIX))

    def acquire(self) -> None:
        """Request the lock (or adopt our earlier request), then wait until
        it is ours."""
        properties = {"requestor": self.requestor, "hostname": self.hostname}
        try:
            path = self.client.create(f"{self.path}/{PREFIX}", encode(properties), sequence=True)
        except NoNodeError:
            raise ReconcilerError(f"role lock node {self.path!r} must exist") from None
        created = path.rsplit("/", 1)[1]
        mine = [name for name in self.requests() if name != created and self._ours(name)]
        if mine:
            self.request, self.adopted = mine[0], True
            self._delete(created)
        else:
            self.request = created
        started = time.monotonic()
        try:
            self._wait()
        except BaseException:
            if not self.adopted:
                self.release()
            raise
        finally:
            self.waited(time.monotonic() - started)

    def _ours(self, name: str) -> bool:
        try:
            data, _ = self.client.get(f"{self.path}/{name}")
        except NoNodeError:
            return False
        return bool(decode(data).get("requestor") == self.requestor)

    def _wait(self) -> None:
        # A watch left by an earlier round may fire later: a needless
        # look at the children, no harm.
        changed = threading.Event()
        while True:
            changed.clear()
            requests = self.requests(watch=lambda event: changed.set())
            if self.request not in requests:
                raise ReconcilerError(f"role lock request {self.path}/{self.request} vanished")
            if self.request in requests[: self.max_parallel]:
                return
            while not changed.wait(self.poll):
                self.interrupt()

    def release(self) -> None:
        """Leave normally: delete the request."""
        if self.request is not None:
            self._delete(self.request)
            self.request = None

    def keep(self) -> None:
        """Leave with an error: the request stays, and with it the lock."""
        self.request = None

    def _delete(self, name: str) -> None:
        try:
            self.client.delete(f"{self.path}/{name}")
        except NoNodeError:
            pass

    def __enter__(self) -> RoleLock:
        self.acquire()
        return self

    def __exit__(self, kind: type[BaseException] | None, *rest: object) -> None:
        if kind is None:
            self.release()
        else:
            self.keep()
