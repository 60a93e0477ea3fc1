"""The agent over TLS only (no plain port), with digest credentials and the
ACL policy: the seed scenario (after.txt, versions 2-5) as without them;
TLS mistakes told in one line."""

from __future__ import annotations

import socket
import ssl
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from kazoo.client import KazooClient
from kazoo.exceptions import NoAuthError
from kazoo.security import OPEN_ACL_UNSAFE, Id, make_digest_acl_credential

from reconciler.cli import main
from reconciler.zk import acl
from reconciler.zk.connect import Credentials, Settings, Tls, ZooKeeperUnavailable, connect
from reconciler.zk.reader import read_properties
from reconciler.zk.server import TlsFiles, ZooKeeperServer, make_tls_files
from tests.support.agent_process import AgentProcess
from tests.support.secure_zookeeper import write_auth_file
from tests.support.seed import import_fixture, seed_host, set_cluster_version
from tests.support.seed_transcript import TRANSCRIPT

HOST = "/hosts/424242424242"


@pytest.fixture
def tls_chroot(tls_server: ZooKeeperServer, tls_files: TlsFiles) -> str:
    """A fresh, open chroot on the TLS-only server."""
    chroot = "/t" + uuid.uuid4().hex
    client = connect(Settings(tls_server.connection, 10.0, tls=Tls(tls_files.ca)))
    try:
        client.create(chroot, acl=OPEN_ACL_UNSAFE)
    finally:
        client.stop()
        client.close()
    return tls_server.connection + chroot


@pytest.fixture
def operator(tmp_path: Path, tls_chroot: str, tls_files: TlsFiles) -> Iterator[KazooClient]:
    """The operator's client, the policy (agents: `agent`) written first."""
    credentials = Credentials("operator", "operator-pw", tmp_path / "operator.auth")
    settings = Settings(tls_chroot, 10.0, credentials, tls=Tls(tls_files.ca))
    agent = Id("digest", make_digest_acl_credential("agent", "agent-pw"))
    policy = acl.AclPolicy(credentials.identity(), (agent,))
    client = connect(settings)
    acl.apply(client, policy)
    yield client
    try:
        # Everything the operator wrote since follows the policy.
        assert acl.differences(client, policy) == []
    finally:
        client.stop()
        client.close()


def test_seed_scenario_over_tls_only_with_auth(
    tmp_path: Path, operator: KazooClient, tls_chroot: str, tls_files: TlsFiles
) -> None:
    zk = operator
    host = seed_host(tmp_path, zk)
    host.extra.update(
        {
            "zookeeper-auth-file": str(write_auth_file(tmp_path, "agent", "agent:agent-pw")),
            "zookeeper-tls": "true",
            "zookeeper-tls-ca": str(tls_files.ca),
            "zookeeper-tls-cert": str(tls_files.client_cert),
            "zookeeper-tls-key": str(tls_files.client_key),
        }
    )
    agent = AgentProcess(host, tls_chroot)
    try:
        agent.wait_for_message("INFO Agent starting, cluster 1, host 1")
        for version, wait_for, count in (
            (2, "INFO echo after", 1),
            (3, "CRITICAL FAILED deploying version 3", 1),
            (4, "INFO echo after", 2),
        ):
            import_fixture(zk, f"seed-v{version}")
            mark = len(agent.records)
            set_cluster_version(zk, version)
            agent.wait_for_message(wait_for, count=count)
            assert agent.messages(mark) == TRANSCRIPT[version]
            if version == 3:
                # The agent's identity may halt the cluster.
                assert read_properties(zk, "/hosts")["version"] is None
        assert read_properties(zk, HOST) == {"name": "host42", "version": 4}
    finally:
        assert agent.stop() == 0

    host.after = "echo 666"
    agent = AgentProcess(host, tls_chroot)
    try:
        agent.wait_for_message("INFO Agent starting, cluster 4, host 4")
        mark = len(agent.records)
        set_cluster_version(zk, 5)
        agent.wait_for_message("WARNING Not deploying because cluster version is None")
        assert agent.messages(mark) == TRANSCRIPT[5]
        assert read_properties(zk, HOST)["error"] == "Command failed: echo 666"
    finally:
        assert agent.stop() == 0

    # Over TLS but without credentials: nothing to see.
    stranger = connect(Settings(tls_chroot, 10.0, tls=Tls(tls_files.ca)))
    try:
        with pytest.raises(NoAuthError):
            stranger.get("/cust")
    finally:
        stranger.stop()
        stranger.close()


def write_config(path: Path, connection: str, **keys: object) -> Path:
    lines = ["[zkdeployment]", f"zookeeper = {connection}", "zookeeper-session-timeout = 1"]
    lines += [f"{k.replace('_', '-')} = {v}" for k, v in keys.items()]
    path.write_text("\n".join(lines) + "\n")
    return path


def test_tls_mistakes_name_the_server_and_the_fix(
    tmp_path: Path,
    tls_server: ZooKeeperServer,
    tls_files: TlsFiles,
    capsys: pytest.CaptureFixture[str],
) -> None:
    where = tls_server.connection

    def hosts(**keys: object) -> str:
        config = write_config(tmp_path / "op.cfg", where, **keys)
        assert main(["hosts", "--config", str(config)]) == 2
        return capsys.readouterr().err

    assert hosts(zookeeper_tls="true") == (
        f"TLS with ZooKeeper at {where}: its certificate is not trusted (unable to get "
        "local issuer certificate): set zookeeper-tls-ca to the CA that signed it\n"
    )
    assert hosts(zookeeper_tls="true", zookeeper_tls_ca=tmp_path / "nope.pem") == (
        f"zookeeper-tls-ca: no such file {tmp_path / 'nope.pem'}\n"
    )
    assert hosts(zookeeper_tls="true", zookeeper_tls_ca=tls_files.ca, zookeeper_tls_cert="c") == (
        "zookeeper-tls-cert and zookeeper-tls-key go together: set both or none\n"
    )
    started = time.monotonic()
    assert hosts() == (
        f"Could not connect to ZooKeeper at {where} within 1 s (a server listens: if it "
        "takes TLS only, set zookeeper-tls = true)\n"
    )
    assert time.monotonic() - started < 4


def test_a_certificate_for_another_name_is_told(tmp_path: Path) -> None:
    """Hostname verification is on by default: a server whose certificate
    names another host is refused, and the operator is told so."""
    files = make_tls_files(tmp_path / "tls", names="DNS:elsewhere.example")
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(tmp_path / "tls" / "server.pem", tmp_path / "tls" / "server.key")
    with socket.create_server(("127.0.0.1", 0)) as listener:
        port = listener.getsockname()[1]
        threading.Thread(target=_handshakes, args=(listener, context), daemon=True).start()
        with pytest.raises(ZooKeeperUnavailable) as refused:
            connect(Settings(f"127.0.0.1:{port}", 1.0, tls=Tls(files.ca)))
    assert str(refused.value) == (
        f"TLS with ZooKeeper at 127.0.0.1:{port}: its certificate does not name 127.0.0.1 "
        "(IP address mismatch, certificate is not valid for '127.0.0.1'.): connect by a "
        "name the certificate holds"
    )


def _handshakes(listener: socket.socket, context: ssl.SSLContext) -> None:
    """A TLS server that is not ZooKeeper: enough for a handshake."""
    while True:
        try:
            connection, _address = listener.accept()
        except OSError:
            return  # closed: the test is over
        try:
            with context.wrap_socket(connection, server_side=True):
                pass
        except (ssl.SSLError, OSError):
            pass  # the client refused our certificate
