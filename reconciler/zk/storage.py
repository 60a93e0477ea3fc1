"""Node data as stored in ZooKeeper, compatible with zc.zk.

A node's data is its properties as a compact JSON object in UTF-8. Data that
is not one (older trees hold plain strings; other tools write what they
like) reads as the one property `string_value` holding the text, as zc.zk
reads it, and a node whose only property is `string_value` is written back as
that raw text, so such nodes survive a round trip byte for byte.

The rule for data another tool wrote: a JSON object within the value limits
of `tree.json_value` (nested at most MAX_DEPTH levels, integers of at most
MAX_INT_DIGITS digits, finite numbers, no lone surrogates) reads as its
properties; anything else reads as `string_value` (undecodable bytes shown
as U+FFFD). Reading never raises, so one hostile node can't stop a tree
read, `hosts`, `monitor` or lint.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from reconciler.tree import json_value
from reconciler.treefmt import WHITESPACE

STRING_VALUE = "string_value"


def decode(data: bytes | None) -> dict[str, Any]:
    """The properties held in a node's data (see the module's docstring)."""
    if not data:
        return {}
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        # Not ours and not text: keep it readable rather than failing the
        # whole tree read for one odd node.
        return {STRING_VALUE: data.decode("utf-8", "replace")}
    # zc.zk strips (Python 2's) whitespace before looking for an object.
    stripped = text.strip(WHITESPACE)
    if not stripped:
        return {}
    if stripped.startswith("{") and stripped.endswith("}"):
        try:
            # Depth -1: the object of properties is no level of a value's
            # nesting, as in tree text.
            value = json_value(json.loads(stripped), depth=-1)
        except (ValueError, RecursionError):
            # Bad JSON, or beyond the limits: RecursionError is the JSON
            # decoder's own answer to deep nesting.
            pass
        else:
            if isinstance(value, dict):
                return value
    return {STRING_VALUE: text}


def encode(properties: Mapping[str, Any]) -> bytes:
    """Node data for `properties`: compact JSON, as zc.zk writes it, so both
    tools keep reading each other's trees; a lone `string_value` string as
    its raw text when that reads back the same. Raises TypeError or
    ValueError for values JSON cannot hold (sets, bytes, huge integers...)."""
    if len(properties) == 1:
        raw = properties.get(STRING_VALUE)
        if isinstance(raw, str):
            try:
                data = raw.encode("utf-8")
            except UnicodeEncodeError:
                pass  # a lone surrogate: only JSON's escapes can hold it
            else:
                if decode(data) == properties:
                    return data
    return json.dumps(properties, separators=(",", ":")).encode("utf-8")


def canonical(properties: Mapping[str, Any]) -> str:
    """A comparison key: equal iff the stored JSON means the same. Plain `==`
    would take `True` for `1` and rewrite nothing; key order is irrelevant."""
    return json.dumps(properties, sort_keys=True, separators=(",", ":"))
