"""Pytest plugin: ZooKeeper servers for the security tests, each started
once per session and only when a test asks for it (about 2 s each).

- `secure_server`: the plain port, a digest superuser (for the test's own
  set-up and inspection) and SASL DIGEST-MD5 users from a JAAS file;
- `tls_server`: TLS only (a `secureClientPort`, no plain port), with a CA
  and certificates made by openssl and keytool.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from kazoo.client import KazooClient
from kazoo.security import OPEN_ACL_UNSAFE

from reconciler.zk.connect import Credentials, Settings, Tls, connect
from reconciler.zk.server import TlsFiles, ZooKeeperServer, make_tls_files

SUPERUSER = ("super", "super-secret")
SASL_USERS = {"operator": "operator-secret", "agent": "agent-secret"}


def write_auth_file(directory: Path, name: str, line: str, mode: int = 0o600) -> Path:
    path = directory / f"{name}.auth"
    path.write_text(line + "\n")
    path.chmod(mode)
    return path


def superuser_settings(connection: str, tls: Tls | None = None) -> Settings:
    user, password = SUPERUSER
    return Settings(connection, 10.0, Credentials(user, password, Path("superuser")), tls=tls)


@pytest.fixture(scope="session")
def secure_server() -> Iterator[ZooKeeperServer]:
    with ZooKeeperServer(superuser=SUPERUSER, sasl_users=SASL_USERS) as server:
        yield server


@pytest.fixture(scope="session")
def _secure_admin(secure_server: ZooKeeperServer) -> Iterator[KazooClient]:
    client = connect(superuser_settings(secure_server.connection))
    yield client
    client.stop()
    client.close()


@pytest.fixture
def secure_chroot(secure_server: ZooKeeperServer, _secure_admin: KazooClient) -> str:
    """A fresh chroot (created open, as ZooKeeper makes nodes) on the
    secure server: `127.0.0.1:PORT/t<hex>`."""
    chroot = "/t" + uuid.uuid4().hex
    _secure_admin.create(chroot, acl=OPEN_ACL_UNSAFE)
    return secure_server.connection + chroot


@pytest.fixture(scope="session")
def tls_files(tmp_path_factory: pytest.TempPathFactory) -> TlsFiles:
    return make_tls_files(tmp_path_factory.mktemp("tls"))


@pytest.fixture(scope="session")
def tls_server(tls_files: TlsFiles) -> Iterator[ZooKeeperServer]:
    with ZooKeeperServer(tls=tls_files) as server:
        yield server
