"""Latency from a `/hosts` version change to the agent's `Deploying version`.

Starts a private ZooKeeper and the real agent daemon on a sandbox host, bumps
the cluster version N times (default 50) and times each bump until the
agent logs `Deploying version <v>`. The baseline, measured in the same run
on the same server, is a bare kazoo watch in this process seeing the same
change: the floor any agent could reach. Prints medians and the ratio.

    .venv/bin/python bench/bench_latency.py [--bumps 50]
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from reconciler import treefmt
from reconciler.zk.connect import connect
from reconciler.zk.importer import import_tree
from reconciler.zk.reader import update_properties
from reconciler.zk.server import ZooKeeperServer
from reconciler.zk.storage import decode

PROJECT = Path(__file__).resolve().parent.parent

TREE = """
/svc
  /app : z4m
    version = '1.0.0'
    /deploy
      /bench-host
"""


class Arrivals:
    """When each awaited event (a version seen) arrived, for timing bumps."""

    def __init__(self) -> None:
        self.seen: dict[int, float] = {}
        self.arrived = threading.Condition()

    def mark(self, key: int) -> None:
        with self.arrived:
            self.seen[key] = time.perf_counter()
            self.arrived.notify_all()

    def wait(self, key: int, timeout: float = 30) -> float:
        with self.arrived:
            if not self.arrived.wait_for(lambda: key in self.seen, timeout=timeout):
                raise SystemExit(f"nothing seen for version {abs(key)}")
            return self.seen[key]

    def time_bumps(self, client: Any, versions: range, settle: bool = False) -> list[float]:
        """Bump the cluster version to each of `versions`; the time until
        each arrived. With `settle`, also wait for the run to finish (key
        `-version`), so each bump starts from an idle agent."""
        times = []
        for version in versions:
            start = time.perf_counter()
            update_properties(client, "/hosts", version=version)
            times.append(self.wait(version) - start)
            if settle:
                self.wait(-version)
        return times


def baseline_latency(connection: str, client: Any, bumps: int) -> list[float]:
    """A bare DataWatch on another client: the floor any agent could reach."""
    watcher = connect(connection)
    arrivals = Arrivals()

    def changed(data: bytes | None, stat: Any) -> None:
        version = decode(data).get("version") if data else None
        if isinstance(version, int):
            arrivals.mark(version)

    watcher.DataWatch("/hosts", changed)
    try:
        return arrivals.time_bumps(client, range(10_000, 10_000 + bumps))
    finally:
        watcher.stop()
        watcher.close()


def agent_latency(connection: str, client: Any, base: Path, bumps: int) -> list[float]:
    config = base / "agent.cfg"
    config.write_text(
        "[zkdeployment]\n"
        "host-id = bench-host\nhost-name = bench-host\n"
        "run-directory = run\nroot = root\n"
        f"path = {PROJECT / 'sandbox' / 'bin'}\n"
        f"zookeeper = {connection}\n"
    )
    import_tree(client, treefmt.parse(TREE), "/")
    update_properties(client, "/hosts", version=0)
    agent = subprocess.Popen(
        [sys.executable, "-m", "reconciler", "--log-json", str(config)],
        stderr=subprocess.PIPE,
        text=True,
    )
    arrivals = Arrivals()

    def read() -> None:
        assert agent.stderr is not None
        for line in agent.stderr:
            try:
                message = json.loads(line)["message"]
            except (ValueError, KeyError):
                continue
            if message.startswith("Deploying version "):
                arrivals.mark(int(message.split()[-1]))
            elif message.startswith("Done deploying version "):
                arrivals.mark(-int(message.split()[-1]))

    threading.Thread(target=read, daemon=True).start()
    try:
        arrivals.wait(0)
        return arrivals.time_bumps(client, range(1, bumps + 1), settle=True)
    finally:
        agent.terminate()
        agent.wait(30)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bumps", type=int, default=50)
    args = parser.parse_args()
    with ZooKeeperServer() as server, tempfile.TemporaryDirectory() as tmp:
        client = connect(server.connection)
        client.ensure_path("/hosts")
        baseline = baseline_latency(server.connection, client, args.bumps)
        agent = agent_latency(server.connection, client, Path(tmp), args.bumps)
        client.stop()
        client.close()

    base_ms = statistics.median(baseline) * 1000
    agent_ms = statistics.median(agent) * 1000
    print(f"bumps: {args.bumps}")
    print(f"baseline (bare kazoo watch), median: {base_ms:.2f} ms")
    print(f"agent (bump -> 'Deploying version'), median: {agent_ms:.2f} ms")
    print(f"agent p90: {statistics.quantiles(agent, n=10)[-1] * 1000:.2f} ms")
    print(f"ratio agent/baseline: {agent_ms / base_ms:.1f}x")


if __name__ == "__main__":
    main()
