"""ZooKeeper security against a real server: digest and SASL credentials,
the ACL policy written by sync and tree import, and the operator's error
lines (README: Securing ZooKeeper)."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from kazoo.client import KazooClient
from kazoo.exceptions import NoAuthError
from kazoo.security import ACL, OPEN_ACL_UNSAFE, Id, Permissions, make_digest_acl_credential
from loguru import logger

from reconciler.cli import main
from reconciler.config import load_zookeeper
from reconciler.zk.connect import Credentials, Settings, connect, settings
from reconciler.zk.reader import read_properties
from reconciler.zk.rolelock import RoleLock
from reconciler.zk.server import ZooKeeperServer
from reconciler.zk.storage import encode
from tests.support.git import Repo
from tests.support.secure_zookeeper import SASL_USERS, write_auth_file
from tests.support.trees import CLUSTER_V1

# Commands run in-process here point loguru at the captured stderr.
pytestmark = pytest.mark.usefixtures("restore_logging")

AGENT_ID = "digest:" + make_digest_acl_credential("agent", "agent-pw")


def write_config(path: Path, **keys: object) -> Path:
    """An INI file; keyword `zookeeper_auth_file` is key `zookeeper-auth-file`."""
    lines = ["[zkdeployment]", *(f"{k.replace('_', '-')} = {v}" for k, v in keys.items())]
    path.write_text("\n".join(lines) + "\n")
    return path


@dataclass
class Cluster:
    connection: str
    operator_config: Path
    agent_auth: Path
    directory: Path

    def client(self, credentials: Credentials | None = None) -> KazooClient:
        return connect(Settings(self.connection, 10.0, credentials))

    def operator(self) -> KazooClient:
        return connect(settings(load_zookeeper(self.operator_config)))

    def agent(self) -> KazooClient:
        return self.client(Credentials("agent", "agent-pw", self.agent_auth))


@pytest.fixture
def cluster(tmp_path: Path, secure_chroot: str) -> Cluster:
    operator_auth = write_auth_file(tmp_path, "operator", "operator:operator-pw")
    config = write_config(
        tmp_path / "operator.cfg",
        zookeeper=secure_chroot,
        zookeeper_auth_file=operator_auth,
        zookeeper_acl_agents=AGENT_ID,
    )
    agent_auth = write_auth_file(tmp_path, "agent", "agent:agent-pw")
    return Cluster(secure_chroot, config, agent_auth, tmp_path)


@pytest.fixture
def synced(cluster: Cluster, capsys: pytest.CaptureFixture[str]) -> Cluster:
    """The cluster after one sync with the operator's credentials."""
    repo = Repo(cluster.directory / "repo")
    repo.commit(cluster_zk=CLUSTER_V1)
    assert main(["sync", str(repo.path), "--config", str(cluster.operator_config)]) == 0
    capsys.readouterr()
    return cluster


@contextmanager
def closing(client: KazooClient) -> Iterator[KazooClient]:
    try:
        yield client
    finally:
        client.stop()
        client.close()


def acl_check(cluster: Cluster, capsys: pytest.CaptureFixture[str]) -> tuple[int, list[str]]:
    code = main(["tree", "acl", "--check", "--config", str(cluster.operator_config)])
    return code, capsys.readouterr().out.splitlines()


def test_sync_writes_the_policy(synced: Cluster, capsys: pytest.CaptureFixture[str]) -> None:
    operator_id = Id("digest", make_digest_acl_credential("operator", "operator-pw"))
    agent_id = Id("digest", AGENT_ID.split(":", 1)[1])
    with closing(synced.operator()) as client:
        assert read_properties(client, "/hosts")["version"]  # the revision
        acl, _stat = client.get_acls("/cust/someapp/cms")
        assert set(acl) == {ACL(Permissions.ALL, operator_id), ACL(Permissions.READ, agent_id)}
        hosts, _stat = client.get_acls("/hosts")
        agent_rights = Permissions.READ | Permissions.CREATE | Permissions.WRITE
        assert ACL(agent_rights, agent_id) in hosts
    assert acl_check(synced, capsys) == (0, [])


