"""An in-memory mirror of the deployment tree, kept current by ZooKeeper.

A run needs the deployment tree, not a fresh read of it: re-reading 20,000
nodes per host per release costs the same whether one node changed or none.
`TreeMirror` reads the tree once (pipelined, `reader.read_subtrees`) and
then follows it with ZooKeeper 3.6+ persistent watches
(`persistent_watch`): each event names a changed path, which is noted on
kazoo's connection thread and read (only that node; a new node with its
subtree) when the next snapshot is asked for, in the caller's thread.

Excluded paths. `/hosts/*` (every host's own node), `/agent-locks`,
`/role-locks` and `/zookeeper` are not desired state, and with a fleet they
change all the time: a host must not even be told about them. A recursive
watch on `/` would bring every one of those events, so watches are laid
around the exclusions instead: a *spine* node (an ancestor of an excluded
path, or `P` for `P/*`) gets a PERSISTENT watch (its own data and child
list), every other child of a spine node a PERSISTENT_RECURSIVE one. With
the defaults that is `/` and `/hosts` (non-recursive) and one recursive
watch per other top-level node: events under excluded paths are never sent.

Correctness first. A persistent watch ends with its connection (kazoo does
not re-register it), and events may be missed while disconnected: after
any disconnection or session expiry the next snapshot is a full read with
fresh watches. Watches are always added before the reads they protect, and
ZooKeeper answers a session in order, so a change is either in the read or
reported after it. A server older than 3.6 answers `addWatch` with
UnimplementedError: the mirror then reads the whole tree (still without
the excluded paths) for every snapshot, and says so once.

Snapshots are copy-on-write: applying a change copies the nodes on its
path, so a snapshot handed out earlier never changes. Treat snapshots as
read-only (copy before changing one).
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

from kazoo.client import KazooClient, KazooState
from kazoo.exceptions import NoNodeError, UnimplementedError
from kazoo.retry import KazooRetry
from loguru import logger

from reconciler.tree import Node, join_path, split_path
from reconciler.zk.persistent_watch import (
    ADD_WATCH,
    CHANGED,
    CHILD,
    CREATED,
    DELETED,
    PERSISTENT,
    PERSISTENT_RECURSIVE,
    PersistentWatches,
)
from reconciler.zk.reader import DEFAULT_WINDOW, normalize, read_subtrees
from reconciler.zk.storage import decode

# Not desired state (issue 9, point 1): other hosts' nodes and lock queues.
DEFAULT_EXCLUDE = ("/hosts/*", "/agent-locks", "/role-locks", "/zookeeper")
# How many snapshots back `changes_since` can answer.
CHANGE_HISTORY = 64
# What a noted path needs, by strength: a later, stronger need wins.
_DATA, _SUBTREE, _GONE = 1, 2, 3
# Only spine nodes have child events (their watches are not recursive).
_NEEDS = {CHANGED: _DATA, CREATED: _SUBTREE, CHILD: _SUBTREE, DELETED: _GONE}


class Exclusions:
    """Paths left out of a mirror: `P` leaves out P and everything below,
    `P/*` keeps P itself but none of its children."""

    def __init__(self, patterns: Iterable[str]) -> None:
        self.subtrees: set[str] = set()
        self.childless: set[str] = set()
        for pattern in patterns:
            if pattern.endswith("/*"):
                self.childless.add(normalize(pattern[:-2]))
            else:
                self.subtrees.add(normalize(pattern))
        # Ancestors of an exclusion: their children must be looked at one
        # by one; everything else can be watched as a whole.
        self.spine: set[str] = set(self.childless)
        for path in self.subtrees | self.childless:
            parts = split_path(path)
            for depth in range(len(parts)):
                self.spine.add("/" + "/".join(parts[:depth]))

    def skips(self, path: str) -> bool:
        """Whether `path` is left out of the mirror."""
        if path in self.subtrees:
            return True
        parts = split_path(path)
        for depth in range(len(parts)):
            ancestor = "/" + "/".join(parts[:depth])
            if ancestor in self.subtrees or ancestor in self.childless:
                return True
        return False


@dataclass
class MirrorStats:
    """What the mirror cost since `start()`."""

    nodes_read: int = 0  # node data reads (a full read counts every node)
    requests: int = 0  # every request sent: reads, child lists, watches
    full_reads: int = 0
    events: int = 0  # watch events taken note of


class TreeMirror:
    """The tree below `root` (ZooKeeper paths), minus `exclude`, as a Node.

    `start()` reads it and sets the watches; `tree()` returns a snapshot
    with every change noted so far applied (`fresh=True`: every change
    committed before the call, for one round trip); `sequence` grows with
    each new snapshot (one is made only when events or a full read came).
    """

    def __init__(
        self,
        client: KazooClient,
        root: str = "/",
        exclude: Iterable[str] = DEFAULT_EXCLUDE,
        window: int = DEFAULT_WINDOW,
        opcode: int = ADD_WATCH,
    ) -> None:
        self.client = client
        self.root = normalize(root)
        self.exclusions = Exclusions(exclude)
        if self.exclusions.skips(self.root):
            raise ValueError(f"The mirror's root {self.root} is excluded")
        self.window = window
        self.opcode = opcode
        self.stats = MirrorStats()
        self.sequence = 0
        self.persistent = True
        self._watches = PersistentWatches.for_client(client)
        self._snapshot: Node | None = None
        # Noted by the connection thread, taken by `tree()`; under _noting.
        self._noting = threading.Lock()
        self._noted: dict[str, int] = {}
        self._rebuild = True
        # Paths with a recursive watch on the current connection.
        self._recursive: set[str] = set()
        self._changes: dict[int, frozenset[str] | None] = {}
        # One snapshot at a time.
        self._updating = threading.Lock()
        self._started = False

    # Life

    def start(self) -> None:
        """The first full read; watches from now on."""
        self.client.add_listener(self._state_changed)
        self._started = True
        self.tree()

    def stop(self) -> None:
        self._started = False
        self.client.remove_listener(self._state_changed)
        self._watches.forget(self._note)

    def _state_changed(self, state: str) -> None:
        # kazoo's connection thread: take note only. Any disconnection may
        # lose events and ends the persistent watches.
        if state in (KazooState.SUSPENDED, KazooState.LOST):
            with self._noting:
                self._rebuild = True

    def _note(self, kind: int, path: str) -> None:
        """A watch event (kazoo's connection thread)."""
        need = _NEEDS.get(kind)
        if need is None or self.exclusions.skips(path):
            return
        if kind == CHILD and path in self.exclusions.childless:
            return  # say, a host registering: none of the mirror's business
        with self._noting:
            self.stats.events += 1
            known = self._noted.get(path, 0)
            if need != _GONE and known == _GONE:
                need = _SUBTREE  # deleted, then created again: read it all
            elif need != _GONE:
                need = max(need, known)
            self._noted[path] = need

    # Snapshots

    def tree(self, fresh: bool = False) -> Node:
        """The mirrored tree now (read-only: a later change copies, never
        changes it). Raises NoNodeError when the root does not exist, and
        kazoo's errors when ZooKeeper cannot be reached."""
        with self._updating:
            if not self._started:
                raise RuntimeError("TreeMirror.tree() before start()")
            if fresh and self.persistent:
                # Answers come in order, after the events of every change
                # committed before this call.
                self._count(requests=1)
                self.client.sync(self.root)
            try:
                self._update()
            except BaseException:
                with self._noting:
                    self._rebuild = True
                raise
            if self._snapshot is None:
                raise NoNodeError(self.root)
            return self._snapshot

    def changes_since(self, sequence: int) -> frozenset[str] | None:
        """The paths changed after snapshot `sequence` (up to the current
        one), or None when unknown: a full read came in between, or it is
        too long ago."""
        paths: set[str] = set()
        for number in range(sequence + 1, self.sequence + 1):
            changed = self._changes.get(number)
            if changed is None:
                return None
            paths |= changed
        return frozenset(paths)

    def _update(self) -> None:
        while True:
            with self._noting:
                rebuild, self._rebuild = self._rebuild, False
                noted, self._noted = self._noted, {}
            if not self.persistent:
                self._full_read()
                return
            if rebuild:
                self._rebuild_now()
                if not self.persistent:
                    return  # just read in full
            elif noted:
                self._apply(noted)
            with self._noting:
                if not self._rebuild and not self._noted:
                    return

    def _publish(self, root: Node | None, changed: frozenset[str] | None) -> None:
        if changed is not None and not changed and root is self._snapshot:
            return
        self._snapshot = root
        self.sequence += 1
        self._changes[self.sequence] = changed
        self._changes.pop(self.sequence - CHANGE_HISTORY, None)

    # Full reads

    def _rebuild_now(self) -> None:
        """Fresh watches, then everything read: after start, a reconnection
        or a new session."""
        self._recursive.clear()
        spines = self._spine_paths()
        try:
            self._add_watches(spines, PERSISTENT)
            self._add_watches(self._recursive_targets(spines), PERSISTENT_RECURSIVE)
        except UnimplementedError:
            self.persistent = False
            logger.warning(
                "ZooKeeper has no persistent watches (addWatch, 3.6+): "
                "reading the whole tree for every run"
            )
            # The server closes the connection after an unknown request.
            KazooRetry(max_tries=20, delay=0.05, deadline=15)(self._full_read)
            return
        self._full_read()

    def _full_read(self) -> None:
        found = self._read_subtrees([self.root])
        self.stats.full_reads += 1
        self._publish(found.get(self.root), None)

    def _spine_paths(self) -> list[str]:
        """The spine nodes at or below the root, parents first."""
        if self.root not in self.exclusions.spine:
            return []
        prefix = self.root.rstrip("/") + "/"
        below = [p for p in self.exclusions.spine if p == self.root or p.startswith(prefix)]
        return sorted(below, key=_depth)

    def _watch_targets(self, spine: str, children: Iterable[str]) -> list[str]:
        """The children of a spine node that want a recursive watch."""
        paths = (join_path(spine, name) for name in children)
        return [p for p in paths if p not in self.exclusions.spine and not self.exclusions.skips(p)]

    def _recursive_targets(self, spines: list[str]) -> list[str]:
        """The paths needing a recursive watch: below the spine, or the root
        itself when nothing below it is excluded."""
        if not spines:
            return [self.root]
        targets: list[str] = []
        for spine, children in zip(spines, self._list_children(spines), strict=True):
            targets += self._watch_targets(spine, children)
        return targets

    # Incremental updates

    def _apply(self, noted: dict[str, int]) -> None:
        """Read what the noted events call for and publish a new snapshot."""
        spines = self.exclusions.spine
        # A subtree read or gone covers its descendants; a spine node's
        # refresh reads only the node and its new children.
        covered = {
            p for p, need in noted.items() if need == _GONE or need == _SUBTREE and p not in spines
        }
        todo = {p: need for p, need in noted.items() if not _below_any(p, covered)}
        root = _CopyOnWrite(self._snapshot, self.root)
        subtrees: set[str] = set()
        data: list[str] = []
        for path, need in sorted(todo.items(), key=lambda item: _depth(item[0])):
            if need == _GONE:
                root.remove(path)
            elif need == _DATA:
                data.append(path)
            elif path in spines:
                subtrees.update(self._refresh_spine(root, path))
            else:
                subtrees.add(path)
        self._read_into(root, sorted(subtrees, key=_depth))
        self._read_data(root, data)
        self._publish(root.root, frozenset(todo))

    def _refresh_spine(self, root: _CopyOnWrite, path: str) -> list[str]:
        """Re-read a spine node: its data, and its children against the
        mirror's. Returns the new children to read whole (now watched)."""
        try:
            data, stat = self._get(path)
        except NoNodeError:
            root.remove(path)
            return []
        # Only the node itself, say `/hosts`, is mirrored: no listing.
        [children] = [[]] if path in self.exclusions.childless else self._list_children([path])
        node = root.writable(path, create=True)
        if node is None:
            return []  # its parent is gone too; that event is noted
        node.properties = decode(data)
        node.ephemeral = stat.ephemeralOwner != 0
        for name in set(node.children) - set(children):
            root.remove(join_path(path, name))
        # Watched before read: a change after the read is reported.
        new = [p for p in self._watch_targets(path, children) if root.get(p) is None]
        self._add_watches([p for p in new if p not in self._recursive], PERSISTENT_RECURSIVE)
        for name in children:
            child = join_path(path, name)
            if child in self.exclusions.spine and root.get(child) is None:
                new += self._refresh_spine(root, child)
        return new

    def _read_into(self, root: _CopyOnWrite, paths: list[str]) -> None:
        if not paths:
            return
        found = self._read_subtrees(paths)
        for path in paths:
            if path in found:
                root.put(path, found[path])
            else:
                root.remove(path)

    def _read_data(self, root: _CopyOnWrite, paths: list[str]) -> None:
        results = [(p, self.client.get_async(p)) for p in paths]
        self._count(nodes=len(paths), requests=len(paths))
        for path, result in results:
            try:
                data, stat = result.get()
            except NoNodeError:
                root.remove(path)
                continue
            node = root.writable(path)
            if node is not None:
                node.properties = decode(data)

    # ZooKeeper requests, counted

    def _add_watches(self, paths: list[str], mode: int) -> None:
        results = [self._watches.add_async(p, mode, self._note, self.opcode) for p in paths]
        self._count(requests=len(paths))
        for result in results:
            result.get()
        if mode == PERSISTENT_RECURSIVE:
            self._recursive.update(paths)

    def _get(self, path: str) -> tuple[bytes, Any]:
        self._count(nodes=1, requests=1)
        data, stat = self.client.get(path)
        return data, stat

    def _list_children(self, paths: list[str]) -> list[list[str]]:
        results = [self.client.get_children_async(p) for p in paths]
        self._count(requests=len(paths))
        listed = []
        for result in results:
            try:
                listed.append(list(result.get()))
            except NoNodeError:
                listed.append([])
        return listed

    def _read_subtrees(self, paths: list[str]) -> dict[str, Node]:
        found = read_subtrees(self.client, paths, self.window, self.exclusions.skips)
        for node in found.values():
            for _path, each in node.walk():
                self._count(nodes=1, requests=2 if each.children else 1)
        return found

    def _count(self, nodes: int = 0, requests: int = 0) -> None:
        self.stats.nodes_read += nodes
        self.stats.requests += requests


def _depth(path: str) -> int:
    return len(split_path(path))


def _below_any(path: str, ancestors: set[str]) -> bool:
    """Whether a proper ancestor of `path` is in `ancestors`."""
    parts = split_path(path)
    return any("/" + "/".join(parts[:depth]) in ancestors for depth in range(len(parts)))


class _CopyOnWrite:
    """Changes to a snapshot, copying each node on a changed path once, so
    the snapshot itself stays as it was."""

    def __init__(self, snapshot: Node | None, base: str) -> None:
        self.root = snapshot
        self.base = base
        self._copied: set[int] = set()

    def _names(self, path: str) -> list[str] | None:
        """`path`'s names below the base; None outside the mirror."""
        if path == self.base:
            return []
        prefix = self.base.rstrip("/") + "/"
        if not path.startswith(prefix):
            return None
        return split_path(path[len(prefix) :])

    def get(self, path: str) -> Node | None:
        names = self._names(path)
        if names is None or self.root is None:
            return None
        return self.root.get("/" + "/".join(names))

    def _copy(self, node: Node) -> Node:
        if id(node) in self._copied:
            return node
        copy = Node(dict(node.properties), dict(node.children), node.ephemeral)
        self._copied.add(id(copy))
        return copy

    def _path_copy(self, names: list[str]) -> Iterator[Node]:
        """Writable copies of the nodes along `names` (root first); stops
        where a node is missing."""
        if self.root is None:
            return
        self.root = node = self._copy(self.root)
        yield node
        for name in names:
            child = node.children.get(name)
            if child is None:
                return
            node.children[name] = child = self._copy(child)
            yield child
            node = child

    def writable(self, path: str, create: bool = False) -> Node | None:
        """A writable node at `path`; with `create`, made empty when only
        it is missing. None when not in the mirror."""
        names = self._names(path)
        if names is None:
            return None
        if not names:
            if self.root is None and create:
                self.root = Node()
                self._copied.add(id(self.root))
            return next(self._path_copy([]), None)
        nodes = list(self._path_copy(names))
        if len(nodes) == len(names) + 1:
            return nodes[-1]
        if create and len(nodes) == len(names):
            node = nodes[-1].children[names[-1]] = Node()
            self._copied.add(id(node))
            return node
        return None

    def put(self, path: str, node: Node) -> None:
        """Replace (or add) the subtree at `path`; needs its parent."""
        names = self._names(path)
        if names is None:
            return
        if not names:
            self.root = node
            return
        nodes = list(self._path_copy(names[:-1]))
        if len(nodes) == len(names):
            nodes[-1].children[names[-1]] = node

    def remove(self, path: str) -> None:
        names = self._names(path)
        if names is None:
            return
        if not names:
            self.root = None
            return
        if self.get(path) is None:
            return
        nodes = list(self._path_copy(names[:-1]))
        nodes[-1].children.pop(names[-1], None)
