"""Node data as stored in ZooKeeper, compatible with zc.zk, and connecting.

A node's data is its properties as a compact JSON object in UTF-8. Older
trees hold plain strings; those read as `{"string_value": <data>}` so that
every node has properties.
"""

from __future__ import annotations

import json
import select
from collections.abc import Mapping, Sequence
from typing import Any

from kazoo.client import KazooClient
from kazoo.handlers.threading import SequentialThreadingHandler

STRING_VALUE = "string_value"


class ZooKeeperUnavailable(Exception):
    """No ZooKeeper session could be established."""


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


class SelectHandler(SequentialThreadingHandler):  # type: ignore[misc]  # kazoo is untyped
    """kazoo's threading handler, waiting with a single select(2) call.

    kazoo's own `select` creates, fills and closes an epoll object on every
    call, several times per request. In a pipelined tree read that costs
    more than ZooKeeper itself: 20,000 nodes read in about 1.1 s instead of
    1.8 s (bench/bench_tree_read.py)."""

    def select(
        self,
        rlist: Sequence[Any],
        wlist: Sequence[Any],
        xlist: Sequence[Any],
        timeout: float | None = None,
    ) -> tuple[list[Any], list[Any], list[Any]]:
        try:
            return select.select(rlist, wlist, xlist, timeout)
        except ValueError:
            # A descriptor beyond select(2)'s limit of 1024: kazoo's way copes.
            result: tuple[list[Any], list[Any], list[Any]] = super().select(
                rlist, wlist, xlist, timeout
            )
            return result


def connect(connection: str, timeout: float = 10) -> KazooClient:
    """A started client for `connection` (`host:port[,host:port...][/chroot]`).

    Raises ZooKeeperUnavailable when no server answers within `timeout`
    seconds; the caller owns the client (`stop()` then `close()`).
    """
    client = KazooClient(hosts=connection, timeout=timeout, handler=SelectHandler())
    try:
        client.start(timeout=timeout)
    except Exception as error:
        # kazoo already closes the client on a time-out; this is for the rest.
        client.stop()
        client.close()
        raise ZooKeeperUnavailable(
            f"Could not connect to ZooKeeper at {connection} within {timeout:g} s"
        ) from error
    return client