def test_config_from_the_environment_and_z_precedence(
    synced: Cluster, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("RECONCILER_CONFIG", str(synced.operator_config))
    assert main(["hosts", "--json"]) == 0
    # `-z` replaces the address only: the credentials still come from the file.
    assert main(["hosts", "--json", "-z", synced.connection]) == 0
    capsys.readouterr()
    # `--config` wins over the environment.
    other = write_config(synced.directory / "nobody.cfg", zookeeper=synced.connection)
    assert main(["hosts", "--config", str(other)]) == 2
    assert "denied access (NoAuth)" in capsys.readouterr().err


def stranger_actions(client: KazooClient) -> dict[str, Callable[[], Any]]:
    return {
        "read the tree": lambda: client.get("/cust/someapp/cms"),
        "list the root": lambda: client.get_children("/"),
        "read the cluster version": lambda: client.get("/hosts"),
        "rewrite a node": lambda: client.set("/cust/someapp/cms", encode({"version": "6"})),
        "create a node": lambda: client.create("/evil"),
        "delete a node": lambda: client.delete("/cust/someapp/cms/deploy/h1"),
        "register a host": lambda: client.create("/hosts/evil", ephemeral=True),
        "halt the cluster": lambda: client.set("/hosts", encode({"version": None})),
        "take a lock": lambda: client.Lock("/agent-locks/svc", "evil").acquire(timeout=5),
        "take a role lock": lambda: RoleLock(client, "web", "evil", "evil").acquire(),
    }


@pytest.mark.parametrize("password", [None, "wrong"], ids=["no credentials", "wrong password"])
def test_strangers_can_read_and_change_nothing(synced: Cluster, password: str | None) -> None:
    credentials = Credentials("agent", password, synced.agent_auth) if password else None
    with closing(synced.client(credentials)) as client:
        for what, action in stranger_actions(client).items():
            with pytest.raises(NoAuthError):
                action()
                pytest.fail(f"a stranger could {what}")


def test_the_agents_identity_does_its_job_only(
    synced: Cluster, capsys: pytest.CaptureFixture[str]
) -> None:
    with closing(synced.agent()) as agent:
        assert agent.get_children("/cust/someapp") == ["cms", "monitor"]
        agent.create("/hosts/h1", encode({"name": "h1", "version": None}), ephemeral=True)
        agent.set("/hosts/h1", encode({"name": "h1", "version": 1}))
        lock = agent.Lock("/agent-locks/svc", "h1")
        assert lock.acquire(timeout=5)
        lock.release()
        with RoleLock(agent, "web", "h1", "h1"):
            pass
        forbidden = {
            "rewrite a node": lambda: agent.set("/cust/someapp/cms", encode({})),
            "create a node": lambda: agent.create("/cust/someapp/evil"),
            "delete a node": lambda: agent.delete("/cust/someapp/cms/deploy/h1"),
            "create at the root": lambda: agent.create("/evil"),
            "change an ACL": lambda: agent.set_acls("/cust", OPEN_ACL_UNSAFE),
            "delete a role lock": lambda: agent.delete("/role-locks/web"),
            "take the sync's lock": lambda: agent.create("/hosts-lock/x"),
            "change the policy": lambda: agent.set("/acl-policy", b"{}"),
        }
        for what, action in forbidden.items():
            with pytest.raises(NoAuthError):
                action()
                pytest.fail(f"an agent could {what}")
        # The operators still see the agent's host node (the creator ACL).
        code = main(["hosts", "--config", str(synced.operator_config)])
        assert code == 0
        assert "h1" in capsys.readouterr().out
        # Halting is the agent's right.
        agent.set("/hosts", encode({"version": None}))
    # Nodes the agent created are its own: the check does not report them.
    assert acl_check(synced, capsys) == (0, [])


def test_a_tree_imported_before_gets_the_policy_on_the_next_sync(
    cluster: Cluster, capsys: pytest.CaptureFixture[str]
) -> None:
    tree = cluster.directory / "old.zk"
    tree.write_text(CLUSTER_V1)
    # Before credentials: open nodes.
    assert main(["tree", "import", str(tree), "-z", cluster.connection]) == 0
    with closing(cluster.client()) as agent_before:
        # An agent's lock node and a role lock request, made open.
        agent_before.create("/agent-locks/svc", makepath=True)
        agent_before.create("/role-locks/web/lr-0000000000", encode({"requestor": "h1"}))
    code, lines = acl_check(cluster, capsys)
    assert code == 1
    assert "ACL differs from the policy: /cust/someapp/cms" in lines
    assert "ACL differs from the policy: /agent-locks/svc" in lines
    assert "ACL differs from the policy: /role-locks/web/lr-0000000000" in lines
    repo = Repo(cluster.directory / "repo")
    repo.commit(cluster_zk=CLUSTER_V1)
    assert main(["sync", str(repo.path), "--config", str(cluster.operator_config)]) == 0
    assert acl_check(cluster, capsys) == (0, [])
    with closing(cluster.client()) as client:
        for action in (
            lambda: client.get("/cust"),
            lambda: client.create("/agent-locks/svc/x"),
            lambda: client.delete("/role-locks/web/lr-0000000000"),
        ):
            with pytest.raises(NoAuthError):
                action()
    # The agents keep using them.
    with closing(cluster.agent()) as agent:
        lock = agent.Lock("/agent-locks/svc", "h1")
        assert lock.acquire(timeout=5)
        lock.release()
        agent.delete("/role-locks/web/lr-0000000000")


def test_tree_import_with_credentials_and_acl_repair(
    cluster: Cluster, capsys: pytest.CaptureFixture[str]
) -> None:
    tree = cluster.directory / "tree.zk"
    tree.write_text(CLUSTER_V1)
    config = str(cluster.operator_config)
    assert main(["tree", "import", str(tree), "--config", config]) == 0
    capsys.readouterr()
    assert acl_check(cluster, capsys) == (0, [])
    with closing(cluster.operator()) as operator:
        operator.set_acls("/cust/someapp", [ACL(Permissions.ALL, Id("world", "anyone"))])
    assert acl_check(cluster, capsys) == (1, ["ACL differs from the policy: /cust/someapp"])
    assert main(["tree", "acl", "--config", config]) == 0
    assert capsys.readouterr().out.splitlines() == ["ACL set: /cust/someapp"]
    assert acl_check(cluster, capsys) == (0, [])


def test_an_auth_file_others_can_read_is_refused(
    tmp_path: Path, secure_chroot: str, capsys: pytest.CaptureFixture[str]
) -> None:
    auth = write_auth_file(tmp_path, "operator", "operator:operator-pw", mode=0o644)
    config = write_config(tmp_path / "op.cfg", zookeeper=secure_chroot, zookeeper_auth_file=auth)
    assert main(["hosts", "--config", str(config)]) == 2
    err = capsys.readouterr().err
    assert err == (
        f"zookeeper-auth-file {auth} is accessible by group or others (mode 0644): "
        f"run `chmod 600 {auth}`\n"
    )
    # The agent refuses it too, before connecting.
    write_config(
        tmp_path / "agent.cfg",
        host_id="h1",
        run_directory="run",
        zookeeper=secure_chroot,
        zookeeper_auth_file=auth,
    )
    assert main([str(tmp_path / "agent.cfg"), "--once"]) == 2
    assert "chmod 600" in capsys.readouterr().err


def test_errors_name_the_server_and_the_fix(
    synced: Cluster, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # No credentials at all: the first read is refused.
    assert main(["hosts", "-z", synced.connection]) == 2
    assert capsys.readouterr().err == (
        f"ZooKeeper at {synced.connection} denied access (NoAuth): this identity may not do "
        "that; check zookeeper-auth-file and the ACL policy (reconcile tree acl --check)\n"
    )
    # A wrong SASL password is rejected at once, and never shown.
    auth = write_auth_file(tmp_path, "sasl", "operator:not-the-password")
    config = write_config(
        tmp_path / "sasl.cfg",
        zookeeper=synced.connection,
        zookeeper_auth_file=auth,
        zookeeper_sasl_mechanism="DIGEST-MD5",
    )
    started = time.monotonic()
    assert main(["hosts", "--config", str(config)]) == 2
    assert time.monotonic() - started < 5
    err = capsys.readouterr().err
    assert err == (
        f"ZooKeeper at {synced.connection} rejected the SASL credentials: check the user "
        f"and password in {auth} against the server's JAAS file\n"
    )


def test_an_agent_with_a_strangers_identity_stops_with_one_line(
    synced: Cluster, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    auth = write_auth_file(tmp_path, "wrong", "agent:wrong-pw")
    config = write_config(
        tmp_path / "agent.cfg",
        host_id="h1",
        run_directory="run",
        zookeeper=synced.connection,
        zookeeper_auth_file=auth,
    )
    assert main([str(config), "--once"]) == 2
    assert capsys.readouterr().err == (
        f"ZooKeeper at {synced.connection} denied access (NoAuth): this identity may not do "
        "that; check zookeeper-auth-file and the ACL policy (reconcile tree acl --check)\n"
    )


@pytest.mark.parametrize(
    ("keys", "error"),
    [
        (
            {"zookeeper_sasl_mechanism": "DIGEST-MD5"},
            "zookeeper-sasl-mechanism DIGEST-MD5 needs a zookeeper-auth-file",
        ),
        (
            {"zookeeper_sasl_mechanism": "GSSAPI"},
            "zookeeper-sasl-mechanism GSSAPI needs zookeeper-sasl-principal",
        ),
        (
            {"zookeeper_acl_agents": "agent"},
            "zookeeper-acl-agents: 'agent' is not scheme:id (scheme one of digest, sasl, x509, "
            "ip, world, super)",
        ),
    ],
)
def test_incomplete_security_settings_are_refused(
    cluster: Cluster,
    keys: dict[str, str],
    error: str,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    auth = {"zookeeper_auth_file": cluster.agent_auth} if "acl" in str(keys) else {}
    config = write_config(tmp_path / "bad.cfg", zookeeper=cluster.connection, **auth, **keys)
    assert main(["tree", "acl", "--check", "--config", str(config)]) == 2
    assert capsys.readouterr().err == error + "\n"


def test_gssapi_is_handed_to_kazoo(tmp_path: Path) -> None:
    config = write_config(
        tmp_path / "krb.cfg",
        zookeeper_sasl_mechanism="GSSAPI",
        zookeeper_sasl_principal="agent@EXAMPLE.COM",
    )
    zk = settings(load_zookeeper(config))
    assert zk.identity() == Id("sasl", "agent@EXAMPLE.COM")
    assert zk.client_arguments() == {
        "sasl_options": {
            "mechanism": "GSSAPI",
            "service": "zookeeper",
            "principal": "agent@EXAMPLE.COM",
        }
    }


def test_sasl_digest_md5_identities(
    tmp_path: Path, secure_chroot: str, capsys: pytest.CaptureFixture[str]
) -> None:
    def sasl_config(user: str, **keys: object) -> Path:
        auth = write_auth_file(tmp_path, user, f"{user}:{SASL_USERS[user]}")
        return write_config(
            tmp_path / f"{user}.cfg",
            zookeeper=secure_chroot,
            zookeeper_auth_file=auth,
            zookeeper_sasl_mechanism="DIGEST-MD5",
            **keys,
        )

    operator = sasl_config("operator", zookeeper_acl_agents="sasl:agent")
    tree = tmp_path / "tree.zk"
    tree.write_text(CLUSTER_V1)
    assert main(["tree", "import", str(tree), "--config", str(operator)]) == 0
    with closing(connect(settings(load_zookeeper(sasl_config("agent"))))) as agent:
        acl, _stat = agent.get_acls("/cust")
        assert {(a.id.scheme, a.id.id, a.perms) for a in acl} == {
            ("sasl", "operator", Permissions.ALL),
            ("sasl", "agent", Permissions.READ),
        }
        with pytest.raises(NoAuthError):
            agent.set("/cust", b"{}")


def test_a_lost_connection_is_told_and_retried() -> None:
    messages: list[str] = []
    sink = logger.add(lambda m: messages.append(m.record["message"]), level="INFO")
    with ZooKeeperServer() as server, closing(connect(server.connection)) as client:
        server.stop()
        wait_until(lambda: f"Lost the connection to ZooKeeper at {server.connection}: "
                   "retrying" in messages)  # fmt: skip
        server.start()
        wait_until(lambda: f"Connected to ZooKeeper at {server.connection} again" in messages)
        assert client.exists("/zookeeper") is not None
    logger.remove(sink)


def wait_until(condition: Callable[[], bool], timeout: float = 15) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)
