"""The `.zk` tree text format, compatible with zc.zk 2.1.0: `parse` text into
a `Node` tree and `export` a tree back to text (see the shared spec,
tree-format.md, and the README's "Tree files and ZooKeeper"). Values are read
with a literal parser, never evaluated.

A line is read as zc.zk reads it, trying in order: a property link
(`name => path [pname]`), a property (`name = literal`), a link
(`name -> target`), a node (`/name [: type]`). Names are any run of
non-whitespace; whitespace is ASCII whitespace, each character one column of
indentation (a tab too). `#` starts a comment only as a line's first
non-blank character, or inside a property's literal (a Python comment);
elsewhere it is data (`/lb : ipvs #1` has type `ipvs #1`).

Top-level property and link lines (outside any node) belong to the root, so
that a root with properties survives export then parse.
"""

from __future__ import annotations

import ast
import io
import json
import re
import tokenize
from dataclasses import dataclass
from typing import Any

from reconciler.tree import (
    LINK_SUFFIX,
    MAX_INT_DIGITS,
    PROPERTY_LINK_SUFFIX,
    Node,
    TreeError,
    join_path,
    json_value,
    split_path,
)
from reconciler.validate import printable

INDENT = "  "
# Python 2's (so zc.zk's) whitespace: `str.strip()` and `\s` on bytes.
WHITESPACE = " \t\n\r\x0b\x0c"
_PROPERTY_LINK = re.compile(r"(\S+)\s*=>\s*(\S+(?:\s+\S+)?)", re.ASCII)
_LINK_START = re.compile(r"\S+\s*(=>|->)", re.ASCII)
_PROPERTY = re.compile(r"(\S+)\s*=\s*(\S.*)", re.ASCII | re.DOTALL)
_LINK = re.compile(r"(\S+)\s*->\s*(\S+)", re.ASCII)
_NODE = re.compile(r"/(\S+)(?:\s*:\s*(\S.*))?", re.ASCII | re.DOTALL)
# ZooKeeper refuses a request larger than its jute.maxbuffer (1 MiB by
# default), path and header included: node data stays below, so that an
# import never fails half-way on one big node.
MAX_DATA_BYTES = 1_000_000
# A JSON character costs at most 6 bytes (`\u20ac`) per character of text:
# below this much text a node's data can't be too large, no need to measure.
_SAFE_TEXT_SIZE = MAX_DATA_BYTES // 6 - 100
# A name exported without re-reading its line: nothing in it can change how
# the line reads.
_SIMPLE_NAME = re.compile(r"[A-Za-z0-9_.-]+")


class TreeFormatError(Exception):
    """A line of tree text that can't be parsed; `str()` is one line:
    `<filename>:<lineno>: <problem>: <line>`, the line as written (with its
    indentation, without trailing whitespace; characters a terminal would
    act on shown as escapes; a very long line cut short)."""

    def __init__(self, filename: str, lineno: int, problem: str, line: str) -> None:
        super().__init__(f"{printable(filename)}:{lineno}: {problem}: {excerpt(line)}")
        self.filename = filename
        self.lineno = lineno
        self.problem = problem
        self.line = line


def excerpt(line: str, limit: int = 200) -> str:
    """`line` as shown in a message: `shown`, and cut after `limit`
    characters (a line can be a megabyte)."""
    return printable(line) if len(line) <= limit else printable(line[:limit]) + "..."


class _LineProblem(Exception):
    """Raised by the per-line helpers; `parse` adds the file and line."""


@dataclass
class _Open:
    """A line that later, deeper lines may nest under."""

    indent: int
    node: Node | None  # None for a property or link line: nothing nests there
    child_indent: int | None = None  # set by the first nested line
    text_size: int = 0  # characters of its properties' lines so far
    # The size of its data as stored, once worth measuring (see _check_data_size).
    data_size: int | None = None


def parse_bytes(data: bytes, filename: str) -> Node:
    """`parse` for a file's content, which must be UTF-8; TreeFormatError
    naming the first line that is not."""
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as error:
        lineno = data.count(b"\n", 0, error.start) + 1
        line = data.split(b"\n")[lineno - 1].decode("utf-8", "replace").rstrip()
        raise TreeFormatError(filename, lineno, "Not UTF-8 text", line) from None
    return parse(text, filename)


def parse(text: str, filename: str = "<string>") -> Node:
    """The root node (path `/`) holding the tree described by `text`."""
    root = Node()
    stack = [_Open(-1, root)]
    # Split on "\n" only, as zc.zk does: str.splitlines would also break at
    # characters that are legitimate inside a line, such as "\x0c".
    for lineno, raw in enumerate(text.split("\n"), 1):
        line = raw.rstrip(WHITESPACE)
        content = line.lstrip(WHITESPACE)
        if not content or content.startswith("#"):
            continue
        try:
            _parse_line(stack, len(line) - len(content), content)
        except _LineProblem as problem:
            # The line keeps its indentation: it is often what is wrong.
            raise TreeFormatError(filename, lineno, str(problem), line) from None
    return root


