"""The README demo: the seed's scenario (shared/seed/after.txt) end to end.

A private ZooKeeper, a sandbox root with the fake yum and deploy scripts,
the real agent daemon, and the tree changed and the cluster version bumped
the way an operator would. Nothing outside a temporary directory changes.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from reconciler.treefmt import parse
from reconciler.zk.connect import connect
from reconciler.zk.importer import export_tree, import_tree
from reconciler.zk.reader import read_properties, update_properties
from reconciler.zk.server import ZooKeeperServer

PROJECT = Path(__file__).resolve().parent.parent
TREES = PROJECT / "fixtures" / "trees"
STEPS = [
    (2, "seed-v2", "the monitor configuration is removed"),
    (3, "seed-v3", "z4m 666: yum pretends to install it; the agent verifies and halts"),
    (4, "seed-v4", "the fix, z4m 1.0.1: the halt is cleared by a new version"),
]


def say(text: str) -> None:
    print(f"\n\033[1m### {text}\033[0m", flush=True)


def write_config(base: Path, connection: str, after: str) -> Path:
    config = base / "agent.cfg"
    config.write_text(
        "[zkdeployment]\n"
        "host-id = 424242424242\n"
        "host-name = host42\n"
        "run-directory = run\n"
        "root = root\n"
        f"path = {PROJECT / 'sandbox' / 'bin'}\n"
        f"zookeeper = {connection}\n"
        f"after = {after}\n"
    )
    return config


def agent(config: Path, *flags: str) -> subprocess.Popen[bytes]:
    return subprocess.Popen([sys.executable, "-m", "reconciler", *flags, str(config)])


def import_fixture(client: Any, name: str) -> None:
    tree = parse((TREES / f"{name}.zk").read_text(), f"{name}.zk")
    tree.children.pop("hosts")
    import_tree(client, tree, "/", trim=True)


def wait_until_settled(client: Any, version: object, timeout: float = 30) -> None:
    """Until the host converged to `version`, or the cluster was halted."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        cluster = read_properties(client, "/hosts").get("version")
        host = read_properties(client, "/hosts/424242424242")
        if cluster is None or (host.get("version") == version and cluster == version):
            time.sleep(0.5)  # let the after hook finish its lines
            return
        time.sleep(0.1)
    raise SystemExit("the agent did not settle in time")


def main() -> None:
    argparse.ArgumentParser(description=__doc__).parse_args()
    with tempfile.TemporaryDirectory(prefix="reconciler-demo-") as tmp, ZooKeeperServer() as zk:
        base = Path(tmp)
        print(f"Private ZooKeeper on {zk.connection}; sandbox root {base / 'root'}")
        client = connect(zk.connection)

        say("The host converges to version 1 (z4m and z4mmonitor installed)")
        import_fixture(client, "seed-v1")
        client.ensure_path("/hosts")
        update_properties(client, "/hosts", version=1)
        config = write_config(base, zk.connection, "echo after")
        subprocess.run([sys.executable, "-m", "reconciler", "--once", str(config)], check=True)
        print(export_tree(client, "/cust"), end="")

        say("The agent starts and watches /hosts")
        daemon = agent(config)
        time.sleep(1.5)
        for version, name, what in STEPS:
            say(f"Version {version}: {what}")
            import_fixture(client, name)
            update_properties(client, "/hosts", version=version)
            wait_until_settled(client, version)
        daemon.terminate()
        daemon.wait()

        say("Version 5 with a failing after hook (after = echo 666)")
        config = write_config(base, zk.connection, "echo 666")
        daemon = agent(config)
        time.sleep(1.5)
        update_properties(client, "/hosts", version=5)
        wait_until_settled(client, 5)

        say("The cluster is halted; the fleet view says why (reconcile hosts)")
        subprocess.run([sys.executable, "-m", "reconciler", "hosts", "-z", zk.connection])
        daemon.terminate()
        daemon.wait()
        client.stop()
        client.close()


if __name__ == "__main__":
    main()
