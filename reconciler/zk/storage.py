"""Node data as stored in ZooKeeper, compatible with zc.zk.

A node's data is its properties as a compact JSON object in UTF-8. Older
trees hold plain strings; those read as `{"string_value": <data>}` so that
every node has properties.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

STRING_VALUE = "string_value"


def decode(data: bytes | None) -> dict[str, Any]:
    """The properties held in a node's data."""
    if not data:
        return {}
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        # Not ours and not text: keep it readable rather than failing the
        # whole tree read for one odd node.
        return {STRING_VALUE: data.decode("utf-8", "replace")}
    try:
        value = json.loads(text)
    except ValueError:
        value = None
    if isinstance(value, dict):
        return value
    return {STRING_VALUE: text}


def encode(properties: Mapping[str, Any]) -> bytes:
    """Node data for `properties`: compact JSON, as zc.zk writes it, so both
    tools keep reading each other's trees. Raises TypeError for values JSON
    cannot hold (sets, bytes, ...)."""
    return json.dumps(properties, separators=(",", ":")).encode("utf-8")


def canonical(properties: Mapping[str, Any]) -> str:
    """A comparison key: equal iff the stored JSON means the same. Plain `==`
    would take `True` for `1` and rewrite nothing; key order is irrelevant."""
    return json.dumps(properties, sort_keys=True, separators=(",", ":"))
