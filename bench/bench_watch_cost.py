"""Server-side cost of following a tree: kazoo's TreeCache against the mirror.

Starts a private ZooKeeper with a generated tree (`--nodes`, default
20,000), follows it from one client with kazoo's `TreeCache` (a data and a
child watch per node) and from another with `reconciler.zk.mirror`
(persistent watches), and prints, for each, the start-up time and the
watches the server holds for it (`wchs`). A fleet multiplies the watches
by its number of hosts.

    .venv/bin/python bench/bench_watch_cost.py [--nodes 20000]
"""

from __future__ import annotations

import argparse
import re
import threading
import time

from kazoo.recipe.cache import TreeCache, TreeEvent

from reconciler.tree import Node
from reconciler.zk.connect import connect
from reconciler.zk.importer import import_tree
from reconciler.zk.mirror import TreeMirror
from reconciler.zk.server import ZooKeeperServer, four_letter_word

PER_PARENT = 100


def watches(server: ZooKeeperServer) -> int:
    match = re.search(r"Total watches:(\d+)", four_letter_word(server.port, "wchs"))
    return int(match.group(1)) if match else 0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--nodes", type=int, default=20_000)
    args = parser.parse_args()
    root = Node()
    for number in range(args.nodes):
        parent = root.child("tree").child(f"d{number // PER_PARENT:04d}")
        parent.child(f"n{number:06d}").properties = {"i": number}
    with ZooKeeperServer(jvm_args=("-Xmx1g", "-XX:+UseSerialGC")) as server:
        writer = connect(server.connection)
        import_tree(writer, root, "/")
        base = watches(server)

        cache_client = connect(server.connection)
        ready = threading.Event()
        cache = TreeCache(cache_client, "/tree")

        def initialized(event: TreeEvent) -> None:
            if event.event_type == TreeEvent.INITIALIZED:
                ready.set()

        cache.listen(initialized)
        started = time.perf_counter()
        cache.start()
        if not ready.wait(600):
            raise SystemExit("TreeCache did not initialize")
        cache_seconds = time.perf_counter() - started
        cache_watches = watches(server) - base
        cache.close()
        cache_client.stop()
        cache_client.close()
        base = watches(server)

        mirror_client = connect(server.connection)
        mirror = TreeMirror(mirror_client)
        started = time.perf_counter()
        mirror.start()
        mirror_seconds = time.perf_counter() - started
        mirror_watches = watches(server) - base
        mirror.stop()
        mirror_client.stop()
        mirror_client.close()
        writer.stop()
        writer.close()

    print(f"tree: {args.nodes} nodes (+{args.nodes // PER_PARENT + 1} parents)")
    print(f"TreeCache: started in {cache_seconds:.2f} s, {cache_watches} watches on the server")
    print(f"mirror:    started in {mirror_seconds:.2f} s, {mirror_watches} watches on the server")
    print(f"for 200 hosts: {200 * cache_watches} against {200 * mirror_watches} watches")


if __name__ == "__main__":
    main()
