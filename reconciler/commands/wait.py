"""`reconcile hosts --wait [--timeout S]`: follow a rollout until it ends.

For a pipeline after `reconcile sync`: prints one line per change of the
fleet (the cluster version, a host converging, registering, leaving or
failing) and exits
- 0 when every registered host has converged to the cluster version,
- 1 when the cluster is halted (the failing hosts and their errors on
  stderr),
- 3 when `--timeout` seconds pass first (the hosts still behind on stderr).

A paused or never-synced cluster is waited on. A change of the cluster
version while waiting is followed: the rollout to wait for is the current one.

Event-driven: a DataWatch on `/hosts` (the cluster version), a ChildrenWatch
on it (agents registering and leaving) and a DataWatch per host node. The
callbacks only fill a cache and wake the main thread, which compares the
whole fleet with the last one it printed: events that arrive together are
reported once, and none is lost.
"""

from __future__ import annotations

import argparse
import sys
import threading
import time
from collections.abc import Iterator
from typing import Any, TextIO

from kazoo.client import KazooClient
from kazoo.protocol.states import ZnodeStat

from reconciler.commands.sync import positive_seconds
from reconciler.commands.tree import connected
from reconciler.lint import plural
from reconciler.tree import join_path
from reconciler.zk.fleet import Fleet, HostRecord, host_record
from reconciler.zk.paths import HOSTS
from reconciler.zk.storage import decode

EXIT_CONVERGED, EXIT_HALTED, EXIT_TIMEOUT = 0, 1, 3
# An agent halts the cluster first, then sets its host's `error`: how long
# to wait for the error before reporting a halt without one.
HALT_GRACE = 2.0


def add_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--wait",
        action="store_true",
        help="follow the rollout: exit 0 when every host has converged, 1 when the cluster "
        "halts, 3 on timeout",
    )
    parser.add_argument(
        "--timeout",
        metavar="S",
        type=positive_seconds,
        help="with --wait: give up after S seconds (exit 3; implies --wait; default: no limit)",
    )


def run(args: argparse.Namespace) -> int:
    with connected(args) as client:
        return wait(client, args.timeout)


class FleetWatch:
    """The fleet as ZooKeeper's watches last reported it."""

    def __init__(self, client: KazooClient) -> None:
        self.changed = threading.Event()
        self._lock = threading.Lock()
        self._cluster: bytes | None = None
        self._children: set[str] = set()
        self._hosts: dict[str, HostRecord] = {}
        self._watched: set[str] = set()
        self._client = client
        client.DataWatch(HOSTS, self._on_cluster)
        client.ChildrenWatch(HOSTS, self._on_children)

    def _on_cluster(self, data: bytes | None, _stat: ZnodeStat | None) -> None:
        with self._lock:
            self._cluster = data
        self.changed.set()

    def _on_children(self, children: list[str]) -> None:
        with self._lock:
            self._children = set(children)
            new = self._children - self._watched
            self._watched &= self._children
            self._watched |= new
        for host_id in sorted(new):
            self._client.DataWatch(join_path(HOSTS, host_id), self._host_callback(host_id))
        self.changed.set()

    def _host_callback(self, host_id: str) -> Any:
        def on_host(data: bytes | None, stat: ZnodeStat | None) -> bool:
            with self._lock:
                if data is None or stat is None:
                    self._hosts.pop(host_id, None)
                else:
                    self._hosts[host_id] = host_record(host_id, data, stat)
            self.changed.set()
            # A deleted node ends this watch; a new registration gets another.
            return data is not None

        return on_host

    def fleet(self) -> Fleet:
        with self._lock:
            properties = decode(self._cluster)
            hosts = tuple(self._hosts[h] for h in sorted(self._children) if h in self._hosts)
        return Fleet(True, properties.get("version"), properties, hosts)


