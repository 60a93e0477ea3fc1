"""Connecting to ZooKeeper: the one place where a client is built.

Every command (the agent, `sync`, `tree`, `hosts`, `monitor`) describes the
connection with a `Settings` (address, time-out, credentials, TLS), built
from a configuration by `settings()`, and gets a started client from
`connect()`. Failures to connect are told as one line naming the server and
what to fix; the password never appears in a message or a log.
"""

from __future__ import annotations

import logging
import select
import socket
import ssl
import stat
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from kazoo.client import KazooClient, KazooState
from kazoo.exceptions import AuthFailedError, NoAuthError, NoNodeError
from kazoo.handlers.threading import SequentialThreadingHandler
from kazoo.security import Id, make_digest_acl_credential
from loguru import logger

from reconciler.config import ZooKeeperOptions
from reconciler.errors import ConfigError
from reconciler.zk.acl import creator_acl

DEFAULT_TIMEOUT = 10.0


class ZooKeeperUnavailable(Exception):
    """No ZooKeeper session could be established."""


class ZooKeeperUnreachable(ZooKeeperUnavailable):
    """No server answered at all (down, restarting, cut off): unlike
    rejected credentials or a TLS mistake, this may mend by itself."""


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


class _KazooErrors(logging.Handler):
    """kazoo's own log, errors only, into ours. Its warnings retell each
    failed connection attempt; `connect` and `_ConnectionReporter` say
    what matters once."""

    def emit(self, record: logging.LogRecord) -> None:
        logger.opt(exception=record.exc_info).error(f"kazoo: {record.getMessage()}")


KAZOO_LOG = logging.getLogger("reconciler.kazoo")
KAZOO_LOG.setLevel(logging.ERROR)
KAZOO_LOG.addHandler(_KazooErrors())
KAZOO_LOG.propagate = False


@dataclass(frozen=True)
class Credentials:
    """`user:password` from `zookeeper-auth-file`, sent as ZooKeeper's
    `digest` scheme, or with SASL DIGEST-MD5 when `sasl` says so."""

    username: str
    password: str = field(repr=False)
    source: Path
    sasl: bool = False

    def identity(self) -> Id:
        """The id ZooKeeper gives a session holding these credentials (what
        an ACL names)."""
        if self.sasl:
            return Id("sasl", self.username)
        return Id("digest", make_digest_acl_credential(self.username, self.password))


@dataclass(frozen=True)
class Tls:
    ca: Path | None = None
    cert: Path | None = None
    key: Path | None = None
    verify_hostname: bool = True

    def context(self) -> ssl.SSLContext:
        """The context kazoo builds from the same settings (for diagnosis)."""
        context = ssl.create_default_context(cafile=str(self.ca) if self.ca else None)
        context.check_hostname = self.verify_hostname
        if self.cert and self.key:
            context.load_cert_chain(str(self.cert), str(self.key))
        return context


@dataclass(frozen=True)
class Settings:
    connection: str
    timeout: float = DEFAULT_TIMEOUT
    credentials: Credentials | None = None
    # GSSAPI (Kerberos): the client principal; the ticket comes from the host.
    gssapi_principal: str | None = None
    tls: Tls | None = None

    def identity(self) -> Id | None:
        """Who ZooKeeper takes this client for (None: anyone)."""
        if self.credentials is not None:
            return self.credentials.identity()
        if self.gssapi_principal is not None:
            return Id("sasl", self.gssapi_principal)
        return None

    def client_arguments(self) -> dict[str, Any]:
        arguments: dict[str, Any] = {}
        credentials = self.credentials
        if credentials is not None and credentials.sasl:
            arguments["sasl_options"] = {
                "mechanism": "DIGEST-MD5",
                "username": credentials.username,
                "password": credentials.password,
            }
        elif credentials is not None:
            arguments["auth_data"] = [("digest", f"{credentials.username}:{credentials.password}")]
        elif self.gssapi_principal is not None:
            arguments["sasl_options"] = {
                "mechanism": "GSSAPI",
                "service": "zookeeper",
                "principal": self.gssapi_principal,
            }
        if self.tls is not None:
            arguments.update(
                use_ssl=True,
                ca=str(self.tls.ca) if self.tls.ca else None,
                certfile=str(self.tls.cert) if self.tls.cert else None,
                keyfile=str(self.tls.key) if self.tls.key else None,
                verify_certs=True,
                check_hostname=self.tls.verify_hostname,
            )
        return arguments


