"""A private, throw-away ZooKeeper server for tests, benchmarks and the demo.

It runs the Debian `zookeeper` package's jar on 127.0.0.1 with a temporary
data directory, so nothing outside the process tree is touched. Never used
by the agent in production.
"""

from __future__ import annotations

import os
import shutil
import socket
import ssl
import subprocess
import tempfile
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Self

from kazoo.security import make_digest_acl_credential

JAVA_DIR = Path("/usr/share/java")
MAIN_CLASS = "org.apache.zookeeper.server.quorum.QuorumPeerMain"
# Overrides the jar discovery, e.g. for a ZooKeeper unpacked elsewhere.
CLASSPATH_ENV = "RECONCILER_ZOOKEEPER_CLASSPATH"
# The Netty server (needed for TLS) uses these beyond what the manifest names.
NETTY_JARS = ("netty-codec.jar", "netty-resolver.jar", "netty-transport-native-unix-common.jar")


class ZooKeeperServerError(Exception):
    """The server could not be found, started or reached."""


def find_java_classpath(netty: bool = False) -> str:
    """The class path running ZooKeeper: the Debian jar (its manifest names
    its own dependencies) plus an slf4j binding, so start-up errors reach
    the log instead of vanishing; with `netty`, what its TLS server needs."""
    override = os.environ.get(CLASSPATH_ENV)
    if override:
        return override
    jar = JAVA_DIR / "zookeeper.jar"
    if not jar.is_file():
        raise ZooKeeperServerError(
            f"ZooKeeper is not installed ({jar} is missing): run "
            f"`apt-get install -y zookeeper` (or set {CLASSPATH_ENV})"
        )
    entries = [str(jar)]
    if netty:
        entries += [str(JAVA_DIR / name) for name in NETTY_JARS]
    for binding in ("slf4j-simple.jar", "slf4j-nop.jar"):
        if (JAVA_DIR / binding).is_file():
            entries.append(str(JAVA_DIR / binding))
            break
    return ":".join(entries)


def find_java() -> str:
    java = shutil.which("java")
    if java is None:
        raise ZooKeeperServerError(
            "No `java` on PATH: install a JRE (`apt-get install -y zookeeper` pulls one in)"
        )
    return java


def free_port() -> int:
    """A port nobody listens on right now (the kernel picks it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def four_letter_word(
    port: int, word: str, timeout: float = 1.0, tls: ssl.SSLContext | None = None
) -> str:
    """Send a ZooKeeper four-letter command (`ruok`, `stat`, ...) and return
    the answer, over TLS with a `tls` context; raises OSError when nobody
    answers."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as raw:
        sock = tls.wrap_socket(raw, server_hostname="127.0.0.1") if tls else raw
        sock.sendall(word.encode("ascii"))
        chunks = []
        while chunk := sock.recv(4096):
            chunks.append(chunk)
    return b"".join(chunks).decode("utf-8", "replace")


@dataclass(frozen=True)
class TlsFiles:
    """A throw-away CA, the server's key store and trust store (PKCS12,
    for `secureClientPort`), and a client certificate with its key (PEM)."""

    ca: Path
    keystore: Path
    truststore: Path
    password: str
    client_cert: Path
    client_key: Path

    def context(self) -> ssl.SSLContext:
        return ssl.create_default_context(cafile=str(self.ca))


