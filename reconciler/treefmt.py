"""The `.zk` tree text format, compatible with zc.zk: `parse` text into a
`Node` tree and `export` a tree back to text (see the shared spec,
tree-format.md). Values are read with a literal parser, never evaluated.

Top-level property and link lines (outside any node) belong to the root, so
that a root with properties survives export then parse.
"""

from __future__ import annotations

import ast
import math
import re
from dataclasses import dataclass
from typing import Any

from reconciler.tree import (
    LINK_SUFFIX,
    PROPERTY_LINK_SUFFIX,
    Node,
    TreeError,
    join_path,
    split_path,
)

INDENT = "  "

# `#` opens a comment only at the start or after whitespace, so node names and
# link targets may contain it. Property values don't use this: the literal
# parser skips comments itself and knows about `#` inside strings.
_COMMENT = re.compile(r"(?:^|\s)#.*")
_NODE = re.compile(r"/(\S*)(.*)")
# The name is matched lazily so that `a->b` is the link `a`; `a- -> b` still
# names `a-` because `-` alone is no operator.
_PROPERTY = re.compile(r"([\w.-]+?)\s*(->|=>|=)(.*)")
_PROPERTY_NAME = re.compile(r"[\w.-]+")


class TreeFormatError(Exception):
    """A line of tree text that can't be parsed; `str()` is one line:
    `<filename>:<lineno>: <problem>: <line>`, the line as written (with its
    indentation, without trailing whitespace)."""

    def __init__(self, filename: str, lineno: int, problem: str, line: str) -> None:
        super().__init__(f"{filename}:{lineno}: {problem}: {line}")
        self.filename = filename
        self.lineno = lineno
        self.problem = problem
        self.line = line


class _LineProblem(Exception):
    """Raised by the per-line helpers; `parse` adds the file and line."""


@dataclass
class _Open:
    """A line that later, deeper lines may nest under."""

    indent: int
    node: Node | None  # None for a property or link line: nothing nests there
    child_indent: int | None = None  # set by the first nested line


def parse(text: str, filename: str = "<string>") -> Node:
    """The root node (path `/`) holding the tree described by `text`."""
    root = Node()
    stack = [_Open(-1, root)]
    # Split on "\n" only: str.splitlines would also break at characters that
    # are legitimate inside a line, such as "\x0c".
    for lineno, raw in enumerate(text.split("\n"), 1):
        line = raw.rstrip()
        content = line.lstrip(" ")
        if not content or content.startswith("#"):
            continue
        try:
            _parse_line(stack, len(line) - len(content), content)
        except _LineProblem as problem:
            # The line keeps its indentation: it is often what is wrong.
            raise TreeFormatError(filename, lineno, str(problem), line) from None
    return root


def _parse_line(stack: list[_Open], indent: int, content: str) -> None:
    if content[0].isspace():
        # A tab (or other whitespace) after the spaces: its width is anyone's guess.
        raise _LineProblem("Invalid indentation")
    while stack[-1].indent >= indent:
        stack.pop()
    parent = stack[-1]
    if parent.node is None:
        raise _LineProblem("Can't indent under properties")
    if parent.child_indent is None:
        parent.child_indent = indent
    elif parent.child_indent != indent:
        raise _LineProblem("Invalid indentation")

    node_match = _NODE.fullmatch(content)
    if node_match:
        name, type_ = _node_line(node_match.group(1), node_match.group(2))
        if name in parent.node.children:
            raise _LineProblem("duplicate node")
        child = parent.node.children[name] = Node()
        if type_ is not None:
            child.properties["type"] = type_
        stack.append(_Open(indent, child))
    else:
        key, value = _property_line(content)
        if key in parent.node.properties:
            raise _LineProblem("duplicate property")
        parent.node.properties[key] = value
        stack.append(_Open(indent, None))


def _node_line(name: str, rest: str) -> tuple[str, str | None]:
    """The name and type (if any) from `/name [: type] [# comment]`."""
    if not _valid_node_name(name):
        raise _LineProblem("Unrecognized data")
    rest = _strip_comment(rest).strip()
    if not rest:
        return name, None
    type_ = rest[1:].strip()
    if not rest.startswith(":") or not type_:
        raise _LineProblem("Unrecognized data")
    return name, type_


def _property_line(content: str) -> tuple[str, Any]:
    """The stored key and value of a property, link or property link line."""
    match = _PROPERTY.fullmatch(content)
    if match is None:
        raise _LineProblem("Unrecognized data")
    name, operator, rest = match.groups()
    if operator == "=":
        return name, _literal(rest)
    target = _link_words(rest)
    if operator == "->":
        if len(target) != 1:
            raise _LineProblem("Bad link format")
        return name + LINK_SUFFIX, target[0]
    if not 1 <= len(target) <= 2:
        raise _LineProblem("Bad link format")
    return name + PROPERTY_LINK_SUFFIX, " ".join(target)