def _parse_line(stack: list[_Open], indent: int, content: str) -> None:
    while stack[-1].indent >= indent:
        stack.pop()
    parent = stack[-1]
    if parent.node is None:
        raise _LineProblem("Can't indent under properties")
    if parent.child_indent is None:
        parent.child_indent = indent
    elif parent.child_indent != indent:
        raise _LineProblem("Invalid indentation")

    line = _read_line(content)
    if isinstance(line, tuple):
        key, value = line
        if key in parent.node.properties:
            raise _LineProblem("duplicate property")
        parent.node.properties[key] = value
        parent.text_size += len(content)
        _check_data_size(parent, key, value)
        stack.append(_Open(indent, None))
        return
    name, type_ = line.name, line.type
    problem = node_name_problem(name, top_level=len(stack) == 1)
    if problem:
        raise _LineProblem(problem)
    if name in parent.node.children:
        raise _LineProblem("duplicate node")
    child = parent.node.children[name] = Node()
    if type_ is not None:
        child.properties["type"] = type_
    stack.append(_Open(indent, child))


def _check_data_size(open_node: _Open, key: str, value: Any) -> None:
    """After the property `key` was added: the node's data, as
    `zk.storage.encode` writes it (compact, ASCII-only JSON), must fit.
    Measured in full once the text is large enough to matter, then kept up
    to date by adding each new property's `,"key":value` (measuring all
    again per line would make a large node quadratic to read)."""
    if open_node.node is None:
        return
    if open_node.data_size is None:
        if open_node.text_size < _SAFE_TEXT_SIZE:
            return
        size = len(json.dumps(open_node.node.properties, separators=(",", ":")))
    else:
        entry = f"{json.dumps(key)}:{json.dumps(value, separators=(',', ':'))}"
        size = open_node.data_size + 1 + len(entry)
    open_node.data_size = size
    if size > MAX_DATA_BYTES:
        raise _LineProblem(
            f"Node data too large: {size:,} bytes (ZooKeeper takes at most {MAX_DATA_BYTES:,})"
        )


@dataclass(frozen=True)
class _NodeLine:
    name: str
    type: str | None


def _read_line(content: str) -> _NodeLine | tuple[str, Any]:
    """A node line, or the stored key and value of a property, link or
    property link line; in zc.zk's order of trying."""
    match = _PROPERTY_LINK.fullmatch(content)
    if match:
        return match.group(1) + PROPERTY_LINK_SUFFIX, match.group(2)
    link = _LINK_START.match(content)
    match = _PROPERTY.fullmatch(content)
    if match:
        try:
            return match.group(1), _literal(match.group(2))
        except _LineProblem:
            if link and link.group(1) == "=>":
                # `x => a b c` reads as `x = > a b c`: the link is what is wrong.
                raise _LineProblem("Bad link format") from None
            raise
    match = _LINK.fullmatch(content)
    if match:
        return match.group(1) + LINK_SUFFIX, match.group(2)
    match = _NODE.fullmatch(content)
    if match:
        return _NodeLine(match.group(1), match.group(2))
    raise _LineProblem("Bad link format" if link or "->" in content else "Unrecognized data")


def node_name_problem(name: str, top_level: bool = False) -> str | None:
    """Why ZooKeeper would refuse `name` as a node name (its PathUtils rules;
    it counts UTF-16 units, so characters beyond U+FFFF are surrogate pairs
    it refuses), or None."""
    if not name or name in (".", ".."):
        return "Invalid node name"
    if "/" in name:
        return "Invalid node name: '/' inside"
    for char in name:
        code = ord(char)
        if code <= 0x1F or 0x7F <= code <= 0x9F or 0xD800 <= code <= 0xF8FF or code >= 0xFFF0:
            return f"Invalid node name: ZooKeeper refuses character U+{code:04X}"
    if top_level and name == "zookeeper":
        return "Invalid node name: /zookeeper is ZooKeeper's own"
    return None


def _literal(text: str) -> Any:
    try:
        value = _literal_eval(text)
    except SyntaxError as error:
        if error.msg.startswith("Exceeds the limit"):
            # Python's own wording advises changing an interpreter setting.
            raise _LineProblem(f"Bad value: integer of more than {MAX_INT_DIGITS} digits") from None
        raise _LineProblem(f"Bad value: {error.msg}") from None
    except (ValueError, TypeError, RecursionError, MemoryError):
        # literal_eval's own messages quote AST object addresses: not helpful.
        raise _LineProblem("Bad value: malformed literal") from None
    try:
        return json_value(value)
    except ValueError as error:
        raise _LineProblem(f"Bad value: {error}") from None


def _literal_eval(text: str) -> Any:
    """A Python literal, Python 2's long integers (`10L`) included."""
    try:
        return ast.literal_eval(text.strip(WHITESPACE))
    except SyntaxError:
        py3 = _without_long_suffix(text)
        if py3 is None:
            raise
        return ast.literal_eval(py3.strip(WHITESPACE))


