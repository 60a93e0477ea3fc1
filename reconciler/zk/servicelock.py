"""The service lock `/agent-locks/<path-name>`: at most `max-parallel`
hosts run a service's deploy script at once, even across faults.

The protocol on ZooKeeper (`/agent-locks/<path-name>` is created on
demand):

- a *request* is an ephemeral sequential child `<uuid>__lock__NNNNNNNNNN`
  holding the requesting host's name: the names of kazoo's `Lock`, so an
  agent still on kazoo's lock and one on this recipe wait in the same line;
- requests are served in order (first come, first served): a host holds
  the lock while fewer than `max-parallel` requests are ahead of its own;
- a holder registers as *deploying* before its deploy script starts: a
  *persistent* child `deploying-<uuid>-NNNNNNNNNN` (its request's name,
  changed so that kazoo's `Lock` does not take it for a request) holding
  `owner` (host id)
  and `hostname`, created in one transaction with a check that its request
  still exists (so a host whose session already expired never registers);
- a deploying registration whose request is gone is an *orphan*: its host
  lost its session while deploying (frozen, cut off from ZooKeeper, or
  crashed) and its deploy script may still be running. Orphans count
  against `max-parallel` like holders: waiters refuse to start while
  one is there, say so once, and wait for it to go. A host deletes its own
  orphans (by `owner`) when it asks for the lock again: the agent that left
  them is gone, since only one agent runs per host id;
- a waiter watches (exists watches) the `max-parallel` requests just ahead
  of its own and every orphan: when one goes, it looks again, so a release
  wakes at most `max-parallel` waiters, never the whole line. Waiting is
  one request kept until the lock is held or the wait is given up
  (`interrupt` raises, or `cancel()`): the place in line is never lost.
  `interrupt` is asked once more when the lock comes, before registering:
  a holder that fails halts the cluster *before* it leaves, and a waiter
  whose `interrupt` reads a watched halt sees it (ZooKeeper notifies a
  session in commit order, kazoo runs the callbacks in that order);
- leaving: the holder first checks that its request still exists in its own
  session. If not (the session expired while deploying), it calls `halt`
  while its registration still holds the others back, then deletes the
  registration and its request, and raises `lost(message)` with the message
  `Lost the lock for <path> while deploying`. Otherwise it deletes the
  registration, then the request;
- a holder whose body failed while the cluster could not be halted (the
  halt comes first, see `reconciler.cluster.halting`) calls `keep()`: it
  leaves holding both its request and its registration, so nobody starts
  the same service before the halt is made (by the host's next run). Its
  request names are derived from its host id and the lock, so its next
  acquire in the same session adopts the request, and with it the
  registration.

So a frozen or partitioned holder whose session expires never lets the next
host start while its deploy script may run: the next host waits for the
registration, which only the holder itself (or an operator who knows the
host is dead) deletes. The holder learns of the loss when it resumes
(`lost`, `check()`, and at the latest when it leaves).
"""

from __future__ import annotations

import re
import threading
import time
import uuid
from collections.abc import Callable

from kazoo.client import KazooClient, KazooState
from kazoo.exceptions import ConnectionLoss, KazooException, NodeExistsError, NoNodeError
from kazoo.retry import KazooRetry
from loguru import logger

from reconciler.errors import ReconcilerError
from reconciler.zk.storage import decode, encode

AGENT_LOCKS = "/agent-locks"
REQUEST = "__lock__"
DEPLOYING = "deploying-"
_SEQUENCE = re.compile(r"__lock__(-?\d{10})$")


class LockLost(ReconcilerError):
    """The session, and with it the lock, expired while the body ran."""