def wait(
    client: KazooClient, timeout: float | None, out: TextIO | None = None, err: TextIO | None = None
) -> int:
    """Follow the fleet until it converges, halts or `timeout` seconds pass."""
    out = sys.stdout if out is None else out
    err = sys.stderr if err is None else err
    if client.exists(HOSTS) is None:
        print("No /hosts node: nothing synced and no agent registered yet", file=err)
        return EXIT_HALTED
    watch = FleetWatch(client)
    start = time.monotonic()
    deadline = None if timeout is None else start + timeout
    halted_at: float | None = None
    last: Fleet | None = None
    while True:
        watch.changed.clear()
        fleet = watch.fleet()
        for line in changes(last, fleet):
            print(line, file=out, flush=True)
        last = fleet
        now = time.monotonic()
        if fleet.halted:
            halted_at = now if halted_at is None else halted_at
            failed = [host for host in fleet.hosts if host.error]
            if failed or now - halted_at >= HALT_GRACE:
                for line in halt_report(failed):
                    print(line, file=err, flush=True)
                return EXIT_HALTED
        elif done(fleet):
            print(f"All {plural(len(fleet.hosts), 'host')} converged to {fleet.version}", file=out)
            return EXIT_CONVERGED
        else:
            halted_at = None
        if deadline is not None and now >= deadline:
            print(timeout_report(fleet, now - start), file=err, flush=True)
            return EXIT_TIMEOUT
        grace_end = None if halted_at is None else halted_at + HALT_GRACE
        wake = [t for t in (deadline, grace_end) if t is not None]
        watch.changed.wait(max(min(wake) - now, 0.0) if wake else None)


def done(fleet: Fleet) -> bool:
    return not fleet.initial and fleet.version is not False and not fleet.unconverged()


def progress(fleet: Fleet) -> str:
    converged = len(fleet.hosts) - len(fleet.unconverged())
    return f"{converged} of {plural(len(fleet.hosts), 'host')} converged"


def label(host: HostRecord) -> str:
    return host.id if host.name in (None, host.id) else f"{host.id} ({host.name})"


def one_line(text: str) -> str:
    return " ".join(text.splitlines())


def cluster_line(fleet: Fleet) -> str | None:
    if fleet.initial:
        return "Cluster never synced: waiting for a version"
    if fleet.version is False:
        return "Cluster paused (version False): waiting"
    if fleet.version is None:
        return None  # the halt report says it
    return f"Cluster version {fleet.version}: {progress(fleet)}"


def host_state(fleet: Fleet, host: HostRecord) -> str:
    if host.error:
        return f"{label(host)} failed: {one_line(host.error)}"
    if fleet.converged(host):
        return f"{label(host)} converged to {fleet.version}: {progress(fleet)}"
    if fleet.initial or fleet.version in (None, False):
        return f"{label(host)} at {host.version}"
    return f"{label(host)} deploying {fleet.version} (has {host.version})"


def changes(last: Fleet | None, fleet: Fleet) -> Iterator[str]:
    """One line per change from `last` (None: nothing printed yet) to `fleet`."""
    new_version = last is None or last.properties.get("version", ...) != fleet.properties.get(
        "version", ...
    )
    if new_version:
        line = cluster_line(fleet)
        if line is not None:
            yield line
    before = {} if last is None else {host.id: host for host in last.hosts}
    now = {host.id: host for host in fleet.hosts}
    for host_id in sorted(before.keys() - now.keys()):
        yield f"{label(before[host_id])} unregistered: {progress(fleet)}"
    for host in fleet.hosts:
        previous = before.get(host.id)
        if previous is None and last is not None:
            yield f"{label(host)} registered, at {host.version}: {progress(fleet)}"
        elif previous is None or new_version:
            # At the start and on a new version: who is not there yet, and why.
            if not fleet.converged(host) or host.error:
                yield host_state(fleet, host)
        elif (previous.version, previous.error) != (host.version, host.error):
            yield host_state(fleet, host)


def halt_report(failed: list[HostRecord]) -> list[str]:
    if not failed:
        return ["Cluster halted (version None), no host reports an error"]
    return [
        f"Cluster halted: {label(host)} failed: {one_line(host.error or '')}" for host in failed
    ]


def timeout_report(fleet: Fleet, elapsed: float) -> str:
    behind = ", ".join(f"{label(host)} at {host.version}" for host in fleet.unconverged())
    return f"Timed out after {elapsed:.0f} s: {progress(fleet)} to {fleet.version}" + (
        f"; not converged: {behind}" if behind else ""
    )