def read_auth_file(path: Path) -> tuple[str, str]:
    """`user:password` from the first line of `path`, which nobody but its
    owner may read."""
    try:
        mode = path.stat().st_mode
        text = path.read_text()
    except OSError as e:
        raise ConfigError(f"zookeeper-auth-file: can't read {path}: {e.strerror}") from None
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise ConfigError(
            f"zookeeper-auth-file {path} is accessible by group or others "
            f"(mode {stat.S_IMODE(mode):04o}): run `chmod 600 {path}`"
        )
    user, colon, password = (text.splitlines() or [""])[0].strip().partition(":")
    if not (user and colon and password):
        # Never quote the line: it may be a password.
        raise ConfigError(f"zookeeper-auth-file {path}: the first line must be user:password")
    return user, password


def _tls(options: ZooKeeperOptions) -> Tls | None:
    if not options.zookeeper_tls:
        return None
    tls = Tls(
        options.zookeeper_tls_ca,
        options.zookeeper_tls_cert,
        options.zookeeper_tls_key,
        options.zookeeper_tls_verify_hostname,
    )
    if (tls.cert is None) != (tls.key is None):
        raise ConfigError("zookeeper-tls-cert and zookeeper-tls-key go together: set both or none")
    for key, path in (("ca", tls.ca), ("cert", tls.cert), ("key", tls.key)):
        if path is not None and not path.is_file():
            raise ConfigError(f"zookeeper-tls-{key}: no such file {path}")
    try:
        tls.context()
    except (ssl.SSLError, OSError) as e:
        raise ConfigError(f"zookeeper-tls: can't use the CA, certificate or key: {e}") from None
    return tls


def settings(options: ZooKeeperOptions, connection: str | None = None) -> Settings:
    """The connection `options` describe; `connection` (`-z`) replaces the
    address only. Raises ConfigError for a bad auth file or TLS file."""
    credentials = None
    mechanism = options.zookeeper_sasl_mechanism
    if options.zookeeper_auth_file is not None:
        user, password = read_auth_file(options.zookeeper_auth_file)
        credentials = Credentials(
            user, password, options.zookeeper_auth_file, sasl=mechanism == "DIGEST-MD5"
        )
    elif mechanism == "DIGEST-MD5":
        raise ConfigError("zookeeper-sasl-mechanism DIGEST-MD5 needs a zookeeper-auth-file")
    principal = None
    if mechanism == "GSSAPI":
        if not options.zookeeper_sasl_principal:
            raise ConfigError("zookeeper-sasl-mechanism GSSAPI needs zookeeper-sasl-principal")
        if credentials is not None:
            raise ConfigError("zookeeper-auth-file and GSSAPI exclude each other")
        principal = options.zookeeper_sasl_principal
    return Settings(
        connection or options.zookeeper,
        options.zookeeper_session_timeout,
        credentials,
        principal,
        _tls(options),
    )


def connect(
    target: Settings | str, timeout: float | None = None, readable: str | None = None
) -> KazooClient:
    """A started client for `target` (Settings, or just a connection string
    `host:port[,host:port...][/chroot]`).

    Raises ZooKeeperUnavailable, with one line saying why, when no session
    is established within the time-out (rejected credentials fail at once);
    the caller owns the client (`stop()` then `close()`). Connection losses
    later on are logged; kazoo reconnects by itself. With credentials, the
    nodes the client creates get `acl.creator_acl`. `readable`: a node
    whose children this identity must be allowed to list (missing is fine).
    """
    if isinstance(target, str):
        target = Settings(target, DEFAULT_TIMEOUT if timeout is None else timeout)
    elif timeout is not None:
        target = replace(target, timeout=timeout)
    client = KazooClient(
        hosts=target.connection,
        timeout=target.timeout,
        handler=SelectHandler(),
        logger=KAZOO_LOG,
        **target.client_arguments(),
    )
    auth_failed = False
    if client.start_async().wait(target.timeout):
        # kazoo sends the credentials right after the session starts, and
        # only then a request: its answer tells whether they were taken.
        try:
            client.exists_async("/").get(timeout=target.timeout)
        except AuthFailedError:
            auth_failed = True
        except Exception:
            pass  # lost again already: `connected` says so
    if auth_failed or not client.connected:
        client.stop()
        client.close()
        message, unreachable = _why(target, auth_failed)
        raise (ZooKeeperUnreachable if unreachable else ZooKeeperUnavailable)(message)
    if readable is not None:
        try:
            client.get_children(readable)
        except NoNodeError:
            pass
        except NoAuthError as e:
            client.stop()
            client.close()
            raise ZooKeeperUnavailable(denied(e, target.connection)) from None
    identity = target.identity()
    if identity is not None:
        # kazoo's recipes (Lock) create nodes with the client's default ACL.
        client.default_acl = creator_acl(client, identity)
    client.add_listener(_ConnectionReporter(target.connection))
    return client


