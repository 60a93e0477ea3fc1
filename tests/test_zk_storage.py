"""Node data format (zc.zk compatible) and connecting."""

from __future__ import annotations

import os
import resource
import socket
import time
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from kazoo.client import KazooClient
from kazoo.exceptions import BadVersionError

from reconciler.zk import server
from reconciler.zk.connect import SelectHandler, ZooKeeperUnavailable, connect
from reconciler.zk.reader import read_properties, read_versioned_properties, write_properties
from reconciler.zk.storage import decode, encode

json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(), inner, max_size=3),
    max_leaves=10,
)
properties = st.dictionaries(st.text(), json_values, max_size=5)


def test_encode_is_compact_json() -> None:
    assert encode({"type": "z4m", "version": "1.0.0"}) == b'{"type":"z4m","version":"1.0.0"}'
    assert encode({}) == b"{}"


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        (b"", {}),
        (None, {}),
        (b"{}", {}),
        (b'{"a":1,"b":[true,null]}', {"a": 1, "b": [True, None]}),
        (b"hello world", {"string_value": "hello world"}),
        (b"42", {"string_value": "42"}),
        (b'["a"]', {"string_value": '["a"]'}),
        (b'"quoted"', {"string_value": '"quoted"'}),
        ("caf\u00e9".encode(), {"string_value": "caf\u00e9"}),
        (b"\xff\xfe", {"string_value": "\ufffd\ufffd"}),
    ],
)
def test_decode(data: bytes | None, expected: dict[str, Any]) -> None:
    assert decode(data) == expected


@given(properties)
def test_decode_encode_round_trip(props: dict[str, Any]) -> None:
    assert decode(encode(props)) == props


def test_round_trip_through_zookeeper(zk: KazooClient) -> None:
    props = {"type": "z4m", "n": 3, "hosts": ["a", "b"], "x ->": "/other", "u": "\u00e9"}
    zk.create("/node", encode(props))
    assert read_properties(zk, "/node") == props
    assert zk.get("/node")[0] == encode(props)


def test_legacy_string_data(zk: KazooClient) -> None:
    zk.create("/legacy", b"just a string")
    zk.create("/empty")
    assert read_properties(zk, "/legacy") == {"string_value": "just a string"}
    assert read_properties(zk, "/empty") == {}


def test_write_properties_checks_version(zk: KazooClient) -> None:
    zk.create("/node", encode({"a": 1}))
    props, version = read_versioned_properties(zk, "/node")
    new_version = write_properties(zk, "/node", {**props, "b": 2}, version=version)
    assert new_version == version + 1
    assert read_properties(zk, "/node") == {"a": 1, "b": 2}
    with pytest.raises(BadVersionError):
        write_properties(zk, "/node", {"c": 3}, version=version)
    write_properties(zk, "/node", {"c": 3})
    assert read_properties(zk, "/node") == {"c": 3}


def test_connect_to_nothing_fails_clearly() -> None:
    port = server.free_port()  # nobody listens there
    started = time.monotonic()
    with pytest.raises(ZooKeeperUnavailable, match=f"127.0.0.1:{port} within 0.5 s"):
        connect(f"127.0.0.1:{port}", timeout=0.5)
    assert time.monotonic() - started < 5


def test_missing_zookeeper_jar_is_explained(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.delenv(server.CLASSPATH_ENV, raising=False)
    monkeypatch.setattr(server, "JAVA_DIR", tmp_path)
    with pytest.raises(server.ZooKeeperServerError, match="apt-get install -y zookeeper"):
        server.find_java_classpath()


def test_select_handler_copes_with_high_descriptors() -> None:
    """select(2) can't watch descriptors from 1024 on (a busy agent may have
    them); the handler then falls back to kazoo's own way."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and hard < 2048:
        pytest.skip("can't open descriptors beyond 1024 here")
    resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, 2048), hard))
    reader, writer = socket.socketpair()
    high = socket.socket(fileno=os.dup2(reader.fileno(), 1500))
    try:
        handler = SelectHandler()
        assert handler.select([reader, high], [], [], 0) == ([], [], [])
        writer.send(b"x")
        assert handler.select([high], [], [], 1)[0] == [high]
        assert handler.select([reader], [], [], 1)[0] == [reader]
    finally:
        for sock in (high, reader, writer):
            sock.close()
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
