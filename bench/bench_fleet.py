"""Fleet cost per bump: N real agent daemons, then 4N, on one ZooKeeper.

Starts a private ZooKeeper, a tree with one service deployed to every host
(plus `--tree-nodes` filler nodes), and N agent daemons (`python -m
reconciler CONFIG`, each with its own sandbox root). Each bump sets the
cluster version (`/hosts` `version`; the tree is unchanged, but every host
still runs its deploy script, under the service lock) and prints the time
until every host node records it, and the ZooKeeper packets received per
agent for the bump (the server's `mntr`
`zk_packets_received`, less this benchmark's own requests; pings
included). Then 3N more agents start and the bumps are repeated with 4N.
The last lines compare the two: with a cost per host independent of the
fleet, the packet ratio is about 1.

`--deploy` makes each bump a release: the service's version changes too,
and every host runs its deploy script, under the service lock;
`--max-parallel K` sets the service's `max-parallel`.

The agents are the real daemon: its tree from a mirror (`TreeMirror`),
the service lock a `ServiceLock` with the service's `max-parallel`.

    .venv/bin/python bench/bench_fleet.py [--agents 10] [--bumps 5] [--tree-nodes 0]
        [--deploy] [--max-parallel 1]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from kazoo.client import KazooClient

from reconciler.tree import Node
from reconciler.zk.connect import connect
from reconciler.zk.importer import import_tree
from reconciler.zk.persistent_watch import CHANGED, PERSISTENT_RECURSIVE, PersistentWatches
from reconciler.zk.reader import update_properties
from reconciler.zk.server import ZooKeeperServer, four_letter_word
from reconciler.zk.storage import decode

PROJECT = Path(__file__).resolve().parent.parent
# Filler nodes per parent, so that no node has thousands of children.
FILL = 100


def host_id(number: int) -> str:
    return f"h{number:04d}"


def tree(hosts: int, filler: int, max_parallel: int | None) -> Node:
    root = Node()
    app = root.child("svc").child("app")
    app.properties = {"type": "z4m", "version": "1.0.0"}
    if max_parallel is not None:
        app.properties["max-parallel"] = max_parallel
    deploy = app.child("deploy")
    for number in range(hosts):
        deploy.child(host_id(number))
    for number in range(filler):
        root.child("filler").child(f"d{number // FILL:04d}").child(f"n{number:06d}").properties = {
            "i": number
        }
    return root


class HostVersions:
    """Every host node's version, kept current by one persistent recursive
    watch on `/hosts` and one read per change, counted: this benchmark's
    own packets, taken off the server's count."""

    def __init__(self, client: KazooClient) -> None:
        self.client = client
        self.versions: dict[str, Any] = {}
        self.requests = 0
        self.changed = threading.Condition()
        PersistentWatches.for_client(client).add("/hosts", PERSISTENT_RECURSIVE, self._event)
        self.requests += 1

    def _event(self, kind: int, path: str) -> None:
        # kazoo's connection thread: only queue the read.
        if kind != CHANGED or path.count("/") != 2:
            return
        with self.changed:
            self.requests += 1
        self.client.get_async(path).rawlink(lambda result: self._read(path, result))

    def _read(self, path: str, result: Any) -> None:
        try:
            data, _stat = result.get()
        except Exception:
            return
        with self.changed:
            self.versions[path.rsplit("/", 1)[1]] = decode(data).get("version")
            self.changed.notify_all()

    def wait(self, hosts: list[str], version: int, timeout: float) -> bool:
        with self.changed:
            return self.changed.wait_for(
                lambda: all(self.versions.get(h) == version for h in hosts), timeout
            )


class Agent:
    def __init__(self, base: Path, number: int, connection: str) -> None:
        self.id = host_id(number)
        directory = base / self.id
        (directory / "root").mkdir(parents=True)
        config = directory / "agent.cfg"
        config.write_text(
            "[zkdeployment]\n"
            f"host-id = {self.id}\nhost-name = {self.id}\n"
            "run-directory = run\nroot = root\n"
            f"path = {PROJECT / 'sandbox' / 'bin'}\n"
            f"zookeeper = {connection}\n"
        )
        env = dict(os.environ, SANDBOX_JOURNAL=str(directory / "journal"))
        self.log = open(directory / "agent.log", "w")  # noqa: SIM115  # closed in stop()
        command = [sys.executable, "-m", "reconciler", "--log-json", str(config)]
        self.process = subprocess.Popen(
            command,
            stdin=subprocess.DEVNULL,
            stdout=self.log,
            stderr=self.log,
            env=env,
            cwd=PROJECT,
        )

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        self.log.close()


