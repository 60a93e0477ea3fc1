"""The checks for input from outside that is not tree text syntax: the
configuration, the host id, the cluster version, package names, `n`.

Each check raises `Invalid` with a message that names the problem but not
where it was found; the caller knows where (a file and key, or a node path)
and turns it into its own error (`ConfigError`, exit 2, or
`TreeContentError`, a failed run that changes nothing). `printable` is the
one way text from outside reaches a terminal or a log line.
"""

from __future__ import annotations

import math
import os
import re
from typing import Any

# Instances of one deployment on one host (`n`): each is a deploy script run
# and a model object, so an unbounded `n` is a denial of service.
MAX_INSTANCES = 1000
# Characters in one value: a host id, a name, a version, a configuration value.
MAX_TEXT = 1024
# Decimal digits of an integer version (Python refuses to print more than
# 4300 anyway; a version is a release number, not a payload).
MAX_DIGITS = 100

# C0, DEL and C1 controls: newline, carriage return, escape sequences.
CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")
# What ZooKeeper refuses in a node name (besides "", "." and ".."):
# its PathUtils.validatePath.
ZOOKEEPER_REFUSES = re.compile(r"[\x00-\x1f\x7f-\x9f\ud800-\uf8ff\ufff0-\uffff/]")
# yum and dnf expand globs (`docs*`, `?`, `[a]`), read `@name` as a group and
# `(a or b)`, `a >= 1` as dependency expressions; a leading `-` is an option.
PACKAGE_SPECIAL = frozenset("*?[]{}@!^~\\,;:'\"`$&|<>()=#%")
GLOB = frozenset("*?[]{}\\")


class Invalid(ValueError):
    """Refused input; the message says what is wrong, the caller says where."""


def printable(text: str) -> str:
    """`text` safe for a terminal and a one-line log record: every
    character that is not printable (controls, escape sequences, line
    separators, lone surrogates, bidirectional overrides) as its Python
    escape (`\\n`, `\\x1b`, `\\ud800`)."""
    if text.isprintable():
        return text
    return "".join(c if c.isprintable() else _escape(c) for c in text)


def _escape(character: str) -> str:
    return character.encode("unicode_escape", "backslashreplace").decode("ascii")


def shown(value: Any, limit: int = 80) -> str:
    """A value as an error message shows it: its repr, printable, cut at
    `limit` characters (an integer of 5000 digits has no repr at all)."""
    if isinstance(value, int) and not isinstance(value, bool) and _digits(value) > MAX_DIGITS:
        return f"<an integer of more than {MAX_DIGITS} digits>"
    text = printable(repr(value))
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _digits(value: int) -> int:
    # bit_length bounds the digits without converting to text.
    return math.ceil(abs(value).bit_length() * math.log10(2)) if value else 1


def text(value: str, what: str, limit: int = MAX_TEXT, newlines: bool = False) -> str:
    """A string from outside: valid Unicode, at most `limit` characters, no
    control characters (newlines and tabs only where `newlines`)."""
    if len(value) > limit:
        raise Invalid(f"{what} is longer than {limit} characters")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise Invalid(f"{what} is not valid Unicode: {shown(value)}") from None
    control = CONTROL.search(value.replace("\n", "").replace("\t", "") if newlines else value)
    if control:
        raise Invalid(f"{what} holds a control character: {shown(value)}")
    return value


def node_name(value: str, what: str) -> str:
    """One ZooKeeper node name (a host id, a role): what ZooKeeper accepts,
    printable, bounded."""
    text(value, what)
    if value in ("", ".", "..") or ZOOKEEPER_REFUSES.search(value) or not value.isprintable():
        raise Invalid(f"{what} is not a valid node name: {shown(value)}")
    return value


def host_id(value: str) -> str:
    """The host id names `/hosts/<id>`, the deploy target and log lines."""
    return node_name(value, "host-id")


def cluster_version(value: Any) -> Any:
    """The `/hosts` version: a JSON scalar the status file, the logs and
    the monitor can all show (None halts, False pauses)."""
    if value is None or isinstance(value, bool):
        return value
    if isinstance(value, int):
        if _digits(value) > MAX_DIGITS:
            raise Invalid(f"cluster version has more than {MAX_DIGITS} digits")
        return value
    if isinstance(value, float):
        if not math.isfinite(value):
            raise Invalid(f"cluster version is not a finite number: {shown(value)}")
        return value
    if isinstance(value, str):
        if not value.strip():
            raise Invalid("cluster version is blank")
        text(value, "cluster version")
        if not value.isprintable():
            raise Invalid(f"cluster version is not printable: {shown(value)}")
        return value
    raise Invalid(f"cluster version is not a JSON scalar: {shown(value)}")


def package_problem(name: str) -> str | None:
    """What is wrong with `name` as a package name on yum's or dnf's
    command line, or None."""
    if not name or len(name) > MAX_TEXT:
        return "empty or too long"
    if name.startswith("-"):
        return "starts with '-'"
    special = sorted(set(name) & PACKAGE_SPECIAL)
    if special:
        return f"holds {''.join(special)!r}"
    return None


def version_problem(version: str) -> str | None:
    """A plain (not VCS) version goes into `NAME-VERSION` on yum's command
    line: no glob there either."""
    if len(version) > MAX_TEXT:
        return "too long"
    special = sorted(set(version) & GLOB)
    return f"holds {''.join(special)!r}" if special else None


def instances(n: Any) -> int:
    """`n` of a deploy target: 0 to MAX_INSTANCES, checked before any
    instance is built."""
    if isinstance(n, bool) or not isinstance(n, int) or n < 0:
        raise Invalid(shown(n))
    if n > MAX_INSTANCES:
        raise Invalid(f"{shown(n)} (at most {MAX_INSTANCES})")
    return n


def search_path(value: str, what: str) -> list[str]:
    """A `:`-separated list of directories commands are looked up in: every
    entry absolute (`.`, a relative or an empty entry would run whatever
    the current directory holds)."""
    text(value, what, limit=64 * MAX_TEXT)
    entries = value.split(os.pathsep)
    for entry in entries:
        if not os.path.isabs(entry):
            shown_entry = repr(entry) if entry else "an empty entry (the current directory)"
            raise Invalid(f"{what}: {printable(shown_entry)} is not an absolute directory")
    return entries
