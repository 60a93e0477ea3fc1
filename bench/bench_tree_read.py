"""Benchmark: pipelined `read_tree` against a naive blocking walk.

    .venv/bin/python bench/bench_tree_read.py [--nodes 20000] [--repeat 3]

Starts a private ZooKeeper, imports a tree shaped like a deployment
cluster (services, each with a deploy node and many deploy targets), then
times both walks on it, alternating, best of `--repeat`. Exits 1 when the
speed-up is below `--min-speedup` (5) or the walks disagree.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

# Run as a script from a checkout, the package may not be installed.
sys.path.insert(1, str(Path(__file__).resolve().parent.parent))

from kazoo.client import KazooClient  # noqa: E402

from reconciler.tree import Node, join_path  # noqa: E402
from reconciler.zk.connect import connect  # noqa: E402
from reconciler.zk.importer import import_tree  # noqa: E402
from reconciler.zk.reader import read_tree  # noqa: E402
from reconciler.zk.server import ZooKeeperServer  # noqa: E402
from reconciler.zk.storage import decode  # noqa: E402

NODES_PER_SERVICE = 100  # service + deploy + config + 97 targets


def cluster_tree(nodes: int) -> Node:
    """About `nodes` nodes: /cust/svcNNN services with properties, links
    and deploy targets named like host ids."""
    root = Node()
    cust = root.child("cust")
    for s in range(max(1, nodes // NODES_PER_SERVICE)):
        service = cust.child(f"svc{s:04}")
        service.properties = {
            "type": "z4m",
            "version": f"1.{s % 7}.{s % 13}",
            "rpm": f"svc{s:04}-app",
            "threads": 8,
            "db ->": "/databases/main",
        }
        service.child("config").properties = {"log_level": "info", "hosts": ["a", "b", "c"]}
        deploy = service.child("deploy")
        for t in range(NODES_PER_SERVICE - 3):
            deploy.child(f"{0x420000000000 + s * 1000 + t:012x}").properties = {"n": t % 4}
    return root


def naive_read(client: Any, path: str = "/") -> Node:
    """One blocking get_children and get per node, depth first."""
    data, stat = client.get(path)
    node = Node(decode(data), ephemeral=stat.ephemeralOwner != 0)
    for name in sorted(client.get_children(path)):
        if path == "/" and name == "zookeeper":
            continue
        node.children[name] = naive_read(client, join_path(path, name))
    return node


def timed(function: Callable[[], Node]) -> tuple[float, Node]:
    started = time.perf_counter()
    result = function()
    return time.perf_counter() - started, result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--nodes", type=int, default=20000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--min-speedup", type=float, default=5.0)
    parser.add_argument(
        "--kazoo-handler",
        action="store_true",
        help="use kazoo's default handler instead of reconciler's (see connect.SelectHandler)",
    )
    args = parser.parse_args(argv)

    tree = cluster_tree(args.nodes)
    count = sum(1 for _ in tree.walk()) - 1
    with ZooKeeperServer() as server:
        if args.kazoo_handler:
            client = KazooClient(server.connection)
            client.start()
        else:
            client = connect(server.connection)
        try:
            started = time.perf_counter()
            import_tree(client, tree)
            print(
                f"nodes: {count}  (imported, pipelined, in {time.perf_counter() - started:.2f} s)"
            )
            fast, slow = float("inf"), float("inf")
            for _ in range(args.repeat):
                seconds, fast_tree = timed(lambda: read_tree(client))
                fast = min(fast, seconds)
                seconds, slow_tree = timed(lambda: naive_read(client))
                slow = min(slow, seconds)
                if fast_tree != tree or slow_tree != tree:
                    print("error: a walk did not read the tree that was written")
                    return 1
        finally:
            client.stop()
            client.close()
    ratio = slow / fast
    print(f"read_tree (pipelined): {fast:.2f} s  ({count / fast:,.0f} nodes/s)")
    print(f"naive serial walk:     {slow:.2f} s  ({count / slow:,.0f} nodes/s)")
    print(f"speed-up: {ratio:.1f}x")
    if ratio < args.min_speedup:
        print(f"error: speed-up below {args.min_speedup:g}x")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
