"""A private, throw-away ZooKeeper server for tests, benchmarks and the demo.

It runs the Debian `zookeeper` package's jar on 127.0.0.1 with a temporary
data directory, so nothing outside the process tree is touched. Never used
by the agent in production.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path
from types import TracebackType

JAVA_DIR = Path("/usr/share/java")
MAIN_CLASS = "org.apache.zookeeper.server.quorum.QuorumPeerMain"
# Overrides the jar discovery, e.g. for a ZooKeeper unpacked elsewhere.
CLASSPATH_ENV = "RECONCILER_ZOOKEEPER_CLASSPATH"


class ZooKeeperServerError(Exception):
    """The server could not be found, started or reached."""


def find_java_classpath() -> str:
    """The class path running ZooKeeper: the Debian jar (its manifest names
    its own dependencies) plus an slf4j binding, so start-up errors reach
    the log instead of vanishing."""
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


def four_letter_word(port: int, word: str, timeout: float = 1.0) -> str:
    """Send a ZooKeeper four-letter command (`ruok`, `stat`, ...) and return
    the answer; raises OSError when nobody answers."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        sock.sendall(word.encode("ascii"))
        chunks = []
        while chunk := sock.recv(4096):
            chunks.append(chunk)
    return b"".join(chunks).decode("utf-8", "replace")


class ZooKeeperServer:
    """One standalone ZooKeeper server on 127.0.0.1.

    `start()` returns once the server answers `ruok`; `stop()` ends the
    process but keeps port and data, so a later `start()` is a restart of
    the same server (sessions may survive a short outage, as in
    production); `close()` also removes the temporary directory. As a
    context manager it starts and closes.
    """

    def __init__(
        self,
        port: int | None = None,
        tick_time: int = 500,
        start_timeout: float = 20.0,
        jvm_args: tuple[str, ...] = ("-Xmx256m", "-XX:+UseSerialGC"),
        quorum: tuple[int, tuple[str, ...]] | None = None,
    ) -> None:
        self._auto_port = port is None
        self.port = port or free_port()
        self.tick_time = tick_time
        self.start_timeout = start_timeout
        self.jvm_args = jvm_args
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
                    f"clientPort={self.port}",
                    "clientPortAddress=127.0.0.1",
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
            "-cp",
            find_java_classpath(),
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
        if "Mode: " not in four_letter_word(self.port, "srvr"):
            return False
        return f"dataDir={self.directory / 'data'}/" in four_letter_word(self.port, "conf")

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

    def __enter__(self) -> ZooKeeperServer:
        try:
            self.start()
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()


class ZooKeeperEnsemble:
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

    def __enter__(self) -> ZooKeeperEnsemble:
        try:
            self.start()
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()