class _ConnectionReporter:
    """Says when the connection is lost and back: kazoo keeps retrying."""

    def __init__(self, connection: str) -> None:
        self.connection = connection
        self.lost = False

    def __call__(self, state: str) -> None:
        if state == KazooState.SUSPENDED:
            self.lost = True
            logger.warning(f"Lost the connection to ZooKeeper at {self.connection}: retrying")
        elif state == KazooState.CONNECTED and self.lost:
            self.lost = False
            logger.info(f"Connected to ZooKeeper at {self.connection} again")


def _why(target: Settings, auth_failed: bool) -> tuple[str, bool]:
    """Why no session came, in one line, and whether it may mend by itself
    (no server answered: not a mistake in the settings)."""
    where = target.connection
    if auth_failed:
        source = target.credentials.source if target.credentials else "the Kerberos ticket"
        return (
            f"ZooKeeper at {where} rejected the SASL credentials: check the user and "
            f"password in {source} against the server's JAAS file"
        ), False
    if target.tls is not None:
        problem = _tls_problem(target)
        if problem is not None:
            return problem, False
    message = f"Could not connect to ZooKeeper at {where} within {target.timeout:g} s"
    if target.tls is None and _answers(target.connection):
        hint = " (a server listens: if it takes TLS only, set zookeeper-tls = true)"
        return message + hint, False
    return message, True


def _answers(connection: str) -> bool:
    for address in _servers(connection):
        try:
            socket.create_connection(address, timeout=1).close()
            return True
        except OSError:
            continue
    return False


def _servers(connection: str) -> list[tuple[str, int]]:
    hosts = connection.split("/", 1)[0]
    servers = []
    for entry in hosts.split(","):
        host, _colon, port = entry.strip().rpartition(":")
        if host and port.isdigit():
            servers.append((host.strip("[]"), int(port)))
    return servers


def _tls_problem(target: Settings) -> str | None:
    """Why a TLS handshake with the first server that answers fails, as an
    operator would fix it; None when it succeeds or nobody answers."""
    assert target.tls is not None
    for host, port in _servers(target.connection):
        try:
            with (
                socket.create_connection((host, port), timeout=2) as raw,
                target.tls.context().wrap_socket(raw, server_hostname=host) as tls,
            ):
                tls.settimeout(1)
                # TLS 1.3: a refused client certificate shows on the first read.
                tls.recv(1)
        except ssl.SSLCertVerificationError as e:
            message = e.verify_message or str(e)
            if "mismatch" in message:
                return (
                    f"TLS with ZooKeeper at {host}:{port}: its certificate does not name "
                    f"{host} ({message}): connect by a name the certificate holds"
                )
            return (
                f"TLS with ZooKeeper at {host}:{port}: its certificate is not trusted "
                f"({message}): set zookeeper-tls-ca to the CA that signed it"
            )
        except ssl.SSLError as e:
            reason = e.reason or str(e)
            if "CERTIFICATE" in reason.upper():
                return (
                    f"TLS with ZooKeeper at {host}:{port}: the server refused our client "
                    f"certificate ({reason}): check zookeeper-tls-cert and zookeeper-tls-key"
                )
            return (
                f"TLS handshake with ZooKeeper at {host}:{port} failed ({reason}): "
                "is that port the server's secureClientPort?"
            )
        except TimeoutError:
            return None  # the handshake worked; the server just said nothing
        except OSError:
            continue
        return None
    return None


def denied(error: BaseException, server: str) -> str:
    """One line for a NoAuth answer (kazoo's NoAuthError) from `server`."""
    notes = getattr(error, "__notes__", [])
    where = f", {notes[0]}" if notes else ""
    return (
        f"ZooKeeper at {server} denied access (NoAuth{where}): this identity may not do "
        "that; check zookeeper-auth-file and the ACL policy (reconcile tree acl --check)"
    )
