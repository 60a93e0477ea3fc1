"""The cluster tree in memory: nodes with properties, links and children.

The same structure comes from a `.zk` text file (`treefmt`) or from
ZooKeeper (`zk.reader`); the model computes deployments from it. Pure data,
no I/O.
"""

from __future__ import annotations

import json
import math
import posixpath
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from reconciler.validate import printable

LINK_SUFFIX = " ->"
PROPERTY_LINK_SUFFIX = " =>"

# Limits on property values (tree text and node data alike), so that every
# value can be stored, printed and compared without hitting Python's limits.
MAX_DEPTH = 100
MAX_INT_DIGITS = 4300
_INT_LIMIT = 10**MAX_INT_DIGITS


class TreeError(Exception):
    """A problem with the tree's content (bad link, missing node, ...)."""


@dataclass
class Node:
    """One node: its properties (links included, stored as `"name ->"` and
    `"name =>"` keys, as zc.zk stores them) and its children by name."""

    properties: dict[str, Any] = field(default_factory=dict)
    children: dict[str, Node] = field(default_factory=dict)
    ephemeral: bool = False

    def child(self, name: str) -> Node:
        """The child `name`, created when missing."""
        node = self.children.get(name)
        if node is None:
            node = self.children[name] = Node()
        return node

    def get(self, path: str) -> Node | None:
        """The node at an absolute path below this one (taken as the root)."""
        node: Node | None = self
        for name in split_path(path):
            if node is None:
                return None
            node = node.children.get(name)
        return node

    def walk(self, path: str = "/") -> Iterator[tuple[str, Node]]:
        """Every node below (and including) this one, in sorted path order.
        Iterative: a tree may be nested deeper than Python's recursion limit."""
        stack = [(path, self)]
        while stack:
            path, node = stack.pop()
            yield path, node
            stack.extend(
                (join_path(path, name), node.children[name])
                for name in sorted(node.children, reverse=True)
            )

    def has_property(self, name: str) -> bool:
        """Whether `name` is set here, plainly or by a property link."""
        return name in self.properties or name + PROPERTY_LINK_SUFFIX in self.properties

    def plain_properties(self) -> dict[str, Any]:
        """Properties without links."""
        return {k: v for k, v in self.properties.items() if not is_link_key(k)}

    def links(self) -> dict[str, Any]:
        return {k: v for k, v in self.properties.items() if is_link_key(k)}


def is_link_key(key: str) -> bool:
    return key.endswith(LINK_SUFFIX) or key.endswith(PROPERTY_LINK_SUFFIX)


def split_path(path: str) -> list[str]:
    return [part for part in path.split("/") if part]


def join_path(parent: str, name: str) -> str:
    return parent.rstrip("/") + "/" + name


# Following more node links than this for one path is taken for a loop.
MAX_LINK_HOPS = 100


def resolve_path(base: str, target: str) -> str:
    """An absolute path from a link target, relative ones taken from `base`."""
    return posixpath.normpath(posixpath.join(base, target)) if target else base


def resolved_properties(root: Node, path: str) -> dict[str, Any]:
    """The properties of the node at `path` with property links (`name => path
    [pname]`) replaced by the value they point at, as zc.zk's `properties()`
    reads them: a plain property wins over a link of the same name (the link
    is then not followed at all). Symbolic links (`->`) are left out: they
    name nodes, not values."""
    _real, node = resolve_node(root, path)
    result = node.plain_properties()
    for key in node.properties:
        if key.endswith(PROPERTY_LINK_SUFFIX):
            name = key[: -len(PROPERTY_LINK_SUFFIX)]
            if name not in result:
                result[name] = resolved_property(root, path, name)
    return result


def resolved_property(root: Node, path: str, name: str) -> Any:
    """The value of property `name` of the node at `path`, following property
    links (a plain property of the same name wins) and node links on the way."""
    # Only the one property is followed, not the whole target node: a target
    # whose other links are broken or loop back here is no error.
    seen: set[tuple[str, str]] = set()
    while True:
        path, node = resolve_node(root, path)
        if (path, name) in seen:
            raise TreeError(f"Property link cycle at {printable(path)} {printable(name)}")
        seen.add((path, name))
        if name in node.properties:
            return node.properties[name]
        link = node.properties.get(name + PROPERTY_LINK_SUFFIX)
        if link is None:
            raise TreeError(f"No property {printable(name)} at {printable(path)}")
        parts = link.split() if isinstance(link, str) else []
        if not 1 <= len(parts) <= 2:
            raise TreeError(
                f"Bad property link {printable(name)} => {printable(repr(link))} "
                f"at {printable(path)}"
            )
        path = resolve_path(path, parts[0])
        name = parts[1] if len(parts) == 2 else name


def resolve_node(root: Node, path: str) -> tuple[str, Node]:
    """The real path and node for `path`, following node links (`name ->
    target`) where a name is not a child, as zc.zk resolves paths: a child
    of the same name hides a link. Raises TreeError naming `path` when
    nothing is there."""
    wanted = path
    path = resolve_path("/", path)
    for _hop in range(MAX_LINK_HOPS):
        node, real = root, "/"
        names = split_path(path)
        for index, name in enumerate(names):
            child = node.children.get(name)
            if child is not None:
                node, real = child, join_path(real, name)
                continue
            target = node.properties.get(name + LINK_SUFFIX)
            if not isinstance(target, str) or not target.strip():
                raise TreeError(f"No such node: {printable(wanted)}")
            path = resolve_path(real, posixpath.join(target.strip(), *names[index + 1 :]))
            break
        else:
            return real, node
    raise TreeError(f"Node link loop at {printable(wanted)}")


def json_value(value: Any, depth: int = 0) -> Any:
    """`value` as it can be stored in a node's JSON data, as zc.zk's
    `json.dumps` stores it: tuples become lists, dict keys that are numbers,
    booleans or None become strings. Raises ValueError for anything JSON
    can't hold faithfully or beyond the limits (MAX_DEPTH, MAX_INT_DIGITS,
    valid Unicode)."""
    if value is None or isinstance(value, bool):
        return value
    if isinstance(value, int):
        if not -_INT_LIMIT < value < _INT_LIMIT:
            raise ValueError(f"integer of more than {MAX_INT_DIGITS} digits")
        return value
    if isinstance(value, str):
        if not _valid_unicode(value):
            raise ValueError("lone surrogate in a string")
        return value
    if isinstance(value, float):
        if not math.isfinite(value):
            raise ValueError("not a finite number")
        return value
    if depth >= MAX_DEPTH:
        raise ValueError(f"nested deeper than {MAX_DEPTH} levels")
    if isinstance(value, list | tuple):
        return [json_value(item, depth + 1) for item in value]
    if isinstance(value, dict):
        return {_json_key(key): json_value(item, depth + 1) for key, item in value.items()}
    raise ValueError(f"{type(value).__name__} not allowed")


def _json_key(key: Any) -> str:
    if isinstance(key, str):
        return str(json_value(key))
    if key is None or isinstance(key, bool | int | float):
        # json.dumps's own spelling: 80 -> "80", True -> "true", None -> "null".
        text: str = json.dumps(json_value(key))
        return text
    raise ValueError("dict keys must be strings or numbers")


def _valid_unicode(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True