class ServiceLock:
    """One host's hold on `/agent-locks/<name>`; a context manager.

    `owner` is the host id (whose orphans this host may delete), `identifier`
    the host name stored in the request (what kazoo's `Lock` stores).
    `interrupt` is called about every `poll` seconds while waiting and may
    raise to give up the wait (its exception propagates, the request is
    deleted); `cancel()` gives it up at once, raising `cancelled()`.
    `lost(message)` makes the exception raised on leaving a lock that was
    lost; `halt()` is called just before, while the others are still held
    back. `service` is the tree path named in messages. `waited(seconds)`
    is told how long each wait took (the metrics). `retry(call)` calls
    `acquire` again after a connection loss (a request of ours, and a
    registration, made by the lost try are adopted, not duplicated).
    """

    def __init__(
        self,
        client: KazooClient,
        name: str,
        owner: str,
        identifier: str,
        max_parallel: int = 1,
        interrupt: Callable[[], None] = lambda: None,
        cancelled: Callable[[], BaseException] = lambda: ReconcilerError("Lock wait cancelled"),
        lost: Callable[[str], BaseException] = LockLost,
        halt: Callable[[], None] = lambda: None,
        service: str | None = None,
        poll: float = 0.2,
        release_deadline: float = 30.0,
        waited: Callable[[float], None] = lambda seconds: None,
        retry: Callable[[Callable[[], None]], None] = lambda call: call(),
    ) -> None:
        self.max_parallel = width(max_parallel)
        self.client = client
        self.path = f"{AGENT_LOCKS}/{name}"
        self.owner = owner
        self.identifier = identifier
        self.interrupt = interrupt
        self.cancelled = cancelled
        self.lost_exception = lost
        self.halt = halt
        self.service = service or "/" + name.replace(",", "/")
        self.poll = poll
        self.release_deadline = release_deadline
        self.waited = waited
        self.retry = retry
        # Our requests' names start with it: a request whose creation was
        # answered by a lost connection, or kept (`keep`), is found again.
        self.prefix = uuid.uuid5(uuid.NAMESPACE_URL, f"{owner}@{self.path}").hex
        self._kept = False
        # Set when the session ends while the lock is held.
        self.lost = threading.Event()
        self.request: str | None = None
        self.registration: str | None = None
        self._session = 0
        self._wake = threading.Event()
        self._cancel = threading.Event()
        self._warned: set[str] = set()

    @property
    def message(self) -> str:
        return f"Lost the lock for {self.service} while deploying"

    # Waiting

    def acquire(self) -> None:
        """Ask, wait for the lock, and register as deploying."""
        self._cancel.clear()
        self.client.ensure_path(self.path)
        started = time.monotonic()
        try:
            while True:
                self._ask()
                self._wait()
                # Asked once more with the lock free: a holder halts the
                # cluster before it leaves (a failed deploy, a lost lock).
                self.interrupt()
                if self._register():
                    break
                # The session expired just as the lock came: ask again (the
                # old place is gone with the session).
        except ConnectionLoss:
            # Kept, with its place in line, for the next try to adopt.
            raise
        except BaseException:
            self._delete(self.request)
            self.request = None
            raise
        finally:
            self.waited(time.monotonic() - started)
        self.client.add_listener(self._session_changed)

    def cancel(self) -> None:
        """Give up waiting (from another thread): `acquire` raises
        `cancelled()`."""
        self._cancel.set()
        self._wake.set()

    def _ask(self) -> None:
        session = self.client.client_id[0]
        mine = sorted(
            (c for c in self.client.get_children(self.path) if c.startswith(self.prefix)),
            key=_sequence,
        )
        # Only this session's: one of a previous agent's session goes with it.
        owned = [c for c in mine if self._owner(c) == session]
        if owned:
            self.request = owned[0]
        else:
            path = self.client.create(
                f"{self.path}/{self.prefix}{REQUEST}",
                self.identifier.encode("utf-8"),
                ephemeral=True,
                sequence=True,
            )
            self.request = path.rsplit("/", 1)[1]
        self._session = self.client.client_id[0]

    def _owner(self, name: str) -> int | None:
        stat = self.client.exists(f"{self.path}/{name}")
        return None if stat is None else int(stat.ephemeralOwner)

    def _wait(self) -> None:
        while True:
            self._wake.clear()
            children = self.client.get_children(self.path)
            requests = sorted((c for c in children if _SEQUENCE.search(c)), key=_sequence)
            if self.request not in requests:
                # Our session expired while waiting: a new place in line.
                logger.warning(f"Lost the place in line for the lock for {self.service}")
                self._ask()
                continue
            ahead = requests[: requests.index(self.request)]
            orphans = self._orphans(children, set(requests))
            if len(ahead) + len(orphans) < self.max_parallel:
                return
            self._say_orphans(orphans)
            watched = ahead[-self.max_parallel :] + orphans
            for name in watched:
                if self.client.exists(f"{self.path}/{name}", watch=self._woken) is None:
                    self._wake.set()
            while not self._wake.wait(self.poll):
                self.interrupt()
            if self._cancel.is_set():
                raise self.cancelled()

    def _woken(self, event: object) -> None:
        self._wake.set()

    def _orphans(self, children: list[str], requests: set[str]) -> list[str]:
        """Deploying registrations of other hosts whose request is gone;
        our own are deleted."""
        orphans = []
        for child in children:
            if not child.startswith(DEPLOYING) or _request_of(child) in requests:
                continue
            try:
                data, _stat = self.client.get(f"{self.path}/{child}")
            except NoNodeError:
                continue
            if decode(data).get("owner") == self.owner:
                self._delete(child)
            else:
                orphans.append(child)
        return orphans

    def _say_orphans(self, orphans: list[str]) -> None:
        for name in orphans:
            if name in self._warned:
                continue
            self._warned.add(name)
            try:
                data, _stat = self.client.get(f"{self.path}/{name}")
            except NoNodeError:
                continue
            host = decode(data).get("hostname", "?")
            logger.warning(
                f"Waiting for the lock for {self.service}: {host} lost its ZooKeeper "
                f"session while deploying it and may still be deploying; if that host "
                f"is known to be stopped, delete {self.path}/{name}"
            )

    def _register(self) -> bool:
        """Register as deploying, if our request still exists."""
        assert self.request is not None
        registration = DEPLOYING + self.request.replace(REQUEST, "-")
        transaction = self.client.transaction()
        transaction.check(f"{self.path}/{self.request}", -1)
        transaction.create(
            f"{self.path}/{registration}",
            encode({"owner": self.owner, "hostname": self.identifier}),
        )
        checked, created = transaction.commit()
        # The name holds the request's: one that exists is ours, made by a
        # try whose answer the connection lost. Otherwise only the check fails.
        if not isinstance(created, NodeExistsError) and isinstance(checked, Exception):
            return False
        self.registration = registration
        return True

    # Holding

    def _session_changed(self, state: str) -> None:
        if state == KazooState.LOST:
            self.lost.set()

    def check(self) -> None:
        """Raise `lost(message)` if the lock was lost (without leaving it)."""
        if self.lost.is_set():
            raise self.lost_exception(self.message)

    def _still_held(self) -> bool:
        """Whether our request still exists in our session: asked, not
        assumed, since a frozen process learns of its expiry late."""
        if self.lost.is_set() or self.request is None:
            return False
        try:
            return self._retry(self._owner, self.request) == self._session
        except KazooException:
            return False

    def keep(self) -> None:
        """Leave, when the time comes, without letting anyone in: the
        cluster could not be halted after a failure (see the protocol)."""
        self._kept = True

    def release(self) -> None:
        """Leave; raises `lost(message)` if the lock was lost meanwhile."""
        self.client.remove_listener(self._session_changed)
        if self._kept:
            logger.error(
                f"Keeping the lock for {self.service} until the cluster is halted: "
                "no other host starts it meanwhile"
            )
            self.registration = self.request = None
            return
        held = self._still_held()
        if not held:
            self.lost.set()
            # Right after an expiry the new session may still be coming: the
            # halt is retried. If it can't be made, the registration stays
            # and keeps holding the others back.
            self._retry(self.halt)
        try:
            self._retry(self._delete, self.registration)
        except KazooException:
            logger.error(
                f"Could not delete {self.path}/{self.registration}: other hosts wait for "
                f"the lock for {self.service} until this host takes it again"
            )
        self._delete(self.request)
        self.registration = self.request = None
        if not held:
            raise self.lost_exception(self.message)

    def _retry(self, function: Callable[..., object], *args: object) -> object:
        retry = KazooRetry(max_tries=-1, delay=0.1, max_delay=1, deadline=self.release_deadline)
        return retry(function, *args)

    def _delete(self, name: str | None) -> None:
        if name is None:
            return
        try:
            self.client.delete(f"{self.path}/{name}")
        except NoNodeError:
            pass
        except KazooException:
            # A request goes with its session anyway; a registration is
            # retried by the caller.
            if name.startswith(DEPLOYING):
                raise

    def __enter__(self) -> ServiceLock:
        self.retry(self.acquire)
        return self

    def __exit__(self, kind: object, error: BaseException | None, *rest: object) -> None:
        try:
            self.release()
        except BaseException as lost:
            if error is not None:
                raise lost from error
            raise


def width(max_parallel: int) -> int:
    """`max_parallel`, checked: how many hosts may hold a lock at once (the
    model refuses a bad `max-parallel` in the tree before it gets here)."""
    if max_parallel < 1:
        raise ValueError(f"max-parallel must be at least 1, not {max_parallel}")
    return max_parallel


def _request_of(registration: str) -> str:
    uuid_part, _, sequence = registration[len(DEPLOYING) :].rpartition("-")
    return f"{uuid_part}{REQUEST}{sequence}"


def _sequence(name: str) -> int:
    match = _SEQUENCE.search(name)
    assert match is not None
    return int(match.group(1))