def _without_long_suffix(text: str) -> str | None:
    """`text` without the `L` of Python 2 long integer tokens, or None when
    there is none (or the text does not even tokenize)."""
    cuts: list[int] = []
    try:
        tokens = list(tokenize.generate_tokens(io.StringIO(text).readline))
    except (tokenize.TokenError, SyntaxError):
        return None
    for number, suffix in zip(tokens, tokens[1:], strict=False):
        if (
            number.type == tokenize.NUMBER
            and suffix.type == tokenize.NAME
            and suffix.string in ("L", "l")
            and suffix.start == number.end
            and number.start[0] == 1
            and _INTEGER_TOKEN.fullmatch(number.string)
        ):
            cuts.append(suffix.start[1])
    if not cuts:
        return None
    for cut in reversed(cuts):
        text = text[:cut] + text[cut + 1 :]
    return text


_INTEGER_TOKEN = re.compile(r"0[xX][0-9a-fA-F]+|0[oO]?[0-7]+|[1-9][0-9]*|0", re.ASCII)


def export(node: Node, path: str = "/", ephemeral: bool = False) -> str:
    """The text of the subtree `node`, found at `path`. For `/`, its
    properties and children are at the top level; otherwise the node itself
    is. Ephemeral nodes and the top-level `zookeeper` node below `node` are
    left out unless `ephemeral` (`node` itself is printed: it was asked for).

    Strings holding non-ASCII characters are written as `u'...'` literals
    with escapes, which Python 2 zc.zk reads back as the same text. Raises
    TreeError (one line naming the node) for a name or value the text can't
    represent, rather than writing text that would import as something else.
    Iterative: a tree may be nested deeper than Python's recursion limit."""
    lines: list[str] = []
    names = split_path(path)
    # (name or None for the root's content, node, path, depth)
    stack: list[tuple[str | None, Node, str, int]] = [(names[-1] if names else None, node, path, 0)]
    while stack:
        name, current, current_path, depth = stack.pop()
        inline_type = False
        if name is not None:
            inline_type = _export_head(name, current, current_path, depth, lines)
            depth += 1
        _export_properties(current, current_path, depth, lines, inline_type)
        children = [
            (child_name, child)
            for child_name, child in sorted(current.children.items(), reverse=True)
            if ephemeral
            or not (child.ephemeral or (current_path == "/" and child_name == "zookeeper"))
        ]
        stack.extend(
            (child_name, child, join_path(current_path, child_name), depth)
            for child_name, child in children
        )
    return "".join(line + "\n" for line in lines)


def _export_head(name: str, node: Node, path: str, depth: int, lines: list[str]) -> bool:
    """Write the node's line; whether its type went on it (else it is
    written as a property, as for a type that would not read back)."""
    type_ = node.properties.get("type")
    head = f"/{name} : {type_}"
    inline = (
        isinstance(type_, str) and type_.isprintable() and _reads_as(head) == _NodeLine(name, type_)
    )
    if not inline:
        head = f"/{name}"
        if _reads_as(head) != _NodeLine(name, None):
            raise TreeError(f"Can't export node name {printable(repr(name))} at {printable(path)}")
    if node_name_problem(name):
        raise TreeError(f"Can't export node name {printable(repr(name))} at {printable(path)}")
    lines.append(INDENT * depth + head)
    return inline


def _export_properties(
    node: Node, path: str, depth: int, lines: list[str], inline_type: bool
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


def _property_text(key: str, value: Any, path: str) -> str:
    try:
        text = f"{key} = {literal_text(json_value(value))}"
    except ValueError as error:
        raise TreeError(
            f"Can't export property {printable(repr(key))} at {printable(path)}: {error}"
        ) from None
    if not _SIMPLE_NAME.fullmatch(key) and _reads_as(text) != (key, json_value(value)):
        raise TreeError(f"Can't export property name {printable(repr(key))} at {printable(path)}")
    return text


def _link_text(key: str, value: Any, path: str) -> str:
    suffix = LINK_SUFFIX if key.endswith(LINK_SUFFIX) else PROPERTY_LINK_SUFFIX
    text = f"{key[: -len(suffix)]}{suffix} {value}"
    if not isinstance(value, str) or _reads_as(text) != (key, value):
        raise TreeError(
            f"Can't export link {printable(repr(key))} {printable(repr(value))} "
            f"at {printable(path)}"
        )
    return text


def _reads_as(line: str) -> _NodeLine | tuple[str, Any] | None:
    """What a line of exported text reads back as (None: nothing valid)."""
    if line.startswith("#") or line != line.strip(WHITESPACE) or "\n" in line:
        return None
    try:
        return _read_line(line)
    except _LineProblem:
        return None


def literal_text(value: Any) -> str:
    """A Python literal for a JSON value (as `json_value` returns) that both
    Python 3 and Python 2 read back as `value`: `repr`, except that strings
    with non-ASCII characters are `u'...'` with escapes."""
    if isinstance(value, str):
        return repr(value) if value.isascii() else "u" + ascii(value)
    if isinstance(value, list):
        return "[" + ", ".join(literal_text(item) for item in value) + "]"
    if isinstance(value, dict):
        items = (f"{literal_text(k)}: {literal_text(v)}" for k, v in value.items())
        return "{" + ", ".join(items) + "}"
    return repr(value)