def _literal(text: str) -> Any:
    try:
        value = ast.literal_eval(text.strip())
    except SyntaxError as error:
        raise _LineProblem(f"Bad value: {error.msg}") from None
    except (ValueError, TypeError, RecursionError, MemoryError):
        # literal_eval's own messages quote AST object addresses: not helpful.
        raise _LineProblem("Bad value: malformed literal") from None
    try:
        return _json_value(value)
    except ValueError as error:
        raise _LineProblem(f"Bad value: {error}") from None


def _json_value(value: Any) -> Any:
    """`value` as it can be stored in a node's JSON data: tuples become lists.
    Raises ValueError for anything JSON can't hold faithfully."""
    if value is None or isinstance(value, bool | int | str):
        return value
    if isinstance(value, float):
        if not math.isfinite(value):
            raise ValueError("not a finite number")
        return value
    if isinstance(value, list | tuple):
        return [_json_value(item) for item in value]
    if isinstance(value, dict):
        if not all(isinstance(key, str) for key in value):
            raise ValueError("dict keys must be strings")
        return {key: _json_value(item) for key, item in value.items()}
    raise ValueError(f"{type(value).__name__} not allowed")


def _strip_comment(text: str) -> str:
    return _COMMENT.sub("", text, count=1)


def _link_words(text: str) -> list[str]:
    return _strip_comment(text).split()


def _valid_node_name(name: str) -> bool:
    return bool(name) and "/" not in name and name not in (".", "..")


def export(node: Node, path: str = "/", ephemeral: bool = False) -> str:
    """The text of the subtree `node`, found at `path`. For `/`, its
    properties and children are at the top level; otherwise the node itself
    is. Ephemeral nodes and the top-level `zookeeper` node below `node` are
    left out unless `ephemeral` (`node` itself is printed: it was asked for).

    Raises TreeError for a name or value the text can't represent, rather
    than writing text that would import as something else."""
    lines: list[str] = []
    names = split_path(path)
    if names:
        _export_node(names[-1], node, path, 0, ephemeral, lines)
    else:
        _export_content(node, "/", 0, ephemeral, lines, inline_type=False)
    return "".join(line + "\n" for line in lines)


def _export_node(
    name: str, node: Node, path: str, depth: int, ephemeral: bool, lines: list[str]
) -> None:
    # Printable (which leaves out all whitespace but " ") so that the line
    # survives being read in universal-newline mode, which splits at "\r".
    if not (_valid_node_name(name) and name.isprintable() and " " not in name):
        raise TreeError(f"Can't export node name {name!r} at {path}")
    type_ = node.properties.get("type")
    inline_type = _inline_type(type_)
    head = f"/{name} : {type_}" if inline_type else f"/{name}"
    lines.append(INDENT * depth + head)
    _export_content(node, path, depth + 1, ephemeral, lines, inline_type)


def _export_content(
    node: Node, path: str, depth: int, ephemeral: bool, lines: list[str], inline_type: bool
) -> None:
    indent = INDENT * depth
    plain = node.plain_properties()
    if inline_type:
        del plain["type"]
    for key in sorted(plain):
        lines.append(f"{indent}{_property_text(key, plain[key], path)}")
    links = node.links()
    for key in sorted(links):
        lines.append(f"{indent}{_link_text(key, links[key], path)}")
    for name in sorted(node.children):
        child = node.children[name]
        hidden = child.ephemeral or (path == "/" and name == "zookeeper")
        if ephemeral or not hidden:
            _export_node(name, child, join_path(path, name), depth, ephemeral, lines)


def _property_text(key: str, value: Any, path: str) -> str:
    if not _PROPERTY_NAME.fullmatch(key):
        raise TreeError(f"Can't export property name {key!r} at {path}")
    try:
        _json_value(value)
    except ValueError as error:
        raise TreeError(f"Can't export property {key} at {path}: {error}") from None
    return f"{key} = {value!r}"


def _link_text(key: str, value: Any, path: str) -> str:
    suffix = LINK_SUFFIX if key.endswith(LINK_SUFFIX) else PROPERTY_LINK_SUFFIX
    name, max_words = key[: -len(suffix)], 1 if suffix == LINK_SUFFIX else 2
    words = _link_words(value) if isinstance(value, str) else []
    if not (
        _PROPERTY_NAME.fullmatch(name)
        and 1 <= len(words) <= max_words
        and " ".join(words) == value
        and value.isprintable()
    ):
        raise TreeError(f"Can't export link {key} {value!r} at {path}")
    return f"{name}{suffix} {value}"


def _inline_type(type_: Any) -> bool:
    """Whether `type_` reads back unchanged from `/name : type_`."""
    return (
        isinstance(type_, str)
        and type_.isprintable()
        and bool(type_)
        and _strip_comment(type_).strip() == type_
    )
