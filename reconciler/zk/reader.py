"""Reading trees and properties from ZooKeeper.

A tree of tens of thousands of nodes must read in seconds. A blocking walk
pays one network round trip (and two thread hand-offs inside kazoo) per
request; here requests are pipelined instead: up to `window` are in flight
at once and their answers are consumed in the order they were sent, which is
the order ZooKeeper answers one session in. A node's data comes with its
child count, so leaves (most of a tree) cost one request, not two.
Measured (bench/bench_tree_read.py, 20,000 nodes, loopback): about 1 s
against about 6 s for a blocking walk on the same client.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from kazoo.client import KazooClient
from kazoo.exceptions import BadVersionError, NodeExistsError, NoNodeError

from reconciler.tree import Node, join_path, split_path
from reconciler.zk.storage import decode, encode

# Several hundred in flight keep the connection busy; far more only grows
# kazoo's queues (and ZooKeeper throttles above 1000 outstanding requests).
DEFAULT_WINDOW = 500
# Answers are taken in chunks: one thread wake-up per chunk, not per answer.
CHUNK = 100
SYSTEM_PATH = "/zookeeper"


def normalize(path: str) -> str:
    """`/a/b` for `a/b/`, `//a//b` ...; `/` for the root."""
    return "/" + "/".join(split_path(path))


@dataclass(slots=True)
class _Request:
    """One read in the pipeline: the data of `node` at `path` (then attached
    to `parent` as `name`), or, with `children=True`, its child names."""

    path: str
    node: Node
    parent: Node
    name: str
    children: bool = False

    def issue(self, client: KazooClient) -> Any:
        if self.children:
            return client.get_children_async(self.path)
        return client.get_async(self.path)


# Whether the node at an absolute path (and its subtree) is left out of a read.
Skip = Callable[[str], bool]


def read_tree(
    client: KazooClient, path: str = "/", window: int = DEFAULT_WINDOW, skip: Skip | None = None
) -> Node:
    """The subtree at `path` as a Node, ephemeral nodes marked.

    `/zookeeper` (ZooKeeper's own) is left out when reading the real root;
    with `skip`, every node it names is left out instead.
    Nodes deleted during the walk are left out; the walk is not a snapshot.
    Raises NoNodeError when `path` itself does not exist.
    """
    path = normalize(path)
    if skip is None:
        skip = _system_skip(client)
    found = read_subtrees(client, [path], window, skip)
    if path not in found:
        raise NoNodeError(path)
    return found[path]


def read_subtrees(
    client: KazooClient,
    paths: Iterable[str],
    window: int = DEFAULT_WINDOW,
    skip: Skip | None = None,
) -> dict[str, Node]:
    """Several subtrees in one pipeline, by normalized path; a path that
    does not exist is missing from the answer. `skip` leaves out nodes below
    the given paths (not the paths themselves)."""
    window = max(1, window)
    # The roots hang below a holder, by path, so that a missing root is
    # dropped like any node deleted during the walk.
    holder = Node()
    todo: deque[_Request] = deque(
        _Request(p, Node(), holder, p) for p in dict.fromkeys(map(normalize, paths))
    )
    in_flight: deque[tuple[_Request, Any]] = deque()
    while todo or in_flight:
        while todo and len(in_flight) < window:
            request = todo.popleft()
            in_flight.append((request, request.issue(client)))
        # Answers arrive in the order asked: once the chunk's last is in, all
        # before it are, and taking them costs no more waiting.
        chunk = min(len(in_flight), CHUNK)
        in_flight[chunk - 1][1].wait()
        for _ in range(chunk):
            _receive(*in_flight.popleft(), todo, skip)
    return holder.children


def _system_skip(client: KazooClient) -> Skip:
    if client.chroot:
        return lambda path: False
    return lambda path: path == SYSTEM_PATH


def _receive(request: _Request, result: Any, todo: deque[_Request], skip: Skip | None) -> None:
    """Fill in one answer; queue the reads it calls for."""
    try:
        answer = result.get()
    except NoNodeError:
        # Deleted since its parent was listed: as if never there.
        request.parent.children.pop(request.name, None)
        return
    if request.children:
        for name in sorted(answer):
            child_path = join_path(request.path, name)
            if skip is None or not skip(child_path):
                todo.append(_Request(child_path, Node(), request.node, name))
        return
    data, stat = answer
    node = request.node
    node.properties = decode(data)
    node.ephemeral = stat.ephemeralOwner != 0
    request.parent.children[request.name] = node
    if stat.numChildren > 0:
        todo.append(_Request(request.path, node, request.parent, request.name, True))


def read_properties(client: KazooClient, path: str) -> dict[str, Any]:
    """The properties of one node; NoNodeError when it does not exist."""
    data, _stat = client.get(path)
    return decode(data)


def read_versioned_properties(client: KazooClient, path: str) -> tuple[dict[str, Any], int]:
    """The properties of one node and the data version to pass to
    `write_properties` for a check-and-set update."""
    data, stat = client.get(path)
    return decode(data), int(stat.version)


def check_and_set(
    client: KazooClient,
    path: str,
    change: Callable[[dict[str, Any] | None], dict[str, Any]],
    *,
    create: bool = False,
) -> None:
    """The one read-modify-write of a node's properties: `change` gets the
    properties read (None when the node does not exist, only with `create`;
    else NoNodeError) and returns the new ones, written only if nobody wrote
    (or created the node) since the read; otherwise read and `change` again.
    `change` may raise to give up."""
    while True:
        try:
            properties, version = read_versioned_properties(client, path)
        except NoNodeError:
            if not create:
                raise
            properties, version = None, -1
        new = change(properties)
        try:
            if properties is None:
                client.create(path, encode(new))
            else:
                client.set(path, encode(new), version=version)
            return
        except (BadVersionError, NodeExistsError):
            continue


def update_properties(client: KazooClient, path: str, **changes: Any) -> None:
    """Set some properties of an existing node, keeping the others."""
    check_and_set(client, path, lambda properties: {**(properties or {}), **changes})


def write_properties(
    client: KazooClient, path: str, properties: dict[str, Any], version: int = -1
) -> int:
    """Replace a node's properties; with `version` (from
    `read_versioned_properties`) only if nobody wrote since, else
    BadVersionError. Returns the new version."""
    stat = client.set(path, encode(properties), version=version)
    return int(stat.version)
