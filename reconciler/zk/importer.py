"""Importing a tree into ZooKeeper and exporting one from it.

An import is planned first, in memory, from the tree read at the target
path (`plan_import`, no I/O), then applied with pipelined writes. So a dry
run is the plan without the writes, and a big import costs about one read
walk plus one write per changed node.

Trimming: below each imported node, nodes the text does not mention are
extra. An extra subtree without ephemeral nodes is deleted whole (with
`trim`) or reported (without); one holding ephemeral nodes is kept, only its
parts free of them are trimmed. Ephemeral nodes belong to live sessions
(registered servers, locks): they are never deleted and never reported.
Nodes directly under the import path are never trimmed: the text is then
one of several imported side by side.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from kazoo.client import KazooClient
from kazoo.exceptions import NoNodeError
from kazoo.security import ACL

from reconciler import treefmt
from reconciler.tree import Node, join_path
from reconciler.zk.reader import DEFAULT_WINDOW, normalize, read_tree
from reconciler.zk.storage import canonical, encode

# The ACL of a node to create, by path (see zk.acl); None: the client's default.
AclFor = Callable[[str], list[ACL]]


@dataclass(frozen=True)
class Write:
    """One change: `create` (with data and ACL), `set` (data), `acl` (set
    the ACL) or `delete`."""

    action: str
    path: str
    data: bytes = b""
    acl: tuple[ACL, ...] | None = None

    def issue(self, client: KazooClient) -> Any:
        acl = list(self.acl) if self.acl is not None else None
        if self.action == "create":
            return client.create_async(self.path, self.data, acl=acl)
        if self.action == "set":
            return client.set_async(self.path, self.data)
        if self.action == "acl":
            return client.set_acls_async(self.path, acl)
        return client.delete_async(self.path)


@dataclass
class ImportPlan:
    """The writes, in an order ZooKeeper can apply them one after the other
    (parents created before children, children deleted before parents),
    and the messages for the operator."""

    writes: list[Write] = field(default_factory=list)
    messages: list[str] = field(default_factory=list)


def import_tree(
    client: KazooClient,
    tree: Node,
    path: str = "/",
    trim: bool = False,
    dry_run: bool = False,
    acl: AclFor | None = None,
) -> list[str]:
    """Make the nodes under `path` match `tree` (a root as from
    `treefmt.parse`: its children land under `path`; its properties, if
    any, become those of `path`); created nodes get the ACL `acl` gives
    their path. Returns the messages, in path order:
    `extra path not trimmed: <path>` without `trim`, `would delete <path>.`
    for a dry run with `trim`. A dry run writes nothing at all."""
    path = normalize(path)
    try:
        actual: Node | None = read_tree(client, path)
    except NoNodeError:
        actual = None
    plan = plan_import(actual, tree, path, trim=trim, dry_run=dry_run)
    if not dry_run:
        if actual is None:
            # Only the import path may need missing ancestors; done blocking,
            # because the pipelined creates below it depend on it.
            client.create(
                path, encode(tree.properties), makepath=True, acl=acl(path) if acl else None
            )
        if acl is not None:
            plan.writes = [
                Write(w.action, w.path, w.data, tuple(acl(w.path))) if w.action == "create" else w
                for w in plan.writes
            ]
        apply_writes(client, plan.writes)
    return plan.messages


def export_tree(client: KazooClient, path: str = "/", ephemeral: bool = False) -> str:
    """The subtree at `path` as tree text (see `treefmt.export`)."""
    path = normalize(path)
    return treefmt.export(read_tree(client, path), path, ephemeral=ephemeral)


def plan_import(
    actual: Node | None, tree: Node, path: str, trim: bool = False, dry_run: bool = False
) -> ImportPlan:
    """The plan making `actual` (the tree read at `path`, None when `path`
    does not exist) match `tree`. Pure: no I/O. Creating `path` itself when
    missing is left to the caller (it may need ancestors). Iterative (an
    explicit stack, in path order): a tree may be nested deeper than
    Python's recursion limit."""
    plan = ImportPlan()
    if actual is not None and tree.properties:
        _update(plan, path, tree, actual)
    # (path, wanted node or None for an extra one, the node in ZooKeeper)
    todo: list[tuple[str, Node | None, Node | None]] = []
    for name in sorted(tree.children, reverse=True):
        existing = actual.children.get(name) if actual is not None else None
        todo.append((join_path(path, name), tree.children[name], existing))
    while todo:
        node_path, wanted, existing = todo.pop()
        if wanted is None:
            assert existing is not None
            _extra(plan, node_path, existing, trim, dry_run, todo)
            continue
        if existing is None:
            plan.writes.append(Write("create", node_path, encode(wanted.properties)))
        else:
            _update(plan, node_path, wanted, existing)
        # One pass over both name sets keeps the messages in path order.
        names = wanted.children.keys() | (existing.children.keys() if existing else set())
        for name in sorted(names, reverse=True):
            child_path = join_path(node_path, name)
            child = existing.children.get(name) if existing is not None else None
            todo.append((child_path, wanted.children.get(name), child))
    return plan


def _update(plan: ImportPlan, path: str, wanted: Node, actual: Node) -> None:
    if canonical(wanted.properties) != canonical(actual.properties):
        plan.writes.append(Write("set", path, encode(wanted.properties)))


def _extra(
    plan: ImportPlan,
    path: str,
    node: Node,
    trim: bool,
    dry_run: bool,
    todo: list[tuple[str, Node | None, Node | None]],
) -> None:
    if node.ephemeral:
        return
    if _holds_ephemeral(node):
        # Only its parts free of ephemeral nodes go: look at each child.
        todo.extend(
            (join_path(path, name), None, node.children[name])
            for name in sorted(node.children, reverse=True)
        )
    elif not trim:
        plan.messages.append(f"extra path not trimmed: {path}")
    elif dry_run:
        plan.messages.append(f"would delete {path}.")
    else:
        # Children before their parent: the walk's order, reversed, with
        # siblings walked in reverse so that they end up sorted.
        stack, found = [(path, node)], []
        while stack:
            item = stack.pop()
            found.append(item[0])
            stack.extend(
                (join_path(item[0], n), item[1].children[n]) for n in sorted(item[1].children)
            )
        plan.writes.extend(Write("delete", p) for p in reversed(found))


def _holds_ephemeral(node: Node) -> bool:
    return any(descendant.ephemeral for _path, descendant in node.walk())


def apply_writes(client: KazooClient, writes: list[Write], window: int = DEFAULT_WINDOW) -> None:
    """Send `writes` pipelined, `window` at a time. ZooKeeper applies one
    session's requests in the order sent, so dependent writes (a child
    after its parent) may be in flight together. The first failure is
    raised once the writes in flight are answered; none is sent after it."""
    pending = deque(writes)
    in_flight: deque[tuple[Write, Any]] = deque()
    failure: Exception | None = None
    while in_flight or (pending and failure is None):
        while pending and failure is None and len(in_flight) < window:
            write = pending.popleft()
            in_flight.append((write, write.issue(client)))
        write, result = in_flight.popleft()
        try:
            result.get()
        except Exception as error:
            if failure is None:
                error.add_note(f"while trying to {write.action} {write.path}")
                failure = error
    if failure is not None:
        raise failure
