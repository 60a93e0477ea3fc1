"""The cluster tree in memory: nodes with properties, links and children.

The same structure comes from a `.zk` text file (`treefmt`) or from
ZooKeeper (`zk.reader`); the model computes deployments from it. Pure data,
no I/O.
"""

from __future__ import annotations

import posixpath
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

LINK_SUFFIX = " ->"
PROPERTY_LINK_SUFFIX = " =>"


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
        """Every node below (and including) this one, in sorted path order."""
        yield path, self
        for name in sorted(self.children):
            yield from self.children[name].walk(join_path(path, name))

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


def resolve_path(base: str, target: str) -> str:
    """An absolute path from a link target, relative ones taken from `base`."""
    return posixpath.normpath(posixpath.join(base, target)) if target else base


def resolved_properties(root: Node, path: str) -> dict[str, Any]:
    """The properties of the node at `path` with property links (`name => path
    [pname]`) replaced by the value they point at. Symbolic links (`->`) are
    left out: they name nodes, not values."""
    node = _existing(root, path)
    result = node.plain_properties()
    for key in node.properties:
        if key.endswith(PROPERTY_LINK_SUFFIX):
            name = key[: -len(PROPERTY_LINK_SUFFIX)]
            result[name] = resolved_property(root, path, name)
    return result


def resolved_property(root: Node, path: str, name: str) -> Any:
    """The value of property `name` of the node at `path`, following property
    links (which win over a plain property of the same name)."""
    # Only the one property is followed, not the whole target node: a target
    # whose other links are broken or loop back here is no error.
    seen: set[tuple[str, str]] = set()
    while True:
        if (path, name) in seen:
            raise TreeError(f"Property link cycle at {path} {name}")
        seen.add((path, name))
        node = _existing(root, path)
        link = node.properties.get(name + PROPERTY_LINK_SUFFIX)
        if link is None:
            if name not in node.properties:
                raise TreeError(f"No property {name} at {path}")
            return node.properties[name]
        parts = str(link).split()
        if not 1 <= len(parts) <= 2:
            raise TreeError(f"Bad property link {name} => {link!r} at {path}")
        path = resolve_path(path, parts[0])
        name = parts[1] if len(parts) == 2 else name


def _existing(root: Node, path: str) -> Node:
    node = root.get(path)
    if node is None:
        raise TreeError(f"No such node: {path}")
    return node
