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

from reconciler.zk.reader import read_properties
from reconciler.zk.server import ZooKeeperServer
from reconciler.zk.storage import connect, decode, encode

PROJECT = Path(__file__).resolve().parent.parent

TREE = """
/svc
  /app : z4m
    version = '1.0.0'
    /deploy
      /bench-host
"""


def set_version(client: Any, version: int) -> None:
    properties = read_properties(client, "/hosts")
    properties["version"] = version
    client.set("/hosts", encode(properties))


def agent_latency(connection: str, client: Any, base: Path, bumps: int) -> list[float]:
    (base / "tree.zk").write_text(TREE)
    config = base / "agent.cfg"
    config.write_text(
        "[zkdeployment]\n"
        "host-id = bench-host\nhost-name = bench-host\n"
        "run-directory = run\nroot = root\n"
        f"path = {PROJECT / 'sandbox' / 'bin'}\n"
        f"zookeeper = {connection}\n"
    )
    from reconciler import treefmt
    from reconciler.zk.importer import import_tree

    import_tree(client, treefmt.parse(TREE), "/")
    client.ensure_path("/hosts")
    set_version(client, 0)
    agent = subprocess.Popen(
        [sys.executable, "-m", "reconciler", "--log-json", str(config)],
        stderr=subprocess.PIPE,
        text=True,
    )
    seen: dict[int, float] = {}
    arrived = threading.Condition()

    def read() -> None:
        assert agent.stderr is not None
        for line in agent.stderr:
            try:
                message = json.loads(line)["message"]
            except (ValueError, KeyError):
                continue
            if message.startswith("Deploying version "):
                with arrived:
                    seen[int(message.split()[-1])] = time.perf_counter()
                    arrived.notify_all()
            if message.startswith("Done deploying version "):
                with arrived:
                    seen[-int(message.split()[-1])] = time.perf_counter()
                    arrived.notify_all()

    threading.Thread(target=read, daemon=True).start()
    try:
        with arrived:
            arrived.wait_for(lambda: 0 in seen, timeout=30)
        times = []
        for version in range(1, bumps + 1):
            start = time.perf_counter()
            set_version(client, version)
            with arrived:
                if not arrived.wait_for(lambda v=version: v in seen, timeout=30):
                    raise SystemExit(f"agent did not start version {version}")
                times.append(seen[version] - start)
                # Let the run finish so each bump starts from an idle agent.
                arrived.wait_for(lambda v=version: -v in seen, timeout=30)
        return times
    finally:
        agent.terminate()
        agent.wait(30)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bumps", type=int, default=50)
    args = parser.parse_args()
    with ZooKeeperServer() as server, tempfile.TemporaryDirectory() as tmp:
        client = connect(server.connection)
        watcher = connect(server.connection)
        seen: dict[int, float] = {}
        arrived = threading.Condition()

        def changed(data: bytes | None, stat: Any) -> None:
            version = decode(data).get("version") if data else None
            with arrived:
                if isinstance(version, int):
                    seen[version] = time.perf_counter()
                arrived.notify_all()

        client.ensure_path("/hosts")
        watcher.DataWatch("/hosts", changed)
        baseline = []
        for version in range(10_000, 10_000 + args.bumps):
            start = time.perf_counter()
            set_version(client, version)
            with arrived:
                if not arrived.wait_for(lambda v=version: v in seen, timeout=10):
                    raise SystemExit(f"no watch event for version {version}")
            baseline.append(seen[version] - start)
        watcher.stop()
        watcher.close()

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