def packets(server: ZooKeeperServer) -> int:
    for line in four_letter_word(server.port, "mntr").splitlines():
        name, _, value = line.partition("\t")
        if name == "zk_packets_received":
            return int(value)
    raise SystemExit("the server's mntr has no zk_packets_received")


def bumps(
    server: ZooKeeperServer,
    client: KazooClient,
    watch: HostVersions,
    hosts: list[str],
    first: int,
    args: argparse.Namespace,
) -> list[tuple[float, float]]:
    """(seconds to converge, packets per agent) for each bump."""
    figures = []
    for version in range(first, first + args.bumps):
        before, mine = packets(server), watch.requests
        start = time.perf_counter()
        # Each update_properties: one read and one write.
        if args.deploy:
            update_properties(client, "/svc/app", version=f"1.0.{version}")
            mine -= 2
        update_properties(client, "/hosts", version=version)
        if not watch.wait(hosts, version, timeout=300):
            lagging = [h for h in hosts if watch.versions.get(h) != version]
            raise SystemExit(
                f"version {version} not recorded by {len(lagging)} hosts: {lagging[:5]}"
            )
        seconds = time.perf_counter() - start
        time.sleep(args.settle)  # the runs' last writes, before counting
        agents = packets(server) - before - (watch.requests - mine) - 2
        figures.append((seconds, agents / len(hosts)))
        print(
            f"  N={len(hosts)} bump {version}: all hosts recorded it in {seconds:.2f} s, "
            f"{agents / len(hosts):.1f} packets per agent",
            flush=True,
        )
    return figures


def start_agents(base: Path, numbers: range, connection: str, agents: list[Agent]) -> None:
    for number in numbers:
        agents.append(Agent(base, number, connection))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--agents", type=int, default=10, help="N (then 4N)")
    parser.add_argument("--bumps", type=int, default=5, help="bumps for N and for 4N")
    parser.add_argument("--tree-nodes", type=int, default=0, help="filler nodes in the tree")
    parser.add_argument("--settle", type=float, default=1.0, help="seconds after each bump")
    parser.add_argument("--deploy", action="store_true", help="every bump deploys")
    parser.add_argument("--max-parallel", type=int, help="the service's max-parallel")
    args = parser.parse_args()
    n = args.agents
    agents: list[Agent] = []
    results: dict[int, list[tuple[float, float]]] = {}
    with ZooKeeperServer() as server, tempfile.TemporaryDirectory() as tmp:
        client = connect(server.connection)
        try:
            import_tree(client, tree(4 * n, args.tree_nodes, args.max_parallel), "/")
            client.ensure_path("/hosts")
            update_properties(client, "/hosts", version=0)
            watch = HostVersions(client)
            version = 1
            for phase, numbers in ((n, range(n)), (4 * n, range(n, 4 * n))):
                started = time.perf_counter()
                start_agents(Path(tmp), numbers, server.connection, agents)
                hosts = [a.id for a in agents]
                # Each host's first run deploys the service, one host at a
                # time (its lock), and records the version.
                if not watch.wait(hosts, version - 1, timeout=60 + 5 * len(numbers)):
                    raise SystemExit(f"{phase} agents did not all start; logs in {tmp}")
                print(
                    f"N={phase}: {len(numbers)} agents started and deployed in "
                    f"{time.perf_counter() - started:.1f} s",
                    flush=True,
                )
                results[phase] = bumps(server, client, watch, hosts, version, args)
                version += args.bumps
        finally:
            for agent in agents:
                agent.stop()
            client.stop()
            client.close()

    print(
        f"tree: {args.tree_nodes} filler nodes; "
        f"{'deploying' if args.deploy else 'no-op'} bumps; max-parallel {args.max_parallel}; "
        f"load average {os.getloadavg()[0]:.1f}"
    )
    medians = {}
    for phase, figures in results.items():
        seconds = statistics.median(f[0] for f in figures)
        slowest = max(f[0] for f in figures)
        per_agent = statistics.median(f[1] for f in figures)
        medians[phase] = (seconds, per_agent)
        print(
            f"N={phase}: median convergence {seconds:.2f} s (max {slowest:.2f}), "
            f"median packets per agent per bump {per_agent:.1f}"
        )
    (s1, p1), (s4, p4) = medians[n], medians[4 * n]
    print(f"ratio 4N/N: packets per agent {p4 / p1:.2f}x, convergence {s4 / s1:.2f}x")


if __name__ == "__main__":
    main()
