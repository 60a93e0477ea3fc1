"""`reconcile monitor CONFIG`: a Nagios check of one host's agent.

Prints at most one line on stdout (Nagios reads stdout, so even a bad
configuration is reported there) and exits 0 OK, 1 WARNING, 2 CRITICAL.
"""

from __future__ import annotations

import argparse
import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from kazoo.exceptions import NoAuthError, NoNodeError

from reconciler import config as configuration
from reconciler.errors import ConfigError
from reconciler.tree import join_path
from reconciler.zk.connect import ZooKeeperUnavailable, connect, denied, settings
from reconciler.zk.fleet import version_key
from reconciler.zk.paths import HOSTS
from reconciler.zk.reader import read_properties

OK, WARNING, CRITICAL = 0, 1, 2
DEFAULT_WARN, DEFAULT_ERROR = 200, 600


def register(commands: Any) -> None:
    monitor = commands.add_parser(
        "monitor",
        help="Nagios check of this host's agent",
        description="Check the agent's status file against ZooKeeper. "
        "Exit status 0 OK, 1 WARNING, 2 CRITICAL.",
    )
    monitor.add_argument("config", metavar="CONFIG", type=Path, help="the agent's configuration")
    monitor.add_argument(
        "-w",
        "--warn",
        metavar="S",
        type=int,
        default=DEFAULT_WARN,
        help=f"warn when deploying longer than S seconds (default {DEFAULT_WARN})",
    )
    monitor.add_argument(
        "-e",
        "--error",
        metavar="S",
        type=int,
        default=DEFAULT_ERROR,
        help=f"critical when deploying longer than S seconds (default {DEFAULT_ERROR})",
    )
    monitor.add_argument(
        "-z",
        "--zookeeper",
        metavar="CONNECTION",
        help="ZooKeeper connection string (default: the configuration's `zookeeper`; "
        "credentials and TLS always come from CONFIG)",
    )
    monitor.set_defaults(handler=run)


@dataclass(frozen=True)
class Status:
    """The status file's line: `<unix time> <pid> <version> <status>`."""

    time: int
    version: str  # as text: the file holds `rundir.version_text(v)`
    text: str


def parse_status(line: str) -> Status:
    """Raises ValueError for a line that is not a status line."""
    when, _pid, rest = line.strip().split(" ", 2)
    if rest.startswith('"'):
        # version_text quoted it (a string with blanks): compare the string.
        quoted, end = json.JSONDecoder().raw_decode(rest)
        version, text = str(quoted), rest[end:].lstrip(" ")
    else:
        version, text = rest.split(" ", 1)
    return Status(int(when), version, text)


def check(
    status: Status,
    host: dict[str, Any],
    cluster: Any,
    now: float,
    warn: int,
    error: int,
) -> tuple[int, str | None]:
    """The table of operations.md from the status file on: exit code and line."""
    if "version" not in host:
        return CRITICAL, "No version information for host"
    if status.text == "error":
        return CRITICAL, f"Error deploying {status.version}"
    if status.text == "done":
        if status.version != version_key(host["version"]):
            return CRITICAL, f"Version mismatch (status: {status.version}, zk: {host['version']})"
        if status.version != version_key(cluster):
            return CRITICAL, f"Version mismatch (status: {status.version}, cluster: {cluster})"
        return OK, None
    age = int(now - status.time)
    for limit, code in ((error, CRITICAL), (warn, WARNING)):
        if age > limit:
            return code, f"Too long deploying {status.version} ({status.text}; {age} > {limit})"
    return OK, status.text


def run(args: argparse.Namespace) -> int:
    code, line = monitor(args.config, args.zookeeper, args.warn, args.error)
    if line is not None:
        print(line)
    return code


def monitor(
    config_path: Path, connection: str | None, warn: int, error: int
) -> tuple[int, str | None]:
    try:
        config = configuration.load(config_path)
    except ConfigError as e:
        return CRITICAL, str(e)
    status_file = config.run_directory / "status"
    try:
        line = status_file.read_text()
    except OSError as e:
        return CRITICAL, str(e)
    try:
        status = parse_status(line)
    except ValueError:
        return CRITICAL, f"Invalid status file {status_file}: {line.strip()!r}"

    try:
        zk = settings(config, connection)
        client = connect(zk)
    except (ZooKeeperUnavailable, ConfigError) as e:
        return CRITICAL, str(e)
    try:
        try:
            host = read_properties(client, join_path(HOSTS, config.host_id))
        except NoNodeError:
            return CRITICAL, "Host not registered"
        try:
            cluster = read_properties(client, HOSTS).get("version")
        except NoNodeError:
            cluster = None
    except NoAuthError as e:
        return CRITICAL, denied(e, zk.connection)
    finally:
        client.stop()
        client.close()
    return check(status, host, cluster, time.time(), warn, error)