def _run(*argv: str) -> None:
    result = subprocess.run(argv, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise ZooKeeperServerError(f"{argv[0]} failed: {result.stderr.strip()}")


def make_tls_files(
    directory: Path, password: str = "changeit", names: str = "IP:127.0.0.1,DNS:localhost"
) -> TlsFiles:
    """Make a CA and certificates with openssl, and the server's stores with
    keytool. The server's certificate names `names` (subjectAltName)."""
    directory.mkdir(parents=True, exist_ok=True)
    ca, ca_key = directory / "ca.pem", directory / "ca.key"
    ec = ("-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes")
    _run(
        "openssl",
        "req",
        "-x509",
        *ec,
        "-keyout",
        str(ca_key),
        "-out",
        str(ca),
        "-days",
        "2",
        "-subj",
        "/CN=reconciler test CA",
    )
    extensions = {"server": f"subjectAltName={names}", "client": None}
    for name, extension in extensions.items():
        key, csr, cert = (directory / f"{name}.{ext}" for ext in ("key", "csr", "pem"))
        _run("openssl", "req", *ec, "-keyout", str(key), "-out", str(csr), "-subj", f"/CN={name}")
        extfile = directory / f"{name}.ext"
        extfile.write_text((extension or "basicConstraints=CA:FALSE") + "\n")
        _run(
            "openssl",
            "x509",
            "-req",
            "-in",
            str(csr),
            "-CA",
            str(ca),
            "-CAkey",
            str(ca_key),
            "-CAcreateserial",
            "-out",
            str(cert),
            "-days",
            "2",
            "-extfile",
            str(extfile),
        )
    keystore, truststore = directory / "server.p12", directory / "trust.p12"
    _run(
        "openssl",
        "pkcs12",
        "-export",
        "-in",
        str(directory / "server.pem"),
        "-inkey",
        str(directory / "server.key"),
        "-out",
        str(keystore),
        "-passout",
        f"pass:{password}",
    )
    _run(
        "keytool",
        "-importcert",
        "-noprompt",
        "-alias",
        "ca",
        "-file",
        str(ca),
        "-keystore",
        str(truststore),
        "-storetype",
        "PKCS12",
        "-storepass",
        password,
    )
    return TlsFiles(
        ca, keystore, truststore, password, directory / "client.pem", directory / "client.key"
    )


class Started:
    """A context manager: `start()` on entering (closing whatever started
    when it fails), `close()` on leaving."""

    def start(self) -> None:
        raise NotImplementedError

    def close(self) -> None:
        raise NotImplementedError

    def __enter__(self) -> Self:
        try:
            self.start()
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


class ZooKeeperServer(Started):
    """One standalone ZooKeeper server on 127.0.0.1.

    `start()` returns once the server answers `ruok`; `stop()` ends the
    process but keeps port and data, so a later `start()` is a restart of
    the same server (sessions may survive a short outage, as in
    production); `close()` also removes the temporary directory. As a
    context manager it starts and closes.

    For the security tests: `superuser` (user, password) may do anything
    whatever the ACLs; `sasl_users` (user -> password) can log in with SASL
    DIGEST-MD5 (a JAAS file); `tls` serves on a `secureClientPort` only
    (Netty), `port` then being that port: no plain port at all.
    """

    def __init__(
        self,
        port: int | None = None,
        tick_time: int = 500,
        start_timeout: float = 20.0,
        jvm_args: tuple[str, ...] = ("-Xmx256m", "-XX:+UseSerialGC"),
        superuser: tuple[str, str] | None = None,
        sasl_users: Mapping[str, str] | None = None,
        tls: TlsFiles | None = None,
        quorum: tuple[int, tuple[str, ...]] | None = None,
    ) -> None:
        self._auto_port = port is None
        self.port = port or free_port()
        self.tick_time = tick_time
        self.start_timeout = start_timeout
        self.jvm_args = jvm_args
        self.superuser = superuser
        self.sasl_users = dict(sasl_users or {})
        self.tls = tls
        # In an ensemble: this server's id and the `server.N=...` lines.
        self.quorum = quorum
        self.directory = Path(tempfile.mkdtemp(prefix="reconciler-zk-"))
        self.log_path = self.directory / "server.log"
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def connection(self) -> str:
        """The kazoo connection string, e.g. `127.0.0.1:40123`."""
        return f"127.0.0.1:{self.port}"

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    def _write_config(self) -> Path:
        data_dir = self.directory / "data"
        data_dir.mkdir(exist_ok=True)
        config = self.directory / "zoo.cfg"
        config.write_text(
            "\n".join(
                [
                    f"tickTime={self.tick_time}",
                    f"dataDir={data_dir}",
                    *self._listen_lines(),
                    # The admin server would take port 8080 on every instance.
                    "admin.enableServer=false",
                    "4lw.commands.whitelist=*",
                    # Tests open many clients from one address; the default
                    # limit is 60.
                    "maxClientCnxns=0",
                    # A throw-away server: no fsync per write, and 1 MB log
                    # files instead of 64 MB pre-allocated ones.
                    "forceSync=no",
                    "preAllocSize=1024",
                    *self._quorum_config(data_dir),
                    "",
                ]
            )
        )
        return config

    def _listen_lines(self) -> list[str]:
        lines = [f"clientPort={self.port}", "clientPortAddress=127.0.0.1"]
        if self.tls is not None:
            tls = self.tls
            lines = [
                f"secureClientPort={self.port}",
                "secureClientPortAddress=127.0.0.1",
                "serverCnxnFactory=org.apache.zookeeper.server.NettyServerCnxnFactory",
                f"ssl.keyStore.location={tls.keystore}",
                f"ssl.keyStore.password={tls.password}",
                "ssl.keyStore.type=PKCS12",
                f"ssl.trustStore.location={tls.truststore}",
                f"ssl.trustStore.password={tls.password}",
                "ssl.trustStore.type=PKCS12",
                # A client certificate is checked when sent, not required.
                "ssl.clientAuth=want",
            ]
        if self.sasl_users:
            lines.append(
                "authProvider.sasl=org.apache.zookeeper.server.auth.SASLAuthenticationProvider"
            )
        return lines

    def _security_properties(self) -> list[str]:
        properties = []
        if self.superuser is not None:
            digest = make_digest_acl_credential(*self.superuser)
            properties.append(f"-Dzookeeper.DigestAuthenticationProvider.superDigest={digest}")
        if self.sasl_users:
            jaas = self.directory / "jaas.conf"
            users = "".join(f'\n    user_{u}="{p}"' for u, p in self.sasl_users.items())
            jaas.write_text(
                "Server {\n    org.apache.zookeeper.server.auth.DigestLoginModule required"
                f"{users};\n}};\n"
            )
            properties.append(f"-Djava.security.auth.login.config={jaas}")
        return properties
    def _quorum_config(self, data_dir: Path) -> list[str]:
        if self.quorum is None:
            return []
        myid, servers = self.quorum
        (data_dir / "myid").write_text(f"{myid}\n")
        return ["initLimit=10", "syncLimit=5", *servers]

    def start(self) -> None:
        """Start the server; returns once it accepts sessions."""
        if self.running:
            return
        for _attempt in range(3):
            self._spawn()
            problem = self._wait_until_ready()
            if problem is None:
                return
            self.stop()
            # A port picked by `free_port` may be taken again before Java
            # binds it; only then is another port worth a try.
            if not self._auto_port or "Address already in use" not in self.log_tail():
                break
            self.port = free_port()
        raise self._failed(problem)

    def _failed(self, problem: str | None) -> ZooKeeperServerError:
        return ZooKeeperServerError(
            f"ZooKeeper on port {self.port} {problem}; its log ({self.log_path}):\n"
            + self.log_tail()
        )

    def _spawn(self) -> None:
        command = [
            find_java(),
            *self.jvm_args,
            *self._security_properties(),
            "-cp",
            find_java_classpath(netty=self.tls is not None),
            # slf4j-simple: warnings and errors only, to keep the log readable.
            "-Dorg.slf4j.simpleLogger.defaultLogLevel=warn",
            MAIN_CLASS,
            str(self._write_config()),
        ]
        with open(self.log_path, "ab") as log:
            self._process = subprocess.Popen(
                command, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT
            )

    def _wait_until_ready(self) -> str | None:
        """None once the server serves, else what went wrong."""
        deadline = time.monotonic() + self.start_timeout
        while True:
            assert self._process is not None
            if self._process.poll() is not None:
                return f"exited with status {self._process.returncode}"
            try:
                if self._serving():
                    return None
            except OSError:
                pass  # not listening yet
            if time.monotonic() > deadline:
                return f"did not serve within {self.start_timeout:g} s"
            time.sleep(0.05)

    def _serving(self) -> bool:
        # `ruok` answers `imok` as soon as the port is open, but a client
        # connecting then is dropped; `srvr` names a mode only once sessions
        # are accepted. `conf` proves the answer comes from this server and
        # not from another one that already held the port.
        tls = self.tls.context() if self.tls else None
        if "Mode: " not in four_letter_word(self.port, "srvr", tls=tls):
            return False
        conf = four_letter_word(self.port, "conf", tls=tls)
        return f"dataDir={self.directory / 'data'}/" in conf

    def log_tail(self, lines: int = 40) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return "(no log)"
        return "\n".join(text.splitlines()[-lines:]) or "(empty log)"

    def mode(self) -> str | None:
        """`leader`, `follower` or `standalone` (`srvr`'s `Mode:`); None
        when not serving."""
        try:
            answer = four_letter_word(self.port, "srvr")
        except OSError:
            return None
        for line in answer.splitlines():
            if line.startswith("Mode: "):
                return line[len("Mode: ") :].strip()
        return None

    def kill(self) -> None:
        """SIGKILL the server, as a crashed machine would stop."""
        process, self._process = self._process, None
        if process is not None and process.poll() is None:
            process.kill()
            process.wait()

    def stop(self) -> None:
        """End the server process (TERM, then KILL after 5 s)."""
        process, self._process = self._process, None
        if process is None or process.poll() is not None:
            return
        process.terminate()
        try:
            process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()

    def close(self) -> None:
        """Stop the server and remove its data."""
        self.stop()
        shutil.rmtree(self.directory, ignore_errors=True)


class ZooKeeperEnsemble(Started):
    """Three (or `size`) ZooKeeper servers on 127.0.0.1 forming one quorum,
    for failover tests. `start()` returns once every server serves (about
    1-2 s); `connection` names all of them, so a client moves to another
    server when one dies. A context manager, like `ZooKeeperServer`."""

    def __init__(self, size: int = 3, tick_time: int = 500, start_timeout: float = 30.0) -> None:
        peers = [(free_port(), free_port()) for _ in range(size)]
        lines = tuple(
            f"server.{i}=127.0.0.1:{peer}:{election}"
            for i, (peer, election) in enumerate(peers, start=1)
        )
        self.servers = [
            ZooKeeperServer(tick_time=tick_time, start_timeout=start_timeout, quorum=(i, lines))
            for i in range(1, size + 1)
        ]

    @property
    def connection(self) -> str:
        return ",".join(server.connection for server in self.servers)

    def start(self) -> None:
        """Start every server not running; returns once all serve. No
        quorum forms until most of them run, so all are spawned first."""
        waiting = [server for server in self.servers if not server.running]
        for server in waiting:
            server._spawn()
        for server in waiting:
            problem = server._wait_until_ready()
            if problem is not None:
                raise server._failed(problem)

    def leader(self) -> ZooKeeperServer:
        """The current leader; ZooKeeperServerError when none is elected."""
        for server in self.servers:
            if server.running and server.mode() == "leader":
                return server
        raise ZooKeeperServerError("no ZooKeeper server is the leader")

    def close(self) -> None:
        for server in self.servers:
            server.close()
