"""Pytest plugin: a real ZooKeeper for the tests.

Registered from tests/conftest.py (`pytest_plugins = ["tests.support.zookeeper"]`).
One private server runs for the whole session (it starts in about 0.3 s,
but a session per test would add up); each test gets its own chroot, so
tests can't see each other's nodes.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from kazoo.client import KazooClient

from reconciler.zk.connect import connect
from reconciler.zk.server import ZooKeeperServer
from reconciler.zk.storage import encode


@contextmanager
def session(connection: str) -> Iterator[KazooClient]:
    """A started client, stopped and closed at the end of the block."""
    client = connect(connection)
    try:
        yield client
    finally:
        client.stop()
        client.close()


@pytest.fixture(scope="session")
def zk_server_instance() -> Iterator[ZooKeeperServer]:
    """The session's server object (to read its log or port)."""
    with ZooKeeperServer() as server:
        yield server


@pytest.fixture(scope="session")
def zk_server(zk_server_instance: ZooKeeperServer) -> str:
    """The session server's connection string, `127.0.0.1:PORT`."""
    return zk_server_instance.connection


@pytest.fixture(scope="session")
def _zk_admin(zk_server: str) -> Iterator[KazooClient]:
    """A client on the real root, creating and removing the chroots."""
    with session(zk_server) as client:
        yield client


@pytest.fixture
def zk_chroot(zk_server: str, _zk_admin: KazooClient) -> str:
    """A connection string with a fresh, existing chroot of its own:
    `127.0.0.1:PORT/t<hex>`. Left behind after the test: deleting costs
    time, and the server's data goes away with it at the session's end."""
    chroot = "/t" + uuid.uuid4().hex
    _zk_admin.create(chroot)
    return zk_server + chroot


@pytest.fixture
def zk(zk_chroot: str) -> Iterator[KazooClient]:
    """A started client on the test's chroot."""
    with session(zk_chroot) as client:
        yield client


def register(zk: KazooClient, host_id: str, **properties: Any) -> None:
    """An agent's host node, as a registered agent leaves it."""
    zk.create(f"/hosts/{host_id}", encode(properties), ephemeral=True, makepath=True)
