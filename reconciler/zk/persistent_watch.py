"""Persistent and persistent recursive watches (ZooKeeper 3.6+) for kazoo.

kazoo 2.11.0 has no `addWatch` (upstream pull request #715 is still open),
so this module adds the two pieces it lacks, without patching kazoo itself:

The request. `addWatch` is opcode 106; its body is jute's
`AddWatchModeRequest { ustring path; int mode; }` (mode 0: PERSISTENT, the
node's own data and child events; 1: PERSISTENT_RECURSIVE, created, deleted
and data-changed events of the node and every descendant, never
child-changed). The answer carries nothing we need. `AddWatch` is a request
object in kazoo's own shape (`type`, `serialize`, `deserialize`), queued
through the client's `_call` like any kazoo request, so it is ordered with
the client's other requests: a read sent after it sees every change the
watch will not report. A server older than 3.6 answers UnimplementedError.

The events. kazoo's `ConnectionHandler._read_watch_event` hands an event
only to the one-shot watchers kazoo registered for that exact path (and
forgets them): an event from a persistent watch, for a path nobody asked
kazoo about, is dropped silently. `PersistentWatches` wraps that method *on
one client's connection object* (an instance attribute, not a change to the
class) so that every event is first offered to the persistent watches whose
path covers it, then passed on to kazoo unchanged. The wrapper runs on
kazoo's connection thread: listeners must only take note and return. Since
ZooKeeper sends a connection one notification per change, whatever watches
caused it, a listener may also see events that a one-shot watch of the same
client asked for: treat every event as "look again", never as the change
itself.

Persistent watches belong to the connection: kazoo re-sends only its own
watches after a reconnect (`setWatches`, not `setWatches2`), so after a
reconnect or a new session they are gone. The caller must add them again
and read what it may have missed (see `reconciler.zk.mirror`).
"""

from __future__ import annotations

import struct
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from kazoo.client import KazooClient
from kazoo.protocol.paths import _prefix_root
from kazoo.protocol.serialization import Watch, write_string
from loguru import logger

ADD_WATCH = 106
PERSISTENT = 0
PERSISTENT_RECURSIVE = 1

# kazoo's event types (kazoo.protocol.connection).
CREATED = 1
DELETED = 2
CHANGED = 3
CHILD = 4

# Called with (event type, path without the chroot) on kazoo's connection thread.
Listener = Callable[[int, str], None]

_INT = struct.Struct("!i")
# The attribute of a KazooClient holding its PersistentWatches.
_ATTRIBUTE = "_reconciler_persistent_watches"
_INSTALLING = threading.Lock()


class AddWatch:
    """The `addWatch` request, in the shape kazoo's connection sends."""

    def __init__(self, path: str, mode: int, opcode: int = ADD_WATCH) -> None:
        self.path = path
        self.mode = mode
        # kazoo's connection reads the opcode as `type`.
        self.type = opcode

    def serialize(self) -> bytes:
        return bytes(write_string(self.path)) + _INT.pack(self.mode)

    @classmethod
    def deserialize(cls, buffer: bytes, offset: int) -> bool:
        return True

    def __repr__(self) -> str:
        return f"AddWatch({self.path!r}, {self.mode})"


@dataclass(frozen=True)
class _Registration:
    path: str
    mode: int
    listener: Listener

    def covers(self, kind: int, path: str) -> bool:
        if path == self.path:
            return True
        if self.mode != PERSISTENT_RECURSIVE or kind == CHILD:
            return False
        return self.path == "/" or path.startswith(self.path + "/")


class PersistentWatches:
    """The persistent watches of one client; `for_client` gives the one
    instance per client, installing the event hook on first use."""

    def __init__(self, client: KazooClient) -> None:
        self.client = client
        self._registrations: set[_Registration] = set()
        self._lock = threading.Lock()
        connection = client._connection
        self._kazoo_read_watch_event = connection._read_watch_event
        connection._read_watch_event = self._read_watch_event

    @classmethod
    def for_client(cls, client: KazooClient) -> PersistentWatches:
        # Creating the instance installs the hook; two would dispatch twice.
        with _INSTALLING:
            watches: PersistentWatches | None = getattr(client, _ATTRIBUTE, None)
            if watches is None:
                watches = cls(client)
                setattr(client, _ATTRIBUTE, watches)
            return watches

    def add_async(self, path: str, mode: int, listener: Listener, opcode: int = ADD_WATCH) -> Any:
        """Ask the server for a watch on `path` (chroot-relative); the
        listener is registered at once, so no event of the new watch is
        missed. Returns kazoo's async result (UnimplementedError before
        ZooKeeper 3.6). `opcode` exists for testing an old server's answer."""
        with self._lock:
            # A set: watches added again after a reconnect are one registration.
            self._registrations.add(_Registration(path, mode, listener))
        request = AddWatch(_prefix_root(self.client.chroot, path), mode, opcode)
        result = self.client.handler.async_result()
        self.client._call(request, result)
        return result

    def add(self, path: str, mode: int, listener: Listener, timeout: float = 10) -> None:
        """`add_async`, waiting for the server's answer."""
        self.add_async(path, mode, listener).get(timeout=timeout)

    def forget(self, listener: Listener) -> None:
        """Stop delivering events to `listener`. The server's watch stays
        until the connection ends; its events are then only passed on to
        kazoo, which drops them."""
        with self._lock:
            self._registrations = {r for r in self._registrations if r.listener != listener}

    def _read_watch_event(self, buffer: bytes, offset: int) -> None:
        watch, _ = Watch.deserialize(buffer, offset)
        path = self.client.unchroot(watch.path)
        with self._lock:
            listeners = [r.listener for r in self._registrations if r.covers(watch.type, path)]
        for listener in listeners:
            try:
                listener(watch.type, path)
            except Exception:
                # Raised here, it would drop kazoo's connection.
                logger.opt(exception=True).error(f"Persistent watch listener failed on {path}")
        self._kazoo_read_watch_event(buffer, offset)
